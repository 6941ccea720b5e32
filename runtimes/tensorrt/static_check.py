"""The static TensorRT check: what TensorRT's ONNX parser and builder would refuse in a
graph, found on any machine, without TensorRT or a GPU.

Checked against the operator tables of :mod:`.operators` for TensorRT 10.3 (JetPack 6) and
10.15 (the parser's own matrices) and 11.0, 11.2 and 11.5 (derived from the 11.x release
notes): operators and their documented restrictions (attributes, constant inputs), the rules
each version's parser applies beyond its table (ScatterND's reduction, CumSum's axis), input
types the parser refuses, Cast targets, Q/DQ types and zero points, the opset, UINT8 and DOUBLE
tensors, INT64 weights, dynamic input dimensions without an optimization profile, outputs
whose size is not fixed, and the operators TensorRT builds from a plugin. The bodies of If,
Loop and Scan nodes are checked as the parser imports them, each with its own initializers
and value types and the names it reads from the graphs around it. Every finding names its
node, inside a body by its path: ``If_12/else_branch/Unique_3``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...bundle import Bundle
from ...console import count
from ...errors import EdgecvError
from . import operators, plans

#: version label -> (operator table, opset range, the releases it stands for)
VERSIONS: dict[str, tuple[str, tuple[int, int], str]] = {
    label: (label, operators.OPSETS[label], operators.COVERS[label])
    for label in ("10.3", "10.15", "11.0", "11.2", "11.5")
}
#: names ``versions`` also takes, for several labels
ALIASES = {"10.x": ("10.3", "10.15"), "11.x": ("11.0", "11.2", "11.5")}
SEVERITIES = ("error", "warning", "info")
_TYPE_NAMES = operators.TYPE_NAMES
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
class Plugin:
    """An operator TensorRT builds from a plugin of NVIDIA's plugin library (libnvinfer_plugin)."""

    op: str
    name: str  # the plugin's name in TensorRT's plugin registry
    version: str | None  # its version there (None: not given by the source)
    nodes: list[str]
    versions: list[str]  # the TensorRT versions that build ``op`` from it


