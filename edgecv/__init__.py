"""edgecv: export trained object detectors to edge bundles and run them behind one runtime.

``import edgecv`` imports numpy and OpenCV only; the exporter lives in
:mod:`edgecv.export` and each backend is imported when a bundle needs it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .detections import Detections
from .errors import (BackendUnavailableError, BundleError, EdgecvError, ExportError, InferenceError, InvalidImageError,
                     SourceError)
from .letterbox import Letterbox
from .runtimes import load

__all__ = [
    "BackendUnavailableError", "BundleError", "Detections", "EdgecvError", "ExportError",
    "InferenceError", "InvalidImageError", "Letterbox", "SourceError", "load", "__version__",
]
