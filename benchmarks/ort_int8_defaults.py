"""Why onnxruntime INT8 is often no faster than FP32: its quantizer's defaults against edgecv's
settings, side by side on one model (mAP on the validation split, median infer latency).

    python benchmarks/ort_int8_defaults.py yolov8n-sized 320 [calib images, default 64]

Run after ``quantize_cpu.py``: it takes that run's FP32 and INT8 onnxruntime bundles and data
from ``build/bench-quantize``. Variants: onnxruntime's ``quantize_static`` defaults (QDQ, INT8
activations and weights, per-tensor, MinMax, every supported operator, post-processing
included); the same with post-processing excluded; Conv only with UINT8 activations and
per-channel weights; and edgecv's INT8 bundle.
"""

import contextlib
import hashlib
import io
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

from edgecv.datasets import load_dataset
from edgecv.export import quantize as Q
from edgecv.export.calibration import calibration_set
from edgecv.harness import run_dataset
from edgecv.images import read_image
from edgecv.runtimes import load

work = Path("build/bench-quantize")
ds = load_dataset(work / "data" / "annotations.json", work / "data" / "images")
name, size = sys.argv[1], int(sys.argv[2])
bdir = work / "bundles" / f"{name}-{size}"
fp32b = next(bdir.glob("*-onnxruntime-fp32"))
int8b = next(bdir.glob("*-onnxruntime-int8"))
cal = calibration_set(str(work / "calib" / "images"), (size, size), size=int(sys.argv[3]) if len(sys.argv) > 3 else 64)
scratch = Path(tempfile.mkdtemp(prefix="edgecv-ortq-"))


def variant(tag, **kw):
    """A copy of the INT8 bundle holding onnxruntime's quantization with ``kw`` (manifest re-hashed)."""
    dst = scratch / tag
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(int8b, dst)

    class R(Q.CountingReader, CalibrationDataReader):
        pass

    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(str(fp32b / "model.onnx"), str(dst / "model.onnx"), R(cal, "images"), **kw)
    mf = json.loads((dst / "edgecv.json").read_text())
    for f in mf["files"]:
        f["sha256"] = hashlib.sha256((dst / f["path"]).read_bytes()).hexdigest()
        f["size"] = (dst / f["path"]).stat().st_size
    (dst / "edgecv.json").write_text(json.dumps(mf))
    return dst


m = onnx.load(str(fp32b / "model.onnx"))
post = Q.postprocess_nodes(m) + Q.output_layers(m)

vs = {
    "fp32": fp32b,
    "edgecv int8": int8b,
    "ort defaults": variant("def"),
    "ort defaults, post-processing excluded": variant("defx", nodes_to_exclude=post),
    "conv only, u8s8, per-channel, excl.": variant(
        "conv",
        nodes_to_exclude=post,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        extra_options={"WeightSymmetric": True},
    ),
}
dets = {k: load(v) for k, v in vs.items()}
maps = {k: run_dataset(d, ds, progress=False).metrics.map * 100 for k, d in dets.items()}
imgs = [read_image(ds.image_path(i)) for i in ds.coco["images"][:8]]
t = {k: [] for k in dets}
for r in range(60):
    for k, d in dets.items():
        d(imgs[r % 8])
        t[k].append(d.last_timing["infer"] * 1000)
lines = [
    f"{k:40s}  mAP50-95 {maps[k]:6.2f}  infer p50 {statistics.median(v):7.2f} ms  "
    f"x{statistics.median(t['fp32']) / statistics.median(v):.2f} vs fp32"
    for k, v in t.items()
]
print("\n".join(lines))
import datetime as dt  # noqa: E402

out = Path(__file__).parent / "results" / f"ort-int8-defaults-{dt.date.today().isoformat()}.md"
out.write_text(
    f"# onnxruntime INT8: quantizer defaults vs edgecv, {name} at {size}\n\n"
    f"{len(ds)} validation images, {cal.size} calibration images, 60 side-by-side latency rounds "
    f"(batch 1); `python benchmarks/ort_int8_defaults.py {name} {size}`.\n\n```\n" + "\n".join(lines) + "\n```\n"
)
shutil.rmtree(scratch, ignore_errors=True)
