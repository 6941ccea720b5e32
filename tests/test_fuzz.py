"""Fuzzing what edgecv reads from files and callers, with hypothesis, on a bounded budget.

Property everywhere: hostile input gives an EdgecvError (or is accepted and valid), never
another exception, a hang or a crash. Budget: FUZZ_EXAMPLES examples per target (set
EDGECV_FUZZ_EXAMPLES to run longer, EDGECV_FUZZ_LOAD_EXAMPLES for the two targets that load a
backend); the figures, and the nightly run (benchmarks/fuzz_nightly.sh), are in
docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from edgecv import EdgecvError  # noqa: E402
from edgecv.bundle import MANIFEST_NAME, Bundle, validate_manifest  # noqa: E402
from edgecv.errors import BundleError, InvalidImageError  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("EDGECV_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


@contextlib.contextmanager
def _scratch(tmp_path_factory, name: str):
    """A directory for one example, removed after it: 150 examples that each copy a bundle would
    otherwise leave 400 MB behind in the session's temporary directory."""
    d = tmp_path_factory.mktemp(name)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _mutate(obj, path, value):
    obj = copy.deepcopy(obj)
    if not path:
        return None if value is ... else value
    target = obj
    for p in path[:-1]:
        target = target[p]
    if value is ...:  # ... means: remove it
        target.pop(path[-1]) if isinstance(target, dict) else target.pop(path[-1])
    else:
        target[path[-1]] = value
    return obj


@pytest.fixture(scope="module", params=["detect", "classify", "segment"])
def manifest(request, default_bundles, task_bundles):
    """A detector's, a classifier's and a segmenter's manifest."""
    if request.param == "detect":
        return Bundle.open(default_bundles["onnxruntime"]).manifest
    return Bundle.open(task_bundles(request.param, "onnxruntime")).manifest


# --- the manifest -----------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_manifest_mutations_are_accepted_or_refused_with_a_bundle_error(manifest, data):
    paths = list(_paths(manifest))
    path = data.draw(st.sampled_from(paths))
    value = data.draw(json_values | st.just(...))
    m = _mutate(manifest, path, value)
    try:
        out = validate_manifest(m)
    except BundleError:
        return
    assert isinstance(out, dict) and out["files"] and out["input"]["shape"][1] > 0


