"""Issue 19's two tracking speed goals, measured side by side in one run with the default
detector (edgecv-tiny at its size, 320) exported to onnxruntime and openvino FP32:

1. what tracking adds to the per-frame time: detection alone against detection + tracker
   (bytetrack, the goal's; sort and ocsort as extra rows) on the same decoded frames held in
   memory, in alternating rounds (odd rounds in reverse order, so drift cancels);
2. the stream pipeline (``edgecv.tracking.track``) against a naive read-infer-track loop
   (``open_source``, ``det(frame.image)``, ``tracker.update``) on an mp4, frames per second end
   to end with decoding, the two alternated round by round; both must give the same frames and
   the same track ids.

    python benchmarks/track_speed.py [--frames 300] [--rounds 5] [--out benchmarks/results]
    python benchmarks/track_speed.py --quick          # a smoke run: 30 frames, 1 round, nothing written

Writes ``track-speed-<date>.json`` and ``track-speed-<date>.md`` (the tables as printed, a
line per goal, the machine and its ISA). Medians from a shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from edgecv import load
from edgecv.console import table
from edgecv.cpu import machine, physical_cores
from edgecv.data.moving_shapes import write_mot, write_video
from edgecv.export import default_source, export
from edgecv.tracking import make_tracker, track
from edgecv.video import Frame, open_source

BACKENDS = ("onnxruntime", "openvino")
TRACKERS = ("bytetrack", "sort", "ocsort")  # bytetrack is the goal's; the others are extra rows
GOAL_OVERHEAD = 1.10  # tracking adds at most 10% to the per-frame time
GOAL_SPEEDUP = 1.5  # the stream pipeline reaches 1.5x the naive loop's frames per second


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def overhead(det, frames: list[Frame], fps: float, rounds: int, say) -> dict:
    """Per-frame time of detection alone and of detection + each tracker on ``frames``.

    Each round runs every mode once over all frames (a fresh tracker each time); odd rounds run
    the modes in reverse order. Returns, per mode, the per-frame seconds of all rounds (and for
    the trackers the seconds of ``update`` alone) and the detections per frame.
    """
    modes = ("detect", *TRACKERS)
    total: dict[str, list[float]] = {m: [] for m in modes}
    update: dict[str, list[float]] = {m: [] for m in TRACKERS}
    boxes: list[int] = []
    for r in range(rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:
            tracker = make_tracker(mode, frame_rate=fps) if mode != "detect" else None
            for f in frames:
                t0 = time.perf_counter()
                dets = det(f.image)
                t1 = time.perf_counter()
                if tracker is not None:
                    tracker.update(dets, f)
                t2 = time.perf_counter()
                total[mode].append(t2 - t0)
                if tracker is not None:
                    update[mode].append(t2 - t1)
                elif r == 0:
                    boxes.append(len(dets))
        say(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{m} {median_ms(total[m][-len(frames) :]):.2f} ms" for m in modes)
        )
    return {"total": total, "update": update, "boxes": boxes}


def signature(tracks) -> list[tuple[int, list[float]]]:
    """One frame's tracks as (id, box) pairs in id order, for comparing two runs."""
    ids = tracks.tracker_ids.tolist() if tracks.tracker_ids is not None else []
    return sorted(zip(ids, tracks.xyxy.tolist()))


def naive(det, video: Path) -> tuple[float, list]:
    """The loop a user writes first: read a frame, detect, track, one after another."""
    t0 = time.perf_counter()
    out = []
    with open_source(video) as cap:
        tracker = make_tracker("bytetrack", frame_rate=cap.fps)  # as track() makes it
        for f in cap:
            dets = det(f.image)
            out.append(signature(tracker.update(dets, f)))
    return time.perf_counter() - t0, out


def streamed(det, video: Path) -> tuple[float, list]:
    """edgecv.tracking.track: decoding, inference and tracking overlapped."""
    t0 = time.perf_counter()
    out = [signature(tracks) for _, tracks in track(det, video, "bytetrack")]
    return time.perf_counter() - t0, out


