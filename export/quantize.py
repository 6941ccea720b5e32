"""FP16 and INT8 versions of the exported graph.

The rule for what stays in float is one graph property: a node that feeds no Conv, Gemm or
MatMul (box decoding, score activations, NMS, the output plumbing) is post-processing and
keeps FP32; only the network's heavy operators are quantized (INT8) or halved (FP16).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ExportError
from .calibration import CalibrationSet

HEAVY_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")
#: What an onnxruntime (CPU) INT8 graph quantizes: the heavy operators and the network's own
#: activations, joins and resampling between them. onnxruntime fuses each into an integer kernel
#: (QLinearConv, QLinearLeakyRelu, QLinearAdd, QLinearSigmoid, QLinearMul, QLinearConcat, ...), so
#: activations flow from one convolution to the next in INT8. With the heavy operators alone,
#: every convolution's output is dequantized, activated in float and quantized again, and those
#: conversions eat most of what the integer convolutions save.
CPU_OPS = HEAVY_OPS[:3] + (
    "Add",
    "Mul",
    "Sigmoid",
    "LeakyRelu",
    "Relu",
    "Clip",
    "HardSigmoid",
    "Resize",
    "Concat",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Split",
)
METHODS = ("minmax", "entropy", "percentile")


#: inputs through which a node does not count as feeding the network: RoIAlign's boxes (two-stage
#: models' proposals, which come out of box decoding, top-k and NMS) and its batch indices
ROI_INPUTS = {"RoiAlign": (1, 2)}


def _data_inputs(node) -> list[str]:
    skip = ROI_INPUTS.get(node.op_type, ())
    return [t for k, t in enumerate(node.input) if k not in skip]


def postprocess_nodes(model) -> list[str]:
    """Names of the nodes of an ONNX model from which no Conv/Gemm/MatMul can be reached (other
    than through RoIAlign's boxes: a two-stage model's proposal decoding and NMS stay in float)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    feeds_heavy: set[str] = set()
    stack = [n for n in model.graph.node if n.op_type in HEAVY_OPS]
    while stack:
        node = stack.pop()
        for i in _data_inputs(node):
            p = producers.get(i)
            if p is not None and p.name not in feeds_heavy:
                feeds_heavy.add(p.name)
                stack.append(p)
    return [n.name for n in model.graph.node if n.op_type not in HEAVY_OPS and n.name not in feeds_heavy]


def float_runs(model, excluded: Sequence[str]) -> list[str]:
    """Names of the non-heavy nodes that an excluded heavy node's output reaches before the next
    heavy node: a layer kept in float stays float up to the next convolution's input, its
    activation (SiLU's Sigmoid and Mul), joins and resampling included.

    onnxruntime's full graph optimizations miscompute a float Conv whose SiLU is quantized: a
    YOLO11n INT8 graph with its first convolution kept in float lost 21.7 mAP points at
    ``ORT_ENABLE_ALL`` and nothing at ``ORT_ENABLE_BASIC`` (benchmarks/results/int8-levers-*).
    """
    wanted = set(excluded)
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out: set[str] = set()
    stack = [o for n in model.graph.node if n.name in wanted and n.op_type in HEAVY_OPS for o in n.output]
    while stack:
        for c in consumers.get(stack.pop(), []):
            if c.op_type in HEAVY_OPS or c.name in out:
                continue
            out.add(c.name)
            stack.extend(c.output)
    return sorted(out)


def output_layers(model) -> list[str]:
    """Names of the heavy nodes that no other heavy node depends on: the head's final layers.

    They produce the box regressions and class logits directly; quantizing them costs the
    most localisation accuracy per unit of speed gained, so INT8 exports keep them in float.
    """
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in _data_inputs(n):
            consumers.setdefault(i, []).append(n)

    def reaches_heavy(node) -> bool:
        seen, stack = set(), list(node.output)
        while stack:
            t = stack.pop()
            for c in consumers.get(t, []):
                if c.op_type in HEAVY_OPS:
                    return True
                if c.name not in seen:
                    seen.add(c.name)
                    stack.extend(c.output)
        return False

    return [n.name for n in model.graph.node if n.op_type in HEAVY_OPS and not reaches_heavy(n)]


