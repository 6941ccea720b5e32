"""The TensorRT path on a machine without TensorRT or a GPU.

Three kinds of tests:
- the logic that needs no TensorRT at all (plan selection by GPU and version, cache keys,
  profiles, settings), and the real CUDA runtime library's answer on a machine without a GPU;
- edgecv's code around TensorRT (the 10/11 adapter, `edgecv build`, loading, buffers and
  copies, caches) run against tests/trt_double.py: a TEST DOUBLE of the tensorrt module
  and of CUDA, not TensorRT. Whether real TensorRT builds and runs our graphs is tested in
  tests/gpu (skipped here);
- the shape of the code: TensorRT in one package (runtimes/tensorrt/), one word for the
  artifact ("plan"), one plan store, imports in one direction.
"""

from __future__ import annotations

import ast
import graphlib
import importlib.util
import json
import re
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edgecv import BackendUnavailableError, BundleError, EdgecvError, PlanError, load
from edgecv.bundle import MANIFEST_NAME, Bundle, add_file
from edgecv.cli import main
from edgecv.errors import CudaError, InferenceError
from edgecv.runtimes.tensorrt import plans
from edgecv.runtimes.tensorrt.api import TrtApi
from edgecv.runtimes.tensorrt.plans import Identity

from .conftest import ROOT
from .trt_double import FakeCuda, make_tensorrt

ORIN = Identity("NVIDIA Orin", "8.7", "10.3.0")


def entry(gpu="NVIDIA Orin", cc="8.7", trt="10.3.0", vc=False, hw="none", graph=None, file="p.plan"):
    return {
        "file": file,
        "gpu": gpu,
        "compute_capability": cc,
        "tensorrt": trt,
        "version_compatible": vc,
        "hardware_compatibility": hw,
        "graph_sha256": graph,
    }


# --- plan selection: no TensorRT needed ----------------------------------------------------------


@pytest.mark.parametrize(
    "plan, here, fits",
    [
        (entry(), ORIN, True),
        (entry(trt="10.3.0"), Identity("NVIDIA Orin", "8.7", "10.4.0"), False),  # another version
        (entry(vc=True), Identity("NVIDIA Orin", "8.7", "10.8.0.40"), True),  # version-compatible, later
        (entry(vc=True, trt="10.8.0"), ORIN, False),  # version-compatible, but an earlier runtime
        (entry(), Identity("NVIDIA Orin", "8.9", "10.3.0"), False),  # another compute capability
        (entry(), Identity("NVIDIA Jetson AGX Orin", "8.7", "10.3.0"), False),  # another GPU, same capability
        (entry(hw="same_compute_capability"), Identity("NVIDIA Jetson AGX Orin", "8.7", "10.3.0"), True),
        (entry(hw="ampere_plus"), Identity("NVIDIA GeForce RTX 4090", "8.9", "10.3.0"), True),
        (entry(hw="ampere_plus"), Identity("Tesla T4", "7.5", "10.3.0"), False),
    ],
)
def test_which_plans_run_where(plan, here, fits):
    reason = plans.refusal(plan, here)
    assert (reason is None) == fits, reason


def test_selection_prefers_the_exact_plan_and_never_one_of_another_graph():
    compatible = entry(hw="ampere_plus", gpu="NVIDIA A100", cc="8.0", file="a.plan")
    exact = entry(file="b.plan")
    assert plans.select([compatible, exact], ORIN)["file"] == "b.plan"
    assert plans.select([compatible], ORIN)["file"] == "a.plan"
    assert plans.select([entry(graph="x" * 64)], ORIN, graph_sha256="y" * 64) is None
    assert plans.select([entry(trt="10.4.0")], ORIN) is None


def test_the_refusal_names_what_was_found_this_machine_and_the_fix():
    msg = plans.mismatch_message([entry(trt="10.4.0", gpu="NVIDIA RTX 6000", cc="8.9")], ORIN, "b")
    for part in (
        "NVIDIA RTX 6000 (compute capability 8.9) with TensorRT 10.4.0",
        "this machine has 10.3.0",
        "NVIDIA Orin (compute capability 8.7) with TensorRT 10.3.0",
        "edgecv build b",
        "build_plan=True",
    ):
        assert part in msg
    assert "no TensorRT plan yet" in plans.mismatch_message([], ORIN, "b")


