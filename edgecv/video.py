"""Video sources and sinks: frames with their timestamps from a video file, an image folder or
glob, a camera or an RTSP/HTTP stream, and an mp4 writer for annotated frames.

Every frame a source fails to deliver is counted in :attr:`VideoSource.dropped` and logged on the
``edgecv`` logger; a live source that drops is reopened with exponential back-off and says so.
Imports numpy, OpenCV and the standard library only: it runs on a device without the exporter.
"""

from __future__ import annotations

import glob as globlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from .errors import VideoError
from .images import IMAGE_SUFFIXES

log = logging.getLogger("edgecv")

#: timestamps of an image folder advance at this rate unless ``fps`` is given
DEFAULT_FOLDER_FPS = 30.0
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True, eq=False)  # frames compare by identity: arrays have no single truth value
class Frame:
    """One decoded frame.

    Attributes:
        index: position in the source, 0-based, counting dropped frames (so ``index`` of a file
            stays the container's frame number).
        image: HxWx3 uint8, BGR.
        timestamp: seconds from the source's start: the container's presentation time for a
            file, ``index / fps`` for an image folder, monotonic time since opening for a live
            source.
        source: the source as given (path, glob, camera index or URL).
    """

    index: int
    image: np.ndarray
    timestamp: float
    source: str


class VideoSource:
    """An iterator of :class:`Frame` and a context manager; made by :func:`open_source`.

    Attributes:
        fps: frames per second (the container's, the camera's, or the one given).
        size: ``(width, height)``, or None until the first frame where the source does not say.
        frame_count: frames the source declares, None for a live source or where unknown.
        dropped: frames the source failed to deliver and that were skipped.
        reconnects: times a live source was reopened after failing.
    """

    kind = "source"

    def __init__(self, name: str) -> None:
        self.name = name
        self.fps: float = 0.0
        self.size: tuple[int, int] | None = None
        self.frame_count: int | None = None
        self.dropped = 0
        self.reconnects = 0
        self.delivered = 0
        self._closed = False

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        frame = self._next_impl()
        if frame is None:
            self.close()
            raise StopIteration
        if self.size is None:
            self.size = (frame.image.shape[1], frame.image.shape[0])
        self.delivered += 1
        return frame

    def _next_impl(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device, stream or file; iteration ends. Safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._release_impl()

    def _release_impl(self) -> None:
        pass

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} fps={self.fps:g} size={self.size} "
            f"frames={self.frame_count} delivered={self.delivered} dropped={self.dropped}>"
        )


def open_source(
    spec: str | int | os.PathLike,
    *,
    fps: float | None = None,
    retries: int = 5,
    backoff: float = 0.5,
    timeout: float = 10.0,
) -> VideoSource:
    """Open a video file, an image folder or glob, a camera or a stream URL.

    Args:
        spec: a video file (anything OpenCV's FFmpeg reads); a folder of images or a glob
            (``frames/*.jpg``), read in sorted order; a camera index (an int or a string of
            digits); an ``rtsp://``, ``http(s)://`` (or rtmp, udp, tcp) URL.
        fps: the rate of an image folder's timestamps (default 30); for a file or a live source,
            the rate reported where the source gives none.
        retries: how often a live source that fails is reopened, at first and mid-stream, before
            :class:`VideoError` is raised.
        backoff: seconds before the first reopening; each next waits twice as long.
        timeout: seconds one attempt to open (or, for a URL, to read) may take.

    Returns:
        A :class:`VideoSource`; use it in a ``with`` block, or call ``close()``.

    Raises:
        VideoError: the source does not exist, cannot be opened or decoded (naming it and what to
            do), or a live source stayed down after ``retries`` reopenings.
    """
    if isinstance(spec, bool):
        raise VideoError(f"'{spec}' is not a video source: give a file, folder, glob, camera index or URL")
    if isinstance(spec, int):
        return LiveSource(spec, fps=fps, retries=retries, backoff=backoff, timeout=timeout)
    text = os.fspath(spec)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if text.strip().isdigit():
        return LiveSource(int(text), fps=fps, retries=retries, backoff=backoff, timeout=timeout)
    if _URL.match(text):
        return LiveSource(text, fps=fps, retries=retries, backoff=backoff, timeout=timeout)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise VideoError(f"folder '{text}' holds no images ({', '.join(IMAGE_SUFFIXES)}): give a folder of frames")
        return FolderSource(text, files, fps=fps)
    if _GLOB_CHARS & set(text) and not path.exists():
        files = sorted(Path(p) for p in globlib.glob(text) if Path(p).is_file())
        if not files:
            raise VideoError(f"no files match '{text}': check the pattern (it is a glob, read in sorted order)")
        return FolderSource(text, files, fps=fps)
    if not path.exists():
        raise VideoError(
            f"video source '{text}' does not exist: give a video file, an image folder or glob, "
            "a camera index or an rtsp:// or http:// URL"
        )
    return FileSource(text, fps=fps, timeout=timeout)


