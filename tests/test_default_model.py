"""The shipped default detector is accurate enough for accuracy comparisons to mean something."""

import pytest

from edgecv import load
from edgecv.evaluate import evaluate

pytest.importorskip("faster_coco_eval")


def test_default_detector_map_on_the_validation_images(default_bundles, val_set):
    target = next(iter(default_bundles))
    images_dir, ann = val_set
    with load(default_bundles[target]) as det:
        res = evaluate(det, images_dir, ann, progress=False)
    assert res.metrics["map"] >= 0.5, res.metrics
    assert res.metrics["map50"] >= 0.8, res.metrics
    assert len(res.latency_ms) == 24
