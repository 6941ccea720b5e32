"""OpenVINO backend (CPU plugin).

Speed choices, each measured on the YOLOv8n bundle at 640 (benchmarks/results/speed-*.md):

- the model is compiled with a static input shape for batch 1 and for the detector's
  ``batch_size`` (a dynamic batch ran 13% slower at batch 1); other batch sizes share one
  dynamic-shape compilation, made when first needed;
- the input array is handed over without a copy (``share_inputs``);
- :meth:`~runtimes.base.Detector.stream` runs on a second compilation with the THROUGHPUT hint
  (several streams, one request each), which gave 1.2x the frames per second of the LATENCY
  compilation on 2 cores;
- the CPU plugin's threads are not pinned to cores (``ENABLE_CPU_PINNING`` off): the same speed
  on a quiet machine, 9% faster beside a busy loop on one of 2 cores.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, BundleError, EdgecvError
from ..graph_references import check_model
from .base import Detector

log = logging.getLogger("edgecv")


class _Compiled:
    """One compilation of the model and its pool of infer requests (made when first needed)."""

    def __init__(self, compiled, max_requests: int, wanted: set[str]) -> None:
        self.compiled = compiled
        self.max_requests = max(1, max_requests)
        self.idle: queue.SimpleQueue = queue.SimpleQueue()
        self.made = 0
        self.lock = threading.Lock()
        # a port carries several tensor names after conversion; take the one the manifest names
        self.outputs = [
            (o, next((n for n in o.get_names() if n in wanted), o.get_any_name())) for o in compiled.outputs
        ]

    def take(self):
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            pass
        with self.lock:
            if self.made < self.max_requests:
                self.made += 1
                return self.compiled.create_infer_request()
        return self.idle.get()  # all busy: wait for one

    def infer(self, name: str, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        request = self.take()
        try:
            # share_inputs: the request reads the caller's array in place; share_outputs: the
            # results are views of the request's buffers, copied once here before it is reused
            feeds = {name: np.ascontiguousarray(batch), **(extra or {})}
            res = request.infer(feeds, share_inputs=True, share_outputs=True)
            return {n: np.array(res[port]) for port, n in self.outputs}
        finally:
            self.idle.put(request)


class OpenVinoDetector(Detector):
    """Options:

    - ``infer_requests`` (default 4): the most infer requests of one compilation run at once,
      for calls from several threads and :meth:`stream`;
    - ``static_shapes`` (default True): compile for fixed batch sizes (1 and ``batch_size``);
    - ``inference_precision`` (default the bundle's: ``auto`` for INT8, ``bf16`` for bf16
      bundles, ``f32`` otherwise): what OpenVINO's float operations (an INT8 bundle's
      unquantized parts too) compute in: ``f32``, ``bf16``, or ``auto``: bf16 on CPUs with
      AVX512_BF16 or AMX, f32 elsewhere. Where the bundle's validation ran at another precision
      than this CPU gives, loading warns: its recorded accuracy was not measured at this one;
    - ``cpu_pinning`` (default False): pin the CPU plugin's threads to cores (OpenVINO's own
      default); unpinned, a busy neighbour costs less (see :meth:`_compile`);
    - ``performance_hint`` (default the bundle's, LATENCY) for calls, ``stream_hint``
      (default THROUGHPUT) for :meth:`stream`; ``device`` (default CPU).
    """

    key = "openvino"
    thread_safe = True  # each call takes an infer request of its own from the pool

    def activate_impl(self) -> None:
        try:
            import openvino as ov
        except ImportError as e:  # missing, or a broken install (its native libraries)
            raise BackendUnavailableError(
                f"openvino cannot be imported ({e}): pip install 'edgecv[openvino]'"
            ) from None

        if self.bundle is None:
            raise EdgecvError("the openvino backend runs the model of a bundle: load one with edgecv.load(path)")
        self.core = ov.Core()
        self._model = self._read_model(ov)
        self._dims = [d.get_length() if d.is_static else -1 for d in self._model.inputs[0].get_partial_shape()]
        # This CPU plugin runs bf16 by default where the CPU has it: FP32 bundles pin f32.
        self._hint = self.options.get("inference_precision") or self.manifest.get("runtime", {}).get(
            "openvino", {}
        ).get("inference_precision", "f32")
        if self._hint == "auto":  # bf16 where the CPU computes it natively (edgecv.cpu.computes_bf16), else f32
            from ..cpu import float_precision

            self._hint = float_precision()
        self._static = bool(self.options.get("static_shapes", True)) and not self.fixed_batch
        self._wanted = set(self.output_names.values())
        self._compiled: dict[tuple, _Compiled] = {}
        self._compile_lock = threading.Lock()
        try:
            first = self._compilation(self.fixed_batch or 1, "latency")
        except RuntimeError as e:  # OpenVINO's errors are RuntimeErrors: a model its CPU plugin cannot compile
            raise self._broken(e) from None
        # what the plugin computes in, after falling back where the CPU lacks the asked type
        effective = first.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = effective.to_string() if hasattr(effective, "to_string") else str(effective)
        if self.inference_precision != self._hint:
            log.warning(
                "openvino: this CPU does not compute in %s; the bundle runs in %s", self._hint, self.inference_precision
            )
        validated = (self.manifest.get("validation") or {}).get("inference_precision")
        if validated and validated != self.inference_precision and "inference_precision" not in self.options:
            # "auto" follows the CPU: a bundle validated where it ran f32 runs bf16 on a CPU with
            # native bf16, and its recorded figure is then not the one that holds here
            log.warning(
                "openvino: bundle '%s' was validated with its float parts in %s; this CPU runs them in %s, so "
                "its recorded accuracy was not measured at this precision: run edgecv compare on this machine, "
                "or load it with inference_precision=%r",
                self.bundle.path.name if self.bundle else "?",
                validated,
                self.inference_precision,
                validated,
            )
        self.threads_used = int(first.compiled.get_property("INFERENCE_NUM_THREADS"))
        self._warm_bridge(first)

    def _warm_bridge(self, first: _Compiled) -> None:
        """One inference on the loading thread, before any call from another thread.

        OpenVINO's Python binding sets up its numpy bridge lazily, under a static guard, on the
        first call that converts an array. Two threads making that first call at once (the
        workers of :meth:`stream`) can deadlock: one holds the guard and waits for the GIL, the
        other holds the GIL and waits for the guard (seen as a hang of ``det.stream(paths)`` in
        a fresh process). Making the first call here, alone, sets the bridge up before then.
        """
        dims = [self.fixed_batch or 1, *self._dims[1:]]
        if any(d < 1 for d in dims):
            return  # a dynamic spatial size: the first real call sets the bridge up instead
        port = self._model.inputs[0]
        dtype = np.uint8 if port.get_element_type().to_string() == "u8" else np.float32
        first.infer(self.input_name, np.zeros(dims, dtype), self.extra_inputs(dims[0]))

    def _read_model(self, ov: Any) -> Any:
        """The bundle's IR from the bytes whose sha256 was checked (:meth:`Bundle.read`), not from
        its paths: a file replaced on disk after the check is never what runs. The weights are
        read straight into a tensor OpenVINO allocates and then owns, so they are held once."""
        assert self.bundle is not None
        xml = self.bundle.read("model")
        check_model(self.bundle, xml, self.key)  # weights: the hashed .bin beside the XML, and nothing else
        tensors = []

        def allocate(size: int) -> np.ndarray:
            tensors.append(ov.Tensor(ov.Type.u8, ov.Shape([size])))
            return tensors[-1].data  # a view of the tensor's own memory, filled in place

        self.bundle.read("weights", into=allocate)
        (tensor,) = tensors  # the model keeps it alive (in C++) once read_model has it
        try:
            return self.core.read_model(xml.decode("utf-8"), tensor)
        except UnicodeDecodeError:
            raise BundleError(f"the model of bundle '{self.bundle.path}' is not an OpenVINO IR (XML)") from None
        except RuntimeError as e:  # OpenVINO's errors (a malformed IR) are RuntimeErrors
            raise self._broken(e) from None

    def _broken(self, e: Exception) -> BundleError:
        assert self.bundle is not None
        # OpenVINO's message: a line per source location it passed through, then what was wrong
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("Exception from ")]
        return BundleError(
            f"bundle '{self.bundle.path}': OpenVINO cannot load {self.bundle.file('model').name} "
            f"({type(e).__name__}: {' '.join(lines) or str(e).strip()}); it is the file the manifest hashes, "
            "so the bundle was written broken: re-export it"
        )

    def _compilation(self, batch: int, mode: str) -> _Compiled:
        """The compilation that runs a batch of ``batch`` in ``mode`` (latency or throughput)."""
        size: str | int | None
        if not self._static:
            size = "bundle"  # the bundle's own shapes
        elif batch in (1, self.batch_size):
            size = batch
        else:
            size = None  # the one dynamic-batch compilation
        key = (size, mode)
        got = self._compiled.get(key)
        if got is not None:
            return got
        with self._compile_lock:
            got = self._compiled.get(key)
            if got is None:
                got = self._compiled[key] = self._compile(size, mode)
        return got

    def _compile(self, size, mode: str) -> _Compiled:
        model = self._model
        if isinstance(size, int) and self._static:
            model = self._model.clone()
            # every input has the batch first: the images, and the score floor [B] where it is one
            model.reshape({port: [size, *(self._dims[1:] if k == 0 else [])] for k, port in enumerate(model.inputs)})
        hint = (
            self.options.get("stream_hint", "THROUGHPUT")
            if mode == "throughput"
            else self.options.get("performance_hint")
            or self.manifest.get("runtime", {}).get("openvino", {}).get("performance_hint", "LATENCY")
        )
        config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": self._hint}
        device = self.options.get("device", "CPU")
        if device == "CPU":
            # Unpinned threads: with a busy neighbour on one of 2 cores, a thread pinned to that
            # core holds the whole inference back; unpinned, the OS moves it (YOLOv8n INT8 at 640
            # beside a busy loop: 73.5 ms pinned, 66.8 ms not; the same 34.4 ms on a quiet machine)
            config["ENABLE_CPU_PINNING"] = bool(self.options.get("cpu_pinning", False))
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        compiled = self.core.compile_model(model, device, config)
        requests = int(self.options.get("infer_requests", 4))
        if mode == "throughput":  # at least one request per stream the plugin made
            requests = max(requests, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        log.debug("openvino: compiled for batch %s, %s hint", size, hint)
        return _Compiled(compiled, requests, self._wanted)

    def infer_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        return self._compilation(len(batch), "latency").infer(self.input_name, batch, extra)

    def infer_stream_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        return self._compilation(len(batch), "throughput").infer(self.input_name, batch, extra)

    def release_impl(self) -> None:
        # a compilation's ports hold the compiled model, and with it the weights tensor
        self._compiled = {}
        self._model = None
        self.core = None
