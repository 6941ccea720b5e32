"""Paired comparison: bootstrap interval, box parity, the mAP gate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgecv import Detections
from edgecv.harness import box_parity, paired_bootstrap
from edgecv.metrics import coco_metrics

from .test_metrics import constructed_case


def perfect_and_damaged(seed: int = 0):
    """Reference: every ground-truth box exactly; candidate: the same, but on a third of the
    images the boxes are shifted off their objects."""
    gt, _ = constructed_case(seed)
    ref = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 0.9}
        for a in gt["annotations"]
    ]
    cand = [
        dict(r, bbox=[r["bbox"][0] + (r["bbox"][2] * 0.6 if r["image_id"] % 3 == 0 else 0), *r["bbox"][1:]])
        for r in ref
    ]
    return gt, ref, cand


def test_bootstrap_is_repeatable_and_contains_the_true_difference():
    gt, ref, cand = perfect_and_damaged()
    true = coco_metrics(gt, cand).map - coco_metrics(gt, ref).map
    assert true < -0.1
    a = paired_bootstrap(gt, ref, [cand], n=60, seed=7)[0]
    b = paired_bootstrap(gt, ref, [cand], n=60, seed=7)[0]
    assert a == b
    assert a["low"] <= true <= a["high"] and a["high"] < 0
    c = paired_bootstrap(gt, ref, [cand], n=60, seed=8)[0]
    assert c != a


def test_bootstrap_of_an_identical_candidate_is_zero():
    gt, ref, _ = perfect_and_damaged()
    ci = paired_bootstrap(gt, ref, [ref], n=20, seed=0)[0]
    assert ci["low"] == ci["high"] == 0


def dets(boxes, scores, classes):
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, classes, ("a", "b"))


def test_box_parity_counts():
    ref = {
        1: dets([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0.9, 0.8, 0.1], [0, 1, 0]),
        2: dets([[0, 0, 10, 10]], [0.7], [0]),
    }
    cand = {
        1: dets([[0, 0, 10, 11], [20, 20, 40, 40], [100, 100, 120, 120]], [0.85, 0.8, 0.5], [0, 0, 1]),
        2: dets([[0, 0, 10, 10]], [0.7], [0]),
    }
    p = box_parity(ref, cand)
    # image 1: the first box matches (IoU 10/11), the second has the wrong class; the third is under 0.25
    assert p["reference_boxes"] == 3 and p["matched"] == 2 and p["missing"] == 1 and p["extra"] == 2
    assert math.isclose(p["mean_iou"], (10 / 11 + 1) / 2, rel_tol=1e-6)
    assert math.isclose(p["mean_abs_score_diff"], 0.025, rel_tol=1e-4)


@pytest.fixture(scope="module")
def perturbed_bundle(default_src, tmp_path_factory):
    """The default detector with noise on its weights: a candidate built to lose accuracy."""
    import copy

    import torch

    from edgecv.export import export

    src = copy.deepcopy(default_src)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in src.module.parameters():
            if p.ndim == 4:
                p.add_(torch.randn(p.shape, generator=gen) * p.std() * 0.35)
    src.name = "perturbed"
    return export(src, "onnxruntime", out_dir=tmp_path_factory.mktemp("perturbed"))


@pytest.mark.slow
def test_compare_gate_fails_a_worse_candidate_and_passes_an_identical_one(
    default_bundles, perturbed_bundle, val_set, tmp_path, capsys
):
    from edgecv.cli import main

    images_dir, ann = val_set
    common = ["--data", str(ann), "--images", str(images_dir), "--bootstrap", "20", "--max-map-drop", "0.5"]
    code = main(
        ["compare", "edgecv-tiny", str(default_bundles["onnxruntime"]), *common, "--json", str(tmp_path / "ok.json")]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    ok = json.loads((tmp_path / "ok.json").read_text())
    assert abs(ok["comparisons"][0]["delta_map"]) < 1e-3
    assert ok["comparisons"][0]["parity"]["matched_share"] == 1.0

    code = main(["compare", "edgecv-tiny", str(perturbed_bundle), *common, "--report", str(tmp_path / "report")])
    out = capsys.readouterr()
    assert code == 1
    assert "gate failed: perturbed-onnxruntime-fp32 loses" in out.err and "mAP50-95 points" in out.err
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Gate: failed" in report
    for png in ("pr_curves.png", "per_class_delta.png", "latency_hist.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"


def test_val_prints_metrics_and_per_class_ap(default_bundles, val_set, tmp_path, capsys):
    from edgecv.cli import main

    images_dir, ann = val_set
    assert (
        main(
            [
                "val",
                str(default_bundles["onnxruntime"]),
                "--data",
                str(ann),
                "--images",
                str(images_dir),
                "--json",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "mAP50-95" in out and "circle" in out
    m = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert m["stats"]["map"] >= 0.5 and set(m["per_class"]) >= {"circle", "square"}


def test_export_validate_records_results_in_the_manifest(val_set, tmp_path, capsys):
    from edgecv.bundle import Bundle
    from edgecv.cli import main

    images_dir, ann = val_set
    code = main(
        [
            "export",
            "--target",
            "onnxruntime",
            "-o",
            str(tmp_path),
            "--validate",
            "--data",
            str(ann),
            "--images",
            str(images_dir),
            "--bootstrap",
            "10",
            "--max-map-drop",
            "0.5",
        ]
    )
    assert code == 0
    bundle = Bundle.open(capsys.readouterr().out.strip())  # hashes still verify after the manifest update
    v = bundle.manifest["validation"]
    assert v["dataset"]["images"] == 24 and abs(v["delta_map"]) < 1e-3 and v["gate"]["passed"] is True
    assert v["source"]["map"] >= 0.5 and "cpu" in v["machine"]


def test_fast_bootstrap_equals_evaluating_each_draw_from_scratch():
    from edgecv.harness import _Resampler

    gt, results = constructed_case(1)
    fast, slow = _Resampler(gt, results, 100), _Resampler(gt, results, 100, fast=False)
    assert fast.ev is not None, "faster-coco-eval's accumulate routine was not found: the bootstrap runs slowly"
    rng = np.random.default_rng(3)
    ids = [i["id"] for i in gt["images"]]
    for _ in range(5):
        draw = [ids[k] for k in rng.integers(0, len(ids), len(ids))]
        assert abs(fast.map(draw) - slow.map(draw)) < 1e-9
    assert abs(fast.map(sorted(ids)) - coco_metrics(gt, results).map) < 1e-9


def test_bundles_of_one_name_from_two_folders_are_told_apart_in_the_tables(default_bundles, val_set, tmp_path):
    import shutil

    from edgecv.cli import main
    from edgecv.comparison import distinct_names

    bundle = default_bundles["onnxruntime"]
    copies = [shutil.copytree(bundle, tmp_path / folder / bundle.name) for folder in ("from-onnx", "from-ts")]
    images_dir, ann = val_set
    args = ["compare", "edgecv-tiny", *map(str, copies), "--data", str(ann), "--images", str(images_dir)]
    assert main([*args, "--bootstrap", "0", "--json", str(tmp_path / "c.json")]) == 0
    rows = [c["name"] for c in json.loads((tmp_path / "c.json").read_text())["comparisons"]]
    assert rows == [f"from-onnx/{bundle.name}", f"from-ts/{bundle.name}"]

    names = ["y-onnxruntime-fp32", "y-onnxruntime-fp32", "y-openvino-int8", "edgecv-tiny (torch)"]
    specs = ["a/onnx/y-onnxruntime-fp32", "a/ts/y-onnxruntime-fp32", "a/onnx/y-openvino-int8", "edgecv-tiny"]
    assert distinct_names(names, specs) == [
        "onnx/y-onnxruntime-fp32",
        "ts/y-onnxruntime-fp32",
        "y-openvino-int8",
        "edgecv-tiny (torch)",
    ]
    same_folder_name = ["b/x/m", "c/x/m"]
    out = distinct_names(["m", "m"], same_folder_name)
    assert out == [str((Path.cwd() / p).resolve()) for p in same_folder_name] and len(set(out)) == 2


# --- one input size per comparison ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_at_640(default_src, tmp_path_factory):
    """edgecv-tiny (trained at 320, its source's own size) exported at 640."""
    from edgecv.export import export

    return export(default_src, "onnxruntime", out_dir=tmp_path_factory.mktemp("at640"), imgsz=640, name="tiny-640")


def test_sources_run_at_their_bundles_size_and_contradictions_are_refused(default_bundles, bundle_at_640):
    from edgecv.errors import EdgecvError
    from edgecv.pipeline import sized_source_options

    b320, b640 = str(default_bundles["onnxruntime"]), str(bundle_at_640)
    opts = {"names": None}
    ref, cand = sized_source_options(["edgecv-tiny", b640], opts)
    assert ref["imgsz"] == 640 and "imgsz" not in cand  # the source takes the bundle's size
    assert sized_source_options(["edgecv-tiny", b320], opts)[0]["imgsz"] == 320
    assert sized_source_options(["edgecv-tiny", b640], {"imgsz": 640})[0]["imgsz"] == 640
    with pytest.raises(EdgecvError, match=r"--imgsz 320x320 contradicts .*tiny-640 640x640.*--across-sizes"):
        sized_source_options(["edgecv-tiny", b640], {"imgsz": 320})
    with pytest.raises(EdgecvError, match=r"different input sizes \(.*320x320, tiny-640 640x640\)"):
        sized_source_options(["edgecv-tiny", b320, b640], opts)
    # asked for by name: nothing is changed or refused
    assert sized_source_options(["edgecv-tiny", b640], {"imgsz": 320}, across_sizes=True)[0]["imgsz"] == 320


def test_compare_of_a_320_source_with_its_640_bundle_measures_the_conversion(
    default_src, bundle_at_640, val_set, tmp_path, capsys
):
    """The source's own size is 320 and its bundle's 640: compare runs the source at 640, so the
    FP32 bundle loses nothing; at 320 the same pair differs by the size, and compare says so."""
    from edgecv.cli import main

    images_dir, ann = val_set
    common = ["--data", str(ann), "--images", str(images_dir), "--bootstrap", "20"]
    assert main(["compare", "edgecv-tiny", str(bundle_at_640), *common, "--json", str(tmp_path / "same.json")]) == 0
    same = json.loads((tmp_path / "same.json").read_text())
    assert abs(same["comparisons"][0]["delta_map"]) < 1e-3
    assert same["comparisons"][0]["parity"]["matched_share"] == 1.0

    capsys.readouterr()
    assert main(["compare", "edgecv-tiny", str(bundle_at_640), *common, "--imgsz", "320"]) == 2
    err = capsys.readouterr().err
    assert "--imgsz 320x320 contradicts" in err and "640x640" in err and "--across-sizes" in err

    args = ["compare", "edgecv-tiny", str(bundle_at_640), *common, "--imgsz", "320", "--across-sizes"]
    assert main([*args, "--json", str(tmp_path / "across.json")]) == 0
    out = capsys.readouterr().out
    assert "edgecv-tiny (torch) @320x320" in out and "tiny-640 @640x640" in out
    across = json.loads((tmp_path / "across.json").read_text())
    assert abs(across["comparisons"][0]["delta_map"]) > 1e-3  # what the size alone changes


def test_compare_refuses_bundles_of_two_sizes_and_val_a_contradicting_imgsz(
    default_bundles, bundle_at_640, val_set, capsys
):
    from edgecv.cli import main
    from edgecv.errors import EdgecvError
    from edgecv.evaluation import compare
    from edgecv.runtimes import load

    images_dir, ann = val_set
    data = ["--data", str(ann), "--images", str(images_dir)]
    assert main(["compare", str(default_bundles["onnxruntime"]), str(bundle_at_640), *data]) == 2
    assert "different input sizes" in capsys.readouterr().err
    assert main(["val", str(bundle_at_640), *data, "--imgsz", "320"]) == 2
    assert "contradicts the bundle, which takes 640x640" in capsys.readouterr().err
    # the library refuses it too, before any image is run
    with load(default_bundles["onnxruntime"]) as a, load(bundle_at_640) as b:
        with pytest.raises(EdgecvError, match="different input sizes"):
            compare([("a", a), ("b", b)], dataset=None)
