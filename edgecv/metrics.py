"""COCO detection (box and mask) metrics, computed by faster-coco-eval (the ``[eval]`` extra).

Every figure comes from the evaluator: edgecv only maps class ids to category ids,
reads its summary, per-class precision and precision-recall arrays.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .detections import Detections
from .errors import EdgecvError

#: Names of COCOeval's 12 summary figures, in its order.
STAT_NAMES = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)


def coco_classes():
    """faster-coco-eval's (COCO, COCOeval_faster); EdgecvError with the install command where it is missing."""
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        raise EdgecvError("COCO metrics need faster-coco-eval: pip install 'edgecv[eval]'") from None
    return COCO, COCOeval_faster


@dataclass(frozen=True)
class Metrics:
    """COCO box metrics of one model on one data set (fractions in [0, 1]; NaN where undefined)."""

    stats: dict[str, float]
    per_class: dict[str, float]  # category name -> AP50-95
    recall: np.ndarray = field(repr=False)  # the evaluator's 101 recall thresholds
    precision50: np.ndarray = field(repr=False)  # precision at IoU 0.5, averaged over classes, per recall threshold
    precision: np.ndarray = field(repr=False)  # precision over IoU 0.5:0.95 and classes, per recall threshold

    @property
    def map(self) -> float:
        return self.stats["map"]

    @property
    def primary(self) -> float:
        """The figure the gate is on (as for classifiers' top-1 and segmenters' mIoU)."""
        return self.stats["map"]

    primary_name = "mAP50-95"

    def to_dict(self) -> dict:
        return {"stats": self.stats, "per_class": self.per_class}


def to_coco_results(dets: Mapping[int, Detections], cat_of: Mapping[int, int], masks: bool = False) -> list[dict]:
    """COCO result entries for every image; detections of classes without a category are left out.

    Args:
        dets: image id -> Detections.
        cat_of: model class index -> COCO category id.
        masks: add each detection's mask as ``segmentation`` (compressed RLE), for segm evaluation.
    """
    if masks:
        from faster_coco_eval.core import mask as mask_utils
    out = []
    for image_id, d in dets.items():
        xywh = np.asarray(d.xyxy, dtype=np.float64).copy()
        xywh[:, 2:] -= xywh[:, :2]
        for k, (box, s, c) in enumerate(zip(xywh.tolist(), d.scores.tolist(), d.class_ids.tolist())):
            if c in cat_of:
                r = {"image_id": int(image_id), "category_id": int(cat_of[c]), "bbox": box, "score": float(s)}
                if masks:
                    assert d.masks is not None, "masks=True takes detections with masks"
                    rle = mask_utils.encode(np.asfortranarray(d.masks[k].astype(np.uint8)))
                    r["segmentation"] = {
                        "size": list(rle["size"]),
                        "counts": rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"],
                    }
                out.append(r)
    return out


def _nan(v: float) -> float:
    return float("nan") if v < 0 else float(v)


def coco_metrics(
    gt: dict, results: list[dict], img_ids: Iterable[int] | None = None, max_dets: int = 100, iou_type: str = "bbox"
) -> Metrics:
    """Run the COCO box (or, with ``iou_type="segm"``, mask) evaluation of ``results`` against
    the COCO dict ``gt``.

    Args:
        gt: COCO-format ground truth (images, annotations, categories; ``segmentation`` for segm).
        results: COCO result entries (see :func:`to_coco_results`).
        img_ids: evaluate these images only (default: every image of ``gt``).
        max_dets: detections per image counted (COCO: 100).
        iou_type: ``"bbox"`` or ``"segm"``.
    """
    COCO, COCOeval = coco_classes()
    coco_gt = COCO(gt)
    ids = sorted(int(i["id"]) for i in gt["images"]) if img_ids is None else sorted(set(int(i) for i in img_ids))
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    if not results:  # the evaluator cannot load an empty result list: nothing found scores 0
        zero = {k: 0.0 for k in STAT_NAMES}
        recall = np.linspace(0, 1, 101)
        return Metrics(zero, {c["name"]: 0.0 for c in cats}, recall, np.zeros(101), np.zeros(101))
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval(coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None)
    ev.params.imgIds = ids
    ev.params.maxDets = [1, 10, max_dets]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = {k: _nan(v) for k, v in zip(STAT_NAMES, ev.stats[:12])}
    prec = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
    cat_ids = list(ev.params.catIds)
    per_class = {}
    for c in cats:
        p = prec[:, :, cat_ids.index(c["id"]), 0, -1]
        per_class[c["name"]] = float(p[p > -1].mean()) if (p > -1).any() else float("nan")
    all_area = prec[:, :, :, 0, -1]
    masked = np.where(all_area > -1, all_area, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():  # classes absent from the set
        warnings.simplefilter("ignore", RuntimeWarning)
        p50 = np.nan_to_num(np.nanmean(masked[0], axis=1))
        pall = np.nan_to_num(np.nanmean(masked, axis=(0, 2)))
    return Metrics(stats, per_class, np.asarray(ev.params.recThrs), p50, pall)


__all__ = ["STAT_NAMES", "Metrics", "coco_metrics", "to_coco_results"]
