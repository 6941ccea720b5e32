"""What the benchmark scripts share: the shapes data they measure on and calibrate with."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from edgecv.data import shapes
from edgecv.datasets import load_dataset


def setup(work: str, count: int, calib_size: int):
    """Quiet warnings; write ``count`` validation images and ``calib_size`` training images (for
    INT8 calibration, never the images measured) under ``work``.

    Returns (work dir, validation data set, calibration images dir, a function printing to stderr).
    """
    warnings.filterwarnings("ignore")
    root = Path(work)
    images_dir, ann = shapes.write_coco(root / "data", "val", count)
    calib_dir, _ = shapes.write_coco(root / "calib", "train", calib_size)
    return root, load_dataset(ann, images_dir), calib_dir, lambda m: print(m, file=sys.stderr, flush=True)