@dataclass
class Report:
    """The findings for one graph."""

    path: str
    opset: int
    nodes: int  # in the main graph
    versions: list[str]
    findings: list[Finding]
    subgraphs: int = 0  # If/Loop/Scan bodies checked
    subgraph_nodes: int = 0  # nodes in them
    plugins: list[Plugin] = field(default_factory=list)

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
            "subgraphs": self.subgraphs,
            "subgraph_nodes": self.subgraph_nodes,
            "versions": self.versions,
            "tables": {v: operators.AUTHORITY[VERSIONS[v][0]] for v in self.versions},
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "infos": self.count("info"),
            "plugins": [asdict(p) for p in self.plugins],
            "findings": [asdict(f) for f in self.findings],
        }

    def plugin_entries(self) -> list[dict]:
        """The plugins the graph needs, as a manifest records them: ``{"name", "version", "ops"}``
        (version None where the source does not give it)."""
        out: dict[tuple[str, str | None], dict] = {}
        for p in self.plugins:
            e = out.setdefault((p.name, p.version), {"name": p.name, "version": p.version, "ops": []})
            if p.op not in e["ops"]:
                e["ops"].append(p.op)
        return list(out.values())

    def summary(self) -> str:
        return (
            f"{self.count('error')} error(s), {self.count('warning')} warning(s), {self.count('info')} note(s) "
            f"for TensorRT {', '.join(self.versions)}"
        )

    def table(self) -> str:
        """The findings as a text table, errors first."""
        body = (
            f", {count(self.subgraphs, 'If/Loop/Scan body')} with {count(self.subgraph_nodes, 'node')}"
            if self.subgraphs
            else ""
        )
        head = (
            f"TensorRT static check of {self.path} (opset {self.opset}, {count(self.nodes, 'node')}{body}) against "
            + ", ".join(describe_version(v) for v in self.versions)
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


def describe_version(label: str) -> str:
    """``label`` with the releases it stands for, and "derived" where its table is not the parser's own."""
    table, _, covers = VERSIONS[label]
    what = [] if covers == label else [covers]
    if operators.AUTHORITY[table] == "derived":
        what.append("derived")
    return f"{label} ({', '.join(what)})" if what else label


def resolve_versions(versions: Iterable[str] | None) -> list[str]:
    """Labels of :data:`VERSIONS` from labels and :data:`ALIASES` (default: all), in table order."""
    if versions is None:
        return list(VERSIONS)
    wanted: set[str] = set()
    bad = []
    for v in versions:
        v = v.strip()
        if v in VERSIONS:
            wanted.add(v)
        elif v in ALIASES:
            wanted.update(ALIASES[v])
        else:
            bad.append(v)
    if bad or not wanted:
        raise EdgecvError(
            f"unknown TensorRT version {bad}; the check knows {list(VERSIONS)} (and {', '.join(ALIASES)}): "
            "`edgecv doctor --versions` lists them"
        )
    return [v for v in VERSIONS if v in wanted]


def versions_table() -> str:
    """Which TensorRT versions the check knows, the releases each stands for, its opsets and
    where its table comes from (``edgecv doctor --versions``)."""
    rows = [("version", "stands for", "opsets", "table", "from")]
    for label, (table, (lo, hi), covers) in VERSIONS.items():
        rows.append((label, covers, f"{lo}..{hi}", operators.AUTHORITY[table], operators.ORIGIN[table]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    return "\n".join(
        [
            *lines,
            "authoritative: the ONNX parser's own operator matrix (onnx-tensorrt docs/operators.md), with the rules "
            "its importer code applies; derived: no matrix is published for 11.x, so the table is 10.15's with the "
            "changes the 11.x release notes list. docs/operators.md has the sources.",
            "aliases: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in ALIASES.items()),
        ]
    )


# --- graphs and their bodies ----------------------------------------------------------------------


class _Scope:
    """The names of one graph: the main graph or the body of an If, Loop or Scan node, with the
    scope around it (a body reads names of the graphs around it, "outer-scope" values)."""

    def __init__(self, graph: Any, parent: _Scope | None = None, prefix: str = "") -> None:
        from onnx import numpy_helper

        self.graph, self.parent = graph, parent
        self.prefix = prefix  # the path of a body: "If_12/else_branch/"
        self.init = {t.name: t for t in graph.initializer}
        self.consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}
        self.producer = {o: n for n in graph.node for o in n.output if o}
        self.inputs = {i.name for i in graph.input if i.name not in self.init}
        self.types: dict[str, int] = {}
        for vi in [*graph.input, *graph.output, *graph.value_info]:
            if vi.type.tensor_type.elem_type:
                self.types[vi.name] = vi.type.tensor_type.elem_type
        for t in graph.initializer:
            self.types[t.name] = t.data_type
        self.shapes = {
            vi.name: len(vi.type.tensor_type.shape.dim)
            for vi in [*graph.input, *graph.output, *graph.value_info]
            if vi.type.tensor_type.HasField("shape")
        }
        self._np = numpy_helper

    def owner(self, name: str) -> _Scope | None:
        """The scope that defines ``name`` (the innermost one: a body's own names hide outer ones)."""
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.init or name in scope.producer or name in scope.inputs:
                return scope
            scope = scope.parent
        return None

    def type(self, name: str) -> int:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.types:
                return scope.types[name]
            scope = scope.parent
        return 0

    def rank(self, name: str) -> int | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.shapes:
                return scope.shapes[name]
            scope = scope.parent
        return None

    def is_const(self, name: str) -> bool:
        """An initializer or a Constant node's output: what TensorRT's parser takes as weights."""
        s = self.owner(name)
        return s is not None and (name in s.init or name in s.consts)

    def value(self, name: str) -> Any:
        s = self.owner(name)
        if s is None:
            return None
        if name in s.init:
            return s._np.to_array(s.init[name])
        node = s.consts.get(name)
        if node is not None:
            for a in node.attribute:
                if a.name == "value":
                    return s._np.to_array(a.t)
                if a.name in ("value_int", "value_ints", "value_float", "value_floats"):
                    import numpy as np

                    return np.asarray(_attr(node, a.name, None))
        return None

    def runtime_source(self, name: str, seen: set[str] | None = None) -> str | None:
        """The input (of the network or of a body) whose values ``name`` is computed from, or
        None when it depends on constants and shapes only (it may fold when TensorRT builds)."""
        seen = seen if seen is not None else set()
        if name in seen:
            return None
        seen.add(name)
        s = self.owner(name)
        if s is None or name in s.init:
            return None
        if name in s.inputs:
            return name
        node = s.producer[name]
        if node.op_type in ("Constant", "Shape", "Size"):
            return None  # a Shape reads a tensor's dimensions, not its values
        for i in node.input:
            if i:
                src = s.runtime_source(i, seen)
                if src is not None:
                    return src
        return None


def _walk(scope: _Scope, bodies: list[_Scope] | None = None) -> Iterator[tuple[Any, _Scope, str]]:
    """(node, its scope, its name with the path of the bodies it is in) of every node, bodies
    included; the scope of each body is appended to ``bodies``."""
    from onnx import AttributeProto

    for node in scope.graph.node:
        name = scope.prefix + (node.name or (node.output[0] if node.output else node.op_type))
        yield node, scope, name
        for a in node.attribute:
            for body in [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs):
                inner = _Scope(body, scope, f"{name}/{a.name}/")
                if bodies is not None:
                    bodies.append(inner)
                yield from _walk(inner, bodies)


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _has_attr(node: Any, name: str) -> bool:
    return any(a.name == name for a in node.attribute)


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


def _inferred(model: Any) -> Any:
    """``model`` with the types and shapes ONNX infers (of body values too), where it can."""
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # a graph ONNX cannot infer is checked with the types it carries
        return model


# --- the rules ------------------------------------------------------------------------------------


def _types(text: str) -> set[str]:
    return {s.strip() for s in text.replace("INF64", "INT64").split(",")}


def _parser(label: str) -> str:
    """The parser whose importer rules a label follows: 10.3's, or 10.15's (11.x builds on it)."""
    return "10.3" if label == "10.3" else "10.15"


def _node_rules(node: Any, g: _Scope, name: str, table: dict, label: str) -> Iterable[Finding]:
    op = node.op_type
    entry = table.get(op)
    restr = entry["restrictions"] if entry else ""
    parser = _parser(label)

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
    qdq = op in ("QuantizeLinear", "DequantizeLinear")
    # input types: what the parser refuses is an error; what its table does not list, a warning
    data = _input(node, 1 if op == "Where" else 0)
    for i, refused in operators.PARSER_REFUSES.get(op, {}).items():
        t = _TYPE_NAMES.get(g.type(_input(node, i)))
        if t in refused:
            takes = [x for x in entry["types"].split(", ") if x not in refused]
            yield F(
                "error",
                "input-type",
                f"input {_input(node, i)!r} is {t}: TensorRT's ONNX parser refuses {op} on {t} ('Found unsupported "
                f"input type of {t}'); cast it to {', '.join(takes)} first",
            )
            data = ""  # said once
    t = _TYPE_NAMES.get(g.type(data))
    if not qdq and t and t not in ("DOUBLE", "UINT8") and t not in _types(entry["types"]):
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
    elif qdq:
        yield from (F(*x) for x in _qdq_rules(node, g, entry, parser))
    elif op in ("Cast", "CastLike"):
        to = _attr(node, "to", 0) if op == "Cast" else g.type(_input(node, 1))
        yield from (F(*x) for x in _cast_rules(to, entry, parser))
    elif op == "CumSum":
        yield from (F(*x) for x in _cumsum_rules(_input(node, 1), g, label))
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
    elif op == "GridSample":
        rank, ranks = g.rank(_input(node, 0)), operators.GRIDSAMPLE_RANKS[VERSIONS[label][0]]
        if rank is not None and rank not in ranks:
            yield F(
                "error",
                "gridsample-rank",
                f"input {_input(node, 0)!r} is {rank}-D: TensorRT samples 4-D inputs, and 5-D from 11.2 on",
            )
    elif op == "Constant":
        bad = [a.name for a in node.attribute if a.name in ("sparse_value", "value_string", "value_strings")]
        if bad:
            yield F("error", "constant", f"a Constant with {bad[0]} is not supported (TensorRT takes dense numbers)")
    elif op == "If":
        yield from (F(*x) for x in _if_rules(node))
    elif op == "ScatterND":
        yield from (F(*x) for x in _scatternd_rules(node, label))
    elif restr:
        yield F("info", "restriction", "restriction not checked automatically: " + restr.replace("<br />", " "))


def _qdq_rules(node: Any, g: _Scope, entry: dict, parser: str) -> Iterator[tuple[str, str, str]]:
    """Q/DQ: the types TensorRT quantizes to and from, a zero point of 0, constant scales."""
    quantized = [t for t in operators.QUANTIZED_TYPES if t in operators.PARSER_TYPES[parser]]
    x = _input(node, 0)
    xt = _TYPE_NAMES.get(g.type(x))
    if node.op_type == "DequantizeLinear" and xt and xt not in _types(entry["types"]):
        yield (
            "error",
            "qdq-type",
            f"DequantizeLinear of {xt} {x!r}: TensorRT dequantizes {entry['types']} only (a quantized type "
            "made by QuantizeLinear); quantize the tensor to INT8 (export for tensorrt --precision int8 writes "
            "symmetric INT8 Q/DQ)",
        )
    if node.op_type == "QuantizeLinear" and xt and xt not in _types(entry["types"]):
        yield ("error", "qdq-type", f"QuantizeLinear of {xt} {x!r}: TensorRT quantizes {entry['types']} only")
    zp = _input(node, 2)
    if zp:
        zt = _TYPE_NAMES.get(g.type(zp))
        if zt and zt not in quantized:
            yield (
                "error",
                "qdq-type",
                f"zero point {zp!r} is {zt}: TensorRT quantizes to {'/'.join(quantized)} "
                "(export for tensorrt, which writes symmetric INT8 Q/DQ)",
            )
        val = g.value(zp)
        if val is None:
            yield ("error", "qdq-zero-point", f"zero point {zp!r} is computed at run time; TensorRT needs a constant 0")
        elif (val != 0).any():
            yield (
                "error",
                "qdq-zero-point",
                f"zero point {zp!r} is not 0 ({val.reshape(-1)[:4].tolist()}…): "
                "TensorRT takes symmetric quantization only",
            )
    elif node.op_type == "QuantizeLinear" and _has_attr(node, "output_dtype"):
        ot = _TYPE_NAMES.get(_attr(node, "output_dtype", 0), "?")
        if ot not in quantized:
            yield ("error", "qdq-type", f"output_dtype {ot}: TensorRT quantizes to {'/'.join(quantized)}")
    scale = _input(node, 1)
    if scale and not g.is_const(scale):
        yield ("warning", "qdq-scale", f"scale {scale!r} is computed at run time; TensorRT expects constant scales")


def _cast_rules(to: int, entry: dict, parser: str) -> Iterator[tuple[str, str, str]]:
    """The target type of a Cast: one the parser converts, and not a quantized type."""
    t = _TYPE_NAMES.get(to)
    if not t:
        return
    if t not in operators.PARSER_TYPES[parser]:
        yield (
            "error",
            "cast-type",
            f"Cast to {t}: TensorRT's ONNX parser has no {t} type ('Unsupported cast!'); cast to one of "
            f"{entry['types']}",
        )
    elif t in operators.QUANTIZED_TYPES:
        yield (
            "error",
            "cast-type",
            f"Cast to {t}: TensorRT's ONNX operator table lists Cast for {entry['types']}, and {t} is one of its "
            "quantized types, made only by QuantizeLinear from a float: use a QuantizeLinear/DequantizeLinear "
            "pair (export for tensorrt --precision int8 writes them)",
        )


def _cumsum_rules(axis: str, g: _Scope, label: str) -> Iterator[tuple[str, str, str]]:
    """CumSum's axis: an initializer on 10.3 (its importer asserts it), a build-time constant after."""
    if not axis or g.is_const(axis):
        return
    source = g.runtime_source(axis)
    if label == "10.3":
        yield (
            "error",
            "constant-input",
            f"axis {axis!r} must be an initializer: TensorRT 10.3's parser refuses any other ('Axis input for "
            "CumSum must be an initializer!'); make it one (fold the graph's constants, e.g. with onnxslim)",
        )
    elif source is not None:
        what = "an input of the graph" if source == axis else f"computed from the graph input {source!r}"
        yield (
            "error",
            "constant-input",
            f"axis {axis!r} is {what}, known only at run time: TensorRT needs a build-time constant axis "
            "(make it an initializer)",
        )
    else:
        yield (
            "warning",
            "constant-input",
            f"axis {axis!r} is computed in the graph: TensorRT needs it to fold to a build-time constant "
            "(make it an initializer to be sure)",
        )


def _scatternd_rules(node: Any, label: str) -> Iterator[tuple[str, str, str]]:
    if not _has_attr(node, "reduction"):
        return
    reduction = _attr(node, "reduction", "none")
    if label == "10.3":
        yield (
            "error",
            "scatter-reduction",
            f"ScatterND has a reduction attribute ({reduction!r}): TensorRT 10.3's parser refuses the attribute "
            "whatever its value ('Attribute reduction is not supported.'); remove it",
        )
    elif reduction != "none":
        yield (
            "error",
            "scatter-reduction",
            f"ScatterND with reduction={reduction!r} is not supported (TensorRT takes reduction 'none' only)",
        )


def _if_rules(node: Any) -> Iterator[tuple[str, str, str]]:
    then_g, else_g = _attr(node, "then_branch", None), _attr(node, "else_branch", None)
    if then_g is None or else_g is None:
        return
    shared = {o.name for o in then_g.output} & {o.name for o in else_g.output}
    if shared:
        yield ("error", "if-branches", f"both branches name outputs {sorted(shared)}: TensorRT needs different names")
    for a, b in zip(then_g.output, else_g.output):
        ra, rb = (len(x.type.tensor_type.shape.dim) if x.type.tensor_type.HasField("shape") else None for x in (a, b))
        if ra is not None and rb is not None and ra != rb:
            yield (
                "error",
                "if-branches",
                f"branch outputs {a.name} and {b.name} have ranks {ra} and {rb}: TensorRT needs the same rank",
            )


def _plugin_of(node: Any, label: str) -> tuple[str, str | None] | None:
    """The plugin TensorRT ``label`` builds ``node`` from, if any (:data:`.operators.PLUGINS`)."""
    if node.domain not in ("", "ai.onnx"):
        return None
    hit = operators.PLUGINS[VERSIONS[label][0]].get(node.op_type)
    if hit is None or node.op_type not in operators.SUPPORTED[VERSIONS[label][0]]:
        return None
    name, version, when = hit
    if node.op_type == "ScatterElements" and _attr(node, "reduction", "none") == "none":
        return None
    return name, version


def _io_rules(g: _Scope, profile: dict | None) -> Iterable[Finding]:
    graph = g.graph
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


def _clamped_int64(nodes: Iterable[Any]) -> set[str]:
    """INT64 inputs whose largest values mean "all" and never reach an INT32 computation: the
    starts and ends of Slice, and NonMaxSuppression's max_output_boxes_per_class, which the
    parser clamps to INT32 max itself (10.3-GA importNonMaxSuppression: "Consider when user
    chooses int64 max as input, which is reasonable")."""
    out = set()
    for n in nodes:
        if n.op_type == "Slice":
            out.update(n.input[1:3])
        elif n.op_type == "NonMaxSuppression" and len(n.input) > 2:
            out.add(n.input[2])
    return out


def _tensor_rules(g: _Scope, prefix: str = "", clamped: Collection[str] = ()) -> Iterable[Finding]:
    """DOUBLE, UINT8 and INT64 tensors of one graph (``prefix``: the path of a body; UINT8 is
    taken only as an input or output of the network, never inside a body; ``clamped``: INT64
    names whose size does not matter, :func:`_clamped_int64`)."""
    graph = g.graph
    io = set() if prefix else {i.name for i in graph.input} | {o.name for o in graph.output}
    for name, t in g.types.items():
        if prefix and name not in g.producer and name not in g.init:
            continue  # a body's inputs and outer-scope names are checked where they are made
        tn = _TYPE_NAMES.get(t)
        where = prefix + name
        if tn == "DOUBLE":
            yield Finding(
                "warning", "double", f"{name} is DOUBLE: TensorRT casts it to FLOAT, clamping to ±FLT_MAX", where
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
                    where,
                )
            elif prefix and name not in io:
                yield Finding(
                    "error",
                    "uint8",
                    f"{name} is UINT8 inside an If/Loop/Scan body: TensorRT takes UINT8 only as a network input "
                    "or output",
                    where,
                )
            elif any(n.op_type != "Cast" for n in consumers):
                ops = sorted({n.op_type for n in consumers if n.op_type != "Cast"})
                yield Finding(
                    "error",
                    "uint8",
                    f"UINT8 tensor {name} feeds {', '.join(ops)}: TensorRT converts UINT8 "
                    "with a Cast only (cast it to float first)",
                    where,
                )
    n64, big = 0, []
    for name, t in g.init.items():
        if t.data_type == 7:
            n64 += 1
            if name in clamped:
                continue  # INT64 max as a slice end or an NMS box count is the usual "all"
            v = g.value(name)
            if v is not None and v.size and (v.min() < _INT32[0] or v.max() > _INT32[1]):
                big.append(name)
    for name in big:
        yield Finding(
            "warning",
            "int64",
            f"INT64 weight {name} holds values outside the INT32 range; TensorRT layers "
            "that compute in INT32 would overflow",
            prefix + name,
        )
    if n64 and not prefix:
        yield Finding(
            "info", "int64", f"{n64} INT64 initializers (shape arithmetic); TensorRT 10+ takes INT64 natively"
        )


def check(
    model: str | Path | Any, profile: dict | None = None, versions: Iterable[str] | None = None, path: str | None = None
) -> Report:
    """Check an ONNX graph (a path or a loaded ``ModelProto``) for TensorRT, the bodies of its
    If, Loop and Scan nodes included.

    Args:
        profile: input name -> (min, opt, max) shapes, as :func:`.plans.profile` gives
            for a bundle; None for a bare graph.
        versions: labels of :data:`VERSIONS` or :data:`ALIASES` (default: all).

    Raises:
        EdgecvError: an unknown version, or a file that is not an ONNX graph.
    """
    labels = resolve_versions(versions)
    if isinstance(model, (str, Path)):
        path = path or str(model)
        model = load_model(model)
    else:
        model = _inferred(model)
    top = _Scope(model.graph)
    bodies: list[_Scope] = []
    nodes = list(_walk(top, bodies))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    merged: dict[tuple, Finding] = {}

    def add(f: Finding) -> None:
        key = (f.severity, f.rule, f.node, f.op, f.message)
        if key in merged:
            merged[key].versions.extend(v for v in f.versions if v not in merged[key].versions)
        else:
            merged[key] = f

    plugins: dict[tuple[str, str, str | None], Plugin] = {}
    for label in labels:
        table_key, (lo, hi), _ = VERSIONS[label]
        if not lo <= opset <= hi:
            add(Finding("error", "opset", f"opset {opset} is outside TensorRT {label}'s {lo}..{hi}", versions=[label]))
        table = operators.SUPPORTED[table_key]
        for node, scope, name in nodes:
            for f in _node_rules(node, scope, name, table, label):
                add(f)
            hit = _plugin_of(node, label)
            if hit is not None:
                p = plugins.setdefault((node.op_type, *hit), Plugin(node.op_type, hit[0], hit[1], [], []))
                if name not in p.nodes:
                    p.nodes.append(name)
                if label not in p.versions:
                    p.versions.append(label)
    for p in plugins.values():
        add(
            Finding(
                "info",
                "plugin",
                f"{count(len(p.nodes), p.op + ' node')} {'is' if len(p.nodes) == 1 else 'are'} built from "
                f"TensorRT's {p.name} plugin"
                + (f" (version {p.version})" if p.version else "")
                + ": the device needs NVIDIA's plugin library (libnvinfer_plugin, which edgecv loads with "
                "trt.init_libnvinfer_plugins)",
                p.nodes[0] + (f" (+{len(p.nodes) - 1})" if len(p.nodes) > 1 else ""),
                p.op,
                list(p.versions),
            )
        )
    clamped = _clamped_int64(n for n, _, _ in nodes)
    rules = [*_io_rules(top, profile), *_tensor_rules(top, "", clamped)]
    for scope in bodies:
        rules.extend(_tensor_rules(scope, scope.prefix, clamped))
    for f in rules:
        f.versions = list(labels)
        add(f)
    return Report(
        path or "<model>",
        opset,
        len(model.graph.node),
        labels,
        list(merged.values()),
        subgraphs=len(bodies),
        subgraph_nodes=len(nodes) - len(model.graph.node),
        plugins=list(plugins.values()),
    )


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
