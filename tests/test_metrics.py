"""The harness's COCO metrics equal pycocotools' own run on the same detections."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from edgecv.metrics import STAT_NAMES, coco_metrics

pycoco = pytest.importorskip("pycocotools.cocoeval")
from pycocotools.coco import COCO  # noqa: E402


def constructed_case(seed: int = 0):
    """Three classes; images without objects; detections of classes absent from an image;
    a class with ground truth but no detection at all; a detection-free image."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(1, 13):
        images.append({"id": i, "file_name": f"{i}.png", "width": 320, "height": 240})
        n = 0 if i in (3, 7) else int(rng.integers(1, 6))  # images 3 and 7 hold no objects
        for _ in range(n):
            w, h = rng.uniform(8, 120, 2)
            x, y = rng.uniform(0, 320 - w), rng.uniform(0, 240 - h)
            cat = int(rng.integers(1, 4))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            if i == 11:
                continue  # image 11: objects, no detections
            if cat == 3 and i % 2:
                continue  # class 3 found only on some images
            jitter = rng.normal(0, 3, 4)
            results.append(
                {
                    "image_id": i,
                    "category_id": cat,
                    "bbox": [x + jitter[0], y + jitter[1], max(1, w + jitter[2]), max(1, h + jitter[3])],
                    "score": float(rng.uniform(0.05, 1)),
                }
            )
        for _ in range(int(rng.integers(0, 3))):  # false positives, also of classes not in the image
            results.append(
                {
                    "image_id": i,
                    "category_id": int(rng.integers(1, 5)) if i != 11 else 4,
                    "bbox": [float(v) for v in rng.uniform(0, 100, 4)],
                    "score": float(rng.uniform(0, 0.6)),
                }
            )
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}, {"id": 4, "name": "never"}]
    return {"images": images, "annotations": anns, "categories": cats}, results


def pycocotools_stats(gt: dict, results: list[dict]) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {k: [dict(x) for x in v] for k, v in gt.items()}
        coco.createIndex()
        dt = coco.loadRes([dict(r) for r in results])
        ev = pycoco.COCOeval(coco, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_pycocotools(seed):
    gt, results = constructed_case(seed)
    ours = coco_metrics(gt, results)
    theirs = pycocotools_stats(gt, results)
    for name, v in zip(STAT_NAMES, theirs):
        if v < 0:
            assert math.isnan(ours.stats[name]), name
        else:
            assert abs(ours.stats[name] - v) < 1e-6, (name, ours.stats[name], v)
    assert 0 < ours.map < 1
    # the class with no ground truth has no AP; the others have one
    assert math.isnan(ours.per_class["never"]) and all(not math.isnan(ours.per_class[c]) for c in "abc")


def test_per_class_ap_averages_to_map():
    gt, results = constructed_case(0)
    m = coco_metrics(gt, results)
    ap = [v for v in m.per_class.values() if not math.isnan(v)]
    assert abs(np.mean(ap) - m.map) < 1e-9


def test_no_detections_at_all_scores_zero():
    gt, _ = constructed_case(0)
    m = coco_metrics(gt, [])
    assert m.map == 0 and m.stats["ar100"] == 0


def test_mask_ap_equals_pycocotools_segm_on_shapes_masks(tmp_path):
    """Mask results (to_coco_results(masks=True)) against the shapes set's RLE ground truth:
    the harness's segm figures are pycocotools' own, and perfect masks score 1."""
    import json

    from edgecv.data import shapes
    from edgecv.detections import Detections
    from edgecv.metrics import to_coco_results

    _, ann = shapes.write_coco(tmp_path, "val", 8)
    gt = json.loads(ann.read_text())
    gt.pop("info")
    perfect, rough = {}, {}
    for i in range(8):
        s = shapes.render(shapes.SPLIT_SEEDS["val"], i)
        masks = s.masks()
        perfect[i + 1] = Detections(s.boxes, np.ones(len(s.boxes)), s.class_ids, shapes.CLASSES, masks)
        grown = np.stack([np.roll(m, 2, axis=1) | m for m in masks])  # 2 px wider to the right: IoU below 1
        rough[i + 1] = Detections(s.boxes, np.linspace(1, 0.5, len(s.boxes)), s.class_ids, shapes.CLASSES, grown)
    cat_of = {i: i + 1 for i in range(len(shapes.CLASSES))}
    assert coco_metrics(gt, to_coco_results(perfect, cat_of, masks=True), iou_type="segm").map == pytest.approx(1.0)
    results = to_coco_results(rough, cat_of, masks=True)
    ours = coco_metrics(gt, results, iou_type="segm")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = pycoco.COCOeval(coco, coco.loadRes(results), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.2 < ours.map < 0.99
    np.testing.assert_allclose([ours.stats[k] for k in STAT_NAMES], ev.stats, atol=1e-6)
