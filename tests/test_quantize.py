"""FP16 and INT8 bundles of the default detector keep its mAP; calibration is cached."""

from __future__ import annotations

import onnx
import pytest

from edgecv import load
from edgecv.bundle import Bundle
from edgecv.data import shapes
from edgecv.datasets import load_dataset
from edgecv.errors import ExportError
from edgecv.harness import run_dataset

from .conftest import EXPORT_TARGETS

export_mod = pytest.importorskip("edgecv.export")
from edgecv.export.quantize import CountingReader, output_layers, postprocess_nodes  # noqa: E402

CALIB_SIZE = 64
MAX_DROP = {"int8": 1.0, "fp16": 0.2}  # mAP50-95 points


@pytest.fixture(scope="session")
def calib_images():
    """The calibration images: the training split, never the validation split."""
    return [shapes.render(shapes.SPLIT_SEEDS["train"], i).image for i in range(CALIB_SIZE)]


@pytest.fixture(scope="session")
def val60(tmp_path_factory):
    images, ann = shapes.write_coco(tmp_path_factory.mktemp("val60"), "val", 60)
    return load_dataset(ann, images)


@pytest.fixture(scope="session")
def fp32_map(default_bundles, val60):
    out = {}
    for target, b in default_bundles.items():
        with load(b) as det:
            out[target] = run_dataset(det, val60, progress=False, warmup=0).metrics.map
    return out


@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_reduced_precision_keeps_map(target, precision, default_src, calib_images, val60, fp32_map, tmp_path):
    bundle = export_mod.export(default_src, target, precision=precision, out_dir=tmp_path, calib=calib_images,
                               calib_size=CALIB_SIZE)
    with load(bundle) as det:
        m = run_dataset(det, val60, progress=False, warmup=0).metrics.map
    drop = (fp32_map[target] - m) * 100
    assert drop <= MAX_DROP[precision], f"{target} {precision} loses {drop:.2f} mAP50-95 points"
    prov = Bundle.open(bundle).manifest["provenance"]
    assert Bundle.open(bundle).manifest["precision"] == precision
    if precision == "int8":
        assert prov["calibration"]["size"] == CALIB_SIZE and len(prov["calibration"]["sha256"]) == 64
        assert prov["quantization"]["excluded_nodes"], "the head's output layers stay in float"


def test_the_onnxruntime_int8_graph_is_qdq_with_post_processing_in_float(default_src, calib_images, tmp_path):
    bundle = export_mod.export(default_src, "onnxruntime", precision="int8", out_dir=tmp_path, calib=calib_images,
                               calib_size=16)
    model = onnx.load(str(bundle / "model.onnx"))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    # nothing after the network is quantized: NMS and its inputs are float
    nms = next(n for n in model.graph.node if n.op_type == "NonMaxSuppression")
    producers = {o: n for n in model.graph.node for o in n.output}
    assert all(producers[i].op_type != "DequantizeLinear" for i in nms.input if i in producers)


def test_calibration_is_cached(default_src, calib_images, tmp_path):
    kw = dict(precision="int8", calib=calib_images, calib_size=16)
    first = export_mod.export(default_src, "onnxruntime", out_dir=tmp_path / "a", **kw)
    calls = CountingReader.calls
    second = export_mod.export(default_src, "onnxruntime", out_dir=tmp_path / "b", **kw)
    assert CountingReader.calls == calls, "the second export calibrated again"
    assert Bundle.open(second).manifest["provenance"]["quantization"]["cache"] == "hit"
    assert (first / "model.onnx").read_bytes() == (second / "model.onnx").read_bytes()
    third = export_mod.export(default_src, "onnxruntime", out_dir=tmp_path / "c", **{**kw, "calib_size": 8})
    assert CountingReader.calls > calls and Bundle.open(third).manifest["provenance"]["quantization"]["cache"] == "miss"


def test_int8_needs_calibration(default_src, tmp_path):
    with pytest.raises(ExportError, match="--calib"):
        export_mod.export(default_src, "onnxruntime", precision="int8", out_dir=tmp_path)


