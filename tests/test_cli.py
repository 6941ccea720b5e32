"""The CLI: thin wrappers, clear errors with exit status 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv.cli import main
from edgecv.runtimes import is_available
from edgecv.runtimes.tensorrt.plans import can_build_here


def test_env_lists_every_backend(capsys):
    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    keys = {r["backend"]: r for r in info["backends"]}
    assert {"onnxruntime", "openvino", "torch", "tensorrt"} <= set(keys)
    # usable exactly where TensorRT and a GPU are (machine by machine); where not, the row says why
    why_not = can_build_here()
    assert keys["tensorrt"]["usable"] is (why_not is None), keys["tensorrt"]
    if why_not is not None:
        assert why_not in keys["tensorrt"]["note"], keys["tensorrt"]
    for k in ("onnxruntime", "openvino"):
        assert keys[k]["usable"] == is_available(k)


def test_inspect_shows_files_and_hashes(default_bundles, capsys):
    b = default_bundles["onnxruntime"]
    assert main(["inspect", str(b)]) == 0
    out = capsys.readouterr().out
    assert "model.onnx" in out and "sha256 verified" in out and "num_dets" in out
    assert main(["inspect", str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == "onnxruntime"


def test_predict_prints_and_draws(default_bundles, val_set, tmp_path, capsys):
    images_dir, _ = val_set
    img = sorted(images_dir.glob("*.png"))[0]
    out = tmp_path / "drawn.png"
    assert main(["predict", str(default_bundles["onnxruntime"]), str(img), "--save", str(out), "--json"]) == 0
    dets = json.loads(capsys.readouterr().out)[str(img)]
    assert dets and {"box", "score", "label", "class_id"} <= set(dets[0])
    drawn, orig = cv2.imread(str(out)), cv2.imread(str(img))
    assert drawn.shape == orig.shape and not np.array_equal(drawn, orig)


def test_predict_takes_folders_and_globs_and_saves_into_a_folder(default_bundles, val_set, tmp_path, capsys):
    images_dir, _ = val_set
    b = str(default_bundles["onnxruntime"])
    n = len(sorted(images_dir.glob("*.png")))
    # a folder and a glob: every image in them (the folder used to be "image file ... does not exist")
    assert main(["predict", b, str(images_dir), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == n
    assert main(["predict", b, str(images_dir / "*.png"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == n
    # --save DIR/ with one image writes into the folder (it used to raise OpenCV's error, exit 1)
    one = str(sorted(images_dir.glob("*.png"))[0])
    assert main(["predict", b, one, "--save", str(tmp_path / "out") + "/"]) == 0
    assert (tmp_path / "out" / Path(one).name).is_file()
    # a file name OpenCV has no writer for: exit 2, a message, no traceback
    capsys.readouterr()
    assert main(["predict", b, one, "--save", str(tmp_path / "drawn.xyz")]) == 2
    err = capsys.readouterr().err
    assert "could not write" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", b, str(empty)]) == 2
    assert "holds no images" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["export", "missing.pt"], "does not exist"),
        (["export", "--target", "coreml"], "unknown target 'coreml'"),
        (["inspect", "nowhere"], "no bundle"),
        (["predict", "nowhere", "x.jpg"], "no bundle"),
    ],
)
def test_user_errors_exit_2_without_traceback(argv, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_export_command_writes_a_loadable_bundle(tmp_path, capsys):
    code = main(["export", "--target", "onnxruntime", "--imgsz", "256", "-o", str(tmp_path), "--name", "cli"])
    assert code == 0
    bundle = capsys.readouterr().out.strip()
    from edgecv import load

    with load(bundle) as det:
        assert det.input_size == (256, 256)


@pytest.mark.slow
def test_demo_prints_the_table(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path), "--count", "6", "--json", str(tmp_path / "rows.json")]) == 0
    out = capsys.readouterr().out
    assert "mAP50-95" in out and "torch (source)" in out
    rows = json.loads((tmp_path / "rows.json").read_text())
    targets = [r["target"] for r in rows]
    assert targets[0] == "torch (source)" and set(targets[1:]) == {
        t for t in ("onnxruntime", "openvino") if is_available(t)
    }
    for r in rows[1:]:
        assert abs(r["delta_map"]) < 1e-3 and r["size_bytes"] > 0


def test_a_missing_names_file_is_refused_not_taken_as_a_class(tmp_path, capsys):
    """--names names.txt that does not exist used to become one class called 'names.txt'."""
    from edgecv.cli.commands import _names

    assert _names("car, person") == ["car", "person"]
    (tmp_path / "names.txt").write_text("car\nperson\n")
    assert _names(str(tmp_path / "names.txt")) == ["car", "person"]
    assert _names("traffic light") == ["traffic light"]  # one plain name is still a name
    missing = str(tmp_path / "nope.txt")
    assert main(["export", "edgecv-tiny", "--names", missing, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "class names file" in err and "nope.txt" in err and not (tmp_path / "edgecv-tiny-onnxruntime-fp32").exists()


def test_options_may_sit_between_positionals():
    """`edgecv compare model.pt --trust-pickle b1 b2` used to fail with 'unrecognized arguments'."""
    from edgecv.cli import build_parser, parse

    ap = build_parser()
    a = parse(ap, ["compare", "model.pt", "--trust-pickle", "b1", "b2", "--data", "val.json"])
    assert a.models == ["model.pt", "b1", "b2"] and a.trust_pickle and a.data == "val.json"
    assert a.func.__name__ == "run_compare"
    a = parse(ap, ["--debug", "predict", "bundle", "x.png", "--conf", "0.5", "y.png"])
    assert a.images == ["x.png", "y.png"] and a.conf == 0.5 and a.debug
    with pytest.raises(SystemExit) as e:  # what is wrong still says so, exit 2
        parse(ap, ["compare", "a", "b", "--no-such-option"])
    assert e.value.code == 2


# --- inspect: every section in words ---------------------------------------------------------------


def _inspect(bundle, capsys) -> str:
    assert main(["inspect", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and '"' not in out, out  # no section printed as raw JSON
    return out


def test_inspect_shows_tensorrt_build_settings(default_tensorrt_graph, capsys):
    from edgecv.bundle import Bundle

    out = _inspect(default_tensorrt_graph, capsys)
    build = Bundle.open(default_tensorrt_graph).manifest["runtime"]["tensorrt"]["build"]
    assert "tensorrt build settings" in out
    assert f"workspace (MB)          {build['workspace_mb']}" in out
    assert f"largest batch           {build['max_batch']}" in out
    assert f"optimization level      {build['optimization_level']}" in out
    assert "profile    images: min [1, 320, 320, 3]" in out
    assert "checked    against TensorRT" in out and "0 errors" in out
    if can_build_here() is not None:  # no plan where TensorRT cannot build one
        assert "plan       none yet" in out


def test_inspect_shows_quantization_and_calibration(default_int8_bundle, capsys):
    out = _inspect(default_int8_bundle, capsys)
    assert "calibration 16 images from" in out  # the fixture calibrates on 16
    assert "quantization:" in out
    for line in ("  format ", "QDQ", "  method ", "percentile", "  kept in float ", "/model/box_out.0/Conv"):
        assert line in out, line


def test_inspect_shows_validation_in_points(default_bundles, default_src, val_set, tmp_path, capsys):
    import shutil

    from edgecv.bundle import Bundle
    from edgecv.datasets import load_dataset
    from edgecv.pipeline import validate_bundle

    images_dir, ann = val_set
    b = tmp_path / "validated"
    shutil.copytree(default_bundles["onnxruntime"], b)
    validate_bundle(b, default_src, load_dataset(ann, images_dir), bootstrap=20, progress=False)
    v = Bundle.open(b).manifest["validation"]
    out = _inspect(b, capsys)
    assert f"validation on {v['dataset']['name']} (coco, 24 images" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("mAP50-95"))
    assert row.split()[1:] == [f"{v['source']['map'] * 100:.2f}", f"{v['bundle']['map'] * 100:.2f}"]
    assert f"Δ mAP50-95  {v['delta_map'] * 100:+.2f} points, 95% interval" in out
    assert "gate " in out and "none" in out and "matched share" in out


def test_validation_lines_of_a_classifier_with_accuracy_control():
    from edgecv.cli.describe import validation_lines

    record = {
        "dataset": {"name": "crops", "format": "folders", "images": 1, "sha256": "ab" * 32},
        "settings": {"conf": 0.0, "bootstrap": 200, "seed": 0},
        "task": "classify",
        "metric": "top-1",
        "source": {"top1": 0.9, "top5": 1.0, "images": 1.0, "p50_ms": 1.234},
        "bundle": {"top1": 0.885, "top5": float("nan"), "images": 1.0, "p50_ms": 0.6},
        "delta": -0.015,
        "ci95": [-0.02, 0.0],
        "parity": {"same_top1": 1, "images": 1, "same_top1_share": 1.0},
        "gate": {"max_drop": 1.0, "passed": True},
        "accuracy_control": {
            "kept_in_float": ["/a/Conv"],
            "steps": [{"kept_in_float": ["/a/Conv"], "value": 0.885, "drop": 1.5}],
        },
        "measured_with": "onnxruntime (CPU)",
    }
    text = "\n".join(validation_lines(record))
    assert "(folders, 1 image," in text  # one image, not "1 images"
    assert "top-1      90.00     88.50" in text and "top-5     100.00         —" in text
    assert "Δ top-1" in text and "-1.50 points, 95% interval [-2.00, +0.00]" in text
    assert "passed: max drop 1.00 points" in text and "1 layer: /a/Conv" in text
    assert "step 0" in text and "drop 1.50 points" in text


# --- demo and help texts -------------------------------------------------------------------------------


def test_demo_table_prints_points_like_val_and_compare():
    from edgecv.demo import format_table

    rows = [
        {
            "target": "torch (source)",
            "precision": "fp32",
            "map": 0.8425,
            "map50": 0.9625,
            "delta_map": None,
            "median_ms": 23.87,
            "size_bytes": None,
        },
        {
            "target": "onnxruntime",
            "precision": "fp32",
            "map": 0.8411,
            "map50": 0.9625,
            "delta_map": -0.0014,
            "median_ms": 12.28,
            "size_bytes": 2_520_000,
        },
    ]
    text = format_table(rows)
    assert "84.25" in text and "84.11" in text and "-0.14" in text and "96.25" in text
    assert "0.8425" not in text


def test_calib_method_help_names_the_targets_it_applies_to():
    from edgecv import targets
    from edgecv.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["export"]
    text = next(a for a in sub._actions if a.dest == "calib_method").help
    qdq = [k for k in targets.export_keys() if targets.get(k).int8_graph]
    assert "tensorrt" in qdq and "onnxruntime" in qdq
    assert f"Q/DQ graph: {', '.join(qdq)}" in text and "onnxruntime calibration method" not in text


# --- predict --backend -----------------------------------------------------------------------------


def test_predict_runs_a_tensorrt_bundle_on_onnxruntime(default_tensorrt_graph, val_set, capsys):
    from edgecv import load
    from edgecv.images import read_image

    images_dir, _ = val_set
    img = str(sorted(images_dir.glob("*.png"))[0])
    b = str(default_tensorrt_graph)
    assert main(["predict", b, img, "--backend", "onnxruntime", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)[img]
    with load(b, backend="onnxruntime") as det:
        want = det.task_def.to_json(det(read_image(img)))
    assert got == want and got
    if can_build_here() is not None:  # where TensorRT cannot run it, the refusal names the option
        assert main(["predict", b, img]) == 2
        assert "--backend onnxruntime" in capsys.readouterr().err
    assert main(["predict", b, img, "--backend", "openvino"]) == 2
    err = capsys.readouterr().err
    assert "not on openvino" in err and "Traceback" not in err


# --- text slips --------------------------------------------------------------------------------------

#: an indefinite article before a word that starts with a vowel letter ("a openvino bundle")
_WRONG_ARTICLE = re.compile(r"\ba (?=[aeiou])", re.I)


@pytest.mark.skipif(not is_available("openvino"), reason="needs openvino")
def test_backend_refusal_and_doctor_messages_get_the_article_right(default_bundles, capsys):
    from edgecv import load
    from edgecv.errors import BackendUnavailableError

    ov = default_bundles["openvino"]
    with pytest.raises(BackendUnavailableError) as e:
        load(ov, backend="onnxruntime")
    assert "openvino" in str(e.value) and not _WRONG_ARTICLE.search(str(e.value)), str(e.value)
    assert main(["doctor", str(ov)]) == 2
    err = capsys.readouterr().err
    assert "openvino" in err and not _WRONG_ARTICLE.search(err), err


def test_counts_of_one_are_singular(tmp_path):
    """`edgecv export` of a one-class model said "1 classes"; a single detection "1 objects"."""
    import torch
    from torch import nn

    from edgecv.console import count
    from edgecv.detections import Detections
    from edgecv.export import export
    from edgecv.tasks import get

    assert [count(1, "class"), count(2, "class"), count(0, "image"), count(24.0, "image"), count(3, "query")] == [
        "1 class",
        "2 classes",
        "0 images",
        "24 images",
        "3 queries",
    ]

    class OneClass(nn.Module):  # a raw YOLO-style head: [B, 4 + 1, N], cxcywh then one score
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 5, 3, stride=4, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).flatten(2)

    said: list[str] = []
    export(OneClass().eval(), "onnxruntime", names=["thing"], imgsz=64, out_dir=tmp_path, progress=said.append)
    line = next(s for s in said if s.startswith("source:"))
    assert ", 1 class," in line and "1 classes" not in line, line
    one = Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.9], np.float32), np.array([0]), ("thing",))
    assert get("detect").summary(one, 1.0)[0].startswith("1 object (")


# --- noise -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not is_available("openvino"), reason="needs openvino")
def test_openvino_int8_export_prints_no_cuda_noise(val_set, tmp_path):
    """NNCF imports torch.utils.cpp_extension, which logged "No CUDA runtime is found" on a
    machine without CUDA; the export command silences it."""
    import os
    import subprocess
    import sys

    images_dir, _ = val_set
    env = {**os.environ, "EDGECV_CACHE": str(tmp_path / "cache")}  # a cache miss: NNCF runs
    argv = [
        "export",
        "--target",
        "openvino",
        "--precision",
        "int8",
        "--calib",
        str(images_dir),
        "--calib-size",
        "8",
        "--imgsz",
        "128",
        "-o",
        str(tmp_path),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "edgecv.cli", *argv], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "nncf.quantize" in proc.stderr  # it did quantize with NNCF here
    assert "No CUDA runtime" not in proc.stderr and "cpp_extension" not in proc.stderr, proc.stderr


# --- models ------------------------------------------------------------------------------------------


def test_models_lists_every_task_target_precision_and_arch(capsys):
    from edgecv import targets, tasks
    from edgecv.export.tasks import CLASSIFIERS, SEGMENTERS
    from edgecv.export.torchvision_models import CONSTRUCTORS

    assert main(["models", "--json"]) == 0
    cat = json.loads(capsys.readouterr().out)
    assert list(cat["tasks"]) == list(tasks.names())
    assert cat["precisions"] == list(targets.PRECISIONS)
    assert list(cat["targets"]) == list(targets.export_keys())
    for key, t in cat["targets"].items():
        assert t["precisions"] == list(targets.get(key).precisions)
    listed = {task: [a for names in t["arch"].values() for a in names] for task, t in cat["tasks"].items()}
    assert sorted(listed["detect"]) == sorted(CONSTRUCTORS)
    assert listed["classify"] == list(CLASSIFIERS) and listed["segment"] == list(SEGMENTERS)
    assert {"ultralytics", "checkpoint", "onnx", "torchscript"} <= {
        s["kind"] for s in cat["tasks"]["detect"]["sources"]
    }

    assert main(["models"]) == 0
    text = capsys.readouterr().out
    for arch in [*CONSTRUCTORS, *CLASSIFIERS, *SEGMENTERS]:
        assert re.search(rf"\b{arch}\b", text), arch
    head = next(line for line in text.splitlines() if line.startswith("target "))
    assert head.split()[1 : 1 + len(targets.PRECISIONS)] == list(targets.PRECISIONS)
    for key, t in cat["targets"].items():
        row = next(line for line in text.splitlines() if line.startswith(key + " ")).split()
        assert row[1 : 1 + len(targets.PRECISIONS)] == [
            "yes" if p in t["precisions"] else "—" for p in targets.PRECISIONS
        ]


def test_inspect_refuses_a_graph_that_refers_outside_the_bundle(default_bundles, tmp_path, capsys):
    """A self-consistent manifest (hashes rewritten) whose graph keeps a tensor outside the bundle."""
    import shutil

    from .test_contract import ext_outside, unknown_domain

    for i, mutate in enumerate((ext_outside, unknown_domain)):
        b = tmp_path / f"b{i}"
        shutil.copytree(default_bundles["onnxruntime"], b)
        names = mutate(b)
        assert main(["inspect", str(b)]) == 2
        err = capsys.readouterr().err
        assert all(n in err for n in names) and "Traceback" not in err, err
