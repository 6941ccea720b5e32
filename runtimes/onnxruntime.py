"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

import numpy as np

from ..cpu import physical_cores
from ..errors import BackendUnavailableError, BundleError, EdgecvError
from ..graph_references import check_model
from .base import Detector


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

        so = ort.SessionOptions()
        level = self.options.get("graph_optimization_level", "all")
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        # one thread per physical core by default, said explicitly so it can be reported
        self.threads_used = int(self.threads) if self.threads else physical_cores()
        so.intra_op_num_threads = self.threads_used
        so.log_severity_level = 3
        if self.bundle is None:
            raise EdgecvError("the onnxruntime backend runs the model of a bundle: load one with edgecv.load(path)")
        model = self.bundle.read("model")  # the bytes whose sha256 was checked are the bytes run
        # A model given as bytes has no folder: onnxruntime would look for external data in the
        # process's working directory, a file no manifest vouches for; and it would run the
        # operators of any domain it has registered.
        check_model(self.bundle, model, self.key)
        try:
            self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime's own types (InvalidProtobuf, Fail, ...)
            raise BundleError(
                f"bundle '{self.bundle.path}': onnxruntime cannot load {self.bundle.file('model').name} "
                f"({type(e).__name__}: {str(e).strip()}); it is the file the manifest hashes, so the bundle "
                "was written broken: re-export it"
            ) from None
        del model  # onnxruntime holds its own copy
        self._outputs = list(self.output_names.values())

    def infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self._outputs, {self.input_name: batch})
        return dict(zip(self._outputs, values))

    def release_impl(self) -> None:
        self.session = None
