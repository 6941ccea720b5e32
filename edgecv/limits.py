"""How close a model runs to what the machine allows: the model's operations per image, counted
from its ONNX graph, and the machine's measured peak in the same backend at the same precision.

The operations are those of the convolutions and matrix products, counted as 2 per
multiply-accumulate (the convention of published GFLOPs figures: YOLOv8n is 8.7 at 640); the
rest of a detector (activations, decode, NMS) is well under 1% of them. The peak is the best
rate of a large matrix product run by the backend itself: an upper bound that real layers,
with their memory traffic and odd shapes, approach but do not reach.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgecvError

COUNTED = ("Conv", "ConvTranspose", "MatMul", "Gemm", "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul")


@dataclass(frozen=True)
class Operations:
    """Operations of one image through a graph."""

    gops: float  # 2 x multiply-accumulates, in 10^9
    by_op: dict[str, float]  # the same, per operator type
    nodes: int  # counted nodes

    def __str__(self) -> str:
        return f"{self.gops:.2f} GOPs per image ({self.nodes} convolutions and matrix products)"


def _static(model, batch: int):
    """A copy of ``model`` with every symbolic input dimension set (batch to ``batch``)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for inp in m.graph.input:
        for i, d in enumerate(inp.type.tensor_type.shape.dim):
            if not d.HasField("dim_value"):
                if i != 0:
                    raise EdgecvError(
                        f"input '{inp.name}' has a symbolic dimension {i} ('{d.dim_param}'); only the "
                        "batch may be symbolic to count operations"
                    )
                d.Clear()
                d.dim_value = batch
    return m


def count_operations(model, batch: int = 1) -> Operations:
    """Count the operations of one image through an ONNX graph (a path or a ModelProto), or an
    OpenVINO IR (a ``.xml`` path: the same count over its Convolution, GroupConvolution and MatMul).

    Shapes come from ONNX shape inference with the batch fixed to ``batch``; the count is
    divided by ``batch``.

    Raises:
        EdgecvError: the graph cannot be read, or a counted node's shapes cannot be inferred.
    """
    import onnx

    if isinstance(model, (str, Path)) and str(model).endswith(".xml"):
        return _count_openvino(Path(model), batch)
    if isinstance(model, (str, Path)):
        try:
            model = onnx.load(str(model))
        except Exception as e:
            raise EdgecvError(f"cannot read the ONNX graph '{model}': {e}") from None
    m = onnx.shape_inference.infer_shapes(_static(model, batch), data_prop=True)
    shapes: dict[str, list[int]] = {}
    for vi in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)

    def shape(name: str, node) -> list[int]:
        s = shapes.get(name)
        if s is None or any(d < 0 for d in s):
            raise EdgecvError(
                f"cannot count the operations of {node.op_type} node '{node.name}': the shape of "
                f"'{name}' is not known after shape inference"
            )
        return s

    by_op: dict[str, float] = {}
    nodes = 0
    for node in m.graph.node:
        if node.op_type not in COUNTED:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w = shape(node.input[3 if node.op_type == "QLinearConv" else 1], node)
            y = shape(node.output[0], node)
            macs = int(np.prod(y)) * int(np.prod(w[1:]))  # every output: Cin/groups x kernel MACs
        elif node.op_type == "ConvTranspose":
            x, w = shape(node.input[0], node), shape(node.input[1], node)
            macs = int(np.prod(x)) * int(np.prod(w[1:]))  # every input scattered over Cout/groups x kernel
        elif node.op_type == "Gemm":
            a, b = shape(node.input[0], node), shape(node.input[1], node)
            k = a[0] if attrs.get("transA", 0) else a[1]
            n = b[0] if attrs.get("transB", 0) else b[1]
            macs = (a[1] if attrs.get("transA", 0) else a[0]) * k * n
        else:  # MatMul family: numpy broadcasting; the output's size times the reduced dimension
            a_in = node.input[3 if node.op_type == "QLinearMatMul" else 0]
            y = shape(node.output[0], node)
            macs = int(np.prod(y)) * shape(a_in, node)[-1]
        by_op[node.op_type] = by_op.get(node.op_type, 0.0) + 2 * macs / 1e9 / batch
        nodes += 1
    return Operations(sum(by_op.values()), by_op, nodes)


