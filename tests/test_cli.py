"""The CLI: thin wrappers, clear errors with exit status 2."""

from __future__ import annotations

import json
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