def test_identity_keys_are_file_names():
    assert ORIN.key == "nvidia-orin-sm87-trt10.3.0"
    assert (
        Identity("NVIDIA GeForce RTX 4090 / PCIe", "8.9", "11.4.0.106").key
        == "nvidia-geforce-rtx-4090-pcie-sm89-trt11.4.0.106"
    )


def test_profiles_and_settings():
    s = plans.check_settings({"max_batch": 16, "opt_batch": 4})
    manifest = {"input": {"name": "images", "shape": [-1, 320, 256, 3]}}
    assert plans.profile(manifest, s) == {"images": ((1, 320, 256, 3), (4, 320, 256, 3), (16, 320, 256, 3))}
    manifest["input"]["shape"][0] = 1
    assert plans.profile(manifest, s) == {"images": ((1, 320, 256, 3),) * 3}
    for bad, msg in [
        ({"opt_batch": 9, "max_batch": 8}, "opt"),
        ({"fp16": True}, "unknown"),
        ({"hardware_compatibility": "turing_plus"}, "hardware compatibility"),
        ({"workspace_mb": 1}, "workspace"),
        ({"max_batch": "8"}, "integer"),
    ]:
        with pytest.raises(EdgecvError, match=msg):
            plans.check_settings(bad)


def _libcudart_here() -> bool:
    from edgecv.runtimes.tensorrt.cuda import CtypesCuda

    try:
        CtypesCuda()
    except CudaError:  # the library is there, the GPU is not
        return True
    except BackendUnavailableError:  # no library
        return False
    return True


@pytest.mark.skipif(not _libcudart_here(), reason="no CUDA runtime library on this machine")
def test_the_real_cuda_runtime_says_there_is_no_gpu_here():
    """The real libcudart (ctypes): on a machine without a GPU or driver, a clear CudaError."""
    from edgecv.runtimes.tensorrt.cuda import CtypesCuda

    try:
        CtypesCuda().device()
    except CudaError as e:
        assert "cudaGetDeviceCount failed" in str(e) or "no CUDA device" in str(e)
    else:
        pytest.skip("this machine has a usable GPU")


# --- with the test double of TensorRT and CUDA ----------------------------------------------------


@pytest.fixture
def trt_double(monkeypatch):
    """Install the TEST DOUBLE (tests/trt_double.py) as `tensorrt`, with a fake Orin GPU."""
    import edgecv.runtimes.tensorrt.cuda as cuda_mod

    state = {}

    def install(version="10.3.0", gpu=("NVIDIA Orin", (8, 7)), **kw):
        cuda = FakeCuda(gpu[0], gpu[1])
        trt = make_tensorrt(version, cuda, **kw)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(cuda_mod, "open_cuda", lambda prefer=None: cuda)
        state.update(trt=trt, cuda=cuda)
        return trt

    install()
    install.state = state
    return install


@pytest.fixture(scope="module")
def graph_bundle(default_tensorrt_graph):
    """The default detector exported for tensorrt here (no TensorRT: graph and settings only)."""
    assert importlib.util.find_spec("tensorrt") is None or "tensorrt" in sys.modules
    return default_tensorrt_graph


