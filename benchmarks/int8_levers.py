"""INT8 levers, one row each: how much mAP each way of quantizing loses, on every detector that
can be trained or built here, at 320 and 640, calibrated on training images and scored on
validation images, paired against the PyTorch source with the bootstrap interval.

    python benchmarks/int8_levers.py [--models yolov8n yolo11n ssdlite edgecv-tiny] [--sizes 320 640]
        [--levers all | default,head=int8,...] [--count 300] [--calib-size 300]

Models (trained here by the repository's scripts on the shapes set; nothing downloaded):

- ``yolov8n``: Ultralytics' YOLOv8n from the packed test fixture, fine-tuned 120 steps
  (``train_ultralytics --from-weights``). The fixture itself (``yolov8n-packed``) stores its
  kernels as int8 with one scale per output channel, so per-channel INT8 weights reproduce
  them exactly and it hides every weight-quantization error: it is a row of its own, never the
  proof of a default;
- ``yolo11n``: Ultralytics' YOLO11n trained from random weights (600 steps);
- ``ssdlite``: torchvision's ``ssdlite320_mobilenet_v3_large`` trained from random weights (700 steps);
- ``edgecv-tiny``: the bundled default detector.

Beside edgecv's rows, target ``ultralytics`` gives each YOLO a row of Ultralytics' own
OpenVINO INT8 export of the same checkpoint (``YOLO.export(format="openvino", int8=True)``,
calibrated on the same training images), scored through its own predictor: the peer the
default has to beat.

Each lever changes one field of the default recipe (:class:`edgecv.export.quantize.Int8Recipe`)
or the calibration; ``default`` is the recipe as it stands. Rows are appended to
``--work/rows.jsonl`` as they finish, and a rerun skips the rows already there (``--fresh``
starts over), so a long run can be stopped and resumed. Latency is not measured here (see
``speed.py``): on a shared 2-core machine it would need the side-by-side rounds that script runs.

Writes ``int8-levers-<date>.json`` and ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import setup

from edgecv.console import table as _table
from edgecv.cpu import isa, machine
from edgecv.evaluation import evaluate
from edgecv.export import default_source, export, load_source
from edgecv.harness import compare_runs, run_dataset
from edgecv.pipeline import open_model

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "ultralytics" / "yolov8n-shapes.weights.pt"

#: lever name -> (targets it applies to, recipe fields, export options)
LEVERS: dict[str, tuple[tuple[str, ...], dict, dict]] = {
    "default": (("openvino", "onnxruntime"), {}, {}),
    "head=int8": (("openvino", "onnxruntime"), {"head": "int8"}, {}),
    "head=float": (("openvino", "onnxruntime"), {"head": "float"}, {}),
    "bias_correction=full": (("openvino",), {"bias_correction": "full"}, {}),
    "bias_correction=none": (("openvino",), {"bias_correction": "none"}, {}),
    "preset=performance": (("openvino",), {"preset": "performance"}, {}),
    "scope=nncf": (("openvino",), {"scope": "nncf"}, {}),
    "scope=joins": (("openvino",), {"scope": "joins"}, {}),
    "scope=nncf,head=int8": (("openvino",), {"scope": "nncf", "head": "int8"}, {}),
    "ranges=minmax": (("openvino",), {"ranges": "minmax"}, {}),
    "ranges=histogram": (("openvino",), {"ranges": "histogram"}, {}),
    "keep_float=3": (("openvino", "onnxruntime"), {"keep_float": 3}, {}),
    "per_channel=false": (("onnxruntime",), {"per_channel": False}, {}),
    "ops=heavy": (("onnxruntime",), {"ops": "heavy"}, {}),
    "activations=int8,reduce_range=false": (("onnxruntime",), {"activations": "int8", "reduce_range": False}, {}),
    "activations=int8": (("onnxruntime",), {"activations": "int8"}, {}),
    "reduce_range=false": (("onnxruntime",), {"reduce_range": False}, {}),
    "reduce_range=true": (("onnxruntime",), {"reduce_range": True}, {}),
    "quantizer=nncf": (("onnxruntime",), {"quantizer": "nncf"}, {}),
    "quantizer=nncf,reduce_range=false": (("onnxruntime",), {"quantizer": "nncf", "reduce_range": False}, {}),
    "quantizer=nncf,ops=heavy": (("onnxruntime",), {"quantizer": "nncf", "ops": "heavy"}, {}),
    "calib_method=minmax": (("onnxruntime",), {}, {"calib_method": "minmax"}),
    "calib_method=entropy": (("onnxruntime",), {}, {"calib_method": "entropy"}),
    "calib 64 images": (("openvino", "onnxruntime"), {}, {"calib_size": 64}),
}

TRAIN = {
    "yolov8n": [
        "-m",
        "edgecv.export.models.train_ultralytics",
        "--from-weights",
        str(FIXTURE),
        "--steps",
        "120",
        "--lr",
        "5e-4",
        "--samples",
        "2000",
    ],
    "yolo11n": ["-m", "edgecv.export.models.train_ultralytics", "--yaml", "yolo11n.yaml", "--steps", "600"],
    "ssdlite": [
        "-m",
        "edgecv.export.models.train_torchvision",
        "--family",
        "ssdlite",
        "--steps",
        "700",
        "--batch",
        "8",
        "--lr",
        "3e-3",
        "--samples",
        "3000",
    ],
}


def source(label: str, work: Path, say):
    """The source model of ``label``, trained into ``work`` the first time (see the module doc)."""
    if label == "edgecv-tiny":
        return default_source()
    if label == "yolov8n-packed":
        from edgecv.export.models.train_ultralytics import checkpoint_from_weights

        path = work / "yolov8n-packed.pt"
        if not path.is_file():
            checkpoint_from_weights(FIXTURE, path)
        return load_source(str(path), trust_pickle=True)
    path = work / f"{label}.pt"
    if not path.is_file():
        say(f"training {label} into {path} (tens of minutes on 2 cores)")
        subprocess.run([sys.executable, *TRAIN[label], "--out", str(path)], check=True)
    if label == "ssdlite":
        from edgecv.data import shapes
        from edgecv.export.models.train_torchvision import load

        return load_source(load(path, "ssdlite"), names=list(shapes.CLASSES))
    return load_source(str(path), trust_pickle=True)


def row_key(r: dict) -> tuple:
    return (r["model"], r["imgsz"], r["target"], r["lever"])


def record_row(out, done, say, cell: tuple, ref_run, run, c, computed, seconds: float) -> None:
    """Append one measured row (model, size, target, lever, recipe, options) to ``out``."""
    label, imgsz, target, lever, fields, options = cell
    row = {
        "model": label,
        "imgsz": imgsz,
        "target": target,
        "lever": lever,
        "recipe": fields,
        "options": options,
        "source_map": ref_run.metrics.map,
        "map": run.metrics.map,
        "drop": -c.delta_map * 100,
        "ci95": [-c.ci["high"] * 100, -c.ci["low"] * 100],
        "float_computed_in": computed,
        "export_s": seconds,
        "e2e_ms_p50": run.median_ms,
    }
    say(
        f"{label} @ {imgsz} {target} {lever}: drop {row['drop']:+.2f} "
        f"[{row['ci95'][0]:+.2f}, {row['ci95'][1]:+.2f}] (export {seconds:.0f} s)"
    )
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    done.add(row_key(row))


def run_cell(label, src, imgsz, target, levers, dataset, calib, args, done, out, say) -> None:
    """Every lever of one model, size and target, against the source run once."""
    todo = [lv for lv in levers if target in LEVERS[lv][0] and (label, imgsz, target, lv) not in done]
    if not todo:
        return
    with open_model(src, source_options={"imgsz": imgsz}) as ref:
        ref_run = evaluate(ref, dataset, name="source", progress=False, warmup=1)
    work = Path(args.work) / "bundles" / f"{label}-{imgsz}-{target}"
    for lever in todo:
        _, fields, options = LEVERS[lever]
        t0 = time.perf_counter()
        bundle = export(
            src,
            target,
            precision="int8",
            imgsz=imgsz,
            out_dir=work,
            name=lever.replace("=", "-").replace(",", "_").replace(" ", "-"),
            calib=calib,
            calib_size=options.get("calib_size", args.calib_size),
            calib_method=options.get("calib_method", "percentile"),
            int8_recipe=fields,
        )
        seconds = time.perf_counter() - t0
        with open_model(bundle) as det:
            run = evaluate(det, dataset, name=lever, progress=False, warmup=1)
            computed = getattr(det, "inference_precision", None)
        result = compare_runs([ref_run, run], dataset, bootstrap=args.bootstrap, progress=False)
        record_row(
            out,
            done,
            say,
            (label, imgsz, target, lever, fields, options),
            ref_run,
            run,
            result.comparisons[0],
            computed,
            seconds,
        )


#: the models Ultralytics' own exporter takes, for its row
ULTRALYTICS = ("yolov8n", "yolo11n", "yolov8n-packed")


def ultralytics_cell(label, src, imgsz, dataset, args, done, out, say) -> None:
    """Ultralytics' own OpenVINO INT8 export of the same checkpoint (its default recipe: NNCF
    MIXED, its ignored scope), calibrated on the same training images, scored with its own
    predictor on the same validation images against the same source run."""
    if label not in ULTRALYTICS or (label, imgsz, "ultralytics", "default") in done:
        return
    import speed  # the Ultralytics paths of benchmarks/speed.py

    work = Path(args.work)
    pt = work / f"{label}.pt"
    with open_model(src, source_options={"imgsz": imgsz}) as ref:
        ref_run = evaluate(ref, dataset, name="source", progress=False, warmup=1)
        names = ref.names
    t0 = time.perf_counter()
    data = speed.yolo_dataset(work / "ultralytics", args.calib_size)
    xml = speed.ultralytics_export(pt, "openvino", True, imgsz, work / "ultralytics" / label, data)
    seconds = time.perf_counter() - t0
    path = speed.UltralyticsPath(str(xml), imgsz, names, "Ultralytics OpenVINO INT8")
    run = run_dataset(path, dataset, name="ultralytics", progress=False)  # a detector without a task record
    c = compare_runs([ref_run, run], dataset, bootstrap=args.bootstrap, progress=False).comparisons[0]
    options = {"exporter": "ultralytics", "calib_size": args.calib_size}
    record_row(out, done, say, (label, imgsz, "ultralytics", "default", {}, options), ref_run, run, c, None, seconds)


def table(rows: list[dict]) -> str:
    body = [
        (
            r["model"],
            r["imgsz"],
            r["target"],
            r["lever"],
            f"{r['source_map'] * 100:.2f}",
            f"{r['map'] * 100:.2f}",
            f"{r['drop']:+.2f}",
            f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]",
            f"{r['e2e_ms_p50']:.1f}",
        )
        for r in rows
    ]
    head = ("model", "imgsz", "target", "lever", "source mAP", "INT8 mAP", "drop", "drop 95% CI", "e2e ms (eval)")
    return _table(head, body, left=4)


def summary(rows: list[dict]) -> str:
    """Per target and lever: the mean and the worst drop over the model x size cells it ran on."""
    cells: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["model"] != "yolov8n-packed":
            cells.setdefault((r["target"], r["lever"]), []).append(r["drop"])
    body = [
        (t, lv, len(d), f"{statistics.mean(d):+.2f}", f"{max(d):+.2f}")
        for (t, lv), d in sorted(cells.items(), key=lambda kv: (kv[0][0], statistics.mean(kv[1])))
    ]
    return _table(("target", "lever", "cells", "mean drop", "worst drop"), body, left=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["yolov8n", "yolo11n", "ssdlite", "edgecv-tiny"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    ap.add_argument(
        "--targets",
        nargs="+",
        default=["openvino", "onnxruntime", "ultralytics"],
        help="ultralytics: Ultralytics' own OpenVINO INT8 export of the YOLOs, one row per model and size",
    )
    ap.add_argument("--levers", default="all", help="comma-free list separated by ';', or 'all'")
    ap.add_argument("--count", type=int, default=300, help="validation images scored")
    ap.add_argument("--calib-size", type=int, default=300, help="calibration images from the training split")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--work", default="build/int8")
    ap.add_argument("--fresh", action="store_true", help="forget the rows of an earlier run")
    ap.add_argument("--report-only", action="store_true", help="write the results from the rows already measured")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    levers = list(LEVERS) if args.levers == "all" else [lv.strip() for lv in args.levers.split(";") if lv.strip()]
    unknown = [lv for lv in levers if lv not in LEVERS]
    if unknown:
        ap.error(f"unknown levers {unknown}; known: {list(LEVERS)}")
    work, dataset, calib_dir, say = setup(args.work, args.count, args.calib_size)
    rows_path = work / "rows.jsonl"
    if args.fresh:
        rows_path.unlink(missing_ok=True)
    rows = [json.loads(ln) for ln in rows_path.read_text().splitlines()] if rows_path.is_file() else []
    done = {row_key(r) for r in rows}
    if not args.report_only:
        for label in args.models:
            src = source(label, work, say)
            for imgsz in args.sizes:
                for target in args.targets:
                    if target == "ultralytics":
                        ultralytics_cell(label, src, imgsz, dataset, args, done, rows_path, say)
                        continue
                    run_cell(label, src, imgsz, target, levers, dataset, str(calib_dir), args, done, rows_path, say)
        rows = [json.loads(ln) for ln in rows_path.read_text().splitlines()]
    order = {lv: i for i, lv in enumerate(LEVERS)}
    rows.sort(key=lambda r: (r["model"], r["imgsz"], r["target"], order.get(r["lever"], 99)))
    m = machine()
    header = (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, ISA {' '.join(isa()) or 'unknown'}; "
        f"{args.count} validation images scored, {args.calib_size} training images calibrate "
        f"(unless the lever says otherwise); drop = source mAP50-95 - INT8 mAP50-95 in points, paired "
        f"bootstrap ({args.bootstrap} resamples)."
    )
    text = f"{header}\n\n```\n{table(rows)}\n```\n\nMean and worst drop per lever (yolov8n-packed left out):\n\n```\n{summary(rows)}\n```\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"int8-levers-{dt.date.today().isoformat()}"
    stem.with_suffix(".json").write_text(json.dumps({"machine": m, "rows": rows}, indent=1, default=str))
    stem.with_suffix(".md").write_text(f"# INT8 levers ({dt.date.today().isoformat()})\n\n{text}")


if __name__ == "__main__":
    main()
