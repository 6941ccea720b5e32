"""The static TensorRT check over every family's TensorRT graphs.

    python benchmarks/tensorrt_check.py [--families edgecv-tiny,retinanet,...]

Each family's trained member (as in families_cpu.py) is exported with ``--target tensorrt``
at FP32, FP16 and INT8 (calibrated on shapes training images; no plan: TensorRT is not
needed) and its graph is checked against TensorRT 10.3, 10.15 and 11.x
(``edgecv.runtimes.tensorrt.static_check``). Export refuses a graph with errors, so a cell that fails says
why. Writes ``tensorrt-check-<date>.json`` and ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import time
from pathlib import Path

from _common import setup
from families_cpu import FAMILIES, source

from edgecv.console import table as _table
from edgecv.cpu import machine
from edgecv.data import shapes
from edgecv.errors import EdgecvError
from edgecv.export import export
from edgecv.runtimes.tensorrt.static_check import check_bundle

PRECISIONS = ("fp32", "fp16", "int8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--calib-size", type=int, default=64)
    ap.add_argument(
        "--fixtures", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "torchvision")
    )
    ap.add_argument("--work", default="build/bench-trt-check")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    work, _, calib_dir, say = setup(args.work, 1, args.calib_size)
    rows = []
    for key in args.families.split(","):
        label = FAMILIES[key]
        src = source(key, Path(args.fixtures), list(shapes.CLASSES), work)
        for precision in PRECISIONS:
            row = {"family": label, "precision": precision}
            if isinstance(src, str):
                rows.append({**row, "passes": False, "why": src})
                continue
            t0 = time.perf_counter()
            try:
                bundle = export(
                    src,
                    "tensorrt",
                    precision=precision,
                    imgsz=320,
                    out_dir=work / "bundles",
                    name=f"{src.name}-tensorrt-{precision}",
                    calib=str(calib_dir),
                    calib_size=args.calib_size,
                    tensorrt={"build_plan": False},
                )
                report = check_bundle(bundle)
                ops = collections.Counter(f.op for f in report.findings)
                row.update(
                    passes=not report.errors,
                    nodes=report.nodes,
                    opset=report.opset,
                    errors=report.count("error"),
                    warnings=report.count("warning"),
                    notes=report.count("info"),
                    findings=[f"{f.severity} {f.rule} {f.op} {f.node}".strip() for f in report.findings],
                    qdq=sum(1 for _ in _qdq(bundle)),
                    seconds=round(time.perf_counter() - t0, 1),
                    finding_ops=dict(ops),
                )
            except (EdgecvError, RuntimeError, ValueError) as e:
                row.update(passes=False, why=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
            say(f"{label} {precision}: {'passes' if row['passes'] else row.get('why')}")
            rows.append(row)
    table = _table(
        ("family", "precision", "passes", "nodes", "Q/DQ nodes", "errors", "warnings", "notes", "why not"),
        [
            (
                r["family"],
                r["precision"],
                "yes" if r["passes"] else "no",
                str(r.get("nodes", "")),
                str(r.get("qdq", "")),
                str(r.get("errors", "")),
                str(r.get("warnings", "")),
                str(r.get("notes", "")),
                r.get("why", ""),
            )
            for r in rows
        ],
        left=2,
    )
    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    m = machine()
    (out / f"tensorrt-check-{stamp}.json").write_text(
        json.dumps({"rows": rows, "machine": m, "settings": vars(args)}, indent=2)
    )
    (out / f"tensorrt-check-{stamp}.md").write_text(
        f"# TensorRT static check of every family's graphs, {stamp}\n\n`edgecv doctor` rules for TensorRT 10.3, "
        "10.15 and 11.x, on the graphs `edgecv export --target tensorrt` writes (input 320x320, INT8 calibrated on "
        f"{args.calib_size} shapes training images). Notes are informational (e.g. the count of INT64 shape "
        f"initializers).\n\n```\n{table}\n```\n"
    )
    print(table)


def _qdq(bundle: Path):
    import onnx

    return (
        n
        for n in onnx.load(str(bundle / "model.onnx")).graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear")
    )


if __name__ == "__main__":
    main()
