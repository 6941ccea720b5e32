"""Readable lines of a manifest's sections for ``edgecv inspect``: the backend settings (TensorRT's
build settings and profile among them), the calibration and quantization records, and the
validation. Every field the manifest holds is shown; the known ones with words and units, any
other as its name and value, so a field added later still shows.
"""

from __future__ import annotations

from typing import Any

from ..console import count, points

#: labels of fields whose name alone does not read well
_LABELS = {
    "workspace_mb": "workspace (MB)",
    "opt_batch": "batch tuned for",
    "max_batch": "largest batch",
    "per_channel": "per channel",
    "ops": "quantized ops",
    "excluded_nodes": "kept in float",
    "ignored_nodes": "ignored nodes",
    "quantized_types": "quantized types",
    "subset_size": "calibration images",
    "cache": "calibration cache",
    "fp32_nodes": "fp32 nodes",
    "keep_io_types": "fp32 inputs and outputs",
    "map": "mAP50-95",
    "map50": "mAP50",
    "top1": "top-1",
    "top5": "top-5",
    "miou": "mIoU",
    "pixel_acc": "pixel acc",
    "mean_acc": "mean acc",
    "p50_ms": "p50 ms",
    "max_dets": "max detections",
    "mean_iou": "mean IoU",
    "iou": "IoU",
}
#: how many items of a long list are shown before the count of the rest
_LIST_HEAD = 6


def label(key: str) -> str:
    """A field's name in words."""
    return _LABELS.get(key, key.replace("_", " "))


def value(v: Any) -> str:
    """A field's value in words: yes/no, a list joined (a long one cut, with its length), a
    shape as a shape, a nested object as ``name value`` pairs."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "none"
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return "[" + ", ".join(map(str, v)) + "]"  # a shape or a size
        items = [value(x) for x in v]
        if len(items) > _LIST_HEAD:
            return f"{len(items)}: {', '.join(items[:_LIST_HEAD])}, … ({len(items) - _LIST_HEAD} more)"
        return ", ".join(items)
    if isinstance(v, dict):
        return ", ".join(f"{label(k)} {value(x)}" for k, x in v.items())
    return str(v)


def fields(d: dict, indent: int = 2, skip: tuple[str, ...] = ()) -> list[str]:
    """One aligned ``label  value`` line per field of ``d``."""
    keys = [k for k in d if k not in skip]
    if not keys:
        return []
    width = max(len(label(k)) for k in keys)
    return [f"{' ' * indent}{label(k):<{width}}  {value(d[k])}" for k in keys]


def runtime_lines(manifest: dict) -> list[str]:
    """The backend settings of ``runtime``: TensorRT's build settings, optimization profile and
    static check (its plans are listed apart), or another backend's session settings."""
    lines = []
    for key, settings in (manifest.get("runtime") or {}).items():
        plain = {k: v for k, v in settings.items() if not isinstance(v, dict) and k != "engines"}
        if plain:
            lines.append(f"runtime    {key}: {value(plain)}")
        if settings.get("inference_precision") == "auto":
            from ..cpu import float_precision

            lines.append(
                "float      parts computed in bf16 where the CPU computes it natively (AVX512_BF16, AMX), else f32; "
                f"on this CPU: {float_precision()} (load with inference_precision='f32' to pin f32)"
            )
        if "build" in settings:
            lines.append(f"{key} build settings (set at export; edgecv build's options override them):")
            lines += fields(settings["build"])
        for name, shapes in (settings.get("profile") or {}).items():
            lines.append(f"profile    {name}: " + "  ".join(f"{k} {value(s)}" for k, s in shapes.items()))
        check = settings.get("static_check")
        if check:
            rest = {k: v for k, v in check.items() if k not in ("versions", "errors", "warnings")}
            lines.append(
                f"checked    against TensorRT {value(check.get('versions', []))} at export: "
                f"{count(check.get('errors', 0), 'error')}, {count(check.get('warnings', 0), 'warning')}"
                + (f"; {value(rest)}" if rest else "")
            )
        for name, sub in settings.items():
            if isinstance(sub, dict) and name not in ("build", "profile", "static_check"):
                lines.append(f"{name}:")
                lines += fields(sub)
    return lines


def trust_lines(manifest: dict) -> list[str]:
    """Whether loading a tensorrt bundle needs ``--trust-plan-code``: its version-compatible plans
    (and build settings that make them) carry host code TensorRT runs. Other bundles run no code
    of their own: no line."""
    rt = (manifest.get("runtime") or {}).get("tensorrt")
    if rt is None:
        return []
    vc = [e.get("file") for e in rt.get("engines", []) if e.get("version_compatible")]
    if vc:
        return [
            f"trust      plan {value(vc)} {'is' if len(vc) == 1 else 'are'} version-compatible: TensorRT runs "
            "host code from it; loading needs --trust-plan-code (load(..., trust_plan_code=True)), only for "
            "bundles from someone you trust"
        ]
    if (rt.get("build") or {}).get("version_compatible"):
        return [
            "trust      plans built from these settings are version-compatible: loading one will need "
            "--trust-plan-code (a plan built by the load itself runs without it)"
        ]
    return ["trust      no plan runs host code: loads without --trust-plan-code"]