@FUZZ
@given(raw=st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_manifest_bytes_open_as_a_bundle_error(default_bundles, tmp_path_factory, raw):
    with _scratch(tmp_path_factory, "fz") as d:
        b = d / "b"
        shutil.copytree(default_bundles["onnxruntime"], b)
        (b / MANIFEST_NAME).write_bytes(raw)
        with pytest.raises(BundleError):
            Bundle.open(b)


# --- data sets --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coco_base(tmp_path_factory):
    from edgecv.data import shapes

    images, ann = shapes.write_coco(tmp_path_factory.mktemp("coco"), "val", 3)
    return images, json.loads(ann.read_text())


def _load_or_refuse(*args, **kw):
    from edgecv.datasets import load_dataset

    try:
        ds = load_dataset(*args, **kw)
    except EdgecvError:
        return None
    assert all(len(a["bbox"]) == 4 for a in ds.coco["annotations"])
    return ds


@FUZZ
@given(data=st.data())
def test_coco_json_mutations(coco_base, tmp_path_factory, data):
    images, coco = coco_base
    path = data.draw(st.sampled_from(list(_paths(coco))[:400]))
    mutated = _mutate(coco, path, data.draw(json_values | st.just(...)))
    with _scratch(tmp_path_factory, "cj") as d:
        ann = d / "a.json"
        ann.write_text(json.dumps(mutated))
        _load_or_refuse(ann, images)


@FUZZ
@given(
    text=st.text(max_size=300)
    | st.lists(
        st.lists(st.sampled_from(["0", "1", "5", "-1", "0.5", "1.5", "nan", "inf", "1e9", "x", ""]), max_size=7).map(
            " ".join
        ),
        max_size=6,
    ).map("\n".join)
)
def test_yolo_label_text(coco_base, tmp_path_factory, text):
    import cv2

    with _scratch(tmp_path_factory, "yolo") as root:
        (root / "images").mkdir()
        (root / "labels").mkdir()
        src = sorted(coco_base[0].glob("*.png"))[0]
        shutil.copyfile(src, root / "images" / "a.png")
        (root / "labels" / "a.txt").write_text(text)
        (root / "labels" / "classes.txt").write_text("a\nb\n")
        assert cv2.imread(str(root / "images" / "a.png")) is not None
        _load_or_refuse(root / "labels")


VOC = """<annotation><filename>a.png</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>{name}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>
<ymax>{y2}</ymax></bndbox></object></annotation>"""


@FUZZ
@given(
    fields=st.fixed_dictionaries(
        {
            k: st.sampled_from(["0", "10", "-5", "1e9", "nan", "", "x", "<", "&amp;", "300"])
            for k in ("w", "h", "d", "x1", "y1", "x2", "y2")
        }
    ),
    name=st.text(max_size=10),
    cut=st.integers(0, 400),
)
def test_voc_xml(coco_base, tmp_path_factory, fields, name, cut):
    from xml.sax.saxutils import escape

    with _scratch(tmp_path_factory, "voc") as root:
        (root / "JPEGImages").mkdir()
        (root / "Annotations").mkdir()
        shutil.copyfile(sorted(coco_base[0].glob("*.png"))[0], root / "JPEGImages" / "a.png")
        xml = VOC.format(name=escape(name), **fields)
        (root / "Annotations" / "a.xml").write_text(xml if cut == 0 else xml[:cut])
        _load_or_refuse(root / "Annotations")


@pytest.mark.parametrize(
    "payload, what",
    [
        (
            """<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]><annotation><filename>&lol4;</filename></annotation>""",
            "entity expansion",
        ),
        (
            """<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>&xxe;</filename></annotation>""",
            "external entity",
        ),
    ],
)
def test_voc_refuses_xml_entities(tmp_path, payload, what):
    from edgecv.datasets import load_dataset

    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(payload)
    with pytest.raises(EdgecvError, match="(?i)entit|DTD|forbidden"):
        load_dataset(tmp_path / "Annotations")


# --- images -----------------------------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=2000), keep=st.integers(0, 4000))
def test_image_files_decode_or_are_refused(tmp_path_factory, raw, keep):
    import cv2

    from edgecv.images import read_image

    ok, png = cv2.imencode(".png", np.random.default_rng(len(raw)).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    with _scratch(tmp_path_factory, "img") as d:
        for name, data in (
            ("r.png", raw),
            ("t.png", png.tobytes()[:keep] + raw[:16]),
            ("j.jpg", b"\xff\xd8\xff" + raw),
        ):
            (d / name).write_bytes(data)
            try:
                img = read_image(d / name)
            except InvalidImageError:
                continue
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


@FUZZ
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.int8, np.bool_, np.float16]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40),
    ),
    color=st.sampled_from(["bgr", "rgb", "BGR", "hsv"]),
)
def test_arrays_become_model_input_or_are_refused(arr, color):
    from edgecv.images import to_model_input

    try:
        out = to_model_input(arr, color)
    except InvalidImageError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.flags.c_contiguous


# --- the graph inside a bundle ----------------------------------------------------------------------
#
# A bundle's hashes prove it intact, not who made it: every mutation below rewrites the manifest's
# size and sha256 of the files it changes, so the hash check passes and what must refuse the file
# is edgecv's check of the graph (or the backend, its error turned into an EdgecvError).

#: examples per target that loads a backend (``edgecv.load``, and one frame when it loads): as
#: many as the others unless EDGECV_FUZZ_LOAD_EXAMPLES says (a load costs 5 to 10 times more)
LOAD_EXAMPLES = int(os.environ.get("EDGECV_FUZZ_LOAD_EXAMPLES", str(FUZZ_EXAMPLES)))
FUZZ_LOADS = settings(FUZZ, max_examples=LOAD_EXAMPLES)
#: whether the OpenVINO load target also rewrites constants to other values inside the weights:
#: other valid models, which fuzz OpenVINO's compiler itself. Off by default: one such IR (an i64
#: constant feeding a Range) kills the process with SIGFPE in compile_model, and others exhaust
#: memory; a crash cannot be caught, so it would end the run (docs/reliability.md).
OPENVINO_VALUES = os.environ.get("EDGECV_FUZZ_OPENVINO_VALUES", "") == "1"
#: seconds one load may take before the run is stopped with every thread's traceback (a hang)
HANG_S = 120

