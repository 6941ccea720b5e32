"""ONNX Runtime target: the checked, slimmed ONNX graph (FP32), its FP16 version, or an INT8
QDQ graph from onnxruntime's static quantizer; run with the CPU execution provider."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from ...errors import BackendUnavailableError
from .. import quantize as Q


def build(
    onnx_path: Path,
    out_dir: Path,
    precision: str,
    calib=None,
    calib_method: str = "percentile",
    exclude: tuple[str, ...] = (),
    recipe: Q.Int8Recipe | None = None,
    **_: object,
) -> tuple[dict[str, str], dict, dict]:
    """Place the model in the staging directory; return (file -> role, runtime settings, quantization record)."""
    runtime = {"graph_optimization_level": "all", "providers": ["CPUExecutionProvider"]}
    target = out_dir / "model.onnx"
    if precision == "fp32":
        shutil.copyfile(onnx_path, target)
        return {"model.onnx": "model"}, runtime, {}
    if importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailableError(
            f"{precision} onnxruntime bundles are made with onnxruntime's tools: pip install 'edgecv[onnxruntime]'"
        )
    if precision == "fp16":
        return {"model.onnx": "model"}, runtime, Q.fp16_graph(onnx_path, target, keep=exclude)
    # 7-bit weights (reduce_range): x86 CPUs without VNNI multiply UINT8 activations by INT8
    # weights with an instruction that adds pairs of products in 16 bits and saturates; with
    # 8-bit weights that costs YOLO-sized models 1-1.5 mAP points at 640, with 7 bits nothing.
    r = recipe or Q.Int8Recipe()
    record = Q.int8_build(
        onnx_path,
        out_dir,
        calib,
        {"target": "onnxruntime", "method": calib_method},
        ["model.onnx"],
        lambda ex: Q.quantize_qdq(
            onnx_path,
            target,
            calib,
            method=calib_method,
            exclude=ex,
            ops=Q.CPU_OPS if r.ops == "cpu" else Q.HEAVY_OPS[:3],
            reduce_range=r.reduce_range,
            per_channel=r.per_channel,
            activations=r.activations,
        ),
        exclude,
        r,
    )
    return {"model.onnx": "model"}, runtime, record


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"onnxruntime": version("onnxruntime")} if importlib.util.find_spec("onnxruntime") else {}
