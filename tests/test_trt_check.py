"""The static TensorRT check (`edgecv doctor --target tensorrt`): each rule on a small graph
that breaks it, the graphs edgecv exports passing it, and export refusing a graph it fails."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgecv import BackendUnavailableError  # noqa: E402
from edgecv.bundle import Bundle  # noqa: E402
from edgecv.cli import main  # noqa: E402
from edgecv.runtimes.tensorrt.static_check import check, check_bundle  # noqa: E402

from . import test_tensorrt  # noqa: E402
from .conftest import ROOT  # noqa: E402

trt_double = test_tensorrt.trt_double  # the fixture that installs the TEST DOUBLE of tensorrt


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
    assert f[("unsupported-op", "u")].versions == ["10.3", "10.15", "11.0", "11.2", "11.5"]
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
    # in a body: an NMS's box count of INT64 max (the parser clamps it to INT32 max), as the INT8
    # R-CNN graphs have it in the If of their batched NMS, is not flagged; another such weight is
    nms = helper.make_node("NonMaxSuppression", ["b", "sc", "all", "iou"], ["keep"], name="nms")
    add = helper.make_node("Add", ["big", "big"], ["e"], name="add")
    inner = body(
        [nms, add],
        outputs=[vi("keep", TensorProto.INT64, [None, 3]), vi("e", TensorProto.INT64, [1])],
        inits=[const("all", np.array([2**63 - 1])), const("iou", np.float32(0.5)), const("big", np.array([2**40]))],
    )
    m = graph(
        [helper.make_node("If", ["c"], ["k", "y"], name="if", then_branch=inner, else_branch=inner)],
        [vi("c", TensorProto.BOOL, []), vi("b", F, [1, 4, 4]), vi("sc", F, [1, 1, 4])],
        [vi("k", TensorProto.INT64, [None, 3]), vi("y", TensorProto.INT64, [1])],
    )
    flagged = sorted(x.node for x in findings(m) if x.rule == "int64" and x.severity == "warning")
    assert flagged == ["if/else_branch/big", "if/then_branch/big"]


# --- inside If, Loop and Scan bodies; what each version's parser applies --------------------------

ALL = ["10.3", "10.15", "11.0", "11.2", "11.5"]


def by_version(model, **kw):
    """label -> the sorted (severity, rule) of the findings for that version, notes left out."""
    out = {v: set() for v in ALL}
    for f in findings(model, **kw):
        if f.severity != "info":
            for v in f.versions:
                out[v].add((f.severity, f.rule))
    return {v: sorted(r) for v, r in out.items()}


def body(nodes, inputs=(), outputs=(), inits=()):
    return helper.make_graph(nodes, "body", list(inputs), list(outputs), list(inits))


def with_body(kind, bad):
    """A graph whose only node is an If, a Loop or a Scan with ``bad`` in its body."""
    if kind == "If":
        then = body([helper.make_node("Identity", ["x"], ["t"])], outputs=[vi("t", F, [4])])
        els = body([bad, helper.make_node("Identity", ["u"], ["e"])], outputs=[vi("e", F, [4])])
        node = helper.make_node("If", ["c"], ["y"], name="If_12", then_branch=then, else_branch=els)
        return graph([node], [vi("c", TensorProto.BOOL, []), vi("x", F, [4])], [vi("y", F, [4])])
    if kind == "Loop":
        b = body(
            [bad, helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Add", ["acc", "u"], ["out"])],
            [vi("i", TensorProto.INT64, []), vi("cond", TensorProto.BOOL, []), vi("acc", F, [4])],
            [vi("cond_out", TensorProto.BOOL, []), vi("out", F, [4])],
        )
        node = helper.make_node("Loop", ["n", "", "x"], ["y"], name="Loop_5", body=b)
        return graph([node], [vi("x", F, [4])], [vi("y", F, [4])], [const("n", np.array(3))])
    b = body(
        [bad, helper.make_node("Add", ["acc", "u"], ["out"]), helper.make_node("Identity", ["out"], ["scan_out"])],
        [vi("acc", F, [4]), vi("x_t", F, [4])],
        [vi("out", F, [4]), vi("scan_out", F, [4])],
    )
    node = helper.make_node("Scan", ["x0", "xs"], ["y", "ys"], name="Scan_7", body=b, num_scan_inputs=1)
    return graph([node], [vi("x0", F, [4]), vi("xs", F, [3, 4])], [vi("y", F, [4]), vi("ys", F, [3, 4])])


@pytest.mark.parametrize(
    "kind, path",
    [("If", "If_12/else_branch/Unique_3"), ("Loop", "Loop_5/body/Unique_3"), ("Scan", "Scan_7/body/Unique_3")],
)
def test_an_unsupported_operator_inside_a_body_is_found_by_its_path(kind, path):
    bad = helper.make_node("Unique", ["x" if kind != "Scan" else "x_t"], ["u"], name="Unique_3")
    report = check(with_body(kind, bad))
    (f,) = report.errors
    assert (f.rule, f.node, f.op, f.versions) == ("unsupported-op", path, "Unique", ALL)
    assert report.subgraphs == (2 if kind == "If" else 1) and report.subgraph_nodes >= 2
    assert path in report.table()
    # the same body with an operator TensorRT takes has no error
    ok = helper.make_node("Neg", ["x" if kind != "Scan" else "x_t"], ["u"], name="Neg_3")
    assert check(with_body(kind, ok)).errors == []


def test_bodies_read_their_own_and_outer_initializers_and_types():
    """A body sees its own initializers, the names of the graphs around it, and hides an outer
    name with its own: K of a TopK is a constant from either, a UINT8 tensor made in a body is
    refused (UINT8 is taken only as a network input or output)."""
    inner = body(
        [
            helper.make_node("TopK", ["x", "k_outer"], ["v1", "i1"], name="top_outer"),
            helper.make_node("TopK", ["x", "k_inner"], ["v2", "i2"], name="top_inner"),
            helper.make_node("Cast", ["x"], ["x8"], to=U8, name="to_u8"),
            helper.make_node("Cast", ["x8"], ["e"], to=F),
        ],
        outputs=[vi("e", F, [8])],
        inits=[const("k_inner", np.array([5000]))],
    )
    then = body([helper.make_node("Identity", ["x"], ["t"])], outputs=[vi("t", F, [8])])
    m = graph(
        [helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=inner)],
        [vi("c", TensorProto.BOOL, []), vi("x", F, [8])],
        [vi("y", F, [8])],
        [const("k_outer", np.array([2]))],
    )
    got = {(f.rule, f.node) for f in findings(m) if f.severity != "info"}
    assert got == {("topk-k", "if/else_branch/top_inner"), ("uint8", "if/else_branch/x8")}, got


def test_scatternd_reduction_follows_each_parser():
    def scatter(**attrs):
        node = helper.make_node("ScatterND", ["x", "i", "u"], ["y"], name="sc", **attrs)
        return graph(
            [node], [vi("x", F, [4, 4]), vi("u", F, [1, 4])], [vi("y", F, [4, 4])], [const("i", np.array([[1]]))], 18
        )

    bad = [("error", "scatter-reduction")]
    assert by_version(scatter()) == dict.fromkeys(ALL, [])
    # 10.3's importer asserts the attribute is absent: even reduction="none" is refused
    assert by_version(scatter(reduction="none")) == {**dict.fromkeys(ALL, []), "10.3": bad}
    assert by_version(scatter(reduction="add")) == dict.fromkeys(ALL, bad)


def test_cumsum_axis_is_an_initializer_on_10_3_and_a_build_time_constant_after():
    def cumsum(nodes, inputs, inits=()):
        return graph(
            [*nodes, helper.make_node("CumSum", ["x", "ax"], ["y"], name="cs")], inputs, [vi("y", F, [4, 4])], inits
        )

    x = vi("x", F, [4, 4])
    runtime = cumsum([], [x, vi("ax", TensorProto.INT64, [])])
    assert by_version(runtime) == dict.fromkeys(ALL, [("error", "constant-input")])
    assert "an input of the graph" in next(f.message for f in findings(runtime) if f.versions == ALL[1:])
    computed = cumsum(
        [helper.make_node("Add", ["a", "b"], ["ax"])], [x], [const("a", np.array(0)), const("b", np.array(1))]
    )
    assert by_version(computed) == {
        **dict.fromkeys(ALL, [("warning", "constant-input")]),
        "10.3": [("error", "constant-input")],
    }
    assert by_version(cumsum([], [x], [const("ax", np.array(1))])) == dict.fromkeys(ALL, [])


@pytest.mark.parametrize(
    "to, rule",
    [(TensorProto.INT8, "cast-type"), (TensorProto.UINT16, "cast-type"), (TensorProto.FLOAT16, None)],
)
def test_the_target_type_of_a_cast(to, rule):
    m = graph([helper.make_node("Cast", ["x"], ["y"], to=to, name="c")], [vi("x", F, [4])], [vi("y", to, [4])])
    assert by_version(m) == dict.fromkeys(ALL, [("error", rule)] if rule else [])


def test_qdq_types_are_checked_against_the_table():
    def dq(dtype, zp=None):
        ins = ["x", "s", "zp"] if zp is not None else ["x", "s"]
        inits = [const("s", np.float32(0.1)), *([const("zp", zp)] if zp is not None else [])]
        return graph(
            [helper.make_node("DequantizeLinear", ins, ["y"], name="dq")],
            [vi("x", dtype, [4])],
            [vi("y", F, [4])],
            inits,
        )

    assert by_version(dq(TensorProto.INT32)) == dict.fromkeys(ALL, [("error", "qdq-type")])
    assert "TensorRT dequantizes INT8, FP8, INT4 only" in findings(dq(TensorProto.INT32), versions=["10.3"])[0].message
    assert by_version(dq(I8, np.int8(0))) == dict.fromkeys(ALL, [])


def test_input_types_the_parser_refuses_are_errors():
    """The parser's activation importer refuses INT32 although its table lists Relu for INT32."""
    relu = graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        [vi("x", TensorProto.INT32, [4])],
        [vi("y", TensorProto.INT32, [4])],
    )
    assert by_version(relu) == dict.fromkeys(ALL, [("error", "input-type")])
    abs_ = graph(
        [helper.make_node("Abs", ["x"], ["y"])], [vi("x", TensorProto.INT32, [4])], [vi("y", TensorProto.INT32, [4])]
    )
    assert by_version(abs_) == dict.fromkeys(ALL, [])


