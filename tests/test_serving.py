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
    assert list(parsed.output[0].dims) == [1] and parsed.output[0].HasField("reshape")  # num_dets: one per image
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


# --- one Ray Serve instance on 127.0.0.1 ------------------------------------------------------------

pytest.importorskip("ray.serve")
SMALL_LIMIT = 4096  # the body limit of the second application, /small


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_until_sigint_even_as_a_background_job(default_bundles, val_images):
    """`edgecv serve` end to end in its own process: it prints the model's URL, the client gets the
    local bundle's detections from it, and SIGINT stops it (exit 0, "stopping") although it was
    started as a shell's background job is, with SIGINT ignored (Python's default handler is then
    never installed). Runs before the module's own server starts: one Ray at a time."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    from edgecv import load

    port = _free_port()
    cmd = [sys.executable, "-m", "edgecv.cli", "serve", str(default_bundles["onnxruntime"]), "--name", "tiny"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Ctrl-C to stop" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(180), f"edgecv serve did not start: {''.join(lines)}"
        url = f"http://127.0.0.1:{port}/v2/models/tiny"
        assert any(url in line for line in lines), lines
        with load(url) as remote, load(default_bundles["onnxruntime"]) as det:
            got, want = remote(val_images[0]), det(val_images[0])
        assert len(got) == len(want) > 0 and np.allclose(got.xyxy, want.xyxy, atol=1e-5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        assert any("stopping" in line for line in lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(default_bundles):
    """The default detector's onnxruntime bundle served on 127.0.0.1 (as ``tiny``), and the same
    under ``/small`` with a 4 KiB body limit; torn down (Serve and the local Ray) at the end."""
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray import serve as ray_serve

    from edgecv.serving.server import serve, serve_app

    server = serve([default_bundles["onnxruntime"]], names=["tiny"], port=_free_port(), batch_wait_ms=2)
    try:
        small = serve_app({"tiny": str(default_bundles["onnxruntime"])}, max_body_bytes=SMALL_LIMIT)
        ray_serve.run(small, name="small", route_prefix="/small")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local(default_bundles):
    from edgecv import load

    return load(default_bundles["onnxruntime"])


def call(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, parsed JSON or raw bytes) of one request to the test server."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    if r.getheader("content-type", "").startswith("application/json"):
        return r.status, json.loads(data)
    return r.status, data


def same(a, b) -> bool:
    """The same boxes, classes and scores, within 1e-5."""
    return (
        len(a) == len(b)
        and np.array_equal(a.class_ids, b.class_ids)
        and np.allclose(a.xyxy, b.xyxy, rtol=1e-5, atol=1e-5)
        and np.allclose(a.scores, b.scores, rtol=0, atol=1e-5)
    )


def test_endpoints_and_status_codes(served, local):
    from google.protobuf import json_format

    assert call(served, "GET", "/v2/health/live")[0] == 200
    assert call(served, "GET", "/v2/health/ready")[0] == 200
    assert call(served, "GET", "/v2/models/tiny/ready")[0] == 200
    status, server_meta = call(served, "GET", "/v2")
    assert status == 200 and "binary_tensor_data" in server_meta["extensions"]
    status, meta = call(served, "GET", "/v2/models/tiny")
    assert status == 200 and meta["name"] == "tiny" and meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "images", "datatype": "UINT8", "shape": [-1, *local.input_size, 3]},
        {"name": "score_threshold", "datatype": "FP32", "shape": [-1]},  # the NMS score floor per image
    ]
    assert [o["name"] for o in meta["outputs"]] == list(local.output_names.values())
    assert all(o["shape"][0] == -1 for o in meta["outputs"])
    status, config = call(served, "GET", "/v2/models/tiny/config")
    parsed = json_format.ParseDict(config, model_config_pb2.ModelConfig())  # Triton's schema
    assert status == 200 and parsed.max_batch_size == 8 and parsed.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [(i.name, list(i.dims), i.HasField("reshape")) for i in parsed.input] == [
        ("images", [*local.input_size, 3], False),
        ("score_threshold", [1], True),
    ]
    assert P.manifest_from_config(config) == local.manifest
    for path in ("/v2/models/nope", "/v2/models/nope/config", "/v2/models/nope/ready", "/v2/models/tiny/versions/2"):
        status, body = call(served, "GET", path)
        assert status == 404 and "error" in body, path
    status, body = call(served, "POST", "/v2/models/nope/infer", b"{}")
    assert status == 404 and "unknown model 'nope'" in body["error"]


def test_client_matches_the_local_bundle(served, local, val_images):
    from concurrent.futures import ThreadPoolExecutor

    from edgecv import load
    from edgecv.serving.client import RemoteDetector

    remote = load(served.model_url("tiny"))
    assert isinstance(remote, RemoteDetector) and remote.names == local.names
    expected = [local(im) for im in val_images]
    assert sum(len(d) for d in expected) > 20  # the images hold objects to compare
    assert all(same(remote(im), e) for im, e in zip(val_images, expected))  # batch 1
    with ThreadPoolExecutor(6) as pool:  # concurrent clients, batched together on the server
        got = list(pool.map(remote, val_images))
    assert all(same(g, e) for g, e in zip(got, expected))
    assert all(same(g, e) for g, e in zip(remote.predict(val_images[:10]), expected))  # batches of 8 and 2


def test_detect_route(served, local, val_set):
    path = sorted(val_set[0].glob("*.png"))[0]
    status, body = call(served, "POST", "/v2/models/tiny/detect", path.read_bytes())
    assert status == 200 and body["model_name"] == "tiny"
    assert body["detections"] == local(str(path)).to_dict()
    for bad in (b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"not an image"):
        status, body = call(served, "POST", "/v2/models/tiny/detect", bad)
        assert status == 400 and body["error"], bad[:12]


def test_malformed_tensors_are_400_and_the_server_keeps_serving(served, local, val_images):
    from edgecv import load

    remote = load(served.model_url("tiny"))
    h, w = local.input_size
    x = np.zeros((1, h, w, 3), np.uint8)
    good, n = tc_request(x)
    head = json.loads(good[:n])
    head["inputs"][0]["parameters"]["binary_data_size"] = 100
    lying = json.dumps(head).encode()
    cases = {
        "wrong dtype": tc_request(x.astype(np.float32)),
        "wrong shape": tc_request(np.zeros((1, h, w // 2, 3), np.uint8)),
        "byte count": (lying + good[n:], len(lying)),
        "truncated": (good[:-10], n),
        "bad json": (b'{"inputs": [', None),
    }
    for what, (body, header_length) in cases.items():
        headers = {} if header_length is None else {P.HEADER_LENGTH: str(header_length)}
        status, reply = call(served, "POST", "/v2/models/tiny/infer", body, headers)
        assert status == 400 and isinstance(reply, dict) and reply["error"], what
    assert same(remote(val_images[0]), local(val_images[0]))


def test_oversized_bodies_are_413(served, local, val_images):
    import http.client
    from urllib.parse import urlsplit

    status, reply = call(served, "POST", "/small/v2/models/tiny/infer", b"\0" * (SMALL_LIMIT + 1))
    assert status == 413 and str(SMALL_LIMIT) in reply["error"]
    u = urlsplit(served.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)  # chunked: no Content-Length
    conn.request("POST", "/small/v2/models/tiny/infer", body=iter([b"\0" * 3000] * 3), encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and "limit" in json.loads(r.read())["error"]
    conn.close()
    status, reply = call(served, "POST", "/v2/models/tiny/infer", bytes(100 * 2**20))  # the default limit
    assert status == 413 and "104857600 bytes" in reply["error"]
    from edgecv import load

    assert same(load(served.model_url("tiny"))(val_images[1]), local(val_images[1]))


def test_replica_killed_in_flight(served, local, val_images):
    import os
    import signal
    import threading
    import time

    from edgecv import EdgecvError, load

    remote = load(served.model_url("tiny"), retries=4, backoff_s=0.5)
    expected = [local(im) for im in val_images]
    (pid,) = served.replica_pids("tiny")["tiny"]
    answers: list[str] = []

    def client(k: int) -> None:
        for j in range(12):
            i = (k * 5 + j) % len(val_images)
            try:
                answers.append("right" if same(remote(val_images[i]), expected[i]) else "wrong")
            except EdgecvError as e:
                answers.append(f"error: {e}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert len(answers) == 48 and "wrong" not in answers
    assert all(a == "right" or "tries" in a for a in answers)  # an error says it gave up after its retries
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = served.replica_pids("tiny")["tiny"]
        if pids and pid not in pids:
            break
        time.sleep(0.5)
    assert pids and pid not in pids, "the killed replica did not come back"
    assert same(remote(val_images[2]), expected[2])


def test_bad_urls():
    from edgecv import load
    from edgecv.errors import EdgecvError

    with pytest.raises(EdgecvError, match="not a model URL"):
        load("http://127.0.0.1:1/models")
    with pytest.raises(EdgecvError, match="could not get the model config after 1 tries"):
        load(f"http://127.0.0.1:{_free_port()}/v2/models/x", retries=0)
