"""Drawing detections on an image, for people to look at."""

from __future__ import annotations

import cv2
import numpy as np

from .detections import Detections


def _colour(class_id: int) -> tuple[int, int, int]:
    hue = (class_id * 47) % 180
    bgr = cv2.cvtColor(np.array([[[hue, 220, 255]]], dtype=np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_detections(image: np.ndarray, dets: Detections, thickness: int | None = None) -> np.ndarray:
    """A copy of ``image`` (HxWx3 uint8, BGR) with each box and its label and score drawn on it."""
    out = np.ascontiguousarray(image).copy()
    t = thickness or max(1, round(min(out.shape[:2]) / 300))
    for (x1, y1, x2, y2), score, cid, label in zip(dets.xyxy, dets.scores, dets.class_ids, dets.labels):
        col = _colour(int(cid))
        p1, p2 = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, p1, p2, col, t, cv2.LINE_AA)
        text = f"{label} {score:.2f}"
        scale = 0.35 * t + 0.1
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = p1[1] - 2 if p1[1] - th - base - 2 >= 0 else p1[1] + th + 2
        tx = max(0, min(p1[0], out.shape[1] - tw - 3))  # keep the label inside the image
        cv2.rectangle(out, (tx, ty - th - 2), (tx + tw + 2, ty + base - 1), col, -1)
        cv2.putText(out, text, (tx + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def draw_segmentation(image: np.ndarray, seg, alpha: float = 0.5, background: int | None = 0) -> np.ndarray:
    """A copy of a BGR ``image`` with each class's pixels tinted in its colour (class
    ``background`` left as it is)."""
    out = image.copy()
    ids = np.unique(seg.class_map)
    for c in ids:
        if background is not None and c == background:
            continue
        sel = seg.class_map == c
        out[sel] = (out[sel] * (1 - alpha) + np.asarray(_colour(int(c))) * alpha).astype(np.uint8)
    return out


def draw_classification(image: np.ndarray, result) -> np.ndarray:
    """A copy of a BGR ``image`` with the top classes and scores written in its corner."""
    out = image.copy()
    scale = max(0.4, min(out.shape[:2]) / 500)
    for k, d in enumerate(result.to_list()[:3]):
        y = int((k + 1) * 22 * scale)
        text = f"{d['name']} {d['score']:.2f}"
        cv2.putText(out, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
