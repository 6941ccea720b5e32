"""FP32 bundles find the same objects as the PyTorch source, through the same pre/post-processing.

Every source detection scoring at least 0.25 must be matched by a bundle detection
of the same class with IoU >= 0.99 and a score within 1e-3, and vice versa.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgecv import load

from .conftest import EXPORT_TARGETS

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

CONF = 0.25
# candidates slightly under CONF on one side may sit just over it on the other
SEARCH = CONF - 1e-3


def unmatched(a, b) -> list[str]:
    """Detections of ``a`` (score >= CONF) with no partner in ``b``."""
    problems = []
    a = a.filter(CONF)
    b = b.filter(SEARCH)
    iou = (
        torchvision.ops.box_iou(torch.from_numpy(np.array(a.xyxy)), torch.from_numpy(np.array(b.xyxy))).numpy()
        if len(a) and len(b)
        else np.zeros((len(a), len(b)))
    )
    for i in range(len(a)):
        ok = (
            (b.class_ids == a.class_ids[i]) & (iou[i] >= 0.99) & (np.abs(b.scores - a.scores[i]) <= 1e-3)
            if len(b)
            else np.zeros(0, bool)
        )
        if not ok.any():
            problems.append(f"{a.labels[i]} {a.scores[i]:.4f} {a.xyxy[i].round(1).tolist()}")
    return problems


def assert_parity(ref_dets, dets):
    total = 0
    for i, (r, d) in enumerate(zip(ref_dets, dets)):
        total += len(r.filter(CONF))
        missing, extra = unmatched(r, d), unmatched(d, r)
        assert not missing and not extra, f"image {i}: missing {missing}, extra {extra}"
    return total


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_default_detector_bundles_match_the_source(target, make_detector, val_images):
    ref = make_detector("torch", conf=SEARCH).predict(val_images)
    with make_detector(target, conf=SEARCH) as det:
        out = det.predict(val_images)
    n = assert_parity(ref, out)
    assert n >= len(val_images), "the default detector should find objects on the shapes set"


@pytest.fixture(scope="module")
def v5_sources(tmp_path_factory):
    """The YOLOv5-style module as an nn.Module, a TorchScript file and an ONNX file."""
    from .yolo_v5_style import TinyV5

    out = tmp_path_factory.mktemp("v5")
    module = TinyV5(3).eval()
    x = torch.zeros(1, 3, 256, 256)
    ts, onnx_path = out / "v5.torchscript", out / "v5.onnx"
    with warnings.catch_warnings():  # both writers are deprecated in torch 2.14; users still bring such files
        warnings.simplefilter("ignore")
        torch.jit.trace(module, x).save(str(ts))
        torch.onnx.export(
            module, (x,), str(onnx_path), input_names=["x"], output_names=["y"], opset_version=13, dynamo=False
        )
    return module, ts, onnx_path


# score floor 0.2 and room for 500 boxes: the top-K cut never falls among the compared detections
V5 = dict(
    names=["red", "green", "blue"],
    layout="bnc",
    box_format="cxcywh",
    objectness=True,
    apply_sigmoid=True,
    imgsz=256,
    conf=0.2,
    max_det=500,
)


@pytest.mark.parametrize("kind", ["module", "torchscript", "onnx"])
@pytest.mark.parametrize("target", EXPORT_TARGETS)
@pytest.mark.parametrize("mode", ["nms", "raw"])
def test_independent_yolo_style_model_matches(kind, target, mode, v5_sources, val_images, tmp_path):
    from edgecv.export import export, reference

    module, ts, onnx_path = v5_sources
    src = {"module": module, "torchscript": ts, "onnx": onnx_path}[kind]
    ref = reference(module, detector_options={"conf": SEARCH}, mode=mode, **V5)
    bundle = export(src, target, out_dir=tmp_path, mode=mode, **V5)
    images = val_images[:6]
    with load(bundle, conf=SEARCH) as det:
        n = assert_parity(ref.predict(images), det.predict(images))
    assert n > 0, "the test model should produce detections above the threshold"
