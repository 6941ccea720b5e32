"""The speed work (issue: speed): the host path (one pass from the camera frame into the network
input), OpenVINO's static-shape and throughput compilations, the threads each backend uses,
the operation count and the measured peak behind the bench's "fraction of peak".

Speed itself is never asserted here (the machines are shared and noisy): these tests check
that each speed-up computes the same thing as the plain way, and that the figures the bench
reports are counted right. The figures are in benchmarks/results/speed-*.md.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecv.cpu import physical_cores
from edgecv.errors import EdgecvError
from edgecv.images import prepare, to_model_input
from edgecv.letterbox import Letterbox

from .conftest import EXPORT_TARGETS

# --- host path ------------------------------------------------------------------------------------


def _reference_letterbox(lb: Letterbox, rgb: np.ndarray) -> np.ndarray:
    """The letterbox written the plain way: fill the whole canvas, resize, paste."""
    p = lb.params(rgb.shape[:2])
    nh, nw = int(round(rgb.shape[0] * p.scale_y)), int(round(rgb.shape[1] * p.scale_x))
    out = np.full((*lb.size, 3), lb.pad_value, np.uint8)
    if (nh, nw) != rgb.shape[:2]:
        interp = cv2.INTER_AREA if nw < rgb.shape[1] else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (nw, nh), interpolation=interp)
    out[p.pad_y : p.pad_y + nh, p.pad_x : p.pad_x + nw] = rgb
    return out


def _kinds(base: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "bgr": base,
        "grey": base[:, :, 0].copy(),
        "grey HxWx1": base[:, :, :1].copy(),
        "bgra": np.dstack([base, base[:, :, :1]]),
        "crop view": base[5:80, 7:100],
        "fortran order": np.asfortranarray(base),
        "flipped view": base[::-1],
        "strided view": base[::2, ::3],
        "small": base[:20, :30].copy(),
        "channel-reversed view": base[:, :, ::-1],
    }


@pytest.mark.parametrize("size", [(64, 64), (320, 320), (97, 131), (128, 96)])
def test_one_pass_letterbox_equals_the_plain_way(size):
    """Colour conversion fused into the resize, written in place, only the border filled: the
    same bytes as converting, filling, resizing and pasting, for every kind of frame, shrunk,
    enlarged and unscaled, into a dirty buffer."""
    base = np.random.default_rng(0).integers(0, 256, (97, 131, 3), np.uint8)
    lb = Letterbox(size)
    for name, img in _kinds(base).items():
        for color in ("bgr", "rgb"):
            for model_color in ("RGB", "BGR"):
                want = _reference_letterbox(lb, to_model_input(img, color, model_color))
                pixels, convert = prepare(img, color, model_color)
                got, _ = lb.forward(pixels, out=np.full((*size, 3), 3, np.uint8), convert=convert)
                assert np.array_equal(got, want), (name, color, model_color)


def test_prepare_does_not_copy_what_opencv_reads_in_place():
    base = np.random.default_rng(1).integers(0, 256, (60, 80, 3), np.uint8)
    for img in (base, base[5:50, 10:70], base[:, :, 0].copy()):
        pixels, _ = prepare(img, "bgr")
        assert np.shares_memory(pixels, img)
    for img in (np.asfortranarray(base), base[::-1], base[:, :, ::-1]):  # OpenCV cannot read these in place
        pixels, _ = prepare(img, "bgr")
        assert not np.shares_memory(pixels, img) and pixels.flags.c_contiguous


@pytest.mark.skipif(not EXPORT_TARGETS, reason="needs onnxruntime or openvino")
def test_detector_preprocess_matches_the_plain_way(make_detector):
    det = make_detector(EXPORT_TARGETS[0])
    try:
        frames = [
            np.random.default_rng(i).integers(0, 256, shape, np.uint8)
            for i, shape in enumerate([(480, 640, 3), (50, 300), (720, 400, 4)])
        ]
        batch, params = det.preprocess(frames)
        for i, f in enumerate(frames):
            assert np.array_equal(batch[i], _reference_letterbox(det.placer, to_model_input(f, "bgr", det.model_color)))
            assert params[i].orig_shape == f.shape[:2]
    finally:
        det.close()


# --- threads --------------------------------------------------------------------------------------


def test_physical_cores_within_usable_cpus():
    from edgecv.cpu import usable_cpus

    assert 1 <= physical_cores() <= len(usable_cpus())


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_threads_used_is_reported(target, make_detector):
    det = make_detector(target)
    one = make_detector(target, threads=1)
    try:
        assert det.threads_used == physical_cores()  # the default: one per physical core
        assert one.threads_used == 1
    finally:
        det.close()
        one.close()


# --- OpenVINO compilations ------------------------------------------------------------------------


@pytest.mark.skipif("openvino" not in EXPORT_TARGETS, reason="needs openvino")
def test_openvino_threads_are_unpinned_unless_asked(make_detector):
    """Unpinned by default (a busy neighbour costs less); ``cpu_pinning=True`` gives OpenVINO's own."""
    free, pinned = make_detector("openvino"), make_detector("openvino", cpu_pinning=True)
    try:
        for det, want in ((free, False), (pinned, True)):
            for mode in ("latency", "throughput"):
                assert det._compilation(1, mode).compiled.get_property("ENABLE_CPU_PINNING") is want, (want, mode)
    finally:
        free.close()
        pinned.close()


