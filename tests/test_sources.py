"""What the exporter accepts, and the errors for what it does not."""

import pickle

import pytest

from edgecv import BundleError, EdgecvError, ExportError, SourceError
from edgecv.errors import UnknownTargetError

torch = pytest.importorskip("torch")
from edgecv.export import OutputSpec, export  # noqa: E402

from .yolo_v5_style import TinyV5  # noqa: E402

V5 = dict(names=["r", "g", "b"], layout="bnc", objectness=True, apply_sigmoid=True, imgsz=128)


def test_pickled_module_needs_the_trust_flag(tmp_path):
    p = tmp_path / "whole.pt"
    torch.save(TinyV5(3), p)
    with pytest.raises(SourceError, match="--trust-pickle"):
        export(p, "onnxruntime", out_dir=tmp_path / "out", **V5)
    assert not (tmp_path / "out" / "whole-onnxruntime-fp32").exists()
    bundle = export(p, "onnxruntime", out_dir=tmp_path / "out", trust_pickle=True, **V5)
    assert (bundle / "model.onnx").is_file()


def test_missing_and_truncated_model_files(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        export(tmp_path / "none.pt", "onnxruntime", out_dir=tmp_path)
    p = tmp_path / "cut.pt"
    torch.save({"format": "x", "w": torch.zeros(1000)}, p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(SourceError, match="truncated"):
        export(p, "onnxruntime", out_dir=tmp_path)
    q = tmp_path / "cut.onnx"
    q.write_bytes(b"\x08\x07garbage")
    with pytest.raises(SourceError):
        export(q, "onnxruntime", out_dir=tmp_path, names=["a"])


def test_bare_state_dict_is_explained(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save(TinyV5(3).state_dict(), p)
    with pytest.raises(SourceError, match="state dict needs its architecture"):
        export(p, "onnxruntime", out_dir=tmp_path, **V5)


@pytest.mark.parametrize(
    "spec, msg",
    [
        (dict(layout="bcn"), "other layout would fit"),
        (dict(objectness=False), "expects 7 values per candidate"),
        (dict(names=["a", "b"]), "expects 7 values"),
    ],
)
def test_output_layout_must_match_the_spec(tmp_path, spec, msg):
    with pytest.raises(SourceError, match=msg):
        export(TinyV5(3), "onnxruntime", out_dir=tmp_path, **{**V5, **spec})


def test_names_are_needed_where_the_file_has_none(tmp_path):
    with pytest.raises(SourceError, match="class names are unknown"):
        export(TinyV5(3), "onnxruntime", out_dir=tmp_path)


@pytest.mark.parametrize(
    "target, exc, msg",
    [
        ("tflite", UnknownTargetError, "unknown target 'tflite'"),
    ],
)
def test_targets(tmp_path, target, exc, msg):
    with pytest.raises(exc, match=msg):
        export(TinyV5(3), target, out_dir=tmp_path, **V5)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(imgsz=100), "multiples of 32"),
        (dict(precision="fp8"), "unknown precision"),
        (dict(iou=0.0), "NMS settings"),
        (dict(name="../evil"), "bundle name"),
    ],
)
def test_bad_options(tmp_path, kw, msg):
    with pytest.raises(EdgecvError, match=msg):
        export(TinyV5(3), "onnxruntime", out_dir=tmp_path, **{**V5, **kw})


def test_spec_validation():
    with pytest.raises(SourceError):
        OutputSpec(0)
    with pytest.raises(SourceError):
        OutputSpec(3, layout="nbc")


def test_a_failed_target_step_leaves_no_bundle_and_keeps_the_old_one(tmp_path, monkeypatch):
    from edgecv.export.targets import onnxruntime as ort_target

    good = export(TinyV5(3), "onnxruntime", out_dir=tmp_path, name="m", **V5)
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    def boom(onnx_path, out_dir, precision, **kw):
        (out_dir / "model.onnx").write_bytes(b"half")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ort_target, "build", boom)
    with pytest.raises(ExportError, match="disk on fire"):
        export(TinyV5(3), "onnxruntime", out_dir=tmp_path, name="m", **V5)
    with pytest.raises(ExportError):
        export(TinyV5(3), "onnxruntime", out_dir=tmp_path, name="fresh", **V5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging directories, no half bundle
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before


def test_export_replaces_an_existing_bundle_but_not_other_directories(tmp_path):
    first = export(TinyV5(3, seed=1), "onnxruntime", out_dir=tmp_path, name="m", **V5)
    h1 = (first / "model.onnx").read_bytes()
    second = export(TinyV5(3, seed=2), "onnxruntime", out_dir=tmp_path, name="m", **V5)
    assert second == first and (second / "model.onnx").read_bytes() != h1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(BundleError, match="not an edgecv bundle"):
        export(TinyV5(3), "onnxruntime", out_dir=tmp_path, name="mine", **V5)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_hostile_pickle_is_not_run_without_trust(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("ran code from the file",))

    p = tmp_path / "evil.pt"
    torch.save(Evil(), p)
    with pytest.raises(SourceError, match="--trust-pickle"):
        export(p, "onnxruntime", out_dir=tmp_path, **V5)
    assert "ran code" not in capsys.readouterr().out
    q = tmp_path / "plain.pt"
    q.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(SourceError, match="not a PyTorch file"):
        export(q, "onnxruntime", out_dir=tmp_path, **V5)
