"""Multi-object tracking over a detector's results: a :class:`Tracker` gives each object an id
that it keeps from frame to frame, :func:`track` runs a detector and a tracker over a video
source, and :class:`MotWriter` and :class:`JsonlWriter` write the tracks.

The trackers (ByteTrack, SORT, OC-SORT) are the ``trackers`` package's, which speaks
``supervision.Detections``; both come with edgecv's ``[track]`` extra, which needs no torch.
"""

from __future__ import annotations

import inspect
import json
import os
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .detections import Detections
from .errors import BackendUnavailableError, EdgecvError

if TYPE_CHECKING:
    from .runtimes.base import Detector
    from .video import Frame

#: the trackers :func:`make_tracker` knows: name -> (the ``trackers`` class, what it is)
TRACKERS: dict[str, tuple[str, str]] = {
    "bytetrack": ("ByteTrackTracker", "ByteTrack: two-stage IoU association that keeps low-score boxes"),
    "sort": ("SORTTracker", "SORT: Kalman filter and IoU association"),
    "ocsort": ("OCSORTTracker", "OC-SORT: SORT with observation-centric recovery and direction consistency"),
}

_EXTRA = "pip install 'edgecv[track]'"


class Tracker:
    """Keeps identities of objects across frames.

    :meth:`update` takes one frame's detections, in frame order, and returns the objects that
    belong to a confirmed track, each with its ``tracker_ids`` entry: a positive int (from 1,
    as MOTChallenge numbers them) that stays with the object while it is tracked. A new track
    shows from its confirming frame on (the tracker's ``minimum_consecutive_frames``).
    :meth:`reset` forgets every track, for the next video.
    """

    name: str = ""

    def update(self, dets: Detections, frame: Frame | None = None) -> Detections:
        """Associate ``dets`` (one frame's objects) with the tracks; return the tracked ones.

        Args:
            dets: the frame's detections, boxes in the frame's pixels.
            frame: the frame they were found in (trackers that use appearance or camera motion
                read it; ByteTrack, SORT and OC-SORT do not).

        Returns:
            Detections with ``tracker_ids`` set, int64 [M], M <= len(dets).
        """
        raise NotImplementedError

    def reset(self) -> None:
        """Forget every track; ids start again from 1."""
        raise NotImplementedError


class LibraryTracker(Tracker):
    """A tracker of the ``trackers`` package behind :class:`Tracker`.

    Args:
        name: its key in :data:`TRACKERS`.
        impl: the ``trackers`` tracker object.
    """

    def __init__(self, name: str, impl: Any) -> None:
        self.name = name
        self.impl = impl

    def update(self, dets: Detections, frame: Frame | None = None) -> Detections:
        # the frame is not handed on: these trackers ignore it (and warn when given one)
        out = self.impl.update(dets.to_supervision())
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else np.full(len(out), -1), np.int64)
        keep = ids >= 0  # -1: a detection in no confirmed track
        kept = out[keep] if len(out) else out
        kept.tracker_id = ids[keep] + 1
        return Detections.from_supervision(kept, dets.names)

    def reset(self) -> None:
        self.impl.reset()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def make_tracker(name: str = "bytetrack", **options: Any) -> Tracker:
    """A tracker by name (see :data:`TRACKERS`).

    Args:
        name: ``bytetrack``, ``sort`` or ``ocsort``.
        options: the tracker's own settings (``trackers``' names: ``lost_track_buffer``,
            ``frame_rate``, ``minimum_consecutive_frames``, ``minimum_iou_threshold``, ...).

    Raises:
        EdgecvError: an unknown name or option (the message lists the choices).
        BackendUnavailableError: the ``trackers`` package is not installed.
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in TRACKERS:
        raise EdgecvError(f"unknown tracker '{name}'; choose one of: {', '.join(TRACKERS)}")
    try:
        import trackers
    except ImportError as e:
        raise BackendUnavailableError(
            f"the {key} tracker needs the 'trackers' package, which is not installed ({e}); "
            f"install edgecv's [track] extra: {_EXTRA}"
        ) from e
    cls = getattr(trackers, TRACKERS[key][0])
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise EdgecvError(f"the {key} tracker has no option {', '.join(unknown)}; its options: {', '.join(accepted)}")
    try:
        impl = cls(**options)
    except (TypeError, ValueError) as e:
        raise EdgecvError(f"the {key} tracker refused its options {options}: {e}") from e
    return LibraryTracker(key, impl)


def _prefetch(frames: Iterable[Frame], depth: int) -> Iterator[Frame]:
    """``frames`` read on a thread of their own, at most ``depth`` ahead: decoding overlaps
    the work on the frames before. An error of the reader is raised in its turn."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for f in frames:
                if not put(("frame", f)):
                    return
            put(("end", done))
        except BaseException as e:  # handed to the consumer, raised there
            put(("error", e))

    reader = threading.Thread(target=read, name="edgecv-track-read", daemon=True)
    reader.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "frame":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        stop.set()
        reader.join(timeout=5)


