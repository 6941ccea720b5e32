"""ONNX Runtime backend (CPU execution provider).

Calls run on one session with one intra-op thread per physical core. :meth:`stream` runs on a
second session, made on its first use, with ``stream_threads`` (default 1) intra-op threads: the
stream keeps several frames in flight, so the cores are used by running frames side by side
rather than by splitting one frame's operators. On 2 cores (AVX2, edgecv-tiny at 320) that gave
1.15x the frames per second of the stream on the call session (134.7 against 117.3 fps); see
``benchmarks/results/track-speed-*.md``.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ..bundle import Bundle
from ..cpu import int8_dot_saturates, physical_cores
from ..errors import BackendUnavailableError, BundleError, EdgecvError
from ..graph_references import check_model
from .base import Detector

log = logging.getLogger("edgecv")


class OnnxRuntimeDetector(Detector):
    key = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called from several threads

    def activate_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:  # missing, or a broken install (its native library)
            raise BackendUnavailableError(
                f"onnxruntime cannot be imported ({e}): pip install 'edgecv[onnxruntime]'"
            ) from None

        # one thread per physical core by default, said explicitly so it can be reported
        self.threads_used = int(self.threads) if self.threads else physical_cores()
        self.stream_threads = max(1, int(self.options.get("stream_threads", 1)))
        if self.bundle is None:
            raise EdgecvError("the onnxruntime backend runs the model of a bundle: load one with edgecv.load(path)")
        self._bundle = self.bundle
        self._warn_saturating_weights()
        self.session = self._session(ort, self.bundle, self.threads_used)
        self._stream_session = None
        self._stream_lock = threading.Lock()
        self._outputs = list(self.output_names.values())

    def _warn_saturating_weights(self) -> None:
        """An INT8 bundle with 8-bit weights (exported where the CPU has VNNI: the recipe's
        ``reduce_range="auto"``) loaded on a CPU whose INT8 kernels sum pairs of products in 16
        bits: its sums saturate, and its accuracy is below what its export measured."""
        quant = (self.manifest.get("provenance") or {}).get("quantization") or {}
        if self.manifest.get("precision") != "int8" or quant.get("reduce_range", True) or not int8_dot_saturates():
            return
        log.warning(
            "onnxruntime: bundle '%s' has 8-bit INT8 weights, and this CPU has no VNNI: its INT8 kernels add "
            "pairs of 8-bit products in 16 bits and saturate, so the bundle is less accurate here than its "
            "export measured (about 1 mAP point on YOLO-sized models); export it with the INT8 recipe "
            "reduce_range=true for CPUs like this one",
            self.bundle.path.name if self.bundle else "?",
        )

    def _session(self, ort, bundle: Bundle, threads: int):
        """An inference session on ``bundle``'s model with ``threads`` intra-op threads."""
        so = ort.SessionOptions()
        level = self.options.get("graph_optimization_level", "all")
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        model = bundle.read("model")  # the bytes whose sha256 was checked are the bytes run
        # A model given as bytes has no folder: onnxruntime would look for external data in the
        # process's working directory, a file no manifest vouches for; and it would run the
        # operators of any domain it has registered.
        check_model(bundle, model, self.key)
        try:
            return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime's own types (InvalidProtobuf, Fail, ...)
            raise BundleError(
                f"bundle '{bundle.path}': onnxruntime cannot load {bundle.file('model').name} "
                f"({type(e).__name__}: {str(e).strip()}); it is the file the manifest hashes, so the bundle "
                "was written broken: re-export it"
            ) from None

    def infer_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        values = self.session.run(self._outputs, {self.input_name: batch, **(extra or {})})
        return dict(zip(self._outputs, values))

    def infer_stream_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        session = self._stream_session or self._make_stream_session()
        values = session.run(self._outputs, {self.input_name: batch, **(extra or {})})
        return dict(zip(self._outputs, values))

    def _make_stream_session(self):
        import onnxruntime as ort

        with self._stream_lock:  # the stream's workers all ask for it on their first frame
            if self._stream_session is None:
                same = self.stream_threads == self.threads_used  # the call session would do
                self._stream_session = self.session if same else self._session(ort, self._bundle, self.stream_threads)
        return self._stream_session

    def release_impl(self) -> None:
        self.session = None
        self._stream_session = None
