"""The static TensorRT check over every family's TensorRT graphs.

    python benchmarks/tensorrt_check.py [--families edgecv-tiny,retinanet,...] [--merge]

Each family's trained member (as in families_cpu.py) is exported with ``--target tensorrt``
at FP32, FP16 and INT8 (calibrated on shapes training images; no plan: TensorRT is not
needed) and its graph is checked against every TensorRT version the check knows (10.3, 10.15,
and 11.0, 11.2, 11.5 derived from the release notes: ``edgecv doctor --versions``), the
bodies of its If/Loop/Scan nodes included (``edgecv.runtimes.tensorrt.static_check``). Export
refuses a graph with errors, so a cell that fails says why. Writes ``tensorrt-check-<date>.json``
and ``.md`` under ``--out``; ``--merge`` keeps the rows of the other families already in that
day's file (run the families in parts).
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
from edgecv.runtimes.tensorrt.static_check import VERSIONS, check_bundle

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
    ap.add_argument("--merge", action="store_true", help="keep the other families' rows of today's results file")
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
                    bodies=report.subgraphs,
                    body_nodes=report.subgraph_nodes,
                    plugins=[f"{p['name']} {p['version'] or ''}".strip() for p in report.plugin_entries()],
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
    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / f"tensorrt-check-{stamp}.json"
    if args.merge and results.is_file():
        done = {r["family"] for r in rows}
        order = list(FAMILIES.values())
        rows = [r for r in json.loads(results.read_text())["rows"] if r["family"] not in done] + rows
        rows.sort(key=lambda r: (order.index(r["family"]), PRECISIONS.index(r["precision"])))
    table = _table(
        (
            "family",
            "precision",
            "passes",
            "nodes",
            "in bodies",
            "Q/DQ nodes",
            "errors",
            "warnings",
            "notes",
            "plugins",
            "why not",
        ),
        [
            (
                r["family"],
                r["precision"],
                "yes" if r["passes"] else "no",
                str(r.get("nodes", "")),
                f"{r['body_nodes']} in {r['bodies']}" if r.get("bodies") else ("0" if "bodies" in r else ""),
                str(r.get("qdq", "")),
                str(r.get("errors", "")),
                str(r.get("warnings", "")),
                str(r.get("notes", "")),
                ", ".join(r.get("plugins", [])),
                r.get("why", ""),
            )
            for r in rows
        ],
        left=2,
    )
    results.write_text(json.dumps({"rows": rows, "machine": machine(), "settings": vars(args)}, indent=2))
    (out / f"tensorrt-check-{stamp}.md").write_text(
        f"# TensorRT static check of every family's graphs, {stamp}\n\n`edgecv doctor` rules for TensorRT "
        f"{', '.join(VERSIONS)} (the 11.x tables derived from the release notes: `edgecv doctor --versions`), on "
        "the graphs `edgecv export --target tensorrt` writes (input 320x320, INT8 calibrated on "
        f"{args.calib_size} shapes training images), the bodies of their If/Loop/Scan nodes included ('in bodies': "
        "nodes in how many bodies). Notes are informational (e.g. the count of INT64 shape initializers, the "
        f"operators TensorRT builds from a plugin: 'plugins').\n\n```\n{table}\n```\n"
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
