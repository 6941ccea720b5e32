"""edgecv.runtimes: one module per backend behind one base class, a registry and :func:`load`."""

from __future__ import annotations

import os
from typing import Any

from ..bundle import Bundle
from .base import Detector
from .registry import available, get_backend, is_available, keys, register

__all__ = ["Detector", "available", "get_backend", "is_available", "keys", "load", "register"]


def load(path: str | os.PathLike, **options: Any) -> Detector:
    """Load a bundle directory; its manifest picks the backend.

    Args:
        path: the bundle directory written by ``edgecv export``.
        **options: passed to the detector: ``conf``, ``color``, ``threads``, ``batch_size``
            and backend settings (see :class:`edgecv.runtimes.base.Detector`).

    Raises:
        BundleError: the bundle is missing, malformed or was modified.
        BackendUnavailableError: the backend library is not installed.
    """
    bundle = Bundle.open(path)
    cls = get_backend(bundle.target)
    return cls(bundle.manifest, bundle, **options)
