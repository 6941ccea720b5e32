"""TensorRT backend: a plan for this GPU and TensorRT (from :func:`.plans.ensure_plan`), run
with ``execute_async_v3`` on one CUDA stream; device and page-locked host memory through
:mod:`.cuda` (cuda-python or libcudart), never torch.

Every output of an edgecv graph has a fixed size given the batch (``num_dets [B]``,
``boxes [B, K, 4]``, ...), so all buffers are allocated once, for the profile's largest
batch, when the detector is loaded.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, CudaError, EdgecvError, InferenceError, PlanError
from ..base import Detector
from . import cuda as _cuda
from . import plans
from .api import TrtApi

log = logging.getLogger("edgecv")


class TensorRtDetector(Detector):
    """Options (through :func:`edgecv.load`):

    - ``build_plan`` (default False): when the bundle has no plan for this GPU and TensorRT
      version, build one on first load (seconds to minutes) instead of refusing;
    - ``plan_cache``: a directory for plans built on first load (default: into the bundle
      itself), read before building;
    - ``trust_plan_code`` (default False): run a version-compatible plan, whose host code
      TensorRT runs in this process; without it such a plan read from a file is refused with a
      :class:`BundleError` (one built by this load runs without it).

    (``build_engine`` and ``engine_cache``, their old names, still work, with a
    DeprecationWarning.) Batches go up to the profile's ``max_batch`` (``predict`` splits
    longer lists).
    """

    key = "tensorrt"
    thread_safe = False  # one execution context and one set of buffers: calls are serialised

    def activate_impl(self) -> None:
        # user -> load -> __init__ -> activate -> here: the warning names the user's line
        options = plans.renamed_options(self.options, "load()", stacklevel=5)
        bundle = self.bundle
        if bundle is None:
            raise EdgecvError("the tensorrt backend runs the plans of a bundle: load one with edgecv.load(path)")
        graph = plans.Graph.of_bundle(bundle)
        graph.read()  # what the graph refers to is checked at every load, not only when a plan is built
        self.api = api = TrtApi()
        try:
            self.cuda = _cuda.open_cuda()
            here = plans.identity_here(api, self.cuda)
        except CudaError as e:
            raise BackendUnavailableError(
                f"no usable NVIDIA GPU here ({e}); to check a tensorrt bundle's graph on a CPU: "
                "load(bundle, backend='onnxruntime')"
            ) from None
        cache = options.get("plan_cache")
        stores: list[plans.PlanStore] = [plans.BundlePlans(bundle)]
        if cache is not None:
            stores.append(plans.PlanCache(cache))
        plan = plans.ensure_plan(
            graph,
            stores,
            plans.settings_of(self.manifest),
            build=bool(options.get("build_plan")),
            api=api,
            here=here,
        )
        self.plan_entry = plan.entry
        host_code = plans.runs_host_code(plan.entry)
        # A hash proves a plan intact, not who built it: host code from a file runs only when the
        # caller trusts its maker; a plan this load built from the checked graph is our own.
        if host_code and not plan.built and not options.get("trust_plan_code"):
            raise plans.trust_refusal(plan.entry.get("file") or str(plan.path), f"bundle '{bundle.path}'")
        self.runtime, self.cuda_engine = api.deserialize(plan.read(), host_code=host_code, plugins=graph.plugins)
        self.context = self.cuda_engine.create_execution_context()
        if self.context is None:
            raise PlanError(f"TensorRT could not create an execution context: {api.recent_errors()}")
        try:
            self._allocate()
        except BaseException:
            self.release_impl()  # what was allocated before the failure
            raise
        log.info("tensorrt: running %s", plans.describe(plan.entry))

    def _allocate(self) -> None:
        # the profile the plan was built with (`edgecv build` may have changed the bundle's settings)
        settings = plans.check_settings(self.plan_entry.get("build") or plans.settings_of(self.manifest))
        _, _, hi = plans.profile(self.manifest, settings)[self.input_name]
        self.max_batch = hi[0]
        if self.fixed_batch is None:
            self.batch_size = min(self.batch_size, self.max_batch)
        self._cuda_stream: int | None = self.cuda.stream_create()
        self.buffers: dict[str, tuple[int, int, np.ndarray]] = {}  # name -> (device ptr, host ptr, host view)
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        extra = list(plans.extra_inputs_of(self.manifest))
        known = {self.input_name, *extra, *self.output_names.values()}
        for name, is_input, dtype, shape in self.api.io_tensors(self.cuda_engine):
            if name not in known:
                raise PlanError(f"the plan has a tensor '{name}' the manifest does not name: rebuild the plan")
            full = tuple(self.max_batch if (i == 0 and d < 0) else d for i, d in enumerate(shape))
            if any(d < 0 for d in full):
                raise PlanError(
                    f"tensor {name} of the plan has a data-dependent shape {shape}: edgecv graphs have "
                    "fixed-size outputs; re-export the bundle"
                )
            nbytes = int(np.prod(full, dtype=np.int64)) * dtype.itemsize
            dev, host = self.cuda.malloc(nbytes), self.cuda.malloc_host(nbytes)
            self.buffers[name] = (dev, host, self.cuda.host_array(host, full, dtype))
            self.context.set_tensor_address(name, dev)
            (self.inputs if is_input else self.outputs).append(name)
        if self.inputs != [self.input_name, *extra]:
            raise PlanError(f"the plan's inputs {self.inputs} are not the manifest's {[self.input_name, *extra]}")

    def infer_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        b = batch.shape[0]
        if b > self.max_batch:
            raise EdgecvError(
                f"a batch of {b} exceeds the plan's profile (at most {self.max_batch}); rebuild with a "
                "larger max batch or pass batch_size"
            )
        try:
            return self._run_plan(batch, extra or {})
        except CudaError as e:
            raise InferenceError(
                f"tensorrt inference failed: {e}. The detector is still loaded; if this repeats, "
                "close it and load the bundle again"
            ) from e

    def _run_plan(self, batch: np.ndarray, extra: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        stream = self._cuda_stream
        assert stream is not None, "the stream is made by _allocate and destroyed only by release_impl"
        for name, value in {self.input_name: batch, **extra}.items():  # the images, the score floors
            dev, host, view = self.buffers[name]
            np.copyto(view[: value.shape[0]], value)
            self.cuda.memcpy_async(dev, host, value.nbytes, _cuda.HOST_TO_DEVICE, stream)
            if not self.context.set_input_shape(name, tuple(value.shape)):
                raise InferenceError(
                    f"TensorRT refused the shape {tuple(value.shape)} of input '{name}': {self.api.recent_errors()}"
                )
        missing = self.context.infer_shapes()
        if missing:
            raise InferenceError(f"TensorRT cannot infer the shapes of {list(missing)}: {self.api.recent_errors()}")
        if not self.context.execute_async_v3(stream):
            raise InferenceError(f"TensorRT inference failed: {self.api.recent_errors()}")
        shapes = {}
        for name in self.outputs:
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            dev, host, view = self.buffers[name]
            n = int(np.prod(shape, dtype=np.int64)) * view.dtype.itemsize
            self.cuda.memcpy_async(host, dev, n, _cuda.DEVICE_TO_HOST, stream)
            shapes[name] = shape
        self.cuda.stream_synchronize(stream)
        # copies: the page-locked buffers are reused by the next call
        return {
            name: self.buffers[name][2].reshape(-1)[: int(np.prod(s, dtype=np.int64))].reshape(s).copy()
            for name, s in shapes.items()
        }

    def release_impl(self) -> None:
        cuda: Any = getattr(self, "cuda", None)
        for dev, host, _ in getattr(self, "buffers", {}).values():
            cuda.free(dev)
            cuda.free_host(host)
        self.buffers = {}
        if getattr(self, "_cuda_stream", None) is not None:
            cuda.stream_destroy(self._cuda_stream)
            self._cuda_stream = None
        self.context = self.cuda_engine = self.runtime = None