def test_the_11x_tables_follow_the_release_notes():
    swish = graph([helper.make_node("Swish", ["x"], ["y"], name="sw")], [vi("x", F, [4])], [vi("y", F, [4])], opset=24)
    assert by_version(swish) == {
        "10.3": [("error", "opset"), ("error", "unsupported-op")],
        "10.15": [("error", "unsupported-op")],
        "11.0": [],
        "11.2": [],
        "11.5": [],
    }
    grid = graph(
        [helper.make_node("GridSample", ["x", "g"], ["y"], name="gs")],
        [vi("x", F, [1, 1, 4, 4, 4]), vi("g", F, [1, 2, 2, 2, 3])],
        [vi("y", F, [1, 1, 2, 2, 2])],
        opset=20,
    )
    assert by_version(grid) == {
        **dict.fromkeys(ALL, []),
        **dict.fromkeys(["10.3", "10.15", "11.0"], [("error", "gridsample-rank")]),
    }
    dft = graph(
        [helper.make_node("DFT", ["x", "", "ax"], ["y"], name="dft")],
        [vi("x", F, [1, 8, 1])],
        [vi("y", F, [1, 8, 2])],
        [const("ax", np.array(1))],
        opset=20,
    )
    assert by_version(dft) == {
        **dict.fromkeys(["10.3", "10.15", "11.0"], [("error", "unsupported-op")]),
        "11.2": [],
        "11.5": [],
    }
    (p,) = check(dft).plugins
    assert (p.op, p.name, p.versions) == ("DFT", "FFTPlugin", ["11.2", "11.5"])
    relu25 = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, [4])], [vi("y", F, [4])], opset=25)
    assert [v for v, r in by_version(relu25).items() if ("error", "opset") in r] == ["10.3", "10.15", "11.0", "11.2"]


