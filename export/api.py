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
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import __version__
from ..bundle import SCHEMA_VERSION, commit, staging
from ..errors import EdgecvError, ExportError, UnknownTargetError
from . import graph as G
from .sources import Source, load_source, probe_output_shape
from .spec import InputSpec, NmsSpec, OutputSpec  # noqa: F401

log = logging.getLogger("edgecv.export")

TARGETS = ("onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _versions(*names: str) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out


#: what an input side must be a multiple of, by task (a detector's strides; a segmenter's
#: down- and up-sampling; a classifier pools globally)
SIZE_STEP = {"detect": 32, "segment": 8, "classify": 1}
DEFAULT_SIZE = {"detect": (640, 640), "segment": (512, 512), "classify": (224, 224)}


def _imgsz(value: int | Sequence[int] | None, src: Source) -> tuple[int, int]:
    if value is None:
        value = src.imgsz or DEFAULT_SIZE[src.task]
    if isinstance(value, int):
        value = (value, value)
    h, w = (int(v) for v in value)
    step = SIZE_STEP[src.task]
    if not (32 <= h <= 4096 and 32 <= w <= 4096) or h % step or w % step:
        what = f"multiples of {step} " if step > 1 else ""
        raise ExportError(f"image size {h}x{w} must be {what}between 32 and 4096 for a {src.task} model")
    return h, w


def build_manifest(src: Source, target: str, precision: str, imgsz: tuple[int, int], nms: NmsSpec, mode: str,
                   dynamic_batch: bool, runtime: dict | None = None, options: dict | None = None,
                   probabilities: bool = False) -> dict:
    """The manifest (without ``files``) of a bundle or in-memory reference model."""
    if src.task != "detect":
        return _task_manifest(build_manifest(dataclasses.replace(src, task="detect", module=None), target, precision,
                                             imgsz, nms, "nms", dynamic_batch, runtime, options), src, probabilities)
    masks = G.has_masks(src.module)
    names = G.output_names(mode, masks)
    return {
        "schema_version": SCHEMA_VERSION,
        "edgecv_version": __version__,
        "task": "detect",
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
            "letterbox": {"size": list(imgsz), "pad_value": src.in_spec.pad_value, "center": True, "scaleup": True},
            "normalization": {**src.in_spec.to_dict(), "in_graph": True},
        },
        "output": {
            "mode": mode,
            "tensors": {n: n for n in names},
            "box_format": "xyxy",
            "coordinates": "input_pixels",
            "nms": {**nms.to_dict(), "where": "graph" if mode == "nms" else "host"},
            "default_conf": 0.25,
            **({"masks": {"tensor": "masks", "contents": "probabilities of each kept box's mask, in its box",
                          "paste": "host", "threshold": 0.5}} if masks else {}),
        },
        "runtime": {target: runtime or {}},
        "provenance": {
            "source": {"kind": src.kind, "path": os.path.basename(src.path) if src.path else None, "sha256": src.sha256,
                       "output_spec": src.out_spec.to_dict()},
            "versions": {"edgecv": __version__, "python": platform.python_version(),
                         **_versions("numpy", "torch", "torchvision", "onnx", "onnxslim")},
            "options": options or {},
            "opset": G.OPSET,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": {"machine": platform.machine(), "system": platform.system()},
        },
        "validation": None,
    }


def _task_manifest(m: dict, src: Source, probabilities: bool) -> dict:
    """A detector's manifest made into a classifier's or segmenter's: the placement and outputs."""
    from .tasks import SegmenterGraph

    m["task"] = src.task
    inp = m["input"]
    size = inp["letterbox"]["size"]
    if src.task == "classify":
        del inp["letterbox"]
        from ..letterbox import CenterCrop

        resize = CenterCrop(size, src.meta.get("crop_resize")).resize  # default: torchvision's 256 -> 224
        inp["crop"] = {"size": list(size), "resize": resize, "center": True}
        m["output"] = {"tensors": {"probs": "probs"}, "top_k": min(5, len(src.names)),
                       "contents": {"probs": "softmax over the classes, [B, C]"}}
    else:
        names = SegmenterGraph(None, src.in_spec, tuple(size), probabilities).output_names
        m["output"] = {"tensors": {n: n for n in names}, "coordinates": "input_pixels",
                       "contents": {"labels": "argmax class id per input pixel, int32 [B, H, W]",
                                    **({"probs": "softmax per pixel, [B, C, H, W]"} if probabilities else {})}}
    m["provenance"]["source"]["output_spec"] = {"num_classes": len(src.names)}
    return m


