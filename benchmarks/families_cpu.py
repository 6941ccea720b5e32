"""The capability matrix: every detector family x target x precision, from a real run.

    python benchmarks/families_cpu.py [--count 100] [--fixtures tests/fixtures/torchvision]

For each family, a trained member (edgecv-tiny; the small torchvision RetinaNet, FCOS, SSD and
Mask R-CNN fixtures trained by ``edgecv.export.models.train_torchvision``, the Faster R-CNN that is
the Mask R-CNN's box branch; a YOLOv8n from Ultralytics' yaml trained by
``edgecv.export.models.train_ultralytics``) is exported to onnxruntime and
openvino at FP32 and INT8, and to the tensorrt FP32 and INT8 graphs (run here in onnxruntime).
Each bundle is compared with the PyTorch source on the shapes validation split. A cell that
cannot be filled says why: the exception's message, or the family's missing piece.

Writes ``families-<date>.json`` and ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from _common import setup

from edgecv.console import table as _table
from edgecv.cpu import machine
from edgecv.data import shapes
from edgecv.errors import EdgecvError
from edgecv.evaluation import compare
from edgecv.export import default_source, export, load_source
from edgecv.pipeline import open_model

CELLS = [
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
    ("tensorrt", "fp32"),
    ("tensorrt", "int8"),
]
#: family key -> its label in the matrix
FAMILIES = {
    "edgecv-tiny": "edgecv-tiny (YOLO-style)",
    "retinanet": "RetinaNet (torchvision)",
    "fcos": "FCOS (torchvision)",
    "ssd": "SSD (torchvision)",
    "fasterrcnn": "Faster R-CNN (torchvision)",
    "maskrcnn": "Mask R-CNN (torchvision)",
    "yolov8n": "YOLOv8n (Ultralytics)",
}


def source(key: str, fixtures: Path, names: list[str], work: Path) -> object:
    """The trained member of family ``key`` as a Source, or why there is none (a string)."""
    if key == "edgecv-tiny":
        return default_source()
    if key == "yolov8n":
        try:
            import ultralytics  # noqa: F401
        except ImportError:
            return "ultralytics is not installed (pip install ultralytics)"
        weights = fixtures.parent / "ultralytics" / "yolov8n-shapes.weights.pt"
        if not weights.is_file():
            return f"no trained fixture at tests/fixtures/ultralytics/{weights.name}"
        from edgecv.export.models.train_ultralytics import checkpoint_from_weights

        ckpt = checkpoint_from_weights(weights, work / "yolov8n-shapes.pt")  # an Ultralytics checkpoint, by YOLO.save
        return load_source(str(ckpt), trust_pickle=True)
    from edgecv.export.models.train_torchvision import load as load_fixture

    path = fixtures / f"{'maskrcnn' if key == 'fasterrcnn' else key}.pt"  # Faster R-CNN: Mask R-CNN's box branch
    if not path.is_file():
        return f"no trained fixture at tests/fixtures/torchvision/{path.name}"
    return load_source(load_fixture(path, key), names=names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100, help="validation images")
    ap.add_argument("--calib-size", type=int, default=64)
    ap.add_argument(
        "--fixtures", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "torchvision")
    )
    ap.add_argument("--work", default="build/bench-families")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument(
        "--only",
        help="comma-separated families to run (of: " + ", ".join(FAMILIES) + "); the other "
        "rows are kept from today's results file",
    )
    args = ap.parse_args()
    work, dataset, calib_dir, say = setup(args.work, args.count, args.calib_size)
    only = args.only.split(",") if args.only else list(FAMILIES)
    unknown = set(only) - set(FAMILIES)
    if unknown:
        ap.error(f"unknown families {sorted(unknown)}")
    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    earlier = out / f"families-{stamp}.json"
    kept = json.loads(earlier.read_text())["rows"] if args.only and earlier.is_file() else []

    rows = []
    for key, label in FAMILIES.items():
        if key not in only:
            rows += [r for r in kept if r["family"] == label]
            continue
        src = source(key, Path(args.fixtures), list(shapes.CLASSES), work)
        if isinstance(src, str):
            rows += [{"family": label, "target": t, "precision": p, "works": False, "why": src} for t, p in CELLS]
            continue
        say(f"{label}: source")
        ref = open_model(src, source_options={"imgsz": 320})
        for target, precision in CELLS:
            row = {"family": label, "target": target, "precision": precision}
            try:
                bundle = export(
                    src,
                    target,
                    precision=precision,
                    imgsz=320,
                    out_dir=work / "bundles",
                    name=f"{src.name}-{target}-{precision}",
                    calib=str(calib_dir),
                    calib_size=args.calib_size,
                )
                det = open_model(bundle)
                try:
                    res = compare([("source", ref), (bundle.name, det)], dataset, bootstrap=0, progress=False)
                finally:
                    det.close()
                row.update(
                    works=True,
                    source_map=res.runs[0].metrics.map,
                    map=res.runs[1].metrics.map,
                    delta=res.comparisons[0].delta_map * 100,
                    p50_ms=res.runs[1].median_ms,
                    measured_with="onnxruntime (CPU)" if target == "tensorrt" else target,
                )
                if res.runs[1].mask_metrics is not None:
                    row.update(source_mask_map=res.runs[0].mask_metrics.map, mask_map=res.runs[1].mask_metrics.map)
            except (EdgecvError, RuntimeError, ValueError) as e:
                row.update(works=False, why=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
            say(f"{label}: {target} {precision}: {'ok' if row['works'] else row['why']}")
            rows.append(row)
        ref.close()

    def mask(r: dict) -> str:
        return f"{r['source_mask_map'] * 100:.2f} / {r['mask_map'] * 100:.2f}" if "mask_map" in r else ""

    table = _table(
        (
            "family",
            "target",
            "precision",
            "works",
            "source mAP",
            "bundle mAP",
            "Δ points",
            "mask mAP src / bundle",
            "p50 ms",
            "why not",
        ),
        [
            (
                r["family"],
                r["target"] + (" [ort]" if r["target"] == "tensorrt" and r["works"] else ""),
                r["precision"],
                "yes" if r["works"] else "no",
                f"{r['source_map'] * 100:.2f}" if r["works"] else "",
                f"{r['map'] * 100:.2f}" if r["works"] else "",
                f"{r['delta']:+.2f}" if r["works"] else "",
                mask(r),
                f"{r['p50_ms']:.1f}" if r["works"] else "",
                r.get("why", ""),
            )
            for r in rows
        ],
        left=4,
    )
    m = machine()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"families-{stamp}.json").write_text(
        json.dumps({"rows": rows, "machine": m, "settings": vars(args)}, indent=2)
    )
    (out / f"families-{stamp}.md").write_text(
        f"# Capability matrix, {stamp}\n\n{args.count} shapes validation images at 320; INT8 calibrated on "
        f"{args.calib_size} training images; {m['cpu']}, {m['cores']} cores. tensorrt [ort]: the graph TensorRT "
        "builds, run in onnxruntime on the CPU (no TensorRT here). Δ: bundle minus source, mAP50-95 points.\n\n"
        f"```\n{table}\n```\n"
    )
    print(table)


if __name__ == "__main__":
    main()
