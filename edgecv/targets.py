"""The target as a seam: one record per backend key, read by bundle validation, the runtime
registry, the exporter, the CLI's choices and help, the harness, bench, limits and docs.

Adding a backend is one :class:`Target` record (a :func:`register` call) plus its runtime
module under ``edgecv.runtimes`` (and, to export to it, its module under
``edgecv.export.targets``). Nothing here imports a backend library.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownTargetError

#: every precision edgecv knows; each target lists the ones it exports
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class Target:
    """What edgecv knows about one backend key.

    Attributes:
        key: the name in manifests, on the command line and in ``load(..., backend=)``.
        runtime: ``"module:Class"`` of its detector, the module relative to ``edgecv.runtimes``.
        requires: the top-level library the runtime imports (looked up, not imported, to say
            whether it is usable here).
        extra: the pip extra that installs it.
        hint: how to install it where the extra alone does not.
        exporter: the module under ``edgecv.export.targets`` that builds its bundles; None for a
            backend that runs models but is not an export target (``torch``, the reference).
        precisions: the precisions it exports.
        needs_gpu: its bundles run only on an NVIDIA GPU.
        measured_on: the backend that runs its graph on this CPU for validation, accuracy control
            and the harness (itself, or onnxruntime for TensorRT's ONNX graph).
        accuracy_control: the precisions at which keeping layers in float changes its bundle's
            accuracy (``export --max-drop`` searches them); other precisions are validated only.
        peak: whether :func:`edgecv.limits.measure_peak` can measure its CPU peak.
        build_settings: it takes build settings at export (TensorRT's ``--trt-*`` options).
        usable_check: ``module:function`` under ``edgecv.runtimes`` that says whether it can run
            here beyond its library being importable (``(usable, note)``; TensorRT needs a GPU);
            '' where importing the library is the whole check.
        int8_graph: where its INT8 model is an ONNX QDQ graph, the onnxruntime optimization level
            that runs it as the target does (``all``: onnxruntime's integer kernels; ``basic``:
            Q/DQ as float arithmetic, the math TensorRT's INT8 layers approximate); '' where
            it is not (OpenVINO's NNCF model).
        score_input: its detector graphs take the NMS score floor as an input, fed with the
            runtime's ``conf`` (``output.nms.score_input`` in the manifest); else the export's
            floor is baked into the graph.
    """

    key: str
    runtime: str
    requires: str
    extra: str
    hint: str = ""
    exporter: str | None = None
    precisions: tuple[str, ...] = ()
    needs_gpu: bool = False
    measured_on: str = ""
    accuracy_control: tuple[str, ...] = ()
    peak: bool = False
    build_settings: bool = False
    int8_graph: str = ""
    usable_check: str = ""
    score_input: bool = True

    @property
    def validation_backend(self) -> str:
        """The backend its graph is measured with here (see ``measured_on``)."""
        return self.measured_on or self.key

    def describe_measurement(self) -> str:
        """How a validation of this target's bundle was measured, in words, for the manifest."""
        via = self.validation_backend
        return self.key if via == self.key else f"{via} (CPU)"


_TARGETS: dict[str, Target] = {}


def register(target: Target) -> None:
    """Add a target. Raises ValueError on a duplicate key."""
    if target.key in _TARGETS:
        raise ValueError(f"target '{target.key}' is already registered")
    unknown = set(target.precisions) - set(PRECISIONS)
    if unknown:
        raise ValueError(f"target '{target.key}': unknown precisions {sorted(unknown)}")
    _TARGETS[target.key] = target


register(
    Target(
        "onnxruntime",
        "onnxruntime:OnnxRuntimeDetector",
        "onnxruntime",
        "onnxruntime",
        exporter="onnxruntime",
        precisions=("fp32", "fp16", "int8"),
        accuracy_control=("fp16", "int8"),
        peak=True,
        int8_graph="all",
    )
)
register(
    Target(
        "openvino",
        "openvino:OpenVinoDetector",
        "openvino",
        "openvino",
        exporter="openvino",
        precisions=("fp32", "fp16", "bf16", "int8"),
        accuracy_control=("int8",),
        peak=True,
    )
)
register(
    Target(
        "tensorrt",
        "tensorrt.backend:TensorRtDetector",
        "tensorrt",
        "tensorrt",
        hint="TensorRT comes from NVIDIA: on x86-64 `pip install 'edgecv[tensorrt]' tensorrt`; on a Jetson, "
        "JetPack's python3-libnvinfer (a virtual environment needs --system-site-packages) and `pip install "
        "'edgecv[tensorrt]'`. To check a tensorrt bundle's graph on a CPU: load(bundle, backend='onnxruntime')",
        exporter="tensorrt",
        precisions=("fp32", "fp16", "int8"),
        needs_gpu=True,
        measured_on="onnxruntime",
        accuracy_control=("fp16", "int8"),
        build_settings=True,
        int8_graph="basic",
        usable_check="tensorrt.plans:usable_here",
    )
)
# the eager PyTorch reference every bundle is compared with: a runtime, not an export target
register(Target("torch", "torch:TorchDetector", "torch", "export", precisions=("fp32",)))


def get(key: str) -> Target:
    """The record of target ``key``; :class:`UnknownTargetError` names the known ones."""
    if key not in _TARGETS:
        raise UnknownTargetError(f"unknown target '{key}'; edgecv knows {', '.join(_TARGETS)}")
    return _TARGETS[key]


def keys() -> tuple[str, ...]:
    """Every registered key (runtimes included)."""
    return tuple(_TARGETS)


def export_keys() -> tuple[str, ...]:
    """The keys ``edgecv export --target`` accepts."""
    return tuple(k for k, t in _TARGETS.items() if t.exporter)


def export_target(key: str) -> Target:
    """The record of export target ``key``; :class:`UnknownTargetError` lists the export targets."""
    t = _TARGETS.get(key)
    if t is None or not t.exporter:
        raise UnknownTargetError(f"unknown target '{key}'; choose one of {', '.join(export_keys())}")
    return t
