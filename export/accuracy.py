"""Accuracy control for reduced-precision exports: measure the drop against the FP32 source
with the harness; while it exceeds the budget, keep the next most sensitive layer in float."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import AccuracyBudgetError
from .quantize import layer_sensitivity


def controllable(target: str, precision: str) -> bool:
    """Whether keeping layers in float can change the accuracy of a ``target`` bundle at ``precision``.

    INT8 everywhere, and FP16 graphs (onnxruntime, tensorrt). OpenVINO's FP16 IR only stores its
    weights in FP16 and its bf16 mode is the CPU's choice: those are validated, not controlled.
    """
    from ..targets import export_target

    return precision in export_target(target).accuracy_control


def _ranking(src: Any, target: str, first: Path, scratch: Path, calib: Any, export_kwargs: dict) -> list[str]:
    """Layers, most helpful to keep in float first, measured on the graph the target runs where
    onnxruntime can run it: the onnxruntime INT8 graph with its integer kernels, the tensorrt INT8
    graph as float arithmetic. Elsewhere (openvino's NNCF model, FP16 graphs) a QDQ graph of the
    same network serves as the proxy."""
    from .. import targets, tasks
    from ..bundle import Bundle
    from . import api
    from .calibration import calibration_set
    from .quantize import quantize_qdq

    fp32 = api.export(
        src,
        "onnxruntime",
        out_dir=scratch / "fp32",
        name="fp32",
        **{k: v for k, v in export_kwargs.items() if k != "precision"},
    )
    cal = calibration_set(
        calib,
        tuple(Bundle.open(fp32).manifest["input"]["shape"][1:3]),
        src.in_spec.color,
        src.in_spec.pad_value,
        export_kwargs.get("calib_size", 300),
        export_kwargs.get("seed", 0),
        crop=(export_kwargs.get("crop_resize") or True) if tasks.get(src.task).placement == "crop" else False,
    )
    precision = export_kwargs.get("precision", "int8")
    level = targets.export_target(target).int8_graph
    if precision == "int8" and level:
        quantized = first / "model.onnx"
    else:
        quantized, level = scratch / "proxy.onnx", "basic"
        quantize_qdq(fp32 / "model.onnx", quantized, cal)
    return [n for n, _ in layer_sensitivity(fp32 / "model.onnx", quantized, cal, level=level)]


def export_within_budget(
    src: Any,
    target: str,
    dataset,
    max_map_drop: float,
    *,
    calib: Any,
    max_steps: int = 8,
    bootstrap: int = 200,
    say: Callable[[str], None] = lambda m: None,
    progress: bool = False,
    **export_kwargs: Any,
) -> Path:
    """Export ``src`` at reduced precision so that it loses at most ``max_map_drop`` mAP50-95 points.

    Each step exports to a scratch directory and runs the harness against the FP32 source (the
    torch reference); while over budget, the next most sensitive layer is kept in float, up to
    ``max_steps`` layers. The bundle is written to ``out_dir`` only when the budget is met, with
    the figures and the layers kept in float in its manifest.

    Raises:
        AccuracyBudgetError: the budget is not met after ``max_steps`` layers.
    """
    from ..bundle import write_validation
    from ..evaluation import compare, evaluate, validation_record
    from ..runtimes import load
    from ..targets import export_target
    from . import api

    via = export_target(target).validation_backend  # where its graph runs here
    be = {"backend": via} if via != target else {}

    out_dir = Path(export_kwargs.pop("out_dir", "build"))
    name = export_kwargs.pop("name", None)
    src = (
        src
        if isinstance(src, api.Source)
        else api.load_source(
            src,
            **{
                k: export_kwargs.pop(k)
                for k in list(export_kwargs)
                if k
                in (
                    "names",
                    "out_spec",
                    "in_spec",
                    "trust_pickle",
                    "layout",
                    "box_format",
                    "objectness",
                    "apply_sigmoid",
                    "arch",
                    "num_classes",
                    "task",
                )
            },
        )
    )
    nms_keys = ("imgsz", "conf", "iou", "max_det", "class_aware", "mode", "probabilities", "crop_resize")
    ref = api.reference(src, **{k: export_kwargs[k] for k in nms_keys if k in export_kwargs})
    say(
        f"accuracy control: evaluating the FP32 source on {dataset.name} ({len(dataset)} image{'s' * (len(dataset) != 1)})"
    )
    ref_run = evaluate(ref, dataset, name="source", progress=progress)
    what = ref_run.metrics.primary_name
    excluded: list[str] = []
    ranking: list[str] | None = None
    history = []
    scratch = Path(tempfile.mkdtemp(prefix="edgecv-ac-"))
    try:
        for step in range(max_steps + 1):
            b = api.export(
                src, target, out_dir=scratch, name=f"step{step}", calib=calib, exclude=excluded, **export_kwargs
            )
            with load(b, **be) as det:
                run = evaluate(det, dataset, name=f"step {step}", progress=progress, warmup=0)
            drop = (ref_run.metrics.primary - run.metrics.primary) * 100
            history.append(
                {
                    "kept_in_float": list(excluded),
                    "metric": what,
                    "value": run.metrics.primary,
                    "drop": drop,
                    **({"map": run.metrics.primary} if what == "mAP50-95" else {}),
                }
            )
            say(
                f"accuracy control step {step}: {len(excluded)} layer(s) kept in float, {what} "
                f"{run.metrics.primary * 100:.2f} (source {ref_run.metrics.primary * 100:.2f}), drop {drop:.2f} points "
                f"(budget {max_map_drop:g})"
            )
            if drop <= max_map_drop:
                break
            if step == max_steps:
                raise AccuracyBudgetError(
                    f"{target} {export_kwargs.get('precision', 'int8')} could not be brought within {max_map_drop:g} "
                    f"{what} points: with {len(excluded)} layer(s) kept in float it still loses {drop:.2f} "
                    f"({ref_run.metrics.primary * 100:.2f} -> {run.metrics.primary * 100:.2f}). Kept in float: "
                    f"{', '.join(excluded) or 'none'}. Raise --max-map-drop, add calibration images, or export fp16",
                    history,
                )
            if ranking is None:
                say("ranking layers by how much keeping each alone in float helps")
                ranking = _ranking(src, target, b, scratch, calib, export_kwargs)
            nxt = next((n for n in ranking if n not in excluded), None)
            if nxt is None:
                raise AccuracyBudgetError(
                    "every quantized layer is already kept in float and the budget is still not met"
                )
            excluded.append(nxt)
        final = api.export(src, target, out_dir=out_dir, name=name, calib=calib, exclude=excluded, **export_kwargs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with load(final, **be) as det:
        result = compare([("source", ref), (final.name, det)], dataset, bootstrap=bootstrap, progress=progress)
        write_validation(
            final,
            validation_record(
                result, target, det, max_map_drop, True, accuracy_control={"kept_in_float": excluded, "steps": history}
            ),
        )
    ref.close()
    return final
