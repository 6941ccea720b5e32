"""The ``compare --report DIR`` output: a Markdown report with PNG plots (matplotlib)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import EdgecvError
from .harness import CompareResult, compare_table, metrics_table, per_class_table


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgecvError("--report draws plots with matplotlib: pip install 'edgecv[eval]'") from None
    return plt


def write_report(result: CompareResult, out_dir: str | os.PathLike, gate: list[str] | None = None) -> Path:
    """Write ``report.md``, ``compare.json`` and the plots into ``out_dir``; return the report's path."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for run in result.runs:
        m = run.metrics
        ax.plot(m.recall, m.precision50, label=f"{run.name} (AP50 {m.stats['map50'] * 100:.1f})")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        title="Precision-recall at IoU 0.5 (mean over classes)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)

    comps = result.comparisons
    fig, axes = plt.subplots(
        len(comps), 1, figsize=(7, 1.2 + 0.35 * max(len(c.per_class_delta) for c in comps) * len(comps)), squeeze=False
    )
    for ax, c in zip(axes[:, 0], comps):
        names = [k for k, _ in c.per_class_delta]
        vals = [d * 100 for _, d in c.per_class_delta]
        ax.barh(names, vals, color=["#c0392b" if v < 0 else "#2e86c1" for v in vals])
        ax.axvline(0, color="black", lw=0.8)
        ax.set(title=f"{c.name}: per-class AP50-95 difference (points)", xlabel="points")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "per_class_delta.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    hi = max(np.percentile(r.latency_ms, 99) for r in result.runs)
    bins = np.linspace(0, hi * 1.05, 40)
    for run in result.runs:
        ax.hist(
            np.clip(run.latency_ms, 0, bins[-1]), bins=bins, alpha=0.5, label=f"{run.name} (p50 {run.median_ms:.1f} ms)"
        )
    ax.set(xlabel="ms per image, end to end", ylabel="images", title="Latency over the data set")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_hist.png", dpi=110)
    plt.close(fig)

    (out / "compare.json").write_text(json.dumps(result.to_dict(), indent=2, default=float))
    ds = result.dataset
    lines = [
        "# edgecv compare",
        "",
        f"Data set **{ds['name']}** ({ds['format']}, {ds['images']} images, sha256 {ds['sha256'][:12]}…); reference "
        f"**{result.runs[0].name}**; COCO settings: score ≥ {result.settings['conf']}, up to {result.settings['max_dets']} "
        f"detections per image; {result.settings['bootstrap']} bootstrap resamples, seed {result.settings['seed']}.",
        "",
        "## Against the reference",
        "",
        "```",
        compare_table(result),
        "```",
        "",
    ]
    if gate is not None:
        lines += ["**Gate: failed**", "", *[f"- {g}" for g in gate], ""] if gate else ["**Gate: passed**", ""]
    lines += [
        "## COCO metrics (points)",
        "",
        "```",
        metrics_table(result.runs),
        "```",
        "",
        "## Per-class AP50-95 (points)",
        "",
        "```",
        per_class_table(result.runs),
        "```",
        "",
        "![precision-recall](pr_curves.png)",
        "",
        "![per-class deltas](per_class_delta.png)",
        "",
        "![latency](latency_hist.png)",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
