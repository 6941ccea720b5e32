"""The Ultralytics adapter: a YOLOv8n built from Ultralytics' own yaml, trained briefly on the
shapes set (no download), exported, against Ultralytics' own predictions."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecv import load
from edgecv.errors import EdgecvError

from .conftest import EXPORT_TARGETS, ROOT

os.environ.setdefault("YOLO_OFFLINE", "1")  # no connectivity probe from Ultralytics while testing
ultralytics = pytest.importorskip(
    "ultralytics", reason="the Ultralytics adapter needs ultralytics (pip install ultralytics)"
)
export_mod = pytest.importorskip("edgecv.export")

#: a YOLOv8n from Ultralytics' yaml, trained on the shapes set; its weights are packed (int8 kernels)
#: to fit in the repository. Made by:
#:   python -m edgecv.export.models.train_ultralytics --yaml yolov8n.yaml --out build/yolov8n-shapes.pt \
#:       --weights-out tests/fixtures/ultralytics/yolov8n-shapes.weights.pt --steps 700 --batch 8 --samples 2000 \
#:       --lr 4e-3   (about 18 minutes on one core)
WEIGHTS = ROOT / "tests" / "fixtures" / "ultralytics" / "yolov8n-shapes.weights.pt"
CONF, IOU = 0.25, 0.7  # Ultralytics' predict defaults


@pytest.fixture(scope="session")
def yolov8n(tmp_path_factory) -> Path:
    """The fixture as a real Ultralytics checkpoint, written by Ultralytics' own ``YOLO.save``."""
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} is not in this checkout (see the comment above WEIGHTS for the command)")
    from edgecv.export.models.train_ultralytics import checkpoint_from_weights

    return checkpoint_from_weights(WEIGHTS, tmp_path_factory.mktemp("ultralytics") / "yolov8n-shapes.pt")


def _canvases(val_set, count: int = 24) -> list[np.ndarray]:
    """Validation images letterboxed to 320 by edgecv (BGR), so both sides see the same pixels."""
    import cv2

    from edgecv.letterbox import Letterbox

    images_dir, _ = val_set
    lb = Letterbox((320, 320))
    return [lb.forward(cv2.imread(str(p)))[0] for p in sorted(Path(images_dir).glob("*.png"))[:count]]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def _unmatched(want: tuple, got: tuple) -> int:
    """Boxes of ``want`` (xyxy, score, class) with no box of ``got`` of the same class, IoU > 0.99 and score within 1e-3."""
    (wb, ws, wc), (gb, gs, gc) = want, got
    if len(wb) == 0 or len(gb) == 0:
        return len(wb)
    ok = (_iou(wb, gb) > 0.99) & (wc[:, None] == gc[None, :]) & (np.abs(ws[:, None] - gs[None, :]) < 1e-3)
    return int((~ok.any(1)).sum())


def _second_labels(ours: tuple, theirs: tuple) -> int:
    """Boxes of ``ours`` that are one of ``theirs`` (IoU > 0.99) under another, lower-scoring class."""
    (ob, os_, oc), (tb, ts, tc) = ours, theirs
    if len(ob) == 0 or len(tb) == 0:
        return 0
    dup = (_iou(ob, tb) > 0.99) & (oc[:, None] != tc[None, :]) & (os_[:, None] < ts[None, :])
    return int(dup.any(1).sum())


