"""Installing edgecv: the supported torch range and tested pairs (``edgecv env``), one OpenCV in
``[all]``, the device install from a wheel (no torch), and the examples/ CI runs."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from edgecv import envcheck
from edgecv.data import shapes

from .conftest import ROOT


@pytest.mark.parametrize(
    "versions, says",
    [
        ({"torch": "2.14.1+cu130", "torchvision": "0.29.1"}, "a tested pair"),
        (
            {"torch": "2.6.0", "torchvision": "0.21.0"},
            "in the supported range, not a tested pair (tested: 2.14.1+0.29.1)",
        ),
        ({"torch": "2.3.1", "torchvision": "0.18.1"}, "outside the supported range (torch>=2.5,<3"),
        ({"torch": "2.6.0", "torchvision": None}, "torchvision missing: outside the supported range"),
        ({"torch": None, "torchvision": None}, "torch missing"),
    ],
)
def test_env_says_whether_torch_is_a_tested_pair_or_in_the_supported_range(versions, says):
    assert says in envcheck.torch_status(versions)


def test_a_users_own_torch_in_range_is_not_a_problem_but_one_below_it_is():
    ranges = envcheck.own_ranges()
    # the [export] extra pins the tested pair exactly; a user's own torch is judged by the range
    assert ranges["torch"] == envcheck.TORCH_RANGE["torch"], ranges
    own = {"torch": "2.6.0", "torchvision": "0.21.0"}
    assert envcheck.problems(own, ranges) == []
    (line,) = envcheck.problems({"torch": "2.4.1", "torchvision": "0.19.1"}, ranges)[:1]
    assert "torch 2.4.1 is outside the range" in line


def test_the_exporter_refuses_a_torch_below_the_range_with_what_to_install(monkeypatch):
    from edgecv.errors import EdgecvError

    monkeypatch.setattr(envcheck, "_installed", {"torch": "2.4.1", "torchvision": "0.19.1"}.get)
    with pytest.raises(EdgecvError, match=r"needs torch>=2.5,<3 .* found torch 2.4.1 and torchvision 0.19.1"):
        envcheck.require_torch()
    monkeypatch.setattr(envcheck, "_installed", {"torch": "2.6.0", "torchvision": "0.21.0"}.get)
    envcheck.require_torch()  # in range: no error


def test_env_lists_the_tested_pair_of_this_installation(capsys):
    from edgecv.cli import main

    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "a tested pair" in info["torch"] and info["export"]["torch"].startswith("2.14.1")


def _dry_run(spec: str, tmp_path: Path) -> set[str]:
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "-q",
            "--report",
            str(report),
            spec,
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return {i["metadata"]["name"].lower().replace("_", "-") for i in json.loads(report.read_text())["install"]}


@pytest.mark.slow
def test_the_all_extra_installs_one_opencv_and_export_core_leaves_torch_alone(tmp_path):
    everything = _dry_run(".[all]", tmp_path)
    assert {"opencv-python-headless", "torch", "torchvision", "openvino", "nncf"} <= everything
    assert "opencv-python" not in everything and "ultralytics" not in everything
    core = _dry_run(".[export-core]", tmp_path)
    assert "onnx" in core and not {"torch", "torchvision"} & core


@pytest.mark.slow
def test_a_device_installs_the_wheel_without_torch_and_runs_the_example_app(tmp_path, default_bundles, val_set):
    """The README's device install: a wheel built from the clone, installed with one backend's
    extra into a fresh environment, runs examples/device_app.py on a bundle."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("edgecv-*.whl")
    env = tmp_path / "device"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", f"{wheel}[onnxruntime]"], check=True, capture_output=True)
    has = subprocess.run(
        [py, "-c", "import importlib.util as u; print([m for m in ('torch', 'onnx') if u.find_spec(m)])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert has.stdout.strip() == "[]"  # a device gets neither torch nor onnx
    images = sorted(val_set[0].glob("*.png"))[:3]
    out = tmp_path / "drawn"
    run = subprocess.run(
        [py, ROOT / "examples" / "device_app.py", default_bundles["onnxruntime"], *images, "--save", out],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == [p.name for p in images]
    assert any(name in run.stdout for name in shapes.CLASSES), run.stdout
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in images]


@pytest.mark.slow
def test_the_export_example_writes_a_validated_int8_bundle(tmp_path):
    pytest.importorskip("nncf")
    run = subprocess.run(
        [sys.executable, ROOT / "examples" / "export_detector.py", "--out", tmp_path, "--count", "24"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    manifest = json.loads((tmp_path / "edgecv-tiny-openvino-int8" / "edgecv.json").read_text())
    assert manifest["precision"] == "int8" and manifest["target"] == "openvino"
    assert "drop" in run.stdout and "bundle:" in run.stdout
