"""The runtime contract, checked on every backend in the registry that is usable here.

A new backend is covered by adding it to the registry: nothing here names one.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgecv import Classifications, Detections, EdgecvError, SegmentationMap, load
from edgecv.runtimes import available
from edgecv.runtimes.base import Detector

#: where TensorRT is missing, the tensorrt backend's own code (plan loading, buffers, copies)
#: runs over the TEST DOUBLE of tensorrt and CUDA in tests/trt_double.py, not over TensorRT
TRT_DOUBLE = "tensorrt-over-test-double"
BACKENDS = available() + ([TRT_DOUBLE] if "tensorrt" not in available() and importlib.util.find_spec("onnx") else [])


@pytest.fixture(scope="module")
def make(make_detector, default_src, tmp_path_factory, task_bundles):
    """``make(key, task)``: a detector of the default model (``task="detect"``), or the example
    classifier or segmenter, on backend ``key``; :data:`TRT_DOUBLE`: a tensorrt bundle whose plan
    was built, and is run, by the test double."""
    mp = pytest.MonkeyPatch()
    state: dict = {}

    def make(key: str, task: str = "detect", **options):
        from edgecv.export import export, reference

        from .conftest import TASK_SIZES, example_model, task_names

        if task != "detect" and key == "torch":
            return reference(
                example_model(task), task=task, names=task_names(task), imgsz=TASK_SIZES[task], detector_options=options
            )
        if task != "detect" and key != TRT_DOUBLE:
            return load(task_bundles(task, key), **options)
        if key != TRT_DOUBLE:
            return make_detector(key, **options)
        if task not in state:
            import sys

            import edgecv.runtimes.tensorrt.cuda as cuda_mod

            from .trt_double import FakeCuda, make_tensorrt

            if "cuda" not in state:
                state["cuda"] = cuda = FakeCuda()
                mp.setitem(sys.modules, "tensorrt", make_tensorrt("10.3.0", cuda))
                mp.setattr(cuda_mod, "open_cuda", lambda prefer=None: cuda)
            src = default_src if task == "detect" else example_model(task)
            kw = {} if task == "detect" else {"task": task, "names": task_names(task), "imgsz": TASK_SIZES[task]}
            state[task] = export(
                src, "tensorrt", out_dir=tmp_path_factory.mktemp("trt"), tensorrt={"build_plan": True}, **kw
            )
        return load(state[task], **options)

    yield make
    mp.undo()


@pytest.fixture(scope="module", params=BACKENDS)
def det(request, make):
    d = make(request.param)
    yield d
    d.close()


def test_is_a_detector_with_the_manifest_contract(det):
    assert isinstance(det, Detector)
    assert det.names == ("circle", "square", "triangle", "diamond", "star", "cross")
    assert det.input_size == (320, 320)


def test_returns_valid_detections_in_image_pixels(det, val_images):
    for img in val_images[:8]:
        d = det(img)
        assert isinstance(d, Detections)
        h, w = img.shape[:2]
        assert np.isfinite(d.xyxy).all()
        assert (d.xyxy[:, 0] >= 0).all() and (d.xyxy[:, 2] <= w).all()
        assert (d.xyxy[:, 1] >= 0).all() and (d.xyxy[:, 3] <= h).all()
        assert (d.xyxy[:, 2] > d.xyxy[:, 0]).all() and (d.xyxy[:, 3] > d.xyxy[:, 1]).all()
        assert (d.scores >= det.conf).all() and (d.scores <= 1).all()
        assert np.all(np.diff(d.scores) <= 1e-6), "sorted by score"
        assert d.names == det.names


def test_finds_the_objects_of_a_simple_image(det, val_set):
    import json

    from edgecv.images import read_image

    images_dir, ann = val_set
    data = json.loads(ann.read_text())
    info = data["images"][0]
    gt = [a for a in data["annotations"] if a["image_id"] == info["id"]]
    d = det(read_image(images_dir / info["file_name"]))
    assert len(d) >= len(gt) // 2


def test_predict_batches_equal_single_calls(det, val_images):
    imgs = val_images[:5]
    batch = det.predict(imgs)
    assert len(batch) == 5
    for img, b in zip(imgs, batch):
        s = det(img)
        assert len(s) == len(b)
        assert np.allclose(s.xyxy, b.xyxy, atol=1e-3) and np.allclose(s.scores, b.scores, atol=1e-5)


def test_colour_order_and_converted_inputs(det, val_images):
    bgr = val_images[0]
    a = det(bgr)
    b = det(np.ascontiguousarray(bgr[:, :, ::-1]), color="rgb")
    assert np.allclose(a.xyxy, b.xyxy) and np.array_equal(a.class_ids, b.class_ids)
    rgba = np.concatenate([bgr, np.full(bgr.shape[:2] + (1,), 255, np.uint8)], 2)
    c = det(rgba)
    assert np.allclose(a.xyxy, c.xyxy)
    grey = det(bgr[:, :, 1])
    assert isinstance(grey, Detections)
    view = det(bgr[::2, ::2])  # non-contiguous view
    assert isinstance(view, Detections)


def test_conf_argument_filters(det, val_images):
    low = det(val_images[1], conf=0.01)
    high = det(val_images[1], conf=0.6)
    assert len(high) <= len(low) and (high.scores >= 0.6).all()


def test_timing_is_reported(det, val_images):
    det(val_images[0])
    assert set(det.last_timing) == {"preprocess", "infer", "postprocess"}
    assert all(v >= 0 for v in det.last_timing.values())


def test_closed_detector_refuses(make, val_images):
    for key in BACKENDS:
        with make(key) as d:
            d(val_images[0])
        with pytest.raises(EdgecvError, match="closed"):
            d(val_images[0])


def test_stream_yields_every_frame_in_order(det, val_images):
    import threading

    frames = val_images[:10]
    want = [det(f) for f in frames]
    got = list(det.stream(f for f in frames))  # a generator, read ahead by a few frames only
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert len(g) == len(w) and np.allclose(g.xyxy, w.xyxy, atol=1e-3) and np.array_equal(g.class_ids, w.class_ids)
    before = threading.active_count()
    it = det.stream(iter(frames))
    next(it)
    it.close()  # a consumer that stops early: the pipeline's threads finish and go
    assert threading.active_count() <= before
    bad = [frames[0], frames[1], np.zeros((4, 4, 3), np.uint8), frames[2]]
    seen = []
    with pytest.raises(EdgecvError, match="4x4"):
        for d in det.stream(bad):
            seen.append(d)
    assert len(seen) == 2


# --- the same contract for classifiers and segmenters ---------------------------------------------------


@pytest.fixture(
    scope="module", params=[(k, t) for t in ("classify", "segment") for k in BACKENDS], ids=lambda p: f"{p[1]}-{p[0]}"
)
def task_det(request, make):
    d = make(request.param[0], request.param[1])
    yield d
    d.close()


def _same(a, b) -> bool:
    if isinstance(a, Classifications):
        return np.array_equal(a.class_ids, b.class_ids) and np.allclose(a.scores, b.scores, atol=1e-5)
    return np.array_equal(a.class_map, b.class_map)


def test_task_results_follow_the_contract(task_det, val_images):
    kind = Classifications if task_det.task == "classify" else SegmentationMap
    assert task_det.names == (
        ("circle", "square", "triangle", "diamond", "star", "cross")
        if task_det.task == "classify"
        else ("background", "circle", "square", "triangle", "diamond", "star", "cross")
    )
    imgs = val_images[:4]
    single = [task_det(i) for i in imgs]
    for img, r in zip(imgs, single):
        assert isinstance(r, kind) and r.names == task_det.names
        if kind is SegmentationMap:
            assert r.shape == img.shape[:2] and 0 <= r.class_map.min() and r.class_map.max() < len(task_det.names)
        else:
            assert len(r) == 5 and np.all(np.diff(r.scores) <= 0) and np.all((r.scores >= 0) & (r.scores <= 1))
    assert all(_same(a, b) for a, b in zip(single, task_det.predict(imgs)))  # batches equal single calls
    assert all(_same(a, b) for a, b in zip(single, task_det.stream(iter(imgs))))
    rgb = task_det(np.ascontiguousarray(imgs[0][:, :, ::-1]), color="rgb")
    assert _same(single[0], rgb)
    assert set(task_det.last_timing) == {"preprocess", "infer", "postprocess"}


def test_task_detectors_refuse_calls_once_closed(make, val_images):
    for key in BACKENDS:
        for task in ("classify", "segment"):
            with make(key, task) as d:
                d(val_images[0])
            with pytest.raises(EdgecvError, match="closed"):
                d(val_images[0])


# --- bundles from untrusted sources: every backend refuses a hostile bundle with a BundleError ------------
#
# Each case is a bundle whose manifest is self-consistent (every hash and size rewritten to match),
# as anyone can write one: the hashes prove the files intact, not who made them.


def _relist(bundle, name: str, role: str | None = None) -> None:
    """Rewrite the manifest entry of ``name`` (added with ``role`` if missing) to match the file."""
    import hashlib
    import json

    from edgecv.bundle import MANIFEST_NAME

    mpath = bundle / MANIFEST_NAME
    m = json.loads(mpath.read_text())
    data = (bundle / name).read_bytes()
    entry = {"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    for f in m["files"]:
        if f["path"] == name:
            f.update(entry)
            break
    else:
        m["files"].append({**entry, "role": role})
    mpath.write_text(json.dumps(m, indent=2))


def _external_data(bundle, location: str) -> str:
    """The model's largest initializer moved to an external data file at ``location``."""
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(bundle / "model.onnx"))
    init = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    (bundle / location).write_bytes(init.raw_data)
    set_external_data(init, location=location)
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    onnx.save(model, str(bundle / "model.onnx"))
    _relist(bundle, "model.onnx")
    return location


