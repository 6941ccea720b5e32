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

from ...errors import ExportError
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
        return {"model.onnx": "model"}, runtime, Q.fp16_graph(onnx_path, target)
    if calib is None:
        raise ExportError("an int8 export needs calibration images: --calib DIR (a folder or a data set)")
    import onnx

    exclude = tuple(sorted(set(exclude) | set(Q.output_layers(onnx.load(str(onnx_path))))))
    settings = {"target": "tensorrt", "method": calib_method, "exclude": list(exclude), "symmetric": True}
    key = Q.cache_key(onnx_path, calib, settings)
    if Q.cached(key, ["model.onnx"], out_dir):
        return {"model.onnx": "model"}, runtime, {"format": "QDQ", "symmetric": True, "method": calib_method,
                                                   "excluded_nodes": list(exclude), "cache": "hit"}
    record = Q.quantize_qdq(onnx_path, target, calib, symmetric=True, method=calib_method, exclude=exclude)
    Q.store(key, ["model.onnx"], out_dir)
    return {"model.onnx": "model"}, runtime, {**record, "cache": "miss"}


def versions() -> dict[str, str]:
    return {}
