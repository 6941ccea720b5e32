"""edgecv.export: the compiler from a trained detector to a bundle for one target.

Needs the ``[export]`` extra (torch, torchvision, onnx, onnxslim), or ``[export-core]`` beside one's own
torch and torchvision within :data:`edgecv.envcheck.TORCH_RANGE`.
"""

from __future__ import annotations

from . import _torch_check  # noqa: F401  (first: refuses a torch outside the supported range)
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
