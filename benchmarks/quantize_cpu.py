"""FP32, FP16, BF16 and INT8 bundles of two detectors at 320 and 640 pixels, side by side:
COCO mAP50-95 on the shapes validation split, drop against the FP32 source (paired bootstrap
interval), and median latency with speed-ups against FP32 and BF16 of the same backend.

    python benchmarks/quantize_cpu.py [--count 200] [--calib-size 128] [--rounds 60]

Models: edgecv-tiny (the bundled default detector) and a YOLOv8n-sized single-stage detector
(the same architecture at width 96: 2.4 M parameters, 9.0 GFLOPs at 640, against YOLOv8n's 3.2 M
and 8.7). Its weights are not in the repository (9.6 MB): the first run trains them with
``python -m edgecv.export.models.train`` (about 25 minutes on 2 cores) into ``--work``.

INT8 bundles are calibrated on the training split, never on the images they are measured on.
Latency: every bundle of one model and size is loaded at once and they take turns, image by
image in a shuffled order per round, so the machine's noise falls on all of them alike; the
figures are medians and the speed-ups ratios of medians from the same run.

Writes ``quantize-bench-<date>.json`` and ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import setup

from edgecv.console import table as _table
from edgecv.cpu import machine
from edgecv.evaluation import compare
from edgecv.export import default_source, export, load_source
from edgecv.images import read_image
from edgecv.pipeline import open_model

VARIANTS = [
    ("onnxruntime", "fp32"),
    ("onnxruntime", "fp16"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "fp16"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
]
V8N_SIZED = ["--width", "96", "--neck", "96", "--steps", "400", "--batch", "16", "--samples", "6400", "--lr", "3e-3"]


def yolov8n_sized(work: Path, say) -> Path:
    path = work / "yolov8n-sized.pt"
    if not path.is_file():
        say(f"training the YOLOv8n-sized detector into {path} (about 25 minutes on 2 cores)")
        subprocess.run([sys.executable, "-m", "edgecv.export.models.train", *V8N_SIZED, "--out", str(path)], check=True)
    return path


def side_by_side(dets: dict, images: list, rounds: int, seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Per model, the infer and end-to-end ms of ``rounds`` calls, the models taking turns."""
    rng = random.Random(seed)
    out = {k: {"infer": [], "e2e": []} for k in dets}
    for det in dets.values():  # warm-up
        for img in images[:5]:
            det(img)
    keys = list(dets)
    for r in range(rounds):
        rng.shuffle(keys)
        img = images[r % len(images)]
        for k in keys:
            t0 = time.perf_counter()
            dets[k](img)
            out[k]["e2e"].append((time.perf_counter() - t0) * 1000)
            out[k]["infer"].append(dets[k].last_timing["infer"] * 1000)
    return out


def run_one(label: str, src, imgsz: int, dataset, calib: str, args, say) -> list[dict]:
    work = Path(args.work) / "bundles" / f"{label}-{imgsz}"
    bundles = {}
    for target, precision in VARIANTS:
        say(f"{label} @ {imgsz}: exporting {target} {precision}")
        bundles[(target, precision)] = export(
            src,
            target,
            precision=precision,
            imgsz=imgsz,
            out_dir=work,
            calib=calib if precision == "int8" else None,
            calib_size=args.calib_size,
        )
    say(f"{label} @ {imgsz}: COCO mAP of the source and {len(bundles)} bundles on {len(dataset)} images")
    ref = open_model(src, source_options={"imgsz": imgsz})
    models = [("source", ref)] + [(f"{t} {p}", open_model(b)) for (t, p), b in bundles.items()]
    result = compare(models, dataset, bootstrap=args.bootstrap, progress=False, say=say)
    effective = {name: getattr(det, "inference_precision", None) for name, det in models}
    for _, det in models:
        det.close()

    say(f"{label} @ {imgsz}: latency, {args.rounds} rounds side by side")
    images = [read_image(dataset.image_path(i)) for i in dataset.coco["images"][:16]]
    dets = {f"{t} {p}": open_model(b) for (t, p), b in bundles.items()}
    times = side_by_side(dets, images, args.rounds)
    for d in dets.values():
        d.close()

    rows = []
    runs = {r.name: r for r in result.runs}
    deltas = {c.name: c for c in result.comparisons}
    for target, precision in VARIANTS:
        key = f"{target} {precision}"
        c = deltas[key]
        p50 = {s: statistics.median(times[key][s]) for s in ("infer", "e2e")}
        rows.append(
            {
                "model": label,
                "imgsz": imgsz,
                "target": target,
                "precision": precision,
                "computed_in": effective[key] or precision,
                "map": runs[key].metrics.map,
                "source_map": runs["source"].metrics.map,
                "drop": -c.delta_map * 100,
                "ci95": [-c.ci["high"] * 100, -c.ci["low"] * 100],
                "infer_p50": p50["infer"],
                "e2e_p50": p50["e2e"],
                "bundle_mb": sum(f.stat().st_size for f in bundles[(target, precision)].iterdir()) / 1e6,
            }
        )
    for r in rows:
        same = {x["precision"]: x for x in rows if x["target"] == r["target"]}
        r["speedup_vs_fp32"] = same["fp32"]["infer_p50"] / r["infer_p50"]
        r["e2e_speedup_vs_fp32"] = same["fp32"]["e2e_p50"] / r["e2e_p50"]
        r["speedup_vs_bf16"] = same["bf16"]["infer_p50"] / r["infer_p50"] if "bf16" in same else None
    return rows