@pytest.fixture
def bundle(graph_bundle, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(graph_bundle, dst)
    return dst


def test_export_without_tensorrt_writes_graph_and_settings(graph_bundle):
    rt = Bundle.open(graph_bundle).manifest["runtime"]["tensorrt"]
    assert rt["engines"] == [] and rt["strongly_typed"] is True
    assert rt["build"] == plans.BUILD_DEFAULTS
    assert rt["profile"] == {
        "images": {"min": [1, 320, 320, 3], "opt": [1, 320, 320, 3], "max": [8, 320, 320, 3]},
        "score_threshold": {"min": [1], "opt": [1], "max": [8]},  # the NMS score floor, one per image
    }
    assert rt["static_check"]["errors"] == 0 and rt["static_check"]["versions"] == [
        "10.3",
        "10.15",
        "11.0",
        "11.2",
        "11.5",
    ]


def test_build_adds_a_plan_and_it_runs_like_the_graph(trt_double, bundle, val_images, capsys):
    assert main(["build", str(bundle), "--max-batch", "4"]) == 0
    b = Bundle.open(bundle)  # every file, the plan included, verifies
    (plan,) = b.manifest["runtime"]["tensorrt"]["engines"]
    assert plan["file"] == "engine-nvidia-orin-sm87-trt10.3.0.plan" and plan["build"]["max_batch"] == 4
    assert {f["path"]: f["role"] for f in b.manifest["files"]}[plan["file"]] == "engine"
    assert plan["graph_sha256"] == plans.Graph.of_bundle(b).sha256
    cuda = trt_double.state["cuda"]
    images = val_images[:11]  # three batches at max batch 4
    with load(bundle) as det, load(bundle, backend="onnxruntime") as ref:
        assert det.batch_size == 4 and det.plan_entry["file"] == plan["file"]
        got, want = det.predict(images), ref.predict(images)
        assert sum(len(d) for d in want) > 20
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.xyxy, w.xyxy, rtol=1e-5, atol=1e-4)
            np.testing.assert_array_equal(g.class_ids, w.class_ids)
        one = det(images[0])
        np.testing.assert_allclose(one.xyxy, want[0].xyxy, rtol=1e-5, atol=1e-4)
        assert cuda.outstanding() > 0
    assert cuda.outstanding() == 0, "close() must free every buffer and the stream"
    with pytest.raises(EdgecvError, match="closed"):
        det(images[0])
    # already there: no second build
    builds = trt_double.state["trt"].stats["builds"]
    assert main(["build", str(bundle), "--max-batch", "4"]) == 0
    assert trt_double.state["trt"].stats["builds"] == builds


def test_a_plan_of_another_version_is_refused_with_the_fix(trt_double, bundle):
    assert main(["build", str(bundle)]) == 0
    trt_double("11.4.0.106", gpu=("NVIDIA GeForce RTX 4090", (8, 9)))
    with pytest.raises(PlanError) as e:  # a BackendUnavailableError: this machine cannot run the bundle as it is
        load(bundle)
    assert isinstance(e.value, BackendUnavailableError)
    msg = str(e.value)
    assert "NVIDIA Orin (compute capability 8.7) with TensorRT 10.3.0" in msg
    assert "NVIDIA GeForce RTX 4090 (compute capability 8.9) with TensorRT 11.4.0.106" in msg
    assert f"edgecv build {bundle}" in msg
    # a manifest edited to claim the plan fits: TensorRT itself refuses it, and edgecv says so
    trt_double("10.4.0", gpu=("NVIDIA Orin", (8, 7)))
    m = json.loads((bundle / MANIFEST_NAME).read_text())
    m["runtime"]["tensorrt"]["engines"][0]["tensorrt"] = "10.4.0"
    (bundle / MANIFEST_NAME).write_text(json.dumps(m))
    with pytest.raises(PlanError, match="refused the plan.*not compatible with this version of TensorRT"):
        load(bundle)


def test_a_version_compatible_plan_runs_on_a_later_tensorrt(trt_double, bundle, val_images):
    assert main(["build", str(bundle), "--version-compatible"]) == 0
    assert trt_double.state["trt"].stats["builds"] == 1
    trt_double("10.8.0.40")
    with load(bundle, trust_plan_code=True) as det:  # host code allowed: the double refuses the plan otherwise
        assert det.plan_entry["version_compatible"] and len(det(val_images[0])) > 0
    assert trt_double.state["trt"].stats["host_code"] == [True]
    trt_double("10.2.0")
    with pytest.raises(BackendUnavailableError, match="that version or later only"):
        load(bundle, trust_plan_code=True)


# --- host code needs trust (over the TEST DOUBLE: what reaches its deserialize_cuda_engine) -----------


