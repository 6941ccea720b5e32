"""Serving over the Open Inference Protocol: the protocol pieces against tritonclient's own
encoder and decoder (no Ray), then one Ray Serve instance on 127.0.0.1 shared by the module:
its endpoints and status codes, the client's parity with the local bundle, malformed and
oversized requests, and a replica killed while requests are in flight."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest

pytest.importorskip("tritonclient.http")
from tritonclient.grpc import model_config_pb2  # noqa: E402  (Triton's model config schema)
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput  # noqa: E402

from edgecv.serving import protocol as P  # noqa: E402

MANIFEST = {
    "name": "tiny",
    "target": "onnxruntime",
    "task": "detect",
    "input": {"name": "images", "shape": [-1, 32, 48, 3]},
    "output": {"tensors": {"num_dets": "num_dets", "boxes": "boxes", "scores": "scores", "labels": "labels"}},
}
SAMPLE = {
    "num_dets": np.array([3], np.int64),
    "boxes": np.zeros((1, 5, 4), np.float32),
    "scores": np.zeros((1, 5), np.float32),
    "labels": np.zeros((1, 5), np.int64),
}


def frames(b: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, 32, 48, 3), dtype=np.uint8)


def tc_request(x: np.ndarray, binary: bool = True, outputs=None, request_id: str = "r-1", **params):
    """A request body as tritonclient.http sends it."""
    inp = InferInput("images", list(x.shape), P.datatype(x.dtype))
    inp.set_data_from_numpy(x, binary_data=binary)
    return InferenceServerClient.generate_request_body(
        [inp], outputs=outputs, request_id=request_id, parameters=params or None
    )


# --- the protocol, without a server -------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False])
def test_request_round_trip_from_tritonclient(binary):
    x = frames()
    body, header_length = tc_request(x, binary)
    assert (header_length is not None) == binary
    req = P.parse_infer_request(body, header_length)
    assert req.id == "r-1"
    assert req.outputs is None and req.binary_default  # no outputs named: tritonclient asks for binary
    got = P.check_input(req, P.input_spec(MANIFEST), max_batch_size=8)
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("binary", [True, False])
def test_response_read_by_tritonclient(binary):
    outs = [InferRequestedOutput(n, binary_data=binary) for n in ("boxes", "num_dets")]
    body, header_length = tc_request(frames(1), outputs=outs, request_id="abc")
    req = P.parse_infer_request(body, header_length)
    assert req.outputs == ["boxes", "num_dets"] and req.binary("boxes") is binary
    rng = np.random.default_rng(1)
    model_out = {**SAMPLE, "boxes": rng.random((1, 5, 4), dtype=np.float32)}
    resp, resp_len = P.infer_response("tiny", req, model_out)
    result = InferenceServerClient.parse_response_body(resp, header_length=resp_len)
    assert result.get_response()["id"] == "abc"
    assert [o["name"] for o in result.get_response()["outputs"]] == ["boxes", "num_dets"]  # only those asked for
    np.testing.assert_array_equal(result.as_numpy("boxes"), model_out["boxes"])  # float32 exact, JSON too
    np.testing.assert_array_equal(result.as_numpy("num_dets"), model_out["num_dets"])
    assert result.as_numpy("scores") is None


def test_metadata_and_config_follow_triton_schema():
    from google.protobuf import json_format

    specs = P.output_specs(MANIFEST, SAMPLE)
    meta = P.model_metadata("tiny", MANIFEST, specs)
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 32, 48, 3]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "num_dets": ("INT64", [-1]),
        "boxes": ("FP32", [-1, 5, 4]),
        "scores": ("FP32", [-1, 5]),
        "labels": ("INT64", [-1, 5]),
    }
    config = P.model_config("tiny", MANIFEST, specs, max_batch_size=8, batch_wait_us=5000, replicas=2)
    parsed = json_format.ParseDict(config, model_config_pb2.ModelConfig())  # Triton's own schema
    assert parsed.max_batch_size == 8 and list(parsed.input[0].dims) == [32, 48, 3]
    assert parsed.input[0].data_type == model_config_pb2.TYPE_UINT8
    assert parsed.output[1].data_type == model_config_pb2.TYPE_FP32
    assert parsed.dynamic_batching.max_queue_delay_microseconds == 5000
    assert P.manifest_from_config(config) == MANIFEST
    no_batching = P.model_config("tiny", MANIFEST, specs, max_batch_size=8, batch_wait_us=None)
    assert not json_format.ParseDict(no_batching, model_config_pb2.ModelConfig()).HasField("dynamic_batching")
    with pytest.raises(P.EdgecvError, match="edgecv_manifest"):
        P.manifest_from_config({"name": "other"})


def _bad_requests():
    x = frames(1)
    good, n = tc_request(x)
    head = json.loads(good[:n])
    yield "bad json", b"{not json", None, "not valid JSON"
    yield "header past body", good, len(good) + 5, "does not fit"
    yield "byte count", good[:-7], n, "runs past the end"
    yield "extra bytes", good + b"xx", n, "bytes after"
    float_x = tc_request(x.astype(np.float32))
    yield "float frames", *float_x, "is FP32; the model takes UINT8"
    yield "wrong shape", *tc_request(frames(1)[:, :16]), "has shape [1, 16, 48, 3]"
    yield "batch too big", *tc_request(frames(9)), "batch of 9"
    head["inputs"][0]["parameters"]["binary_data_size"] = 17
    hb = json.dumps(head).encode()
    yield "size lies", hb + good[n:], len(hb), "17 bytes of data"
    yield (
        "json out of range",
        json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1], "data": [300]}]}).encode(),
        None,
        "outside 0..255",
    )
    yield (
        "json count",
        json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [2], "data": [1]}]}).encode(),
        None,
        "1 elements",
    )
    yield "no inputs", b'{"inputs": []}', None, "no inputs"


@pytest.mark.parametrize("case", list(_bad_requests()), ids=lambda c: c[0])
def test_malformed_requests_are_400(case):
    _, body, header_length, message = case
    with pytest.raises(P.ProtocolError, match=re.escape(message)) as e:
        req = P.parse_infer_request(body, header_length)
        P.check_input(req, P.input_spec(MANIFEST), max_batch_size=8)
    assert e.value.status == 400


def test_compressed_body_and_its_limit():
    body, _ = tc_request(frames(1), binary=False)
    assert P.decompress(gzip.compress(body), "gzip", len(body)) == body
    with pytest.raises(P.ProtocolError) as e:
        P.decompress(gzip.compress(b"\0" * 10_000), "gzip", 1000)  # a small bomb
    assert e.value.status == 413
    with pytest.raises(P.ProtocolError, match="not supported"):
        P.decompress(body, "br", 1 << 20)


def test_default_limit_fits_the_largest_json_request():
    x = np.full((8, 32, 48, 3), 255, np.uint8)
    body, _ = tc_request(x, binary=False)
    assert len(body) <= P.max_request_bytes(MANIFEST, 8) < 100 * 2**20
