"""The base class every backend implements: it checks inputs, places them with the task's
placer (a letterbox, or a classifier's centre crop), decodes the fixed-size outputs with the
task's decoder (:mod:`edgecv.tasks`) into its result (:class:`Detections`,
:class:`Classifications`, :class:`SegmentationMap`), and owns timing and the lifecycle; a
backend only
implements :meth:`Detector.activate_impl`, :meth:`Detector.infer_impl` and
:meth:`Detector.release_impl`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from .. import tasks
from ..bundle import Bundle
from ..detections import Detections
from ..errors import EdgecvError, InferenceError, InvalidImageError
from ..images import ImageLike, prepare
from ..letterbox import CenterCrop, CropParams, Letterbox, LetterboxParams
from ..results import Classifications, SegmentationMap
from ..tasks import Task

#: what a model returns for one image, by its task
Result = Detections | Classifications | SegmentationMap


class Detector:
    """A loaded model — a detector, a classifier or a segmenter (the bundle's ``task``). Call it
    on one image, or :meth:`predict` on a list; it returns :class:`Detections`,
    :class:`Classifications` or :class:`SegmentationMap` by task.

    Args:
        manifest: the bundle manifest (the contract of inputs and outputs).
        bundle: the opened bundle the model files come from (None for in-memory models).
        conf: minimum score of returned detections; defaults to the manifest's
            ``output.default_conf`` (0.25). Use 0.001 for mAP evaluation.
        color: channel order of array inputs, ``"bgr"`` (default, OpenCV) or ``"rgb"``.
        threads: intra-op threads for the backend (None: the backend's default).
        batch_size: most images per backend call in :meth:`predict`.
        top_k: classifiers: classes returned per image (default: the manifest's ``top_k``, 5).
        probabilities: classifiers: also return every class's probability; segmenters exported
            with probabilities: also return them, resized to the original image (off by default:
            C full-size planes per image).
    """

    key: ClassVar[str] = ""
    #: whether the backend object may be entered by several threads at once
    thread_safe: ClassVar[bool] = False

    def __init__(
        self,
        manifest: dict,
        bundle: Bundle | None = None,
        *,
        conf: float | None = None,
        color: str = "bgr",
        threads: int | None = None,
        batch_size: int = 8,
        top_k: int | None = None,
        probabilities: bool = False,
        **options: Any,
    ) -> None:
        self.manifest = manifest
        self.bundle = bundle
        inp, out = manifest["input"], manifest["output"]
        #: the task's name (``detect``, ``classify``, ``segment``); :attr:`task_def` is its record
        self.task: str = manifest.get("task", "detect")
        self.task_def: Task = tasks.get(self.task)
        self.names: tuple[str, ...] = tuple(manifest["classes"])
        self.input_name: str = inp["name"]
        self.input_size: tuple[int, int] = (inp["shape"][1], inp["shape"][2])
        self.fixed_batch: int | None = inp["shape"][0] if inp["shape"][0] > 0 else None
        self.model_color: str = inp["color"]
        self.output_names: dict[str, str] = dict(out["tensors"])
        #: the graph input that takes the NMS score floor ([B] float32), fed with each call's
        #: ``conf``; None where the graph has the floor baked in (bundles made before the input)
        self.score_input: str | None = (out.get("nms") or {}).get("score_input")
        #: the floor the graph was exported with: what a call without a ``conf`` of its own feeds
        self.score_floor: float = float((out.get("nms") or {}).get("score_threshold", 0.0))
        #: places an image into the input and maps results back: a Letterbox, or a classifier's CenterCrop
        self.placer: Letterbox | CenterCrop = self.task_def.placer(manifest)
        self.probabilities = bool(probabilities)
        self.task_def.check_options(manifest, self.probabilities)
        self.decode = self.task_def.decoder(manifest, self.placer, top_k=top_k, probabilities=self.probabilities)
        #: classifiers: classes returned per image
        self.top_k: int | None = getattr(self.decode, "top_k", None)
        # detectors filter at a score floor; classifiers return their top k, segmenters every pixel
        self.conf = float(out.get("default_conf", self.task_def.default_conf) if conf is None else conf)
        self.color = color
        self.threads = threads
        self.batch_size = max(1, int(batch_size))
        self.options = options
        #: intra-op threads the backend runs with (None: its own default, not known to edgecv)
        self.threads_used: int | None = threads
        self.last_timing: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._active = False
        self.activate()

    # -- what a backend implements -------------------------------------------------------------

    def activate_impl(self) -> None:
        """Load the model and make it ready to run."""
        raise NotImplementedError

    def infer_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run the model on ``batch`` [B, H, W, 3] uint8 and the graph's other inputs ``extra``
        (by name: the score floor, see :meth:`extra_inputs`); return the outputs by their
        manifest names. ``extra`` is None for graphs that take the images alone."""
        raise NotImplementedError

    def infer_stream_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """As :meth:`infer_impl`, for :meth:`stream`; a backend with a throughput mode overrides it."""
        return self.infer_impl(batch, extra)

    def release_impl(self) -> None:
        """Free what :meth:`activate_impl` acquired."""

    # -- lifecycle -----------------------------------------------------------------------------

    def activate(self) -> None:
        if not self._active:
            self.activate_impl()
            self._active = True

    def close(self) -> None:
        """Release the backend's resources; later calls raise :class:`EdgecvError`."""
        with self._lock:
            if self._active:
                self.release_impl()
                self._active = False
            self._closed = True

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_active", False):
                self.release_impl()
        except Exception:
            pass

    # -- the contract ----------------------------------------------------------------------------

    def preprocess(
        self, images: Sequence[ImageLike], color: str | None = None
    ) -> tuple[np.ndarray, list[LetterboxParams | CropParams]]:
        """Validate and letterbox images into one uint8 batch [B, H, W, 3]."""
        h, w = self.input_size
        batch = np.empty((len(images), h, w, 3), dtype=np.uint8)
        params: list[LetterboxParams | CropParams] = []
        for i, img in enumerate(images):
            pixels, convert = prepare(img, color or self.color, self.model_color)
            _, p = self.placer.forward(pixels, out=batch[i], convert=convert)
            params.append(p)
        return batch, params

    def extra_inputs(self, batch_size: int, conf: float | None = None) -> dict[str, np.ndarray]:
        """The graph's inputs besides the images for a batch of ``batch_size``: the score floor,
        where the graph takes it, at ``conf`` (None: the floor it was exported with).

        The graph keeps scores strictly above the floor and the host keeps scores at or above
        ``conf``, so the floor fed for a ``conf`` is the float32 just below it: a box scored
        exactly ``conf`` reaches the host, which then decides. Without a ``conf``, the export's
        floor itself: the graph then gives what it gave with that floor baked in.
        """
        if self.score_input is None:
            return {}
        if conf is None:
            floor = np.float32(self.score_floor)
        else:
            floor = np.nextafter(np.float32(conf), np.float32(-np.inf))
        return {self.score_input: np.full(batch_size, floor, np.float32)}

    def _run(
        self,
        batch: np.ndarray,
        streaming: bool = False,
        conf: float | None = None,
        extra: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """The graph's outputs on ``batch``; its other inputs are ``extra``, or made for ``conf``
        (:meth:`extra_inputs`)."""
        if self._closed:
            raise EdgecvError(f"this {self.key} detector was closed; load the bundle again to use it")
        infer = self.infer_stream_impl if streaming else self.infer_impl
        if extra is None:
            extra = self.extra_inputs(len(batch), conf) or None
        try:
            if self.thread_safe:
                return infer(batch, extra)
            with self._lock:
                return infer(batch, extra)
        except EdgecvError:
            raise
        except MemoryError as e:
            raise InferenceError(
                f"{self.key} ran out of memory on a batch of {len(batch)}: {e}; the detector is still "
                "usable (try smaller batches)"
            ) from e
        except Exception as e:  # the backend's own error (out of memory, a corrupted model, a driver fault)
            raise InferenceError(
                f"{self.key} inference failed: {type(e).__name__}: {e}. The detector is still loaded; "
                "if this repeats, close it and load the bundle again"
            ) from e

    def postprocess(self, outputs: dict[str, np.ndarray], params: Sequence[Any], conf: float) -> list[Result]:
        """Turn backend outputs into one result per image (:class:`Detections` in original pixels,
        :class:`Classifications`, or a :class:`SegmentationMap` in original pixels): the task's decoder."""
        return self.decode(outputs, params, conf)

    def predict(
        self,
        images: Sequence[ImageLike],
        conf: float | None = None,
        color: str | None = None,
        *,
        _streaming: bool = False,
    ) -> list[Result]:
        """Run the model on each image of a list; returns one result per image
        (:class:`Detections`, :class:`Classifications` or :class:`SegmentationMap`, by task).

        Args:
            images: arrays (see :func:`edgecv.images.prepare`) or image paths.
            conf: detectors: minimum score (defaults to the detector's ``conf``); other tasks ignore it.
            color: channel order of array inputs (defaults to the detector's ``color``).
        """
        if isinstance(images, np.ndarray) or isinstance(images, (str, bytes)):
            raise InvalidImageError("predict() takes a list of images; call the detector itself on one image")
        images = list(images)
        conf = self.conf if conf is None else float(conf)
        step = self.fixed_batch or self.batch_size
        results: list[Result] = []
        timing = {"preprocess": 0.0, "infer": 0.0, "postprocess": 0.0}
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            t0 = time.perf_counter()
            batch, params = self.preprocess(chunk, color)
            if self.fixed_batch and len(chunk) < self.fixed_batch:
                batch = np.concatenate([batch, np.repeat(batch[-1:], self.fixed_batch - len(chunk), 0)])
            t1 = time.perf_counter()
            outputs = self._run(batch, _streaming, conf)
            t2 = time.perf_counter()
            results.extend(self.postprocess(outputs, params, conf))
            t3 = time.perf_counter()
            timing["preprocess"] += t1 - t0
            timing["infer"] += t2 - t1
            timing["postprocess"] += t3 - t2
        self.last_timing = timing
        return results

    def stream(
        self, frames: Iterable[ImageLike], conf: float | None = None, color: str | None = None, depth: int = 3
    ) -> Iterator[Result]:
        """Detect objects in a stream of frames, results in order, with the work of consecutive
        frames overlapped: while one frame is in the backend, the next ones are letterboxed and
        the previous one post-processed. Backends that run calls in parallel (onnxruntime, and
        openvino with its pool of infer requests) also overlap the inference itself; openvino
        runs the stream on a compilation made for throughput (several streams).

        Args:
            frames: any iterable of images (a generator reading a camera works: it is read ahead
                by at most ``depth`` frames).
            depth: frames in flight at once (>= 1).

        Yields:
            One result per frame, in the order of ``frames``. A bad frame raises its
            :class:`InvalidImageError` when its turn comes, after the results before it.
        """
        import collections
        from concurrent.futures import ThreadPoolExecutor

        if isinstance(frames, np.ndarray) or isinstance(frames, (str, bytes)):
            raise InvalidImageError("stream() takes an iterable of images; call the detector itself on one image")
        depth = max(1, int(depth))
        pending: collections.deque = collections.deque()
        with ThreadPoolExecutor(max_workers=depth, thread_name_prefix=f"edgecv-{self.key}-stream") as pool:
            try:
                for frame in frames:
                    pending.append(pool.submit(self._stream_one, frame, conf, color))
                    if len(pending) >= depth:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:  # the consumer stopped early or a frame failed: do not leave work running
                for f in pending:
                    f.cancel()

    def _stream_one(self, image: ImageLike, conf: float | None, color: str | None) -> Result:
        if isinstance(image, (list, tuple)):
            raise InvalidImageError("stream() takes one image per item; a list is not a frame")
        return self.predict([image], conf=conf, color=color, _streaming=True)[0]

    def __call__(self, image: ImageLike, conf: float | None = None, color: str | None = None) -> Result:
        """Run the model on one image (HxWx3 uint8 array, grey, RGBA, or a path)."""
        if isinstance(image, (list, tuple)):
            raise InvalidImageError("a detector call takes one image; use predict() for a list")
        return self.predict([image], conf=conf, color=color)[0]

    def __repr__(self) -> str:
        where = self.bundle.path if self.bundle is not None else "memory"
        return f"<{type(self).__name__} {self.manifest['name']} {self.manifest['precision']} from {where}>"