def test_host_code_runs_only_with_the_trust_flag(trt_double, bundle, val_images, tmp_path, capsys):
    import cv2

    image = str(tmp_path / "frame.png")
    cv2.imwrite(image, val_images[0])
    assert main(["build", str(bundle), "--version-compatible"]) == 0
    assert "loading the bundle needs --trust-plan-code" in capsys.readouterr().err
    stats = trt_double.state["trt"].stats
    with pytest.raises(BundleError) as e:
        load(bundle)
    msg = str(e.value)
    assert "engine-nvidia-orin-sm87-trt10.3.0.plan is version-compatible" in msg
    assert "carries host code that TensorRT runs" in msg and "not who built it" in msg
    assert "trust_plan_code=True" in msg and "--trust-plan-code" in msg
    assert stats["host_code"] == [], "refused before the plan reached TensorRT"
    assert main(["predict", str(bundle), image]) == 2
    assert "--trust-plan-code" in capsys.readouterr().err and stats["host_code"] == []
    assert main(["predict", str(bundle), image, "--trust-plan-code"]) == 0
    assert stats["host_code"] == [True]
    with load(bundle, trust_plan_code=True) as det:
        assert len(det(val_images[0])) > 0
    assert stats["host_code"] == [True, True]


def test_a_plan_without_host_code_never_gets_it(trt_double, bundle, tmp_path):
    assert main(["build", str(bundle)]) == 0
    with load(bundle, trust_plan_code=True):  # trusting the maker does not switch host code on
        pass
    with load(bundle):
        pass
    assert trt_double.state["trt"].stats["host_code"] == [False, False]
    # a version-compatible plan built by the load itself, from the graph it checked, is edgecv's own
    with load(bundle, build_plan=True, plan_cache=tmp_path / "c", trust_plan_code=False) as det:
        assert not det.plan_entry["version_compatible"]
    m = json.loads((bundle / MANIFEST_NAME).read_text())
    m["runtime"]["tensorrt"]["build"]["version_compatible"] = True
    m["runtime"]["tensorrt"]["engines"] = []
    (bundle / MANIFEST_NAME).write_text(json.dumps(m))
    with load(bundle, build_plan=True) as det:
        assert det.plan_entry["version_compatible"]
    assert trt_double.state["trt"].stats["host_code"][-1] is True
    with pytest.raises(BundleError, match="--trust-plan-code"):  # the next load reads it from the file
        load(bundle)