def _graph(src: Source, imgsz: tuple[int, int], nms: NmsSpec, mode: str, probabilities: bool = False) -> Any:
    if src.task != "detect":  # its output was checked by _prepare
        from .tasks import task_graph

        return task_graph(src.task, src.module, src.in_spec, imgsz, probabilities)
    n = src.out_spec.check_shape(probe_output_shape(src, imgsz))
    return G.DetectorGraph(src.module, src.in_spec, src.out_spec, nms, n, mode).eval()


def _prepare(model: Any, imgsz: Any, conf: float, iou: float, max_det: int, class_aware: bool, **kw: Any):
    crop_resize = kw.pop("crop_resize", None)
    src = model if isinstance(model, Source) else load_source(model, **kw)
    size = _imgsz(imgsz, src)
    if crop_resize is not None:
        if src.task != "classify":
            raise ExportError("crop_resize (--crop-resize) sets a classifier's resize before its centre crop; this is a "
                              f"{src.task} model")
        if not max(size) <= int(crop_resize) <= 16384:
            raise ExportError(f"crop_resize {crop_resize} must be at least the input's longer side ({max(size)})")
        src = dataclasses.replace(src, meta={**src.meta, "crop_resize": int(crop_resize)})
    tv = src.meta.get("torchvision")
    if tv is not None and getattr(src.module, "imgsz", None) != size:  # anchors are constants of the input size
        from .torchvision_models import raw_module

        src = dataclasses.replace(src, module=raw_module(tv, size))
    nms = NmsSpec(conf, iou, max_det, class_aware)
    if src.task != "detect":  # the class count, from the output at this size
        from .sources import _names
        from .tasks import check_output

        shape = probe_output_shape(src, size)
        classes = shape[1] if isinstance(shape[1], int) else None  # None: an ONNX graph's symbolic dimension
        check_output(src.task, shape, len(src.names) if src.names else classes or 0)
        if not src.names:
            src = dataclasses.replace(src, names=_names(None, classes))
        src = dataclasses.replace(src, out_spec=OutputSpec(len(src.names)))
    return src, size, nms


def reference(model: Any = None, *, imgsz: int | Sequence[int] | None = None, conf: float = 0.001, iou: float = 0.5,
              max_det: int = 100, class_aware: bool = True, mode: str = "nms", **kwargs: Any):
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
    manifest = build_manifest(src, "torch", "fp32", size, nms, mode, src.meta.get("batch") != 1, {}, {}, probabilities)
    return get_backend("torch")(manifest, None, module=g, **det_opts)


