"""Issue 20's serving goals, measured on this machine in one run:

1. parity: the served default detector (onnxruntime and openvino FP32, through ``edgecv.load`` of
   the model's URL) against the local bundle on the validation images, at batch 1 one request at
   a time and from 8 client threads at once: every box, class and score within 1e-5;
2. load: 8 concurrent clients x a bounded number of requests each, with dynamic batching and
   without, in alternating rounds (a fresh server each round): requests per second, p50/p99
   latency, errors, lost, duplicated or wrong responses;
3. faults: a replica killed by its pid during load (every answer right or a clear error, none
   wrong; the time until a new replica answers), a 100 MB body and malformed tensors refused
   while the server keeps serving;
4. sharded compare: ``edgecv compare`` on 2 local Ray workers against the single-process run,
   the same table.

    python benchmarks/serving.py [--requests 40] [--rounds 2] [--out benchmarks/results]
    python benchmarks/serving.py --quick        # a smoke run: fewer images and requests, nothing written

Writes ``serving-<date>.json`` and ``serving-<date>.md`` (the tables as printed, a line per goal,
the machine and its ISA). Servers listen on 127.0.0.1 only and are stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import signal
import socket
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgecv import EdgecvError, load
from edgecv.console import table
from edgecv.cpu import machine, physical_cores
from edgecv.data import shapes
from edgecv.export import default_source, export
from edgecv.images import read_image
from edgecv.serving.server import serve

BACKENDS = ("onnxruntime", "openvino")
CLIENTS = 8
TOLERANCE = 1e-5
GOAL_BATCHING = 1.5  # throughput with dynamic batching over without


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gap(a, b) -> float:
    """The largest difference between two Detections (inf when their counts or classes differ)."""
    if len(a) != len(b) or not np.array_equal(a.class_ids, b.class_ids):
        return float("inf")
    if not len(a):
        return 0.0
    return float(max(np.abs(a.xyxy - b.xyxy).max(), np.abs(a.scores - b.scores).max()))


def parity(remote, local, images: list[np.ndarray]) -> dict:
    """Served against local on every image: one request at a time, then from CLIENTS threads at once."""
    want = [local(img) for img in images]
    one = [gap(remote(img), w) for img, w in zip(images, want)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        many = list(pool.map(lambda i: gap(remote(images[i]), want[i]), range(len(images))))
    return {
        "images": len(images),
        "boxes": int(sum(len(w) for w in want)),
        "max_diff_sequential": max(one),
        "max_diff_concurrent": max(many),
        "within_tolerance": max(one + many) <= TOLERANCE,
    }


def batch_cap(bundle: Path, images: list[np.ndarray], batch: int, rounds: int = 5) -> dict:
    """What batching can give at most here: the local bundle's images per second in batches of
    ``batch`` against one image per call, alternated ``rounds`` times (no server, no HTTP)."""
    det = load(bundle, batch_size=batch)
    imgs = [images[i % len(images)] for i in range(batch * 4)]
    det.predict(imgs)
    one, many = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for img in imgs:
            det(img)
        one.append(len(imgs) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        det.predict(imgs)
        many.append(len(imgs) / (time.perf_counter() - t0))
    det.close()
    return {
        "batch1_ips": statistics.median(one),
        f"batch{batch}_ips": statistics.median(many),
        "ratio": statistics.median(many) / statistics.median(one),
    }


def load_round(url: str, images: list[np.ndarray], want: list, requests: int) -> dict:
    """CLIENTS threads, each with its own client, each sending ``requests`` requests (image
    ``(client + k) % len(images)``); every answer is checked against the local result."""
    latencies: list[float] = []
    outcome = {"ok": 0, "errors": 0, "wrong": 0}
    lock = threading.Lock()

    def client(c: int) -> None:
        det = load(url)
        try:
            for k in range(requests):
                i = (c * 7 + k) % len(images)
                t0 = time.perf_counter()
                try:
                    got = det(images[i])
                except EdgecvError:
                    with lock:
                        outcome["errors"] += 1
                    continue
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(ms)
                    outcome["ok" if gap(got, want[i]) <= TOLERANCE else "wrong"] += 1
        finally:
            det.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    sent = CLIENTS * requests
    answered = outcome["ok"] + outcome["wrong"]
    return {
        **outcome,
        "sent": sent,
        "lost": sent - answered - outcome["errors"],
        "rps": answered / seconds,
        "p50_ms": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99)) if latencies else float("nan"),
        "seconds": seconds,
    }


def post(
    port: int,
    path: str,
    body: bytes | Callable[[http.client.HTTPConnection], None],
    length: int,
    headers: dict | None = None,
    timeout: float = 60.0,
) -> tuple[int, str]:
    """POST to the server on 127.0.0.1; ``body`` bytes, or a function that sends them. Returns the
    status and the body (status 0 when the server closed the connection before answering)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("POST", path)
        for k, v in {
            "Content-Length": str(length),
            "Content-Type": "application/octet-stream",
            **(headers or {}),
        }.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            if callable(body):
                body(conn)
            else:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused before reading it all: its answer may still be there
        try:
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        except (http.client.HTTPException, ConnectionError, OSError):
            return 0, ""
    finally:
        conn.close()