def test_inspect_and_export_say_when_loading_needs_the_flag(trt_double, bundle, default_src, tmp_path, capsys):
    assert main(["inspect", str(bundle)]) == 0
    assert "trust      no plan runs host code: loads without --trust-plan-code" in capsys.readouterr().out
    assert main(["build", str(bundle), "--version-compatible"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "trust      plan engine-nvidia-orin-sm87-trt10.3.0.plan is version-compatible" in out
    assert "loading needs --trust-plan-code" in out
    said = []
    from edgecv.export import export

    export(
        default_src,
        "tensorrt",
        out_dir=tmp_path,
        imgsz=320,
        tensorrt={"version_compatible": True},
        progress=said.append,
    )
    assert any("loading the bundle will need --trust-plan-code" in s for s in said), said


def test_build_on_first_load_into_a_cache_directory(trt_double, bundle, tmp_path, val_images):
    cache = tmp_path / "plans"
    before = (bundle / MANIFEST_NAME).read_bytes()
    with pytest.raises(BackendUnavailableError, match="no TensorRT plan yet"):
        load(bundle)
    with load(bundle, build_plan=True, plan_cache=cache) as det:
        first = det(val_images[0])
    stats = trt_double.state["trt"].stats
    assert stats["builds"] == 1 and len(list(cache.glob("*.plan"))) == 1
    assert (bundle / MANIFEST_NAME).read_bytes() == before, "a cache directory leaves the bundle untouched"
    with load(bundle, build_plan=True, plan_cache=cache) as det:
        np.testing.assert_array_equal(det(val_images[0]).xyxy, first.xyxy)
    assert stats["builds"] == 1, "the cached plan is used"
    plan = next(cache.glob("*.plan"))
    plan.write_bytes(plan.read_bytes()[:-10] + b"0123456789")  # tampered: its sidecar hash no longer matches
    with load(bundle, build_plan=True, plan_cache=cache):
        pass
    assert stats["builds"] == 2
    with load(bundle, plan_cache=cache):  # found in the cache without build_plan
        pass
    # `edgecv build` looks in the same store: the plan is there, nothing is built
    assert main(["build", str(bundle), "--cache-dir", str(cache)]) == 0
    assert stats["builds"] == 2


def test_build_on_first_load_into_the_bundle(trt_double, bundle):
    with load(bundle, build_plan=True):
        pass
    (plan,) = Bundle.open(bundle).manifest["runtime"]["tensorrt"]["engines"]
    assert (bundle / plan["file"]).is_file()
    with load(bundle):
        pass
    assert trt_double.state["trt"].stats["builds"] == 1


def _swap_after(monkeypatch, method: str, victim: Path, when=lambda *a, **k: True) -> list:
    """Replace ``victim`` on disk (its bytes reversed) right after ``Bundle.<method>`` returns."""
    original = getattr(Bundle, method)
    swapped: list = []

    def then_swap(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if when(*args, **kwargs):
            victim.write_bytes(victim.read_bytes()[::-1])
            swapped.append(victim.name)
        return out

    monkeypatch.setattr(Bundle, method, then_swap)
    return swapped


def test_a_plan_replaced_after_the_hash_check_never_reaches_tensorrt(trt_double, bundle, monkeypatch):
    """The plan is replaced on disk after load() checked every hash: what would go to
    deserialize_cuda_engine is refused instead. (TensorRT here is tests/trt_double.py, a TEST
    DOUBLE; what is checked is edgecv's side: the bytes it hands over.)"""
    assert main(["build", str(bundle)]) == 0
    (plan,) = Bundle.open(bundle).manifest["runtime"]["tensorrt"]["engines"]
    handed = []
    runtime = trt_double.state["trt"].Runtime
    deserialize = runtime.deserialize_cuda_engine
    monkeypatch.setattr(
        runtime, "deserialize_cuda_engine", lambda self, p: handed.append(bytes(p)) or deserialize(self, p)
    )
    swapped = _swap_after(monkeypatch, "verify", bundle / plan["file"])
    with pytest.raises(EdgecvError, match=f"{plan['file']} does not match its sha256"):
        load(bundle)
    assert swapped == [plan["file"]] and handed == []


def test_tensorrt_is_handed_the_plan_bytes_that_were_checked(trt_double, bundle, monkeypatch, val_images):
    """The plan is replaced the moment its bytes were read and checked: deserialize_cuda_engine
    (of the TEST DOUBLE, tests/trt_double.py) gets the checked bytes, and the detector runs."""
    import hashlib

    assert main(["build", str(bundle)]) == 0
    (plan,) = Bundle.open(bundle).manifest["runtime"]["tensorrt"]["engines"]
    sha = {f["path"]: f["sha256"] for f in Bundle.open(bundle).manifest["files"]}[plan["file"]]
    handed = []
    runtime = trt_double.state["trt"].Runtime
    deserialize = runtime.deserialize_cuda_engine
    monkeypatch.setattr(
        runtime, "deserialize_cuda_engine", lambda self, p: handed.append(bytes(p)) or deserialize(self, p)
    )
    swapped = _swap_after(
        monkeypatch, "read", bundle / plan["file"], when=lambda *a, name=None, **k: name == plan["file"]
    )
    with load(bundle) as det:
        assert len(det(val_images[0])) > 0
    assert swapped == [plan["file"]]
    assert [hashlib.sha256(p).hexdigest() for p in handed] == [sha]
    assert hashlib.sha256((bundle / plan["file"]).read_bytes()).hexdigest() != sha  # the file did change


def test_a_plan_is_built_from_the_graph_that_was_checked(trt_double, bundle, monkeypatch):
    """The graph is replaced after load() checked it and before a plan is built from it (on the
    TEST DOUBLE): the build is refused, so no plan of another graph is kept under its hash."""
    _swap_after(monkeypatch, "verify", bundle / "model.onnx")
    with pytest.raises(EdgecvError, match="model.onnx does not match its sha256"):
        load(bundle, build_plan=True)
    assert trt_double.state["trt"].stats["builds"] == 0


def test_the_timing_cache_is_kept_and_reused(trt_double, bundle, tmp_path):
    timing = tmp_path / "timing.cache"
    assert main(["build", str(bundle), "--timing-cache", str(timing)]) == 0
    assert timing.is_file()
    assert main(["build", str(bundle), "--timing-cache", str(timing), "--force"]) == 0
    assert trt_double.state["trt"].stats["timing_cache_in"] == [0, 1]


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0.106"])
def test_the_adapter_builds_strongly_typed_on_10_and_11(trt_double, bundle, version):
    """11.x has no EXPLICIT_BATCH and no FP16/INT8 flags: touching them would raise here."""
    trt = trt_double(version)
    api = TrtApi()
    assert api.major == int(version[:2])
    assert api.network_flags() == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    s = plans.check_settings({"version_compatible": True})
    m = Bundle.open(bundle).manifest
    plan, _ = api.build(bundle / "model.onnx", s, plans.profile(m, s))
    header = json.loads(plan.split(b"\n")[1])
    assert header["version_compatible"] and header["profiles"] == [
        {"images": [[1, 320, 320, 3], [1, 320, 320, 3], [8, 320, 320, 3]], "score_threshold": [[1], [1], [8]]}
    ]
    assert header["workspace"] == 1024 << 20
    same_cc = plans.check_settings({"hardware_compatibility": "same_compute_capability"})
    if version.startswith("10"):
        with pytest.raises(EdgecvError, match="no hardware compatibility level 'same_compute_capability'"):
            api.build(bundle / "model.onnx", same_cc, plans.profile(m, same_cc))
    else:
        plan, _ = api.build(bundle / "model.onnx", same_cc, plans.profile(m, same_cc))
        assert json.loads(plan.split(b"\n")[1])["hardware"] == "SAME_COMPUTE_CAPABILITY"


def test_unsupported_versions_no_gpu_and_parser_errors(trt_double, bundle):
    trt_double("8.6.1")
    with pytest.raises(BackendUnavailableError, match="TensorRT 8.6.1 is not supported"):
        TrtApi()
    trt_double("10.3.0", gpu_ok=False)
    with pytest.raises(BackendUnavailableError, match="CUDA initialization failure.*needs an NVIDIA GPU"):
        TrtApi().builder()
    trt_double("10.3.0", unsupported_ops=("NonMaxSuppression",))
    assert main(["build", str(bundle)]) == 2
    with pytest.raises(EdgecvError, match=r"cannot parse the graph: NonMaxSuppression /nms/NonMaxSuppression"):
        plans.build_bundle_plan(bundle)


ROI_ALIGN = [{"name": "ROIAlign_TRT", "version": "2", "ops": ["RoiAlign"]}]


def _roi_align_graph() -> bytes:
    """A graph whose RoiAlign TensorRT builds from its ROIAlign_TRT plugin."""
    from onnx import TensorProto, helper

    node = helper.make_node("RoiAlign", ["x", "rois", "idx"], ["y"], name="roi", output_height=2, output_width=2)
    g = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8]),
            helper.make_tensor_value_info("rois", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 2, 2])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_the_plugin_library_is_registered_once_and_missing_plugins_are_named(trt_double):
    """With the TEST DOUBLE: edgecv's TrtApi registers NVIDIA's plugin library once per process
    (trt.init_libnvinfer_plugins) before TensorRT parses or loads; a plugin a graph needs and the
    registry lacks is refused with its name and the fix, before TensorRT is asked; a plan or graph
    whose plugins are not listed (an older bundle) gets TensorRT's own error and the fix."""
    trt = trt_double()
    graph, s = _roi_align_graph(), plans.check_settings({})
    shapes = plans.profile_for("x", (1, 1, 8, 8), s)
    plan, _ = TrtApi().build(graph, s, shapes, plugins=ROI_ALIGN)
    TrtApi().build(graph, s, shapes)
    TrtApi().deserialize(plan, plugins=ROI_ALIGN)
    assert (trt.stats["plugin_inits"], trt.stats["builds"], trt.stats["deserialized"]) == (1, 2, 1)
    assert TrtApi().missing_plugins([*ROI_ALIGN, {"name": "NoSuch_TRT", "version": "1", "ops": ["X"]}]) == [
        {"name": "NoSuch_TRT", "version": "1", "ops": ["X"]}
    ]
    trt = trt_double(plugin_library=False)  # a device whose TensorRT has no plugin library
    missing = (
        r"needs TensorRT's ROIAlign_TRT plugin \(version 2\) for its RoiAlign nodes.*did not load.*libnvinfer_plugin"
    )
    with pytest.raises(BackendUnavailableError, match="the graph " + missing):
        TrtApi().build(graph, s, shapes, plugins=ROI_ALIGN)
    with pytest.raises(BackendUnavailableError, match="the plan " + missing):
        TrtApi().deserialize(plan, plugins=ROI_ALIGN)
    assert trt.stats["plugin_inits"] == 1 and trt.stats["builds"] == 0
    with pytest.raises(EdgecvError, match="ROIAlign plugin was not found in the plugin registry.*libnvinfer_plugin"):
        TrtApi().build(graph, s, shapes)
    with pytest.raises(BackendUnavailableError, match="Cannot find plugin: ROIAlign_TRT.*libnvinfer_plugin"):
        TrtApi().deserialize(plan)


