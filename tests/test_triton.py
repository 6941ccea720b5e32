"""``edgecv triton``: Triton model repositories from bundles, every config.pbtxt parsed with
Triton's own model-config schema (``tritonclient.grpc.model_config_pb2``).

No Triton server runs here: what is checked is the repository's layout, that every config
parses with Triton's schema and says what the bundle is (platform or backend, batch, data
types, dims, instances, the manifest), that the model files are the bundle's bytes and that the
copied model runs to the bundle's outputs. The TensorRT repository is made from a tensorrt
bundle whose plans were built by tests/trt_double.py, a TEST DOUBLE of TensorRT (its "plans"
are not TensorRT plans): the config and the layout are edgecv's, whether Triton's TensorRT
backend runs the plans is not tested here.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc.model_config_pb2")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

from edgecv import BundleError, load  # noqa: E402
from edgecv.bundle import MANIFEST_NAME, Bundle  # noqa: E402
from edgecv.cli import main  # noqa: E402
from edgecv.errors import UnknownTargetError  # noqa: E402
from edgecv.serving import triton  # noqa: E402

from .conftest import EXPORT_TARGETS  # noqa: E402
from .trt_double import FakeCuda, make_tensorrt  # noqa: E402

#: target -> (platform, backend, the model's files under 1/)
EXPECTED = {
    "onnxruntime": ("onnxruntime_onnx", "", {"model.onnx": "model.onnx"}),
    "openvino": ("", "openvino", {"model.xml": "model.xml", "model.bin": "model.bin"}),
}
#: the default detector's outputs: name -> (Triton data type, dims without the batch)
OUTPUTS = {
    "num_dets": ("TYPE_INT32", [1]),
    "boxes": ("TYPE_FP32", [100, 4]),
    "scores": ("TYPE_FP32", [100]),
    "labels": ("TYPE_INT32", [100]),
}


def parse(path) -> pb.ModelConfig:
    """A config.pbtxt parsed with Triton's schema: an unknown field or enum value fails."""
    return text_format.Parse(path.read_text(encoding="utf-8"), pb.ModelConfig())


def params(config) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


@pytest.fixture(scope="module")
def repo(default_bundles, tmp_path_factory):
    """Every CPU bundle of the default detector in one repository, each named by its target."""
    out = tmp_path_factory.mktemp("repo") / "models"
    targets = list(default_bundles)
    paths = triton.write_repository([default_bundles[t] for t in targets], out, names=targets, max_queue_delay_us=500)
    assert paths == [out / t for t in targets]
    return out


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_the_config_says_what_the_bundle_is(repo, default_bundles, target):
    bundle = Bundle.open(default_bundles[target])
    config = parse(repo / target / "config.pbtxt")
    platform, backend, files = EXPECTED[target]
    assert (config.name, config.platform, config.backend) == (target, platform, backend)
    assert config.max_batch_size == triton.DEFAULT_MAX_BATCH == 8  # a dynamic batch: edgecv's default
    inp, floor = config.input  # the images, and the NMS score floor of each image ([B] -> dims [1], no shape)
    assert (inp.name, pb.DataType.Name(inp.data_type), list(inp.dims)) == ("images", "TYPE_UINT8", [320, 320, 3])
    assert (floor.name, pb.DataType.Name(floor.data_type), list(floor.dims)) == ("score_threshold", "TYPE_FP32", [1])
    assert floor.HasField("reshape") and list(floor.reshape.shape) == [] and not inp.HasField("reshape")
    got = {o.name: (pb.DataType.Name(o.data_type), list(o.dims)) for o in config.output}
    assert got == OUTPUTS
    assert [o.name for o in config.output if o.HasField("reshape")] == ["num_dets"]  # [B] -> dims [1], no shape
    assert all(len(o.dims) > 0 for o in [*config.input, *config.output])  # Triton refuses empty dims
    assert [o.label_filename for o in config.output if o.label_filename] == ["labels.txt"]
    assert (repo / target / "labels.txt").read_text().splitlines() == list(bundle.classes)
    assert config.HasField("dynamic_batching") and config.dynamic_batching.max_queue_delay_microseconds == 500
    (group,) = config.instance_group
    assert (pb.ModelInstanceGroup.Kind.Name(group.kind), group.count) == ("KIND_CPU", 1)
    # the manifest travels in the config, whole
    assert json.loads(params(config)[triton.MANIFEST_PARAMETER]) == bundle.manifest
    # the model files are the bundle's bytes, and nothing else is in the version folder
    assert sorted(p.name for p in (repo / target / "1").iterdir()) == sorted(files)
    for name, src in files.items():
        assert (repo / target / "1" / name).read_bytes() == (bundle.path / src).read_bytes()
    if target == "openvino":
        assert params(config) | {triton.MANIFEST_PARAMETER: ""} == {
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_BATCH_PADDING": "YES",  # the backend compiles for max_batch_size exactly
            triton.MANIFEST_PARAMETER: "",
        }
    else:
        assert not config.optimization.HasField("graph")  # the backend's default is the bundle's "all"


