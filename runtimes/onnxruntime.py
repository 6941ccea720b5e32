"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..cpu import physical_cores
from ..errors import BundleError, EdgecvError
from .base import Detector


class OnnxRuntimeDetector(Detector):
    key = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called from several threads

    def activate_impl(self) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        level = self.options.get("graph_optimization_level", "all")
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        # one thread per physical core by default, said explicitly so it can be reported
        self.threads_used = int(self.threads) if self.threads else physical_cores()
        so.intra_op_num_threads = self.threads_used
        so.log_severity_level = 3
        if self.bundle is None:
            raise EdgecvError("the onnxruntime backend runs the model of a bundle: load one with edgecv.load(path)")
        model = self.bundle.read("model")  # the bytes whose sha256 was checked are the bytes run
        tensor = external_tensor(model)
        if tensor is not None:
            # A model given as bytes has no folder: onnxruntime would look for the data in the
            # process's working directory, a file no manifest vouches for.
            raise BundleError(
                f"the model of bundle '{self.bundle.path}' keeps tensor {tensor!r} in an external data "
                "file, which edgecv does not load; re-export the bundle (edgecv writes single-file models)"
            )
        self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        del model  # onnxruntime holds its own copy
        self._outputs = list(self.output_names.values())

    def infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self._outputs, {self.input_name: batch})
        return dict(zip(self._outputs, values))

    def release_impl(self) -> None:
        self.session = None


# --- external data, found without importing onnx ------------------------------------------------

# Where TensorProtos sit in an ONNX ModelProto (onnx.proto field numbers): message -> {field: message}
_NESTED: dict[str, dict[int, str]] = {
    "model": {7: "graph", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _EXTERNAL = 8, 13, 14, 1


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


def external_tensor(model: bytes) -> str | None:
    """The name of a tensor of an ONNX model (bytes) whose data lives in an external file, or
    None when every tensor is inside the model (initializers, constants, sparse tensors, in
    subgraphs and functions too).

    Raises:
        BundleError: the bytes are not a protobuf message.
    """

    def walk(buf: memoryview, kind: str, depth: int) -> str | None:
        if depth > 64:
            raise ValueError("nested too deeply")
        if kind == "tensor":
            name, external = "", False
            for field, value in _fields(buf):
                if field == _TENSOR_NAME and isinstance(value, memoryview):
                    name = bytes(value).decode("utf-8", "replace")
                elif field == _TENSOR_EXTERNAL_DATA or (field == _TENSOR_DATA_LOCATION and value == _EXTERNAL):
                    external = True
            return (name or "(unnamed)") if external else None
        nested = _NESTED[kind]
        for field, value in _fields(buf):
            if field in nested and isinstance(value, memoryview):
                found = walk(value, nested[field], depth + 1)
                if found is not None:
                    return found
        return None

    try:
        return walk(memoryview(model), "model", 0)
    except ValueError as e:
        raise BundleError(f"the model is not a readable ONNX file ({e}); re-export the bundle") from None
