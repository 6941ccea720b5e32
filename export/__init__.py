"""edgecv.export: the compiler from a trained detector to a bundle for one target.

Needs the ``[export]`` extra (torch, torchvision, onnx, onnxslim).
"""

from __future__ import annotations

from .api import PRECISIONS, TARGETS, build_manifest, export, reference
from .sources import DEFAULT_MODEL, Source, default_source, load_source
from .spec import InputSpec, NmsSpec, OutputSpec

__all__ = [
    "DEFAULT_MODEL",
    "InputSpec",
    "NmsSpec",
    "OutputSpec",
    "PRECISIONS",
    "Source",
    "TARGETS",
    "build_manifest",
    "default_source",
    "export",
    "load_source",
    "reference",
]
