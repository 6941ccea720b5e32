"""Classification and semantic segmentation through the whole pipeline: export, the runtime's
results, the harness's metrics and paired comparison, INT8, bad input.

The models are the example networks of examples/shapes_models.py (a classifier with
squeeze-and-excitation blocks and a U-Net, plain ``nn.Module`` classes a user wrote), trained on
the shapes data by examples/train_shapes_tasks.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecv import Classifications, EdgecvError, InvalidImageError, SegmentationMap, load
from edgecv import classify_eval as CE
from edgecv import segment_eval as SE
from edgecv import taskeval as TE
from edgecv.bundle import Bundle, validate_manifest
from edgecv.errors import BundleError
from edgecv.images import read_image

from .conftest import EXPORT_TARGETS, TASK_SIZES, example_model, task_names

TASKS = ("classify", "segment")
pytestmark = pytest.mark.skipif(not EXPORT_TARGETS, reason="needs onnxruntime or openvino")


def _dataset(task, cls_set, seg_set):
    return TE.load_task_dataset(cls_set if task == "classify" else seg_set, task)


# --- parity: the FP32 bundles equal the source -----------------------------------------------------


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_fp32_classifier_has_the_sources_top1_on_every_image(target, task_bundles, task_reference, cls_set):
    ds = TE.load_task_dataset(cls_set, "classify")
    ref = TE.run_task_dataset(task_reference("classify"), ds, progress=False, warmup=0)
    with load(task_bundles("classify", target), probabilities=True) as det:
        run = TE.run_task_dataset(det, ds, progress=False, warmup=0)
        probs = det(read_image(ds.images[0])).probabilities
    assert np.array_equal(run.top1, ref.top1), "identical top-1 on every image"
    assert run.metrics.stats == ref.metrics.stats
    src = task_reference("classify", probabilities=True)(read_image(ds.images[0])).probabilities
    assert probs.shape == (6,) and np.allclose(probs, src, atol=1e-4) and abs(probs.sum() - 1) < 1e-4
    assert ref.metrics.primary > 0.9, "the example classifier is trained"


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_fp32_segmenter_keeps_the_sources_miou(target, task_bundles, task_reference, seg_set):
    ds = TE.load_task_dataset(seg_set, "segment")
    ref = TE.run_task_dataset(task_reference("segment"), ds, progress=False, warmup=0)
    with load(task_bundles("segment", target)) as det:
        run = TE.run_task_dataset(det, ds, progress=False, warmup=0)
    assert abs(run.metrics.primary - ref.metrics.primary) < 0.001
    p = TE.parity(ref, run)
    assert p["same_pixel_share"] > 0.999
    assert ref.metrics.primary > 0.5, "the example U-Net is trained"


# --- INT8 keeps the accuracy -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_int8_loses_at_most_one_point(task, target, task_bundles, task_reference, cls_set, seg_set):
    from edgecv.evaluation import compare

    ds = _dataset(task, cls_set, seg_set)
    b = task_bundles(task, target, "int8")
    m = Bundle.open(b).manifest
    assert m["precision"] == "int8" and m["provenance"]["calibration"]["size"] > 0
    with load(b) as det:
        result = compare([("source", task_reference(task)), ("int8", det)], ds, bootstrap=100, progress=False)
    c = result.comparisons[0]
    assert -c.delta * 100 <= 1.0, f"{target} int8 {task}: {c.delta * 100:+.2f} points"
    assert c.ci["low"] <= c.delta <= c.ci["high"]
    assert not result.failures(1.0) and result.failures(-5.0), "the gate fails when asked for a gain"


# --- the runtime's results -------------------------------------------------------------------------


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_classifications_are_ranked_probabilities(target, task_bundles, cls_set):
    ds = TE.load_task_dataset(cls_set, "classify")
    with load(task_bundles("classify", target), top_k=3) as det:
        r = det(read_image(ds.images[0]))
        batch = det.predict([read_image(p) for p in ds.images[:6]])
    assert isinstance(r, Classifications) and len(r) == 3
    assert np.all(np.diff(r.scores) <= 0) and 0 < r.scores.sum() <= 1 + 1e-5
    assert r.label == r.names[r.top1] and r.names == tuple(task_names("classify"))
    assert [b.top1 for b in batch][0] == r.top1 and len(batch) == 6
    with load(task_bundles("classify", target)) as det:
        assert len(det(read_image(ds.images[0]))) == 5  # the manifest's top_k


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_segmentation_maps_are_in_the_original_pixels(target, task_bundles, seg_set):
    ds = TE.load_task_dataset(seg_set, "segment")
    img = read_image(ds.images[0])
    with load(task_bundles("segment", target)) as det:
        for frame in (img, img[:, :150], img[:90], np.ascontiguousarray(img[::3, ::2])):
            s = det(frame)
            assert isinstance(s, SegmentationMap) and s.shape == frame.shape[:2]
            assert s.class_map.min() >= 0 and s.class_map.max() < len(det.names) and s.probabilities is None
        # a letterboxed frame's padding never shows: the map of a wide crop matches the full
        # image's map where they overlap, up to the resampling at class edges
        full, left = det(img), det(np.ascontiguousarray(img[:, : img.shape[1] // 2]))
        agree = (full.class_map[:, : img.shape[1] // 2] == left.class_map).mean()
        assert agree > 0.9


def test_segmentation_probabilities_are_optional(task_bundles, tmp_path, seg_set):
    from edgecv.export import export

    b = export(
        example_model("segment"),
        EXPORT_TARGETS[0],
        task="segment",
        names=task_names("segment"),
        imgsz=TASK_SIZES["segment"],
        probabilities=True,
        out_dir=tmp_path,
    )
    assert set(Bundle.open(b).manifest["output"]["tensors"]) == {"labels", "probs"}
    img = read_image(TE.load_task_dataset(seg_set, "segment").images[0])
    with load(b, probabilities=True) as det, load(task_bundles("segment", EXPORT_TARGETS[0])) as plain:
        s = det(img)
        assert s.probabilities.shape == (7, *img.shape[:2])
        assert np.allclose(s.probabilities.sum(0), 1, atol=1e-3)
        assert (np.argmax(s.probabilities, 0) == s.class_map).mean() > 0.98  # linear vs nearest resize at edges
        assert np.array_equal(s.class_map, plain(img).class_map)
    with pytest.raises(EdgecvError, match="exported without probabilities"):
        load(task_bundles("segment", EXPORT_TARGETS[0]), probabilities=True)
    with pytest.raises(EdgecvError, match="segmenters"):
        export(
            example_model("classify"),
            EXPORT_TARGETS[0],
            task="classify",
            names=task_names("classify"),
            imgsz=64,
            probabilities=True,
            out_dir=tmp_path,
        )


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_bad_input_is_refused_as_for_detection(task, target, task_bundles):
    with load(task_bundles(task, target)) as det:
        for bad, msg in (
            (np.zeros((32, 32, 3), np.float32), "dtype"),
            (np.zeros((0, 5, 3), np.uint8), "5x0 pixels"),
            (np.zeros((1, 1, 3), np.uint8), "1x1 pixels"),
            (np.zeros((8, 8, 2), np.uint8), "not HxW"),
            ("missing.png", "does not exist"),
        ):
            with pytest.raises(InvalidImageError, match=msg):
                det(bad)
        for ok in (
            np.zeros((8, 8, 3), np.uint8),
            np.full((40, 900), 200, np.uint8),
            np.zeros((50, 60, 4), np.uint8),
            np.asfortranarray(np.zeros((70, 30, 3), np.uint8)),
        ):
            r = det(ok)
            if task == "segment":
                assert r.shape == ok.shape[:2]
            else:
                assert len(r) == 5


def test_predict_stream_and_batches_agree(task_bundles, cls_set, seg_set):
    for task in TASKS:
        ds = _dataset(task, cls_set, seg_set)
        imgs = [read_image(p) for p in ds.images[:5]]
        with load(task_bundles(task, EXPORT_TARGETS[0]), batch_size=4) as det:
            single = [det(i) for i in imgs]
            batched = det.predict(imgs)
            streamed = list(det.stream(iter(imgs)))
        for a, b, c in zip(single, batched, streamed):
            if task == "classify":
                assert np.array_equal(a.class_ids, b.class_ids) and np.allclose(a.scores, c.scores, atol=1e-5)
            else:
                assert np.array_equal(a.class_map, b.class_map) and np.array_equal(a.class_map, c.class_map)


# --- the manifest -----------------------------------------------------------------------------------


def test_manifests_state_the_task_and_its_placement(task_bundles):
    for task in TASKS:
        m = Bundle.open(task_bundles(task, EXPORT_TARGETS[0])).manifest
        assert m["task"] == task
        if task == "classify":
            assert m["input"]["crop"] == {"size": [64, 64], "resize": 73, "center": True}
            assert "letterbox" not in m["input"] and m["output"]["tensors"] == {"probs": "probs"}
        else:
            assert m["input"]["letterbox"]["size"] == [128, 128] and m["output"]["tensors"] == {"labels": "labels"}
        bad = json.loads(json.dumps(m))
        bad["output"]["tensors"] = {"boxes": "boxes"}
        with pytest.raises(BundleError, match="output.tensors"):
            validate_manifest(bad)
        bad = json.loads(json.dumps(m))
        bad["task"] = "pose"
        with pytest.raises(BundleError, match="task 'pose'"):
            validate_manifest(bad)
    m = json.loads(json.dumps(Bundle.open(task_bundles("classify", EXPORT_TARGETS[0])).manifest))
    del m["input"]["crop"]
    with pytest.raises(BundleError, match="crop"):
        validate_manifest(m)


# --- sources ----------------------------------------------------------------------------------------


def test_a_wrong_output_for_the_task_is_refused(tmp_path):
    from edgecv.errors import SourceError
    from edgecv.export import export

    with pytest.raises(SourceError, match=r"\[B, C, h, w\]"):
        export(example_model("classify"), EXPORT_TARGETS[0], task="segment", imgsz=64, out_dir=tmp_path)
    with pytest.raises(SourceError, match="7 classes but 3 class names"):
        export(
            example_model("segment"),
            EXPORT_TARGETS[0],
            task="segment",
            names=["a", "b", "c"],
            imgsz=128,
            out_dir=tmp_path,
        )
    with pytest.raises(EdgecvError, match="multiples of 8"):
        export(example_model("segment"), EXPORT_TARGETS[0], task="segment", imgsz=100, out_dir=tmp_path)


def test_unnamed_classes_and_onnx_and_torchscript_sources(tmp_path, task_reference, cls_set):
    """The same classifier handed in as an nn.Module without names, as TorchScript and as ONNX:
    every route gives the reference's probabilities."""
    import torch

    from edgecv.export import export

    net = example_model("classify")
    img = read_image(TE.load_task_dataset(cls_set, "classify").images[3])
    want = task_reference("classify", probabilities=True)(img).probabilities
    ts = tmp_path / "net.torchscript"
    torch.jit.trace(net, torch.zeros(1, 3, 64, 64)).save(str(ts))
    onnx_path = tmp_path / "net.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 64, 64),),
        str(onnx_path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}},
        dynamo=False,
    )
    for i, src in enumerate((net, ts, onnx_path)):
        b = export(src, EXPORT_TARGETS[0], task="classify", imgsz=64, out_dir=tmp_path, name=f"route{i}")
        with load(b, probabilities=True) as det:
            assert det.names == tuple(f"class{k}" for k in range(6))
            assert np.allclose(det(img).probabilities, want, atol=1e-4)