def test_export_builds_the_plan_where_tensorrt_and_a_gpu_are(trt_double, default_src, tmp_path):
    from edgecv.export import export

    b = export(default_src, "tensorrt", out_dir=tmp_path, imgsz=320, tensorrt={"max_batch": 2})
    (plan,) = Bundle.open(b).manifest["runtime"]["tensorrt"]["engines"]
    assert plan["build"]["max_batch"] == 2 and (b / plan["file"]).is_file()
    b2 = export(default_src, "tensorrt", out_dir=tmp_path, imgsz=320, name="none", tensorrt={"build_plan": False})
    assert Bundle.open(b2).manifest["runtime"]["tensorrt"]["engines"] == []


def test_cli_errors(trt_double, default_bundles, bundle, tmp_path, capsys):
    assert main(["build", str(default_bundles["onnxruntime"])]) == 2
    assert "plans are built for tensorrt bundles" in capsys.readouterr().err
    assert main(["export", "--target", "onnxruntime", "--max-batch", "4", "-o", str(tmp_path)]) == 2
    assert "apply to --target tensorrt only" in capsys.readouterr().err
    assert main(["build", str(bundle), "--opt-batch", "9", "--max-batch", "4"]) == 2
    assert "opt (9) <= max (4)" in capsys.readouterr().err