#: domains of operators that ONNX itself or a backend edgecv runs defines: an operator in any other
#: domain has no implementation but one a process would have to load, and must be refused
KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "ai.onnx.training", "com.microsoft"}
KNOWN_DOMAINS |= {"com.microsoft.nchwc", "com.microsoft.experimental", "com.ms.internal.nhwc", "org.pytorch.aten"}

#: text protobuf accepts (valid UTF-8: no lone surrogates), NUL and controls included
proto_text = st.text(st.characters(codec="utf-8"), max_size=40)

hostile_locations = st.one_of(
    st.sampled_from(
        [
            "../x.bin",
            "../../../../etc/passwd",
            "/etc/passwd",
            "/proc/self/environ",
            "/dev/zero",
            "sub/../../x.bin",
            "./x.bin",
            "x.bin",
            "model.onnx",
            "edgecv.json",
            ".",
            "",
            "..",
            "\\..\\x.bin",
            "C:\\x.bin",
            "file:///etc/passwd",
            "x.bin\x00.txt",
            "\x00",
        ]
    ),
    proto_text,
    proto_text.map(lambda s: s + "\x00" + s),
    st.sampled_from([255, 256, 4096, 70_000]).map(lambda n: "a" * n),
    st.just("<outside>"),  # an absolute path to a file holding the data, outside the bundle
)
offsets = st.one_of(
    st.none(),
    st.sampled_from(["0", "-1", "4096", str(2**63), str(2**64 + 1), "x", "", "1e3", " 7"]),
    st.integers(-(2**70), 2**70).map(str),
)


def _write_bundle(b: Path, files: dict[str, bytes], roles: dict[str, str] | None = None) -> dict:
    """Write ``files`` into bundle ``b`` and make its manifest vouch for them: each one's size and
    sha256 rewritten (``roles``: files to list that the manifest did not, by role). Returns the
    manifest written."""
    import hashlib

    m = json.loads((b / MANIFEST_NAME).read_text())
    for name, data in files.items():
        (b / name).write_bytes(data)
        entry = next((f for f in m["files"] if f["path"] == name), None)
        if entry is None:
            if name not in (roles or {}):
                continue
            entry = {"path": name, "role": roles[name]}
            m["files"].append(entry)
        entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (b / MANIFEST_NAME).write_text(json.dumps(m))
    return m


@contextlib.contextmanager
def _hang_guard():
    """Stop the whole run, printing every thread's stack, when one load hangs (a fuzz run that
    hangs must fail, not wait for CI's timeout)."""
    import faulthandler

    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _load_or_refuse_bundle(b: Path, what: str) -> EdgecvError | None:
    """``edgecv.load(b)``: the EdgecvError it raised, or None when it loaded a detector that then
    ran a frame (or refused it with an EdgecvError). Any other exception propagates: a failure.

    With EDGECV_FUZZ_LAST=FILE, ``what`` and the bundle's path are written to FILE first: a crash
    of the process (a signal, the OOM killer) leaves the bundle that did it behind, and names it."""
    from edgecv import load
    from edgecv.detections import Detections

    if last := os.environ.get("EDGECV_FUZZ_LAST"):
        Path(last).write_text(f"{b}\n{what}\n")
    with _hang_guard():
        try:
            det = load(b, threads=1)
        except EdgecvError as e:
            hypothesis.event(f"refused: {type(e).__name__}")
            return e
        with det:
            try:
                out = det(np.full((48, 64, 3), 127, np.uint8))
            except EdgecvError as e:
                hypothesis.event(f"loaded, frame refused: {type(e).__name__}")
                return None
            assert isinstance(out, Detections) and out.xyxy.shape == (len(out), 4)
    hypothesis.event("loaded and ran")
    return None


# --- ONNX graphs: external data and operators of unknown domains


@pytest.fixture(scope="module")
def onnx_model(default_bundles):
    onnx = pytest.importorskip("onnx")
    return onnx.load(default_bundles["onnxruntime"] / "model.onnx")