def test_operators_built_from_plugins_are_reported():
    m = graph(
        [helper.make_node("RoiAlign", ["x", "r", "b"], ["y"], name="roi", output_height=2, output_width=2)],
        [vi("x", F, [1, 1, 8, 8]), vi("r", F, [3, 4]), vi("b", TensorProto.INT64, [3])],
        [vi("y", F, [3, 1, 2, 2])],
    )
    report = check(m)
    assert report.errors == []
    (f,) = report.findings_of("info")
    assert (f.rule, f.op, f.node) == ("plugin", "RoiAlign", "roi") and "ROIAlign_TRT plugin (version 2)" in f.message
    assert report.plugin_entries() == [{"name": "ROIAlign_TRT", "version": "2", "ops": ["RoiAlign"]}]


def test_nonzero_on_float_rewrites_bodies_too(tmp_path):
    """The TensorRT target's graph pass reaches the NonZero inside an If body, and the graph
    computes the same indices after it."""
    ort = pytest.importorskip("onnxruntime")
    from edgecv.export.targets.tensorrt import nonzero_on_float

    els = body([helper.make_node("NonZero", ["m"], ["e"], name="nz")], outputs=[vi("e", TensorProto.INT64, [1, None])])
    then = body(
        [helper.make_node("NonZero", ["m"], ["t"], name="nz_then")], outputs=[vi("t", TensorProto.INT64, [1, None])]
    )
    m = graph(
        [helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=els)],
        [vi("c", TensorProto.BOOL, []), vi("m", TensorProto.BOOL, [6])],
        [vi("y", TensorProto.INT64, [1, None])],
    )
    path = tmp_path / "nz.onnx"
    onnx.save(m, str(path))
    feeds = {"c": np.array(False), "m": np.array([0, 1, 1, 0, 0, 1], bool)}
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert nonzero_on_float(path) == 2
    done = onnx.load(str(path))
    for b in (done.graph.node[0].attribute[0].g, done.graph.node[0].attribute[1].g):
        assert [n.op_type for n in b.node] == ["Cast", "NonZero"]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_array_equal(got, want)


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
    assert "`edgecv doctor --versions` lists them" in capsys.readouterr().err
    assert main(["doctor", str(path), "--json", "--versions", "11.x"]) == 1
    assert json.loads(capsys.readouterr().out)["tables"] == {"11.0": "derived", "11.2": "derived", "11.5": "derived"}
    assert main(["doctor", "--versions"]) == 0
    listing = capsys.readouterr().out
    assert [line.split()[:4] for line in listing.splitlines()[1:6]] == [
        ["10.3", "JetPack", "6", "9..20"],
        ["10.15", "10.15", "9..24", "authoritative"],
        ["11.0", "11.0-11.1", "9..24", "derived"],
        ["11.2", "11.2-11.4", "9..24", "derived"],
        ["11.5", "11.5+", "9..25", "derived"],
    ]
    assert main(["doctor"]) == 2
    assert "give a bundle or an ONNX file" in capsys.readouterr().err
    assert main(["doctor", str(tmp_path / "missing.onnx")]) == 2
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    assert main(["doctor", str(tmp_path / "junk.onnx")]) == 2
    assert "not a readable ONNX graph" in capsys.readouterr().err