@pytest.mark.skipif("openvino" not in EXPORT_TARGETS, reason="needs openvino")
def test_openvino_auto_precision_is_what_this_cpu_computes_natively(make_detector, val_images):
    """``inference_precision="auto"``: the float parts run bf16 where the CPU has native bf16
    (edgecv.cpu.computes_bf16), f32 elsewhere, and the plugin reports the precision it took."""
    from edgecv.cpu import float_precision

    auto, pinned = make_detector("openvino", inference_precision="auto"), make_detector("openvino")
    try:
        assert auto.inference_precision == float_precision() and pinned.inference_precision == "f32"
        if float_precision() == "f32":  # the same compilation: the same boxes
            a, b = auto(val_images[0]), pinned(val_images[0])
            assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.scores, b.scores)
    finally:
        auto.close()
        pinned.close()


@pytest.mark.skipif("openvino" not in EXPORT_TARGETS, reason="needs openvino")
def test_openvino_static_compilations_give_the_same_boxes(make_detector, val_images):
    det = make_detector("openvino", batch_size=4, conf=0.1)
    dyn = make_detector("openvino", batch_size=4, conf=0.1, static_shapes=False)
    try:
        frames = val_images[:4]
        single = [det(f) for f in frames]
        four = det.predict(frames)  # batch_size: its own static compilation
        three = det.predict(frames[:3])  # another size: the dynamic one
        streamed = list(det.stream(frames))  # the throughput compilation
        plain = dyn.predict(frames[:3])
        assert {k for k in det._compiled} == {(1, "latency"), (4, "latency"), (None, "latency"), (1, "throughput")}
        assert set(dyn._compiled) == {("bundle", "latency")}
        for i, want in enumerate(single):
            for got in [four[i], streamed[i]] + ([three[i], plain[i]] if i < 3 else []):
                assert len(got) == len(want) and len(want) > 0
                np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3)
                np.testing.assert_array_equal(got.class_ids, want.class_ids)
    finally:
        det.close()
        dyn.close()


@pytest.mark.skipif("onnxruntime" not in EXPORT_TARGETS, reason="needs onnxruntime")
def test_onnxruntime_stream_runs_on_its_own_single_thread_session(make_detector, val_images):
    det = make_detector("onnxruntime", conf=0.1)
    shared = make_detector("onnxruntime", conf=0.1, threads=1)
    try:
        frames = val_images[:4]
        single = [det(f) for f in frames]
        assert det._stream_session is None  # made on the first stream() call only
        streamed = list(det.stream(frames))
        options = det._stream_session.get_session_options()
        assert det._stream_session is not det.session and options.intra_op_num_threads == 1
        assert det.session.get_session_options().intra_op_num_threads == physical_cores()
        for got, want in zip(streamed, single, strict=True):
            assert len(got) == len(want) > 0
            np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-4)
            np.testing.assert_array_equal(got.class_ids, want.class_ids)
        list(shared.stream(frames[:1]))  # threads=1 for calls too: one session serves both
        assert shared._stream_session is shared.session
    finally:
        det.close()
        shared.close()


# --- operations and peak --------------------------------------------------------------------------


