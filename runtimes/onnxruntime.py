"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

import numpy as np

from ..cpu import physical_cores
from ..errors import EdgecvError
from .base import Detector


class OnnxRuntimeDetector(Detector):
    key = "onnxruntime"
    thread_safe = True  # InferenceSession.run may be called from several threads

    def activate_impl(self) -> None:
        import onnxruntime as ort

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
        path = self.bundle.file("model")
        self.session = ort.InferenceSession(path.read_bytes(), so, providers=["CPUExecutionProvider"])
        self._outputs = list(self.output_names.values())

    def infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self._outputs, {self.input_name: batch})
        return dict(zip(self._outputs, values))

    def release_impl(self) -> None:
        self.session = None
