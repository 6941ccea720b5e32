"""The Open Inference Protocol (KServe v2) as edgecv serves a bundle: model metadata and a
Triton-style model config from a manifest, infer requests parsed from JSON or from the binary
tensor data extension (as ``tritonclient.http`` sends them), the input tensor checked against
the model, and responses and error objects built. Pure Python: the server
(:mod:`edgecv.serving.server`) and the tests use it without Ray.

Protocol: https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol;
binary extension: Triton's ``docs/protocol/extension_binary_data.md``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EdgecvError

#: the one version every served model has
MODEL_VERSION = "1"
#: the HTTP header giving the length of the JSON part of a binary request or response
HEADER_LENGTH = "Inference-Header-Content-Length"
#: room left above the largest valid infer request for its JSON header and parameters
HEADROOM_BYTES = 1 << 20
#: a JSON-encoded uint8 element takes at most 4 bytes ("255,"): the largest valid JSON request
JSON_BYTES_PER_ELEMENT = 4
#: the model config parameter that carries the bundle's manifest to clients
MANIFEST_PARAMETER = "edgecv_manifest"


class ProtocolError(EdgecvError):
    """A request the server refuses, with the HTTP status of its error object: 400 malformed,
    404 unknown model or output, 413 too large, 503 not ready (retry later)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error_body(message: str) -> bytes:
    """The protocol's error object ``{"error": message}`` as JSON bytes."""
    return json.dumps({"error": message}).encode()


# --- tensors ----------------------------------------------------------------------------------


def datatype(dtype: np.dtype | type) -> str:
    """The protocol's datatype name (``UINT8``, ``FP32``, ``INT64``...) of a numpy dtype."""
    from tritonclient.utils import np_to_triton_dtype

    name = np_to_triton_dtype(np.dtype(dtype))
    if name is None:
        raise EdgecvError(f"numpy dtype {np.dtype(dtype)} has no Open Inference Protocol datatype")
    return name


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a protocol datatype name; :class:`ProtocolError` (400) for an unknown one."""
    from tritonclient.utils import triton_to_np_dtype

    dt = triton_to_np_dtype(name) if isinstance(name, str) else None
    if dt is None or name == "BYTES":
        raise ProtocolError(f"datatype {name!r} is not a numeric Open Inference Protocol datatype")
    return np.dtype(dt)


def config_datatype(name: str) -> str:
    """A protocol datatype as a Triton model config ``data_type`` (``FP32`` -> ``TYPE_FP32``)."""
    return "TYPE_STRING" if name == "BYTES" else f"TYPE_{name}"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a served model: its name, protocol datatype and shape, with -1
    for the batch dimension when it varies."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def input_spec(manifest: Mapping) -> TensorSpec:
    """The served input of a bundle: its uint8 [B, H, W, 3] tensor under its manifest name. The
    batch is -1: the server pads a fixed-batch model's batch itself."""
    _, h, w, c = manifest["input"]["shape"]
    return TensorSpec(manifest["input"]["name"], "UINT8", (-1, h, w, c))


def score_spec(manifest: Mapping) -> TensorSpec | None:
    """The served score-floor input of a detector whose graph takes one (FP32 [B], one floor per
    image: see :meth:`edgecv.runtimes.base.Detector.extra_inputs`); None otherwise."""
    name = (manifest["output"].get("nms") or {}).get("score_input")
    return TensorSpec(name, "FP32", (-1,)) if name else None


def input_specs(manifest: Mapping) -> list[TensorSpec]:
    """Every served input of a bundle: the images, then the score floor where the graph has one."""
    score = score_spec(manifest)
    return [input_spec(manifest), *([score] if score else [])]


def output_specs(manifest: Mapping, sample: Mapping[str, np.ndarray]) -> list[TensorSpec]:
    """The served outputs of a bundle, in its manifest's order, with the datatypes and shapes of
    ``sample`` (the model's outputs for one batch, by manifest name) and -1 for the batch."""
    specs = []
    for tensor in manifest["output"]["tensors"].values():
        if tensor not in sample:
            raise EdgecvError(f"the model returned no output named {tensor!r}, which its manifest lists")
        a = np.asarray(sample[tensor])
        specs.append(TensorSpec(tensor, datatype(a.dtype), (-1, *a.shape[1:])))
    return specs


# --- metadata and config ----------------------------------------------------------------------


def platform(manifest: Mapping) -> str:
    """The ``platform`` a served bundle reports: ``edgecv_<target>``."""
    return f"edgecv_{manifest['target']}"


