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
    # 8-bit weights that costs YOLO-sized models about 1 mAP point, with 7 bits nothing. With
    # VNNI (and on Arm) the sums are 32-bit, and 8-bit weights lose less than 7-bit ones
    # (int8-levers-2026-12-08: 0.09 against 0.24 points on YOLOv8n at 320). The default "auto"
    # follows the exporting CPU; the quantization record says which, and the runtime warns
    # where 8-bit weights meet a CPU that saturates.
    r = recipe or Q.Int8Recipe()
    reduce_range = r.weights_reduced()
    if r.quantizer == "nncf" and importlib.util.find_spec("nncf") is None:
        raise BackendUnavailableError("the INT8 recipe's quantizer=nncf needs NNCF: pip install 'edgecv[quantize]'")
    record = Q.int8_build(
        onnx_path,
        out_dir,
        calib,
        {"target": "onnxruntime", "method": calib_method, "reduce_range": reduce_range},
        ["model.onnx"],
        lambda ex: (
            Q.quantize_qdq_nncf(onnx_path, target, calib, exclude=ex, recipe=r, reduce_range=reduce_range)
            if r.quantizer == "nncf"
            else Q.quantize_qdq(
                onnx_path,
                target,
                calib,
                method=calib_method,
                exclude=ex,
                ops=Q.CPU_OPS if r.ops == "cpu" else Q.HEAVY_OPS[:3],
                reduce_range=reduce_range,
                per_channel=r.per_channel,
                activations=r.activations,
            )
        ),
        exclude,
        r,
    )
    return {"model.onnx": "model"}, runtime, record


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"onnxruntime": version("onnxruntime")} if importlib.util.find_spec("onnxruntime") else {}
