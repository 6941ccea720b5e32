"""TensorRT target: the graph TensorRT builds in strongly typed mode (TensorRT 10 and 11).

FP32: the ONNX graph; FP16: an FP16 graph with I/O, decode and NMS in FP32; INT8: explicit
symmetric QuantizeLinear/DequantizeLinear pairs (zero point 0, as TensorRT's parser
requires). The engine itself is built on the device (a later edgecv version); until then
the bundle carries the graph and its build settings, and its accuracy is measured on the
CPU by running the same graph in onnxruntime.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import quantize as Q


def build(onnx_path: Path, out_dir: Path, precision: str, calib=None, calib_method: str = "percentile",
          exclude: tuple[str, ...] = (), **_: object) -> tuple[dict[str, str], dict, dict]:
    target = out_dir / "model.onnx"
    runtime = {"strongly_typed": True, "engine": None, "workspace_mb": 1024,
               "note": "engine built on the device; accuracy measured with onnxruntime on the CPU"}
    if precision == "fp32":
        shutil.copyfile(onnx_path, target)
        return {"model.onnx": "model"}, runtime, {}
    if precision == "fp16":
        return {"model.onnx": "model"}, runtime, Q.fp16_graph(onnx_path, target, keep=exclude)
    record = Q.int8_build(onnx_path, out_dir, calib, {"target": "tensorrt", "method": calib_method, "symmetric": True},
                          ["model.onnx"], lambda ex: Q.quantize_qdq(onnx_path, target, calib, symmetric=True,
                                                                    method=calib_method, exclude=ex), exclude)
    return {"model.onnx": "model"}, runtime, record


def versions() -> dict[str, str]:
    return {}
