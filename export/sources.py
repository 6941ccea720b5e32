"""Model sources: what the exporter accepts and how each is loaded.

- an ``nn.Module`` (Python API) with an :class:`OutputSpec`;
- an edgecv checkpoint (weights only: loaded with ``torch.load(weights_only=True)``);
- a TorchScript file;
- an ONNX file of a raw-prediction model;
- a pickled whole module, only with ``trust_pickle=True`` (unpickling runs code from the file);
- a torchvision detector's state dict, with its constructor (``arch``) and ``num_classes``;
- an Ultralytics YOLO checkpoint (a pickle: ``trust_pickle=True``; needs ``ultralytics``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..bundle import sha256_file
from ..errors import SourceError
from .models.tiny_yolo import WEIGHTS_NAME, TinyYolo
from .spec import InputSpec, OutputSpec

DEFAULT_MODEL = "edgecv-tiny"


@dataclass
class Source:
    """A loaded source model and what is known about it."""

    name: str
    kind: str  # "module", "checkpoint", "torchscript", "onnx", "pickle"
    names: tuple[str, ...]
    out_spec: OutputSpec
    in_spec: InputSpec = field(default_factory=InputSpec)
    module: nn.Module | None = None
    onnx_path: Path | None = None
    imgsz: tuple[int, int] | None = None
    sha256: str = ""
    path: str | None = None
    meta: dict = field(default_factory=dict)
    task: str = "detect"  # "detect", "classify" or "segment"
    fixed_imgsz: tuple[int, int] | None = None  # the only input size the model file runs at
    names_from: str = ""  # where the class names came from, when the user did not give them


def _names(names: Sequence[str] | None, num_classes: int | None) -> tuple[str, ...]:
    if names:
        return tuple(str(n) for n in names)
    if num_classes:
        return tuple(f"class{i}" for i in range(num_classes))
    raise SourceError("the class names are unknown: pass names=[...] (CLI: --names a,b,c or a text file, one per line)")


def _module_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(
            v.detach().cpu().contiguous().numpy().tobytes()
            if v.dtype != torch.bfloat16
            else v.float().numpy().tobytes()
        )
    return h.hexdigest()


def default_weights() -> Path:
    """Path of the default detector's weights shipped in the package."""
    return Path(str(resources.files("edgecv") / "assets" / WEIGHTS_NAME))


def from_checkpoint(ckpt: dict, path: str | None = None) -> Source:
    """Build an edgecv checkpoint (``format == "edgecv-checkpoint"``) into a Source."""
    if ckpt.get("arch") != "tiny_yolo":
        raise SourceError(f"edgecv checkpoint of unknown architecture {ckpt.get('arch')!r}")
    cfg = ckpt["config"]
    model = TinyYolo(cfg["num_classes"], cfg.get("width", 48), cfg.get("neck", 48))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise SourceError(f"checkpoint weights do not fit the architecture: {e}") from None
    model.eval()
    names = tuple(ckpt["names"])
    return Source(
        name=Path(path).stem if path else DEFAULT_MODEL,
        kind="checkpoint",
        names=names,
        out_spec=OutputSpec(len(names), "bcn", "cxcywh"),
        module=model,
        imgsz=tuple(ckpt.get("imgsz", (320, 320))),
        sha256=sha256_file(path) if path else _module_hash(model),
        path=path,
        meta={"train": ckpt.get("train", {})},
        names_from="the checkpoint",
    )


