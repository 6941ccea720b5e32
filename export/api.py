"""``export()``: source model -> bundle for one target; ``reference()``: the same
graph run eagerly in PyTorch, the baseline every bundle is compared with."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import logging
import os
import platform
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .. import __version__, targets, tasks
from ..bundle import SCHEMA_VERSION, commit, staging
from ..errors import EdgecvError, ExportError
from ..targets import PRECISIONS
from . import graph as G
from .sources import Source, load_source, probe_output_shape, with_classes
from .spec import InputSpec, NmsSpec, OutputSpec  # noqa: F401

log = logging.getLogger("edgecv.export")

TARGETS = targets.export_keys()


def _versions(*names: str) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out


def _imgsz(value: int | Sequence[int] | None, src: Source) -> tuple[int, int]:
    task = tasks.get(src.task)
    if value is None:
        value = src.imgsz or task.default_size
    if isinstance(value, int):
        value = (value, value)
    h, w = (int(v) for v in value)
    fixed = src.fixed_imgsz
    if fixed is not None and (h, w) != fixed:
        why = "its declared input" if src.kind == "onnx" else "traced at that size, its metadata says"
        raise ExportError(
            f"{src.kind} model '{src.name}' takes {fixed[0]}x{fixed[1]} inputs only ({why}), not {h}x{w}: leave "
            f"out --imgsz (Python: imgsz=None) to export at {fixed[0]}x{fixed[1]}, or export the model again at "
            f"{h}x{w} or with a dynamic input size"
        )
    problem = task.check_size(h, w)
    if problem:
        raise ExportError(problem)
    return h, w


def build_manifest(
    src: Source,
    target: str,
    precision: str,
    imgsz: tuple[int, int],
    nms: NmsSpec,
    mode: str,
    dynamic_batch: bool,
    runtime: dict | None = None,
    options: dict | None = None,
    probabilities: bool = False,
    score_input: str | None = None,
) -> dict:
    """The manifest (without ``files``) of a bundle or in-memory reference model: the common
    fields, with the input placement and the output section of the source's task.
    ``score_input``: the graph input that takes the NMS score floor, when it has one."""
    from .tasks import output_tensors

    task = tasks.get(src.task)
    tensors = output_tensors(src, mode, probabilities)
    return {
        "schema_version": SCHEMA_VERSION,
        "edgecv_version": __version__,
        "task": task.name,
        "name": src.name,
        "target": target,
        "precision": precision,
        "classes": list(src.names),
        "input": {
            "name": G.INPUT_NAME,
            "shape": [-1 if dynamic_batch else 1, imgsz[0], imgsz[1], 3],
            "layout": "NHWC",
            "dtype": "uint8",
            "color": src.in_spec.color,
            **task.input_section(imgsz, src.in_spec.pad_value, src.meta),
            "normalization": {**src.in_spec.to_dict(), "in_graph": True},
        },
        "output": task.output_section(
            tensors=tensors,
            num_classes=len(src.names),
            mode=mode,
            nms={**nms.to_dict(), **({"score_input": score_input} if score_input else {})},
        ),
        "runtime": {target: runtime or {}},
        "provenance": {
            "source": {
                "kind": src.kind,
                "path": os.path.basename(src.path) if src.path else None,
                "sha256": src.sha256,
                "output_spec": src.out_spec.to_dict() if task.name == "detect" else {"num_classes": len(src.names)},
            },
            "versions": {
                "edgecv": __version__,
                "python": platform.python_version(),
                **_versions("numpy", "torch", "torchvision", "onnx", "onnxslim"),
            },
            "options": options or {},
            "opset": G.OPSET,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": {"machine": platform.machine(), "system": platform.system()},
        },
        "validation": None,
    }


def _graph(
    src: Source, imgsz: tuple[int, int], nms: NmsSpec, mode: str, probabilities: bool = False, score_input: bool = True
) -> Any:
    from .tasks import task_graph

    return task_graph(
        src, src.module, imgsz, nms, mode, probabilities, lambda: probe_output_shape(src, imgsz), score_input
    )


def _score_input(graph: Any) -> str | None:
    """The name of the graph's score-floor input, if it takes one."""
    return G.SCORE_INPUT if G.SCORE_INPUT in G.extra_inputs(graph) else None