def _count_openvino(xml: Path, batch: int) -> Operations:
    import openvino as ov

    try:
        model = ov.Core().read_model(str(xml))
    except Exception as e:
        raise EdgecvError(f"cannot read the OpenVINO model '{xml}': {e}") from None
    shape = model.inputs[0].get_partial_shape()
    if shape[0].is_dynamic:
        model.reshape({model.inputs[0]: [batch, *[d.get_length() for d in list(shape)[1:]]]})
    by_op: dict[str, float] = {}
    nodes = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"):
            continue
        y = list(op.get_output_partial_shape(0).to_shape())
        w = list(op.get_input_partial_shape(1).to_shape())
        if kind == "Convolution":
            macs = int(np.prod(y)) * int(np.prod(w[1:]))
        elif kind == "GroupConvolution":  # weights [groups, Cout/groups, Cin/groups, k...]
            macs = int(np.prod(y)) * int(np.prod(w[3:])) * w[2]
        elif kind == "ConvolutionBackpropData":  # weights [Cin, Cout, k...]: every input scattered
            x = list(op.get_input_partial_shape(0).to_shape())
            macs = int(np.prod(x)) * int(np.prod(w[1:]))
        else:
            a = list(op.get_input_partial_shape(0).to_shape())
            macs = int(np.prod(y)) * (a[-2] if op.get_attributes().get("transpose_a") else a[-1])
        name = {"Convolution": "Conv", "GroupConvolution": "Conv", "ConvolutionBackpropData": "ConvTranspose"}.get(
            kind, kind
        )
        by_op[name] = by_op.get(name, 0.0) + 2 * macs / 1e9 / batch
        nodes += 1
    return Operations(sum(by_op.values()), by_op, nodes)


@dataclass(frozen=True)
class Peak:
    """The best rate of a large matrix product in one backend at one precision."""

    backend: str
    precision: str  # the precision the backend computed in
    gops_per_s: float  # best of the repeats
    median_gops_per_s: float
    shape: tuple[int, int, int]  # M, K, N
    threads: int | None


