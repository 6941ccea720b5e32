"""OpenVINO target: an IR (model.xml + model.bin) converted from the ONNX graph."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ...errors import BackendUnavailableError, ExportError


def build(onnx_path: Path, out_dir: Path, precision: str) -> tuple[dict[str, str], dict]:
    """Convert the ONNX graph to an IR in the staging directory; return (file -> role, runtime settings)."""
    if importlib.util.find_spec("openvino") is None:
        raise BackendUnavailableError("the openvino target needs the 'openvino' package: pip install 'edgecv[openvino]'")
    if precision != "fp32":
        raise ExportError(f"openvino {precision} bundles are not in this edgecv version yet; use --precision fp32")
    import openvino as ov

    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:  # OpenVINO raises its own OpConversionFailure / RuntimeError
        raise ExportError(f"OpenVINO could not convert the graph: {e}") from None
    # save_model halves weights to FP16 by default: an FP32 bundle keeps FP32 weights.
    ov.save_model(model, str(out_dir / "model.xml"), compress_to_fp16=False)
    return {"model.xml": "model", "model.bin": "weights"}, {"inference_precision": "f32", "performance_hint": "LATENCY"}


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"openvino": version("openvino")} if importlib.util.find_spec("openvino") else {}
