"""The latency harness: warm-up, then timed iterations per batch size and thread count,
with the stage breakdown from the runtime base class's timing hooks. The regression gates
built on timing are in :mod:`edgecv.latency`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .cpu import machine
from .errors import EdgecvError

STAGES = ("preprocess", "infer", "postprocess", "e2e")


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, mean, std, min, max of a list of milliseconds."""
    a = np.asarray(samples_ms, dtype=np.float64)
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def synthetic_image(h: int = 480, w: int = 640) -> np.ndarray:
    """A fixed, deterministic image for benchmarks without a data set."""
    from .data import shapes

    img = shapes.render(shapes.SPLIT_SEEDS["calib"], 0).image
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def cycled_batches(images: Sequence[np.ndarray] | None, batch: int) -> list[list[np.ndarray]]:
    """Batches of ``batch`` images cycled from ``images`` (the fixed synthetic image when None),
    as many as there are images."""
    imgs = list(images) if images else [synthetic_image()]
    return [[imgs[(i * batch + j) % len(imgs)] for j in range(batch)] for i in range(len(imgs))]


@dataclass
class BenchResult:
    rows: list[dict]
    machine: dict
    settings: dict

    def to_dict(self) -> dict:
        return {"rows": self.rows, "machine": self.machine, "settings": self.settings}

    def save(self, path: str | os.PathLike) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, p)


def bench_detector(
    det,
    images: Sequence[np.ndarray],
    batch: int = 1,
    seconds: float = 10.0,
    min_iters: int = 30,
    warmup: int = 5,
    warmup_seconds: float = 1.0,
) -> dict:
    """Time ``det.predict`` on batches cycled from ``images``.

    Warm-up: at least ``warmup`` calls and ``warmup_seconds``; then at least ``min_iters`` calls
    and ``seconds``. Returns per-stage summaries in ms per call and images per second.
    """
    if not images:
        raise EdgecvError("bench needs at least one image")
    batches = cycled_batches(images, batch)
    t_end, n = time.perf_counter() + warmup_seconds, 0
    while n < warmup or time.perf_counter() < t_end:
        det.predict(batches[n % len(batches)])
        n += 1
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    t_end, n = time.perf_counter() + seconds, 0
    while n < min_iters or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        det.predict(batches[n % len(batches)])
        e2e = (time.perf_counter() - t0) * 1000
        for s in STAGES[:3]:
            samples[s].append(det.last_timing[s] * 1000)
        samples["e2e"].append(e2e)
        n += 1
    stats = {s: summarize(v) for s, v in samples.items()}
    return {
        "iterations": n,
        "warmup": warmup,
        "stages_ms": stats,
        "throughput_ips": batch * 1000 / stats["e2e"]["mean"],
    }


def stream_fps(det, images: Sequence[np.ndarray], frames: int = 60, depth: int = 3) -> float:
    """Frames per second of ``det.stream`` over ``frames`` frames cycled from ``images`` (after a
    warm-up stream of ``2 * depth`` frames)."""
    import itertools

    for _ in det.stream(itertools.islice(itertools.cycle(images), 2 * depth), depth=depth):
        pass
    t0, n = time.perf_counter(), 0
    for _ in det.stream(itertools.islice(itertools.cycle(images), frames), depth=depth):
        n += 1
    return n / (time.perf_counter() - t0)


def model_file(det) -> Path | None:
    """The graph file of a loaded bundle whose operations can be counted (ONNX or OpenVINO IR)."""
    bundle = getattr(det, "bundle", None)
    if bundle is None:
        return None
    for role in ("model", "graph"):
        try:
            f = bundle.file(role)
        except Exception:  # noqa: BLE001 - a bundle without that role
            continue
        if f.suffix in (".onnx", ".xml"):
            return f
    return None


