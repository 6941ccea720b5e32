"""The shipped default detector is accurate enough for accuracy comparisons to mean something."""

import pytest

from edgecv import load
from edgecv.datasets import load_dataset
from edgecv.harness import run_dataset

pytest.importorskip("faster_coco_eval")


def test_default_detector_map_on_the_validation_images(default_bundles, val_set):
    target = next(iter(default_bundles))
    images_dir, ann = val_set
    with load(default_bundles[target]) as det:
        run = run_dataset(det, load_dataset(ann, images_dir), progress=False)
    assert run.metrics.map >= 0.5, run.metrics.stats
    assert run.metrics.stats["map50"] >= 0.8, run.metrics.stats
    assert len(run.latency_ms) == 24
