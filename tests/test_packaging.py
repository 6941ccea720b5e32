"""export/ and runtimes/ install as edgecv.export and edgecv.runtimes, and only so."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    return next(out.glob("edgecv-*.whl"))


def test_wheel_contains_every_module_under_export_and_runtimes(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("export", "runtimes", "edgecv"):
        for py in (ROOT / folder).rglob("*.py"):
            rel = py.relative_to(ROOT / folder).as_posix()
            prefix = "edgecv/" if folder == "edgecv" else f"edgecv/{folder}/"
            assert prefix + rel in names, f"{folder}/{rel} is missing from the wheel"
    assert "edgecv/assets/edgecv-tiny.pt" in names and "edgecv/py.typed" in names
    assert "edgecv/assets/reference-workload.onnx" in names  # the latency gate's reference workload


def test_wheel_has_no_plain_export_or_runtimes_package(wheel):
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"edgecv"}


def test_no_plain_export_or_runtimes_module_is_importable(tmp_path):
    code = (
        "import importlib.util as u; import edgecv.export, edgecv.runtimes; "
        "print(u.find_spec('export'), u.find_spec('runtimes'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.strip() == "None None"


def test_imports_across_the_three_folders_are_relative():
    bad = []
    for folder in ("edgecv", "export", "runtimes"):
        for py in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(py.read_text())):
                mods = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                bad += [
                    f"{py.relative_to(ROOT)}: {m}" for m in mods if m.split(".")[0] in ("export", "runtimes", "edgecv")
                ]
    assert not bad, f"absolute imports of the project's own packages: {bad}"


def test_shipped_weights_are_small_and_load_without_pickle_code():
    torch = pytest.importorskip("torch")
    p = ROOT / "edgecv" / "assets" / "edgecv-tiny.pt"
    assert p.stat().st_size < 5 * 1024 * 1024
    ckpt = torch.load(p, weights_only=True)
    assert ckpt["format"] == "edgecv-checkpoint" and len(ckpt["names"]) == 6