def default_source() -> Source:
    """edgecv-tiny, the bundled default detector."""
    p = default_weights()
    if not p.is_file():
        raise SourceError(
            f"the default detector's weights are missing at {p}; retrain them: python -m edgecv.export.models.train"
        )
    src = from_checkpoint(torch.load(p, map_location="cpu", weights_only=True), str(p))
    src.name = DEFAULT_MODEL
    return src


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def torchvision_source(
    model: nn.Module, name: str, kind: str, names: Sequence[str] | None, sha256: str = "", path: str | None = None
) -> Source:
    """A torchvision detector as a Source (see :mod:`edgecv.export.torchvision_models`)."""
    from . import torchvision_models as TV

    fam = TV.family(model)
    if fam is None:
        raise SourceError(
            f"torchvision {type(model).__name__} models are not supported yet; edgecv takes RetinaNet, "
            "FCOS, SSD, SSDlite, Faster R-CNN and Mask R-CNN"
        )
    c = TV.num_classes(model)
    if names and len(names) != c:
        raise SourceError(
            f"{len(names)} class name{'s' * (len(names) != 1)} for {type(model).__name__}, which has {c} class{'es' * (c != 1)}"
            + (" (torchvision's num_classes counts the background class, which edgecv drops)" if fam == "ssd" else "")
        )
    from .. import tasks

    size = TV.default_size(model, tasks.get("detect").size_step) or tasks.get("detect").default_size
    names_from = ""
    if not names:
        names = TV.coco_names(model)
        names_from = (
            "torchvision's COCO categories, as the model has COCO's 91 classes"
            if names
            else f"none in the model, numbered class0…class{c - 1}: pass --names"
        )
    meta = {"torchvision": model, "family": fam}
    if fam in ("fasterrcnn", "maskrcnn"):
        meta["batch"] = 1  # the RPN's proposals and RoI heads are exported for one image
    return Source(
        name,
        kind,
        _names(names, c),
        OutputSpec(c, "bnc", "xyxy"),
        TV.input_spec(model),
        module=TV.raw_module(model.eval(), size),
        imgsz=size,
        sha256=sha256 or _module_hash(model),
        path=path,
        meta=meta,
        names_from=names_from,
    )


def ultralytics_source(
    model: nn.Module,
    name: str,
    kind: str,
    names: Sequence[str] | None,
    ckpt: dict | None = None,
    sha256: str = "",
    path: str | None = None,
) -> Source:
    """An Ultralytics YOLO detection model as a Source (see :mod:`edgecv.export.ultralytics_models`)."""
    from . import ultralytics_models as U

    model = U.unwrap(model)
    info = U.describe(model, ckpt)
    c = len(info["names"])
    if names and len(names) != c:
        raise SourceError(
            f"{len(names)} class name{'s' * (len(names) != 1)} for an Ultralytics model with {c} class{'es' * (c != 1)}"
        )
    head = U.prepare(model)
    return Source(
        name,
        kind,
        tuple(names) if names else tuple(info["names"]),
        OutputSpec(c, "bcn", "cxcywh"),
        InputSpec(),
        module=head,
        imgsz=info["imgsz"],
        sha256=sha256 or _module_hash(head),
        path=path,
        meta={"family": "ultralytics", "ultralytics": {k: info[k] for k in ("version", "yaml")}},
        names_from="" if names else "the checkpoint",
    )


def task_source(
    model: nn.Module | None,
    task: str,
    name: str,
    kind: str,
    names: Sequence[str] | None,
    in_spec: InputSpec | None = None,
    sha256: str = "",
    path: str | None = None,
    onnx_path: Path | None = None,
    imgsz: tuple[int, int] | None = None,
) -> Source:
    """A classifier or segmenter as a Source: a torchvision one (ImageNet normalisation, its
    evaluation size) or any module / TorchScript / ONNX model that outputs logits."""
    from . import tasks as T

    if task not in ("classify", "segment"):
        raise SourceError(f"unknown task '{task}'; choose one of {', '.join(T.TASKS)}")
    meta: dict = {}
    known = T.torchvision_task(model) if model is not None else None
    if known is not None:
        if known != task:
            raise SourceError(f"torchvision's {type(model).__name__} is a model of task {known}, not {task}")
        in_spec = in_spec or T.IMAGENET
        imgsz = imgsz or T.default_size(task, model)
        meta["family"] = f"torchvision {type(model).__name__}"
    # the class count is read from the output once the input size is known (export checks it)
    nm = tuple(str(n) for n in names) if names else ()
    return Source(
        name,
        kind,
        nm,
        OutputSpec(max(1, len(nm))),
        in_spec or InputSpec(),
        module=model.eval() if model is not None else None,
        onnx_path=onnx_path,
        imgsz=imgsz,
        sha256=sha256 or (_module_hash(model) if model is not None else ""),
        path=path,
        meta=meta,
        task=task,
    )