@st.composite
def onnx_mutations(draw, model):
    """A copy of ``model`` with one graph-level mutation: (the copy, the external tensor's
    placement or None, whether the mutation must be refused, what it did)."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if draw(st.sampled_from(["external data", "domain"])) == "external data":
        where = draw(st.sampled_from(["initializer", "constant", "flag only"]))
        if where == "constant":  # a Constant node nothing reads, its value external
            value = numpy_helper.from_array(np.arange(16, dtype=np.float32), "fuzz_const")
            g.node.append(helper.make_node("Constant", [], ["fuzz_const_out"], value=value))
            t = g.node[-1].attribute[0].t
        else:
            t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        data = t.raw_data or numpy_helper.to_array(t).tobytes()
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        loc = None
        if where != "flag only":  # "flag only": marked external, with no location at all
            loc = draw(hostile_locations)
            t.external_data.add(key="location", value=loc)
            for key in ("offset", "length"):
                if (value := draw(offsets)) is not None:
                    t.external_data.add(key=key, value=value)
        ext = {"tensor": t, "data": data, "location": loc, "listed": draw(st.booleans())}
        hypothesis.event(f"mutation: {where} external data")
        return m, ext, True, f"{where} external data at {loc!r}"
    domain = draw(st.sampled_from(["com.example", "ai.onnx.contrib", "trt.plugins", "com.microsoft", ""]) | proto_text)
    op = draw(st.sampled_from(["Foo", "Relu", "NonMaxSuppression", "EfficientNMS_TRT", "Inverse"]) | proto_text)
    how = draw(st.sampled_from(["retag", "dead node", "function"]))
    if how == "retag":  # a node of the graph moved into the domain, and maybe renamed
        node = g.node[draw(st.integers(0, len(g.node) - 1))]
        node.domain = domain
        if draw(st.booleans()):
            node.op_type = op
    else:  # a node reading the input and writing an output nobody reads
        g.node.append(helper.make_node(op, [g.input[0].name], ["fuzz_out"], domain=domain))
    if how == "function":  # ... defined in the model by a function of standard operators
        body = [helper.make_node("Identity", ["x"], ["y"])]
        m.functions.append(helper.make_function(domain, op, ["x"], ["y"], body, [helper.make_opsetid("", 17)]))
    if draw(st.booleans()):
        m.opset_import.append(helper.make_opsetid(domain, draw(st.integers(-5, 10**6))))
    unknown = domain not in KNOWN_DOMAINS and how != "function"
    hypothesis.event(f"mutation: {how}, {'a standard' if domain in KNOWN_DOMAINS else 'another'} domain")
    return m, None, unknown, f"{how}: {domain!r} {op!r}"


def _place_external(d: Path, b: Path, ext: dict) -> dict[str, str]:
    """Put an external tensor's data where a lax loader would find it: at an absolute path outside
    the bundle (``<outside>``), relative to the bundle and to the working directory; so a refusal
    is the check's doing, not a missing file's. Returns the files to list in the manifest, by
    role (when the example asks for it and the location names a plain file in the bundle)."""
    loc, data = ext["location"], ext["data"]
    if loc is None:
        return {}
    if loc == "<outside>":
        outside = d / "outside.bin"
        outside.write_bytes(data)
        ext["tensor"].external_data[0].value = str(outside)
        return {}
    for base in (b, Path.cwd()):
        try:
            p = (base / loc).resolve()
            if p.is_relative_to(d.resolve()) and not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        except (OSError, ValueError):  # a name the file system refuses (NUL, too long)
            pass
    name = os.path.normpath(loc) if loc else ""
    if not ext["listed"] or not name or "/" in name or "\x00" in name or len(name) > 255 or name == MANIFEST_NAME:
        return {}
    return {name: "external_data"} if (b / name).is_file() else {}


@FUZZ_LOADS
@given(data=st.data())
def test_onnx_graph_mutations_load_or_are_refused(default_bundles, onnx_model, tmp_path_factory, data):
    """External data at hostile locations and operators of unknown domains, the manifest rewritten
    to vouch for the model: a BundleError where the graph reaches beyond what the manifest lists,
    else an EdgecvError or a working detector; never another exception."""
    model, ext, must_refuse, what = data.draw(onnx_mutations(onnx_model))
    with _scratch(tmp_path_factory, "og") as d:
        b = d / "b"
        shutil.copytree(default_bundles["onnxruntime"], b)
        (d / "cwd").mkdir()
        with contextlib.chdir(d / "cwd"):
            roles = {}
            if ext is not None:
                roles = _place_external(d, b, ext)
                listed = {f["path"] for f in Bundle.open(b, verify=False).manifest["files"]} | set(roles)
                loc = ext["location"]
                must_refuse = not (loc and os.path.normpath(loc) in listed)
            files = {"model.onnx": model.SerializeToString(), **{n: (b / n).read_bytes() for n in roles}}
            _write_bundle(b, files, roles)
            got = _load_or_refuse_bundle(b, what)
    if must_refuse:
        assert isinstance(got, BundleError), f"{what}: {'loaded' if got is None else repr(got)}, not a BundleError"


# --- OpenVINO IR: weights that are not the ones the XML describes

CONST_DATA = re.compile(r'<data element_type="([^"]*)" shape="([^"]*)" offset="(\d+)" size="(\d+)"\s*/>')
LAYER = re.compile(r'<layer id="(\d+)" name="([^"]*)" type="([^"]*)" version="([^"]*)">')


@pytest.fixture(scope="module")
def ir_files(default_bundles):
    if "openvino" not in default_bundles:
        pytest.skip("OpenVINO is not installed")
    b = default_bundles["openvino"]
    return (b / "model.xml").read_text(), (b / "model.bin").read_bytes()


def _attr(value: str) -> str:
    from xml.sax.saxutils import escape

    return escape(value, {'"': "&quot;"})


@st.composite
def ir_mutations(draw, xml: str, weights: bytes, values: bool = True):
    """One mutation of an IR: (XML, weights, the manifest path of the weights, what it did).

    ``values``: a constant's type, shape, offset or size may be rewritten to another well-formed
    reference inside the weights, i.e. to another valid model with other constant values. Off,
    a rewritten constant always points past the end of the weights or is malformed."""
    kind = draw(st.sampled_from(["const data", "weights", "layer", "weights file"]))
    if kind == "const data":  # a constant's offset, size, shape or type in the XML
        consts = list(CONST_DATA.finditer(xml))
        c = consts[draw(st.integers(0, len(consts) - 1))]
        etype, shape, offset, size = c.groups()
        n = len(weights)
        numbers = st.sampled_from([n, n - 1, n + 1, 2**31, 2**32, 2**63 - 1, 2**64 - 1, 2**64]) | st.integers(0, 2**70)
        offset = draw(st.just(offset) | numbers.map(str) | st.sampled_from(["-1", "", "x", "1e3", "0x10"]))
        size = draw(st.just(size) | numbers.map(str) | st.sampled_from(["-4", "", "x"]))
        if draw(st.booleans()):
            shape = draw(
                st.sampled_from(["", "0", "-1", "1,,2", "a", "100000, 100000, 100000", str(2**63)])
                | st.lists(st.integers(-2, 2**40), max_size=4).map(lambda s: ", ".join(map(str, s)))
            )
        if draw(st.booleans()):
            etype = draw(st.sampled_from(["f16", "i64", "u1", "u4", "string", "bf16", "dynamic", "undefined", "x"]))
        inside = offset.isdigit() and size.isdigit() and int(offset) + int(size) <= n
        if not values and inside and (etype, shape, offset, size) != c.groups():
            offset = str(n)
            inside = False
        new = f'<data element_type="{_attr(etype)}" shape="{_attr(shape)}" offset="{offset}" size="{size}" />'
        what = f"const at {c.start()}: {new}"
        changed = (etype, shape, offset, size) != c.groups()
        hypothesis.event(
            f"mutation: const data, {'other values' if inside and changed else 'past the end or malformed'}"
        )
        return xml[: c.start()] + new + xml[c.end() :], weights, "model.bin", what
    if kind == "layer":  # a layer of an unknown type or operation set (an extension's)
        layers = list(LAYER.finditer(xml))
        ly = layers[draw(st.integers(0, len(layers) - 1))]
        lid, name, ltype, version = ly.groups()
        ltype = draw(st.just(ltype) | st.sampled_from(["Foo", "Const", "Result", "If", "Loop"]) | st.text(max_size=20))
        version = draw(
            st.just(version) | st.sampled_from(["opset999", "custom_opset", "extension", "", "experimental"])
        )
        new = f'<layer id="{lid}" name="{name}" type="{_attr(ltype)}" version="{_attr(version)}">'
        hypothesis.event("mutation: layer type or version")
        return xml[: ly.start()] + new + xml[ly.end() :], weights, "model.bin", f"layer: {new}"
    # the weights cut, grown or replaced; or another file of the bundle named as the weights
    name = "model.bin" if kind == "weights" else draw(st.sampled_from(["other.bin", "model.xml"]))
    how = (
        "the XML"
        if name == "model.xml"
        else draw(st.sampled_from(["cut", "grown", "zeros", "random", "reversed", "xml", "empty"]))
    )
    seed = draw(st.integers(0, 2**32 - 1))
    new_weights = {
        "cut": lambda: weights[: seed % len(weights)],
        "grown": lambda: weights + np.random.default_rng(seed).bytes(seed % 5000),
        "zeros": lambda: bytes(len(weights)),
        "random": lambda: np.random.default_rng(seed).bytes(len(weights)),
        "reversed": lambda: weights[::-1],
        "xml": lambda: xml.encode(),
        "the XML": lambda: xml.encode(),
        "empty": lambda: b"",
    }[how]()
    hypothesis.event(f"mutation: weights {how}, as {name}")
    return xml, new_weights, name, f"weights {how}, {len(new_weights)} bytes, as {name}"


def _past_the_end(xml: str, weights: int) -> str | None:
    """A constant of ``xml`` whose data lies past the end of ``weights`` bytes, or None."""
    for c in CONST_DATA.finditer(xml):
        if int(c.group(3)) + int(c.group(4)) > weights:
            return c.group(0)
    return None


@FUZZ_LOADS
@given(data=st.data())
def test_openvino_ir_mutations_load_or_are_refused(default_bundles, ir_files, tmp_path_factory, data):
    """Constants pointing past the weights, weights cut, swapped or grown, unknown layers, another
    file named as the weights; the manifest rewritten to vouch for them: an EdgecvError or a
    working detector, never another exception; a constant past the end of the weights a
    BundleError."""
    xml, weights, weights_name, what = data.draw(ir_mutations(*ir_files, values=OPENVINO_VALUES))
    with _scratch(tmp_path_factory, "ir") as d:
        b = d / "b"
        shutil.copytree(default_bundles["openvino"], b)
        files = {"model.xml": xml.encode()}
        if weights_name != "model.xml":
            files[weights_name] = weights
        m = _write_bundle(b, files, {"other.bin": "weights"})
        if weights_name == "other.bin":  # the manifest's weights are another file than model.bin
            m["files"] = [f for f in m["files"] if f["path"] != "model.bin"]
        elif weights_name == "model.xml":
            m["files"] = [f for f in m["files"] if f["role"] != "weights"]
            m["files"].append(dict(next(f for f in m["files"] if f["path"] == "model.xml"), role="weights"))
        (b / MANIFEST_NAME).write_text(json.dumps(m))
        got = _load_or_refuse_bundle(b, what)
    beyond = _past_the_end(xml, len(weights))
    if beyond is not None:
        assert isinstance(got, BundleError), f"{what}: {beyond} past the end, {'loaded' if got is None else repr(got)}"


# --- the graph check alone, on many more mutations than a load can afford


def _check_onnx(model: bytes, backend: str) -> BundleError | None:
    from edgecv.graph_references import check_onnx

    try:
        check_onnx(model, "model.onnx", backend)
    except BundleError as e:
        return e
    return None


@FUZZ
@given(data=st.data())
def test_onnx_graph_mutations_are_refused_by_the_graph_check(onnx_model, data):
    """The mutations of :func:`test_onnx_graph_mutations_load_or_are_refused`, given to the graph
    check itself, for each target that runs an ONNX graph: external data (listed or not: the check
    sees no manifest) and operators of other domains are BundleErrors."""
    model, ext, must_refuse, what = data.draw(onnx_mutations(onnx_model))
    if ext is not None and ext["location"] == "<outside>":
        ext["tensor"].external_data[0].value = "/tmp/outside.bin"
    raw = model.SerializeToString()
    for backend in ("onnxruntime", "tensorrt"):
        got = _check_onnx(raw, backend)
        if must_refuse:
            assert got is not None, f"{what}: passed the graph check for {backend}"


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _nested_graphs(depth: int) -> bytes:
    """A model whose graph holds an If node whose branch holds an If node ... ``depth`` deep."""
    graph = b""
    for _ in range(depth):  # graph.node(1) -> node.attribute(5) -> attribute.g(6) -> graph
        graph = _field(1, _field(4, b"If") + _field(5, _field(1, b"then_branch") + _field(6, graph)))
    return _field(7, graph)


@pytest.fixture(scope="module")
def onnx_skeleton(onnx_model) -> bytes:
    """The model with every initializer cut to one value: mostly structure, so byte edits anywhere
    in it hit fields, lengths and nesting rather than tensor data."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(onnx_model)
    for t in m.graph.initializer:
        t.raw_data = t.raw_data[:4]
        t.ClearField("dims")
    return m.SerializeToString()


