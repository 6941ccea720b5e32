"""edgecv.runtimes: one module per backend behind one base class, a registry and :func:`load`."""

from __future__ import annotations

import os
from typing import Any

from ..bundle import Bundle
from .base import Detector
from .registry import available, get_backend, is_available, keys

__all__ = ["Detector", "available", "get_backend", "is_available", "keys", "load"]


def load(path: str | os.PathLike, backend: str | None = None, **options: Any) -> Detector:
    """Load a bundle directory; its manifest picks the backend.

    Args:
        path: the bundle directory written by ``edgecv export``; or the URL of a served model,
            ``http(s)://HOST:PORT/v2/models/NAME``, for a
            :class:`~edgecv.serving.client.RemoteDetector` (``edgecv serve``, Triton).
        backend: run the bundle's graph on another backend than its target; only
            ``"onnxruntime"`` for a bundle whose model is an ONNX graph (e.g. checking the
            accuracy of a tensorrt bundle's graph on a CPU).
        **options: passed to the detector: ``conf``, ``color``, ``threads``, ``batch_size``
            and backend settings (see :class:`edgecv.runtimes.base.Detector`). For tensorrt
            bundles: ``build_plan=True`` builds a plan on first load when the bundle has none
            for this GPU and TensorRT version, kept in the bundle or in ``plan_cache`` (a
            directory, also searched without ``build_plan``); see
            :class:`edgecv.runtimes.tensorrt.backend.TensorRtDetector`.
            ``trust_plan_code=True``: run a version-compatible TensorRT plan, which carries
            host code that TensorRT runs in this process. The bundle's hashes prove that its
            files are intact, not who made them: pass it only for bundles from someone you
            trust. Without it such a plan is refused (:class:`BundleError`). Other backends
            run no code from a bundle and ignore it.

    Raises:
        BundleError: the bundle is missing, malformed or was modified; its graph refers to a
            file or an operator domain the manifest does not vouch for (external data, a custom
            operator, other OpenVINO weights); the backend cannot read its model; or (tensorrt)
            its plan runs host code and ``trust_plan_code`` is not given.
        BackendUnavailableError: the backend library is not installed, or (tensorrt) there is
            no usable GPU or no plan for this one, with what to do.
    """
    if isinstance(path, str) and path.startswith(("http://", "https://")):
        from ..errors import BackendUnavailableError
        from ..serving.client import RemoteDetector

        if backend is not None:
            raise BackendUnavailableError(f"{path} runs on its server; backend={backend!r} does not apply to it")
        return RemoteDetector(path, **options)
    bundle = Bundle.open(path)
    if backend is not None and backend != bundle.target:
        if backend != "onnxruntime" or bundle.file("model").suffix != ".onnx":
            from ..errors import BackendUnavailableError

            raise BackendUnavailableError(
                f"this bundle (target {bundle.target}, model {bundle.file('model').name}) runs on {bundle.target}, or on "
                f"onnxruntime when its model is an ONNX graph; not on {backend}"
            )
        # Run Q/DQ as float arithmetic (no fusion into onnxruntime's integer kernels): that is the
        # exact math TensorRT's INT8 layers approximate, while onnxruntime's x86 S8S8 kernels
        # saturate on CPUs without VNNI and would misreport the graph's accuracy.
        options.setdefault("graph_optimization_level", "basic")
        return get_backend("onnxruntime")(bundle.manifest, bundle, **options)
    cls = get_backend(bundle.target)
    return cls(bundle.manifest, bundle, **options)
