"""The bundle: manifest schema, hashes, confinement, atomic writes."""

import copy
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecv import BundleError, load
from edgecv.bundle import MANIFEST_NAME, SCHEMA_VERSION, Bundle, validate_manifest


@pytest.fixture()
def bundle_copy(default_bundles, tmp_path):
    """A private copy of the onnxruntime bundle to break."""
    dst = tmp_path / "b"
    shutil.copytree(default_bundles["onnxruntime"], dst)
    return dst


def edit_manifest(path, fn):
    m = json.loads((path / MANIFEST_NAME).read_text())
    fn(m)
    (path / MANIFEST_NAME).write_text(json.dumps(m))


def test_manifest_states_the_contract(default_bundles):
    m = Bundle.open(default_bundles["onnxruntime"]).manifest
    assert m["schema_version"] == SCHEMA_VERSION
    assert m["input"]["normalization"]["in_graph"] is True
    assert m["output"]["tensors"] == {k: k for k in ("num_dets", "boxes", "scores", "labels")}
    assert m["output"]["nms"]["where"] == "graph"
    assert {f["role"] for f in m["files"]} == {"model"}
    assert len(m["provenance"]["source"]["sha256"]) == 64
    assert "onnxruntime" in m["provenance"]["versions"] and "torch" in m["provenance"]["versions"]


def test_tampered_file_is_refused(bundle_copy):
    p = bundle_copy / "model.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load(bundle_copy)


def test_truncated_file_is_refused(bundle_copy):
    p = bundle_copy / "model.onnx"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(BundleError, match="truncated"):
        load(bundle_copy)


def test_missing_file_is_refused(bundle_copy):
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(BundleError, match="missing model.onnx"):
        load(bundle_copy)


def test_missing_manifest_and_missing_directory(bundle_copy, tmp_path):
    (bundle_copy / MANIFEST_NAME).unlink()
    with pytest.raises(BundleError, match="no edgecv.json"):
        load(bundle_copy)
    with pytest.raises(BundleError, match="no bundle"):
        load(tmp_path / "nowhere")


