"""Tracking accuracy of the default detector's CPU bundles against its PyTorch source: every
model's detections go through the same tracker on moving-shapes MOTChallenge sequences, and
``compare --task track`` reports the HOTA, MOTA and IDF1 differences (paired bootstrap) and
the share of frames with identical track sets.

    python benchmarks/tracking_cpu.py [--sequences 4] [--frames 80] [--tracker bytetrack] [--out benchmarks/results]

Bundles: onnxruntime and openvino, FP32 and INT8 (calibrated on 64 images of the shapes
training split, never the frames measured). Writes ``tracking-<date>.json`` and
``tracking-<date>.md`` (the tables as printed, with the machine and its ISA). Issue 19's
goals: FP32 HOTA difference 0.00 and identical track sets on >= 99.9% of frames; INT8 loses
at most 1 HOTA point.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from pathlib import Path

from edgecv.cpu import machine
from edgecv.data import shapes
from edgecv.data.moving_shapes import write_mot
from edgecv.export import default_source, export
from edgecv.pipeline import open_model
from edgecv.track_eval import compare, compare_headline, compare_table, load_mot, metrics_table, per_class_table

BUNDLES = [("onnxruntime", "fp32"), ("openvino", "fp32"), ("onnxruntime", "int8"), ("openvino", "int8")]


def goals(result) -> list[str]:
    """Each candidate against issue 19's goals, one line each."""
    lines = []
    for c in result.comparisons:
        share = c.parity["identical_share"]
        if "int8" in c.name:
            ok = -c.deltas["hota"] * 100 <= 1.0
            goal = "INT8: loses at most 1 HOTA point"
        else:
            ok = round(c.deltas["hota"] * 100, 2) == 0 and share >= 0.999
            goal = "FP32: HOTA difference 0.00 and identical track sets on >= 99.9% of frames"
        lines.append(
            f"{c.name}: Δ HOTA {c.deltas['hota'] * 100:+.2f}, identical frames {share * 100:.2f}% — "
            f"{'meets' if ok else 'MISSES'} the goal ({goal})"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--frames", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tracker", default="bytetrack")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--calib", type=int, default=64, help="calibration images of the INT8 bundles (shapes train split)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--work", default="build/bench-tracking")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(args.work)
    write_mot(work / "mot", sequences=args.sequences, frames=args.frames, seed=args.seed)
    dataset = load_mot(work / "mot")
    calib_dir, _ = shapes.write_coco(work / "calib", "train", args.calib)
    src = default_source()
    bundles = [
        export(
            src,
            target,
            precision=precision,
            out_dir=work / "bundles",
            name=f"edgecv-tiny-{target}-{precision}",
            calib=str(calib_dir) if precision == "int8" else None,
            progress=say,
        )
        for target, precision in BUNDLES
    ]
    models = [("edgecv-tiny (torch)", open_model(src))] + [(b.name, open_model(b)) for b in bundles]
    try:
        result = compare(models, dataset, tracker=args.tracker, bootstrap=args.bootstrap, progress=False, say=say)
    finally:
        for _, d in models:
            d.close()
    headline = compare_headline(result, dataset, args.bootstrap, 0)
    tables = f"{headline}\n{compare_table(result)}\n\n{metrics_table(result.runs)}\n\n{per_class_table(result.runs)}"
    verdicts = goals(result)
    m = machine()

    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"compare": result.to_dict(), "machine": m, "goals": verdicts, "args": vars(args)}
    (out / f"tracking-{stamp}.json").write_text(json.dumps(record, indent=2, default=float))
    (out / f"tracking-{stamp}.md").write_text(
        f"# Tracking accuracy of the CPU bundles, {stamp}\n\n"
        f"edgecv-tiny and its bundles, each through the {args.tracker} tracker, on {dataset.describe()} of "
        f"moving shapes (edgecv.data.moving_shapes, seed {args.seed}); INT8 calibrated on {args.calib} "
        f"shapes training images. {m['cpu']}, {m['cores']} cores, ISA {' '.join(m['isa']) or 'unknown'}, "
        f"Python {m['python']}, {', '.join(f'{k} {v}' for k, v in m['versions'].items())}.\n\n"
        f"```\n{tables}\n```\n\n## Against issue 19's goals\n\n" + "".join(f"- {v}\n" for v in verdicts) + "\n"
        "ms/frame: the median time from one tracked frame to the next in the stream pipeline (decode, "
        "inference and tracking overlapped), on a shared machine: compare within this run only.\n"
    )
    print(tables, "", *verdicts, sep="\n")


if __name__ == "__main__":
    main()