def _matmul_onnx(m: int, k: int, n: int, precision: str, seed: int = 0):
    """An ONNX graph [m, k] x [k, n]: FP32, or INT8 as QDQ (the form onnxruntime's quantizer writes,
    which it runs as an integer matrix product)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n)).astype(np.float32) * 0.05
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
    if precision == "int8":
        # full-range weights, as the exporter writes them, so the peak runs the model's kernels
        scale = np.abs(w).max(0) / 127
        wq = np.round(w / scale).clip(-127, 127).astype(np.int8)
        inits = [
            numpy_helper.from_array(wq, "wq"),
            numpy_helper.from_array(scale.astype(np.float32), "ws"),
            numpy_helper.from_array(np.zeros(n, np.int8), "wz"),
            numpy_helper.from_array(np.array(4 / 255, np.float32), "xs"),
            numpy_helper.from_array(np.array(128, np.uint8), "xz"),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
            helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=1),
            helper.make_node("MatMul", ["xd", "wd"], ["y"]),
        ]
    else:
        inits = [numpy_helper.from_array(w, "w")]
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "peak", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _time(run, x, flops: float, repeats: int, seconds: float) -> tuple[float, float]:
    run(x)
    run(x)
    rates: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(rates) < repeats or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        run(x)
        rates.append(flops / (time.perf_counter() - t0) / 1e9)
        if len(rates) >= 4 * repeats:
            break
    return max(rates), statistics.median(rates)


def measure_peak(
    backend: str,
    precision: str,
    threads: int | None = None,
    size: tuple[int, int, int] = (512, 2048, 2048),
    repeats: int = 10,
    seconds: float = 3.0,
) -> Peak:
    """The machine's peak in ``backend`` (onnxruntime or openvino) at ``precision`` (fp32, bf16
    for openvino, int8): the best rate of an [M, K] x [K, N] product, in 10^9 operations per second.

    For openvino, bf16 is asked with the inference precision hint and int8 from NNCF's form
    (FakeQuantize on the activations, int8 weights); the precision the plugin actually computed
    in is returned in :attr:`Peak.precision`.
    """
    m, k, n = size
    flops = 2.0 * m * k * n
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    if backend == "onnxruntime":
        import onnxruntime as ort

        if precision not in ("fp32", "int8"):
            raise EdgecvError(f"onnxruntime's CPU peak is measured at fp32 or int8, not {precision}")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        sess = ort.InferenceSession(
            _matmul_onnx(m, k, n, precision).SerializeToString(), so, providers=["CPUExecutionProvider"]
        )
        best, med = _time(lambda a: sess.run(None, {"x": a}), x, flops, repeats, seconds)
        return Peak(backend, precision, best, med, size, threads)
    if backend == "openvino":
        import openvino as ov

        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        # the best form: its rate, median rate, the precision it computed in, and its threads
        top: tuple[float, float, str, int | None] = (0.0, 0.0, "", None)
        # the CPU plugin runs a product as a FullyConnected or, laid out as a 1x1 convolution,
        # with its convolution kernels (at int8 on AVX2, 2.3x faster): the better one is the peak
        for form in ("matmul", "conv1x1"):
            model, xin = _openvino_product(m, k, n, precision, form, x)
            compiled = core.compile_model(model, "CPU", config)
            effective = compiled.get_property("INFERENCE_PRECISION_HINT")
            effective = effective.to_string() if hasattr(effective, "to_string") else str(effective)
            request = compiled.create_infer_request()
            rate, med = _time(
                lambda a: request.infer({0: a}, share_inputs=True),  # noqa: B023 - _time calls it in this iteration
                xin,
                flops,
                repeats,
                seconds,
            )
            if rate > top[0]:
                top = (rate, med, effective, int(compiled.get_property("INFERENCE_NUM_THREADS")))
        ran = precision if precision == "int8" else {"f32": "fp32"}.get(top[2], top[2])
        return Peak(backend, ran, top[0], top[1], size, top[3])
    raise EdgecvError(f"no peak measurement for backend '{backend}' (onnxruntime or openvino)")


def _openvino_product(m: int, k: int, n: int, precision: str, form: str, x: np.ndarray):
    """[m, k] x [k, n] as an OpenVINO model (a MatMul, or a 1x1 convolution over m positions),
    INT8 in NNCF's form: FakeQuantize on the activations and on the weights (per output channel).
    Returns the model and its input."""
    import openvino as ov
    import openvino.opset13 as ops

    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32) * 0.05
    if form == "conv1x1":
        w = np.ascontiguousarray(w.T.reshape(n, k, 1, 1))
        x = np.ascontiguousarray(x.T.reshape(1, k, m, 1))
    p = ops.parameter(list(x.shape), np.float32, name="x")
    wc = ops.constant(w)
    inp = p
    if precision == "int8":
        lo, hi = np.array(-2.0, np.float32), np.array(2.0, np.float32)
        inp = ops.fake_quantize(p, lo, hi, lo, hi, 256)
        axes = (1, 2, 3) if form == "conv1x1" else (0,)
        wl = -np.abs(w).max(axes, keepdims=True)
        wc = ops.fake_quantize(wc, wl, -wl, wl, -wl, 255)
    if form == "conv1x1":
        y = ops.convolution(inp, wc, [1, 1], [0, 0], [0, 0], [1, 1])
    else:
        y = ops.matmul(inp, wc, False, False)
    return ov.Model([y], [p], "peak"), x