def _prepare(model: Any, imgsz: Any, conf: float, iou: float, max_det: int, class_aware: bool, **kw: Any):
    crop_resize = kw.pop("crop_resize", None)
    src = model if isinstance(model, Source) else load_source(model, **kw)
    size = _imgsz(imgsz, src)
    if crop_resize is not None:
        if tasks.get(src.task).placement != "crop":
            raise ExportError(
                "crop_resize (--crop-resize) sets a classifier's resize before its centre crop; this model's task is "
                f"{src.task}"
            )
        if not max(size) <= int(crop_resize) <= 16384:
            raise ExportError(f"crop_resize {crop_resize} must be at least the input's longer side ({max(size)})")
        src = dataclasses.replace(src, meta={**src.meta, "crop_resize": int(crop_resize)})
    tv = src.meta.get("torchvision")
    if tv is not None and getattr(src.module, "imgsz", None) != size:  # anchors are constants of the input size
        from .torchvision_models import raw_module

        src = dataclasses.replace(src, module=raw_module(tv, size))
    nms = NmsSpec(conf, iou, max_det, class_aware)
    src = with_classes(src, lambda: probe_output_shape(src, size))  # a classifier's or segmenter's class count
    return src, size, nms


def reference(
    model: Any = None,
    *,
    imgsz: int | Sequence[int] | None = None,
    conf: float = 0.001,
    iou: float = 0.5,
    max_det: int = 100,
    class_aware: bool = True,
    mode: str = "nms",
    **kwargs: Any,
):
    """The source model as a ``torch`` backend detector: the graph that :func:`export` writes,
    run eagerly in PyTorch. Arguments as for :func:`export`; detector options (``conf`` of
    results aside) go in ``detector_options``."""
    from ..runtimes.registry import get_backend

    det_opts = kwargs.pop("detector_options", {})
    probabilities = bool(kwargs.pop("probabilities", False))
    src, size, nms = _prepare(model, imgsz, conf, iou, max_det, class_aware, **kwargs)
    if src.module is None:
        raise ExportError("the torch reference runs PyTorch sources only; an ONNX source has none")
    g = _graph(src, size, nms, mode, probabilities)
    manifest = build_manifest(
        src, "torch", "fp32", size, nms, mode, src.meta.get("batch") != 1, {}, {}, probabilities, _score_input(g)
    )
    return get_backend("torch")(manifest, None, module=g, **det_opts)


