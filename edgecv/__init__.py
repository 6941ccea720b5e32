"""edgecv: export trained object detectors (and classifiers, segmenters) to edge bundles and run them
behind one runtime.

``import edgecv`` imports numpy and OpenCV only; the exporter lives in
:mod:`edgecv.export` and each backend is imported when a bundle needs it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .detections import Detections
from .errors import (
    AccuracyBudgetError,
    BackendUnavailableError,
    BundleError,
    DatasetError,
    EdgecvError,
    ExportError,
    InferenceError,
    InvalidImageError,
    PlanError,
    SourceError,
    VideoError,
)
from .letterbox import CenterCrop, Letterbox
from .results import Classifications, SegmentationMap
from .runtimes import load


def track(det, source, tracker="bytetrack", **options):
    """Detect and track objects over a video: ``for frame, dets in edgecv.track(det, "clip.mp4")``,
    ``dets.tracker_ids`` keeping identities across frames (:func:`edgecv.tracking.track`; needs
    the ``[track]`` extra, imported on the first call)."""
    from .tracking import track as run

    return run(det, source, tracker, **options)


__all__ = [
    "AccuracyBudgetError",
    "BackendUnavailableError",
    "DatasetError",
    "BundleError",
    "CenterCrop",
    "Classifications",
    "Detections",
    "EdgecvError",
    "ExportError",
    "InferenceError",
    "InvalidImageError",
    "Letterbox",
    "PlanError",
    "SegmentationMap",
    "SourceError",
    "VideoError",
    "load",
    "track",
    "__version__",
]
