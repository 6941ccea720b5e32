"""``edgecv track``: a bundle and a tracker over a video, a folder of frames, a camera or a
stream (:func:`edgecv.tracking.track`), with the tracks written as an annotated mp4,
MOTChallenge text and JSON lines; and ``predict``'s video files, frame by frame."""

from __future__ import annotations

import argparse
import configparser
import sys
import time
from pathlib import Path
from typing import Any

from .. import targets
from ..console import count, progress_bar
from ..errors import EdgecvError
from ..tracking import TRACKERS

#: the file suffixes ``predict`` reads as videos (frame by frame) rather than as images
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def setup_track(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source",
        help="a video file, a folder of frames or a glob, a MOTChallenge sequence folder (its img1/), "
        "a camera index or an rtsp:// or http:// URL",
    )
    p.add_argument("--model", required=True, help="bundle directory")
    p.add_argument(
        "--tracker",
        choices=tuple(TRACKERS),
        default="bytetrack",
        help="; ".join(f"{k}: {what}" for k, (_, what) in TRACKERS.items()) + " (default: bytetrack)",
    )
    p.add_argument("--save", help="write the video with the tracks drawn to this .mp4 file")
    p.add_argument("--txt", help="write the tracks as MOTChallenge text (frame,id,x,y,w,h,score,class,-1,-1)")
    p.add_argument("--jsonl", help="write one JSON line per frame with its tracked objects")
    p.add_argument("--conf", type=float, default=None, help="minimum detection score (default: the bundle's, 0.25)")
    p.add_argument(
        "--show-fps",
        action="store_true",
        help="print the frames per second and tracks once a second as it runs (a live source has no progress bar)",
    )
    p.add_argument(
        "--backend",
        choices=targets.export_keys(),
        default=None,
        help="run the bundle on this backend (default: its target's), as predict --backend does",
    )
    p.add_argument(
        "--trust-plan-code",
        action="store_true",
        help="allow a version-compatible TensorRT plan's host code, as predict --trust-plan-code does",
    )


def sequence_source(spec: str) -> tuple[str, float | None]:
    """A MOTChallenge sequence folder as its frames (``img1/``) and its seqinfo.ini frame rate;
    any other source as given."""
    folder = Path(spec)
    if not (folder / "img1").is_dir():
        return spec, None
    info = configparser.ConfigParser()
    info.read(folder / "seqinfo.ini")
    rate = info.get("Sequence", "frameRate", fallback=None)
    return str(folder / "img1"), float(rate) if rate else None


def run_track(a: argparse.Namespace) -> int:
    from ..runtimes import load
    from ..tracking import JsonlWriter, MotWriter, draw_tracks, make_tracker, track
    from ..video import VideoWriter, open_source

    if a.save and Path(a.save).suffix.lower() != ".mp4":
        raise EdgecvError(f"--save writes an mp4 video: give a file name ending in .mp4, not '{a.save}'")
    spec, rate = sequence_source(a.source)
    backend = {"backend": a.backend} if a.backend else {}
    with (
        open_source(spec, fps=rate) as src,
        load(a.model, **backend, conf=a.conf, trust_plan_code=a.trust_plan_code) as det,
    ):
        tracker = make_tracker(a.tracker, **({"frame_rate": float(src.fps)} if src.fps else {}))
        txt = MotWriter(a.txt) if a.txt else None
        jsonl = JsonlWriter(a.jsonl) if a.jsonl else None
        video: VideoWriter | None = None
        frames = 0
        ids: set[int] = set()
        start = last_report = time.perf_counter()
        results = track(det, src, tracker, conf=a.conf)
        bar = progress_bar(
            results, total=src.frame_count or 0, desc="track", enabled=bool(src.frame_count) and sys.stderr.isatty()
        )
        if hasattr(bar, "unit"):  # tqdm: frames per second rather than iterations
            bar.unit = "frame"
        try:
            for frame, tracks in bar:
                frames += 1
                if tracks.tracker_ids is not None:
                    ids.update(tracks.tracker_ids.tolist())
                if txt:
                    txt.write(frame, tracks)
                if jsonl:
                    jsonl.write(frame, tracks)
                if a.save:
                    if video is None:
                        h, w = frame.image.shape[:2]
                        video = VideoWriter(a.save, src.fps or 30.0, (w, h))
                    video.write(draw_tracks(frame.image, tracks))
                now = time.perf_counter()
                if a.show_fps and now - last_report >= 1.0:
                    last_report = now
                    print(
                        f"frame {frame.index + 1}: {count(len(tracks), 'track')} now, {frames / (now - start):.1f} fps",
                        file=sys.stderr,
                    )
        finally:
            for w in (txt, jsonl, video):
                if w is not None:
                    w.close()
            if hasattr(bar, "close"):
                bar.close()
        seconds = time.perf_counter() - start
        print(
            f"tracked {count(frames, 'frame')} of {a.source}: {count(len(ids), 'track')}, "
            f"{count(src.dropped, 'dropped frame')}, {frames / seconds if seconds > 0 else 0.0:.1f} fps "
            f"({det.key}, {tracker.name})"
        )
    for what, path in (("video", a.save), ("tracks", a.txt), ("frames", a.jsonl)):
        if path:
            print(f"wrote {what}: {path}")
    return 0


def is_video_file(spec: str) -> bool:
    """Whether a ``predict`` argument is a video file (by its suffix)."""
    return Path(spec).suffix.lower() in VIDEO_SUFFIXES


def predict_video(det: Any, spec: str, save: Path | None, quiet: bool) -> list:
    """``predict`` on a video file: every frame through the detector (overlapped, by its
    ``stream``), a summary line per frame unless ``quiet``, the drawn frames into ``save`` (an
    mp4). Returns each frame's results as JSON."""
    from ..video import VideoWriter, open_source

    if save is not None and save.suffix.lower() != ".mp4":
        raise EdgecvError(
            f"--save for a video writes an mp4: give a file name ending in .mp4 or a folder, not '{save}'"
        )
    task = det.task_def
    out = []
    with open_source(spec) as src:
        frames: list = []  # the frames in flight, in order, for drawing
        video = None

        def images():
            for f in src:
                frames.append(f)
                yield f.image

        try:
            for result in det.stream(images()):
                frame = frames.pop(0)
                out.append(
                    {"frame": frame.index, "timestamp": round(frame.timestamp, 6), **_as_dict(task.to_json(result))}
                )
                if not quiet:
                    print(f"{spec} frame {frame.index}: {task.summary(result, det.last_timing['infer'] * 1000)[0]}")
                if save is not None:
                    if video is None:
                        h, w = frame.image.shape[:2]
                        video = VideoWriter(save, src.fps or 30.0, (w, h))
                    video.write(task.draw(frame.image, result))
        finally:
            if video is not None:
                video.close()
    return out


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {"objects": value}