# --- the INT8 recipe ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Int8Recipe:
    """How an INT8 export quantizes, as one record every target reads; each field is a lever of
    ``benchmarks/int8_levers.py``, where the figures behind each default are.

    Attributes:
        head: ``"float"`` keeps the head's output layers (:func:`output_layers`) in float,
            ``"int8"`` quantizes them with the rest of the network.
        preset: openvino: NNCF's preset, ``"mixed"`` (asymmetric activations) or ``"performance"``.
        bias_correction: openvino: NNCF's ``"fast"`` or ``"full"`` bias correction, or ``"none"``.
        scope: openvino: ``"heavy"`` quantizes the inputs of convolutions and matrix products only;
            ``"joins"`` lets NNCF place them as for any model but keeps the residual additions
            (:func:`ov_residual_adds`) float, so concatenations, splits and resampling carry
            INT8 between convolutions; ``"nncf"`` lets NNCF place quantizers as for any model
            (the residual additions too).
        ranges: openvino: how activation ranges are estimated: ``"mean_minmax"`` (NNCF's default,
            the mean over images of each image's min and max), ``"minmax"`` (over all images) or
            ``"histogram"`` (NNCF's histogram search for the range of least quantization error).
        per_channel: onnxruntime and tensorrt: one weight scale per output channel.
        activations: onnxruntime: ``"uint8"`` (U8S8 QDQ) or ``"int8"`` (S8S8); tensorrt always int8.
        reduce_range: onnxruntime: 7-bit weights (``True``), 8-bit (``False``), or ``"auto"``: 7-bit
            where the exporting CPU's INT8 kernels saturate (x86 without VNNI,
            :func:`edgecv.cpu.int8_dot_saturates`), 8-bit elsewhere; the bundle records which,
            and loading 8-bit weights on a CPU that saturates warns (see
            :mod:`edgecv.export.targets.onnxruntime`).
        ops: onnxruntime: ``"cpu"`` quantizes :data:`CPU_OPS` (the heavy operators and the
            activations, joins and resampling between them, fused into integer kernels);
            ``"heavy"`` the heavy operators alone (float between them).
        keep_float: this many layers stay in float on top of the rest: those whose float weights
            bring the network's raw outputs closest to FP32 on calibration images (no labels:
            :func:`sensitive_layers`), ranked on a Q/DQ proxy of the network.
        quantizer: onnxruntime: whose post-training quantizer writes the QDQ graph:
            ``"onnxruntime"`` (its static quantizer; ``calib_method`` picks the ranges) or
            ``"nncf"`` (NNCF's ONNX backend: its ranges and fast bias correction, as for openvino;
            ``preset``, ``bias_correction`` and ``ranges`` apply, ``reduce_range`` becomes NNCF's
            half-range weights, ``ops`` the operator types it may quantize).
    """

    head: str = "float"
    preset: str = "mixed"
    bias_correction: str = "fast"
    scope: str = "heavy"
    ranges: str = "mean_minmax"
    per_channel: bool = True
    activations: str = "uint8"
    reduce_range: bool | str = "auto"
    ops: str = "cpu"
    keep_float: int = 0
    quantizer: str = "onnxruntime"

    CHOICES: ClassVar[dict[str, tuple]] = {
        "head": ("float", "int8"),
        "preset": ("mixed", "performance"),
        "bias_correction": ("fast", "full", "none"),
        "scope": ("heavy", "joins", "nncf"),
        "ranges": ("mean_minmax", "minmax", "histogram"),
        "per_channel": (True, False),
        "activations": ("uint8", "int8"),
        "reduce_range": ("auto", True, False),
        "ops": ("cpu", "heavy"),
        "keep_float": tuple(range(0, 17)),
        "quantizer": ("onnxruntime", "nncf"),
    }

    def __post_init__(self) -> None:
        for f in fields(self):
            value, allowed = getattr(self, f.name), self.CHOICES[f.name]
            if not any(value == a and type(value) is type(a) for a in allowed):
                raise ExportError(f"INT8 recipe: {f.name}={value!r} is not one of {', '.join(str(a) for a in allowed)}")

    @classmethod
    def of(cls, value: Int8Recipe | dict | str | None) -> Int8Recipe:
        """A recipe from itself, a dict of fields, or ``"head=int8,bias_correction=full"`` (the CLI's
        ``--int8-recipe``); None is the default recipe."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            items = {}
            for part in filter(None, (p.strip() for p in value.split(","))):
                key, sep, text = part.partition("=")
                if not sep:
                    raise ExportError(f"INT8 recipe: {part!r} is not key=value (e.g. head=int8,bias_correction=full)")
                t = text.strip()
                items[key.strip()] = {"true": True, "false": False}.get(t.lower(), int(t) if t.isdigit() else t)
            value = items
        if not isinstance(value, dict):
            raise ExportError(f"INT8 recipe: give a dict or key=value text, not {type(value).__name__}")
        unknown = sorted(set(value) - {f.name for f in fields(cls)})
        if unknown:
            raise ExportError(
                f"INT8 recipe: unknown field(s) {', '.join(unknown)}; known: {', '.join(f.name for f in fields(cls))}"
            )
        return cls(**value)

    def record(self) -> dict:
        return asdict(self)

    def weights_reduced(self, flags: list[str] | None = None) -> bool:
        """Whether onnxruntime INT8 weights are 7-bit: ``reduce_range``, with ``"auto"`` resolved
        on this CPU (``flags`` as :func:`edgecv.cpu.isa` gives them)."""
        if self.reduce_range == "auto":
            from ..cpu import int8_dot_saturates

            return int8_dot_saturates(flags)
        return bool(self.reduce_range)


# --- the calibration cache ---------------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("EDGECV_CACHE", Path.home() / ".cache" / "edgecv")) / "quantized"


#: changes whenever the quantizers make other files from the same graph, settings and images, so
#: that no cached file of an older edgecv is reused (2: a float layer's run up to the next heavy node)
CACHE_VERSION = 2


def cache_key(graph_path: Path, calib: CalibrationSet, settings: dict) -> str:
    h = hashlib.sha256()
    h.update(f"edgecv-quantized-{CACHE_VERSION}".encode())
    h.update(hashlib.sha256(graph_path.read_bytes()).digest())
    h.update(calib.sha256.encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:32]


def _cached(key: str, files: Sequence[str], out_dir: Path) -> dict | None:
    """Copy the cached files of ``key`` into ``out_dir`` and return their record; None on a miss."""
    d = cache_root() / key
    if not (d / "record.json").is_file() or not all((d / f).is_file() for f in files):
        return None
    for f in files:
        shutil.copyfile(d / f, out_dir / f)
    return json.loads((d / "record.json").read_text())


def _store(key: str, files: Sequence[str], out_dir: Path, record: dict) -> None:
    """Keep the quantized files and their record for the next export of the same graph and calibration set."""
    d = cache_root() / key
    tmp = d.with_name(f".{key}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(out_dir / f, tmp / f)
        (tmp / "record.json").write_text(json.dumps(record))  # written last: marks a complete entry
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
        os.replace(tmp, d)
    except OSError:  # a read-only home or a full disk must not fail the export
        shutil.rmtree(tmp, ignore_errors=True)


def int8_build(
    onnx_path: Path,
    out_dir: Path,
    calib: CalibrationSet | None,
    settings: dict,
    files: Sequence[str],
    make: Callable[[tuple[str, ...]], dict],
    exclude: Sequence[str] = (),
    recipe: Int8Recipe | None = None,
) -> dict:
    """The INT8 step every target shares: with the recipe's ``head="float"`` the head's output
    layers join ``exclude``; then the quantized files come from the cache or from
    ``make(exclude)``. Returns the quantization record."""
    import onnx

    if calib is None:
        raise ExportError("an int8 export needs calibration images: --calib DIR (a folder or a data set)")
    recipe = recipe or Int8Recipe()
    head = set(output_layers(onnx.load(str(onnx_path)))) if recipe.head == "float" else set()
    excluded = tuple(sorted(set(exclude) | head))
    key = cache_key(onnx_path, calib, {**settings, "recipe": recipe.record(), "exclude": list(excluded)})
    record = _cached(key, files, out_dir)
    if record is not None:
        return {**record, "cache": "hit"}
    sensitive = sensitive_layers(onnx_path, calib, excluded, recipe.keep_float) if recipe.keep_float else []
    excluded = tuple(sorted(set(excluded) | set(sensitive)))
    record = {
        **make(excluded),
        "recipe": recipe.record(),
        "excluded_nodes": list(excluded),
        **({"kept_float_by_sensitivity": sensitive} if recipe.keep_float else {}),
    }
    _store(key, files, out_dir, record)
    return {**record, "cache": "miss"}


def _with_float_layer(model, name: str):
    """A copy of a QDQ ``model`` in which node ``name`` takes float weights (and bias): what
    keeping that layer in float at export does. None when its weights are not quantized."""
    import copy

    from onnx import numpy_helper

    m = copy.deepcopy(model)
    node = next((n for n in m.graph.node if n.name == name), None)
    if node is None:
        return None
    inits = {i.name: i for i in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    changed = False
    for k in range(1, len(node.input)):
        dq = producers.get(node.input[k])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        w = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
        zp = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float32) if len(dq.input) > 2 and dq.input[2] else 0.0
        if np.ndim(scale) == 1 and w.ndim > 1:  # per channel, along the DQ's axis
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % w.ndim
            shape = [1] * w.ndim
            shape[axis] = -1
            scale = scale.reshape(shape)
            zp = np.reshape(zp, shape) if np.ndim(zp) else zp
        t = numpy_helper.from_array(((w - zp) * scale).astype(np.float32), f"{node.input[k]}/float")
        m.graph.initializer.append(t)
        node.input[k] = t.name
        changed = True
    return m if changed else None


def layer_sensitivity(
    fp32_path: Path, quantized_path: Path, calib: CalibrationSet, samples: int = 8, level: str = "all"
) -> list[tuple[str, float]]:
    """Rank the quantized layers by how much keeping each alone in float brings the network's
    outputs back to FP32.

    ``quantized_path`` is the QDQ graph as the target builds it; it runs in onnxruntime at
    optimization ``level`` (``all``: its integer kernels, as an onnxruntime bundle runs;
    ``basic``: Q/DQ as float arithmetic, as TensorRT computes). For each layer with quantized
    weights, the graph is run with that layer's weights in float, and the error of the head's
    raw outputs (relative squared error against the FP32 graph, on ``samples`` calibration
    images) is compared with the fully quantized graph's. Largest improvement first.
    """
    import onnx
    import onnxruntime as ort

    fp32 = onnx.load(str(fp32_path))
    by_name = {n.name: n for n in fp32.graph.node}
    heads = [by_name[n].output[0] for n in output_layers(fp32)]
    quantized = onnx.load(str(quantized_path))
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}
    xs = calib.samples[:samples]

    def outputs(model) -> list[list[np.ndarray]]:
        m = onnx.ModelProto()
        m.CopyFrom(model)
        have = {o.name for o in m.graph.output}
        m.graph.output.extend(
            [onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in heads if t not in have]
        )
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[level]
        so.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        return [sess.run(heads, calib.feeds(x, names)) for x in xs]

    ref = outputs(fp32)

    def error(model) -> float:
        return float(
            np.mean(
                [
                    sum(float(((q - f) ** 2).sum()) / (float((f**2).sum()) or 1.0) for q, f in zip(qs, fs))
                    for qs, fs in zip(outputs(model), ref)
                ]
            )
        )

    base = error(quantized)
    scores = []
    for n in quantized.graph.node:
        if n.op_type in HEAVY_OPS and n.name in by_name:
            variant = _with_float_layer(quantized, n.name)
            if variant is not None:
                scores.append((n.name, base - error(variant)))
    return sorted(scores, key=lambda kv: -kv[1])


def sensitive_layers(onnx_path: Path, calib: CalibrationSet, excluded: Sequence[str], k: int) -> list[str]:
    """The ``k`` quantized layers whose float weights bring the network's raw outputs closest to
    FP32 on calibration images: no labels needed, so every INT8 export can use it.

    Ranked (:func:`layer_sensitivity`) on a Q/DQ proxy of the network
    (onnxruntime's quantizer, 64 calibration images, ``excluded`` kept in float), run as float
    arithmetic, on 4 calibration images; only layers whose float weights help are returned.
    """
    import tempfile

    subset = CalibrationSet(calib.samples[:64], f"{calib.sha256}:64", calib.source)
    probe = CalibrationSet(calib.samples[:4], f"{calib.sha256}:4", calib.source)
    with tempfile.TemporaryDirectory(prefix="edgecv-rank-") as d:
        proxy = Path(d) / "proxy.onnx"
        quantize_qdq(onnx_path, proxy, subset, exclude=excluded, ops=CPU_OPS)
        ranked = layer_sensitivity(onnx_path, proxy, probe, samples=len(probe.samples), level="basic")
    return [name for name, gain in ranked[:k] if gain > 0]


# --- onnxruntime / TensorRT-style QDQ ------------------------------------------------------------


class CountingReader:
    """onnxruntime CalibrationDataReader over a calibration set, counting the batches it serves."""

    calls = 0  # across instances: tests read it to see whether calibration ran

    def __init__(self, calib: CalibrationSet, input_names: Sequence[str]) -> None:
        self.calib, self.names, self.i = calib, list(input_names), 0
        self.end = len(calib.samples)

    def __len__(self) -> int:
        return len(self.calib.samples)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Serve samples [start, end) only: the quantizer calibrates chunk by chunk (see CHUNK)."""
        self.i, self.end = start_index, min(end_index, len(self.calib.samples))

    def get_next(self):
        if self.i >= self.end:
            return None
        CountingReader.calls += 1
        self.i += 1
        return self.calib.feeds(self.calib.samples[self.i - 1], self.names)

    def rewind(self) -> None:
        self.i = 0


#: Calibration images per pass of onnxruntime's calibrator. Its histogram calibrators
#: (percentile, entropy) keep every intermediate tensor of every image of a pass in memory
#: before binning them: about 120 MB an image for a YOLOv8n-sized model at 640, so 300 images
#: at once would need tens of GB. Passes of at most this many images are binned one after
#: another into the same histograms.
CHUNK = 16


def _chunk(n: int) -> int:
    """The largest pass size <= CHUNK that divides ``n`` (onnxruntime requires a divisor)."""
    return max(d for d in range(1, min(CHUNK, n) + 1) if n % d == 0)


def _range_fallback_collector(base: type, fallback: set[str]) -> type:
    """onnxruntime's histogram collector, made to survive a tensor whose values span too narrow
    a range for its bins (numpy: "Too many bins for data range", e.g. a constant far from 0, or
    values within a few float32 steps of each other): that tensor alone is calibrated by its
    min and max, its name added to ``fallback``; every other tensor keeps its histogram."""

    class Collector(base):
        def collect(self, name_to_arr):
            for tensor, arr in name_to_arr.items():
                if tensor not in fallback:
                    try:
                        super().collect({tensor: arr})
                        continue
                    except ValueError:
                        fallback.add(tensor)
                self._by_range(tensor, arr)

        def _by_range(self, tensor, arr) -> None:
            a = np.asarray(arr, dtype=np.float32).ravel()
            lo = np.float32(np.nanmin(a)) if a.size else np.float32(0)
            hi = np.float32(np.nanmax(a)) if a.size else np.float32(0)
            old = self.histogram_dict.get(tensor)
            if old is not None:
                lo, hi = np.float32(min(lo, old[2])), np.float32(max(hi, old[3]))
            # two bins, edges (low, high, high): the percentile search lands on low and high
            hist = np.array([1, 1], dtype=np.int64)
            if self.symmetric:  # histograms of |x|: thresholds are +-edge
                amax = np.float32(max(abs(lo), abs(hi)))
                self.histogram_dict[tensor] = (hist, np.array([0, amax, amax], np.float32), lo, hi)
            else:
                t = np.float32(max(abs(lo), abs(hi)))
                self.histogram_dict[tensor] = (hist, np.array([lo, hi, hi], np.float32), lo, hi, t)

    return Collector


@contextlib.contextmanager
def _percentile_with_fallback(fallback: set[str]):
    """Within the block, onnxruntime's percentile calibration uses :func:`_range_fallback_collector`."""
    from onnxruntime.quantization import calibrate

    original = calibrate.HistogramCollector
    calibrate.HistogramCollector = _range_fallback_collector(original, fallback)
    try:
        yield
    finally:
        calibrate.HistogramCollector = original


def quantize_qdq(
    fp32_path: Path,
    out_path: Path,
    calib: CalibrationSet,
    *,
    symmetric: bool = False,
    per_channel: bool = True,
    method: str = "percentile",
    exclude: Sequence[str] = (),
    ops: Sequence[str] = HEAVY_OPS[:3],
    reduce_range: bool = False,
    activations: str | None = None,
) -> dict:
    """Static INT8 quantization in QDQ format with onnxruntime's quantizer.

    The operator types in ``ops`` are quantized, never a post-processing node (decode, score
    activations, NMS) nor one named in ``exclude``. ``symmetric`` makes every zero point 0
    (INT8 activations), as TensorRT requires; otherwise activations are UINT8 (x86 CPUs), or
    INT8 with a zero point (S8S8) where ``activations="int8"``. Returns the settings used.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ExportError(f"unknown calibration method '{method}'; choose one of {', '.join(METHODS)}")
    pre = out_path.with_name("pre.onnx")
    try:
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    except Exception:  # the pre-processing step is an optimisation; the quantizer works without it
        shutil.copyfile(fp32_path, pre)
    model = onnx.load(str(pre))
    input_names = [i.name for i in model.graph.input]
    excluded = sorted(set(exclude))
    # by name in the pre-processed graph (its optimisation step may rename nodes)
    floats = sorted(set(excluded) | set(postprocess_nodes(model)) | set(float_runs(model, excluded)))
    signed = symmetric or activations == "int8"

    class Reader(CountingReader, CalibrationDataReader):
        pass

    settings = {
        "format": "QDQ",
        "per_channel": per_channel,
        "method": method,
        "symmetric": symmetric,
        "activations": "int8" if signed else "uint8",
        "weights": "int8",
        "ops": list(ops),
        "reduce_range": reduce_range,
        "excluded_nodes": excluded,
    }
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    fallback: set[str] = set()
    patched = _percentile_with_fallback(fallback) if method == "percentile" else contextlib.nullcontext()
    with contextlib.redirect_stdout(io.StringIO()), patched:  # the calibrators print their progress
        quantize_static(
            str(pre),
            str(out_path),
            Reader(calib, input_names),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8 if signed else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(ops),
            nodes_to_exclude=floats,
            calibrate_method=methods[method],
            reduce_range=reduce_range,
            # TensorRT takes INT8 Q/DQ only: biases stay float there (onnxruntime's CPU kernels
            # want them as INT32)
            extra_options={
                "ActivationSymmetric": symmetric,
                "WeightSymmetric": True,
                "QuantizeBias": not symmetric,
                "CalibStridedMinMax": _chunk(calib.size),
            },
        )
    pre.unlink(missing_ok=True)
    for extra in out_path.parent.glob("pre-*"):  # augmented models the calibrator leaves behind
        extra.unlink(missing_ok=True)
    if fallback:
        settings["range_fallback"] = sorted(fallback)
    return settings


def fp16_graph(fp32_path: Path, out_path: Path, keep: Sequence[str] = ()) -> dict:
    """An FP16 graph with FP32 inputs/outputs, post-processing (decode, NMS), the head's
    output layers and the nodes named in ``keep`` in FP32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    kept = sorted(set(keep))
    floats = sorted(
        set(postprocess_nodes(model)) | set(output_layers(model)) | set(kept) | set(_control_flow(model.graph))
    )
    half = convert_float_to_float16(model, keep_io_types=True, node_block_list=floats)
    _outer_reads_in_fp32(half.graph)
    _toposort(half.graph)  # the converter appends its Cast nodes at the end; parsers want order
    onnx.checker.check_model(half)
    onnx.save(half, str(out_path))
    return {"fp32_nodes": len(floats), "keep_io_types": True, "excluded_nodes": kept}


def _control_flow(graph) -> list[str]:
    """Names of If/Loop/Scan nodes, of every node in their subgraphs, and of the nodes whose
    outputs the subgraphs read from the outer scope. They stay FP32: the float16 converter
    neither follows a subgraph's outer-scope reads (an FP16 tensor meets an FP32 one inside)
    nor keeps its Casts of subgraph tensors inside the subgraph (seen on torchvision's RPN)."""
    names: list[str] = []
    outer: set[str] = set()

    def walk(g) -> None:
        local = {i.name for i in g.input} | {i.name for i in g.initializer} | {o for x in g.node for o in x.output}
        for n in g.node:
            if g is not graph:
                names.append(n.name)
                outer.update(i for i in n.input if i and i not in local)
            if n.op_type in ("If", "Loop", "Scan"):
                names.append(n.name)
                for a in n.attribute:
                    if a.type == a.GRAPH:
                        walk(a.g)

    walk(graph)
    names += [n.name for n in graph.node if outer & set(n.output)]
    return names


def _outer_reads_in_fp32(graph) -> None:
    """Point subgraph reads of outer tensors that the converter re-cast to FP16 (a Cast named
    ``<t>_cast_to_fp16_node`` after a node kept in FP32) back at the FP32 tensor."""
    from onnx import TensorProto

    recast = {
        n.output[0]: n.input[0]
        for n in graph.node
        if n.op_type == "Cast"
        and n.output
        and any(a.name == "to" and a.i == TensorProto.FLOAT16 for a in n.attribute)
        and n.input[0] == f"{n.output[0]}_cast_to_fp16"
    }

    def walk(g, top: bool) -> None:
        for n in g.node:
            if not top:
                for i, name in enumerate(n.input):
                    if name in recast:
                        n.input[i] = recast[name]
            for a in n.attribute:
                if a.type == a.GRAPH:
                    walk(a.g, False)

    walk(graph, True)


def _toposort(graph) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError("the FP16 graph has a cycle or an undefined input")
        ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ids]
        for n in ready:
            ordered.append(n)
            available.update(n.output)
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


