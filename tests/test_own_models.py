"""A user's own models: what an exported model file says about itself (its fixed input size,
the class names in its metadata) and a torchvision detector's own size and COCO names are the
defaults; a bundle is named after the file it came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecv import load
from edgecv.bundle import Bundle
from edgecv.errors import ExportError, SourceError

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from edgecv.export import export, load_source  # noqa: E402
from edgecv.export import torchvision_models as TV  # noqa: E402
from edgecv.export.ultralytics_models import read_metadata  # noqa: E402

#: what Ultralytics writes into an ONNX export's metadata_props (as Python reprs)
ULTRALYTICS_PROPS = {"author": "Ultralytics", "task": "detect", "imgsz": "[64, 64]", "names": "{0: 'cat', 1: 'dog'}"}


def _tiny_onnx(path: Path, props: dict[str, str], size: tuple[int, int] | None = (64, 64)) -> Path:
    """A raw-prediction ONNX model built node by node: image [1, 3, H, W] (fixed, or symbolic where
    ``size`` is None) -> [1, 4 + 2, N], one candidate per 8x8 cell (its mean colours as box and scores)."""
    from onnx import TensorProto, helper

    h, w = size or ("height", "width")
    cells = (h // 8) * (w // 8) if size else "cells"
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])
    raw = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, cells])
    nodes = [
        helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Reshape", ["pooled", "rows"], ["cells"]),
        helper.make_node("Concat", ["cells", "cells"], ["output0"], axis=1),
    ]
    rows = helper.make_tensor("rows", TensorProto.INT64, [3], [1, 3, -1])
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", [image], [raw], [rows]), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_onnx_source_exports_at_its_declared_size_with_its_metadata_names(tmp_path):
    src = _tiny_onnx(tmp_path / "tiny.onnx", {**ULTRALYTICS_PROPS, "imgsz": "[320, 320]"})  # the input wins
    said: list[str] = []
    bundle = export(src, "onnxruntime", out_dir=tmp_path, progress=said.append)
    m = Bundle.open(bundle).manifest
    assert bundle.name == "tiny-onnxruntime-fp32"
    assert m["input"]["shape"][1:3] == [64, 64] and m["classes"] == ["cat", "dog"]
    assert "2 classes (names: the ONNX metadata), input 64x64 (fixed by the model)" in said[0]
    with load(bundle) as det:
        det(np.full((48, 80, 3), 128, np.uint8))  # runs at 64x64


def test_a_size_the_onnx_input_does_not_take_is_refused_before_any_work(tmp_path, capsys):
    from edgecv.cli import main

    src = _tiny_onnx(tmp_path / "tiny.onnx", ULTRALYTICS_PROPS)
    with pytest.raises(ExportError, match=r"onnx model 'tiny' takes 64x64 inputs only.*leave out --imgsz"):
        export(src, "onnxruntime", out_dir=tmp_path, imgsz=128)
    assert main(["export", str(src), "--imgsz", "96", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "takes 64x64 inputs only" in err and "ShapeInferenceError" not in err and "Traceback" not in err
    assert not list(tmp_path.glob("tiny-*"))


def test_given_names_and_sizes_win_over_the_metadata(tmp_path):
    fixed = _tiny_onnx(tmp_path / "fixed.onnx", ULTRALYTICS_PROPS)
    s = load_source(str(fixed), names=["a", "b"])
    assert s.names == ("a", "b") and s.names_from == "" and s.fixed_imgsz == (64, 64)
    dynamic = _tiny_onnx(tmp_path / "dynamic.onnx", {**ULTRALYTICS_PROPS, "imgsz": "[96, 128]"}, size=None)
    s = load_source(str(dynamic))
    assert s.imgsz == (96, 128) and s.fixed_imgsz is None and s.names == ("cat", "dog")
    bare = _tiny_onnx(tmp_path / "bare.onnx", {})
    with pytest.raises(SourceError, match="class names are unknown"):
        load_source(str(bare))


def test_an_ultralytics_export_of_another_task_is_refused(tmp_path):
    seg = _tiny_onnx(tmp_path / "seg.onnx", {**ULTRALYTICS_PROPS, "task": "segment"})
    with pytest.raises(SourceError, match="Ultralytics segment model.*detection models"):
        load_source(str(seg))


@pytest.mark.parametrize(
    "props, names, imgsz, dynamic",
    [
        (ULTRALYTICS_PROPS, ["cat", "dog"], (64, 64), None),  # ONNX: Python reprs
        ({"names": {"1": "dog", "0": "cat"}, "imgsz": [320, 256], "args": {"dynamic": False}}, ["cat", "dog"], (320, 256), False),  # TorchScript: JSON
        ({"names": "['a', 'b']", "imgsz": "640", "args": "{'dynamic': True}"}, ["a", "b"], (640, 640), True),
        ({"names": "{0: 'a', 2: 'c'}", "imgsz": "[1, 2, 3]"}, None, None, None),  # a gap in the ids; not H, W
        ({"names": "__import__('os').system('x')", "imgsz": "'big'"}, None, None, None),  # not literals: not run
        ({"names": "{0: 'a'" * 10, "imgsz": "[" * 100_000}, None, None, None),  # truncated, nested too deep
        ({}, None, None, None),
    ],
)  # fmt: skip
def test_ultralytics_metadata_is_read_as_literals(props, names, imgsz, dynamic):
    assert read_metadata(props) == {
        "names": names,
        "imgsz": imgsz,
        "task": props.get("task"),
        "dynamic": dynamic,
    }


# torchvision: the transform's test-time size, COCO's names for a model with COCO's 91 classes
@pytest.mark.parametrize(
    "arch, classes, size, first, count",
    [
        ("fasterrcnn_mobilenet_v3_large_320_fpn", 91, 320, "person", 90),  # min_size 320 (max_size 640)
        ("ssdlite320_mobilenet_v3_large", 91, 320, "person", 90),  # fixed_size 320
        ("retinanet_resnet50_fpn", 91, 800, "__background__", 91),  # min_size 800; labels from 0, as torchvision's
        ("fasterrcnn_mobilenet_v3_large_320_fpn", 4, 320, "class0", 3),  # not COCO: numbered, and said so
    ],
)
def test_torchvision_defaults_come_from_the_model(arch, classes, size, first, count):
    pytest.importorskip("torchvision")
    src = load_source(TV.build(arch, classes))
    assert src.imgsz == (size, size) and src.names[0] == first and len(src.names) == count
    assert ("COCO categories" if classes == 91 else "pass --names") in src.names_from
    if classes == 91:
        from torchvision.models.detection import RetinaNet_ResNet50_FPN_Weights

        coco = RetinaNet_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
        assert list(src.names) == coco[len(coco) - count :]
    assert load_source(TV.build(arch, classes), names=[f"n{i}" for i in range(count)]).names_from == ""


def test_ssd300_rounds_its_size_up_to_the_stride():
    pytest.importorskip("torchvision")
    assert TV.default_size(TV.build("ssd300_vgg16", 3)) == (320, 320)  # torchvision's 300, a multiple of 32


# Ultralytics: real exports of the trained fixture
@pytest.fixture(scope="module")
def yolov8n(tmp_path_factory) -> Path:
    """The trained fixture as an Ultralytics checkpoint (see tests/test_ultralytics.py)."""
    from .test_ultralytics import WEIGHTS  # skips without ultralytics

    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} is not in this checkout")
    from edgecv.export.models.train_ultralytics import checkpoint_from_weights

    return checkpoint_from_weights(WEIGHTS, tmp_path_factory.mktemp("ultralytics") / "yolov8n-shapes.pt")


def test_a_yolo_object_is_named_after_its_checkpoint(yolov8n):
    from ultralytics import YOLO

    yolo = YOLO(str(yolov8n), task="detect")
    assert load_source(yolo).name == load_source(yolo.model).name == "yolov8n-shapes"
    assert load_source(YOLO("yolov8n.yaml", task="detect", verbose=False)).name == "YOLO"  # no file: the class


@pytest.mark.slow
def test_ultralytics_onnx_and_torchscript_exports_keep_their_size_and_names(yolov8n, val_images, tmp_path):
    """Ultralytics' own ONNX and TorchScript exports at 320, exported with no --imgsz or --names,
    find what the checkpoint's bundle finds."""
    from ultralytics import YOLO

    ckpt = Path(shutil.copy(yolov8n, tmp_path / "yolov8n-shapes.pt"))  # Ultralytics writes its exports beside it
    want_bundle = export(YOLO(str(ckpt), task="detect"), "onnxruntime", out_dir=tmp_path / "pt")
    assert want_bundle.name == "yolov8n-shapes-onnxruntime-fp32"  # not YOLO-onnxruntime-fp32
    with load(want_bundle) as det:
        want = [det(img) for img in val_images[:4]]
    for fmt, kind in (("onnx", "ONNX"), ("torchscript", "TorchScript")):
        exported = YOLO(str(ckpt), task="detect").export(format=fmt, imgsz=320, verbose=False)
        said: list[str] = []
        bundle = export(exported, "onnxruntime", out_dir=tmp_path / fmt, progress=said.append)
        m = Bundle.open(bundle).manifest
        assert m["input"]["shape"][1:3] == [320, 320], fmt
        assert m["classes"] == ["circle", "square", "triangle", "diamond", "star", "cross"], fmt
        assert f"(names: the {kind} metadata), input 320x320 (fixed by the model)" in said[0]
        with load(bundle) as det:
            for w, img in zip(want, val_images[:4]):
                got = det(img)
                assert len(w.xyxy) > 0 and got.xyxy.shape == w.xyxy.shape, fmt
                np.testing.assert_allclose(got.xyxy, w.xyxy, atol=0.05)
                assert list(got.class_ids) == list(w.class_ids)
        with pytest.raises(ExportError, match=f"{fmt} model 'yolov8n-shapes' takes 320x320 inputs only"):
            export(exported, "onnxruntime", out_dir=tmp_path / fmt, imgsz=640)


