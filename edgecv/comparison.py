"""What every task's evaluation shares: how a model is named in results, and the accuracy gate
on the primary metric (mAP50-95, top-1 or mIoU)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def model_name(spec: Any, det: Any) -> str:
    """A model's name in tables and records: the bundle directory's (with the backend where its
    graph runs on another one), or the source's with ``(torch)``."""
    if getattr(det, "bundle", None) is not None:
        if det.bundle.target != det.key:
            return f"{det.bundle.path.name} [{det.key}]"
        return det.bundle.path.name
    return f"{det.manifest['name']} (torch)"


def distinct_names(names: Sequence[str], specs: Sequence[Any]) -> list[str]:
    """``names`` with each one that repeats told apart by where its model lies: its folder and
    name (``bundles-onnx/yolov8n-onnxruntime-fp32``), or its whole path where that repeats too."""
    out = list(names)
    for level in (1, None):
        seen = [n for i, n in enumerate(out) if n in out[:i] + out[i + 1 :]]
        if not seen:
            break
        for i, (n, spec) in enumerate(zip(out, specs)):
            if n in seen and isinstance(spec, (str, os.PathLike)):
                path = Path(spec)
                out[i] = f"{path.parent.name}/{names[i]}" if level else str(path.resolve())
    return out


def comparison_record(result: Any, hidden: Sequence[str] = ()) -> dict:
    """A compare result as JSON (``compare --json``): its data set, settings, each model's figures
    and latency (less the info keys in ``hidden``), and each candidate's comparison."""
    return {
        "task": result.task,
        "dataset": result.dataset,
        "settings": result.settings,
        "models": [
            {
                "name": r.name,
                **{k: v for k, v in r.info.items() if k not in hidden},
                "metrics": r.metrics.to_dict(),
                "latency_ms": {"p50": r.median_ms, "mean": float(np.mean(r.latency_ms)) if len(r.latency_ms) else None},
            }
            for r in result.runs
        ],
        "comparisons": [c.to_dict() for c in result.comparisons],
    }


def gate_failures(runs: Sequence[Any], comparisons: Sequence[Any], max_drop: float | None) -> list[str]:
    """Messages for each candidate that loses more than ``max_drop`` points of the primary metric
    (mAP50-95, top-1 or mIoU) against the reference, ``runs[0]``."""
    if max_drop is None:
        return []
    ref = runs[0]
    what, base = ref.metrics.primary_name, ref.metrics.primary
    out = []
    for c in comparisons:
        drop = -c.delta * 100
        if drop > max_drop:
            out.append(
                f"{c.name} loses {drop:.2f} {what} points against {ref.name} ({base * 100:.2f} -> "
                f"{(base + c.delta) * 100:.2f}; 95% CI of the difference [{c.ci['low'] * 100:+.2f}, "
                f"{c.ci['high'] * 100:+.2f}]), more than the allowed {max_drop:g}"
            )
    return out


def intervals(diffs: Sequence[Sequence[float]], n: int, seed: int, level: float = 0.95) -> list[dict]:
    """The record of each candidate's bootstrap: its interval on the difference of the primary
    metric from its draws, their mean, and how they were made. With no draws (no bootstrap),
    NaN bounds."""
    alpha = (1 - level) / 2
    return [
        {
            "low": float(np.quantile(d, alpha)) if len(d) else float("nan"),
            "high": float(np.quantile(d, 1 - alpha)) if len(d) else float("nan"),
            "mean": float(np.mean(d)) if len(d) else float("nan"),
            "n": n,
            "seed": seed,
            "level": level,
        }
        for d in diffs
    ]
