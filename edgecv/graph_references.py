"""What a bundle's model file refers to beyond its own bytes, and the check that it refers to
nothing the manifest does not hash: no ONNX external data, no operator of a domain no edgecv
backend registers, no OpenVINO IR weights but the hashed ``.bin`` beside it.

A bundle's hashes prove that its files are intact, not who wrote them: anyone can write a
self-consistent manifest. So the graph itself must not reach further than the files the
manifest lists. ONNX is read here with a small protobuf walker, without importing ``onnx``
(the device path never imports it); the IR with the standard library's XML parser, after
refusing any DTD.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BundleError

if TYPE_CHECKING:
    from .bundle import Bundle

#: ONNX's own operator domains, which every backend runs
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
#: backend key -> the further operator domains it runs from its own library, with no code from
#: the model file: onnxruntime's contrib operators. TensorRT would look an operator of any other
#: domain up among the plugins loaded in the process, OpenVINO among its extensions: edgecv
#: registers neither. (edgecv's own exports use no node outside the standard domains; onnxruntime's
#: INT8 graphs list com.microsoft among their opset imports, without a node of it.)
OPERATOR_DOMAINS: dict[str, tuple[str, ...]] = {"onnxruntime": ("com.microsoft",)}


def allowed_domains(backend: str) -> tuple[str, ...]:
    """The operator domains a graph run on ``backend`` may use."""
    return STANDARD_DOMAINS + OPERATOR_DOMAINS.get(backend, ())


# --- ONNX, read without importing onnx --------------------------------------------------------------

# Where nodes and TensorProtos sit in an ONNX ModelProto (onnx.proto field numbers):
# message -> {field: message}
_NESTED: dict[str, dict[int, str]] = {
    "model": {7: "graph", 25: "function", 20: "training"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _EXTERNAL = 8, 13, 14, 1
_NODE_NAME, _NODE_OP_TYPE, _NODE_DOMAIN = 3, 4, 7
_FUNCTION_NAME, _FUNCTION_DOMAIN = 1, 10
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_MAX_DEPTH = 64


@dataclass(frozen=True)
class ExternalTensor:
    """A tensor whose data an ONNX model keeps in another file."""

    tensor: str
    #: the external data's ``location`` ('' when the tensor says EXTERNAL and names none)
    location: str


@dataclass(frozen=True)
class CustomNode:
    """A node of an operator domain outside :data:`STANDARD_DOMAINS`."""

    domain: str
    op_type: str
    name: str


@dataclass
class OnnxReferences:
    """What an ONNX model refers to outside its own bytes (subgraphs and functions included)."""

    external: list[ExternalTensor] = field(default_factory=list)
    #: nodes outside the standard domains that call none of the model's own functions
    custom: list[CustomNode] = field(default_factory=list)


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview | None]]:
    """(field number, value) of one protobuf message: an int (varint), a memoryview
    (length-delimited, not copied) or None (fixed width)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        value: int | memoryview | None = None
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value = buf[i : i + n]
            i += n
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated field")
        yield key >> 3, value


#: :func:`_fields` for other readers of protobuf messages without their schema (edgecv.serving.triton)
protobuf_fields = _fields


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", "replace")