# --- the harness's figures --------------------------------------------------------------------------


def test_segmentation_metrics_by_hand():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 0, 0]])
    conf = SE.confusion(np.where(gt == 255, 3, gt), pred, 3)
    assert conf.sum() == 10  # the two ignored pixels are left out
    m = SE.segmentation_metrics(conf, ("a", "b", "c"))
    # a: inter 3, union 3 + 5 - 3... gt a = 4, pred a = 4 (3 + the 2 -> 0), inter 3 -> 3 / 5
    # b: gt 4, pred 5, inter 4 -> 4 / 5; c: gt 2, pred 1, inter 1 -> 1 / 2
    assert m.per_class == pytest.approx({"a": 3 / 5, "b": 4 / 5, "c": 1 / 2})
    assert m.stats["miou"] == pytest.approx((3 / 5 + 4 / 5 + 1 / 2) / 3)
    assert m.stats["pixel_acc"] == pytest.approx(8 / 10)


def test_classification_metrics_and_bootstrap_by_hand():
    labels = np.array([0, 1, 2, 0, 1])
    ranks = np.array([0, 0, 3, 1, 7])  # the true class's place in each image's top k
    m = CE.classification_metrics(ranks, labels, ("x", "y", "z"))
    assert m.stats["top1"] == pytest.approx(0.4) and m.stats["top5"] == pytest.approx(0.8)
    assert m.per_class == pytest.approx({"x": 0.5, "y": 0.5, "z": 0.0})

    def run(r):
        return TE.TaskRun(
            "r",
            "classify",
            np.asarray(r),
            np.zeros(5),
            [1.0],
            ("x", "y", "z"),
            CE.classification_metrics(np.asarray(r), labels, ("x", "y", "z")),
        )

    same = TE.paired_bootstrap(run(ranks), [run(ranks)], n=50)[0]
    assert same["low"] == same["high"] == 0.0  # paired: the same predictions never differ
    worse = TE.paired_bootstrap(run(ranks), [run([1, 1, 3, 1, 7])], n=200, seed=1)[0]
    assert worse["high"] <= 0 and worse["low"] < -0.2 and worse["mean"] == pytest.approx(-0.4, abs=0.1)