def export(
    model: Any = None,
    target: str = "onnxruntime",
    *,
    out_dir: str | os.PathLike = "build",
    name: str | None = None,
    imgsz: int | Sequence[int] | None = None,
    precision: str = "fp32",
    conf: float = 0.001,
    iou: float = 0.5,
    max_det: int = 100,
    class_aware: bool = True,
    mode: str = "nms",
    dynamic_batch: bool = True,
    progress: Callable[[str], None] | None = None,
    calib: Any = None,
    calib_size: int = 300,
    calib_method: str = "percentile",
    seed: int = 0,
    exclude: Sequence[str] = (),
    tensorrt: dict | None = None,
    probabilities: bool = False,
    int8_recipe: Any = None,
    inference_precision: str | None = None,
    **kwargs: Any,
) -> Path:
    """Export a detector, classifier or segmenter to a bundle directory for ``target``.

    Args:
        model: a source (see :func:`edgecv.export.sources.load_source`); None = edgecv-tiny.
        target: ``onnxruntime``, ``openvino`` or ``tensorrt`` (the graph TensorRT builds, its build
            settings, and the plan when TensorRT and a GPU are here).
        out_dir: parent directory; the bundle is ``out_dir/<name>``.
        name: bundle directory name (default ``<model>-<target>-<precision>``, ``<model>`` the source
            file's stem; for a module in memory, its class name, or its checkpoint's stem for an
            Ultralytics ``YOLO`` object loaded from a file).
        imgsz: input size, int or (H, W), multiples of 32 (default: the model's: a checkpoint's
            training size, an ONNX input's fixed size or an exported model's metadata ``imgsz``,
            a torchvision detector's transform size; else 640). A model whose input size is fixed
            (an ONNX input, a traced Ultralytics TorchScript) runs only at that size.
        precision: ``fp32``, ``fp16`` (FP16 network, FP32 I/O and post-processing), ``bf16``
            (openvino only: FP32 weights, computed in bf16 on CPUs that have it) or ``int8``
            (onnxruntime: static QDQ quantization; openvino: NNCF), which needs ``calib``.
        conf, iou, max_det, class_aware: NMS settings of the graph. ``iou``, ``max_det`` and
            ``class_aware`` are baked in. The score floor is a graph input (``score_threshold``,
            on targets whose graph takes it): the runtime feeds its own ``conf`` (default 0.25)
            there, so NMS never works on candidates the caller drops; ``conf`` here is the floor
            used for calibration and where the graph has no such input.
        mode: ``"nms"`` (fixed-size in-graph NMS outputs) or ``"raw"`` (candidates + host NMS).
        dynamic_batch: a dynamic batch dimension (else batch 1).
        progress: called with a line of text at each stage.
        calib: INT8 calibration images: a folder, a data set, or an iterable of BGR arrays.
        calib_size / calib_method / seed: how many (a seeded random subset), and how ranges are set.
        exclude: node names kept in float on top of the post-processing.
        int8_recipe: how INT8 is made (:class:`edgecv.export.quantize.Int8Recipe`, a dict of its
            fields or ``"head=int8,bias_correction=full"``); None: the default recipe.
        inference_precision: openvino: what the float parts compute in (``auto``: bf16 where the
            CPU computes it natively, else f32; ``f32``; ``bf16``), recorded in the manifest.
            None: ``auto`` for INT8 (validated at what the exporting CPU runs), ``bf16`` for
            bf16 bundles, ``f32`` otherwise.
        tensorrt: TensorRT build settings (see :data:`edgecv.runtimes.tensorrt.plans.BUILD_DEFAULTS`:
            ``max_batch``, ``opt_batch``, ``workspace_mb``, ``version_compatible``,
            ``hardware_compatibility``, ``optimization_level``) and ``build_plan`` (None: build
            the plan when TensorRT and a GPU are here; True: require it; False: never;
            ``build_engine``, its old name, still works).
        probabilities: segmenters: also output the per-pixel softmax ``probs`` [B, C, H, W]
            (the class map ``labels`` is always there).
        crop_resize (in ``kwargs``): classifiers: the shorter side before the centre crop
            (default: the input size x 256 / 224, torchvision's evaluation rule).
        **kwargs: for :func:`load_source`: ``task`` (``detect``, ``classify``, ``segment``),
            ``names``, ``out_spec``, ``in_spec``, ``trust_pickle``, ``layout``, ``box_format``,
            ``objectness``, ``apply_sigmoid``, ``arch``, ``num_classes``.

    Returns:
        The bundle directory.
    """
    say = progress or (lambda msg: log.info(msg))
    t = targets.export_target(target)
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    if precision not in t.precisions:
        why = " (bf16 is OpenVINO's CPU inference mode, its bf16 precision hint)" if precision == "bf16" else ""
        raise ExportError(f"{target} exports {', '.join(t.precisions)}, not {precision}{why}")
    if tensorrt and not t.build_settings:
        build = [k for k in targets.export_keys() if targets.get(k).build_settings]
        raise ExportError(
            f"build settings ({', '.join(tensorrt)}) apply to --target {' or '.join(build)} only, not {target}"
        )
    if precision == "int8" and calib is None:  # before any work on the source
        raise ExportError("an int8 export needs calibration images: --calib DIR (a folder or a data set)")
    from .quantize import Int8Recipe

    recipe = Int8Recipe.of(int8_recipe)  # a bad field is refused before any work on the source
    if inference_precision is not None:
        if target != "openvino":
            raise ExportError(f"inference_precision is an openvino setting; {target} bundles have none")
        if inference_precision not in ("auto", "f32", "bf16"):
            raise ExportError(f"inference_precision {inference_precision!r}: choose auto, f32 or bf16")
    builder = importlib.import_module(f".targets.{t.exporter}", __package__)
    src, size, nms = _prepare(model, imgsz, conf, iou, max_det, class_aware, **kwargs)
    name = name or f"{src.name}-{target}-{precision}"
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", name) or name.startswith("."):
        raise ExportError(f"bundle name {name!r} must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'")
    dest = Path(out_dir) / name
    from .tasks import check_options, export_options, task_graph

    say(
        f"source: {src.kind} '{src.name}' ({src.task}), {len(src.names)} {'class' if len(src.names) == 1 else 'classes'}"
        f"{f' (names: {src.names_from})' if src.names_from else ''}, input {size[0]}x{size[1]}"
        f"{' (fixed by the model)' if src.fixed_imgsz else ''}"
    )
    check_options(src, probabilities)
    if src.meta.get("batch") == 1 and dynamic_batch:
        say(f"{src.meta.get('family', src.name)} is exported for batch 1: the bundle runs one image per call")
        dynamic_batch = False
    with staging(dest) as tmp:
        # the intermediate graphs live in the staging directory: a killed export's next run
        # beside the same bundle removes them with it (a system temp folder kept them for good)
        work = tmp / ".work"
        work.mkdir()
        onnx_path = work / "graph.onnx"
        if src.module is not None and src.kind != "torchscript":
            g = _graph(src, size, nms, mode, probabilities, t.score_input)
            say(f"exporting the graph to ONNX (opset {G.OPSET}, {', '.join(g.output_names)} outputs)")
            G.export_torch(g, size, onnx_path, dynamic_batch)
        else:
            shape = probe_output_shape(src, size)
            model_onnx = src.onnx_path
            if src.kind == "onnx" and dynamic_batch and G.fixed_batch(src.onnx_path):
                say("the ONNX model has a fixed batch size: the bundle runs one image per call")
                dynamic_batch = False
            if src.kind == "torchscript":
                # A loaded ScriptModule cannot be traced as a submodule of the graph: export it
                # on its own, then join it like an ONNX source.
                say("exporting the TorchScript model to ONNX")
                model_onnx = Path(work) / "model.onnx"
                G.export_model(src.module, size, model_onnx, dynamic_batch)
            g = task_graph(src, None, size, nms, mode, probabilities, lambda: shape, t.score_input)
            say(f"joining the ONNX model with edgecv's pre/post-processing ({', '.join(g.output_names)} outputs)")
            G.export_onnx_source(model_onnx, g, size, shape, onnx_path, dynamic_batch)
        cal = None
        if precision == "int8" and calib is not None:  # without it the target's int8 step says what to pass
            from .calibration import calibration_set

            cal = calibration_set(
                calib,
                size,
                src.in_spec.color,
                src.in_spec.pad_value,
                calib_size,
                seed,
                progress=progress is not None and sys.stderr.isatty(),
                crop=src.meta.get("crop_resize", True) if tasks.get(src.task).placement == "crop" else False,
            )
            say(f"calibration: {cal.size} image{'s' * (cal.size != 1)} from {cal.source} (sha256 {cal.sha256[:12]}…)")
        say(f"building the {target} model")
        try:
            roles, runtime, record = builder.build(
                onnx_path,
                tmp,
                precision,
                calib=cal,
                calib_method=calib_method,
                exclude=tuple(exclude),
                tensorrt=tensorrt,
                progress=say,
                recipe=recipe,
                **({"inference_precision": inference_precision} if inference_precision else {}),
            )
        except EdgecvError:
            raise
        except Exception as e:
            hint = (
                f"; a tensor's values span too narrow a range for the {calib_method} calibration's histogram: "
                "export with --calib-method minmax (Python: calib_method='minmax')"
                if "Too many bins" in str(e)
                else ""
            )
            raise ExportError(f"the {target} build failed: {type(e).__name__}: {e}{hint}") from e
        options = {
            "imgsz": list(size),
            "precision": precision,
            "dynamic_batch": dynamic_batch,
            **export_options(src, mode, nms),
            **({"probabilities": True} if probabilities else {}),
        }
        manifest = build_manifest(
            src, target, precision, size, nms, mode, dynamic_batch, runtime, options, probabilities, _score_input(g)
        )
        manifest["provenance"]["versions"].update(builder.versions())
        if record:
            manifest["provenance"]["quantization"] = record
        if cal is not None:
            manifest["provenance"]["calibration"] = cal.describe()
            say(f"quantization: {record.get('method')} (calibration cache {record.get('cache')})")
            narrow = record.get("range_fallback") or []
            if narrow:
                say(
                    f"calibration: {len(narrow)} tensor(s) spanned too narrow a range for the {record.get('method')} "
                    f"histogram and were calibrated by their min and max instead: {', '.join(narrow[:5])}"
                    f"{' ...' if len(narrow) > 5 else ''}"
                )
        shutil.rmtree(work)
        commit(tmp, dest, manifest, roles)
    say(f"bundle written: {dest}")
    return dest
