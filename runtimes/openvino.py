"""OpenVINO backend (CPU plugin), compiled with the latency hint."""

from __future__ import annotations

import logging
import queue
import threading

import numpy as np

from .base import Detector

log = logging.getLogger("edgecv")


class OpenVinoDetector(Detector):
    """Option ``infer_requests`` (default 4): the most infer requests run at once, for calls
    from several threads and :meth:`stream`; each request is made when first needed."""

    key = "openvino"
    thread_safe = True  # each call takes an infer request of its own from the pool

    def activate_impl(self) -> None:
        import openvino as ov

        self.core = ov.Core()
        model = self.core.read_model(str(self.bundle.file("model")), str(self.bundle.file("weights")))
        config = {"PERFORMANCE_HINT": self.options.get("performance_hint", "LATENCY")}
        # This CPU plugin runs bf16 by default where the CPU has it: FP32 bundles pin f32.
        hint = self.options.get("inference_precision") or self.manifest.get("runtime", {}).get("openvino", {}).get(
            "inference_precision", "f32")
        config["INFERENCE_PRECISION_HINT"] = hint
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        self.compiled = self.core.compile_model(model, self.options.get("device", "CPU"), config)
        # what the plugin computes in, after falling back where the CPU lacks the asked type
        effective = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = effective.to_string() if hasattr(effective, "to_string") else str(effective)
        if self.inference_precision != hint:
            log.warning("openvino: this CPU does not compute in %s; the bundle runs in %s", hint, self.inference_precision)
        self.request = self.compiled.create_infer_request()
        self._max_requests = max(1, int(self.options.get("infer_requests", 4)))
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._idle.put(self.request)
        self._made = 1
        self._pool_lock = threading.Lock()
        wanted = set(self.output_names.values())
        # a port carries several tensor names after conversion; take the one the manifest names
        self._outputs = [(o, next((n for n in o.get_names() if n in wanted), o.get_any_name())) for o in self.compiled.outputs]

    def _take(self):
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._pool_lock:
            if self._made < self._max_requests:
                self._made += 1
                return self.compiled.create_infer_request()
        return self._idle.get()  # all busy: wait for one

    def infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        request = self._take()
        try:
            res = request.infer({self.input_name: batch})
            return {name: np.array(res[port]) for port, name in self._outputs}
        finally:
            self._idle.put(request)

    def release_impl(self) -> None:
        self._outputs = []  # its ports hold the compiled model, and with it the mapped weights file
        self._idle = queue.SimpleQueue()
        self.request = None
        self.compiled = None
        self.core = None
