"""A device app pays for one backend: load() + inference import neither torch, onnx nor other backends."""

import json
import subprocess
import sys

import pytest

from edgecv.runtimes import is_available

from .conftest import ROOT

CHECK = """
import json, sys
import numpy as np
import edgecv
before = sorted(m for m in ("torch", "onnx", "onnxruntime", "openvino", "tensorrt") if m in sys.modules)
det = edgecv.load(sys.argv[1])
dets = det(np.full((240, 320, 3), 90, np.uint8))
print(json.dumps({"before": before, "after": sorted(m for m in ("torch", "onnx", "onnxruntime", "openvino",
      "tensorrt", "torchvision", "faster_coco_eval") if m in sys.modules), "n": len(dets)}))
"""


def run(bundle):
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(bundle)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not is_available("openvino"), reason="openvino is not installed")
def test_openvino_bundle_imports_openvino_only(default_bundles):
    r = run(default_bundles["openvino"])
    assert r["before"] == []
    assert r["after"] == ["openvino"]


@pytest.mark.skipif(not is_available("onnxruntime"), reason="onnxruntime is not installed")
def test_onnxruntime_bundle_imports_onnxruntime_only(default_bundles):
    r = run(default_bundles["onnxruntime"])
    assert r["after"] == ["onnxruntime"]


def test_is_available_imports_nothing():
    code = (
        "import sys; from edgecv.runtimes import available; available(); "
        "print(sorted(m for m in ('torch','onnxruntime','openvino') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