# --- files ------------------------------------------------------------------------------------


class FileSource(VideoSource):
    """A video file read with OpenCV's FFmpeg backend; timestamps are the container's."""

    kind = "file"

    def __init__(self, path: str, *, fps: float | None = None, timeout: float = 10.0) -> None:
        super().__init__(path)
        if not os.access(path, os.R_OK):
            raise VideoError(f"video file '{path}' cannot be read: check its permissions")
        cap = _open_capture(path, cv2.CAP_FFMPEG, [], timeout, path)
        if cap is None or not cap.isOpened():
            raise VideoError(
                f"video file '{path}' cannot be opened: it is not a video, it is damaged (an mp4 cut "
                "short before its index), or its codec is missing from this OpenCV build; "
                "re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4) or play it to check"
            )
        self._cap: Any = cap
        self.fps = _positive(cap.get(cv2.CAP_PROP_FPS)) or float(fps or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.size = (w, h) if w > 0 and h > 0 else None
        self._index = 0

    def _next_impl(self) -> Frame | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            if self._index == 0:
                self._cap.release()
                raise VideoError(
                    f"video file '{self.name}' opened but no frame decodes: its codec may be missing "
                    "from this OpenCV build, or the file is damaged; re-encode it "
                    "(ffmpeg -i IN -c:v libx264 OUT.mp4)"
                )
            if self.frame_count is not None and self._index < self.frame_count:
                missing = self.frame_count - self._index
                self.dropped += missing
                log.warning(
                    "video file '%s' is damaged or truncated after frame %d: %d of its %d frames "
                    "could not be decoded and were dropped",
                    self.name,
                    self._index - 1,
                    missing,
                    self.frame_count,
                )
            return None
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        timestamp = pos_ms / 1000.0 if pos_ms >= 0 else self._index / (self.fps or DEFAULT_FOLDER_FPS)
        frame = Frame(self._index, image, float(timestamp), self.name)
        self._index += 1
        return frame

    def _release_impl(self) -> None:
        self._cap.release()


# --- image folders and globs ------------------------------------------------------------------


class FolderSource(VideoSource):
    """Images of a folder or glob in sorted order; an unreadable image is dropped and logged."""

    kind = "folder"

    def __init__(self, name: str, files: list[Path], *, fps: float | None = None) -> None:
        super().__init__(name)
        self.files = files
        self.fps = float(fps) if fps else DEFAULT_FOLDER_FPS
        self.frame_count = len(files)
        self._index = 0

    def _next_impl(self) -> Frame | None:
        while self._index < len(self.files):
            i, path = self._index, self.files[self._index]
            self._index += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.dropped += 1
                log.warning("frame %d of '%s' (%s) could not be read and was dropped", i, self.name, path)
                continue
            return Frame(i, image, i / self.fps, self.name)
        return None


# --- cameras and streams ----------------------------------------------------------------------


class LiveSource(VideoSource):
    """A camera index or a stream URL. A failed read is counted as dropped and the source is
    reopened with exponential back-off, up to ``retries`` times in a row, each logged; a
    successful frame resets the count."""

    kind = "live"

    def __init__(
        self,
        target: int | str,
        *,
        fps: float | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(str(target))
        self.target = target
        self.retries, self.backoff, self.timeout = max(0, int(retries)), max(0.0, float(backoff)), float(timeout)
        self._fps_given = fps
        self._cap: Any = None
        if isinstance(target, int):
            self._check_camera(target)
            self._cap = self._open_once()
            if self._cap is None:
                raise VideoError(
                    f"camera {target} cannot be opened (no such device, or it is busy or not permitted): "
                    "check the index (v4l2-ctl --list-devices on Linux) and that no other program holds it"
                )
        else:
            self._cap = self._open_with_retries("open")
        self._t0 = time.monotonic()
        self._index = 0

    def _check_camera(self, index: int) -> None:
        # V4L2 names camera N /dev/videoN: a missing node fails at once instead of after a probe
        if index < 0:
            raise VideoError(f"camera index {index} is negative: give 0 for the first camera")
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            present = sorted(p.name for p in Path("/dev").glob("video*"))
            raise VideoError(
                f"camera {index} does not exist (no /dev/video{index}; "
                f"{'cameras here: ' + ', '.join(present) if present else 'no camera on this machine'}): "
                "give another index, a video file or a stream URL"
            )

    def _open_once(self) -> Any:
        if isinstance(self.target, int):
            cap = _open_capture(self.target, cv2.CAP_ANY, [], self.timeout, self.name)
        else:
            ms = int(self.timeout * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            cap = _open_capture(self.target, cv2.CAP_FFMPEG, params, self.timeout, self.name)
        if cap is None or not cap.isOpened():
            return None
        self.fps = _positive(cap.get(cv2.CAP_PROP_FPS)) or float(self._fps_given or 0.0)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w > 0 and h > 0:
            self.size = (w, h)
        if not isinstance(self.target, int):
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.frame_count = count if count > 0 else None  # a stream of a finite file
        return cap

    def _open_with_retries(self, why: str) -> Any:
        """Open the source, waiting ``backoff * 2**k`` seconds before the k-th retry; VideoError
        after ``retries`` retries. ``why`` is "open" (the first opening) or "read" (it dropped)."""
        for attempt in range(self.retries + 1):
            if attempt:
                wait = self.backoff * 2 ** (attempt - 1)
                log.warning(
                    "video source '%s' %s: reconnecting in %.2f s (attempt %d of %d)",
                    self.name,
                    "did not open" if why == "open" else "stopped delivering frames",
                    wait,
                    attempt,
                    self.retries,
                )
                time.sleep(wait)
            cap = self._open_once()
            if cap is not None:
                if why != "open":
                    log.warning("video source '%s' reconnected (attempt %d)", self.name, attempt)
                return cap
        what = "refused or did not answer" if why == "open" else "stopped delivering frames and did not come back"
        raise VideoError(
            f"video source '{self.name}' {what} after {self.retries + 1} attempt(s) "
            f"(timeout {self.timeout:g} s each, back-off from {self.backoff:g} s): check the URL, "
            "that the camera or server is up and reachable from here, or raise retries/timeout"
        )

    def _next_impl(self) -> Frame | None:
        # a source that reopens but still gives nothing is retried as long as it opens: bound
        # the reconnections between two frames as well
        for _ in range(self.retries + 1):
            if self.frame_count is not None and self._index >= self.frame_count:
                return None  # a URL serving a finite file has ended
            ok, image = self._cap.read()
            if ok and image is not None:
                if image.ndim == 2:
                    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
                frame = Frame(self._index, image, time.monotonic() - self._t0, self.name)
                self._index += 1
                return frame
            self.dropped += 1  # one failed read; what the source sent while down is not known
            self._index += 1
            self._cap.release()
            self._cap = None
            self._cap = self._open_with_retries("read")
            self.reconnects += 1
        raise VideoError(
            f"video source '{self.name}' reopens but delivers no frame ({self.retries + 1} reconnections "
            "in a row): check the camera or stream"
        )

    def _release_impl(self) -> None:
        if self._cap is not None:
            self._cap.release()


def _positive(value: float) -> float:
    return float(value) if value and value > 0 and value < 1e4 else 0.0


def _open_capture(target: int | str, api: int, params: list[int], timeout: float, name: str) -> Any:
    """``cv2.VideoCapture(target, api, params)`` in a worker thread, given up after ``timeout``
    seconds (OpenCV can block on a camera or a URL that does not answer). Returns the capture, or
    None when it did not open in time; a capture that opens late is released by its thread."""
    result: dict[str, Any] = {}
    gave_up = threading.Event()

    def work() -> None:
        try:
            cap = cv2.VideoCapture(target, api, params) if params else cv2.VideoCapture(target, api)
        except cv2.error as e:  # some backends raise instead of failing to open
            result["error"] = e
            return
        if gave_up.is_set():
            cap.release()
        else:
            result["cap"] = cap

    thread = threading.Thread(target=work, name=f"edgecv-open-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        gave_up.set()
        log.warning("opening video source '%s' took over %g s: given up", name, timeout)
        return None
    if "error" in result:
        log.warning("opening video source '%s' failed: %s", name, str(result["error"]).strip().splitlines()[-1:])
    return result.get("cap")


# --- sinks ------------------------------------------------------------------------------------


class VideoWriter:
    """Writes frames to an mp4 file (OpenCV's ``mp4v`` codec); a context manager.

    Args:
        path: the file to write; its folder must exist.
        fps: frames per second of the file.
        size: ``(width, height)`` of every frame.
        fourcc: the four-character codec code.

    Raises:
        VideoError: the folder is missing or not writable, the codec is unavailable in this
            OpenCV build, a frame does not fit ``size``, or the written file cannot be read back.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], fourcc: str = "mp4v") -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1]))
        self.frames = 0
        if not self.fps > 0:
            raise VideoError(f"cannot write '{self.path}' at {fps} frames per second: give a positive fps")
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise VideoError(f"cannot write '{self.path}' at size {size}: give (width, height), both positive")
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise VideoError(f"cannot write '{self.path}': folder '{parent}' does not exist")
        if not os.access(parent, os.W_OK) or self.path.is_dir():
            raise VideoError(f"cannot write '{self.path}': it is not a writable file location")
        self._writer: Any = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*fourcc), self.fps, self.size)
        if not self._writer.isOpened():
            self._writer.release()
            raise VideoError(
                f"cannot write '{self.path}' with codec '{fourcc}': this OpenCV build has no encoder for "
                "it or the container; use a .mp4 path with 'mp4v', or install opencv-python"
            )
        self._closed = False

    def write(self, image: np.ndarray) -> None:
        """Append one HxWx3 uint8 BGR frame of the writer's size."""
        if self._closed:
            raise VideoError(f"video '{self.path}' is already closed")
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
            or (image.shape[1], image.shape[0]) != self.size
        ):
            got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
            raise VideoError(
                f"frame {self.frames} for '{self.path}' is {got}: expected HxWx3 uint8 BGR of "
                f"{self.size[0]}x{self.size[1]} (resize it, or open the writer at its size)"
            )
        self._writer.write(np.ascontiguousarray(image))
        self.frames += 1

    def close(self) -> None:
        """Finish the file and check it reads back."""
        if self._closed:
            return
        self._closed = True
        self._writer.release()
        if self.frames == 0:
            return
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        try:
            ok = cap.isOpened() and cap.read()[0]
        finally:
            cap.release()
        if not ok:
            raise VideoError(
                f"video '{self.path}' was written but cannot be read back: the disk may be full, or the "
                "codec wrote nothing; check free space and try another fourcc"
            )

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # keep the original error: finish the file without the read-back check
            self._closed = True
            self._writer.release()