# --- OpenVINO / NNCF -----------------------------------------------------------------------------


def quantize_openvino(
    fp32_onnx: Path, calib: CalibrationSet, ignored: Sequence[str] = (), recipe: Int8Recipe | None = None
):
    """NNCF post-training quantization of the OpenVINO model; post-processing nodes ignored,
    and the rest as ``recipe`` says (preset, bias correction, scope)."""
    import nncf
    import onnx
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    wanted = set(postprocess_nodes(onnx.load(str(fp32_onnx)))) | set(ignored)
    model = ov.convert_model(str(fp32_onnx))
    unshared = unshare_subgraph_constants(model)
    # OpenVINO splits an ONNX Conv with bias into Convolution + Add: the Add keeps the ONNX name,
    # the Convolution gets "<name>/WithoutBiases". Ignore both.
    names = sorted(
        {
            op.get_friendly_name()
            for op in model.get_ops()
            if op.get_friendly_name() in wanted or op.get_friendly_name().split("/WithoutBiases")[0] in wanted
        }
        | set(ov_postprocess_ops(model))
    )
    # As for onnxruntime, only convolutions and matrix products are quantized: every other
    # operation type is in the ignored scope, so no quantizer lands on decode or NMS tensors.
    recipe = recipe or Int8Recipe()
    heavy = set(OV_HEAVY)
    types = (
        sorted({op.get_type_name() for op in model.get_ops()} - heavy - {"Parameter", "Result", "Constant"})
        if recipe.scope == "heavy"
        else []
    )
    if recipe.scope == "joins":
        names = sorted(set(names) | set(ov_residual_adds(model)))
    inputs = [port.get_any_name() for port in model.inputs]
    q = nncf.quantize(model, **_nncf_arguments(calib, inputs, recipe, names, types))
    return q, {
        **_nncf_record(calib, recipe),
        "quantized_types": sorted(heavy) if recipe.scope == "heavy" else f"scope={recipe.scope}",
        "ignored_nodes": len(names),
        **({"unshared_constants": unshared} if unshared else {}),
    }