@pytest.mark.slow
def test_bundles_match_ultralytics_own_predictions_box_for_box(yolov8n, val_set, tmp_path):
    from ultralytics import YOLO

    yolo = YOLO(str(yolov8n), task="detect")
    canvases = _canvases(val_set)
    theirs = []
    for img in canvases:
        r = yolo.predict(img, imgsz=320, conf=CONF, iou=IOU, max_det=300, verbose=False, device="cpu")[0].boxes
        theirs.append((r.xyxy.numpy(), r.conf.numpy(), r.cls.numpy().astype(int)))
    total = sum(len(t[0]) for t in theirs)
    assert total >= 2 * len(canvases), f"the briefly trained YOLOv8n finds too little to compare ({total} boxes)"
    names = [yolo.names[i] for i in sorted(yolo.names)]
    for target in [*EXPORT_TARGETS, "tensorrt"]:  # tensorrt: its graph (static check passed), run in onnxruntime
        bundle = export_mod.export(
            str(yolov8n), target, trust_pickle=True, conf=CONF, iou=IOU, max_det=300, out_dir=tmp_path
        )
        with load(bundle, backend="onnxruntime" if target == "tensorrt" else None) as det:
            assert list(det.names) == names and tuple(det.manifest["input"]["letterbox"]["size"]) == (320, 320)
            ours = [(d.xyxy, d.scores, d.class_ids) for d in det.predict(canvases, conf=CONF)]
        missing = sum(_unmatched(t, o) for t, o in zip(theirs, ours))
        extra = sum(_unmatched(o, t) for t, o in zip(theirs, ours))
        # edgecv's NMS is multi-label: a box that scores two classes above conf is kept for both,
        # where Ultralytics keeps its best class only. Those (and only those) are the extras.
        second = sum(_second_labels(o, t) for t, o in zip(theirs, ours))
        assert missing == 0 and extra == second, (
            f"{target}: {missing} of {total} Ultralytics boxes missing, {extra} "
            f"extra ({second} of them a box's second class)"
        )


def test_checkpoint_metadata_and_python_objects(yolov8n):
    from ultralytics import YOLO

    src = export_mod.load_source(str(yolov8n), trust_pickle=True)
    assert src.kind == "ultralytics" and src.imgsz == (320, 320) and src.names[0] == "circle"
    assert src.out_spec.layout == "bcn" and src.out_spec.num_classes == 6
    assert src.meta["ultralytics"]["version"] == ultralytics.__version__
    yolo = YOLO(str(yolov8n), task="detect")
    for obj in (yolo, yolo.model):  # the YOLO object and its nn.Module, in the Python API
        s = export_mod.load_source(obj)
        assert s.names == src.names and s.imgsz == (320, 320)
    import torch

    x = torch.rand(2, 3, 320, 320)
    with torch.no_grad():
        want = yolo.model.float().eval()(x)[0]
        assert torch.allclose(src.module(x), want, atol=1e-3, rtol=1e-4)  # BN folded: float rounding only


def test_loading_errors_are_clear(yolov8n, monkeypatch):
    from ultralytics import YOLO

    with pytest.raises(EdgecvError, match="Ultralytics checkpoint.*--trust-pickle"):
        export_mod.load_source(str(yolov8n))
    with pytest.raises(EdgecvError, match="2 class names for an Ultralytics model with 6 classes"):
        export_mod.load_source(str(yolov8n), trust_pickle=True, names=["a", "b"])
    with pytest.raises(EdgecvError, match="segmentation head.*detection models"):
        export_mod.load_source(YOLO("yolov8n-seg.yaml", task="segment", verbose=False))
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # as if it were not installed
    with pytest.raises(EdgecvError, match="needs the ultralytics package: pip install ultralytics"):
        export_mod.load_source(str(yolov8n), trust_pickle=True)


def test_cli_exports_an_ultralytics_checkpoint(yolov8n, tmp_path, capsys):
    from edgecv.bundle import Bundle
    from edgecv.cli import main

    code = main(["export", str(yolov8n), "--target", "onnxruntime", "-o", str(tmp_path), "--name", "y"])
    assert code == 2 and "--trust-pickle" in capsys.readouterr().err
    code = main(
        ["export", str(yolov8n), "--trust-pickle", "--target", "onnxruntime", "-o", str(tmp_path), "--name", "y"]
    )
    assert code == 0, capsys.readouterr().err
    m = Bundle.open(tmp_path / "y").manifest
    assert m["classes"][:2] == ["circle", "square"] and m["provenance"]["source"]["kind"] == "ultralytics"