def ext_outside(bundle) -> tuple[str, ...]:
    (bundle.parent / "outside").mkdir(exist_ok=True)
    return "model.onnx", _external_data(bundle, "../outside/secret.bin")


def ext_inside(bundle) -> tuple[str, ...]:
    location = _external_data(bundle, "weights.bin")
    _relist(bundle, "weights.bin", "weights")  # listed and hashed: still refused, edgecv loads single files
    return "model.onnx", location


def unknown_domain(bundle) -> tuple[str, ...]:
    import onnx

    model = onnx.load(str(bundle / "model.onnx"))
    node = onnx.helper.make_node(
        "Exfiltrate", [model.graph.input[0].name], ["exfiltrated"], name="hostile", domain="com.example.hostile"
    )
    model.graph.node.append(node)
    model.opset_import.append(onnx.helper.make_opsetid("com.example.hostile", 1))
    onnx.save(model, str(bundle / "model.onnx"))
    _relist(bundle, "model.onnx")
    return "model.onnx", "com.example.hostile", "Exfiltrate"


def corrupt(name: str):
    def mutate(bundle) -> tuple[str, ...]:
        data = (bundle / name).read_bytes()
        (bundle / name).write_bytes(data[: len(data) // 2])  # hashed again below: intact by its manifest
        _relist(bundle, name)
        return (name,)

    return mutate


def unknown_op(bundle) -> tuple[str, ...]:
    """A well-formed protobuf whose graph onnxruntime cannot build (an operator no ONNX opset has)."""
    import onnx

    model = onnx.load(str(bundle / "model.onnx"))
    model.graph.node[0].op_type = "NoSuchOperator"
    onnx.save(model, str(bundle / "model.onnx"))
    _relist(bundle, "model.onnx")
    return "model.onnx", "onnxruntime cannot load"


def ir_weights_elsewhere(bundle) -> tuple[str, ...]:
    import json

    from edgecv.bundle import MANIFEST_NAME

    (bundle / "model.bin").rename(bundle / "other.bin")
    m = json.loads((bundle / MANIFEST_NAME).read_text())
    for f in m["files"]:
        if f["role"] == "weights":
            f["path"] = "other.bin"
    (bundle / MANIFEST_NAME).write_text(json.dumps(m))
    return "model.xml", "other.bin"


def ir_constant_outside_weights(bundle) -> tuple[str, ...]:
    import re

    xml = (bundle / "model.xml").read_text()
    size = (bundle / "model.bin").stat().st_size
    xml = re.sub(r'offset="0" size="(\d+)"', f'offset="{size}" size="\\1"', xml, count=1)
    (bundle / "model.xml").write_text(xml)
    _relist(bundle, "model.xml")
    return "model.xml", f"{size}+"


def ir_external_entity(bundle) -> tuple[str, ...]:
    xml = (bundle / "model.xml").read_text()
    head, rest = xml.split("\n", 1)
    entity = '<!DOCTYPE net [<!ENTITY secret SYSTEM "../outside/secret.bin">]>\n'
    (bundle / "model.xml").write_text(head + "\n" + entity + rest.replace('name="onnx_Frontend_IR"', 'name="&secret;"'))
    _relist(bundle, "model.xml")
    return "model.xml", "DTD"


def ir_unknown_layer(bundle) -> tuple[str, ...]:
    xml = (bundle / "model.xml").read_text()
    (bundle / "model.xml").write_text(xml.replace('type="Convolution"', 'type="NoSuchOperator"', 1))
    _relist(bundle, "model.xml")
    return "model.xml", "OpenVINO cannot load"


def plan_without_trust(bundle) -> tuple[str, ...]:
    from edgecv.runtimes.tensorrt.plans import build_bundle_plan

    plan = build_bundle_plan(bundle, version_compatible=True, force=True)  # over the TEST DOUBLE
    return plan.path.name, "trust_plan_code=True", "--trust-plan-code", "not who built it"


ONNX_CASES = {
    "external-data-outside": ext_outside,
    "external-data-inside": ext_inside,
    "unknown-domain": unknown_domain,
    "corrupt-but-hashed": corrupt("model.onnx"),
}
#: the hostile cases of each backend's model format
HOSTILE = {
    "onnxruntime": {**ONNX_CASES, "unloadable-graph": unknown_op},
    "openvino": {
        "ir-weights-elsewhere": ir_weights_elsewhere,
        "ir-constant-outside-weights": ir_constant_outside_weights,
        "ir-external-entity": ir_external_entity,
        "corrupt-but-hashed": corrupt("model.xml"),
        "unloadable-ir": ir_unknown_layer,
    },
    # the plan is what runs, the graph what TensorRT parses (given its path) when it builds one
    TRT_DOUBLE: {**ONNX_CASES, "version-compatible-plan-without-trust": plan_without_trust},
}


@pytest.fixture(scope="module")
def pristine(make, default_bundles):
    """key -> a bundle of the default detector for that backend (read it, never change it)."""

    def get(key: str):
        if key == TRT_DOUBLE:
            with make(TRT_DOUBLE) as d:  # installs the TEST DOUBLE of tensorrt and CUDA
                return d.bundle.path
        return default_bundles[key]

    return get


@pytest.mark.parametrize(
    "key, case", [(k, c) for k, cases in HOSTILE.items() if k in BACKENDS for c in cases], ids="-".join
)
def test_a_hostile_bundle_is_refused_with_a_bundle_error(key, case, pristine, tmp_path):
    import shutil

    from edgecv import BundleError
    from edgecv.bundle import Bundle

    bundle = tmp_path / "hostile"
    shutil.copytree(pristine(key), bundle)
    names = HOSTILE[key][case](bundle)
    Bundle.open(bundle)  # every hash matches: the manifest vouches for the files as they are
    with pytest.raises(BundleError) as e:
        load(bundle)
    assert all(n in str(e.value) for n in names), str(e.value)
    print(f"{key} {case}: {e.value}")  # the refusals as printed (pytest -s shows them)


def test_a_trusted_version_compatible_plan_runs_with_host_code(make, pristine, tmp_path, val_images):
    """Over the TEST DOUBLE: trust_plan_code is what lets host code run, and only then."""
    import shutil
    import sys

    if TRT_DOUBLE not in BACKENDS:
        pytest.skip("real TensorRT is installed: tests/gpu run version-compatible plans")
    bundle = tmp_path / "vc"
    shutil.copytree(pristine(TRT_DOUBLE), bundle)
    plan_without_trust(bundle)
    stats = sys.modules["tensorrt"].stats
    before = list(stats["host_code"])
    with pytest.raises(EdgecvError, match="trust"):
        load(bundle)
    assert stats["host_code"] == before, "refused before TensorRT deserialized anything"
    with load(bundle, trust_plan_code=True) as det:
        assert det.plan_entry["version_compatible"] and len(det(val_images[0])) > 0
    assert stats["host_code"] == [*before, True]
    with load(pristine(TRT_DOUBLE), trust_plan_code=True) as det:  # a plan for this version only: no host code
        assert not det.plan_entry["version_compatible"]
    assert stats["host_code"][-1] is False


def test_the_calls_conf_is_the_graphs_score_floor(det, val_images):
    """A detector graph takes its NMS score floor as an input and each call feeds its ``conf``
    there: the graph's own outputs hold only the boxes at or above it, and exactly the boxes a
    low floor gives at or above it (NMS keeps the same boxes; nothing above the floor is lost)."""
    assert det.score_input == "score_threshold"
    batch, _ = det.preprocess(val_images[:3])
    low, high = det._run(batch, conf=0.001), det._run(batch, conf=0.5)
    fewer = 0
    for i in range(len(batch)):
        n_low, n_high = int(low["num_dets"][i]), int(high["num_dets"][i])
        keep = low["scores"][i, :n_low] >= 0.5
        assert n_high == int(keep.sum()) and (high["scores"][i, :n_high] >= 0.5).all()
        np.testing.assert_allclose(high["boxes"][i, :n_high], low["boxes"][i, :n_low][keep], atol=1e-3)
        np.testing.assert_allclose(high["scores"][i, :n_high], low["scores"][i, :n_low][keep], atol=1e-5)
        fewer += n_low - n_high
    assert fewer > 0, "the floor of 0.5 dropped no box: the graph did not take it"
    # a box scored exactly ``conf`` is kept (the graph keeps scores above the floor it is fed)
    score = float(low["scores"][0, min(2, int(low["num_dets"][0]) - 1)])
    exact = det._run(batch, conf=score)  # the same batch: the same float arithmetic as ``low``
    assert score in exact["scores"][0, : int(exact["num_dets"][0])]
    # each image of one call may have its own floor: the graph takes their lowest
    mixed = det._run(batch[:2], extra={"score_threshold": np.array([0.5, 0.001], np.float32)})
    assert int(mixed["num_dets"][1]) == int(low["num_dets"][1])
