"""The static TensorRT check (`edgecv doctor --target tensorrt`): each rule on a small graph
that breaks it, the graphs edgecv exports passing it, and export refusing a graph it fails."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgecv.cli import main  # noqa: E402
from edgecv.runtimes.tensorrt.static_check import check  # noqa: E402


def graph(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def const(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


F, U8, I8 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8


def findings(model, profile=None, versions=None):
    return check(model, profile, versions).findings


def rules(model, **kw):
    return {(f.severity, f.rule) for f in findings(model, **kw)}


def test_a_clean_graph_has_no_errors():
    m = graph(
        [helper.make_node("Cast", ["x"], ["f"], to=F, name="cast"), helper.make_node("Relu", ["f"], ["y"])],
        [vi("x", U8, [1, 3, 8, 8])],
        [vi("y", F, [1, 3, 8, 8])],
    )
    assert check(m).errors == []


def test_qdq_with_a_zero_point_or_uint8_is_an_error_naming_the_node():
    m = graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q1"),
            helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq1"),
        ],
        [vi("x", F, [1, 4])],
        [vi("y", F, [1, 4])],
        [const("s", np.float32(0.1)), const("zp", np.uint8(128))],
    )
    f = [x for x in findings(m) if x.severity == "error"]
    assert {(x.rule, x.node) for x in f} >= {("qdq-zero-point", "q1"), ("qdq-zero-point", "dq1"), ("qdq-type", "q1")}
    m.graph.initializer[1].CopyFrom(const("zp", np.int8(0)))
    assert check(m).errors == []


def test_operators_outside_the_table_and_custom_domains():
    m = graph(
        [
            helper.make_node("Unique", ["x"], ["y"], name="u"),
            helper.make_node("EfficientNMS_TRT", ["x"], ["z"], domain="trt.plugins", name="p"),
        ],
        [vi("x", F, [4])],
        [vi("y", F, [4]), vi("z", F, [4])],
    )
    f = {(x.rule, x.node): x for x in findings(m)}
    assert "marked unsupported" in f[("unsupported-op", "u")].message
    assert f[("unsupported-op", "u")].versions == ["10.3", "10.15", "11.x"]
    assert "plugin" in f[("custom-op", "p")].message


def test_the_opset_range_differs_by_version():
    m = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, [4])], [vi("y", F, [4])], opset=21)
    (f,) = [x for x in findings(m) if x.rule == "opset"]
    assert f.severity == "error" and f.versions == ["10.3"]


def test_dynamic_dimensions_need_a_profile_and_outputs_a_fixed_size():
    m = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, ["b", 3, "h", 8])], [vi("y", F, ["b", 3, "h", 8])])
    assert ("error", "dynamic-shape") in rules(m)
    prof = {"x": ((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 16, 8))}
    assert ("error", "dynamic-shape") not in rules(m, profile=prof)
    assert ("error", "output-shape") in rules(m, profile=prof)  # h is not the batch
    bad = {"x": ((1, 3, 8, 4), (1, 3, 8, 4), (4, 3, 16, 4))}  # width 8 is fixed in the graph
    assert ("error", "profile") in rules(m, profile=bad)
    fixed = graph(
        [helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, ["batch", 3, 8, 8])], [vi("y", F, ["batch", 3, 8, 8])]
    )
    assert ("warning", "dynamic-shape") in rules(fixed)  # a bare graph: the bundle gives the profile
    assert check(fixed, {"x": ((1, 3, 8, 8), (1, 3, 8, 8), (8, 3, 8, 8))}).findings == []


def test_documented_restrictions():
    topk = graph(
        [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top")],
        [vi("x", F, [1, 5000])],
        [vi("v", F, [1, 4000]), vi("i", TensorProto.INT64, [1, 4000])],
        [const("k", np.array([4000]))],
    )
    assert ("error", "topk-k") in rules(topk)
    resize = graph(
        [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="cubic", name="rs")],
        [vi("x", F, [1, 1, 4, 4])],
        [vi("y", F, [1, 1, 8, 8])],
        [const("sc", np.array([1, 1, 2, 2], np.float32))],
    )
    (f,) = [x for x in findings(resize) if x.rule == "resize-mode"]
    assert f.node == "rs" and "'cubic'" in f.message
    reduce = graph(
        [helper.make_node("ReduceSum", ["x", "ax"], ["y"], name="rsum")],
        [vi("x", F, [2, 3]), vi("ax", TensorProto.INT64, [1])],
        [vi("y", F, [2, 1])],
    )
    assert ("error", "constant-input") in rules(reduce)
    pool = graph(
        [helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], name="mp")],
        [vi("x", F, [1, 1, 4, 4])],
        [vi("y", F, [1, 1, 3, 3]), vi("idx", TensorProto.INT64, [1, 1, 3, 3])],
    )
    assert ("error", "maxpool") in rules(pool)


def test_uint8_feeding_anything_but_a_cast_is_an_error():
    m = graph(
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="tr"),
            helper.make_node("Cast", ["t"], ["y"], to=F),
        ],
        [vi("x", U8, [1, 8, 8, 3])],
        [vi("y", F, [1, 3, 8, 8])],
    )
    msgs = [x.message for x in findings(m) if x.rule == "uint8"]
    assert any("feeds Transpose" in s for s in msgs)


def test_int64_weights_outside_int32_are_flagged_but_slice_ends_are_not():
    m = graph(
        [helper.make_node("Slice", ["x", "st", "en"], ["s"]), helper.make_node("Add", ["c", "c"], ["y"])],
        [vi("x", TensorProto.INT64, [4])],
        [vi("s", TensorProto.INT64, [4]), vi("y", TensorProto.INT64, [1])],
        [const("st", np.array([0])), const("en", np.array([2**63 - 1])), const("c", np.array([2**40]))],
    )
    flagged = [x.node for x in findings(m) if x.rule == "int64" and x.severity == "warning"]
    assert flagged == ["c"]


def test_the_doctor_command(tmp_path, capsys):
    bad = graph([helper.make_node("Unique", ["x"], ["y"], name="u")], [vi("x", F, [4])], [vi("y", F, [4])])
    path = tmp_path / "bad.onnx"
    onnx.save(bad, str(path))
    assert main(["doctor", str(path)]) == 1
    out = capsys.readouterr().out
    assert "unsupported-op" in out and "u " in out and "1 error(s)" in out
    assert main(["doctor", str(path), "--json", "--versions", "10.3"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 1 and report["versions"] == ["10.3"]
    assert main(["doctor", str(path), "--versions", "9.0"]) == 2
    assert main(["doctor", str(tmp_path / "missing.onnx")]) == 2
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    assert main(["doctor", str(tmp_path / "junk.onnx")]) == 2
    assert "not a readable ONNX graph" in capsys.readouterr().err


def test_bundles_are_checked_with_their_profile(default_bundles, default_tensorrt_graph, capsys):
    assert main(["doctor", str(default_tensorrt_graph)]) == 0
    out = capsys.readouterr().out
    assert "0 error(s), 0 warning(s)" in out
    assert main(["doctor", str(default_bundles["onnxruntime"])]) == 0  # its ONNX graph is the same


def test_export_refuses_a_graph_tensorrt_would_refuse(tmp_path, capsys):
    """An ONNX source with an operator TensorRT lacks (Det): onnxruntime exports it, tensorrt refuses."""
    torch = pytest.importorskip("torch")

    class Raw(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, stride=4, padding=1)

        def forward(self, x):
            y = self.conv(x).flatten(2)  # [B, 4 + 2, N]
            d = torch.linalg.det(x[:, :, :2, :2]).sum(1, keepdim=True).unsqueeze(-1)  # [B, 1, 1]
            return torch.cat([y[:, :4].abs() * 10, (y[:, 4:] + d * 0).sigmoid()], 1)

    src = tmp_path / "raw.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Raw().eval(),
            (torch.zeros(1, 3, 64, 64),),
            str(src),
            input_names=["input"],
            output_names=["raw"],
            opset_version=17,
            dynamo=False,
        )
    assert any(n.op_type == "Det" for n in onnx.load(str(src)).graph.node)
    common = [str(src), "--names", "a,b", "--imgsz", "64", "-o", str(tmp_path)]
    assert main(["export", *common, "--target", "onnxruntime"]) == 0
    capsys.readouterr()
    assert main(["export", *common, "--target", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT would refuse this graph" in err and "Det" in err and "unsupported-op" in err
    assert not list(tmp_path.glob("*tensorrt*")), "nothing is left behind"


def test_the_doctor_needs_onnx_but_not_torch(tmp_path):
    """On a device (a Jetson without the exporter) the check runs with the onnx package alone."""
    import subprocess
    import sys

    path = tmp_path / "ok.onnx"
    onnx.save(graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, [4])], [vi("y", F, [4])]), str(path))
    code = (
        "import sys; from edgecv.cli import main; rc = main(['doctor', sys.argv[1]]); "
        "print('rc', rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().endswith("rc 0 False"), out