def onnx_references(model: bytes) -> OnnxReferences:
    """The external data and the custom-domain nodes of an ONNX model (its bytes), found in the
    main graph, subgraphs (If, Loop, Scan), model-local functions and training graphs.

    Raises:
        BundleError: the bytes are not a readable protobuf message.
    """
    found = OnnxReferences()
    nodes: list[CustomNode] = []
    functions: set[tuple[str, str]] = set()

    def tensor(buf: memoryview) -> None:
        name, location, external = "", "", False
        for f, value in _fields(buf):
            if f == _TENSOR_NAME and isinstance(value, memoryview):
                name = _text(value)
            elif f == _TENSOR_EXTERNAL_DATA and isinstance(value, memoryview):
                external = True
                entry = dict(_fields(value))
                key, val = entry.get(_ENTRY_KEY), entry.get(_ENTRY_VALUE)
                if isinstance(key, memoryview) and _text(key) == "location" and isinstance(val, memoryview):
                    location = _text(val)
            elif f == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
                external = True
        if external:
            found.external.append(ExternalTensor(name or "(unnamed)", location))

    def walk(buf: memoryview, kind: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ValueError("nested too deeply")
        if kind == "tensor":
            tensor(buf)
            return
        nested = _NESTED[kind]
        strings: dict[int, str] = {}
        for f, value in _fields(buf):
            if not isinstance(value, memoryview):
                continue
            if f in nested:
                walk(value, nested[f], depth + 1)
            elif kind in ("node", "function"):
                strings[f] = _text(value)
        if kind == "node":
            domain = strings.get(_NODE_DOMAIN, "")
            if domain not in STANDARD_DOMAINS:
                nodes.append(CustomNode(domain, strings.get(_NODE_OP_TYPE, ""), strings.get(_NODE_NAME, "")))
        elif kind == "function":
            functions.add((strings.get(_FUNCTION_DOMAIN, ""), strings.get(_FUNCTION_NAME, "")))

    try:
        walk(memoryview(model), "model", 0)
    except ValueError as e:
        raise BundleError(f"the model is not a readable ONNX file ({e}); re-export the bundle") from None
    # a call of one of the model's own functions runs that function's nodes, which were walked too
    found.custom = [n for n in nodes if (n.domain, n.op_type) not in functions]
    return found


def check_onnx(model: bytes, file: str, backend: str, where: str = "") -> None:
    """Refuse an ONNX model (the bytes of file ``file``) that keeps tensor data in another file,
    or that has a node of an operator domain ``backend`` does not register
    (:func:`allowed_domains`). ``where`` goes before the file's name in messages (the bundle).

    edgecv loads self-contained ONNX models only: external data would be read from a file the
    manifest does not vouch for (onnxruntime, given bytes, looks in the working directory;
    TensorRT beside the path it is given), so no external file is accepted, listed or not.

    Raises:
        BundleError: naming ``file`` and the tensor and location, or the node and its domain.
    """
    file = f"{where}{file}"
    try:
        refs = onnx_references(model)
    except BundleError as e:
        raise BundleError(f"{file}: {e}") from None
    if refs.external:
        ext = refs.external[0]
        more = f" (and {len(refs.external) - 1} more tensors)" if len(refs.external) > 1 else ""
        raise BundleError(
            f"{file} keeps tensor {ext.tensor!r} in the external data file {ext.location!r}{more}, which edgecv "
            "does not load: a bundle's graph may refer only to what its manifest hashes, and edgecv takes "
            "self-contained ONNX files only; re-export the bundle (edgecv writes every tensor into the model file)"
        )
    allowed = allowed_domains(backend)
    bad = [n for n in refs.custom if n.domain not in allowed]
    if bad:
        n = bad[0]
        raise BundleError(
            f"{file} has node {n.name or '(unnamed)'!r}, operator {n.op_type!r} of domain {n.domain!r}, which "
            f"no edgecv target registers for {backend} (it runs the domains "
            f"{', '.join(repr(d) for d in allowed)}): a custom operator would run code from outside the "
            "bundle; re-export the model with standard ONNX operators"
        )


# --- OpenVINO IR ---------------------------------------------------------------------------------


def check_openvino_ir(xml: bytes, file: str, weights_file: str | None, weights_size: int, where: str = "") -> None:
    """Refuse an OpenVINO IR (the XML's bytes, of the bundle file ``file``) whose weights are not
    the hashed ``.bin`` beside it (``weights_file``, ``weights_size`` bytes, from the manifest),
    that declares a DTD or entities, or whose constants lie outside those weights. ``where``
    goes before the file's name in messages (the bundle).

    Raises:
        BundleError: naming ``file`` and what it refers to.
    """
    expected = Path(file).with_suffix(".bin").name
    file = f"{where}{file}"
    if weights_file is None:
        raise BundleError(f"{file}: the manifest lists no weights file for it ({expected}): re-export the bundle")
    if Path(weights_file).name != expected:
        raise BundleError(
            f"{file}: its weights are {expected!r} beside it, but the manifest's weights file is "
            f"{weights_file!r}: OpenVINO's own tools would read a file the manifest does not hash; re-export the bundle"
        )
    lowered = xml.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise BundleError(f"{file} declares a DTD or entities, which an OpenVINO IR never has: refusing to parse it")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise BundleError(f"{file} is not an OpenVINO IR (XML): {e}; re-export the bundle") from None
    for layer in root.iter("layer"):
        data = layer.find("data")
        if data is None or "offset" not in data.attrib:
            continue
        try:
            offset, size = int(data.attrib["offset"]), int(data.attrib.get("size", "0"))
        except ValueError:
            offset, size = -1, 0
        if offset < 0 or size < 0 or offset + size > weights_size:
            raise BundleError(
                f"{file}: layer {layer.get('name')!r} reads bytes {data.attrib.get('offset')}+{data.attrib.get('size')} "
                f"of its weights, which are {weights_size} bytes ({weights_file}): the IR and its weights do "
                "not belong together; re-export the bundle"
            )


# --- a bundle ------------------------------------------------------------------------------------


def check_model(bundle: Bundle, data: bytes, backend: str) -> None:
    """Check the model file of ``bundle`` (its bytes ``data``, as read with ``bundle.read``) for
    ``backend``: an ONNX graph with :func:`check_onnx`, an IR with :func:`check_openvino_ir`.

    Raises:
        BundleError: naming the bundle, the file and the reference.
    """
    entry = next(f for f in bundle.manifest["files"] if f["role"] == "model")
    where = f"bundle '{bundle.path}': "
    if entry["path"].endswith(".xml"):
        weights = next((f for f in bundle.manifest["files"] if f["role"] == "weights"), None)
        check_openvino_ir(
            data,
            entry["path"],
            None if weights is None else weights["path"],
            0 if weights is None else weights["size"],
            where,
        )
    elif entry["path"].endswith(".onnx"):
        check_onnx(data, entry["path"], backend, where)


def check_bundle(bundle: Bundle, backend: str | None = None) -> None:
    """Check what the model file of ``bundle`` refers to (:func:`check_model`), for ``backend``
    (default: the bundle's target), reading it with :meth:`Bundle.read`.

    Raises:
        BundleError: naming the bundle, the file and the reference.
    """
    check_model(bundle, bundle.read("model"), backend or bundle.target)