def test_bundles_are_checked_with_their_profile(default_bundles, default_tensorrt_graph, capsys):
    assert main(["doctor", str(default_tensorrt_graph)]) == 0
    out = capsys.readouterr().out
    assert "0 error(s), 0 warning(s)" in out
    assert main(["doctor", str(default_bundles["onnxruntime"])]) == 0  # its ONNX graph is the same


# --- a two-stage detector: its If body, its RoiAlign plugin ---------------------------------------

RCNN_FIXTURE = ROOT / "tests" / "fixtures" / "torchvision" / "maskrcnn.pt"
ROI_ALIGN = {"name": "ROIAlign_TRT", "version": "2", "ops": ["RoiAlign"]}


@pytest.fixture(scope="module")
def rcnn_bundle(tmp_path_factory):
    """The trained Mask R-CNN fixture exported for tensorrt, once (graph and settings, no plan):
    torchvision's batched NMS makes an If, its box and mask heads RoiAlign nodes. Read it, never
    change it."""
    pytest.importorskip("torchvision")
    if not RCNN_FIXTURE.is_file():
        pytest.skip(f"{RCNN_FIXTURE} is not in this checkout")
    from edgecv.export import export
    from edgecv.export.models.train_torchvision import load as load_fixture

    model = load_fixture(RCNN_FIXTURE, "maskrcnn")
    out = tmp_path_factory.mktemp("rcnn")
    return export(model, "tensorrt", imgsz=320, out_dir=out, tensorrt={"build_plan": False})