def test_plans_added_at_once_all_land(bundle):
    def add(i):
        add_file(bundle, f"engine-{i}.plan", bytes([i]) * 1000, "engine")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = {f["path"] for f in Bundle.open(bundle).manifest["files"]}  # verifies every hash
    assert {f"engine-{i}.plan" for i in range(6)} <= files
    assert not [p for p in Path(bundle).iterdir() if p.name.startswith(".")], "no temporary file is left"


def test_inference_failures_are_inference_errors(trt_double, bundle, val_images):
    assert main(["build", str(bundle)]) == 0
    with load(bundle) as det:

        def broken(*args):
            raise CudaError("cudaMemcpyAsync failed: an illegal memory access was encountered (CUDA error 700)")

        det.cuda.memcpy_async = broken
        with pytest.raises(InferenceError, match="illegal memory access") as e:
            det(val_images[0])
        assert isinstance(e.value.__cause__, CudaError)
        del det.cuda.memcpy_async
        det.context.execute_async_v3 = lambda stream: False
        with pytest.raises(InferenceError, match="TensorRT inference failed"):
            det(val_images[0])
        del det.context.execute_async_v3
        assert len(det(val_images[0])) > 0, "the detector is still usable"


def test_the_old_option_names_still_work_with_a_warning(trt_double, bundle, tmp_path, default_src):
    cache = tmp_path / "plans"
    with pytest.warns(DeprecationWarning, match="(build_engine|engine_cache) is now called") as caught:
        with load(bundle, build_engine=True, engine_cache=cache):
            pass
    assert sorted(str(w.message) for w in caught) == [
        "load(): build_engine is now called build_plan; the old name will be removed",
        "load(): engine_cache is now called plan_cache; the old name will be removed",
    ]
    assert all(w.filename == __file__ for w in caught), "the warning names the caller's line"
    assert len(list(cache.glob("*.plan"))) == 1
    with pytest.raises(EdgecvError, match="pass build_plan only"):
        load(bundle, build_engine=True, build_plan=True)
    from edgecv.export import export

    with pytest.warns(DeprecationWarning, match="build_engine is now called build_plan") as caught:
        b = export(default_src, "tensorrt", out_dir=tmp_path, imgsz=320, tensorrt={"build_engine": False})
    assert all(w.filename == __file__ for w in caught)
    assert Bundle.open(b).manifest["runtime"]["tensorrt"]["engines"] == []