def model_metadata(name: str, manifest: Mapping, outputs: Sequence[TensorSpec]) -> dict:
    """``GET /v2/models/{name}``: name, versions, platform, inputs and outputs."""
    return {
        "name": name,
        "versions": [MODEL_VERSION],
        "platform": platform(manifest),
        "inputs": [i.to_json() for i in input_specs(manifest)],
        "outputs": [o.to_json() for o in outputs],
    }


def model_config(
    name: str,
    manifest: Mapping,
    outputs: Sequence[TensorSpec],
    *,
    max_batch_size: int,
    batch_wait_us: int | None,
    replicas: int = 1,
) -> dict:
    """``GET /v2/models/{name}/config``: the model's configuration in the JSON form of Triton's
    ``ModelConfig`` (what ``tritonclient.http.InferenceServerClient.get_model_config`` returns
    from a Triton server), with the bundle's manifest as the ``edgecv_manifest`` parameter.

    Args:
        max_batch_size: the most images one request may carry; dims leave out the batch.
        batch_wait_us: the dynamic batcher's longest wait in microseconds; None when the server
            runs each request alone (no ``dynamic_batching`` section).
        replicas: model replicas (the instance group's count).
    """
    inp = input_spec(manifest)
    config: dict[str, Any] = {
        "name": name,
        "platform": platform(manifest),
        "backend": "edgecv",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": int(max_batch_size),
        "input": [
            {
                "name": inp.name,
                "data_type": config_datatype(inp.datatype),
                "format": "FORMAT_NHWC",
                "dims": list(inp.shape[1:]),
            }
        ],
        "output": [_config_output(o) for o in outputs],
        "instance_group": [{"name": name, "kind": "KIND_CPU", "count": int(replicas)}],
        "parameters": {MANIFEST_PARAMETER: {"string_value": json.dumps(manifest, separators=(",", ":"))}},
    }
    score = score_spec(manifest)
    if score is not None:  # one floor per image: [B], written as Triton wants a batched [B] tensor
        config["input"].append(_config_output(score))
    if batch_wait_us is not None:
        config["dynamic_batching"] = {"max_queue_delay_microseconds": int(batch_wait_us)}
    return config


def _config_output(spec: TensorSpec) -> dict:
    """One output (or the score input) of a model config. A tensor of one number per image
    ([B]) is ``dims: [1]`` with an empty ``reshape``, as Triton requires of a batched model
    (dims may not be empty)."""
    out: dict[str, Any] = {"name": spec.name, "data_type": config_datatype(spec.datatype), "dims": list(spec.shape[1:])}
    if not out["dims"]:
        out["dims"], out["reshape"] = [1], {"shape": []}
    return out


