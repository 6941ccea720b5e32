"""The base class every backend implements: it checks inputs and owns the letterbox (or a
classifier's centre crop), the decoding of the fixed-size outputs into the task's result
(:class:`Detections`, :class:`Classifications`, :class:`SegmentationMap`), timing and the
lifecycle; a backend only
implements :meth:`Detector.activate_impl`, :meth:`Detector.infer_impl` and
:meth:`Detector.release_impl`."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar, Iterable, Iterator, Sequence, Union

import numpy as np

from ..bundle import Bundle
from ..detections import Detections
from ..errors import EdgecvError, InferenceError, InvalidImageError
from ..images import ImageLike, prepare
from ..letterbox import CenterCrop, Letterbox, LetterboxParams, unletterbox
from ..masks import paste
from ..nms import nms
from ..results import Classifications, SegmentationMap

#: what a model returns for one image, by its task
Result = Union[Detections, Classifications, SegmentationMap]


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

    def __init__(self, manifest: dict, bundle: Bundle | None = None, *, conf: float | None = None,
                 color: str = "bgr", threads: int | None = None, batch_size: int = 8, top_k: int | None = None,
                 probabilities: bool = False, **options: Any) -> None:
        self.manifest = manifest
        self.bundle = bundle
        inp, out = manifest["input"], manifest["output"]
        self.task: str = manifest.get("task", "detect")
        self.names: tuple[str, ...] = tuple(manifest["classes"])
        self.input_name: str = inp["name"]
        self.input_size: tuple[int, int] = (inp["shape"][1], inp["shape"][2])
        self.fixed_batch: int | None = inp["shape"][0] if inp["shape"][0] > 0 else None
        self.model_color: str = inp["color"]
        self.output_names: dict[str, str] = dict(out["tensors"])
        if self.task == "classify":  # the placement: a centre crop, or a letterbox
            self.letterbox: Letterbox | CenterCrop = CenterCrop(self.input_size, inp["crop"]["resize"])
        else:
            lb = inp["letterbox"]
            self.letterbox = Letterbox(self.input_size, pad_value=lb.get("pad_value", 114), scaleup=lb.get("scaleup", True))
        self.top_k = max(1, min(len(self.names), int(top_k if top_k is not None else out.get("top_k", 5))))
        self.probabilities = bool(probabilities)
        if self.probabilities and self.task == "segment" and "probs" not in self.output_names:
            raise EdgecvError(f"this segmenter ({manifest['name']}) was exported without probabilities: export it with "
                              "--probabilities (Python: probabilities=True), or load it without them")
        self.mode: str = out["mode"] if self.task == "detect" else self.task
        self.mask_threshold: float | None = float(out["masks"]["threshold"]) if out.get("masks") else None
        self.nms_settings: dict = dict(out.get("nms", {}))
        # detection only: classifiers return their top k, segmenters every pixel
        self.conf = float(out.get("default_conf", 0.25 if self.task == "detect" else 0.0) if conf is None else conf)
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

    def infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on ``batch`` [B, H, W, 3] uint8; return the outputs by their manifest names."""
        raise NotImplementedError

    def infer_stream_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """As :meth:`infer_impl`, for :meth:`stream`; a backend with a throughput mode overrides it."""
        return self.infer_impl(batch)

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

    def __enter__(self) -> "Detector":
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

    def preprocess(self, images: Sequence[ImageLike], color: str | None = None) -> tuple[np.ndarray, list[LetterboxParams]]:
        """Validate and letterbox images into one uint8 batch [B, H, W, 3]."""
        h, w = self.input_size
        batch = np.empty((len(images), h, w, 3), dtype=np.uint8)
        params = []
        for i, img in enumerate(images):
            pixels, convert = prepare(img, color or self.color, self.model_color)
            _, p = self.letterbox.forward(pixels, out=batch[i], convert=convert)
            params.append(p)
        return batch, params

    def _run(self, batch: np.ndarray, streaming: bool = False) -> dict[str, np.ndarray]:
        if self._closed:
            raise EdgecvError(f"this {self.key} detector was closed; load the bundle again to use it")
        infer = self.infer_stream_impl if streaming else self.infer_impl
        try:
            if self.thread_safe:
                return infer(batch)
            with self._lock:
                return infer(batch)
        except EdgecvError:
            raise
        except MemoryError as e:
            raise InferenceError(f"{self.key} ran out of memory on a batch of {len(batch)}: {e}; the detector is still "
                                 "usable (try smaller batches)") from e
        except Exception as e:  # the backend's own error (out of memory, a corrupted model, a driver fault)
            raise InferenceError(f"{self.key} inference failed: {type(e).__name__}: {e}. The detector is still loaded; "
                                 "if this repeats, close it and load the bundle again") from e

    def postprocess(self, outputs: dict[str, np.ndarray], params: Sequence[Any], conf: float) -> list[Result]:
        """Turn backend outputs into one result per image (:class:`Detections` in original pixels,
        :class:`Classifications`, or a :class:`SegmentationMap` in original pixels)."""
        if self.task == "classify":
            return self._classifications(outputs, len(params))
        if self.task == "segment":
            return self._segmentation_maps(outputs, params)
        results = []
        t = self.output_names
        for i, p in enumerate(params):
            if self.mode == "nms":
                n = int(outputs[t["num_dets"]][i])
                boxes = outputs[t["boxes"]][i, :n]
                scores = outputs[t["scores"]][i, :n]
                labels = outputs[t["labels"]][i, :n]
            else:
                s = self.nms_settings
                boxes, scores, labels = nms(outputs[t["boxes"]][i], outputs[t["scores"]][i], s["iou_threshold"],
                                            s["score_threshold"], s["max_detections"], s["class_aware"])
            keep = (scores >= conf) & np.isfinite(scores) & np.isfinite(boxes).all(1)
            boxes = self.letterbox.inverse(boxes[keep], p)
            scores, labels = scores[keep], labels[keep]
            nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # boxes wholly in the padding
            masks = None
            if self.mask_threshold is not None:  # pasted on the host, in the original image's pixels
                probs = outputs[t["masks"]][i, :n][keep][nonempty]
                masks = paste(probs, boxes[nonempty], p.orig_shape, self.mask_threshold)
            results.append(Detections(boxes[nonempty], scores[nonempty], labels[nonempty].astype(np.int64), self.names,
                                      masks))
        return results

    def _classifications(self, outputs: dict[str, np.ndarray], n: int) -> list[Classifications]:
        probs = outputs[self.output_names["probs"]]
        out = []
        for i in range(n):
            p = probs[i].astype(np.float32, copy=False)
            top = np.argsort(-p, kind="stable")[: self.top_k]
            out.append(Classifications(top, p[top], self.names, p.copy() if self.probabilities else None))
        return out

    def _segmentation_maps(self, outputs: dict[str, np.ndarray], params: Sequence[LetterboxParams]) -> list[SegmentationMap]:
        labels = outputs[self.output_names["labels"]]
        probs = outputs[self.output_names["probs"]] if self.probabilities else None  # refused at load if not exported
        out = []
        for i, p in enumerate(params):
            cls = unletterbox(labels[i], p, nearest=True)
            prob = unletterbox(probs[i], p, nearest=False) if probs is not None else None
            out.append(SegmentationMap(cls, self.names, prob))
        return out

    def predict(self, images: Sequence[ImageLike], conf: float | None = None, color: str | None = None,
                *, _streaming: bool = False) -> list[Result]:
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
            outputs = self._run(batch, _streaming)
            t2 = time.perf_counter()
            results.extend(self.postprocess(outputs, params, conf))
            t3 = time.perf_counter()
            timing["preprocess"] += t1 - t0
            timing["infer"] += t2 - t1
            timing["postprocess"] += t3 - t2
        self.last_timing = timing
        return results

    def stream(self, frames: Iterable[ImageLike], conf: float | None = None, color: str | None = None,
               depth: int = 3) -> Iterator[Result]:
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