OV_HEAVY = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")


def ov_residual_adds(model) -> list[str]:
    """The element-wise additions of two computed tensors (residual joins), not a constant bias."""
    out = []
    for op in model.get_ops():
        if op.get_type_name() != "Add":
            continue
        kinds = [op.input_value(i).get_node().get_type_name() for i in range(op.get_input_size())]
        if "Constant" not in kinds and "Convert" not in kinds:
            out.append(op.get_friendly_name())
    return out


def _nncf_arguments(
    calib: CalibrationSet,
    inputs: Sequence[str],
    recipe: Int8Recipe,
    ignored_names: Sequence[str],
    ignored_types: Sequence[str],
    overflow_fix: bool | None = None,
) -> dict:
    """``nncf.quantize``'s arguments after the model, for either backend: the calibration set,
    the ignored scope and the recipe's preset, bias correction and ranges. ``overflow_fix``
    (True/False) sets NNCF's half-range weights on every convolution, or none; None leaves
    NNCF's own choice (the first layer, for openvino)."""
    import nncf
    from nncf.quantization.advanced_parameters import OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    advanced: dict = {}
    if recipe.bias_correction == "none":
        advanced["disable_bias_correction"] = True
    if recipe.ranges != "mean_minmax":
        advanced["activations_range_estimator_params"] = getattr(RangeEstimatorParametersSet, recipe.ranges.upper())
    if overflow_fix is not None:
        advanced["overflow_fix"] = OverflowFix.ENABLE if overflow_fix else OverflowFix.DISABLE
    return {
        "calibration_dataset": nncf.Dataset(calib.samples, lambda sample: calib.feeds(sample, inputs)),
        "subset_size": calib.size,
        "preset": nncf.QuantizationPreset.MIXED if recipe.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
        "fast_bias_correction": recipe.bias_correction != "full",
        "ignored_scope": nncf.IgnoredScope(names=list(ignored_names), types=list(ignored_types), validate=False),
        **({"advanced_parameters": nncf.AdvancedQuantizationParameters(**advanced)} if advanced else {}),
    }