def manifest_from_config(config: Mapping) -> dict:
    """The bundle manifest a model config carries (its ``edgecv_manifest`` parameter).

    Raises:
        EdgecvError: the config has no such parameter (the model was not served from an edgecv
            bundle) or it is not a JSON object.
    """
    param = (config.get("parameters") or {}).get(MANIFEST_PARAMETER)
    text = param.get("string_value") if isinstance(param, Mapping) else None
    if not isinstance(text, str):
        raise EdgecvError(
            f"model '{config.get('name', '?')}' has no '{MANIFEST_PARAMETER}' parameter in its config: it was "
            "not served from an edgecv bundle (serve it with `edgecv serve` or `edgecv triton`)"
        )
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise EdgecvError(f"model '{config.get('name', '?')}': its {MANIFEST_PARAMETER} is not JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise EdgecvError(f"model '{config.get('name', '?')}': its {MANIFEST_PARAMETER} is not a JSON object")
    return manifest


# --- limits -----------------------------------------------------------------------------------


def max_request_bytes(manifest: Mapping, max_batch_size: int) -> int:
    """The default body limit of a model's infer requests: its largest valid request (a full
    batch sent as JSON, the longer encoding) plus :data:`HEADROOM_BYTES`."""
    _, h, w, c = manifest["input"]["shape"]
    return JSON_BYTES_PER_ELEMENT * max(1, max_batch_size) * h * w * c + HEADROOM_BYTES


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` decoded by its ``Content-Encoding`` (none, ``gzip`` or ``deflate``, what
    ``tritonclient.http`` can send), refusing more than ``limit`` decoded bytes (413)."""
    if not encoding or encoding == "identity":
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding.strip().lower())
    if wbits is None:
        raise ProtocolError(f"Content-Encoding {encoding!r} is not supported (send identity, gzip or deflate)")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise ProtocolError(f"the {encoding} body cannot be decompressed: {e}") from None
    if len(out) > limit:
        raise ProtocolError(f"the decompressed body is larger than the server's limit of {limit} bytes", 413)
    return out


# --- requests ---------------------------------------------------------------------------------


@dataclass
class InferInput:
    """One input tensor of a request, its data parsed (``array``, already in ``shape``)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


@dataclass
class InferRequest:
    """A parsed infer request: its ``id`` (echoed in the response), inputs, the outputs it asks
    for (None: all) and how each is to be returned (binary or JSON)."""

    id: str | None
    inputs: list[InferInput]
    outputs: list[str] | None = None
    binary_outputs: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False

    def binary(self, output: str) -> bool:
        """Whether ``output`` goes back in the binary extension."""
        return self.binary_outputs.get(output, self.binary_default)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise ProtocolError(f"{where}: shape must be a list of integers, got {value!r}")
    if any(d < 0 for d in value):
        raise ProtocolError(f"{where}: shape {value} has a negative dimension")
    return tuple(value)


def _json_data(data: Any, dtype: np.dtype, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A tensor's ``data`` (flat or nested lists of numbers) as an array of ``shape``."""
    try:
        a = np.asarray(data)
    except ValueError as e:  # ragged nesting
        raise ProtocolError(f"{where}: data is not a regular array of numbers ({e})") from None
    if a.size and a.dtype.kind not in "biuf":
        raise ProtocolError(f"{where}: data holds {a.dtype.kind!r} values, not numbers")
    if a.size != math.prod(shape):
        raise ProtocolError(f"{where}: data has {a.size} elements, shape {list(shape)} needs {math.prod(shape)}")
    if a.size and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if a.dtype.kind == "f" and not np.all(np.mod(a, 1) == 0):
            raise ProtocolError(f"{where}: data holds fractions for an integer datatype")
        if a.min() < info.min or a.max() > info.max:
            raise ProtocolError(f"{where}: data holds values outside {info.min}..{info.max} of {dtype}")
    return a.astype(dtype).reshape(shape)


def parse_infer_request(body: bytes, header_length: int | str | None = None) -> InferRequest:
    """Parse an infer request body: JSON alone, or (``header_length`` given, the
    ``Inference-Header-Content-Length`` header) a JSON header followed by the inputs' bytes in
    the order of the inputs with a ``binary_data_size`` parameter.

    Raises:
        ProtocolError: 400 for anything malformed: bad JSON, a missing field, a byte count that
            does not match the header or the tensor's shape and datatype.
    """
    if header_length is not None:
        try:
            n = int(header_length)
        except (TypeError, ValueError):
            raise ProtocolError(f"{HEADER_LENGTH} {header_length!r} is not an integer") from None
        if not 0 < n <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {n} does not fit a body of {len(body)} bytes")
        head, rest = body[:n], memoryview(body)[n:]
    else:
        head, rest = body, memoryview(b"")
    try:
        req = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"the request header is not valid JSON: {e}") from None
    if not isinstance(req, dict):
        raise ProtocolError("the request must be a JSON object")
    rid = req.get("id")
    if rid is not None and not isinstance(rid, str):
        raise ProtocolError(f"id must be a string, got {type(rid).__name__}")
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("parameters must be an object")
    raw_inputs = req.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("the request has no inputs (a non-empty list)")
    inputs, offset = [], 0
    for i, t in enumerate(raw_inputs):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise ProtocolError(f"inputs[{i}] must be an object with a name")
        where = f"input '{t['name']}'"
        dtype = numpy_dtype(str(t.get("datatype")))
        shape = _shape(t.get("shape"), where)
        tp = t.get("parameters") or {}
        if not isinstance(tp, dict):
            raise ProtocolError(f"{where}: parameters must be an object")
        if "shared_memory_region" in tp:
            raise ProtocolError(f"{where}: shared memory is not supported by this server; send the data in the body")
        size = tp.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ProtocolError(f"{where}: binary_data_size must be a non-negative integer")
            if offset + size > len(rest):
                raise ProtocolError(
                    f"{where}: binary_data_size {size} runs past the end of the body "
                    f"({len(rest) - offset} bytes left after the header)"
                )
            expected = math.prod(shape) * dtype.itemsize
            if size != expected:
                raise ProtocolError(
                    f"{where}: {size} bytes of data, shape {list(shape)} of {t['datatype']} needs {expected}"
                )
            array = np.frombuffer(rest[offset : offset + size], dtype=dtype).reshape(shape)
            offset += size
        elif "data" in t:
            array = _json_data(t["data"], dtype, shape, where)
        else:
            raise ProtocolError(f"{where} has neither data nor a binary_data_size parameter")
        inputs.append(InferInput(t["name"], t["datatype"], shape, array))
    if offset != len(rest):
        raise ProtocolError(f"the body holds {len(rest) - offset} bytes after the inputs' binary data")
    request = InferRequest(rid, inputs, binary_default=bool(params.get("binary_data_output", False)))
    raw_outputs = req.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise ProtocolError("outputs must be a list")
        request.outputs = []
        for i, o in enumerate(raw_outputs):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise ProtocolError(f"outputs[{i}] must be an object with a name")
            op = o.get("parameters") or {}
            if not isinstance(op, dict):
                raise ProtocolError(f"output '{o['name']}': parameters must be an object")
            if "classification" in op or "shared_memory_region" in op:
                raise ProtocolError(f"output '{o['name']}': classification and shared memory are not supported")
            request.outputs.append(o["name"])
            if "binary_data" in op:
                request.binary_outputs[o["name"]] = bool(op["binary_data"])
    return request


def check_input(request: InferRequest, spec: TensorSpec, max_batch_size: int) -> np.ndarray:
    """The request's images, checked against the model's input (see :func:`check_inputs`);
    for a model that takes the images alone."""
    return check_inputs(request, [spec], max_batch_size)[0]


def check_inputs(
    request: InferRequest, specs: Sequence[TensorSpec], max_batch_size: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The request's inputs, checked against the model's (``specs``: the images, then the score
    floor where the model takes one; :func:`input_specs`): the images by name, datatype UINT8,
    shape [B, H, W, 3] with 1 <= B <= ``max_batch_size``; the score floor, which a request may
    leave out, FP32 [B]. Returns (images, floors or None) as contiguous arrays.

    Raises:
        ProtocolError: 400 naming what differs.
    """
    spec, optional = specs[0], list(specs[1:])
    known = [spec.name, *(o.name for o in optional)]
    names = [t.name for t in request.inputs]
    unknown = [n for n in names if n not in known]
    if unknown or len(set(names)) != len(names) or spec.name not in names:
        takes = f"'{spec.name}'" + "".join(f" (and optionally '{o.name}')" for o in optional)
        raise ProtocolError(f"the model takes the input {takes}; the request has {names}")
    by_name = {t.name: t for t in request.inputs}
    t = by_name[spec.name]
    if t.datatype != spec.datatype:
        raise ProtocolError(f"input '{t.name}' is {t.datatype}; the model takes {spec.datatype}")
    want = list(spec.shape[1:])
    if len(t.shape) != len(spec.shape) or list(t.shape[1:]) != want:
        raise ProtocolError(
            f"input '{t.name}' has shape {list(t.shape)}; the model takes [B, {', '.join(map(str, want))}]: "
            "letterboxed frames (edgecv's client does this for you)"
        )
    if not 1 <= t.shape[0] <= max_batch_size:
        raise ProtocolError(f"input '{t.name}' has a batch of {t.shape[0]}; this model takes 1 to {max_batch_size}")
    floors = None
    for o in optional:
        f = by_name.get(o.name)
        if f is None:
            continue
        if f.datatype != o.datatype or list(f.shape) != [t.shape[0]]:
            raise ProtocolError(
                f"input '{f.name}' is {f.datatype} {list(f.shape)}; the model takes {o.datatype} [{t.shape[0]}]: "
                "one score floor per image"
            )
        floors = np.ascontiguousarray(f.array)
    return np.ascontiguousarray(t.array), floors


def infer_response(
    model_name: str, request: InferRequest, outputs: Mapping[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body to ``request`` with the model's ``outputs`` (by name): the requested
    outputs (all when none were named), each as JSON ``data`` or in the binary extension as the
    request asked. Returns the body and the JSON header's length (the
    ``Inference-Header-Content-Length`` header), None when the body is JSON alone.

    Raises:
        ProtocolError: 400 for a requested output the model does not have.
    """
    names = list(outputs) if request.outputs is None else request.outputs
    tensors, blobs = [], []
    for n in names:
        if n not in outputs:
            raise ProtocolError(f"unknown output '{n}': the model's outputs are {list(outputs)}")
        a = np.ascontiguousarray(outputs[n])
        t: dict[str, Any] = {"name": n, "datatype": datatype(a.dtype), "shape": list(a.shape)}
        if request.binary(n):
            blob = a.tobytes()
            t["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            t["data"] = a.reshape(-1).tolist()
        tensors.append(t)
    head: dict[str, Any] = {"model_name": model_name, "model_version": MODEL_VERSION}
    if request.id is not None:
        head["id"] = request.id
    head["outputs"] = tensors
    header = json.dumps(head, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
