"""TensorRT plans on a real NVIDIA GPU with TensorRT 10.x or 11.x installed.

Marked ``tensorrt``: these skip, with the reason, wherever TensorRT or a usable GPU is
missing (tests/conftest.py). Run them all with tests/gpu/run.sh, which writes the figures
to a results file. They build plans for the default detector at FP32, FP16 and INT8, and
for the trained Faster and Mask R-CNN fixtures (whose RoiAlign nodes TensorRT builds from
its ROIAlign_TRT plugin, and whose NMS sits in an If), with real TensorRT, run them through
edgecv's runtime (cuda-python or libcudart, no torch), and compare with the PyTorch source
on the shapes validation set.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import pytest

from edgecv import BackendUnavailableError, EdgecvError, load
from edgecv.bundle import MANIFEST_NAME, Bundle
from edgecv.cli import main
from edgecv.data import shapes
from edgecv.datasets import load_dataset
from edgecv.harness import box_parity, run_dataset

pytestmark = pytest.mark.tensorrt

export_mod = pytest.importorskip("edgecv.export")
IMGSZ = 320
MAX_DROP = {"fp32": 0.1, "fp16": 0.3, "int8": 1.0}  # mAP50-95 points against the PyTorch source
RESULTS: dict = {"tests": {}}


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    from edgecv.runtimes.tensorrt.api import TrtApi
    from edgecv.runtimes.tensorrt.cuda import open_cuda

    dev = open_cuda().device()
    RESULTS["machine"] = {
        "gpu": dev.name,
        "compute_capability": dev.compute_capability,
        "tensorrt": TrtApi().version,
        "host": platform.node(),
    }
    out = Path(os.environ.get("EDGECV_GPU_RESULTS", Path(__file__).with_name("results.json")))
    out.write_text(json.dumps(RESULTS, indent=2, default=float) + "\n")


@pytest.fixture(scope="module")
def val():
    from tempfile import mkdtemp

    images, ann = shapes.write_coco(Path(mkdtemp()), "val", 60)
    return load_dataset(ann, images)


@pytest.fixture(scope="module")
def source_run(default_src, val):
    ref = export_mod.reference(default_src, imgsz=IMGSZ)
    return run_dataset(ref, val, progress=False, warmup=0)


def _record(key: str, source_run, got, plan: dict) -> tuple[float, dict]:
    """The mAP drop (points) and box parity of a plan's run against the source's, kept in RESULTS."""
    drop = (source_run.metrics.map - got.metrics.map) * 100
    parity = box_parity(source_run.detections, got.detections)
    RESULTS["tests"][key] = {
        "source_map": source_run.metrics.map,
        "plan_map": got.metrics.map,
        "drop_points": drop,
        "parity": parity,
        "plan": plan,
        "median_latency_ms": got.median_ms,
    }
    return drop, parity


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_plan_matches_the_source(precision, default_src, val, source_run, tmp_path):
    calib = [shapes.render(shapes.SPLIT_SEEDS["train"], i).image for i in range(64)] if precision == "int8" else None
    bundle = export_mod.export(
        default_src,
        "tensorrt",
        precision=precision,
        imgsz=IMGSZ,
        out_dir=tmp_path,
        calib=calib,
        calib_size=64,
        tensorrt={"build_plan": True},
    )
    (plan,) = Bundle.open(bundle).manifest["runtime"]["tensorrt"]["engines"]
    with load(bundle) as det:
        got = run_dataset(det, val, progress=False, warmup=5)
        batch = det.predict([str(val.image_path(info)) for info in val.coco["images"][:8]])
    drop, parity = _record(precision, source_run, got, plan)
    assert len(batch) == 8
    assert drop <= MAX_DROP[precision], f"{precision} plan loses {drop:.2f} mAP points"
    if precision in ("fp32", "fp16"):  # box-level parity with the PyTorch source
        assert parity["missing"] <= 0.01 * parity["reference_boxes"], parity
        assert parity["mean_iou"] > (0.999 if precision == "fp32" else 0.99), parity


def test_a_plan_for_another_version_or_a_damaged_plan_is_refused(default_src, tmp_path):
    bundle = export_mod.export(default_src, "tensorrt", imgsz=IMGSZ, out_dir=tmp_path, tensorrt={"build_plan": True})
    m = json.loads((bundle / MANIFEST_NAME).read_text())
    (entry,) = m["runtime"]["tensorrt"]["engines"]
    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    m["runtime"]["tensorrt"]["engines"][0]["tensorrt"] = "9.9.9"
    (other / MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(BackendUnavailableError, match="TensorRT 9.9.9.*edgecv build"):
        load(other)
    # TensorRT itself refuses a plan that is not one; the manifest is made to vouch for it
    from edgecv.bundle import add_file

    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    data = (damaged / entry["file"]).read_bytes()
    add_file(damaged, entry["file"], data[: len(data) // 2], "engine")  # truncated: TensorRT's own checks refuse it
    with pytest.raises(EdgecvError, match="refused the plan"):
        load(damaged)
    RESULTS["tests"]["refusals"] = "passed"


def test_edgecv_build_and_the_timing_cache(default_src, tmp_path):
    bundle = export_mod.export(default_src, "tensorrt", imgsz=IMGSZ, out_dir=tmp_path, tensorrt={"build_plan": False})
    timing = tmp_path / "timing.cache"
    assert main(["build", str(bundle), "--timing-cache", str(timing)]) == 0
    first = Bundle.open(bundle).manifest["runtime"]["tensorrt"]["engines"][0]["build_seconds"]
    assert timing.stat().st_size > 0
    assert main(["build", str(bundle), "--timing-cache", str(timing), "--force"]) == 0
    second = Bundle.open(bundle).manifest["runtime"]["tensorrt"]["engines"][0]["build_seconds"]
    RESULTS["tests"]["build_seconds"] = {"cold": first, "with_timing_cache": second}


RCNN_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "torchvision" / "maskrcnn.pt"
#: mAP50-95 points an FP32 R-CNN plan may lose against the PyTorch source (TensorRT's ROIAlign_TRT
#: plugin samples as torchvision's roi_align does, aligned=True)
RCNN_MAX_DROP = 0.5


@pytest.mark.parametrize("family", ["fasterrcnn", "maskrcnn"])
def test_rcnn_plans_load_the_plugins_and_match_the_source(family, val, tmp_path):
    """A two-stage detector on the GPU: the static check lists the plugin its RoiAlign nodes
    need, TensorRT's plugin registry has it once edgecv registered NVIDIA's plugin library,
    and the FP32 plan keeps the source's mAP (box and, for Mask R-CNN, mask AP)."""
    if not RCNN_FIXTURE.is_file():
        pytest.skip(f"{RCNN_FIXTURE} is not in this checkout")
    from edgecv.export.models.train_torchvision import load as load_fixture
    from edgecv.runtimes.tensorrt.api import TrtApi

    model = load_fixture(RCNN_FIXTURE, family)
    names = [c["name"] for c in val.coco["categories"]]
    ref = export_mod.reference(model, imgsz=IMGSZ, names=names)
    want = run_dataset(ref, val, progress=False, warmup=0)
    bundle = export_mod.export(
        model, "tensorrt", imgsz=IMGSZ, out_dir=tmp_path, names=names, tensorrt={"build_plan": True}
    )
    rt = Bundle.open(bundle).manifest["runtime"]["tensorrt"]
    assert {"name": "ROIAlign_TRT", "version": "2", "ops": ["RoiAlign"]} in rt["plugins"]
    api = TrtApi()
    assert api.load_plugins() and api.missing_plugins(rt["plugins"]) == []
    (plan,) = rt["engines"]
    with load(bundle) as det:
        got = run_dataset(det, val, progress=False, warmup=3)
    drop, parity = _record(family, want, got, plan)
    assert drop <= RCNN_MAX_DROP, f"{family} plan loses {drop:.2f} mAP points"
    assert parity["mean_iou"] > 0.99, parity
    if family == "maskrcnn":
        mask_drop = (want.mask_metrics.map - got.mask_metrics.map) * 100
        RESULTS["tests"][family]["mask_drop_points"] = mask_drop
        assert mask_drop <= RCNN_MAX_DROP, f"mask AP drops {mask_drop:.2f} points"