def track(
    det: Detector,
    source: Any,
    tracker: str | Tracker = "bytetrack",
    *,
    conf: float | None = None,
    depth: int = 3,
) -> Iterator[tuple[Frame, Detections]]:
    """Detect and track objects over a video, frame by frame, in order.

    Frames are read on a thread of their own, run through the detector's
    :meth:`~edgecv.runtimes.base.Detector.stream` (several in flight) and tracked here, so
    decoding, inference and tracking overlap. A source opened here is closed when the
    iteration ends or stops.

    Args:
        det: a loaded detector (task ``detect``).
        source: a video file, image folder or glob, camera index or stream URL (anything
            :func:`edgecv.video.open_source` opens), an open ``VideoSource``, or an iterable of
            :class:`~edgecv.video.Frame`.
        tracker: a :data:`TRACKERS` name (made for the source's frame rate where it has one) or
            a :class:`Tracker`.
        conf: minimum detection score (default: the detector's). ByteTrack uses the low-score
            boxes too: a low ``conf`` suits it.
        depth: frames in flight at once.

    Yields:
        (frame, tracked detections) for every frame of the source; the detections carry
        ``tracker_ids``.
    """
    if getattr(det, "task", "detect") != "detect":
        raise EdgecvError(f"tracking needs a detector; this bundle's task is '{det.task}'")
    opened = None
    if isinstance(source, (str, int, os.PathLike)):
        from .video import open_source

        opened = source = open_source(source)
    try:
        if isinstance(tracker, str):
            fps = getattr(source, "fps", None)
            tracker = make_tracker(tracker, **({"frame_rate": float(fps)} if fps else {}))
        frames: deque = deque()

        def images() -> Iterator[np.ndarray]:
            for frame in _prefetch(source, depth):
                frames.append(frame)
                yield frame.image

        for dets in det.stream(images(), conf=conf, color="bgr", depth=depth):
            frame = frames.popleft()
            yield frame, tracker.update(dets, frame)  # type: ignore[arg-type]
    finally:
        if opened is not None:
            opened.close()


def draw_tracks(image: np.ndarray, dets: Detections) -> np.ndarray:
    """A copy of a BGR ``image`` with each tracked box drawn in its track's colour and labelled
    ``#id label score`` (supervision's annotators)."""
    import supervision as sv

    out = np.ascontiguousarray(image).copy()
    if not len(dets):
        return out
    s = dets.to_supervision()
    lookup = sv.ColorLookup.TRACK if dets.tracker_ids is not None else sv.ColorLookup.CLASS
    ids = dets.tracker_ids.tolist() if dets.tracker_ids is not None else [None] * len(dets)
    labels = [
        f"{'' if t is None else f'#{t} '}{label} {score:.2f}" for t, label, score in zip(ids, dets.labels, dets.scores)
    ]
    thickness = max(1, round(min(out.shape[:2]) / 300))
    out = sv.BoxAnnotator(color_lookup=lookup, thickness=thickness).annotate(out, s)
    return sv.LabelAnnotator(color_lookup=lookup, text_scale=0.35 * thickness + 0.1, text_padding=2).annotate(
        out, s, labels=labels
    )


class _LineWriter:
    """A text file written line by line, opened on creation; a context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.file: IO[str] = open(self.path, "w", encoding="utf-8")
        except OSError as e:
            raise EdgecvError(f"cannot write '{self.path}': {e.strerror or e}") from e
        self.lines = 0

    def _line(self, text: str) -> None:
        self.file.write(text + "\n")
        self.lines += 1

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MotWriter(_LineWriter):
    """Tracks as MOTChallenge text: one line per tracked box,
    ``frame,id,x,y,w,h,score,class,-1,-1`` (frame numbered from 1, box left, top, width,
    height in pixels; class numbered from 1, class id + 1, as MOTChallenge's ``gt.txt`` and
    :func:`edgecv.data.moving_shapes.write_mot` number them)."""

    def write(self, frame: Frame | int, dets: Detections) -> None:
        """Write one frame's tracks; ``frame`` is a Frame or its 0-based index."""
        number = (frame if isinstance(frame, int) else frame.index) + 1
        if dets.tracker_ids is None:
            raise EdgecvError("MOTChallenge lines need tracked detections (tracker_ids); run a tracker first")
        for (x1, y1, x2, y2), score, cid, tid in zip(
            dets.xyxy.tolist(), dets.scores.tolist(), dets.class_ids.tolist(), dets.tracker_ids.tolist()
        ):
            self._line(f"{number},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.5f},{cid + 1},-1,-1")


class JsonlWriter(_LineWriter):
    """Results as JSON lines: one object per frame, ``{"frame", "timestamp", "source",
    "objects": [{"box", "score", "class_id", "label", "tracker_id"}, ...]}`` (frame 0-based)."""

    def write(self, frame: Frame, dets: Detections) -> None:
        """Write one frame's objects."""
        record = {
            "frame": int(frame.index),
            "timestamp": round(float(frame.timestamp), 6),
            "source": str(frame.source),
            "objects": dets.to_dict(),
        }
        self._line(json.dumps(record))
