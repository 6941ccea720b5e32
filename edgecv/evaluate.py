"""Running a detector over a COCO-format data set: detections and per-image latency."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .detections import Detections
from .errors import EdgecvError
from .images import read_image
from .metrics import coco_map


def progress_bar(iterable, total: int, desc: str, enabled: bool = True):
    """tqdm over ``iterable`` on stderr when it is installed and ``enabled``; the iterable itself otherwise."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


@dataclass(frozen=True)
class EvalResult:
    metrics: dict[str, float]
    latency_ms: list[float]  # end to end per image: preprocess + infer + postprocess
    detections: dict[int, Detections]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latency_ms) if self.latency_ms else float("nan")


def evaluate(det, images_dir: str | os.PathLike, annotations: str | os.PathLike, conf: float = 0.001,
             desc: str = "eval", warmup: int = 3, progress: bool = True) -> EvalResult:
    """Run ``det`` on every image of a COCO json and compute COCO box metrics.

    Images are decoded before the clock starts; ``warmup`` untimed calls come first.
    """
    data = json.loads(Path(annotations).read_text())
    images = data.get("images", [])
    if not images:
        raise EdgecvError(f"'{annotations}' lists no images")
    root = Path(images_dir)
    dets: dict[int, Detections] = {}
    times: list[float] = []
    first = read_image(root / images[0]["file_name"])
    for _ in range(warmup):
        det(first, conf=conf)
    for info in progress_bar(images, len(images), desc, progress):
        img = read_image(root / info["file_name"])
        t0 = time.perf_counter()
        dets[int(info["id"])] = det(img, conf=conf)
        times.append((time.perf_counter() - t0) * 1000)
    return EvalResult(coco_map(data, dets, det.names), times, dets)