# --- TensorRT in one package: one word, one plan store, imports in one direction ------------------

PACKAGE = ROOT / "runtimes" / "tensorrt"
#: where "engine" may still be written: TensorRT's own names (ICudaEngine, deserialize_cuda_engine,
#: engine_host_code_allowed), the bundle format's names (the manifest's ``engines``, the file role
#: ``engine``, ``engine-<key>.plan``) and the old option names still accepted
ENGINE_ALLOWED = re.compile(
    r"ICudaEngine|(deserialize_)?cuda_engine|engine_host_code_allowed|"
    r'MANIFEST_KEY = "engines"|runtime\.tensorrt\.engines|FILE_ROLE = "engine"|'
    r'FILE_PREFIX = "engine-"|engine-<gpu>|build_engine|engine_cache'
)


def test_the_artifact_is_called_a_plan():
    offenders = []
    for path in [*sorted(PACKAGE.glob("*.py")), ROOT / "export" / "targets" / "tensorrt.py"]:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if "engine" in ENGINE_ALLOWED.sub("", line).lower():
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == [], "say plan, not engine:\n" + "\n".join(offenders)


def test_plans_are_found_built_and_kept_in_one_place():
    """Only plans.py selects, builds and stores plans (api.py drives TensorRT's builder); the
    backend, the export and `edgecv build` all ask :func:`ensure_plan`."""
    owned = re.compile(
        r"\b(refusal|plan_entry|timing_cache_path)\(|\bapi\.build\(|build_serialized_network|"
        r"\bFILE_ROLE\b|\bFILE_PREFIX\b"
    )
    exempt = {PACKAGE / "plans.py", PACKAGE / "api.py"}
    sources = [p for d in ("edgecv", "export", "runtimes") for p in sorted((ROOT / d).rglob("*.py")) if p not in exempt]
    offenders = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in sources
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if owned.search(line)
    ]
    assert offenders == []
    callers = {
        "ensure_plan(": [PACKAGE / "backend.py", ROOT / "export" / "targets" / "tensorrt.py"],
        "build_bundle_plan(": [ROOT / "edgecv" / "cli" / "commands.py"],
    }
    for call, paths in callers.items():
        for p in paths:
            assert call in p.read_text(), f"{p.relative_to(ROOT)} gets its plan without {call[:-1]}"


def test_the_package_imports_in_one_direction():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    graph = {}
    for name in modules:
        deps = set()
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y / from . import x
                deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        graph[name] = deps & modules
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError on a cycle
    assert set(order) == modules and graph["api"] == set() and graph["cuda"] == set()
    init = ast.parse((PACKAGE / "__init__.py").read_text())
    assert not [n for n in ast.walk(init) if isinstance(n, (ast.Import, ast.ImportFrom))], (
        "importing the package imports none of its modules"
    )
