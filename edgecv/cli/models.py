"""What edgecv can export (``edgecv models``): per task the kinds of source it reads and the
``--arch`` constructors it knows, and which precisions each target exports.

Read from the registries, so a task, a target, a precision or a constructor added there shows
here without an edit: the tasks from :mod:`edgecv.tasks`, the targets and precisions from
:mod:`edgecv.targets`, the constructors from ``edgecv.export.torchvision_models`` (detectors, by
family) and ``edgecv.export.tasks`` (classifiers, segmenters). The source kinds are those of the
manifest's ``provenance.source.kind``, described here.
"""

from __future__ import annotations

from typing import Any

from .. import targets, tasks
from ..console import table

#: the kinds of source the exporter reads (the manifest's ``provenance.source.kind``): what each
#: is, how it is given, and the tasks it serves (None: every task)
SOURCE_KINDS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("checkpoint", "edgecv's own tiny YOLO checkpoint (.pt/.pth); 'edgecv-tiny', the default model", ("detect",)),
    (
        "ultralytics",
        "an Ultralytics YOLO .pt with a Detect head (YOLOv3, YOLOv5u, YOLOv8, YOLO11...), with --trust-pickle",
        ("detect",),
    ),
    ("state_dict", "a torchvision model's state dict: --arch (below) and --num-classes; nothing is unpickled", None),
    ("torchscript", "a TorchScript file (.torchscript, .ts, .pt)", None),
    ("onnx", "an ONNX graph (.onnx) with one image input", None),
    ("pickle", "a whole pickled nn.Module (.pt/.pth), with --trust-pickle (runs code from the file)", None),
    ("module", "an nn.Module passed to edgecv.export.export() in Python", None),
)

#: the output a task's model must give when edgecv does not know its architecture
RAW_OUTPUT = {
    "detect": "raw candidates [B, 4+C, N] or [B, N, 4+C] (--layout, --box-format, --objectness, --sigmoid)",
    "classify": "logits [B, C]",
    "segment": "per-pixel logits [B, C, h, w]",
}


def _constructors() -> dict[str, dict[str, list[str]]] | None:
    """task -> family -> torchvision constructors ``--arch`` takes; None without the exporter."""
    try:
        from ..export import tasks as task_models
        from ..export import torchvision_models
    except ImportError:  # a runtime-only install: torch is not there
        return None
    detectors: dict[str, list[str]] = {}
    for arch, family in torchvision_models.CONSTRUCTORS.items():
        detectors.setdefault(family, []).append(arch)
    return {
        "detect": detectors,
        "classify": {"torchvision": list(task_models.CLASSIFIERS)},
        "segment": {"torchvision": list(task_models.SEGMENTERS)},
    }


def catalogue() -> dict[str, Any]:
    """Everything ``edgecv models`` prints, as plain data.

    Returns:
        ``tasks``: per task its ``result`` type, ``metric``, ``default_size`` [H, W], the
        ``sources`` it reads (``kind``, ``what``), the ``raw_output`` a model of unknown
        architecture must give, and ``arch``: family -> torchvision constructors (None where the
        exporter is not installed); ``precisions``: every precision; ``targets``: per export
        target its ``precisions``, ``needs_gpu``, ``measured_on`` (the backend that checks its
        graph on a CPU), ``int8`` (``qdq``: an ONNX Q/DQ graph quantized with --calib-method;
        ``own``: the backend's own quantizer), ``accuracy_control`` and the pip ``extra``.
    """
    archs = _constructors()
    out: dict[str, Any] = {"tasks": {}, "precisions": list(targets.PRECISIONS), "targets": {}}
    for name in tasks.names():
        task = tasks.get(name)
        out["tasks"][name] = {
            "result": task.result,
            "metric": task.metric,
            "default_size": list(task.default_size),
            "sources": [
                {"kind": kind, "what": what} for kind, what, only in SOURCE_KINDS if only is None or name in only
            ],
            "raw_output": RAW_OUTPUT.get(name, ""),
            "arch": None if archs is None else archs.get(name, {}),
        }
    for key in targets.export_keys():
        t = targets.get(key)
        out["targets"][key] = {
            "precisions": list(t.precisions),
            "needs_gpu": t.needs_gpu,
            "measured_on": t.validation_backend,
            "int8": ("qdq" if t.int8_graph else "own") if "int8" in t.precisions else None,
            "accuracy_control": list(t.accuracy_control),
            "extra": t.extra,
        }
    return out


def _wrap(items: list[str], width: int = 96, indent: int = 0) -> list[str]:
    """Comma-separated items in lines of at most ``width`` characters."""
    lines, line = [], ""
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if line and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    lines.append(line)
    return [" " * indent + ln for ln in lines]


def format_catalogue(cat: dict[str, Any]) -> str:
    """The catalogue as text: one section per task, then the targets x precisions table."""
    lines = []
    for name, t in cat["tasks"].items():
        h, w = t["default_size"]
        lines.append(f"{name}: {t['result']}, metric {t['metric']}, default input {h}x{w}")
        lines.append("  sources (edgecv export MODEL --task " + name + "):")
        width = max(len(s["kind"]) for s in t["sources"])
        lines += [f"    {s['kind']:<{width}}  {s['what']}" for s in t["sources"]]
        lines.append(f"  any other model outputs {t['raw_output']}")
        if t["arch"] is None:
            lines.append(
                "  --arch: the constructors are listed where the exporter is installed: pip install 'edgecv[export]'"
            )
        else:
            lines.append("  --arch (a torchvision state dict):")
            fam_width = max((len(f) for f in t["arch"]), default=0)
            for family, names in t["arch"].items():
                wrapped = _wrap(names, indent=6 + fam_width)
                lines.append(f"    {family:<{fam_width}}  {wrapped[0].strip()}")
                lines += wrapped[1:]
        lines.append("")
    precisions = cat["precisions"]
    head = ("target", *precisions, "runs on", "checked here on", "int8 calibration", "install")
    rows = []
    for key, t in cat["targets"].items():
        int8 = {"qdq": "Q/DQ graph, --calib-method", "own": "the backend's own quantizer", None: "—"}[t["int8"]]
        rows.append(
            (
                key,
                *("yes" if p in t["precisions"] else "—" for p in precisions),
                "NVIDIA GPU" if t["needs_gpu"] else "CPU",
                t["measured_on"],
                int8,
                f"pip install 'edgecv[{t['extra']}]'",
            )
        )
    lines.append("targets x precisions (edgecv export --target T --precision P; int8 needs --calib):")
    lines += [ln.rstrip() for ln in table(head, rows, left=len(head)).splitlines()]
    return "\n".join(lines)
