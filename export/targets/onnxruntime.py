"""ONNX Runtime target: the checked, slimmed ONNX graph, run with the CPU execution provider."""

from __future__ import annotations

import shutil
from pathlib import Path

from ...errors import ExportError


def build(onnx_path: Path, out_dir: Path, precision: str) -> tuple[dict[str, str], dict]:
    """Place the model in the staging directory; return (file -> role, runtime settings)."""
    if precision != "fp32":
        raise ExportError(f"onnxruntime {precision} bundles are not in this edgecv version yet; use --precision fp32")
    shutil.copyfile(onnx_path, out_dir / "model.onnx")
    return {"model.onnx": "model"}, {"graph_optimization_level": "all", "providers": ["CPUExecutionProvider"]}


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"onnxruntime": version("onnxruntime")} if _installed("onnxruntime") else {}


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