@st.composite
def byte_edits(draw, base: bytes) -> bytes:
    """``base`` with up to 4 edits: bytes flipped, inserted or deleted, or the end cut off."""
    out = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, max(0, len(out) - 1)))
        how = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if how == "flip" and out:
            out[pos] ^= draw(st.integers(1, 255))
        elif how == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        elif how == "delete":
            del out[pos : pos + draw(st.integers(1, 12))]
        else:
            del out[pos:]
    return bytes(out)


@FUZZ
@given(data=st.data())
def test_onnx_bytes_read_by_the_graph_check(onnx_skeleton, data):
    """The graph check's own protobuf reader: a model's bytes edited anywhere, graphs nested
    thousands deep, arbitrary bytes: read, or refused with a BundleError (never a RecursionError,
    an IndexError, a hang)."""
    kind = data.draw(st.sampled_from(["edited", "nested", "arbitrary"]))
    hypothesis.event(f"bytes: {kind}")
    raw = {
        "edited": lambda: data.draw(byte_edits(onnx_skeleton)),
        "nested": lambda: _nested_graphs(data.draw(st.integers(0, 5000))),
        "arbitrary": lambda: data.draw(st.binary(max_size=2000)),
    }[kind]()
    for backend in ("onnxruntime", "tensorrt"):
        _check_onnx(raw, backend)


