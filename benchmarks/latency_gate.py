"""Measure the latency gate itself on this machine: false alarms on an unchanged bundle (quiet,
and with a CPU hog on one core), detection of a real slowdown, and the time a gate run takes.

    python benchmarks/latency_gate.py [--runs 30] [--detect-runs 20] [--detect10-runs 10]

Bundles: edgecv-tiny (320) and YOLOv8n (the shapes-trained fixture) at 640, both openvino FP32;
for detection, the same YOLOv8n at 704 (1.21x the work of 640) and 672 (1.10x). Every gate is
run as a user runs it (defaults of :func:`edgecv.latency.compare_latency` and
:func:`edgecv.latency.check_baseline`, limit 10%). Cells are written to
``benchmarks/results/latency-gate-<date>.json`` as they finish, and the tables to ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecv import latency as L  # noqa: E402
from edgecv.bench import bench  # noqa: E402
from edgecv.cpu import machine  # noqa: E402

LIMIT = 0.10


def say(m: str) -> None:
    print(m, file=sys.stderr, flush=True)


def bundles(work: Path) -> dict[str, Path]:
    from edgecv.export import export

    out = {}
    specs = {"tiny": (None, 320), "y8-640": ("y8", 640), "y8-704": ("y8", 704), "y8-672": ("y8", 672)}
    pt = work / "yolov8n-shapes.pt"
    if not pt.is_file():
        from edgecv.export.models.train_ultralytics import checkpoint_from_weights

        checkpoint_from_weights(ROOT / "tests" / "fixtures" / "ultralytics" / "yolov8n-shapes.weights.pt", pt)
    for name, (src, size) in specs.items():
        path = work / name
        if not (path / "edgecv.json").is_file():
            say(f"exporting {name}")
            export(str(pt) if src else None, "openvino", out_dir=work, name=name, imgsz=size, trust_pickle=bool(src))
        out[name] = path
    return out


class Hog:
    """A busy loop pinned to the last CPU, bounded in time, stopped by its pid."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> Hog:
        cpu = max(os.sched_getaffinity(0))
        code = (
            f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\nend = time.time() + {self.seconds}\n"
            "while time.time() < end:\n    pass\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def cell(label: str, runs: int, gate) -> dict:
    counts = {"ok": 0, "regression": 0, "inconclusive": 0}
    ratios, times, reasons = [], [], {}
    for i in range(runs):
        t0 = time.perf_counter()
        r = gate(i)
        times.append(time.perf_counter() - t0)
        v = r.verdict
        counts[v.verdict] += 1
        ratios.append([v.ratio, v.low, v.high])
        if v.verdict == "inconclusive":
            key = v.reason.split(":")[0].split("(")[0].strip()
            reasons[key] = reasons.get(key, 0) + 1
        say(f"{label} {i + 1}/{runs}: {v.summary()} ({times[-1]:.1f} s)")
    return {
        "label": label,
        "runs": runs,
        "counts": counts,
        "ratios": ratios,
        "seconds": times,
        "inconclusive_reasons": reasons,
    }


def table(cells: list[dict]) -> str:
    head = (
        f"{'case':<44} {'runs':>4} {'ok':>4} {'regression':>10} {'inconclusive':>12}  {'median change':>13}  "
        f"{'median s/run':>12}"
    )
    lines = [head, "-" * len(head)]
    for c in cells:
        n = c["counts"]
        lines.append(
            f"{c['label']:<44} {c['runs']:>4} {n['ok']:>4} {n['regression']:>10} {n['inconclusive']:>12}  "
            f"{(np.median([r[0] for r in c['ratios']]) - 1) * 100:>+12.1f}%  {np.median(c['seconds']):>12.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="gate runs per false-alarm case (default 30)")
    ap.add_argument("--detect-runs", type=int, default=20, help="gate runs per 20%% detection case (default 20)")
    ap.add_argument("--detect10-runs", type=int, default=10, help="gate runs per 10%% detection case (default 10)")
    ap.add_argument("--work", default=str(ROOT / "build" / "bench-gate"))
    ap.add_argument("--only", default=None, help="comma-separated case prefixes to run")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/latency-gate-<date>.json)")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    b = bundles(work)
    date = time.strftime("%Y-%m-%d")
    out_json = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"latency-gate-{date}.json"
    data = json.loads(out_json.read_text()) if out_json.is_file() else {"cells": {}}
    data["machine"] = machine()
    data["work"] = str(work)

    def save() -> None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(data, indent=2))

    # what `bench --seconds 5` takes today, for the time goal
    if "bench5" not in data:
        t0 = time.perf_counter()
        bench([str(b["y8-640"])], seconds=5.0)
        t1 = time.perf_counter()
        bench([str(b["tiny"])], seconds=5.0)
        data["bench5"] = {"y8-640": t1 - t0, "tiny": time.perf_counter() - t1}
        save()

    def base_for(name: str) -> Path:
        p = work / f"baseline-{name}.json"
        if not p.is_file():
            try:
                L.record_baseline(str(b[name]), p, say=say)
                data.setdefault("baselines", {})[name] = {"refused": None}
            except L.NoisyBaseline as e:
                say(f"refused, recording again with --force: {e}")
                L.record_baseline(str(b[name]), p, force=True, say=say)
                data.setdefault("baselines", {})[name] = {"refused": str(e)}
            data["baselines"][name]["stats"] = json.loads(p.read_text())["stats"]
            save()
        return p

    def paired(old: str, new: str):
        return lambda i: L.compare_latency(str(b[old]), str(b[new]), LIMIT, seed=i)

    def stored(base: str, new: str):
        p = base_for(base)
        return lambda i: L.check_baseline(str(b[new]), p, LIMIT, seed=1000 + i)

    cases = [
        ("false/y8-640/paired/quiet", a.runs, paired("y8-640", "y8-640"), False),
        ("false/y8-640/baseline/quiet", a.runs, stored("y8-640", "y8-640"), False),
        ("detect20/y8-704/paired", a.detect_runs, paired("y8-640", "y8-704"), False),
        ("detect20/y8-704/baseline", a.detect_runs, stored("y8-640", "y8-704"), False),
        ("false/tiny/paired/quiet", a.runs, paired("tiny", "tiny"), False),
        ("false/tiny/baseline/quiet", a.runs, stored("tiny", "tiny"), False),
        ("false/y8-640/paired/hog", a.runs, paired("y8-640", "y8-640"), True),
        ("false/y8-640/baseline/hog", a.runs, stored("y8-640", "y8-640"), True),
        ("false/tiny/paired/hog", a.runs, paired("tiny", "tiny"), True),
        ("false/tiny/baseline/hog", a.runs, stored("tiny", "tiny"), True),
        ("detect10/y8-672/paired", a.detect10_runs, paired("y8-640", "y8-672"), False),
        ("detect10/y8-672/baseline", a.detect10_runs, stored("y8-640", "y8-672"), False),
    ]
    only = a.only.split(",") if a.only else None
    for label, runs, gate, hog in cases:
        if label in data["cells"] or (only and not any(label.startswith(o) for o in only)):
            continue
        say(f"--- {label}")
        if hog:
            with Hog(seconds=runs * 40):
                data["cells"][label] = cell(label, runs, gate)
        else:
            data["cells"][label] = cell(label, runs, gate)
        save()
    write_md(data, out_json.with_suffix(".md"))