def computed_precision(det) -> str:
    """The precision a detector computes its heavy layers in: int8 for INT8 bundles, else what the
    backend reports (openvino falls back from bf16 to f32 where the CPU lacks it), else fp32."""
    if det.manifest.get("precision") == "int8":
        return "int8"
    ran = getattr(det, "inference_precision", None)
    if ran:
        return {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(ran, ran)
    from .targets import get

    # a GPU computes an FP16 graph in FP16; CPU backends run its heavy layers in FP32
    return "fp16" if det.manifest.get("precision") == "fp16" and get(det.key).needs_gpu else "fp32"


def limit_of(det, row: dict, peaks: dict, say: Callable[[str], None] | None = None) -> dict:
    """The model's operations per image, the backend's measured peak at the precision it computes
    in (measured once per backend and precision, kept in ``peaks``) and the fraction of it
    achieved, by inference alone and end to end. Empty where it cannot be counted or measured."""
    from .limits import count_operations, measure_peak
    from .targets import get

    f = model_file(det)
    if f is None or not get(det.key).peak:
        return {}
    prec = computed_precision(det)
    key = (det.key, prec, row["threads"])
    if key not in peaks:
        if say:
            say(f"peak of {det.key} at {prec}: a large matrix product")
        try:
            peaks[key] = measure_peak(det.key, prec, threads=det.threads_used)
        except EdgecvError:
            peaks[key] = None
    peak = peaks[key]
    ops = count_operations(f)
    if peak is None:
        return {"gops_per_image": ops.gops}
    st = row["stages_ms"]
    infer = ops.gops * row["batch"] / (st["infer"]["p50"] / 1000)
    e2e = ops.gops * row["batch"] / (st["e2e"]["p50"] / 1000)
    return {
        "gops_per_image": ops.gops,
        "peak": {"precision": peak.precision, "gops_per_s": peak.gops_per_s, "shape": list(peak.shape)},
        "achieved_gops_per_s": {"infer": infer, "e2e": e2e},
        "fraction_of_peak": {"infer": infer / peak.gops_per_s, "e2e": e2e / peak.gops_per_s},
    }


def bench(
    models: Sequence[Any],
    batches: Sequence[int] = (1,),
    threads: Sequence[int | None] = (None,),
    seconds: float = 10.0,
    min_iters: int = 30,
    warmup: int = 5,
    images: Sequence[np.ndarray] | None = None,
    open_model: Callable[..., Any] | None = None,
    say: Callable[[str], None] | None = None,
    stream: bool = False,
    peak: bool = False,
) -> BenchResult:
    """Benchmark each model at each batch size and thread count, side by side in one run.

    Args:
        models: bundle directories or sources (opened with ``open_model(spec, threads=t)``).
        images: real images (BGR) to cycle through; a fixed synthetic image when None.
        stream: also measure the frames per second of ``det.stream`` (once per model and threads).
        peak: also count the model's operations, measure the backend's peak at the same
            precision and report the fraction achieved (see :mod:`edgecv.limits`).
    """
    from .comparison import model_name
    from .pipeline import open_model as default_open

    opener = open_model or default_open
    imgs = list(images) if images else [synthetic_image()]
    rows = []
    peaks: dict = {}
    for spec in models:
        for t in threads:
            det = opener(spec, threads=t) if t else opener(spec)
            try:
                name = model_name(spec, det)
                fps = None
                for b in batches:
                    if say:
                        say(f"bench {name}: batch {b}, threads {t or 'default'}")
                    r = bench_detector(det, imgs, b, seconds, min_iters, warmup)
                    row = {
                        "model": name,
                        "target": det.manifest["target"],
                        "precision": det.manifest["precision"],
                        "batch": b,
                        "threads": t or "default",
                        "threads_used": getattr(det, "threads_used", None),
                        **r,
                    }
                    if stream and fps is None:
                        if say:
                            say(f"bench {name}: stream, threads {t or 'default'}")
                        fps = stream_fps(det, imgs)
                    if stream:
                        row["stream_fps"] = fps
                    if peak:
                        row.update(limit_of(det, row, peaks, say))
                    rows.append(row)
            finally:
                det.close()
    settings = {
        "batches": list(batches),
        "threads": [t or "default" for t in threads],
        "seconds": seconds,
        "min_iters": min_iters,
        "warmup": warmup,
        "images": "dataset" if images else "synthetic 640x480",
        "stream": stream,
        "peak": peak,
    }
    return BenchResult(rows, machine(), settings)


def bench_table(result: BenchResult) -> str:
    from .console import table

    rows = []
    stream = any("stream_fps" in r for r in result.rows)
    peak = any("fraction_of_peak" in r for r in result.rows)
    nodes = any("node" in r for r in result.rows)  # bench --ray: where each row ran
    for r in result.rows:
        s = r["stages_ms"]
        used = r.get("threads_used")
        threads = f"{r['threads']} ({used})" if r["threads"] == "default" and used else r["threads"]
        row = [
            r["model"],
            r["batch"],
            threads,
            f"{s['preprocess']['p50']:.2f}",
            f"{s['infer']['p50']:.2f}",
            f"{s['postprocess']['p50']:.2f}",
            f"{s['e2e']['p50']:.2f}",
            f"{s['e2e']['p90']:.2f}",
            f"{s['e2e']['p99']:.2f}",
            f"{s['e2e']['mean']:.2f}±{s['e2e']['std']:.2f}",
            f"{r['throughput_ips']:.1f}",
        ]
        if stream:
            row.append(f"{r['stream_fps']:.1f}" if r.get("stream_fps") else "—")
        if peak:
            f = r.get("fraction_of_peak")
            row += [
                f"{r['gops_per_image']:.2f}" if "gops_per_image" in r else "—",
                f"{r['peak']['gops_per_s']:.0f} {r['peak']['precision']}" if f else "—",
                f"{f['infer'] * 100:.0f}% / {f['e2e'] * 100:.0f}%" if f else "—",
            ]
        if nodes:
            row.append(r.get("node", "—"))
        rows.append((*row, r["iterations"]))
    head = [
        "model",
        "batch",
        "threads",
        "pre p50",
        "infer p50",
        "post p50",
        "e2e p50",
        "p90",
        "p99",
        "mean±std",
        "img/s",
    ]
    if stream:
        head.append("stream fps")
    if peak:
        head += ["GOPs/img", "peak GOP/s", "of peak infer / e2e"]
    if nodes:
        head.append("node")
    return table(tuple(head + ["iters"]), rows, left=1) + "\n(ms per call; threads: asked (used))"