def _nncf_record(calib: CalibrationSet, recipe: Int8Recipe) -> dict:
    return {
        "method": "nncf.quantize",
        "preset": recipe.preset,
        "bias_correction": recipe.bias_correction,
        "ranges": recipe.ranges,
        "subset_size": calib.size,
    }


def quantize_qdq_nncf(
    fp32_path: Path,
    out_path: Path,
    calib: CalibrationSet,
    *,
    exclude: Sequence[str] = (),
    recipe: Int8Recipe,
    reduce_range: bool,
) -> dict:
    """Static INT8 quantization in QDQ format with NNCF's ONNX backend, for onnxruntime's CPU
    kernels: the same ranges and bias correction as an openvino bundle gets. What stays float
    is what :func:`quantize_qdq` keeps float (post-processing, ``exclude`` and each excluded
    layer's run to the next heavy node); the operator types outside ``recipe.ops`` are
    ignored; ``reduce_range`` (the recipe's, resolved by the target) gives half-range weights.
    Returns the settings used."""
    import nncf
    import onnx

    nncf.set_log_level(logging.ERROR)
    model = onnx.load(str(fp32_path))
    excluded = sorted(set(exclude))
    floats = sorted(set(excluded) | set(postprocess_nodes(model)) | set(float_runs(model, excluded)))
    allowed = set(CPU_OPS if recipe.ops == "cpu" else HEAVY_OPS[:3])
    types = sorted({n.op_type for n in model.graph.node} - allowed)
    inputs = [i.name for i in model.graph.input]
    with contextlib.redirect_stdout(io.StringIO()):
        q = nncf.quantize(model, **_nncf_arguments(calib, inputs, recipe, floats, types, reduce_range))
    onnx.save(q, str(out_path))
    return {
        **_nncf_record(calib, recipe),
        "format": "QDQ",
        "quantizer": "nncf",
        "per_channel": True,
        "activations": "uint8" if recipe.preset == "mixed" else "int8",
        "weights": "int8",
        "ops": sorted(allowed),
        "reduce_range": reduce_range,
        "excluded_nodes": excluded,
    }