def export(model: Any = None, target: str = "onnxruntime", *, out_dir: str | os.PathLike = "build",
           name: str | None = None, imgsz: int | Sequence[int] | None = None, precision: str = "fp32",
           conf: float = 0.001, iou: float = 0.5, max_det: int = 100, class_aware: bool = True, mode: str = "nms",
           dynamic_batch: bool = True, progress: Callable[[str], None] | None = None, calib: Any = None,
           calib_size: int = 300, calib_method: str = "percentile", seed: int = 0, exclude: Sequence[str] = (),
           tensorrt: dict | None = None, probabilities: bool = False, **kwargs: Any) -> Path:
    """Export a detector, classifier or segmenter to a bundle directory for ``target``.

    Args:
        model: a source (see :func:`edgecv.export.sources.load_source`); None = edgecv-tiny.
        target: ``onnxruntime``, ``openvino`` or ``tensorrt`` (the graph TensorRT builds, its build
            settings, and the plan when TensorRT and a GPU are here).
        out_dir: parent directory; the bundle is ``out_dir/<name>``.
        name: bundle directory name (default ``<model>-<target>-<precision>``).
        imgsz: input size, int or (H, W), multiples of 32 (default: the checkpoint's, else 640).
        precision: ``fp32``, ``fp16`` (FP16 network, FP32 I/O and post-processing), ``bf16``
            (openvino only: FP32 weights, computed in bf16 on CPUs that have it) or ``int8``
            (onnxruntime: static QDQ quantization; openvino: NNCF), which needs ``calib``.
        conf, iou, max_det, class_aware: NMS settings baked into the graph. ``conf`` is a floor:
            the runtime filters at its own ``conf`` (default 0.25) above it.
        mode: ``"nms"`` (fixed-size in-graph NMS outputs) or ``"raw"`` (candidates + host NMS).
        dynamic_batch: a dynamic batch dimension (else batch 1).
        progress: called with a line of text at each stage.
        calib: INT8 calibration images: a folder, a data set, or an iterable of BGR arrays.
        calib_size / calib_method / seed: how many (a seeded random subset), and how ranges are set.
        exclude: node names kept in float on top of the post-processing.
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
    if target not in TARGETS:
        raise UnknownTargetError(f"unknown target '{target}'; choose one of {', '.join(TARGETS)}")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and target != "openvino":
        raise ExportError(f"bf16 is OpenVINO's CPU inference mode (its bf16 precision hint); for {target} choose "
                          "fp32, fp16 or int8")
    if tensorrt and target != "tensorrt":
        raise ExportError(f"TensorRT build settings ({', '.join(tensorrt)}) apply to --target tensorrt, not {target}")
    builder = importlib.import_module(f".targets.{target}", __package__)
    src, size, nms = _prepare(model, imgsz, conf, iou, max_det, class_aware, **kwargs)
    name = name or f"{src.name}-{target}-{precision}"
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", name) or name.startswith("."):
        raise ExportError(f"bundle name {name!r} must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'")
    dest = Path(out_dir) / name
    say(f"source: {src.kind} '{src.name}'{'' if src.task == 'detect' else ' (' + src.task + ')'}, {len(src.names)} "
        f"classes, input {size[0]}x{size[1]}")
    if probabilities and src.task != "segment":
        raise ExportError("probabilities are an output of segmenters (a classifier always outputs them)")
    if src.meta.get("batch") == 1 and dynamic_batch:
        say(f"{src.meta.get('family', src.name)} is exported for batch 1: the bundle runs one image per call")
        dynamic_batch = False
    with staging(dest) as tmp, tempfile.TemporaryDirectory(prefix="edgecv-onnx-") as work:
        onnx_path = Path(work) / "graph.onnx"
        if src.module is not None and src.kind != "torchscript":
            g = _graph(src, size, nms, mode, probabilities)
            say(f"exporting the graph to ONNX (opset {G.OPSET}, {', '.join(g.output_names)} outputs)")
            G.export_torch(g, size, onnx_path, dynamic_batch)
        else:
            shape = probe_output_shape(src, size)
            n = src.out_spec.check_shape(shape) if src.task == "detect" else 0
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
            if src.task == "detect":
                g = G.DetectorGraph(None, src.in_spec, src.out_spec, nms, n, mode).eval()
            else:
                from .tasks import task_graph

                g = task_graph(src.task, None, src.in_spec, size, probabilities)
            say(f"joining the ONNX model with edgecv's pre/post-processing ({', '.join(g.output_names)} outputs)")
            G.export_onnx_source(model_onnx, g, size, shape, onnx_path, dynamic_batch)
        cal = None
        if precision == "int8" and calib is not None:  # without it the target's int8 step says what to pass
            from .calibration import calibration_set

            cal = calibration_set(calib, size, src.in_spec.color, src.in_spec.pad_value, calib_size, seed,
                                  progress=progress is not None and sys.stderr.isatty(),
                                  crop=src.meta.get("crop_resize", True) if src.task == "classify" else False)
            say(f"calibration: {cal.size} images from {cal.source} (sha256 {cal.sha256[:12]}…)")
        say(f"building the {target} model")
        try:
            roles, runtime, record = builder.build(onnx_path, tmp, precision, calib=cal, calib_method=calib_method,
                                                   exclude=tuple(exclude), tensorrt=tensorrt, progress=say)
        except EdgecvError:
            raise
        except Exception as e:
            raise ExportError(f"the {target} build failed: {type(e).__name__}: {e}") from e
        options = {"imgsz": list(size), "precision": precision, "dynamic_batch": dynamic_batch,
                   **({"mode": mode, "nms": nms.to_dict()} if src.task == "detect" else {"task": src.task}),
                   **({"probabilities": True} if probabilities else {})}
        manifest = build_manifest(src, target, precision, size, nms, mode, dynamic_batch, runtime, options,
                                  probabilities)
        manifest["provenance"]["versions"].update(builder.versions())
        if record:
            manifest["provenance"]["quantization"] = record
        if cal is not None:
            manifest["provenance"]["calibration"] = cal.describe()
            say(f"quantization: {record.get('method')} (calibration cache {record.get('cache')})")
        commit(tmp, dest, manifest, roles)
    say(f"bundle written: {dest}")
    return dest