def _graph_with_every_counted_op():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = lambda *s: numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), f"w{len(s)}_{s[0]}_{s[1]}")  # noqa: E731
    inits = [w(16, 3, 3, 3), w(32, 4, 3, 3), w(16, 8, 2, 2), w(64, 10), w(10, 7)]
    nodes = [
        helper.make_node("Conv", ["x", inits[0].name], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),  # -> [B,16,32,32]
        helper.make_node("Conv", ["c1", inits[1].name], ["c2"], group=4, pads=[1, 1, 1, 1]),  # -> [B,32,32,32]
        helper.make_node("Slice", ["c2", "s0", "s1", "s2"], ["c3"]),  # channels 0..16
        helper.make_node("ConvTranspose", ["c3", inits[2].name], ["c4"], strides=[2, 2]),  # [B,16,32,32] -> [B,8,64,64]
        helper.make_node("ReduceMean", ["c4"], ["m"], axes=[1], keepdims=0),  # [B,64,64]
        helper.make_node("MatMul", ["m", inits[3].name], ["mm"]),  # [B,64,64] x [64,10] -> [B,64,10]
        helper.make_node("Flatten", ["mm"], ["f"], axis=2),  # [B*64, 10]
        helper.make_node("Gemm", ["f", inits[4].name], ["y"]),  # [B*64,10] x [10,7]
    ]
    consts = [
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([16], np.int64), "s1"),
        numpy_helper.from_array(np.array([1], np.int64), "s2"),
    ]
    graph = helper.make_graph(
        nodes,
        "ops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits + consts,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_operations_counted_per_operator():
    pytest.importorskip("onnx")
    from edgecv.limits import count_operations

    model = _graph_with_every_counted_op()
    want = {
        "Conv": 2 * (16 * 32 * 32 * 3 * 3 * 3 + 32 * 32 * 32 * 4 * 3 * 3) / 1e9,
        "ConvTranspose": 2 * (16 * 32 * 32 * 8 * 2 * 2) / 1e9,
        "MatMul": 2 * (64 * 10 * 64) / 1e9,
        "Gemm": 2 * (64 * 10 * 7) / 1e9,
    }
    for batch in (1, 3):  # per image, whatever the batch it is counted at
        ops = count_operations(model, batch=batch)
        assert ops.nodes == 5
        assert ops.by_op.keys() == want.keys()
        for k, v in want.items():
            assert ops.by_op[k] == pytest.approx(v, rel=1e-9), k
        assert ops.gops == pytest.approx(sum(want.values()), rel=1e-9)


def test_operations_refuse_a_symbolic_spatial_dimension():
    pytest.importorskip("onnx")
    from edgecv.limits import count_operations

    model = _graph_with_every_counted_op()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    with pytest.raises(EdgecvError, match="symbolic dimension 2"):
        count_operations(model)


@pytest.mark.skipif("openvino" not in EXPORT_TARGETS, reason="needs openvino")
def test_operations_of_an_openvino_bundle_equal_its_onnx_graph(default_bundles):
    """The IR's count (Convolution, GroupConvolution, MatMul) equals the ONNX graph's it came from."""
    from edgecv.bundle import Bundle
    from edgecv.limits import count_operations

    onnx_ops = count_operations(Bundle.open(default_bundles["onnxruntime"]).file("model"))
    ir_ops = count_operations(Bundle.open(default_bundles["openvino"]).file("model"))
    assert ir_ops.nodes == onnx_ops.nodes > 0
    assert ir_ops.gops == pytest.approx(onnx_ops.gops, rel=1e-6)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_peak_graphs_compute_the_product(backend):
    """What the peak measures is a real [M, K] x [K, N] product at each precision and in each
    form (not a graph the backend could skip or get wrong)."""
    if backend not in EXPORT_TARGETS:
        pytest.skip(f"needs {backend}, which is not installed here")
    from edgecv.limits import _matmul_onnx, _openvino_product

    m, k, n = 32, 64, 48
    # Inside the activation range [-2, 2], and in its lower half: without VNNI the u8 x s8 kernels of
    # both backends add pairs of products in int16, which activations quantized above 128 times
    # full-range weights can saturate. The peak is timed on the full range (speed does not depend
    # on the values); here the values are kept where every CPU computes them exactly.
    x = np.random.default_rng(1).uniform(-1.9, 0.0, (m, k)).astype(np.float32)
    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32) * 0.05
    want = x @ w
    tol = {"fp32": 1e-4, "int8": 0.03 * np.abs(want).max()}
    if backend == "onnxruntime":
        import onnxruntime as ort

        for prec in ("fp32", "int8"):
            sess = ort.InferenceSession(
                _matmul_onnx(m, k, n, prec).SerializeToString(), providers=["CPUExecutionProvider"]
            )
            np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, atol=tol[prec])
    else:
        import openvino as ov

        core = ov.Core()
        for prec in ("fp32", "int8"):
            for form in ("matmul", "conv1x1") if prec == "fp32" else ("conv1x1",):
                model, xin = _openvino_product(m, k, n, prec, form, x)
                got = (
                    core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
                    .create_infer_request()
                    .infer({0: xin})[0]
                )
                got = got.reshape(n, m).T if form == "conv1x1" else got
                np.testing.assert_allclose(got, want, atol=tol[prec], err_msg=f"{prec} {form}")