@pytest.mark.slow
def test_a_coco_faster_rcnn_320_state_dict_exports_at_320_with_cocos_names(tmp_path):
    pytest.importorskip("torchvision")
    torch.manual_seed(0)
    sd = tmp_path / "frcnn-320.pth"
    torch.save(TV.build("fasterrcnn_mobilenet_v3_large_320_fpn", 91).state_dict(), sd)
    said: list[str] = []
    bundle = export(
        sd,
        "onnxruntime",
        out_dir=tmp_path,
        arch="fasterrcnn_mobilenet_v3_large_320_fpn",  # the class count is read from the state dict
        progress=said.append,
    )
    m = Bundle.open(bundle).manifest
    assert bundle.name == "frcnn-320-onnxruntime-fp32"
    assert m["input"]["shape"][1:3] == [320, 320] and m["classes"][:3] == ["person", "bicycle", "car"]
    assert "90 classes (names: torchvision's COCO categories" in said[0]
    assert json.dumps(m["classes"]).count("N/A") == 10  # torchvision's gaps in COCO's ids, kept in place


@pytest.mark.parametrize(
    "arch, classes",
    [
        ("fasterrcnn_mobilenet_v3_large_320_fpn", 91),
        ("retinanet_resnet50_fpn", 5),
        ("ssdlite320_mobilenet_v3_large", 4),
    ],
)
def test_a_torchvision_state_dict_says_how_many_classes_it_has(arch, classes, tmp_path):
    """--num-classes is read from the state dict's shapes, so a user's own state dict needs only --arch."""
    from torchvision.models import detection as D

    from edgecv.export.torchvision_models import classes_in

    state = getattr(D, arch)(weights=None, weights_backbone=None, num_classes=classes).state_dict()
    assert classes_in(arch, state) == classes
    assert classes_in(arch, {k: v for k, v in state.items() if "head" not in k}) is None  # heads missing: unknown
    torch.save(state, tmp_path / "own.pth")
    source = load_source(tmp_path / "own.pth", arch=arch)  # no num_classes
    background = arch.startswith(("ssd", "fasterrcnn"))  # torchvision counts it there; edgecv drops it
    assert len(source.names) == classes - background