def load_source(
    model: Any,
    *,
    names: Sequence[str] | None = None,
    out_spec: OutputSpec | None = None,
    in_spec: InputSpec | None = None,
    trust_pickle: bool = False,
    arch: str | None = None,
    num_classes: int | None = None,
    task: str | None = None,
    **spec_kw: Any,
) -> Source:
    """Load what the user handed in as a :class:`Source`.

    Args:
        model: ``"edgecv-tiny"`` / None (the default detector), an ``nn.Module``, or a path
            to a ``.pt`` / ``.pth`` (edgecv checkpoint, TorchScript or, trusted, a pickled
            module), ``.torchscript`` or ``.onnx`` file.
        names: class names (needed where the file does not carry them).
        out_spec: layout of the raw output; built from ``spec_kw`` (layout, box_format,
            objectness, apply_sigmoid) and the number of names when not given.
        in_spec: input normalisation (default: ``x / 255``, RGB).
        trust_pickle: allow unpickling a whole module, which runs code from the file.
        arch, num_classes: for a state dict of a torchvision model, its constructor (e.g.
            ``retinanet_resnet50_fpn``, ``resnet18``, ``lraspp_mobilenet_v3_large``) and
            torchvision's class count (with the background for SSD and the R-CNNs); it is loaded
            without unpickling.
        task: ``detect``, ``classify`` or ``segment``; None: torchvision classifiers and
            segmenters are recognised, everything else is a detector.

    Raises:
        SourceError: the file is missing or truncated, of an unknown kind, or a pickle without trust.
    """
    given_in_spec = in_spec  # None: the source's own (ImageNet's for torchvision classifiers and segmenters)
    in_spec = in_spec or InputSpec()

    def spec_for(n_classes: int | None, file_names: Sequence[str] | None = None) -> tuple[tuple[str, ...], OutputSpec]:
        nm = _names(names or file_names, out_spec.num_classes if out_spec else n_classes)
        return nm, out_spec or OutputSpec(len(nm), **spec_kw)

    if task not in (None, "detect", "classify", "segment"):
        raise SourceError(f"unknown task '{task}'; choose one of detect, classify, segment")
    if model is None or (isinstance(model, str) and model == DEFAULT_MODEL):
        if task not in (None, "detect"):
            raise SourceError(f"the default model edgecv-tiny is a detector, not a model of task {task}")
        return default_source()
    if isinstance(model, nn.Module) and task in (None, "classify", "segment"):
        from .tasks import torchvision_task

        task = task or torchvision_task(model)
        if task is not None and task != "detect":
            return task_source(model, task, type(model).__name__, "module", names, in_spec=given_in_spec)
    if _is_ultralytics(model):
        from .ultralytics_models import checkpoint_path

        ckpt_path = checkpoint_path(model)  # a YOLO object remembers its file: the bundle is named after it
        return ultralytics_source(model, Path(ckpt_path).stem if ckpt_path else type(model).__name__, "module", names)
    if isinstance(model, nn.Module) and _torchvision_family(model):
        return torchvision_source(model, type(model).__name__, "module", names)
    if isinstance(model, nn.Module):
        nm, spec = spec_for(None)
        return Source(
            type(model).__name__, "module", nm, spec, in_spec, module=model.eval(), sha256=_module_hash(model)
        )
    if not isinstance(model, (str, os.PathLike)):
        raise SourceError(f"a model source is an nn.Module or a file path, got {type(model).__name__}")
    path = Path(model)
    if not path.is_file():
        raise SourceError(f"model file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise SourceError(f"model file '{path}' is empty")
    digest = sha256_file(path)

    def from_export(
        kind: str,
        info: dict,
        fixed: tuple[int, int] | None,
        size: tuple[int, int] | None,
        module: nn.Module | None = None,
        onnx_path: Path | None = None,
    ) -> Source:
        """An ONNX or TorchScript file as a Source, with the names and input size its metadata gives."""
        _check_file_task(path, info["task"], task)
        file_names = None if names else info["names"]
        from_file = f"the {'ONNX' if kind == 'onnx' else 'TorchScript'} metadata" if file_names else ""
        if task in ("classify", "segment"):
            given = names or file_names
            src = task_source(module, task, path.stem, kind, given, given_in_spec, digest, str(path), onnx_path, size)
        else:
            nm, spec = spec_for(None, file_names)
            src = Source(path.stem, kind, nm, spec, in_spec, module, onnx_path, size, sha256=digest, path=str(path))
        return dataclasses.replace(src, fixed_imgsz=fixed, names_from=from_file)

    if path.suffix.lower() == ".onnx":
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf's DecodeError and friends
            raise SourceError(f"'{path}' is not a readable ONNX model (truncated or corrupt?): {e}") from None
        if len(proto.graph.input) != 1:
            raise SourceError(
                f"ONNX source '{path}' has {len(proto.graph.input)} inputs; edgecv expects one image input"
            )
        from .ultralytics_models import read_metadata

        info = read_metadata({p.key: p.value for p in proto.metadata_props})
        fixed = _declared_size(proto)
        return from_export("onnx", info, fixed, fixed or info["imgsz"], onnx_path=path)
    if path.suffix.lower() not in (".pt", ".pth", ".torchscript", ".ts"):
        raise SourceError(
            f"'{path}': unknown model file type '{path.suffix}'; edgecv takes .pt/.pth, .torchscript or .onnx"
        )
    if not zipfile.is_zipfile(path):
        raise SourceError(
            f"'{path}' is not a PyTorch file (a zip archive written by torch.save or torch.jit.save); "
            "it may be truncated"
        )
    if _is_torchscript(path):
        extra = {"config.txt": ""}  # Ultralytics' metadata (JSON: names, imgsz, task, args)
        try:
            with warnings.catch_warnings():  # torch.jit.load is deprecated, yet TorchScript files are still handed in
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
        except RuntimeError as e:
            raise SourceError(f"TorchScript file '{path}' could not be loaded: {e}") from None
        from .ultralytics_models import read_metadata

        info = read_metadata(_json_object(extra["config.txt"]))
        # a traced model runs at the size it was traced at, unless its export says it was dynamic
        fixed = info["imgsz"] if info["dynamic"] is False else None
        return from_export("torchscript", info, fixed, info["imgsz"], module=module)
    from . import ultralytics_models as U

    if U.is_checkpoint(path):
        module, ckpt = U.load_checkpoint(path, trust_pickle)
        return ultralytics_source(module, path.stem, "ultralytics", names, ckpt, digest, str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "weights_only" not in str(e) and "Unsupported global" not in str(e):
            raise SourceError(
                f"'{path}' could not be read as a PyTorch file (truncated or corrupt?): {type(e).__name__}"
            ) from None
        if not trust_pickle:
            raise SourceError(
                f"'{path}' holds pickled Python objects (a whole model, not only weights). Unpickling it runs code "
                "from the file. If you trust where it came from, pass --trust-pickle (Python: trust_pickle=True); "
                "otherwise save a state dict or a TorchScript file instead"
            ) from None
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and obj.get("format") == "edgecv-checkpoint":
        src = from_checkpoint(obj, str(path))
        if names:
            src.names = _names(names, None)
        return src
    if isinstance(obj, dict) and isinstance(obj.get("model"), nn.Module):
        obj = obj["model"]
    if arch is not None:
        from . import tasks as T
        from . import torchvision_models as TV

        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise SourceError(
                f"--arch {arch} takes a state dict (a dict of tensors); '{path}' holds an object of type {type(obj).__name__}"
            )
        if arch in T.CLASSIFIERS + T.SEGMENTERS:  # a classifier or segmenter
            if num_classes is None:
                raise SourceError(f"--arch {arch} needs --num-classes")
            module = T.build(arch, num_classes, obj)
            arch_task = T.torchvision_task(module)
            assert arch_task is not None, f"{arch} is one of torchvision's classifiers or segmenters"
            return task_source(module, arch_task, path.stem, "state_dict", names, given_in_spec, digest, str(path))
        if arch not in TV.CONSTRUCTORS:
            raise SourceError(
                f"unknown torchvision constructor '{arch}'; edgecv takes detectors "
                f"({', '.join(sorted(TV.CONSTRUCTORS))}), classifiers ({', '.join(T.CLASSIFIERS)}) and "
                f"segmenters ({', '.join(T.SEGMENTERS)})"
            )
        if num_classes is None:
            num_classes = TV.classes_in(arch, obj)
        if num_classes is None:
            raise SourceError(
                f"--arch {arch}: the state dict does not say how many classes it has; pass --num-classes "
                "(torchvision's count, with the background class for SSD and the R-CNNs)"
            )
        model = TV.build(arch, num_classes, obj)
        return torchvision_source(model, path.stem, "state_dict", names, digest, str(path))
    if isinstance(obj, nn.Module) and _torchvision_family(obj):
        return torchvision_source(obj.float(), path.stem, "pickle", names, digest, str(path))
    if isinstance(obj, nn.Module) and task is None:
        from .tasks import torchvision_task

        task = torchvision_task(obj)  # a pickled torchvision classifier or segmenter; None: a detector
    if isinstance(obj, nn.Module) and task in ("classify", "segment"):
        return task_source(obj.float().eval(), task, path.stem, "pickle", names, given_in_spec, digest, str(path))
    if isinstance(obj, nn.Module):
        nm, spec = spec_for(getattr(obj, "num_classes", None) or getattr(obj, "nc", None))
        return Source(path.stem, "pickle", nm, spec, in_spec, module=obj.float().eval(), sha256=digest, path=str(path))
    raise SourceError(
        f"'{path}' holds an object of type {type(obj).__name__}, not a model: a bare state dict needs its architecture. For a "
        "torchvision detector pass --arch (e.g. retinanet_resnet50_fpn) and --num-classes; otherwise build the "
        "nn.Module in Python and call edgecv.export.export(module, ...)"
    )


def _declared_size(proto: Any) -> tuple[int, int] | None:
    """(H, W) of an ONNX model's NCHW image input where both are fixed numbers, else None."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[2:]):
        return None
    return int(dims[2].dim_value), int(dims[3].dim_value)


def _json_object(data: bytes | str) -> dict:
    """A JSON object from a model file's metadata, or {} where there is none or it is not one."""
    try:
        obj = json.loads(data) if data else {}
    except (ValueError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _check_file_task(path: Path, file_task: str | None, task: str | None) -> None:
    """Refuse, up front, an exported Ultralytics model whose metadata names a head edgecv does not take."""
    if task in (None, "detect") and file_task in ("segment", "pose", "obb"):
        raise SourceError(
            f"'{path}' is an Ultralytics {file_task} model (its metadata says task={file_task}); edgecv takes "
            "Ultralytics detection models (task=detect)"
        )


def _is_ultralytics(obj: Any) -> bool:
    from .ultralytics_models import is_model

    return is_model(obj)


def _torchvision_family(module: nn.Module) -> str | None:
    from .torchvision_models import family

    return family(module)


def with_classes(src: Any, probe: Callable[[], tuple]) -> Any:
    """A classifier's or segmenter's source with its class count checked against the network's
    output at the export size (and class names made up where none were given); a detector's
    as it is (its output is checked by :func:`task_graph`)."""
    if src.task == "detect":
        return src
    from .spec import OutputSpec
    from .tasks import check_output

    shape = probe()
    classes = shape[1] if isinstance(shape[1], int) else None  # None: an ONNX graph's symbolic dimension
    check_output(src.task, shape, len(src.names) if src.names else classes or 0)
    if not src.names:
        src = dataclasses.replace(src, names=_names(None, classes))
    return dataclasses.replace(src, out_spec=OutputSpec(len(src.names)))


def probe_output_shape(src: Source, imgsz: tuple[int, int]) -> tuple:
    """Run the source once (or read the ONNX graph) and return its raw output shape."""
    if src.module is not None:
        x = torch.zeros((1, 3, imgsz[0], imgsz[1]))
        try:
            with torch.no_grad():
                out = src.module(x)
        except Exception as e:
            raise SourceError(
                f"the model failed on a 1x3x{imgsz[0]}x{imgsz[1]} input: {type(e).__name__}: {e}"
            ) from None
        if src.task != "detect":
            from .tasks import main_output

            out = main_output(out)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise SourceError(f"the model returned {type(out).__name__}; edgecv expects a raw prediction tensor")
        return tuple(out.shape)
    import onnx

    proto = onnx.load(str(src.onnx_path), load_external_data=False)
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)


__all__ = ["DEFAULT_MODEL", "Source", "default_source", "load_source", "probe_output_shape", "with_classes"]