def test_newer_schema_is_refused_with_advice(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(BundleError, match="newer than this edgecv.*upgrade"):
        load(bundle_copy)


def test_symlink_out_of_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(bundle_copy / "model.onnx", outside)
    (bundle_copy / "model.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="link"):
        load(bundle_copy)


def test_invalid_json(bundle_copy):
    (bundle_copy / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load(bundle_copy)


BAD = [
    (lambda m: m.pop("classes"), "missing the field 'classes'"),
    (lambda m: m.update(target="tflite"), "target 'tflite'"),
    (lambda m: m.update(precision=32), "precision has type int"),
    (lambda m: m.update(surprise=1), "unknown fields"),
    (lambda m: m.update(schema_version="1"), "schema_version has type str"),
    (lambda m: m["files"][0].update(path="../../etc/passwd"), "plain name inside the bundle"),
    (lambda m: m["files"][0].update(path="/etc/passwd"), "plain name inside the bundle"),
    (lambda m: m["files"][0].update(path="sub/model.onnx"), "plain name inside the bundle"),
    (lambda m: m["files"][0].update(sha256="abc"), "malformed hash"),
    (lambda m: m["files"].append(dict(m["files"][0])), "listed twice"),
    (lambda m: m["input"].update(shape=[1, 320, 10**9, 3]), "input.shape"),
    (lambda m: m["input"].update(dtype="float32"), "uint8 NHWC"),
    (lambda m: m["output"].update(mode="magic"), "output.mode"),
    (lambda m: m["output"]["nms"].pop("iou_threshold"), "iou_threshold"),
    (lambda m: m.update(classes=[]), "classes must be a non-empty"),
    (lambda m: m.update(files=[]), "no model file"),
    (lambda m: m["output"].update(masks={"tensor": "masks", "threshold": 0.5}), "output.masks must name one of"),
    (lambda m: m["output"].update(masks={"tensor": "boxes", "threshold": 1.5}), "threshold in"),
    (lambda m: m["output"].update(masks={"tensor": "boxes"}), r"output.masks is missing the field 'threshold'"),
]


@pytest.mark.parametrize("breaker, msg", BAD)
def test_schema_violations_are_named(default_bundles, breaker, msg):
    m = copy.deepcopy(Bundle.open(default_bundles["onnxruntime"]).manifest)
    breaker(m)
    with pytest.raises(BundleError, match=msg):
        validate_manifest(m)


def test_manifest_size_limit(bundle_copy):
    (bundle_copy / MANIFEST_NAME).write_text(" " * (2 << 20))
    with pytest.raises(BundleError, match="larger than"):
        load(bundle_copy)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_a_tensorrt_bundle_without_tensorrt_says_how_to_get_it(bundle_copy):
    from edgecv import BackendUnavailableError

    edit_manifest(bundle_copy, lambda m: m.update(target="tensorrt"))
    with pytest.raises(
        BackendUnavailableError,
        match=r"pip install 'edgecv\[tensorrt\]' tensorrt.*JetPack.*"
        r"backend='onnxruntime'",
    ):
        load(bundle_copy)


def test_an_exports_intermediate_graphs_live_in_its_staging_directory(tmp_path, monkeypatch):
    """A killed export used to leave /tmp/edgecv-onnx-* behind for good; its work now sits in
    the staging directory beside the bundle, which the next export removes (clean_stale)."""
    pytest.importorskip("torch")
    from edgecv.export import api
    from edgecv.export import graph as G

    seen = {}

    def killed_here(g, size, path, dynamic):
        seen["path"] = Path(path)
        raise RuntimeError("the export stops here")

    monkeypatch.setattr(G, "export_torch", killed_here)
    with pytest.raises(RuntimeError, match="stops here"):
        api.export(None, "onnxruntime", out_dir=tmp_path, imgsz=64, name="b")
    staging_dir = seen["path"].parent.parent
    assert seen["path"].parent.name == ".work" and staging_dir.parent == tmp_path
    assert staging_dir.name.startswith(".b.tmp-")  # the pattern clean_stale reclaims once its process is gone
    assert not any(tmp_path.iterdir())  # and a failed export removes it itself


# --- the bytes checked are the bytes run (no time-of-check/time-of-use gap) ------------------------

#: (target, role of the file that is swapped)
SWAPPED = [("onnxruntime", "model"), ("openvino", "model"), ("openvino", "weights")]


def _bundle_of(default_bundles, target, tmp_path):
    if target not in default_bundles:
        pytest.skip(f"{target} is not installed here")
    dst = tmp_path / target
    shutil.copytree(default_bundles[target], dst)
    return dst


def _other_bytes(path: Path) -> bytes:
    """Contents of the same size as ``path``'s that no backend would run as the same model: for a
    weights file, all zeros (a model that finds nothing); else the bytes reversed."""
    data = path.read_bytes()
    return bytes(len(data)) if path.suffix == ".bin" else data[::-1]


@pytest.mark.parametrize("target, role", SWAPPED)
def test_a_file_replaced_after_the_hash_check_is_never_run(default_bundles, tmp_path, monkeypatch, target, role):
    """The file is replaced on disk right after load() checked every hash, before the backend
    takes its model: the backend must get the checked bytes or refuse, never the new ones."""
    path = _bundle_of(default_bundles, target, tmp_path)
    victim = Bundle.open(path).file(role)
    verify = Bundle.verify

    def verify_then_swap(self):
        verify(self)
        victim.write_bytes(_other_bytes(victim))

    monkeypatch.setattr(Bundle, "verify", verify_then_swap)
    with pytest.raises(BundleError, match=f"{victim.name} does not match its sha256"):
        load(path)


@pytest.mark.parametrize("target, role", SWAPPED)
def test_the_backend_runs_the_bytes_that_were_checked(default_bundles, tmp_path, monkeypatch, val_images, target, role):
    """The file is replaced the moment its bytes were read and checked: the detector still runs
    the exported model (same detections as an untouched copy), since those bytes are all it has."""
    path = _bundle_of(default_bundles, target, tmp_path)
    with load(default_bundles[target]) as ref:
        want = ref.predict(val_images[:3])
    assert sum(len(d) for d in want) > 0
    victim = Bundle.open(path).file(role)
    read = Bundle.read
    swapped = []

    def read_then_swap(self, read_role=None, **kwargs):
        data = read(self, read_role, **kwargs)
        if read_role == role:
            victim.write_bytes(_other_bytes(victim))
            swapped.append(read_role)
        return data

    monkeypatch.setattr(Bundle, "read", read_then_swap)
    with load(path) as det:
        got = det.predict(val_images[:3])
    assert swapped == [role]
    with pytest.raises(BundleError, match="sha256"):  # the file on disk is another one now
        Bundle.open(path)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.xyxy, w.xyxy, rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(g.class_ids, w.class_ids)


def test_a_model_with_external_data_is_refused_not_resolved_in_the_working_directory(
    bundle_copy, tmp_path, monkeypatch
):
    """onnxruntime given a model's bytes looks for external data in the process's working
    directory; load() refuses such a model instead (the data file is not what the manifest hashed)."""
    onnx = pytest.importorskip("onnx")
    from edgecv.bundle import sha256_file

    model = onnx.load(str(bundle_copy / "model.onnx"))
    onnx.save(model, str(bundle_copy / "model.onnx"), save_as_external_data=True, location="weights.data")
    assert (bundle_copy / "weights.data").is_file()
    edit_manifest(
        bundle_copy,
        lambda m: m["files"][0].update(
            size=(bundle_copy / "model.onnx").stat().st_size, sha256=sha256_file(bundle_copy / "model.onnx")
        ),
    )
    monkeypatch.chdir(bundle_copy)  # where onnxruntime would find weights.data
    with pytest.raises(BundleError, match=r"external data file.*re-export"):
        load(bundle_copy)


# --- what a graph refers to (edgecv.graph_references): only what the manifest hashes ----------------


def _tiny_model(**node_kw):
    """A one-node ONNX model (Identity of x), its node's fields from ``node_kw``."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(node_kw.pop("op_type", "Identity"), ["x"], ["y"], name="n0", **node_kw)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), onnx


def test_external_data_is_found_in_subgraphs_with_its_location():
    from onnx import TensorProto, helper

    from edgecv.graph_references import ExternalTensor, check_onnx, onnx_references

    model, onnx = _tiny_model()
    inner = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    inner.ClearField("float_data")
    inner.data_location = TensorProto.EXTERNAL
    inner.external_data.add(key="location", value="../../etc/passwd")
    then = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=inner)],
        "then",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )
    model.graph.node.append(helper.make_node("If", ["cond"], ["z"], then_branch=then, else_branch=then))
    data = model.SerializeToString()
    assert onnx_references(data).external == [ExternalTensor("w", "../../etc/passwd")] * 2  # in both branches
    with pytest.raises(BundleError, match=r"m\.onnx keeps tensor 'w' in the external data file '\.\./\.\./etc/passwd'"):
        check_onnx(data, "m.onnx", "onnxruntime")


@pytest.mark.parametrize(
    "domain, backend, refused",
    [
        ("", "tensorrt", False),
        ("ai.onnx", "openvino", False),
        ("com.microsoft", "onnxruntime", False),  # onnxruntime's contrib operators: its own library
        ("com.microsoft", "tensorrt", True),  # TensorRT would look a plugin up
        ("trt.plugins", "tensorrt", True),
        ("com.example.hostile", "onnxruntime", True),
    ],
)
def test_custom_domains_only_where_a_target_registers_them(domain, backend, refused):
    from edgecv.graph_references import check_onnx

    model, _ = _tiny_model(op_type="Custom" if domain not in ("", "ai.onnx") else "Identity", domain=domain)
    data = model.SerializeToString()
    if refused:
        with pytest.raises(BundleError, match=rf"m\.onnx has node 'n0', operator 'Custom' of domain '{domain}'"):
            check_onnx(data, "m.onnx", backend)
    else:
        check_onnx(data, "m.onnx", backend)


def test_a_call_of_the_models_own_function_is_not_a_custom_operator():
    from onnx import helper

    from edgecv.graph_references import check_onnx, onnx_references

    model, _ = _tiny_model(op_type="MyIdentity", domain="local.fn")
    body = helper.make_function(
        "local.fn",
        "MyIdentity",
        ["a"],
        ["b"],
        [helper.make_node("Identity", ["a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    model.functions.append(body)
    check_onnx(model.SerializeToString(), "m.onnx", "tensorrt")
    model.functions[0].node[0].domain = "com.example.hostile"  # but what the function runs is checked
    assert [n.domain for n in onnx_references(model.SerializeToString()).custom] == ["com.example.hostile"]


def test_bytes_that_are_not_a_protobuf_are_a_bundle_error():
    from edgecv.graph_references import check_onnx

    with pytest.raises(BundleError, match=r"m\.onnx: the model is not a readable ONNX file"):
        check_onnx(b"\x0a\xff\xff\xff\xff\x0f", "m.onnx", "onnxruntime")


def test_an_ir_refers_only_to_the_hashed_weights_beside_it():
    from edgecv.graph_references import check_openvino_ir

    xml = b'<?xml version="1.0"?><net><layers><layer name="c" type="Const"><data offset="8" size="8"/></layer></layers></net>'
    check_openvino_ir(xml, "model.xml", "model.bin", 16)
    with pytest.raises(BundleError, match="manifest's weights file is 'w.bin'"):
        check_openvino_ir(xml, "model.xml", "w.bin", 16)
    with pytest.raises(BundleError, match="lists no weights file"):
        check_openvino_ir(xml, "model.xml", None, 0)
    with pytest.raises(BundleError, match=r"layer 'c' reads bytes 8\+8 of its weights, which are 12 bytes"):
        check_openvino_ir(xml, "model.xml", "model.bin", 12)
    entity = b'<?xml version="1.0"?><!DOCTYPE net [<!ENTITY e SYSTEM "/etc/passwd">]><net name="&e;"/>'
    with pytest.raises(BundleError, match="declares a DTD or entities"):
        check_openvino_ir(entity, "model.xml", "model.bin", 16)