def test_graph_rules(default_bundles):
    model = onnx.load(str(default_bundles["onnxruntime"] / "model.onnx"))
    post = set(postprocess_nodes(model))
    by_name = {n.name: n for n in model.graph.node}
    assert any(by_name[n].op_type == "NonMaxSuppression" for n in post)
    assert not any(by_name[n].op_type == "Conv" for n in post)
    heads = output_layers(model)
    assert len(heads) == 6 and all(by_name[n].op_type == "Conv" for n in heads)  # box and class convs of 3 levels


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_tensorrt_graphs(precision, default_src, calib_images, val60, fp32_map, tmp_path):
    """The graphs TensorRT builds in strongly typed mode, checked and measured with onnxruntime."""
    from onnx import numpy_helper

    bundle = export_mod.export(default_src, "tensorrt", precision=precision, out_dir=tmp_path, calib=calib_images,
                               calib_size=CALIB_SIZE)
    model = onnx.load(str(bundle / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    inits = {i.name: i for i in model.graph.initializer}
    if precision == "int8":
        q = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
        assert len(q) > 20
        for n in q:
            zp = numpy_helper.to_array(inits[n.input[2]])
            assert zp.dtype == "int8" and (zp == 0).all(), f"{n.name}: zero point must be int8 0"
    else:
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
        assert [o.type.tensor_type.elem_type for o in model.graph.output][1] == onnx.TensorProto.FLOAT
    with pytest.raises(Exception, match="backend='onnxruntime'"):
        load(bundle)
    with load(bundle, backend="onnxruntime") as det:
        m = run_dataset(det, val60, progress=False, warmup=0).metrics.map
    drop = (fp32_map["onnxruntime"] - m) * 100
    assert drop <= MAX_DROP[precision], f"tensorrt {precision} graph loses {drop:.2f} points in onnxruntime"


def test_accuracy_control_fails_with_exit_1_and_writes_nothing(val_set, tmp_path, capsys):
    from edgecv.cli import main

    images_dir, ann = val_set
    calib = tmp_path / "calib"
    calib.mkdir()
    import cv2

    for i in range(16):
        cv2.imwrite(str(calib / f"{i}.png"), shapes.render(shapes.SPLIT_SEEDS["train"], i).image)
    code = main(["export", "--target", "onnxruntime", "--precision", "int8", "--calib", str(calib), "-o",
                 str(tmp_path / "out"), "--max-map-drop", "-1", "--max-float-layers", "1", "--data", str(ann),
                 "--images", str(images_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert "could not be brought within -1 mAP50-95 points" in err and "Kept in float: /model/" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_accuracy_control_keeps_layers_in_float_until_the_budget_is_met(default_src, calib_images, val60, tmp_path):
    from edgecv.export.accuracy import AccuracyBudgetError, export_within_budget

    kw = dict(calib=calib_images, calib_size=CALIB_SIZE, precision="int8")
    with pytest.raises(AccuracyBudgetError) as info:  # an impossible budget: the history of every step
        export_within_budget(default_src, "onnxruntime", val60, -1.0, max_steps=3, out_dir=tmp_path / "x", **kw)
    drops = [h["drop"] for h in info.value.history]
    assert [len(h["kept_in_float"]) for h in info.value.history] == [0, 1, 2, 3]
    best = min(range(1, 4), key=lambda k: drops[k])
    assert drops[best] < drops[0], f"keeping layers in float never helped: {drops}"
    budget = drops[best] + 1e-6  # plain INT8 (step 0) fails this budget; step `best` meets it
    bundle = export_within_budget(default_src, "onnxruntime", val60, budget, max_steps=3, out_dir=tmp_path / "ok",
                                  bootstrap=10, **kw)
    v = Bundle.open(bundle).manifest["validation"]
    assert len(v["accuracy_control"]["kept_in_float"]) == best
    assert v["gate"] == {"max_map_drop": budget, "passed": True}
    assert -v["delta_map"] * 100 <= budget + 1e-9
    assert set(v["accuracy_control"]["kept_in_float"]) <= set(
        Bundle.open(bundle).manifest["provenance"]["quantization"]["excluded_nodes"])
