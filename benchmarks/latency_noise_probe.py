"""Probe the level shifts that defeat a stored latency baseline: load a bundle anew again and
again, and print each load's median per stage beside the gate's reference workload.

    python benchmarks/latency_noise_probe.py BUNDLE [--loads 15] [--calls 60] [--no-reference]

On the 2-core machine the gates were built on, a YOLOv8n at 640 (openvino FP32) moved between
about 46 and 66 ms from one load to the next, all of it in ``infer``, while the reference
moved by 5-10% (see benchmarks/results/latency-gate-*.md and the README's "Latency gates in CI").
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgecv import load  # noqa: E402
from edgecv.bench import synthetic_image  # noqa: E402
from edgecv.cpu import machine  # noqa: E402
from edgecv.latency import ReferenceWorkload  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--loads", type=int, default=15)
    ap.add_argument("--calls", type=int, default=60, help="timed calls per load (after 10 warm-up calls)")
    ap.add_argument("--no-reference", action="store_true", help="run the model alone")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores, ISA {' '.join(m['isa'])}; {a.bundle}")
    print(f"{'load':>4} {'e2e':>7} {'pre':>6} {'infer':>7} {'post':>6} {'ref':>6} {'e2e/ref':>8}")
    img = [synthetic_image()]
    for k in range(a.loads):
        det = load(a.bundle)
        ref = None if a.no_reference else ReferenceWorkload(det.key, det.threads_used)
        for _ in range(10):
            det.predict(img)
        stages: dict[str, list[float]] = {s: [] for s in ("preprocess", "infer", "postprocess")}
        e2e, refs = [], []
        for i in range(a.calls):
            t0 = time.perf_counter()
            det.predict(img)
            e2e.append((time.perf_counter() - t0) * 1000)
            for s in stages:
                stages[s].append(det.last_timing[s] * 1000)
            if ref is not None and i % 5 == 0:
                t0 = time.perf_counter()
                ref()
                refs.append((time.perf_counter() - t0) * 1000)
        med = {s: float(np.median(v)) for s, v in stages.items()}
        r = float(np.median(refs)) if refs else float("nan")
        print(
            f"{k + 1:>4} {np.median(e2e):>7.2f} {med['preprocess']:>6.2f} {med['infer']:>7.2f} "
            f"{med['postprocess']:>6.2f} {r:>6.2f} {np.median(e2e) / r:>8.2f}",
            flush=True,
        )
        det.close()


if __name__ == "__main__":
    main()
