"""TensorRT target: not in this edgecv version yet."""

from __future__ import annotations

from pathlib import Path

from ...errors import ExportError


def preflight(precision: str) -> None:
    raise ExportError(
        "the tensorrt target is not available in this edgecv version yet (planned: the TensorRT-ready ONNX graph "
        "and engine builds on the device). Export --target onnxruntime or --target openvino meanwhile")


def versions() -> dict[str, str]:
    return {}


def build(onnx_path: Path, out_dir: Path, precision: str, **_: object) -> tuple[dict[str, str], dict, dict]:
    preflight(precision)
    return {}, {}, {}