@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_bench_reports_stream_threads_and_fraction_of_peak(target, default_bundles):
    from edgecv.bench import bench, bench_table
    from edgecv.bundle import Bundle
    from edgecv.limits import count_operations

    res = bench([default_bundles[target]], batches=(1,), seconds=0.2, min_iters=3, warmup=1, stream=True, peak=True)
    row = res.rows[0]
    ops = count_operations(Bundle.open(default_bundles[target]).file("model"))
    assert row["gops_per_image"] == pytest.approx(ops.gops)
    assert row["threads_used"] == physical_cores()
    assert row["stream_fps"] > 0
    achieved = ops.gops / (row["stages_ms"]["e2e"]["p50"] / 1000)
    assert row["achieved_gops_per_s"]["e2e"] == pytest.approx(achieved)
    assert row["fraction_of_peak"]["e2e"] == pytest.approx(achieved / row["peak"]["gops_per_s"])
    assert row["peak"]["precision"] == "fp32"
    table = bench_table(res)
    assert "stream fps" in table and "of peak" in table and f"default ({physical_cores()})" in table


# --- rectangular inputs ---------------------------------------------------------------------------


def _frames(folder, shapes_hw):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(shapes_hw):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((h, w, 3), 90, np.uint8))
    return folder


@pytest.mark.parametrize(
    "frames,long_side,want",
    [
        ([(480, 640)] * 3, 640, (480, 640)),  # 4:3: no padding at all
        ([(720, 1280)] * 3, 640, (384, 640)),  # 16:9: 360 rounded up to the stride
        ([(1280, 720)] * 3, 640, (640, 384)),  # portrait
        ([(480, 640), (720, 1280), (720, 1280)], 320, (192, 320)),  # the median aspect: 16:9
        ([(500, 500)], 640, (640, 640)),
    ],
)
def test_rect_size_follows_the_frames_median_aspect(tmp_path, frames, long_side, want):
    from edgecv.export.calibration import rect_imgsz

    assert rect_imgsz(_frames(tmp_path / "f", frames), long_side) == want


def test_cli_rect_export_takes_the_frames_shape(tmp_path, capsys):
    """``export --rect``: the bundle's input is 256x320 for 4:3 frames at --imgsz 320, it runs on
    such a frame, and the size it chose is said; --rect with HxW or without images is refused."""
    from edgecv import load
    from edgecv.cli import main

    frames = _frames(tmp_path / "calib", [(480, 640)] * 4)
    code = main(["export", "--rect", "--imgsz", "320", "--calib", str(frames), "-o", str(tmp_path), "--name", "r"])
    err = capsys.readouterr().err
    assert code == 0 and "--rect: input 256x320" in err, err
    with load(tmp_path / "r") as det:
        assert det.input_size == (256, 320)
        det(np.full((480, 640, 3), 90, np.uint8))
    assert main(["export", "--rect", "--imgsz", "256x320", "--calib", str(frames), "-o", str(tmp_path)]) == 2
    assert "one number" in capsys.readouterr().err
    assert main(["export", "--rect", "-o", str(tmp_path)]) == 2
    assert "--calib" in capsys.readouterr().err