def faults(bundle: Path, images: list[np.ndarray], want: list, requests: int, say) -> dict:
    """A replica killed during load; a 100 MB body; malformed tensors; then the server still serves."""
    port = free_port()
    name = "tiny"
    out: dict = {}
    with serve([bundle], names=[name], port=port) as server:
        url = server.model_url(name)
        det = load(url)
        (pid,) = server.replica_pids(name)[name]
        result: dict = {}
        runner = threading.Thread(target=lambda: result.update(load_round(url, images, want, requests)))
        runner.start()
        time.sleep(1.0)
        killed_at = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        say(f"  killed replica pid {pid}")
        back = None
        while time.perf_counter() - killed_at < 120:
            pids = server.replica_pids(name)[name]
            if pids and pids != [pid]:
                try:
                    if gap(det(images[0]), want[0]) <= TOLERANCE:
                        back = time.perf_counter() - killed_at
                        break
                except EdgecvError:
                    pass
            time.sleep(0.5)
        runner.join(timeout=300)
        out["kill"] = {**result, "pid": pid, "recovered_s": back}

        size = 100 * 2**20
        chunk = b"\0" * 2**20

        def send_100mb(conn: http.client.HTTPConnection) -> None:
            for _ in range(size // len(chunk)):
                conn.send(chunk)

        t0 = time.perf_counter()
        status, text = post(port, f"/v2/models/{name}/infer", send_100mb, size)
        out["body_100mb"] = {"status": status, "seconds": time.perf_counter() - t0, "answer": text[:200]}

        h, w = det.input_size
        bad = {
            "wrong datatype": {
                "inputs": [
                    {"name": det.input_name, "datatype": "FP32", "shape": [1, h, w, 3], "data": [0.0] * (h * w * 3)}
                ]
            },
            "wrong shape": {
                "inputs": [{"name": det.input_name, "datatype": "UINT8", "shape": [1, 7, 7, 3], "data": [0] * 147}]
            },
            "too few values": {
                "inputs": [{"name": det.input_name, "datatype": "UINT8", "shape": [1, h, w, 3], "data": [0] * 10}]
            },
            "not JSON": "{inputs: [",
        }
        out["malformed"] = {}
        for what, doc in bad.items():
            raw = (doc if isinstance(doc, str) else json.dumps(doc)).encode()
            status, text = post(port, f"/v2/models/{name}/infer", raw, len(raw), {"Content-Type": "application/json"})
            out["malformed"][what] = {"status": status, "answer": text[:200]}
        out["still_serving"] = gap(det(images[1]), want[1]) <= TOLERANCE
        det.close()
    return out


TIMING_KEYS = ("latency", "_ms", "ms_", "seconds", "created", "timing", "fps", "ray", "workers", "machine")


def timeless(record):
    """A compare record without what depends on when and where it ran (latencies, times, the machine)."""
    if isinstance(record, dict):
        return {k: timeless(v) for k, v in record.items() if not any(t in k.lower() for t in TIMING_KEYS)}
    if isinstance(record, list):
        return [timeless(v) for v in record]
    return record


def differences(a, b, where: str = "") -> list[str]:
    """Where two records differ (paths), for the report when they are not identical."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [where]


def sharded_compare(bundles: list[Path], ann: Path, images_dir: Path, say) -> dict:
    """``edgecv compare SOURCE BUNDLES --data DATA`` in one process and on 2 Ray workers."""
    from edgecv.cli import main

    runs = {}
    for label, extra in (
        ("single process", []),
        ("2 Ray workers", ["--ray", "--workers", "2", "--worker-threads", "2"]),
    ):
        out = Path("build/bench-serving") / f"compare-{len(runs)}.json"
        t0 = time.perf_counter()
        code = main(
            [
                "compare",
                "edgecv-tiny",
                *map(str, bundles),
                "--data",
                str(ann),
                "--images",
                str(images_dir),
                "--json",
                str(out),
                *extra,
            ]
        )
        runs[label] = {"code": code, "seconds": time.perf_counter() - t0, "record": json.loads(out.read_text())}
        say(f"  compare, {label}: exit {code}, {runs[label]['seconds']:.1f} s")
    a, b = (r["record"] for r in runs.values())
    return {
        "seconds": {k: v["seconds"] for k, v in runs.items()},
        "codes": {k: v["code"] for k, v in runs.items()},
        "identical": json.dumps(timeless(a), sort_keys=True) == json.dumps(timeless(b), sort_keys=True),
        "differences": differences(timeless(a), timeless(b)),
        "records": {k: v["record"] for k, v in runs.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=48, help="validation images (shapes val split)")
    ap.add_argument("--requests", type=int, default=40, help="requests per client in each load round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating load rounds with and without batching")
    ap.add_argument("--quick", action="store_true", help="smoke run: 8 images, 5 requests, 1 round, nothing written")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--work", default="build/bench-serving")
    args = ap.parse_args()
    if args.quick:
        args.images, args.requests, args.rounds = 8, 5, 1
    warnings.filterwarnings("ignore")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    images_dir, ann = shapes.write_coco(work / "shapes", "val", args.images)
    images = [read_image(p) for p in sorted(images_dir.glob("*.png"))]
    src = default_source()
    bundles = [export(src, target, out_dir=work / "bundles", progress=say) for target in BACKENDS]
    record: dict = {"parity": {}, "load": {}, "faults": {}}

    say("parity: served against local, batch 1 and 8 clients at once")
    port = free_port()
    with serve(bundles, names=[b.name for b in bundles], port=port) as server:
        for bundle in bundles:
            local = load(bundle)
            remote = load(server.model_url(bundle.name))
            record["parity"][bundle.name] = parity(remote, local, images)
            remote.close()
            local.close()
            say(f"  {bundle.name}: {record['parity'][bundle.name]}")

    bundle = bundles[0]  # onnxruntime: load and faults
    local = load(bundle)
    want = [local(img) for img in images]
    local.close()
    rounds: dict[str, list[dict]] = {"batching": [], "no batching": []}
    for r in range(args.rounds):
        order = ("batching", "no batching") if r % 2 == 0 else ("no batching", "batching")
        for mode in order:
            with serve([bundle], names=["tiny"], port=(port := free_port()), batching=mode == "batching") as server:
                load(server.model_url("tiny"))(images[0])  # warm the replica
                res = load_round(server.model_url("tiny"), images, want, args.requests)
            rounds[mode].append(res)
            say(
                f"  round {r + 1}/{args.rounds}, {mode}: {res['rps']:.1f} req/s, p50 {res['p50_ms']:.1f} ms, "
                f"p99 {res['p99_ms']:.1f} ms, errors {res['errors']}, wrong {res['wrong']}, lost {res['lost']}"
            )
    record["load"] = rounds
    record["batch_cap"] = batch_cap(bundle, images, 8)
    say(f"  local graph, batch 8 against batch 1: {record['batch_cap']['ratio']:.2f}x images per second")

    say("faults: a replica killed during load, a 100 MB body, malformed tensors")
    record["faults"] = faults(bundle, images, want, args.requests, say)

    say("sharded compare: single process against 2 Ray workers")
    record["sharded"] = sharded_compare(bundles, ann, images_dir, say)

    # --- tables -----------------------------------------------------------------------------
    par_rows = [
        (
            name,
            p["images"],
            p["boxes"],
            f"{p['max_diff_sequential']:.1e}",
            f"{p['max_diff_concurrent']:.1e}",
            "yes" if p["within_tolerance"] else "NO",
        )
        for name, p in record["parity"].items()
    ]
    par_table = table(
        ("bundle", "images", "boxes", "max diff, batch 1", f"max diff, {CLIENTS} clients", "within 1e-5"), par_rows
    )
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms")} for m, rs in rounds.items()}
    load_rows = [
        (
            mode,
            f"{med[mode]['rps']:.1f}",
            f"{med[mode]['p50_ms']:.1f}",
            f"{med[mode]['p99_ms']:.1f}",
            sum(r["sent"] for r in rs),
            sum(r["errors"] for r in rs),
            sum(r["lost"] for r in rs),
            sum(r["wrong"] for r in rs),
        )
        for mode, rs in rounds.items()
    ]
    load_table = table(("server", "req/s", "p50 ms", "p99 ms", "sent", "errors", "lost", "wrong"), load_rows)
    f = record["faults"]
    k = f["kill"]
    fault_rows = [
        (
            "replica killed by pid during load",
            f"{k.get('ok', 0)} right, {k.get('errors', 0)} clear errors, "
            f"{k.get('wrong', 0)} wrong, {k.get('lost', 0)} lost; back after "
            + (f"{k['recovered_s']:.1f} s" if k.get("recovered_s") is not None else "NOT back"),
        ),
        ("100 MB body", f"status {f['body_100mb']['status']} in {f['body_100mb']['seconds']:.2f} s"),
        *((f"malformed: {w}", f"status {v['status']}") for w, v in f["malformed"].items()),
        ("serving afterwards", "yes" if f["still_serving"] else "NO"),
    ]
    fault_table = table(("case", "outcome"), fault_rows)
    sh = record["sharded"]
    shard_table = table(
        ("run", "exit", "seconds"), [(k2, sh["codes"][k2], f"{v:.1f}") for k2, v in sh["seconds"].items()]
    )
    ratio = med["batching"]["rps"] / med["no batching"]["rps"]
    all_right = all(p["within_tolerance"] for p in record["parity"].values())
    load_clean = all(r["errors"] == 0 and r["lost"] == 0 and r["wrong"] == 0 for rs in rounds.values() for r in rs)
    verdicts = [
        f"the served detector returns the same boxes as the local bundle (within 1e-5, batch 1 and {CLIENTS} "
        f"clients): {'met' if all_right else 'NOT met'}",
        f"load, {CLIENTS} clients: 0 errors, 0 lost or duplicated: {'met' if load_clean else 'NOT met'}",
        f"throughput with dynamic batching >= 1.5x without: {ratio:.2f}x ({med['batching']['rps']:.1f} against "
        f"{med['no batching']['rps']:.1f} req/s; p99 {med['batching']['p99_ms']:.1f} against "
        f"{med['no batching']['p99_ms']:.1f} ms) — {'met' if ratio >= GOAL_BATCHING else 'NOT met'}; the local "
        f"graph itself gives {record['batch_cap']['ratio']:.2f}x images per second in batches of 8 against 1",
        f"a replica killed mid-load: none answered wrongly ({k.get('wrong', 0)} wrong), back: "
        f"{'yes' if k.get('recovered_s') is not None else 'NO'}; 100 MB body and malformed tensors refused "
        f"({f['body_100mb']['status']}, {', '.join(str(v['status']) for v in f['malformed'].values())}), "
        f"serving afterwards: {'yes' if f['still_serving'] else 'NO'}",
        f"sharded compare on 2 Ray workers gives the identical table: {'met' if sh['identical'] else 'NOT met'}",
    ]
    elapsed = time.perf_counter() - started
    print(par_table, "", load_table, "", fault_table, "", shard_table, "", *verdicts, sep="\n")
    say(f"{elapsed:.0f} s in all")
    if args.quick:
        say("--quick: nothing written")
        return
    m = machine()
    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"serving-{stamp}.json").write_text(
        json.dumps(
            {
                "machine": m,
                "physical_cores": physical_cores(),
                "args": vars(args),
                **record,
                "goals": verdicts,
                "seconds": elapsed,
            },
            indent=2,
            default=float,
        )
    )
    (out / f"serving-{stamp}.md").write_text(
        f"# Serving, {stamp}\n\n"
        f"edgecv-tiny (input 320) served by `edgecv.serving.serve` on Ray Serve (one replica per model, "
        f"127.0.0.1), clients `edgecv.load(URL)` in this process. {m['cpu']}, {m['cores']} logical CPUs "
        f"({physical_cores()} physical cores), ISA {' '.join(m['isa']) or 'unknown'}, Python {m['python']}, "
        f"{', '.join(f'{k2} {v}' for k2, v in m['versions'].items())}.\n\n"
        f"## Parity ({len(images)} shapes validation images)\n\n```\n{par_table}\n```\n\n"
        f"## Load ({bundle.name}; {CLIENTS} clients x {args.requests} requests, {args.rounds} alternating rounds)\n\n"
        f"```\n{load_table}\n```\n\n"
        "req/s: answered requests over the round's wall time, median of the rounds; p50/p99: per-request "
        "latency at the client (letterbox, HTTP, server, decoding), median of the rounds; wrong: an answer "
        "that differs from the local bundle's by more than 1e-5; lost: neither answered nor an error.\n\n"
        f"## Faults ({bundle.name})\n\n```\n{fault_table}\n```\n\n"
        f"## Sharded compare (source against both bundles)\n\n```\n{shard_table}\n```\n\n"
        "## Against issue 20's goals\n\n" + "".join(f"- {v}\n" for v in verdicts)
    )
    say(f"wrote {out / f'serving-{stamp}.md'} and .json")


if __name__ == "__main__":
    main()
