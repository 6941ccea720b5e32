"""Accuracy control for reduced-precision exports: measure the drop against the FP32 source
with the harness; while it exceeds the budget, keep the next most sensitive layer in float."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import EdgecvError
from .calibration import CalibrationSet


class AccuracyBudgetError(EdgecvError):
    """The quantized model could not be brought within the accuracy budget (CLI exit status 1)."""

    exit_code = 1

    def __init__(self, message: str, history: list[dict] | None = None) -> None:
        super().__init__(message)
        self.history = history or []


def layer_sensitivity(fp32_path: Path, calib: CalibrationSet, samples: int = 8, candidates: list[str] | None = None
                      ) -> list[tuple[str, float]]:
    """Rank the Conv/Gemm/MatMul layers by the error their own quantization adds.

    The graph is quantized once (onnxruntime QDQ, evaluated as float arithmetic); for each
    layer the relative squared error of its output minus that of its input, against the FP32
    graph, on a few calibration images, is the error it adds. Largest first.
    """
    import onnx
    import onnxruntime as ort

    from .quantize import HEAVY_OPS, quantize_qdq

    work = Path(tempfile.mkdtemp(prefix="edgecv-sens-"))
    try:
        qdq = work / "qdq.onnx"
        quantize_qdq(fp32_path, qdq, CalibrationSet(calib.samples[: max(samples * 4, 16)], calib.sha256, calib.source))
        fp32 = onnx.load(str(fp32_path))
        layers = [n for n in fp32.graph.node if n.op_type in HEAVY_OPS and (candidates is None or n.name in candidates)]
        tensors = sorted({t for n in layers for t in (n.input[0], n.output[0])})

        def probe(model_path: Path, out: Path) -> dict[str, list[np.ndarray]]:
            m = onnx.load(str(model_path))
            have = {o.name for o in m.graph.output}
            m.graph.output.extend([onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                                   for t in tensors if t not in have])
            onnx.save(m, str(out))
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            sess = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
            res: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
            for x in calib.samples[:samples]:
                vals = sess.run(tensors, {sess.get_inputs()[0].name: x})
                for t, v in zip(tensors, vals):
                    res[t].append(v)
            return res

        ref, q = probe(fp32_path, work / "f.onnx"), probe(qdq, work / "q.onnx")

        def rel(t: str) -> float:
            num = sum(float(((a - b) ** 2).sum()) for a, b in zip(q[t], ref[t]))
            den = sum(float((b ** 2).sum()) for b in ref[t]) or 1.0
            return num / den

        scores = [(n.name, rel(n.output[0]) - rel(n.input[0])) for n in layers]
        return sorted(scores, key=lambda kv: -kv[1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_within_budget(src: Any, target: str, dataset, max_map_drop: float, *, calib: Any, max_steps: int = 8,
                         bootstrap: int = 200, say: Callable[[str], None] = lambda m: None, progress: bool = False,
                         **export_kwargs: Any) -> Path:
    """Export ``src`` at reduced precision so that it loses at most ``max_map_drop`` mAP50-95 points.

    Each step exports to a scratch directory and runs the harness against the FP32 source (the
    torch reference); while over budget, the next most sensitive layer is kept in float, up to
    ``max_steps`` layers. The bundle is written to ``out_dir`` only when the budget is met, with
    the figures and the layers kept in float in its manifest.

    Raises:
        AccuracyBudgetError: the budget is not met after ``max_steps`` layers.
    """
    from ..bundle import Bundle, write_validation
    from ..harness import compare, run_dataset
    from ..runtimes import load
    from . import api

    out_dir = Path(export_kwargs.pop("out_dir", "build"))
    name = export_kwargs.pop("name", None)
    src = src if isinstance(src, api.Source) else api.load_source(src, **{k: export_kwargs.pop(k) for k in list(
        export_kwargs) if k in ("names", "out_spec", "in_spec", "trust_pickle", "layout", "box_format", "objectness",
                                "apply_sigmoid")})
    nms_keys = ("imgsz", "conf", "iou", "max_det", "class_aware", "mode")
    ref = api.reference(src, **{k: export_kwargs[k] for k in nms_keys if k in export_kwargs})
    say(f"accuracy control: evaluating the FP32 source on {dataset.name} ({len(dataset)} images)")
    ref_run = run_dataset(ref, dataset, name="source", progress=progress)
    excluded: list[str] = []
    ranking: list[str] | None = None
    history = []
    scratch = Path(tempfile.mkdtemp(prefix="edgecv-ac-"))
    try:
        for step in range(max_steps + 1):
            b = api.export(src, target, out_dir=scratch, name=f"step{step}", calib=calib, exclude=excluded, **export_kwargs)
            be = {"backend": "onnxruntime"} if target == "tensorrt" else {}
            with load(b, **be) as det:
                run = run_dataset(det, dataset, name=f"step {step}", progress=progress, warmup=0)
            drop = (ref_run.metrics.map - run.metrics.map) * 100
            history.append({"kept_in_float": list(excluded), "map": run.metrics.map, "drop": drop})
            say(f"accuracy control step {step}: {len(excluded)} layer(s) kept in float, mAP50-95 "
                f"{run.metrics.map * 100:.2f} (source {ref_run.metrics.map * 100:.2f}), drop {drop:.2f} points "
                f"(budget {max_map_drop:g})")
            if drop <= max_map_drop:
                break
            if step == max_steps:
                raise AccuracyBudgetError(
                    f"{target} {export_kwargs.get('precision', 'int8')} could not be brought within {max_map_drop:g} "
                    f"mAP50-95 points: with {len(excluded)} layer(s) kept in float it still loses {drop:.2f} "
                    f"({ref_run.metrics.map * 100:.2f} -> {run.metrics.map * 100:.2f}). Kept in float: "
                    f"{', '.join(excluded) or 'none'}. Raise --max-map-drop, add calibration images, or export fp16",
                    history)
            if ranking is None:
                say("ranking layers by the error their quantization adds")
                fp32_graph = scratch / "fp32"
                fp32 = api.export(src, "onnxruntime", out_dir=fp32_graph, name="fp32",
                                  **{k: v for k, v in export_kwargs.items() if k != "precision"})
                from .calibration import calibration_set

                cal = calibration_set(calib, tuple(Bundle.open(fp32).manifest["input"]["shape"][1:3]),
                                      src.in_spec.color, src.in_spec.pad_value,
                                      export_kwargs.get("calib_size", 300), export_kwargs.get("seed", 0))
                ranking = [n for n, _ in layer_sensitivity(fp32 / "model.onnx", cal)]
            nxt = next((n for n in ranking if n not in excluded), None)
            if nxt is None:
                raise AccuracyBudgetError("every quantized layer is already kept in float and the budget is still not met")
            excluded.append(nxt)
        final = api.export(src, target, out_dir=out_dir, name=name, calib=calib, exclude=excluded, **export_kwargs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    be = {"backend": "onnxruntime"} if target == "tensorrt" else {}
    with load(final, **be) as det:
        result = compare([("source", ref), (final.name, det)], dataset, bootstrap=bootstrap, progress=progress)
    c = result.comparisons[0]
    write_validation(final, {
        "dataset": result.dataset, "settings": result.settings,
        "source": {"map": result.runs[0].metrics.map}, "bundle": {"map": result.runs[1].metrics.map},
        "delta_map": c.delta_map, "ci95": [c.ci["low"], c.ci["high"]], "parity": c.parity,
        "gate": {"max_map_drop": max_map_drop, "passed": True},
        "accuracy_control": {"kept_in_float": excluded, "steps": history},
        "measured_with": "onnxruntime (CPU)" if target == "tensorrt" else target,
    })
    ref.close()
    return final
