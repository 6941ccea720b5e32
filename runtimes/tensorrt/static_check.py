"""The static TensorRT check: what TensorRT's ONNX parser and builder would refuse in a
graph, found on any machine, without TensorRT or a GPU.

Checked against the operator tables of :mod:`.operators` for TensorRT 10.3
(JetPack 6), 10.15 and 11.x (the 10.15 operators, 11.x's opset range): operators and
their documented restrictions (attributes, constant inputs), input types, the opset, Q/DQ
zero points and types, UINT8 and DOUBLE tensors, INT64 weights, dynamic input dimensions
without an optimization profile, and outputs whose size is not fixed. Every finding names
its node.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...bundle import Bundle
from ...errors import EdgecvError
from . import operators, plans

#: version label -> (operator table, opset range, what it stands for)
VERSIONS: dict[str, tuple[str, tuple[int, int], str]] = {
    "10.3": ("10.3", operators.OPSETS["10.3"], "JetPack 6"),
    "10.15": ("10.15", operators.OPSETS["10.15"], "current 10.x"),
    "11.x": ("10.15", (9, 25), "11.x: 10.15's operator table (no 11.x table was available), opsets to 25"),
}
SEVERITIES = ("error", "warning", "info")
_TYPE_NAMES = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    9: "BOOL",
    10: "FP16",
    11: "DOUBLE",
    16: "BF16",
    17: "FP8",
    18: "FP8",
    19: "FP8",
    20: "FP8",
    21: "UINT4",
    22: "INT4",
    23: "FP4",
    12: "UINT32",
    13: "UINT64",
    4: "UINT16",
    8: "STRING",
}
_RESIZE = {
    "coordinate_transformation_mode": (
        "half_pixel",
        {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"},
    ),
    "mode": ("nearest", {"nearest", "linear"}),
    "nearest_mode": ("round_prefer_floor", {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}),
    "keep_aspect_ratio_policy": ("stretch", {"stretch"}),
}
_INT32 = (-(1 << 31), (1 << 31) - 1)


@dataclass
class Finding:
    severity: str  # error | warning | info
    rule: str
    message: str
    node: str = ""
    op: str = ""
    versions: list[str] = field(default_factory=list)


@dataclass
class Report:
    """The findings for one graph."""

    path: str
    opset: int
    nodes: int
    versions: list[str]
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def findings_of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "opset": self.opset,
            "nodes": self.nodes,
            "versions": self.versions,
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "infos": self.count("info"),
            "findings": [asdict(f) for f in self.findings],
        }

    def summary(self) -> str:
        return (
            f"{self.count('error')} error(s), {self.count('warning')} warning(s), {self.count('info')} note(s) "
            f"for TensorRT {', '.join(self.versions)}"
        )

    def table(self) -> str:
        """The findings as a text table, errors first."""
        head = f"TensorRT static check of {self.path} (opset {self.opset}, {self.nodes} nodes) against " + ", ".join(
            f"{v} ({VERSIONS[v][2]})" for v in self.versions
        )
        if not self.findings:
            return f"{head}\nno findings: TensorRT's parser should take this graph\n{self.summary()}"
        rows = [("severity", "rule", "versions", "op", "node", "message")]
        order = {s: i for i, s in enumerate(SEVERITIES)}
        for f in sorted(self.findings, key=lambda f: (order[f.severity], f.rule, f.node)):
            vs = "all" if f.versions == self.versions else ",".join(f.versions)
            rows.append((f.severity, f.rule, vs, f.op or "-", f.node or "-", f.message))
        widths = [min(max(len(r[i]) for r in rows), 48) for i in range(5)]
        lines = ["  ".join(c[:48].ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
        return "\n".join([head, *lines, self.summary()])


# --- helpers --------------------------------------------------------------------------------------


class _Graph:
    def __init__(self, model: Any) -> None:
        import onnx
        from onnx import numpy_helper

        self.model = model
        g = model.graph
        self.init = {t.name: t for t in g.initializer}
        self.consts = {n.output[0]: n for n in g.node if n.op_type == "Constant" and n.output}
        self.types: dict[str, int] = {}
        for vi in [*g.input, *g.output, *g.value_info]:
            if vi.type.tensor_type.elem_type:
                self.types[vi.name] = vi.type.tensor_type.elem_type
        for t in g.initializer:
            self.types[t.name] = t.data_type
        self._np = numpy_helper
        self._onnx = onnx

    def is_const(self, name: str) -> bool:
        return name in self.init or name in self.consts

    def value(self, name: str) -> Any:
        if name in self.init:
            return self._np.to_array(self.init[name])
        node = self.consts.get(name)
        if node is not None:
            for a in node.attribute:
                if a.name == "value":
                    return self._np.to_array(a.t)
        return None


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _input(node: Any, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


def load_model(path: str | Path) -> Any:
    try:
        import onnx
    except ImportError:
        raise EdgecvError("the TensorRT check reads ONNX graphs with the onnx package: pip install onnx") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as e:  # a file that is not an ONNX graph
        raise EdgecvError(f"'{path}' is not a readable ONNX graph: {e}") from None


# --- the rules ------------------------------------------------------------------------------------


def _node_rules(node: Any, g: _Graph, table: dict, label: str) -> Iterable[Finding]:
    op, name = node.op_type, node.name or (node.output[0] if node.output else "")
    entry = table.get(op)
    restr = entry["restrictions"] if entry else ""

    def F(sev: str, rule: str, msg: str) -> Finding:
        return Finding(sev, rule, msg, name, op, [label])

    if node.domain not in ("", "ai.onnx"):
        yield F(
            "error",
            "custom-op",
            f"custom operator of domain '{node.domain}': TensorRT needs a plugin for it, and "
            "edgecv ships none (11.x removed the old nms/proposal plugins)",
        )
        return
    if entry is None:
        listed = op in operators.UNSUPPORTED[VERSIONS[label][0]]
        yield F(
            "error",
            "unsupported-op",
            f"{op} is {'marked unsupported' if listed else 'not listed'} in TensorRT's ONNX operator table",
        )
        return
    # the data input's type against the table's Supported Types
    data = _input(node, 1 if op == "Where" else 0)
    t = _TYPE_NAMES.get(g.types.get(data, 0))
    if (
        t
        and t not in ("DOUBLE", "UINT8")
        and t not in {s.strip() for s in entry["types"].replace("INF64", "INT64").split(",")}
    ):
        yield F("warning", "input-type", f"input {data!r} is {t}; TensorRT lists {op} for {entry['types']}")
    if op == "TopK":
        if _attr(node, "sorted", 1) != 1:
            yield F("error", "topk-sorted", "TopK must have sorted=1")
        k = g.value(_input(node, 1))
        if k is None:
            yield F("warning", "topk-k", "K is computed at run time; TensorRT needs K < 3840")
        elif int(k.reshape(-1)[0]) >= 3840:
            yield F("error", "topk-k", f"K = {int(k.reshape(-1)[0])}; TensorRT needs K < 3840")
    elif op == "Resize":
        for a, (default, allowed) in _RESIZE.items():
            v = _attr(node, a, default)
            if v not in allowed:
                yield F("error", "resize-mode", f"{a}={v!r} is not supported (TensorRT takes {sorted(allowed)})")
        if _attr(node, "antialias", 0):
            yield F("error", "resize-mode", "antialiasing is not supported")
    elif op in ("QuantizeLinear", "DequantizeLinear"):
        zp = _input(node, 2)
        if zp:
            zt = _TYPE_NAMES.get(g.types.get(zp, 0))
            if zt in ("UINT8", "UINT16", "INT16"):
                yield F(
                    "error",
                    "qdq-type",
                    f"zero point {zp!r} is {zt}: TensorRT quantizes to INT8/FP8/INT4 "
                    "(export for tensorrt, which writes symmetric INT8 Q/DQ)",
                )
            val = g.value(zp)
            if val is None:
                yield F(
                    "error", "qdq-zero-point", f"zero point {zp!r} is computed at run time; TensorRT needs a constant 0"
                )
            elif (val != 0).any():
                yield F(
                    "error",
                    "qdq-zero-point",
                    f"zero point {zp!r} is not 0 ({val.reshape(-1)[:4].tolist()}…): "
                    "TensorRT takes symmetric quantization only",
                )
        scale = _input(node, 1)
        if scale and not g.is_const(scale):
            yield F(
                "warning", "qdq-scale", f"scale {scale!r} is computed at run time; TensorRT expects constant scales"
            )
    elif op.startswith("Reduce") and "axes" in restr:
        axes = _input(node, 1)
        if axes and not g.is_const(axes):
            yield F("error", "constant-input", f"axes {axes!r} must be an initializer")
    elif op in ("Squeeze", "Unsqueeze") and "axes" in restr:
        axes = _input(node, 1)
        if axes and not g.is_const(axes):
            yield F("error", "constant-input", f"axes {axes!r} must be resolvable to a constant")
    elif op == "Pad" and "axes" in restr:
        axes = _input(node, 3)
        if axes and not g.is_const(axes):
            yield F("error", "constant-input", f"axes {axes!r} must be an initializer")
    elif op == "MaxPool":
        if len(node.output) > 1 and node.output[1]:
            yield F("error", "maxpool", "the Indices output is not supported")
        if any(d != 1 for d in _attr(node, "dilations", [])):
            yield F("error", "maxpool", "dilations must be all ones")
        if len(_attr(node, "kernel_shape", [0, 0])) not in (2, 3):
            yield F("error", "maxpool", "only 2D or 3D pooling is supported")
    elif op == "If":
        then_g, else_g = _attr(node, "then_branch", None), _attr(node, "else_branch", None)
        if then_g is not None and else_g is not None:
            shared = {o.name for o in then_g.output} & {o.name for o in else_g.output}
            if shared:
                yield F(
                    "error",
                    "if-branches",
                    f"both branches name outputs {sorted(shared)}: TensorRT needs different names",
                )
            for a, b in zip(then_g.output, else_g.output):
                ra, rb = (
                    len(x.type.tensor_type.shape.dim) if x.type.tensor_type.HasField("shape") else None for x in (a, b)
                )
                if ra is not None and rb is not None and ra != rb:
                    yield F(
                        "error",
                        "if-branches",
                        f"branch outputs {a.name} and {b.name} have ranks {ra} and {rb}: TensorRT needs the same rank",
                    )
    elif op == "ScatterND" and _attr(node, "reduction", "none") != "none":
        yield F("error", "scatter-reduction", "ScatterND with a reduction is not supported")
    elif restr:
        yield F("info", "restriction", "restriction not checked automatically: " + restr.replace("<br />", " "))


def _io_rules(g: _Graph, profile: dict | None) -> Iterable[Finding]:
    graph = g.model.graph
    inputs = [i for i in graph.input if i.name not in g.init]
    dynamic_batch = False
    for inp in inputs:
        dims = inp.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims]
        prof = (profile or {}).get(inp.name)
        if -1 in shape:
            dynamic_batch = dynamic_batch or shape[0] == -1
            if prof is None:
                axes = [i for i, d in enumerate(shape) if d < 0]
                sev = "warning" if axes == [0] and profile is None else "error"
                yield Finding(
                    sev,
                    "dynamic-shape",
                    f"input {inp.name} {shape} has dynamic dimensions {axes} and no "
                    "optimization profile"
                    + (" (edgecv build makes one from a bundle's settings)" if sev == "warning" else ""),
                    inp.name,
                    "input",
                )
                continue
        if prof is not None:
            lo, _, hi = prof
            if len(lo) != len(shape) or any(d > 0 and (lo[i] != d or hi[i] != d) for i, d in enumerate(shape)):
                yield Finding(
                    "error",
                    "profile",
                    f"the profile {list(lo)}..{list(hi)} does not fit input {inp.name} {shape}",
                    inp.name,
                    "input",
                )
        t = _TYPE_NAMES.get(inp.type.tensor_type.elem_type)
        if t not in ("FP32", "FP16", "BF16", "INT32", "INT64", "INT8", "UINT8", "BOOL"):
            yield Finding(
                "error", "io-type", f"input {inp.name} is {t}, which TensorRT does not take", inp.name, "input"
            )
    for out in graph.output:
        dims = out.type.tensor_type.shape.dim
        unknown = [
            i
            for i, d in enumerate(dims)
            if not (d.HasField("dim_value") and d.dim_value > 0) and not (i == 0 and dynamic_batch)
        ]
        if unknown or not dims:
            yield Finding(
                "error",
                "output-shape",
                f"output {out.name} has data-dependent or unknown dimensions "
                f"{unknown or 'all'}: edgecv's TensorRT runtime needs fixed-size outputs (export with "
                "in-graph fixed-size NMS)",
                out.name,
                "output",
            )


def _tensor_rules(g: _Graph) -> Iterable[Finding]:
    graph = g.model.graph
    io = {i.name for i in graph.input} | {o.name for o in graph.output}
    slice_bounds = {n.input[i] for n in graph.node if n.op_type == "Slice" for i in (1, 2) if len(n.input) > i}
    for name, t in g.types.items():
        tn = _TYPE_NAMES.get(t)
        if tn == "DOUBLE":
            yield Finding(
                "warning", "double", f"{name} is DOUBLE: TensorRT casts it to FLOAT, clamping to ±FLT_MAX", name
            )
        elif tn == "UINT8":
            consumers = [n for n in graph.node if name in n.input]
            if name in g.init or (
                name not in io and not any(n.op_type == "Cast" for n in graph.node if name in n.output)
            ):
                yield Finding(
                    "error",
                    "uint8",
                    f"{name} is UINT8 inside the graph: TensorRT takes UINT8 only as a network input or output",
                    name,
                )
            elif any(n.op_type != "Cast" for n in consumers):
                ops = sorted({n.op_type for n in consumers if n.op_type != "Cast"})
                yield Finding(
                    "error",
                    "uint8",
                    f"UINT8 tensor {name} feeds {', '.join(ops)}: TensorRT converts UINT8 "
                    "with a Cast only (cast it to float first)",
                    name,
                )
    n64, big = 0, []
    for name, t in g.init.items():
        if t.data_type == 7:
            n64 += 1
            if name in slice_bounds:
                continue  # INT64 max as a slice end is the usual "to the end"
            v = g.value(name)
            if v is not None and v.size and (v.min() < _INT32[0] or v.max() > _INT32[1]):
                big.append(name)
    for name in big:
        yield Finding(
            "warning",
            "int64",
            f"INT64 weight {name} holds values outside the INT32 range; TensorRT layers "
            "that compute in INT32 would overflow",
            name,
        )
    if n64:
        yield Finding(
            "info", "int64", f"{n64} INT64 initializers (shape arithmetic); TensorRT 10+ takes INT64 natively"
        )


def check(
    model: str | Path | Any, profile: dict | None = None, versions: Iterable[str] | None = None, path: str | None = None
) -> Report:
    """Check an ONNX graph (a path or a loaded ``ModelProto``) for TensorRT.

    Args:
        profile: input name -> (min, opt, max) shapes, as :func:`.plans.profile` gives
            for a bundle; None for a bare graph.
        versions: labels of :data:`VERSIONS` (default: all).
    """
    labels = list(versions or VERSIONS)
    bad = [v for v in labels if v not in VERSIONS]
    if bad:
        raise EdgecvError(f"unknown TensorRT version {bad}; the check knows {list(VERSIONS)}")
    if isinstance(model, (str, Path)):
        path = path or str(model)
        model = load_model(model)
    g = _Graph(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    merged: dict[tuple, Finding] = {}

    def add(f: Finding) -> None:
        key = (f.severity, f.rule, f.node, f.op, f.message)
        if key in merged:
            merged[key].versions.extend(v for v in f.versions if v not in merged[key].versions)
        else:
            merged[key] = f

    for label in labels:
        table_key, (lo, hi), _ = VERSIONS[label]
        if not lo <= opset <= hi:
            add(Finding("error", "opset", f"opset {opset} is outside TensorRT {label}'s {lo}..{hi}", versions=[label]))
        table = operators.SUPPORTED[table_key]
        for node in model.graph.node:
            for f in _node_rules(node, g, table, label):
                add(f)
    for f in [*_io_rules(g, profile), *_tensor_rules(g)]:
        f.versions = list(labels)
        add(f)
    return Report(path or "<model>", opset, len(model.graph.node), labels, list(merged.values()))


def check_bundle(bundle_path: str | Path, versions: Iterable[str] | None = None) -> Report:
    """Check the ONNX graph of a bundle with the optimization profile its build settings give."""
    b = Bundle.open(bundle_path)
    model = b.file("model")
    if model.suffix != ".onnx":
        raise EdgecvError(
            f"'{bundle_path}' holds no ONNX graph (its target is {b.target}): export it with --target tensorrt"
        )
    prof = plans.profile(b.manifest, plans.settings_of(b.manifest))
    return check(model, prof, versions, path=str(model))


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)
