"""Calibration data for INT8: images put through exactly the runtime's letterbox, a seeded
random subset, and a hash of what was selected (for the manifest and the cache)."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError
from ..images import IMAGE_SUFFIXES, read_image, to_model_input
from ..letterbox import CenterCrop, Letterbox


@dataclass(frozen=True)
class CalibrationSet:
    """Letterboxed uint8 NHWC samples [1, H, W, 3], as the exported graph takes them."""

    samples: list[np.ndarray]
    sha256: str
    source: str

    @property
    def size(self) -> int:
        return len(self.samples)

    def describe(self) -> dict:
        return {"source": self.source, "size": self.size, "sha256": self.sha256}

    def feeds(self, sample: np.ndarray, input_names: Sequence[str]) -> dict[str, np.ndarray]:
        """One sample as the graph's inputs by name: the images (the first input) and, where
        the graph takes one, the NMS score floor at :data:`CALIBRATION_FLOOR` for each image.
        The floor acts only after the network (on NMS), so it changes no calibrated range."""
        from .graph import SCORE_INPUT

        feeds = {input_names[0]: sample}
        for name in input_names[1:]:
            if name != SCORE_INPUT:
                raise ExportError(f"the graph has an input '{name}' that calibration does not know how to feed")
            feeds[name] = np.full(len(sample), CALIBRATION_FLOOR, np.float32)
        return feeds


#: the score floor the graph's NMS gets while calibration images run through it
CALIBRATION_FLOOR = 0.001


def _image_paths(calib: Path) -> list[Path]:
    from ..datasets import load_dataset

    if calib.is_dir() and (calib / "images").is_dir() and (calib / "masks").is_dir():
        calib = calib / "images"  # a segmentation set: its images, not its masks
    if calib.is_dir() and not any(calib.glob("*.xml")) and not any(p.suffix == ".txt" for p in calib.iterdir()):
        paths = sorted(p for p in calib.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ExportError(f"calibration folder '{calib}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return paths
    ds = load_dataset(calib)  # a COCO json, YOLO labels or VOC xml: its images
    return [ds.image_path(i) for i in ds.coco["images"]]


def calibration_set(
    calib: Any,
    imgsz: tuple[int, int],
    color: str = "RGB",
    pad_value: int = 114,
    size: int = 300,
    seed: int = 0,
    progress: bool = False,
    crop: bool | int = False,
) -> CalibrationSet:
    """Select and letterbox calibration images.

    Args:
        calib: a folder of images, a data set (COCO json, YOLO labels folder, VOC xml folder),
            or an iterable of HxWx3 uint8 BGR arrays (Python API; the first ``size`` are taken).
        imgsz: the bundle's input size (H, W); color: the graph's channel order.
        size: most images used; a seeded random subset when more are available.
        crop: a classifier's placement (resize and centre crop) instead of the letterbox; an int
            is the resize of the shorter side (default: the size x 256 / 224).
    """
    from ..console import progress_bar

    lb = CenterCrop(imgsz, None if crop is True else crop) if crop else Letterbox(imgsz, pad_value=pad_value)
    if isinstance(calib, (str, os.PathLike)):
        root = Path(calib)
        if not root.exists():
            raise ExportError(f"calibration data '{root}' does not exist")
        paths = _image_paths(root)
        if len(paths) > size:
            pick = np.random.default_rng(seed).choice(len(paths), size, replace=False)
            paths = [paths[i] for i in sorted(pick)]
        items: Iterable[Any] = paths
        total, source = len(paths), str(root)
    else:
        items = list(itertools.islice(iter(calib), size))
        total, source = len(items), "python iterable"
    if total == 0:
        raise ExportError("the calibration set is empty")
    h = hashlib.sha256()
    samples = []
    for item in progress_bar(items, total, "calibration images", progress):
        img = read_image(item) if isinstance(item, (str, os.PathLike)) else item
        canvas, _ = lb.forward(to_model_input(img, "bgr", color))
        h.update(canvas.tobytes())
        samples.append(canvas[None])
    return CalibrationSet(samples, h.hexdigest(), source)


def rect_imgsz(images: Any, long_side: int = 640, step: int = 32, sample: int = 64, seed: int = 0) -> tuple[int, int]:
    """A rectangular input size (H, W) for frames shaped like ``images``: the longer side is
    ``long_side``, the shorter one follows the median aspect of up to ``sample`` of the images
    (a seeded subset), rounded up to a multiple of ``step`` so a whole frame fits without
    padding beyond that rounding (640x480 frames: 480x640; 16:9: 384x640).

    Args:
        images: a folder of images or a data set, as :func:`calibration_set` takes them.

    Raises:
        ExportError: no images, or ``long_side`` not a multiple of ``step``.
    """
    import cv2

    if long_side % step or long_side <= 0:
        raise ExportError(f"the longer side {long_side} must be a positive multiple of {step}")
    root = Path(images)
    if not root.exists():
        raise ExportError(f"'{root}' does not exist: --rect reads the aspect of the frames from it")
    paths = _image_paths(root)
    if len(paths) > sample:
        paths = [paths[i] for i in sorted(np.random.default_rng(seed).choice(len(paths), sample, replace=False))]
    aspects = []
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)  # an eighth of the pixels: the shape is enough
        if img is None:
            img = read_image(path)
        aspects.append(img.shape[0] / img.shape[1])
    ratio = float(np.median(aspects))
    short = min(long_side, int(np.ceil(long_side * min(ratio, 1 / ratio) / step)) * step)
    return (short, long_side) if ratio <= 1 else (long_side, short)
