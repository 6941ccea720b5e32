"""Fuzzing what edgecv reads from files and callers, with hypothesis, on a bounded budget.

Property everywhere: hostile input gives an EdgecvError (or is accepted and valid), never
another exception, a hang or a crash. Budget: FUZZ_EXAMPLES examples per target (set
EDGECV_FUZZ_EXAMPLES to run longer); the figures are in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
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


def test_the_fuzz_budget_is_recorded():
    assert FUZZ_EXAMPLES >= 100, "keep at least 100 examples per target in CI"


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