def parity(a: list, b: list) -> dict:
    """Whether two runs gave the same frames, the same ids per frame, and how far their boxes are apart."""
    same_ids = sum([i for i, _ in x] == [i for i, _ in y] for x, y in zip(a, b))
    gaps = [
        float(np.abs(np.asarray(bx) - np.asarray(by)).max())
        for x, y in zip(a, b)
        for (_, bx), (_, by) in zip(x, y)
        if [i for i, _ in x] == [i for i, _ in y]
    ]
    return {
        "frames": [len(a), len(b)],
        "same_frames": len(a) == len(b),
        "frames_same_ids": same_ids,
        "same_ids": len(a) == len(b) and same_ids == len(a),
        "max_box_diff_px": max(gaps, default=0.0),
        "tracks": len({i for x in a for i, _ in x}),
    }


def pipelines(det, video: Path, rounds: int, say) -> dict:
    """Frames per second of the naive loop and of the stream pipeline, alternated ``rounds`` times."""
    fps: dict[str, list[float]] = {"naive": [], "stream": []}
    runs: dict[str, list] = {}
    for r in range(rounds):
        for name, run in (("naive", naive), ("stream", streamed)):
            seconds, out = run(det, video)
            fps[name].append(len(out) / seconds)
            runs.setdefault(name, out)
            if out != runs[name]:
                say(f"  warning: {name} round {r + 1} tracked differently from its first round")
        say(f"  round {r + 1}/{rounds}: naive {fps['naive'][-1]:.1f} fps, stream {fps['stream'][-1]:.1f} fps")
    return {"fps": fps, "parity": parity(runs["naive"], runs["stream"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames of the generated sequence and its mp4")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of each comparison")
    ap.add_argument("--quick", action="store_true", help="smoke run: 30 frames, 1 round, results not written")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--work", default="build/bench-track-speed")
    args = ap.parse_args()
    if args.quick:
        args.frames, args.rounds = 30, 1
    warnings.filterwarnings("ignore")
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    work = Path(args.work)

    (seq,) = write_mot(work / "mot", sequences=1, frames=args.frames, seed=args.seed)
    video = work / f"{seq.name}-{args.frames}.mp4"
    if not video.exists():
        write_video(seq, video)
    with open_source(video) as src:
        frames, fps, size = list(src), src.fps, src.size
    say(f"{video}: {len(frames)} frames of {size[0]}x{size[1]} at {fps:g} fps")

    src_model = default_source()
    bundles = [export(src_model, target, out_dir=work / "bundles", progress=say) for target in BACKENDS]

    over_rows, pipe_rows, record, verdicts = [], [], {}, []
    for bundle in bundles:
        det = load(bundle)
        key = det.key
        say(f"{bundle.name}: {det.threads_used} threads, input {det.input_size[1]}x{det.input_size[0]}")
        for f in frames[:10]:  # warm up the call path and the stream's own compilation
            det(f.image)
        for _ in track(det, frames[:10], "bytetrack"):
            pass

        say(f"{bundle.name}: tracking overhead, in-memory frames")
        o = overhead(det, frames, fps, args.rounds, say)
        base = median_ms(o["total"]["detect"])
        over_rows.append((bundle.name, "none (detection alone)", f"{base:.2f}", "1.000", "", ""))
        for name in TRACKERS:
            ms, upd = median_ms(o["total"][name]), median_ms(o["update"][name])
            over_rows.append((bundle.name, name, f"{ms:.2f}", f"{ms / base:.3f}", f"{upd:.3f}", f"{upd / base:.1%}"))
        ratio = median_ms(o["total"]["bytetrack"]) / base
        verdicts.append(
            f"Tracking adds at most 10% to the per-frame time ({key}): detection + bytetrack is "
            f"{ratio:.3f}x detection alone ({(ratio - 1) * 100:+.1f}%; bytetrack's update alone "
            f"{median_ms(o['update']['bytetrack']):.3f} ms) — {'met' if ratio <= GOAL_OVERHEAD else 'NOT met'}"
        )

        say(f"{bundle.name}: stream pipeline against the naive loop, {video.name}")
        p = pipelines(det, video, args.rounds, say)
        naive_fps, stream_fps = statistics.median(p["fps"]["naive"]), statistics.median(p["fps"]["stream"])
        par = p["parity"]
        pipe_rows.append(
            (
                bundle.name,
                f"{naive_fps:.1f}",
                f"{stream_fps:.1f}",
                f"{stream_fps / naive_fps:.2f}x",
                f"{par['frames'][0]} / {par['frames'][1]}",
                f"{par['frames_same_ids']}/{par['frames'][0]}",
                f"{par['max_box_diff_px']:.2g}",
            )
        )
        speedup = stream_fps / naive_fps
        verdicts.append(
            f"The stream pipeline reaches >= 1.5x the naive loop's frames per second ({key}): "
            f"{speedup:.2f}x ({stream_fps:.1f} against {naive_fps:.1f} fps) — "
            f"{'met' if speedup >= GOAL_SPEEDUP else 'NOT met'}; same frames and ids: "
            f"{'yes' if par['same_ids'] else 'NO'}"
        )
        record[key] = {
            "bundle": bundle.name,
            "threads": det.threads_used,
            "overhead": {
                "per_frame_ms": {m: median_ms(v) for m, v in o["total"].items()},
                "update_ms": {m: median_ms(v) for m, v in o["update"].items()},
                "per_round_ms": {
                    m: [median_ms(v[i : i + len(frames)]) for i in range(0, len(v), len(frames))]
                    for m, v in o["total"].items()
                },
                "detections_per_frame": float(np.mean(o["boxes"])),
            },
            "pipeline": {"fps_per_round": p["fps"], "naive_fps": naive_fps, "stream_fps": stream_fps, **par},
        }
        det.close()

    m = machine()
    over_table = table(("bundle", "tracker", "ms/frame", "x detection", "update ms", "update share"), over_rows, left=2)
    pipe_table = table(
        ("bundle", "naive fps", "stream fps", "speed-up", "frames (naive / stream)", "same ids", "max box diff px"),
        pipe_rows,
    )
    elapsed = time.perf_counter() - started
    boxes = np.mean([r["overhead"]["detections_per_frame"] for r in record.values()])
    threads = ", ".join(f"{k} {r['threads']}" for k, r in record.items())
    print(over_table, "", pipe_table, "", *verdicts, sep="\n")
    say(f"{elapsed:.0f} s in all")
    if args.quick:
        say("--quick: nothing written")
        return

    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"track-speed-{stamp}.json").write_text(
        json.dumps(
            {
                "machine": m,
                "physical_cores": physical_cores(),
                "args": vars(args),
                "video": {"path": str(video), "frames": len(frames), "size": list(size), "fps": fps},
                "backends": record,
                "goals": verdicts,
                "seconds": elapsed,
            },
            indent=2,
            default=float,
        )
    )
    (out / f"track-speed-{stamp}.md").write_text(
        f"# Tracking speed, {stamp}\n\n"
        f"edgecv-tiny ({', '.join(r['bundle'] for r in record.values())}, input 320) on moving-shapes sequence "
        f"{seq.name} (seed {args.seed}), {len(frames)} frames of {size[0]}x{size[1]} at {fps:g} fps, "
        f"{boxes:.1f} detections per frame. {m['cpu']}, {m['cores']} logical CPUs ({physical_cores()} physical "
        f"cores), ISA {' '.join(m['isa']) or 'unknown'}, Python {m['python']}, "
        f"{', '.join(f'{k} {v}' for k, v in m['versions'].items())}; threads: "
        f"{threads}.\n\n"
        f"## Tracking overhead (frames decoded into memory, {args.rounds} alternating rounds)\n\n"
        f"```\n{over_table}\n```\n\n"
        "ms/frame: median over every frame of every round of `det(image)` alone, or followed by "
        "`tracker.update`; x detection: that median over detection alone's; update ms: the median of "
        "`tracker.update` alone; update share: that over detection alone's median.\n\n"
        f"## Stream pipeline against the naive loop ({video.name}, {args.rounds} alternating rounds)\n\n"
        f"```\n{pipe_table}\n```\n\n"
        "fps: frames over seconds from opening the file to the last tracked frame (decoding included), "
        "median of the rounds. naive: `open_source`, then `det(frame.image)` and `tracker.update` frame by "
        "frame; stream: `for frame, tracks in track(det, mp4, 'bytetrack')`. same ids: frames whose "
        "track ids are the same in both; max box diff: the largest coordinate difference of a tracked box.\n\n"
        "## Against issue 19's goals\n\n" + "".join(f"- {v}\n" for v in verdicts)
    )
    say(f"wrote {out / f'track-speed-{stamp}.md'} and .json")


if __name__ == "__main__":
    main()