def quantization_lines(provenance: dict) -> list[str]:
    """The calibration set and how the graph was quantized (FP16, BF16 and INT8 bundles)."""
    lines = []
    cal = provenance.get("calibration")
    if cal:
        rest = {k: v for k, v in cal.items() if k not in ("source", "size", "sha256")}
        lines.append(
            f"calibration {count(cal.get('size', 0), 'image')} from {cal.get('source')}"
            + (f", sha256 {cal['sha256'][:16]}…" if cal.get("sha256") else "")
            + (f"; {value(rest)}" if rest else "")
        )
    q = provenance.get("quantization")
    if q:
        lines.append("quantization:")
        lines += fields(q)
    return lines


def _figure(key: str, v: Any) -> str:
    """A figure of a validation record: a time in ms, a count as a count, a fraction as points."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return value(v)
    if key.endswith("_ms"):
        return f"{v:.2f}"
    if key == "images" or isinstance(v, int):
        return str(int(v))
    return points(v)


def _parity(key: str, v: Any) -> Any:
    """A parity figure: a share as a percentage, a mean to four places (a tiny one in e-notation)."""
    if key.endswith("_share"):
        return f"{v * 100:.1f}%"
    if isinstance(v, float) and key.startswith("mean"):
        return f"{v:.1e}" if 0 < abs(v) < 1e-3 else f"{v:.4f}"
    return v


def validation_lines(validation: dict) -> list[str]:
    """The comparison with the source recorded at export: data set, settings, the figures of
    source and bundle in points, the difference with its 95% interval, parity, the gate, the
    accuracy control's steps and where it was measured."""
    v = dict(validation)
    ds = v.pop("dataset", None) or {}
    head = (
        f"validation on {ds.get('name', '?')} ({ds.get('format', '?')}, {count(ds.get('images', 0), 'image')}"
        + (f", sha256 {ds['sha256'][:16]}…" if ds.get("sha256") else "")
        + f"), measured with {v.pop('measured_with', '?')}"
    )
    date = v.pop("date", None)
    lines = [head + (f", {date}" if date else "")]
    src, bun = v.pop("source", None) or {}, v.pop("bundle", None) or {}
    keys = [*src, *(k for k in bun if k not in src)]
    if keys:
        width = max(len(label(k)) for k in keys)
        lines.append(f"  {'':<{width}}  {'source':>8}  {'bundle':>8}")
        lines += [f"  {label(k):<{width}}  {_figure(k, src.get(k)):>8}  {_figure(k, bun.get(k)):>8}" for k in keys]
    metric = v.pop("metric", None) or "mAP50-95"
    v.pop("task", None)
    rows: list[tuple[str, str]] = []
    delta = v.pop("delta_map", v.pop("delta", None))
    ci = v.pop("ci95", None)
    if delta is not None:
        interval = ""
        if ci and all(isinstance(c, (int, float)) for c in ci):
            interval = f", 95% interval [{ci[0] * 100:+.2f}, {ci[1] * 100:+.2f}]"
        rows.append((f"Δ {metric}", f"{delta * 100:+.2f} points{interval}"))
    mask = v.pop("mask_map", None)
    if mask:
        rows.append(
            ("mask mAP", f"source {_figure('map', mask.get('source'))}, bundle {_figure('map', mask.get('bundle'))}")
        )
    parity = v.pop("parity", None)
    if parity:
        rows.append(("parity", value({k: _parity(k, p) for k, p in parity.items()})))
    gate = v.pop("gate", None)
    if gate:
        limits = ", ".join(
            f"{label(k)} {g:.2f} points" if isinstance(g, (int, float)) else f"{label(k)} {value(g)}"
            for k, g in gate.items()
            if k != "passed"
        )
        rows.append(("gate", f"{'passed' if gate.get('passed') else 'failed'}: {limits}"))
    else:
        rows.append(("gate", "none"))
    ac = v.pop("accuracy_control", None)
    if ac:
        kept = ac.get("kept_in_float", [])
        rows.append(("kept in float", f"{count(len(kept), 'layer')}" + (f": {value(kept)}" if kept else "")))
        for i, step in enumerate(ac.get("steps", [])):
            rows.append(
                (
                    f"step {i}",
                    f"{count(len(step.get('kept_in_float', [])), 'layer')} in float, {step.get('metric', metric)} "
                    f"{_figure('value', step.get('value'))}, drop {step.get('drop', float('nan')):.2f} points",
                )
            )
    settings = v.pop("settings", None)
    if settings:
        rows.append(("settings", value(settings)))
    machine = v.pop("machine", None)
    if machine:
        rows.append(("machine", value({k: x for k, x in machine.items() if k != "versions"})))
        if machine.get("versions"):
            rows.append(("versions", value(machine["versions"])))
    rows += [(label(k), value(x)) for k, x in v.items()]  # any other field (inference_precision, ...)
    width = max(len(r[0]) for r in rows)
    return lines + [f"  {k:<{width}}  {text}" for k, text in rows]