def test_the_schema_has_teeth(repo):
    """A misspelt field, an unknown data type or a field at the wrong place does not parse."""
    text = (repo / EXPORT_TARGETS[0] / "config.pbtxt").read_text()
    parse(repo / EXPORT_TARGETS[0] / "config.pbtxt")
    for bad in (
        text.replace("max_batch_size:", "max_batch:"),
        text.replace("TYPE_UINT8", "TYPE_UINT9"),
        text.replace("kind: KIND_CPU", "kind: KIND_TPU"),
        text + 'parameters { key: "x" value { int_value: 1 } }\n',
    ):
        with pytest.raises(text_format.ParseError):
            text_format.Parse(bad, pb.ModelConfig())


def test_the_copied_model_gives_the_bundles_outputs(repo, default_bundles, val_images):
    """The repository's model, run by its runtime from the repository's files, gives the outputs
    of the bundle loaded by edgecv on the same letterboxed batch."""
    with load(default_bundles[EXPORT_TARGETS[0]]) as det:
        batch, _ = det.preprocess(val_images[:3])
    for target in EXPORT_TARGETS:
        with load(default_bundles[target]) as det:
            want = det._run(batch)
            feeds = {"images": batch, **det.extra_inputs(len(batch))}  # the score floor, the export's
        assert len(feeds) == 2, "the graph takes the score floor as an input"
        if target == "onnxruntime":
            import onnxruntime as ort

            session = ort.InferenceSession(str(repo / target / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
            got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        else:
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(repo / target / "1" / "model.xml"))
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            res = compiled(feeds)
            # a port carries several tensor names after conversion: take the manifest's
            got = {n: np.asarray(res[o]) for o in compiled.outputs for n in o.get_names() if n in OUTPUTS}
        assert int(want["num_dets"].sum()) > 0
        for name in OUTPUTS:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-4, err_msg=f"{target} {name}")


# --- tensorrt: plans from the TEST DOUBLE -------------------------------------------------------------


@pytest.fixture
def trt_bundle(default_tensorrt_graph, tmp_path, monkeypatch):
    """A copy of the default tensorrt bundle and ``build(gpu, cc, ...)``, which adds a plan built
    by the TEST DOUBLE of TensorRT for that fake GPU."""
    import edgecv.runtimes.tensorrt.cuda as cuda_mod

    dst = tmp_path / "trt"
    shutil.copytree(default_tensorrt_graph, dst)

    def build(gpu: str, cc: tuple[int, int], *args: str, version: str = "10.3.0") -> None:
        cuda = FakeCuda(gpu, cc)
        monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt(version, cuda))
        monkeypatch.setattr(cuda_mod, "open_cuda", lambda prefer=None: cuda)
        assert main(["build", str(dst), *args]) == 0

    return dst, build


def test_tensorrt_plans_per_compute_capability(trt_bundle, tmp_path, capsys):
    path, build = trt_bundle
    with pytest.raises(triton.TritonRepositoryError, match="holds no TensorRT plan.*edgecv build"):
        triton.write_repository([path], tmp_path / "none")
    build("NVIDIA Orin", (8, 7), "--max-batch", "4")
    (one,) = triton.write_repository([path], tmp_path / "one")
    config = parse(one / "config.pbtxt")
    bundle = Bundle.open(path)
    (plan,) = bundle.manifest["runtime"]["tensorrt"]["engines"]
    assert (config.platform, config.backend, config.max_batch_size) == ("tensorrt_plan", "", 4)  # the plan's profile
    assert not config.cc_model_filenames and sorted(p.name for p in (one / "1").iterdir()) == ["model.plan"]
    assert (one / "1" / "model.plan").read_bytes() == (path / plan["file"]).read_bytes()
    (group,) = config.instance_group
    assert pb.ModelInstanceGroup.Kind.Name(group.kind) == "KIND_GPU"
    assert {o.name: (pb.DataType.Name(o.data_type), list(o.dims)) for o in config.output} == OUTPUTS
    assert json.loads(params(config)[triton.MANIFEST_PARAMETER]) == bundle.manifest
    with pytest.raises(triton.TritonRepositoryError, match="up to 4.*--max-batch 8"):
        triton.write_repository([path], tmp_path / "big", max_batch=8)

    build("NVIDIA GeForce RTX 4090", (8, 9), "--max-batch", "4", "--version-compatible")
    assert main(["triton", str(path), "-o", str(tmp_path / "two"), "--instances", "2"]) == 0
    printed = capsys.readouterr().out
    assert "--backend-config=tensorrt,version-compatible=true" in printed and "--gpus all" in printed
    model = tmp_path / "two" / "edgecv-tiny"
    config = parse(model / "config.pbtxt")
    plans = {e["compute_capability"]: e["file"] for e in Bundle.open(path).manifest["runtime"]["tensorrt"]["engines"]}
    assert (
        dict(config.cc_model_filenames)
        == plans
        == {
            "8.7": "engine-nvidia-orin-sm87-trt10.3.0.plan",
            "8.9": "engine-nvidia-geforce-rtx-4090-sm89-trt10.3.0.plan",
        }
    )
    assert sorted(p.name for p in (model / "1").iterdir()) == sorted(plans.values())
    for file in plans.values():
        assert (model / "1" / file).read_bytes() == (path / file).read_bytes()
    assert config.instance_group[0].count == 2

    build("NVIDIA Jetson AGX Orin", (8, 7), version="10.4.0")  # a second plan for compute capability 8.7
    with pytest.raises(triton.TritonRepositoryError, match="two plans for compute capability 8.7"):
        triton.write_repository([path], tmp_path / "clash")