def test_the_rcnn_graph_is_checked_inside_its_if_and_passes(rcnn_bundle, capsys):
    report = check_bundle(rcnn_bundle)
    assert report.errors == [] and report.findings_of("warning") == []
    assert report.subgraphs == 2 and report.subgraph_nodes >= 10, "the If of torchvision's batched NMS"
    assert report.plugin_entries() == [ROI_ALIGN]
    assert Bundle.open(rcnn_bundle).manifest["runtime"]["tensorrt"]["plugins"] == [ROI_ALIGN]
    assert main(["doctor", str(rcnn_bundle)]) == 0
    out = capsys.readouterr().out
    assert "2 If/Loop/Scan bodies" in out and "ROIAlign_TRT plugin (version 2)" in out
    # the NMS inside the If's else branch is looked at: made an operator TensorRT lacks, it is found there
    model = onnx.load(str(rcnn_bundle / "model.onnx"))
    if_node = next(n for n in model.graph.node if n.op_type == "If")
    else_branch = next(a.g for a in if_node.attribute if a.name == "else_branch")
    nms = next(n for n in else_branch.node if n.op_type == "NonMaxSuppression")
    nms.op_type = "Unique"
    (f,) = check(model).errors
    assert (f.rule, f.node) == ("unsupported-op", f"{if_node.name}/else_branch/{nms.name}")


def test_a_device_without_the_roialign_plugin_is_told_so(rcnn_bundle, trt_double, tmp_path, capsys):
    """TEST DOUBLE (tests/trt_double.py, not TensorRT): edgecv registers NVIDIA's plugin library
    once, so the parser finds ROIAlign_TRT and the plan loads; where TensorRT has no plugin
    library, `edgecv build` and load() say which plugin is missing and how to install it."""
    from edgecv import load

    bundle = tmp_path / "rcnn"
    shutil.copytree(rcnn_bundle, bundle)
    trt = trt_double()
    assert main(["build", str(bundle)]) == 0
    with load(bundle) as det:
        det(np.zeros((240, 320, 3), np.uint8))
    assert trt.stats["plugin_inits"] == 1 and trt.stats["builds"] == 1 and trt.stats["deserialized"] == 1
    capsys.readouterr()
    trt_double(plugin_library=False)
    assert main(["build", str(bundle), "--force"]) == 2
    err = capsys.readouterr().err
    assert "needs TensorRT's ROIAlign_TRT plugin (version 2) for its RoiAlign nodes" in err
    assert "libnvinfer_plugin" in err
    with pytest.raises(BackendUnavailableError, match=r"the plan needs TensorRT's ROIAlign_TRT plugin"):
        load(bundle)


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
