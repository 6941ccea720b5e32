"""OpenVINO target: an IR (model.xml + model.bin) converted from the ONNX graph: FP32 weights,
FP16 weights, or INT8 from NNCF post-training quantization."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ...errors import BackendUnavailableError, ExportError
from .. import quantize as Q

FILES = {"model.xml": "model", "model.bin": "weights"}


def build(
    onnx_path: Path,
    out_dir: Path,
    precision: str,
    calib=None,
    exclude: tuple[str, ...] = (),
    recipe: Q.Int8Recipe | None = None,
    inference_precision: str | None = None,
    **_: object,
) -> tuple[dict[str, str], dict, dict]:
    """Convert the ONNX graph to an IR in the staging directory; return (file -> role, runtime settings, record)."""
    if importlib.util.find_spec("openvino") is None:
        raise BackendUnavailableError(
            "the openvino target needs the 'openvino' package: pip install 'edgecv[openvino]'"
        )
    import openvino as ov

    # The CPU plugin computes in bf16 by default where the CPU has it. FP32 and FP16 bundles pin
    # f32, so their accuracy is the source's (FP16 weights are widened on load). INT8 bundles ask
    # for "auto": their float parts run bf16 where the CPU computes it natively (AVX512_BF16, AMX)
    # and f32 elsewhere, and the export's validation runs at what the exporting CPU gives, which
    # the manifest's validation records. A bf16 bundle keeps FP32 weights and asks for bf16
    # compute, which the CPU plugin gives on CPUs with AVX512_BF16 or AMX and replaces with f32
    # elsewhere.
    default = {"int8": "auto", "bf16": "bf16"}.get(precision, "f32")
    runtime = {"inference_precision": inference_precision or default, "performance_hint": "LATENCY"}
    xml = str(out_dir / "model.xml")
    if precision == "int8":
        if importlib.util.find_spec("nncf") is None:
            raise BackendUnavailableError(
                "openvino int8 bundles are quantized with NNCF: pip install 'edgecv[quantize]'"
            )

        def make(excluded: tuple[str, ...]) -> dict:
            q, record = Q.quantize_openvino(onnx_path, calib, ignored=excluded, recipe=recipe)
            ov.save_model(q, xml, compress_to_fp16=False)
            return record

        return (
            FILES,
            runtime,
            Q.int8_build(onnx_path, out_dir, calib, {"target": "openvino"}, list(FILES), make, exclude, recipe),
        )
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:  # OpenVINO raises its own OpConversionFailure / RuntimeError
        raise ExportError(f"OpenVINO could not convert the graph: {e}") from None
    # save_model halves weights to FP16 by default: only an FP16 bundle gets that.
    ov.save_model(model, xml, compress_to_fp16=precision == "fp16")
    if precision == "bf16":
        return FILES, runtime, {"weights": "fp32", "inference_precision": runtime["inference_precision"]}
    return FILES, runtime, ({"weights": "fp16"} if precision == "fp16" else {})


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for dist in ("openvino", "nncf"):
        if importlib.util.find_spec(dist):
            out[dist] = version(dist)
    return out
