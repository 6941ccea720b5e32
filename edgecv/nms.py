"""Host-side non-maximum suppression in numpy, for bundles exported with raw outputs.

Same semantics as the ONNX ``NonMaxSuppression`` op used in-graph: per class (or
class-agnostic), candidates with score strictly above ``score_threshold``,
suppressing overlaps with IoU strictly above ``iou_threshold``, at most
``max_det`` kept per class, then the best ``max_det`` overall.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4] (xyxy): [N, M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _nms_single(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float = 0.45,
    score_threshold: float = 0.001,
    max_det: int = 100,
    class_aware: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Suppress overlapping boxes of one image.

    Args:
        boxes: float [N, 4] xyxy.
        scores: float [N, C] per-class scores.
        iou_threshold: boxes overlapping a kept box by more than this are removed.
        score_threshold: only scores strictly above this are candidates.
        max_det: most boxes kept.
        class_aware: suppress within each class (True) or across classes (False,
            each box then competes with its best class score).

    Returns:
        kept boxes [K, 4] float32, scores [K] float32, class ids [K] int64; sorted by score.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32)
    scores = scores.reshape(len(boxes), -1)
    if not class_aware:
        cls = scores.argmax(1)
        scores = scores.max(1, keepdims=True)
    out_idx, out_cls, out_s = [], [], []
    for c in range(scores.shape[1]):
        cand = np.nonzero(scores[:, c] > score_threshold)[0]
        if cand.size == 0:
            continue
        keep = cand[_nms_single(boxes[cand], scores[cand, c], iou_threshold, max_det)]
        out_idx.append(keep)
        out_s.append(scores[keep, c])
        out_cls.append(cls[keep] if not class_aware else np.full(len(keep), c, np.int64))
    if not out_idx:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    idx, s, labels = np.concatenate(out_idx), np.concatenate(out_s), np.concatenate(out_cls)
    top = np.argsort(-s, kind="stable")[:max_det]
    return boxes[idx[top]], s[top], labels[top].astype(np.int64)