@pytest.mark.slow
@pytest.mark.parametrize("yaml", ["yolo11n.yaml", "yolov5nu.yaml", "yolov3-tinyu.yaml"])
def test_other_yolo_generations_match_raw_head_outputs(yaml, tmp_path):
    """YOLO11, YOLOv5u and YOLOv3-tiny from Ultralytics' own yamls (random weights): each FP32
    bundle's raw candidates match the PyTorch graph within 1e-4 (relative to the largest value)."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO(yaml, task="detect", verbose=False).model
    model.names = {i: f"c{i}" for i in range(len(model.names))}
    for branch in model.model[-1].cv3:  # Ultralytics' class-bias prior puts every score near 1e-4:
        branch[-1].bias.data.zero_()  # zeroed, scores spread over (0, 1) and relative errors mean something
    ref = export_mod.reference(model, imgsz=320, mode="raw")
    img = np.random.default_rng(0).integers(0, 255, (240, 300, 3), dtype=np.uint8)
    batch, _ = ref.preprocess([img])
    want = ref._run(batch)
    assert want["scores"].shape[2] == 80 and want["boxes"].shape[1] == want["scores"].shape[1] > 0
    for target in EXPORT_TARGETS:
        bundle = export_mod.export(model, target, imgsz=320, mode="raw", out_dir=tmp_path, dynamic_batch=False)
        with load(bundle) as det:
            got = det._run(batch)
        for name, w in want.items():
            rel = np.abs(got[name] - w).max() / max(np.abs(w).max(), 1e-6)
            assert rel < 1e-4, f"{yaml} {target} {name}: relative error {rel:.2e}"


def test_a_layer_kept_float_in_an_onnxruntime_int8_graph_survives_full_optimization(yolov8n, tmp_path):
    """A YOLO convolution kept in float (accuracy control, keep_float) stays float up to the next
    convolution's input, SiLU included: onnxruntime's full optimizations miscomputed a float Conv
    whose SiLU was quantized (a YOLO11n lost 21.7 mAP points), its basic ones did not. Both levels
    must now give the same detections."""
    import onnx
    import onnxruntime as ort

    from edgecv.data import shapes
    from edgecv.export import export
    from edgecv.export.calibration import calibration_set
    from edgecv.export.quantize import CPU_OPS, quantize_qdq

    fp32 = export(str(yolov8n), "onnxruntime", out_dir=tmp_path, imgsz=320, trust_pickle=True)
    graph = onnx.load(str(fp32 / "model.onnx"))
    first = next(n.name for n in graph.graph.node if n.op_type == "Conv")
    images = [shapes.render(shapes.SPLIT_SEEDS["train"], i).image for i in range(16)]
    cal = calibration_set(images, (320, 320), "RGB", 114, 16, 0)
    q = tmp_path / "q.onnx"
    quantize_qdq(fp32 / "model.onnx", q, cal, exclude=[first], ops=CPU_OPS, reduce_range=True)
    x = cal.samples[3]
    outs = {}
    for level in (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.log_severity_level = 3
        s = ort.InferenceSession(str(q), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in s.get_inputs()]
        outs[level] = dict(zip([o.name for o in s.get_outputs()], s.run(None, cal.feeds(x, names))))
    full, basic = outs.values()
    assert int(full["num_dets"][0]) == int(basic["num_dets"][0]) > 0
    k = int(basic["num_dets"][0])
    assert np.abs(full["scores"][0, :k] - basic["scores"][0, :k]).max() < 0.05
    # each box found at the other level (boxes of near-equal score may swap places)
    gap = np.abs(full["boxes"][0, :k, None, :] - basic["boxes"][0, None, :k, :]).max(-1).min(-1)
    assert (gap < 4.0).mean() >= 0.95, gap