def test_task_datasets_are_checked(tmp_path, seg_set):
    with pytest.raises(EdgecvError, match="no class folders"):
        (tmp_path / "empty").mkdir()
        TE.load_task_dataset(tmp_path / "empty", "classify")
    import shutil

    broken = tmp_path / "seg"
    shutil.copytree(seg_set, broken)
    next((broken / "masks").iterdir()).unlink()
    with pytest.raises(EdgecvError, match="have no mask"):
        TE.load_task_dataset(broken, "segment")
    (broken / "classes.txt").unlink()
    with pytest.raises(EdgecvError, match="classes.txt"):
        TE.load_task_dataset(broken, "segment")
    ds = TE.load_task_dataset(seg_set, "segment")
    assert ds.classes[0] == "background" and len(ds) == 40
    with pytest.raises(EdgecvError, match="does not know"):
        TE.class_index(("a", "b"), ds.classes)


# --- the command line ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_exports_validates_compares_benches_and_predicts(tmp_path, seg_set, task_calib, capsys):
    """The U-Net as a user hands it over: a TorchScript file and --task segment."""
    import torch

    from edgecv.cli import main

    ts = tmp_path / "unet.torchscript"
    torch.jit.trace(example_model("segment"), torch.zeros(1, 3, 128, 128)).save(str(ts))
    names = ",".join(task_names("segment"))
    out = tmp_path / "bundles"
    target = EXPORT_TARGETS[0]
    assert (
        main(
            [
                "export",
                str(ts),
                "--task",
                "segment",
                "--names",
                names,
                "--imgsz",
                "128",
                "--target",
                target,
                "-o",
                str(out),
                "--name",
                "unet",
                "--data",
                str(seg_set),
                "--validate",
                "--max-drop",
                "0.1",
                "--bootstrap",
                "50",
            ]
        )
        == 0
    )
    capsys.readouterr()
    m = Bundle.open(out / "unet").manifest
    v = m["validation"]
    assert m["task"] == "segment" and v["metric"] == "mIoU" and v["gate"]["passed"]
    assert abs(v["delta"]) < 0.001 and v["parity"]["same_pixel_share"] > 0.999

    assert main(["val", str(out / "unet"), "--data", str(seg_set), "--json", str(tmp_path / "val.json")]) == 0
    text = capsys.readouterr().out
    assert "mIoU" in text and "background" in text
    assert json.loads((tmp_path / "val.json").read_text())["metrics"]["stats"]["miou"] == pytest.approx(
        v["bundle"]["miou"]
    )

    assert (
        main(
            [
                "export",
                str(ts),
                "--task",
                "segment",
                "--names",
                names,
                "--imgsz",
                "128",
                "--target",
                target,
                "-o",
                str(out),
                "--name",
                "unet-int8",
                "--precision",
                "int8",
                "--calib",
                str(task_calib["segment"]),
            ]
        )
        == 0
    )
    capsys.readouterr()
    gate = [
        "compare",
        str(ts),
        str(out / "unet"),
        str(out / "unet-int8"),
        "--task",
        "segment",
        "--names",
        names,
        "--imgsz",
        "128",
        "--data",
        str(seg_set),
        "--bootstrap",
        "50",
        "--json",
        str(tmp_path / "cmp.json"),
    ]
    assert main(gate + ["--max-drop", "1"]) == 0
    text = capsys.readouterr().out
    assert "same pixels" in text and "unet-int8" in text
    res = json.loads((tmp_path / "cmp.json").read_text())
    assert res["task"] == "segment" and len(res["comparisons"]) == 2
    assert main(gate + ["--max-drop", "-50"]) == 1  # asks for a 50-point gain: fails, and says so
    assert "gate failed" in capsys.readouterr().err

    assert (
        main(
            [
                "bench",
                str(out / "unet"),
                "--seconds",
                "0.2",
                "--min-iters",
                "3",
                "--warmup",
                "1",
                "--data",
                str(seg_set),
                "--limit",
                "4",
                "--json",
                str(tmp_path / "bench.json"),
            ]
        )
        == 0
    )
    row = json.loads((tmp_path / "bench.json").read_text())["rows"][0]
    assert row["iterations"] >= 3 and row["stages_ms"]["e2e"]["p50"] > 0
    assert "unet" in capsys.readouterr().out

    img = sorted((seg_set / "images").glob("*.png"))[0]
    assert main(["predict", str(out / "unet"), str(img), "--json", "--save", str(tmp_path / "seg.png")]) == 0
    got = json.loads(capsys.readouterr().out)[str(img)]
    assert sum(got["pixels"].values()) == got["shape"][0] * got["shape"][1]
    assert read_image(tmp_path / "seg.png").shape == read_image(img).shape
    assert main(["inspect", str(out / "unet")]) == 0
    assert "argmax class id" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_classifier_from_a_torchvision_state_dict(tmp_path, cls_set, capsys):
    """A torchvision ResNet-18 state dict with --arch: recognised as a classifier, ImageNet's
    normalisation in the graph, no unpickling."""
    import torch
    from torchvision.models import resnet18

    from edgecv.cli import main

    torch.manual_seed(0)
    net = resnet18(num_classes=6).eval()
    sd = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), sd)
    names = ",".join(task_names("classify"))
    assert (
        main(
            [
                "export",
                str(sd),
                "--arch",
                "resnet18",
                "--num-classes",
                "6",
                "--names",
                names,
                "--imgsz",
                "96",
                "--target",
                EXPORT_TARGETS[0],
                "-o",
                str(tmp_path),
                "--name",
                "r18",
            ]
        )
        == 0
    )
    capsys.readouterr()
    m = Bundle.open(tmp_path / "r18").manifest
    assert m["task"] == "classify" and m["input"]["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert m["input"]["crop"] == {"size": [96, 96], "resize": 110, "center": True}
    assert (
        main(
            [
                "compare",
                str(sd),
                str(tmp_path / "r18"),
                "--arch",
                "resnet18",
                "--num-classes",
                "6",
                "--names",
                names,
                "--imgsz",
                "96",
                "--data",
                str(cls_set),
                "--bootstrap",
                "20",
                "--max-drop",
                "1",
            ]
        )
        == 0
    )
    assert "same top-1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["export", str(sd), "--task", "pose"])
    assert (
        main(
            [
                "export",
                str(sd),
                "--arch",
                "resnet18",
                "--num-classes",
                "6",
                "--imgsz",
                "96",
                "--crop-resize",
                "128",
                "--target",
                EXPORT_TARGETS[0],
                "-o",
                str(tmp_path),
                "--name",
                "r18-128",
            ]
        )
        == 0
    )
    assert Bundle.open(tmp_path / "r18-128").manifest["input"]["crop"]["resize"] == 128
    assert (
        main(
            [
                "export",
                str(sd),
                "--arch",
                "resnet18",
                "--num-classes",
                "6",
                "--imgsz",
                "96",
                "--crop-resize",
                "64",
                "--target",
                EXPORT_TARGETS[0],
                "-o",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "at least the input's longer side" in capsys.readouterr().err


# --- torchvision's classifiers and segmenters ---------------------------------------------------------


# the larger networks take 4-9 s each: two classifiers and a segmenter stay in the fast lane
@pytest.mark.parametrize(
    "arch,size",
    [
        pytest.param("googlenet", 96, marks=pytest.mark.slow),
        pytest.param("inception_v3", 128, marks=pytest.mark.slow),
        ("mobilenet_v3_small", 96),
        ("efficientnet_b0", 96),
        pytest.param("resnext50_32x4d", 64, marks=pytest.mark.slow),
        ("lraspp_mobilenet_v3_large", 96),
        pytest.param("deeplabv3_mobilenet_v3_large", 64, marks=pytest.mark.slow),
        pytest.param("fcn_resnet50", 64, marks=pytest.mark.slow),
    ],
)
def test_torchvision_constructors_match_pytorch(arch, size, tmp_path, val_images):
    """Random weights (no pretrained weights can be downloaded here): the bundle must reproduce the
    PyTorch graph's class probabilities, or its class map."""
    import torch
    from torchvision import models

    from edgecv.export import export, reference
    from edgecv.export.tasks import SEGMENTERS, settle_batchnorm

    task = "segment" if arch in SEGMENTERS else "classify"
    torch.manual_seed(0)
    kw = {"weights": None, "num_classes": 5}
    if task == "segment":
        kw["weights_backbone"] = None
    if arch in ("googlenet", "inception_v3"):
        kw.update(aux_logits=False, init_weights=True)
    net = settle_batchnorm(models.get_model(arch, **kw), size)
    opts = {"probabilities": True} if task == "classify" else {}  # a segmenter's class map is compared
    ref = reference(net, imgsz=size, detector_options=opts)
    assert ref.task == task and ref.manifest["input"]["normalization"]["std"] == pytest.approx([0.229, 0.224, 0.225])
    target = (
        "openvino"
        if arch in ("googlenet", "lraspp_mobilenet_v3_large") and "openvino" in EXPORT_TARGETS
        else EXPORT_TARGETS[0]
    )
    with load(export(net, target, imgsz=size, out_dir=tmp_path), **opts) as det:
        for img in val_images[:3]:
            a, b = ref(img), det(img)
            if task == "classify":
                assert np.ptp(a.probabilities) > 1e-3, "the outputs depend on the input"
                assert np.allclose(a.probabilities, b.probabilities, atol=1e-4), arch
            else:
                assert len(np.unique(a.class_map)) > 1, "the outputs depend on the input"
                assert (a.class_map == b.class_map).mean() > 0.999, arch


@pytest.mark.slow
def test_int8_accuracy_control_on_top1(tmp_path, cls_set, task_calib):
    """export --max-drop for a classifier: the budget in top-1 points, layers kept in float by
    sensitivity while it is not met, the figures in the manifest."""
    from edgecv.export import load_source
    from edgecv.export.accuracy import AccuracyBudgetError, export_within_budget

    ds = TE.load_task_dataset(cls_set, "classify")
    src = load_source(example_model("classify"), task="classify", names=task_names("classify"))
    kw = dict(calib=str(task_calib["classify"]), imgsz=64, precision="int8", out_dir=tmp_path, bootstrap=20)
    b = export_within_budget(src, EXPORT_TARGETS[0], ds, 1.0, name="ok", **kw)
    v = Bundle.open(b).manifest["validation"]
    assert v["metric"] == "top-1" and v["gate"]["passed"] and -v["delta"] * 100 <= 1.0
    assert v["accuracy_control"]["steps"][0]["metric"] == "top-1"
    with pytest.raises(AccuracyBudgetError, match="top-1 points") as e:
        export_within_budget(src, EXPORT_TARGETS[0], ds, -50.0, name="never", max_steps=1, **kw)
    steps = e.value.history
    assert len(steps) == 2 and steps[0]["kept_in_float"] == [] and len(steps[1]["kept_in_float"]) == 1
    assert not (tmp_path / "never").exists()
