"""Ultralytics YOLO detection checkpoints (YOLOv3, YOLOv5u, YOLOv8, YOLO11, ...) as edgecv sources.

An optional adapter: it needs the ``ultralytics`` package, imported only when such a model is
handed in. edgecv exports the raw head, ``[B, 4 + C, N]`` with cxcywh boxes in input pixels and
class scores after the sigmoid, and puts its own letterbox and NMS around it, so an Ultralytics
model is served and compared exactly like every other source.

An Ultralytics ``.pt`` is a pickle of the whole model: loading it runs code from the file, so it
takes ``trust_pickle`` like any other pickle. Heads with one-to-one (NMS-free) branches
(YOLOv10, YOLO26) are exported through their one-to-many branch, so edgecv's NMS applies to them too.
"""

from __future__ import annotations

import ast
import copy
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..errors import SourceError

INSTALL_HINT = "pip install ultralytics (or: pip install 'edgecv[ultralytics]')"


def require() -> Any:
    """Import ``ultralytics`` or raise a :class:`SourceError` that says how to install it."""
    try:
        import ultralytics
    except ImportError:
        raise SourceError(
            f"this is an Ultralytics YOLO model; reading it needs the ultralytics package: {INSTALL_HINT}"
        ) from None
    return ultralytics


def is_checkpoint(path: str | Path) -> bool:
    """Whether a torch zip file pickles Ultralytics classes (checked on the bytes, nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
            return pkl is not None and b"ultralytics.nn" in z.read(pkl)
    except (zipfile.BadZipFile, OSError):
        return False


def is_model(obj: Any) -> bool:
    """An Ultralytics ``YOLO`` object or one of its ``nn.Module`` models."""
    mod = type(obj).__module__
    return mod.startswith("ultralytics.") and (isinstance(obj, nn.Module) or hasattr(obj, "model"))


class RawHead(nn.Module):
    """An Ultralytics detection model that returns only its decoded head, ``[B, 4 + C, N]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y[0] if isinstance(y, (tuple, list)) else y


def _head(model: nn.Module) -> nn.Module:
    seq = getattr(model, "model", None)
    head = seq[-1] if isinstance(seq, nn.Sequential) else None
    kind = type(head).__name__ if head is not None else type(model).__name__
    if kind != "Detect":
        task = {
            "Segment": "segmentation",
            "Pose": "pose",
            "OBB": "oriented-box",
            "Classify": "classification",
            "RTDETRDecoder": "RT-DETR",
        }.get(kind, kind)
        raise SourceError(
            f"this Ultralytics model's {task} head ({kind}) is not a detection head; edgecv takes Ultralytics detection "
            "models (a Detect head: YOLOv3, YOLOv5u, YOLOv8, YOLO11)"
        )
    assert head is not None, f"{type(model).__name__} has no Detect head in its layers"
    return head


def prepare(model: nn.Module) -> RawHead:
    """A copy of an Ultralytics detection model, in FP32 and eval mode, BN folded, head in export mode."""
    model = copy.deepcopy(model).float().eval()
    # Ultralytics' fuse() and its head's export switches are plain attributes, which nn.Module
    # types as Tensor | Module
    head: Any = _head(model)
    if getattr(head, "one2one_cv2", None) is not None:
        if getattr(head, "cv2", None) is None:
            raise SourceError(
                "this Ultralytics model keeps only its NMS-free (one-to-one) head; edgecv needs the "
                "one-to-many head to apply its own NMS: export the checkpoint before fusing it"
            )
        head.end2end = False
    for p in model.parameters():
        p.requires_grad_(False)
    if hasattr(model, "fuse"):
        model = cast(Any, model).fuse(verbose=False)
    head = _head(model)
    head.export, head.format, head.dynamic = True, "onnx", False
    if hasattr(head, "xyxy"):
        head.xyxy = False
    return RawHead(model).eval()