def write_md(data: dict, path: Path) -> None:
    cells = data["cells"]
    false = [c for k, c in cells.items() if k.startswith("false/")]
    det = [c for k, c in cells.items() if k.startswith("detect")]
    m = data["machine"]
    lines = [
        f"# Latency gate on {m['cpu']}, {m['cores']} cores, ISA {' '.join(m.get('isa', [])) or 'baseline x86'}",
        "",
        f"versions: {m['versions']}; limit {LIMIT * 100:.0f}%; bundles openvino FP32",
        "",
        "False alarms (unchanged bundle; a regression verdict is a false alarm):",
        "",
        "```",
        table(false),
        "```",
        "",
        "Detection (YOLOv8n at 704 = 1.21x and 672 = 1.10x the work of 640, against 640):",
        "",
        "```",
        table(det),
        "```",
        "",
    ]
    if "bench5" in data:
        lines += [
            f"`bench --seconds 5`, load included: {data['bench5']['y8-640']:.1f} s (YOLOv8n 640), "
            f"{data['bench5']['tiny']:.1f} s (edgecv-tiny)",
            "",
        ]
    for p in sorted(Path(data.get("work", "")).glob("baseline-*.json")) if data.get("work") else []:
        name = p.stem.removeprefix("baseline-")
        data.setdefault("baselines", {}).setdefault(name, {"refused": None})["stats"] = json.loads(p.read_text())[
            "stats"
        ]
    for name, info in data.get("baselines", {}).items():
        st = info["stats"]
        lines.append(
            f"baseline {name}: {st['median_ratio']:.3f} x reference, ±{st['half_width'] * 100:.1f}% within, "
            f"runs {', '.join(f'{r:.3f}' for r in st['run_medians'])} ({st['occasion_sd'] * 100:.1f}% apart)"
            + (f"; refused at first: {info['refused']}" if info.get("refused") else "")
        )
    reasons = {k: c["inconclusive_reasons"] for k, c in cells.items() if c["inconclusive_reasons"]}
    if reasons:
        lines += ["", "Why inconclusive:", ""] + [f"- {k}: {v}" for k, v in reasons.items()]
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
