"""Instance masks on the host: paste each box's small mask into the original image.

A Mask R-CNN graph returns, for each kept box, an M x M grid of mask probabilities that covers
the box. Pasting it into the full image is a per-box resize of a different size each time,
which exports to a loop that targets handle badly, so it runs here, in numpy and OpenCV, the
way torchvision pastes (the grid padded by one cell and the box grown to match, a bilinear
resize into the box, then the threshold).
"""

from __future__ import annotations

import cv2
import numpy as np


def paste(probs: np.ndarray, boxes: np.ndarray, shape: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """bool [K, H, W] masks from ``probs`` [K, M, M] (each spanning its box) and ``boxes`` [K, 4]
    (xyxy, in the pixels of the ``shape`` (H, W) image)."""
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((len(boxes), h, w), dtype=bool)
    if len(boxes) == 0:
        return out
    m = probs.shape[-1]
    padded = np.pad(probs.astype(np.float32), ((0, 0), (1, 1), (1, 1)))
    scale = (m + 2) / m
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * scale
    grown = np.trunc(np.concatenate([centre - half, centre + half], 1)).astype(np.int64)  # as torchvision: truncated,
    for k, (x0, y0, x1, y1) in enumerate(grown):  # edges inclusive
        bw, bh = max(int(x1 - x0 + 1), 1), max(int(y1 - y0 + 1), 1)
        resized = cv2.resize(padded[k], (bw, bh), interpolation=cv2.INTER_LINEAR) > threshold
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + bw, w), min(y0 + bh, h)
        if cx1 > cx0 and cy1 > cy0:
            out[k, cy0:cy1, cx0:cx1] = resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return out


__all__ = ["paste"]