def _imgsz(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    return None


def describe(model: nn.Module, ckpt: dict | None = None) -> dict:
    """Class names, image size and version of an Ultralytics model (and its checkpoint dict)."""
    names = getattr(model, "names", None)
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    nc = int(getattr(_head(model), "nc", 0))
    if not names or len(names) != nc:
        names = [f"class{i}" for i in range(nc)]
    args = (ckpt or {}).get("train_args") or getattr(model, "args", None) or {}
    if not isinstance(args, dict):
        args = vars(args) if hasattr(args, "__dict__") else {}
    return {
        "names": [str(n) for n in names],
        "imgsz": _imgsz(args.get("imgsz")),
        "version": (ckpt or {}).get("version"),
        "yaml": (getattr(model, "yaml", None) or {}).get("yaml_file"),
    }


def _literal(value: Any) -> Any:
    """A metadata value as written: ONNX metadata holds Python reprs (``"{0: 'person'}"``,
    ``"[320, 320]"``), TorchScript's ``config.txt`` JSON values."""
    if not isinstance(value, str) or len(value) > 1_000_000:
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(value)  # literals only: nothing from the file runs
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def read_metadata(props: Mapping[str, Any]) -> dict:
    """What an exported model's metadata says, as Ultralytics writes it (ONNX ``metadata_props``,
    TorchScript ``config.txt``): ``names`` (list or None), ``imgsz`` ((H, W) or None), ``task``
    and ``dynamic`` (whether the export took any input size; None: not said). Unreadable entries
    are None."""
    names = _literal(props.get("names"))
    if isinstance(names, dict):
        try:
            keyed = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            keyed = {}
        names = [keyed[i] for i in range(len(keyed))] if sorted(keyed) == list(range(len(keyed))) else None
    if not (isinstance(names, (list, tuple)) and names and all(isinstance(n, (str, int)) for n in names)):
        names = None
    imgsz = _literal(props.get("imgsz"))
    args = _literal(props.get("args"))
    task = props.get("task")
    return {
        "names": [str(n) for n in names] if names else None,
        "imgsz": _imgsz(imgsz),
        "task": task if isinstance(task, str) else None,
        "dynamic": bool(args["dynamic"]) if isinstance(args, dict) and args.get("dynamic") is not None else None,
    }


def checkpoint_path(obj: Any) -> str | None:
    """The checkpoint file a ``YOLO`` object (``ckpt_path``) or its model (``pt_path``) was loaded from."""
    for o in (obj, getattr(obj, "model", None)):
        p = getattr(o, "ckpt_path", None) or getattr(o, "pt_path", None)
        if isinstance(p, (str, Path)) and str(p):
            return str(p)
    return None


def load_checkpoint(path: Path, trust_pickle: bool) -> tuple[nn.Module, dict]:
    """Read an Ultralytics checkpoint: ``(model, checkpoint dict)``."""
    require()
    if not trust_pickle:
        raise SourceError(
            f"'{path}' is an Ultralytics checkpoint, which is a pickle of the whole model: loading it runs "
            "code from the file. If you trust where it came from, pass --trust-pickle (Python: "
            "trust_pickle=True)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise SourceError(
            f"'{path}' could not be read as an Ultralytics checkpoint ({type(e).__name__}: {e}); it may "
            "be truncated, or written by an ultralytics version newer than the one installed"
        ) from None
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else ckpt
    if not isinstance(model, nn.Module):
        raise SourceError(f"'{path}' holds no Ultralytics model (no 'model' or 'ema' entry)")
    return model, ckpt if isinstance(ckpt, dict) else {}


def unwrap(obj: Any) -> nn.Module:
    """The ``nn.Module`` of a ``YOLO`` object (or the module itself)."""
    model = obj if isinstance(getattr(obj, "model", None), nn.Sequential) else getattr(obj, "model", None)
    if not isinstance(model, nn.Module):
        raise SourceError(
            f"this {type(obj).__name__} holds no PyTorch model (an exported Ultralytics model?); hand in "
            "the .pt checkpoint instead"
        )
    return model


__all__ = [
    "INSTALL_HINT",
    "RawHead",
    "checkpoint_path",
    "describe",
    "is_checkpoint",
    "is_model",
    "load_checkpoint",
    "prepare",
    "read_metadata",
    "require",
    "unwrap",
]