def ov_postprocess_ops(model) -> list[str]:
    """Friendly names of the operations of an OpenVINO model from which no convolution or matrix
    product can be reached: :func:`postprocess_nodes` on the converted graph itself. The converter
    renames some of them (a node that makes a graph output takes the output's name: ``boxes``,
    ``scores``) and adds others (``ShapeOf``, ``Gather``), which the ONNX names cannot catch."""
    ops = list(model.get_ops())
    feeds: set[str] = set()
    stack = [op for op in ops if op.get_type_name() in OV_HEAVY]
    while stack:
        op = stack.pop()
        for port in op.inputs():
            producer = port.get_source_output().get_node()
            if producer.get_friendly_name() not in feeds:
                feeds.add(producer.get_friendly_name())
                stack.append(producer)
    skip = set(OV_HEAVY) | {"Constant", "Parameter", "Result"}
    return [
        op.get_friendly_name() for op in ops if op.get_type_name() not in skip and op.get_friendly_name() not in feeds
    ]


def unshare_subgraph_constants(model) -> int:
    """Give every If body its own copies of the Constants it shares with the enclosing graph;
    return how many inputs were re-pointed.

    OpenVINO's ONNX frontend can give nodes inside and outside an If body one shared Constant
    (torchvision's scripted ``batched_nms`` in the R-CNNs' RPN exports to an If). NNCF builds
    one graph per body and looks up every consumer of a node by name in that graph, so a
    consumer in another body stops it: "InternalError: Could not find a node Gather_1173 in
    NNCFGraph!". With private copies each graph is closed, and NNCF quantizes the main graph and
    the bodies as it does for any model with an If.
    """
    from openvino import op

    count = 0

    def walk(graph) -> None:
        nonlocal count
        names = {n.get_friendly_name() for n in graph.get_ops()}
        for node in graph.get_ops():
            if node.get_type_name() == "Constant":
                for out in node.outputs():
                    for inp in list(out.get_target_inputs()):
                        consumer = inp.get_node().get_friendly_name()
                        if consumer not in names:
                            copy = op.Constant(node.get_tensor_view(), shared_memory=False)
                            copy.set_friendly_name(f"{node.get_friendly_name()}/for/{consumer}/{inp.get_index()}")
                            inp.replace_source_output(copy.output(0))
                            count += 1
            elif node.get_type_name() == "If":
                walk(node.get_function(0))
                walk(node.get_function(1))

    walk(model)
    return count