@FUZZ
@given(data=st.data())
def test_openvino_ir_mutations_are_refused_by_the_graph_check(ir_files, data):
    """The mutations of :func:`test_openvino_ir_mutations_load_or_are_refused`, and the XML's
    bytes edited anywhere, given to the IR check itself: a constant past the end of the weights is
    a BundleError; nothing raises another exception."""
    from edgecv.graph_references import check_openvino_ir

    xml, weights, weights_name, what = data.draw(ir_mutations(*ir_files))
    raw, edited = xml.encode(), data.draw(st.booleans())
    if edited:  # then the XML may not even parse: only "a BundleError or nothing" holds
        raw = data.draw(byte_edits(raw))
        hypothesis.event("and the XML's bytes edited")
    try:
        check_openvino_ir(raw, "model.xml", weights_name, len(weights))
    except BundleError:
        return
    beyond = None if edited else _past_the_end(xml, len(weights))
    assert beyond is None, f"{what}: {beyond} lies past the end of {len(weights)} bytes of weights"


def test_the_fuzz_budget_is_recorded():
    assert FUZZ_EXAMPLES >= 100 and LOAD_EXAMPLES >= 100, "keep at least 100 examples per target in CI"


def test_hostile_bundle_file_names_and_links_are_refused(default_bundles, tmp_path):
    """Names out of the bundle directory and symlinks out are refused before any read."""
    b = tmp_path / "b"
    shutil.copytree(default_bundles["onnxruntime"], b)
    m = json.loads((b / MANIFEST_NAME).read_text())
    for bad in ("../model.onnx", "/etc/passwd", "sub/../../x", "a\\b", ""):
        mm = copy.deepcopy(m)
        mm["files"][0]["path"] = bad
        with pytest.raises(BundleError):
            validate_manifest(mm)
    outside = tmp_path / "outside.onnx"
    shutil.copyfile(b / "model.onnx", outside)
    (b / "model.onnx").unlink()
    os.symlink(outside, b / "model.onnx")
    with pytest.raises(BundleError, match="link"):
        Bundle.open(b)
    assert Path(outside).is_file()


def test_an_oversized_image_file_is_not_read(tmp_path, monkeypatch):
    import edgecv.images as images

    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1000)
    (tmp_path / "big.png").write_bytes(b"\x89PNG" + bytes(2000))
    with pytest.raises(InvalidImageError, match="over edgecv's limit"):
        images.read_image(tmp_path / "big.png")