def table(rows: list[dict]) -> str:
    out = []
    for r in rows:
        prec = r["precision"]
        if prec == "bf16" and r["computed_in"] != "bf16":  # the CPU plugin fell back: say so in the table
            prec = f"bf16 (ran {r['computed_in']})"
        out.append(
            (
                r["model"],
                r["imgsz"],
                r["target"],
                prec,
                f"{r['map'] * 100:.2f}",
                f"{r['drop']:+.2f}",
                f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]",
                f"{r['infer_p50']:.2f}",
                f"{r['e2e_p50']:.2f}",
                f"{r['speedup_vs_fp32']:.2f}x",
                f"{r['speedup_vs_bf16']:.2f}x" if r["speedup_vs_bf16"] else "—",
                f"{r['e2e_speedup_vs_fp32']:.2f}x",
                f"{r['bundle_mb']:.2f}",
            )
        )
    head = (
        "model",
        "imgsz",
        "target",
        "precision",
        "mAP50-95",
        "drop",
        "drop 95% CI",
        "infer p50",
        "e2e p50",
        "infer vs fp32",
        "vs bf16",
        "e2e vs fp32",
        "MB",
    )
    return _table(head, out, left=4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200, help="validation images")
    ap.add_argument("--calib-size", type=int, default=128, help="calibration images from the training split")
    ap.add_argument("--rounds", type=int, default=60, help="latency rounds (one call per bundle each)")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--models", nargs="+", default=["edgecv-tiny", "yolov8n-sized"])
    ap.add_argument("--work", default="build/bench-quantize")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    work, dataset, calib_dir, say = setup(args.work, args.count, args.calib_size)

    rows = []
    for label in args.models:
        src = default_source() if label == "edgecv-tiny" else load_source(str(yolov8n_sized(work, say)))
        for imgsz in args.sizes:
            rows += run_one(label, src, imgsz, dataset, str(calib_dir), args, say)
    text = table(rows)
    m = machine()
    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"quantize-bench-{stamp}.json").write_text(
        json.dumps({"rows": rows, "machine": m, "settings": vars(args)}, indent=2)
    )
    (out / f"quantize-bench-{stamp}.md").write_text(
        f"# FP32 / FP16 / BF16 / INT8 side by side, {stamp}\n\n{args.count} shapes validation images, "
        f"{args.calib_size} training images for calibration, {args.rounds} latency rounds; {m['cpu']}, {m['cores']} "
        f"cores; onnxruntime {m['versions'].get('onnxruntime')}, openvino {m['versions'].get('openvino')}.\n"
        "drop: mAP50-95 points lost against the FP32 source, with its paired-bootstrap 95% interval. "
        "Latencies in ms per image (batch 1), medians; speed-ups are ratios of medians of the same run.\n\n"
        f"```\n{text}\n```\n"
    )
    print(text)


if __name__ == "__main__":
    main()
