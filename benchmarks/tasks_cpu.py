"""The capability matrix's classification and segmentation rows, from a real run.

    python benchmarks/tasks_cpu.py [--cls-count 600] [--seg-count 100] [--only trained|torchvision]

Two kinds of row:

- **trained**: the example networks a user wrote (examples/shapes_models.py: a classifier with
  squeeze-and-excitation blocks, a U-Net), trained on the shapes data by
  examples/train_shapes_tasks.py, exported to onnxruntime and openvino at FP32 and INT8 and to
  the tensorrt FP32 and INT8 graphs (run here in onnxruntime), each compared with its PyTorch
  source on the shapes validation split: top-1 for the classifier, mIoU for the U-Net, paired.
- **torchvision**: each supported classification and segmentation constructor, with random
  weights (no pretrained weights can be downloaded here; BatchNorm statistics settled on random
  inputs, see ``edgecv.export.tasks.settle_batchnorm``), exported at FP32 to onnxruntime and
  openvino; the bundle's class probabilities (classifiers) or class map (segmenters) against the
  PyTorch source's on 16 validation images. This says that the architecture goes through; its
  accuracy needs trained weights.

Writes ``tasks-<date>.json`` and ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edgecv import load  # noqa: E402
from edgecv.console import table as _table  # noqa: E402
from edgecv.cpu import machine  # noqa: E402
from edgecv.data import shapes  # noqa: E402
from edgecv.errors import EdgecvError  # noqa: E402
from edgecv.evaluation import compare  # noqa: E402
from edgecv.export import export, reference  # noqa: E402
from edgecv.images import read_image  # noqa: E402
from edgecv.pipeline import open_model  # noqa: E402
from edgecv.taskeval import load_task_dataset  # noqa: E402

CELLS = [
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
    ("tensorrt", "fp32"),
    ("tensorrt", "int8"),
]
SIZES = {"classify": 64, "segment": 128}
#: torchvision constructors measured, with the input size (a segmenter's must be a multiple of 8)
TORCHVISION = [
    ("resnet18", 224),
    ("resnext50_32x4d", 224),
    ("vgg11_bn", 224),
    ("googlenet", 224),
    ("inception_v3", 299),
    ("mobilenet_v3_large", 224),
    ("efficientnet_b0", 224),
    ("alexnet", 224),
    ("fcn_resnet50", 256),
    ("deeplabv3_mobilenet_v3_large", 256),
    ("lraspp_mobilenet_v3_large", 256),
]


def example(task: str):
    spec = importlib.util.spec_from_file_location("shapes_models", ROOT / "examples" / "shapes_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net, weights = (mod.ShapesNet(6), "shapes_classifier.pt") if task == "classify" else (mod.UNet(7), "shapes_unet.pt")
    net.load_state_dict(torch.load(ROOT / "tests" / "fixtures" / "tasks" / weights, weights_only=True))
    return net.eval()


def failed(row: dict, e: Exception) -> None:
    """A cell that could not be filled says why: the exception's first line."""
    row.update(works=False, why=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")


def trained_rows(work: Path, datasets: dict, calib: dict, say) -> list[dict]:
    rows = []
    for task, label in (
        ("classify", "ShapesNet classifier, SE blocks (user module)"),
        ("segment", "U-Net (user module)"),
    ):
        names = list(shapes.CLASSES if task == "classify" else shapes.SEG_CLASSES)
        net = example(task)
        ref = reference(net, task=task, names=names, imgsz=SIZES[task])
        for target, precision in CELLS:
            row = {"model": label, "task": task, "target": target, "precision": precision}
            try:
                b = export(
                    net,
                    target,
                    task=task,
                    names=names,
                    imgsz=SIZES[task],
                    precision=precision,
                    out_dir=work / "bundles",
                    name=f"{task}-{target}-{precision}",
                    calib=str(calib[task]) if precision == "int8" else None,
                )
                det = open_model(b)
                try:
                    res = compare([("source", ref), (b.name, det)], datasets[task], bootstrap=200, progress=False)
                finally:
                    det.close()
                c = res.comparisons[0]
                row.update(
                    works=True,
                    metric=res.runs[0].metrics.primary_name,
                    source=res.runs[0].metrics.primary,
                    bundle=res.runs[1].metrics.primary,
                    delta=c.delta * 100,
                    ci=[c.ci["low"] * 100, c.ci["high"] * 100],
                    same=c.parity.get("same_top1_share", c.parity.get("same_pixel_share")),
                    p50_ms=res.runs[1].median_ms,
                    measured_with="onnxruntime (CPU)" if target == "tensorrt" else target,
                )
            except (EdgecvError, RuntimeError, ValueError) as e:
                failed(row, e)
            say(f"{label}: {target} {precision}: {'ok' if row['works'] else row['why']}")
            rows.append(row)
        ref.close()
    return rows


def torchvision_rows(work: Path, images: dict, say) -> list[dict]:
    from torchvision import models

    from edgecv.export.tasks import SEGMENTERS, settle_batchnorm

    rows = []
    for arch, size in TORCHVISION:
        task = "segment" if arch in SEGMENTERS else "classify"
        torch.manual_seed(0)
        kw = {"weights": None, "num_classes": 6 if task == "classify" else 7}
        if task == "segment":
            kw["weights_backbone"] = None
        if arch in ("googlenet", "inception_v3"):
            kw.update(aux_logits=False, init_weights=True)
        net = settle_batchnorm(models.get_model(arch, **kw), size)  # else many output the same for every image
        params = sum(p.numel() for p in net.parameters()) / 1e6
        opts = {"probabilities": True} if task == "classify" else {}  # a segmenter's class map is compared
        ref = reference(net, imgsz=size, detector_options=opts)
        want = [ref(i) for i in images[task]]
        for target in ("onnxruntime", "openvino"):
            row = {
                "model": f"{type(net).__name__} `{arch}` (torchvision, random weights)",
                "task": task,
                "target": target,
                "precision": "fp32",
                "params_m": params,
                "imgsz": size,
            }
            try:
                t0 = time.perf_counter()
                b = export(net, target, imgsz=size, out_dir=work / "tv", name=f"{arch}-{target}")
                row["export_s"] = time.perf_counter() - t0
                with load(b, **opts) as det:
                    got = [det(i) for i in images[task]]
                    t0 = time.perf_counter()
                    for i in images[task][:4]:
                        det(i)
                    row["p50_ms"] = (time.perf_counter() - t0) / 4 * 1000
                if task == "classify":
                    row.update(
                        works=True,
                        same=float(np.mean([g.top1 == w.top1 for g, w in zip(got, want)])),
                        max_abs_prob=float(
                            max(np.abs(g.probabilities - w.probabilities).max() for g, w in zip(got, want))
                        ),
                    )
                else:
                    row.update(
                        works=True,
                        same=float(np.mean([(g.class_map == w.class_map).mean() for g, w in zip(got, want)])),
                    )
            except (EdgecvError, RuntimeError, ValueError) as e:
                failed(row, e)
            say(f"{arch}: {target}: {'ok' if row['works'] else row['why']}")
            rows.append(row)
        ref.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cls-count", type=int, default=600, help="validation crops for the classifier")
    ap.add_argument("--seg-count", type=int, default=100, help="validation images for the U-Net")
    ap.add_argument("--work", default="build/bench-tasks")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument(
        "--only",
        choices=("trained", "torchvision"),
        help="run one kind of row; the other is kept from today's results file",
    )
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    def say(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    work = Path(args.work)
    datasets = {
        "classify": load_task_dataset(shapes.write_classification(work / "cls", "val", args.cls_count), "classify"),
        "segment": load_task_dataset(shapes.write_segmentation(work / "seg", "val", args.seg_count), "segment"),
    }
    calib = {
        "classify": shapes.write_classification(work / "cls-calib", "calib", 300),
        "segment": shapes.write_segmentation(work / "seg-calib", "calib", 100),
    }
    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    earlier = out / f"tasks-{stamp}.json"
    rows = []
    if args.only and earlier.is_file():  # the other kind of row is kept from today's results
        rows = [r for r in json.loads(earlier.read_text())["rows"] if ("params_m" in r) == (args.only == "trained")]
    if args.only in (None, "trained"):
        rows += trained_rows(work, datasets, calib, say)
    if args.only in (None, "torchvision"):
        images = {t: [read_image(p) for p in datasets[t].images[:16]] for t in datasets}
        rows += torchvision_rows(work, images, say)

    trained = [r for r in rows if "params_m" not in r]
    tv = [r for r in rows if "params_m" in r]
    parts = []
    if trained:
        parts.append(
            _table(
                (
                    "model",
                    "task",
                    "target",
                    "precision",
                    "works",
                    "metric",
                    "source",
                    "bundle",
                    "Δ points",
                    "95% CI",
                    "same as source",
                    "p50 ms",
                    "why not",
                ),
                [
                    (
                        r["model"],
                        r["task"],
                        r["target"] + (" [ort]" if r["target"] == "tensorrt" and r["works"] else ""),
                        r["precision"],
                        "yes" if r["works"] else "no",
                        r.get("metric", ""),
                        f"{r['source'] * 100:.2f}" if r["works"] else "",
                        f"{r['bundle'] * 100:.2f}" if r["works"] else "",
                        f"{r['delta']:+.2f}" if r["works"] else "",
                        f"[{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]" if r["works"] else "",
                        f"{r['same'] * 100:.2f}%" if r["works"] else "",
                        f"{r['p50_ms']:.1f}" if r["works"] else "",
                        r.get("why", ""),
                    )
                    for r in trained
                ],
                left=5,
            )
        )
    if tv:
        parts.append(
            _table(
                (
                    "torchvision constructor",
                    "task",
                    "target",
                    "params M",
                    "input",
                    "works",
                    "same top-1 / pixels",
                    "max |Δp|",
                    "ms/img",
                    "why not",
                ),
                [
                    (
                        r["model"],
                        r["task"],
                        r["target"],
                        f"{r['params_m']:.1f}",
                        str(r["imgsz"]),
                        "yes" if r["works"] else "no",
                        f"{r['same'] * 100:.2f}%" if r["works"] else "",
                        f"{r['max_abs_prob']:.1e}" if "max_abs_prob" in r else "",
                        f"{r['p50_ms']:.1f}" if r.get("p50_ms") else "",
                        r.get("why", ""),
                    )
                    for r in tv
                ],
                left=3,
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    m = machine()
    (out / f"tasks-{stamp}.json").write_text(json.dumps({"rows": rows, "machine": m, "settings": vars(args)}, indent=2))
    (out / f"tasks-{stamp}.md").write_text(
        f"# Capability matrix: classification and segmentation, {stamp}\n\n{m['cpu']}, {m['cores']} cores. Trained "
        f"rows: {args.cls_count} validation crops (top-1) and {args.seg_count} validation images (mIoU) of the "
        "shapes set; INT8 calibrated on the shapes calib split; 95% CI from a paired bootstrap (200 resamples); "
        "'same as source': images with the source's top-1, or pixels with the source's class. tensorrt [ort]: the "
        "graph TensorRT builds, run in onnxruntime. torchvision rows: random weights, FP32, 16 images; "
        "'max |Δp|': the largest difference of a class probability.\n\n"
        + "\n\n".join(f"```\n{p}\n```" for p in parts)
        + "\n"
    )
    print("\n\n".join(parts))


if __name__ == "__main__":
    main()
