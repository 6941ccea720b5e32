"""The registry of backends: key -> "module:Class" and the library it needs.

A backend module is imported only when it is used; :func:`is_available` looks the
library up with ``importlib.util.find_spec`` and imports nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from ..errors import BackendUnavailableError, UnknownTargetError


@dataclass(frozen=True)
class BackendEntry:
    key: str
    target: str  # "module:Class", the module relative to edgecv.runtimes
    requires: str  # top-level library the backend imports
    extra: str  # pip extra that installs it
    hint: str = ""  # how to install it, where the extra alone does not


_REGISTRY: dict[str, BackendEntry] = {}


def register(key: str, target: str, requires: str, extra: str | None = None, hint: str = "") -> None:
    """Add a backend. Raises ValueError on a duplicate key."""
    if key in _REGISTRY:
        raise ValueError(f"backend '{key}' is already registered")
    _REGISTRY[key] = BackendEntry(key, target, requires, extra or key, hint)


register("onnxruntime", "onnxruntime:OnnxRuntimeDetector", "onnxruntime")
register("openvino", "openvino:OpenVinoDetector", "openvino")
register("torch", "torch:TorchDetector", "torch", extra="export")
register("tensorrt", "tensorrt.backend:TensorRtDetector", "tensorrt",
         hint="TensorRT comes from NVIDIA: on x86-64 `pip install 'edgecv[tensorrt]' tensorrt`; on a Jetson, JetPack's "
              "python3-libnvinfer (a virtual environment needs --system-site-packages) and `pip install "
              "'edgecv[tensorrt]'`. To check a tensorrt bundle's graph on a CPU: load(bundle, backend='onnxruntime')")


def keys() -> list[str]:
    """Every registered backend key."""
    return list(_REGISTRY)


def entry(key: str) -> BackendEntry:
    if key not in _REGISTRY:
        raise UnknownTargetError(f"unknown backend '{key}'; edgecv knows {', '.join(_REGISTRY)}")
    return _REGISTRY[key]


def is_available(key: str) -> bool:
    """Whether the library backend ``key`` needs is installed (nothing is imported)."""
    try:
        return importlib.util.find_spec(entry(key).requires) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[str]:
    """The keys of the backends usable here."""
    return [k for k in _REGISTRY if is_available(k)]


def get_backend(key: str) -> type:
    """Import and return the detector class of backend ``key``."""
    e = entry(key)
    if not is_available(key):
        raise BackendUnavailableError(
            f"the {key} backend needs the '{e.requires}' package, which is not installed here: "
            + (e.hint or f"pip install 'edgecv[{e.extra}]'"))
    module, cls = e.target.split(":")
    return getattr(importlib.import_module(f".{module}", __package__), cls)
