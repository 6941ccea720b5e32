"""COCO detection metrics, computed by faster-coco-eval (the ``[eval]`` extra)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .detections import Detections
from .errors import EdgecvError

#: Names of COCOeval's 12 summary figures, in its order.
STAT_NAMES = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def _coco_eval():
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        raise EdgecvError("COCO metrics need faster-coco-eval: pip install 'edgecv[eval]'") from None
    return COCO, COCOeval_faster


def category_map(model_names: Sequence[str], categories: Sequence[dict]) -> list[int]:
    """COCO category id of each model class, matched by name.

    Raises:
        EdgecvError: listing the model classes without a category and the categories without a class.
    """
    by_name = {c["name"]: int(c["id"]) for c in categories}
    missing = [n for n in model_names if n not in by_name]
    if missing:
        extra = sorted(set(by_name) - set(model_names))
        raise EdgecvError(f"data set categories do not match the model's classes: model classes without a category: "
                          f"{missing}; categories the model does not know: {extra}")
    return [by_name[n] for n in model_names]


def to_coco_results(dets: Mapping[int, Detections], cat_ids: Sequence[int]) -> list[dict]:
    """COCO result entries ({image_id, category_id, bbox [x, y, w, h], score}) for every image."""
    out = []
    for image_id, d in dets.items():
        xywh = np.asarray(d.xyxy, dtype=np.float64).copy()
        xywh[:, 2:] -= xywh[:, :2]
        for box, s, c in zip(xywh.tolist(), d.scores.tolist(), d.class_ids.tolist()):
            out.append({"image_id": int(image_id), "category_id": int(cat_ids[c]), "bbox": box, "score": float(s)})
    return out


def coco_map(annotations: str | os.PathLike | dict, dets: Mapping[int, Detections], model_names: Sequence[str],
             max_dets: int = 100) -> dict[str, float]:
    """COCO box metrics of ``dets`` (image id -> Detections) against a COCO json.

    Returns a dict with the keys of :data:`STAT_NAMES` (fractions in [0, 1]; -1 where undefined).
    """
    COCO, COCOeval = _coco_eval()
    data = annotations if isinstance(annotations, dict) else json.loads(Path(annotations).read_text())
    gt = COCO(data)
    cat_ids = category_map(model_names, data["categories"])
    results = to_coco_results(dets, cat_ids)
    if not results:
        return {k: 0.0 for k in STAT_NAMES}
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, "bbox", print_function=lambda *a, **k: None)
    ev.params.imgIds = sorted(int(i) for i in dets)
    ev.params.maxDets = [1, 10, max_dets]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {k: float(v) for k, v in zip(STAT_NAMES, ev.stats[:12])}
