"""``edgecv serve``: bundles served over the Open Inference Protocol (KServe v2) on Ray Serve
(:func:`edgecv.serving.server.serve`), until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from ..errors import EdgecvError


def setup_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="+", metavar="BUNDLE", help="bundle directories, one model each")
    p.add_argument("--replicas", type=int, default=1, help="replicas of each model, one process each (default 1)")
    p.add_argument(
        "--max-batch",
        type=int,
        default=8,
        help="most images per run of a model and per request (default 8; a fixed-batch bundle uses its batch, a "
        "TensorRT bundle at most its profile's)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long a batch waits for more requests after its first (default 5)",
    )
    p.add_argument("--no-batching", action="store_true", help="run each request alone (no dynamic batching)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument(
        "--address", default=None, help="an existing Ray cluster (e.g. auto, ray://HOST:10001); default: a local Ray"
    )
    p.add_argument(
        "--name",
        action="append",
        dest="names",
        metavar="NAME",
        help="model name, once per bundle in order (default: each manifest's name)",
    )
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=None,
        help="refuse larger request bodies with 413 (default: a model's largest valid request plus 1 MB; 32 MB "
        "for /detect)",
    )


def run_serve(a: argparse.Namespace) -> int:
    try:
        from ..serving.server import serve
    except ImportError as e:
        raise EdgecvError(f"edgecv serve needs Ray Serve ({e}): pip install 'edgecv[serve]'") from None

    stop = threading.Event()
    # SIGTERM and SIGINT stop the server, from before it starts (a signal during the start stops
    # it once started). SIGINT is said explicitly: a shell starts a background job
    # (`edgecv serve ... &`) with SIGINT ignored, and Python then never raises KeyboardInterrupt.
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = serve(
            a.bundles,
            replicas=a.replicas,
            max_batch=a.max_batch,
            batch_wait_ms=a.batch_wait_ms,
            batching=not a.no_batching,
            host=a.host,
            port=a.port,
            address=a.address,
            names=a.names,
            max_body_bytes=None if a.max_body_mb is None else int(a.max_body_mb * 2**20),
        )
        try:
            batching = "off" if a.no_batching else f"up to {a.max_batch} images, {a.batch_wait_ms:g} ms wait"
            print(
                f"serving on {server.url} (Open Inference Protocol v2; {a.replicas} replica(s) a model; "
                f"batching {batching})"
            )
            for name, url in server.models.items():
                print(f"  {name:<24} {url}")
                print(f"  {'':<24} POST {url}/infer (tensors), POST {url}/detect (an encoded image -> JSON)")
            first = next(iter(server.models.values()))
            print(f'client: det = edgecv.load("{first}")')
            print("Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            print("stopping", flush=True)
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