# --- batch profiles, errors ------------------------------------------------------------------------


def test_a_fixed_batch_bundle_gets_no_batching(default_src, tmp_path):
    from edgecv.export import export

    bundle = export(default_src, "onnxruntime", out_dir=tmp_path, dynamic_batch=False, name="fixed")
    (model,) = triton.write_repository([bundle], tmp_path / "repo")
    config = parse(model / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, 320, 320, 3]
    assert {o.name: list(o.dims) for o in config.output}["boxes"] == [1, 100, 4]
    with pytest.raises(triton.TritonRepositoryError, match="fixed batch of 1"):
        triton.write_repository([bundle], tmp_path / "repo2", max_batch=4)


def test_refusals(default_bundles, tmp_path):
    ort = default_bundles["onnxruntime"]
    out = tmp_path / "repo"
    with pytest.raises(BundleError, match="no bundle at"):
        triton.write_repository([tmp_path / "missing"], out)
    with pytest.raises(triton.TritonRepositoryError, match="both be the model 'edgecv-tiny'.*--name"):
        triton.write_repository([ort, ort], out)
    with pytest.raises(triton.TritonRepositoryError, match="one --name per bundle"):
        triton.write_repository([ort, ort], out, names=["a"])
    with pytest.raises(triton.TritonRepositoryError, match="not a folder name"):
        triton.write_repository([ort], out, names=["../up"])
    # a tampered file: refused before anything is written, even for the bundles that are fine
    broken = tmp_path / "broken"
    shutil.copytree(ort, broken)
    with open(broken / "model.onnx", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0\1\2\3")
    with pytest.raises(BundleError, match="does not match its sha256"):
        triton.write_repository([ort, broken], out, names=["good", "bad"])
    assert not out.exists()
    # a target Triton does not serve from a bundle
    other = tmp_path / "torch"
    shutil.copytree(ort, other)
    m = json.loads((other / MANIFEST_NAME).read_text())
    (other / MANIFEST_NAME).write_text(json.dumps(dict(m, target="torch")))
    with pytest.raises((UnknownTargetError, BundleError), match="torch"):
        triton.write_repository([other], out)
    # an existing model folder: refused unless --force, which replaces it whole
    triton.write_repository([ort], out, names=["m"])
    (out / "m" / "stale.txt").write_text("x")
    with pytest.raises(triton.TritonRepositoryError, match="exists and is not empty.*--force"):
        triton.write_repository([ort], out, names=["m"])
    triton.write_repository([ort], out, names=["m"], force=True, instances=3)
    assert not (out / "m" / "stale.txt").exists() and parse(out / "m" / "config.pbtxt").instance_group[0].count == 3
    assert sorted(p.name for p in out.iterdir()) == ["m"]  # no staging folder left behind


def test_cli_end_to_end(default_bundles, tmp_path, capsys):
    bundles = [str(default_bundles[t]) for t in EXPORT_TARGETS]
    out = tmp_path / "repo"
    names = [x for t in EXPORT_TARGETS for x in ("--name", f"tiny-{t}")]
    argv = ["triton", *bundles, "-o", str(out), *names, "--max-batch", "4", "--max-queue-delay-us", "100"]
    assert main([*argv, "--threads", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"tritonserver --model-repository={out.resolve()}" in printed
    assert f"-v {out.resolve()}:/models nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver" in printed
    for t in EXPORT_TARGETS:
        config = parse(out / f"tiny-{t}" / "config.pbtxt")
        assert config.max_batch_size == 4 and config.dynamic_batching.max_queue_delay_microseconds == 100
        threads = {"onnxruntime": "intra_op_thread_count", "openvino": "INFERENCE_NUM_THREADS"}[t]
        assert params(config)[threads] == "2"
    assert main(argv) == 2  # the folders are there now
    assert "exists and is not empty" in capsys.readouterr().err
    assert main([*argv, "--force", "--no-dynamic-batching"]) == 0
    assert not parse(out / f"tiny-{EXPORT_TARGETS[0]}" / "config.pbtxt").HasField("dynamic_batching")
    assert main(["triton", bundles[0], bundles[0], "-o", str(out)]) == 2
    assert "--name" in capsys.readouterr().err
