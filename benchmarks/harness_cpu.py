"""Run ``compare`` and ``bench`` on the default detector — PyTorch source, onnxruntime
FP32, openvino FP32 — side by side in one run, and record the results.

    python benchmarks/harness_cpu.py [--count 200] [--seconds 5] [--out benchmarks/results]

Writes ``harness-<date>.json`` and ``harness-<date>.md`` (the two tables as printed).
Latencies from a shared machine: compare them within one run only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from pathlib import Path

from edgecv.bench import bench, bench_table
from edgecv.data import shapes
from edgecv.datasets import load_dataset
from edgecv.evaluation import compare, compare_table, metrics_table
from edgecv.export import default_source, export
from edgecv.images import read_image
from edgecv.pipeline import open_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--work", default="build/bench-harness")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    work = Path(args.work)
    images_dir, ann = shapes.write_coco(work / "data", "val", args.count)
    dataset = load_dataset(ann, images_dir)
    src = default_source()
    bundles = [export(src, t, out_dir=work / "bundles", progress=say) for t in ("onnxruntime", "openvino")]

    models = [("edgecv-tiny (torch)", open_model(src))] + [(b.name, open_model(b)) for b in bundles]
    result = compare(models, dataset, bootstrap=args.bootstrap, progress=False, say=say)
    for _, d in models:
        d.close()
    cmp_table, met_table = compare_table(result), metrics_table(result.runs)

    imgs = [read_image(dataset.image_path(i)) for i in dataset.coco["images"][:32]]
    bres = bench([src, *bundles], batches=(1, 4), seconds=args.seconds, images=imgs, say=say)
    b_table = bench_table(bres)

    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"harness-{stamp}.json").write_text(
        json.dumps({"compare": result.to_dict(), "bench": bres.to_dict()}, indent=2, default=float)
    )
    m = bres.machine
    (out / f"harness-{stamp}.md").write_text(
        f"# edgecv compare and bench, {stamp}\n\nedgecv-tiny on {args.count} shapes validation images; {m['cpu']}, "
        f"{m['cores']} cores, Python {m['python']}.\n\n## compare\n\n```\n{cmp_table}\n\n{met_table}\n```\n\n"
        f"## bench (32 validation images, batch 1 and 4, >= {args.seconds:g} s per row)\n\n```\n{b_table}\n```\n"
    )
    print(cmp_table, met_table, b_table, sep="\n\n")


if __name__ == "__main__":
    main()
