"""The TensorRT Python API as edgecv uses it: the one place that knows it and the
differences between 10.x (JetPack 6 ships 10.3) and 11.x.

Both are driven the same way: a strongly typed network parsed from an ONNX graph that
carries its precision (FP32, FP16, or INT8 as explicit Q/DQ). TensorRT 11 removed weak
typing (the FP16/INT8 builder flags, the INT8 calibrator, ``EXPLICIT_BATCH``) and makes
every network strongly typed; TensorRT 10 needs the ``STRONGLY_TYPED`` creation flag.
"""

from __future__ import annotations

import collections
import importlib
import logging
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, EdgecvError, ExportError, PlanError

log = logging.getLogger("edgecv")

SUPPORTED_MAJORS = (10, 11)
#: TensorRT DataType member name -> numpy dtype (BF16, FP8, INT4 and FP4 have no numpy type
#: and are never I/O of an edgecv graph)
DTYPES = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}
HARDWARE_LEVEL_NAMES = {
    "none": "NONE",
    "ampere_plus": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
}


#: id of a tensorrt module -> (the module, whether NVIDIA's plugin library registered, the logger
#: given to it). TensorRT keeps that logger for as long as the process runs (the plugin library
#: holds its pointer), so it is kept here too; plugins are registered once per process.
_PLUGIN_LIBRARY: dict[int, tuple[Any, bool, Any]] = {}
_PLUGIN_LOCK = threading.Lock()


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> (10, 3, 0, 26); non-numeric parts end the version."""
    out = []
    for part in str(text).split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        out.append(int(m.group()))
    return tuple(out)


def _plugin_hint() -> str:
    return (
        "TensorRT builds these operators from NVIDIA's plugin library (libnvinfer_plugin), which edgecv "
        "registers with trt.init_libnvinfer_plugins: install it with TensorRT (on a Jetson, JetPack's "
        "libnvinfer-plugin10 package; on x86-64, the libraries of the `tensorrt` pip package)"
    )


def _install_hint() -> str:
    return (
        "TensorRT is installed with NVIDIA's packages: on x86-64 `pip install tensorrt` (it fetches the libraries "
        "from NVIDIA's index); on a Jetson it comes with JetPack (apt python3-libnvinfer), use a virtual "
        "environment made with --system-site-packages"
    )


class TrtApi:
    """TensorRT, as edgecv uses it. ``module`` defaults to ``import tensorrt``."""

    def __init__(self, module: Any = None) -> None:
        if module is None:
            try:
                module = importlib.import_module("tensorrt")
            except ImportError as e:  # missing, or its libraries (libnvinfer) are
                raise BackendUnavailableError(f"TensorRT cannot be imported ({e}). {_install_hint()}") from None
        self.trt = module
        self.version = str(module.__version__)
        self.major = (parse_version(self.version) or (0,))[0]
        if self.major not in SUPPORTED_MAJORS:
            raise BackendUnavailableError(
                f"TensorRT {self.version} is not supported: edgecv builds and runs plans with "
                f"TensorRT {' and '.join(f'{m}.x' for m in SUPPORTED_MAJORS)}"
            )
        self.messages: collections.deque[str] = collections.deque(maxlen=50)
        self.logger = self._make_logger()

    # -- logging -------------------------------------------------------------------------------

    def _make_logger(self) -> Any:
        trt, messages = self.trt, self.messages
        S = trt.Logger.Severity if hasattr(trt.Logger, "Severity") else trt.Logger
        levels = {
            getattr(S, n, None): lvl
            for n, lvl in (
                ("INTERNAL_ERROR", logging.CRITICAL),
                ("ERROR", logging.ERROR),
                ("WARNING", logging.WARNING),
                ("INFO", logging.DEBUG),
                ("VERBOSE", logging.DEBUG),
            )
        }

        class _Logger(trt.ILogger):  # type: ignore[name-defined]  # a class of the module loaded at run time
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: Any, msg: str) -> None:  # called by TensorRT, from any thread
                level = levels.get(severity, logging.INFO)
                if level >= logging.WARNING:
                    messages.append(msg)
                log.log(level, "tensorrt: %s", msg)

        return _Logger()

    # -- plugins -------------------------------------------------------------------------------

    def load_plugins(self) -> bool:
        """Register NVIDIA's plugin library (libnvinfer_plugin) in TensorRT's plugin registry,
        once per process: ``trt.init_libnvinfer_plugins(logger, "")``. The ONNX parser builds
        some operators from its plugins (RoiAlign from ROIAlign_TRT), and a plan that holds
        them needs them registered to load. Returns whether the library registered."""
        with _PLUGIN_LOCK:
            done = _PLUGIN_LIBRARY.get(id(self.trt))
            if done is None or done[0] is not self.trt:
                try:
                    ok = bool(self.trt.init_libnvinfer_plugins(self.logger, ""))
                except (AttributeError, OSError, RuntimeError, TypeError) as e:  # no plugin library
                    log.warning("tensorrt: NVIDIA's plugin library did not load: %s", e)
                    ok = False
                if not ok:
                    log.warning("tensorrt: NVIDIA's plugin library (libnvinfer_plugin) did not register its plugins")
                done = (self.trt, ok, self.logger)
                _PLUGIN_LIBRARY[id(self.trt)] = done
            return done[1]

    def missing_plugins(self, plugins: Iterable[dict]) -> list[dict]:
        """The plugins of ``plugins`` (``{"name", "version", "ops"}``, as a bundle's manifest
        lists them) that TensorRT's plugin registry does not have. A plugin whose version is
        not known (None) is not looked for."""
        registry = self.trt.get_plugin_registry()
        get = getattr(registry, "get_creator", None) or registry.get_plugin_creator
        return [p for p in plugins if p.get("version") and get(p["name"], str(p["version"]), "") is None]

    def require_plugins(self, plugins: Iterable[dict], what: str) -> None:
        """Load NVIDIA's plugin library and check that ``plugins`` are registered.

        Raises:
            BackendUnavailableError: one is missing; the message names it, the operators that
                need it, and how to install the library.
        """
        plugins = list(plugins)
        loaded = self.load_plugins()
        missing = self.missing_plugins(plugins) if plugins else []
        if missing:
            raise BackendUnavailableError(
                f"{what} needs "
                + ", ".join(
                    f"TensorRT's {p['name']} plugin (version {p['version']}) for its {'/'.join(p.get('ops', []))} nodes"
                    for p in missing
                )
                + f", and TensorRT {self.version}'s plugin registry has no such plugin"
                + ("" if loaded else " (NVIDIA's plugin library, libnvinfer_plugin, did not load)")
                + ". "
                + _plugin_hint()
            )

    def recent_errors(self) -> str:
        """TensorRT's last few warnings and errors, for a message."""
        return " | ".join(list(self.messages)[-5:]) or "no message from TensorRT"

    # -- building ------------------------------------------------------------------------------

    def network_flags(self) -> int:
        """Creation flags of a strongly typed network: 11.x is strongly typed whatever the flags
        (and may drop the flag); 10.x needs STRONGLY_TYPED. EXPLICIT_BATCH is never set: it is
        the only mode of 10.x and gone from 11.x."""
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None:
            if self.major < 11:
                raise BackendUnavailableError(
                    f"TensorRT {self.version} has no strongly typed networks; use 10.x or 11.x"
                )
            return 0
        return 1 << int(flag)

    def builder(self) -> Any:
        try:
            builder = self.trt.Builder(self.logger)
        except TypeError as e:  # "factory function returned nullptr": no usable GPU
            raise BackendUnavailableError(
                f"TensorRT could not start on a GPU here ({self.recent_errors()}; {e}); "
                "the tensorrt backend needs an NVIDIA GPU and its driver"
            ) from None
        self.load_plugins()  # the parser looks plugins up (RoiAlign: ROIAlign_TRT) while it parses
        return builder

    def parse(self, network: Any, onnx: bytes, onnx_path: Path | None = None) -> Any:
        parser = self.trt.OnnxParser(network, self.logger)
        ok = parser.parse(onnx, None if onnx_path is None else str(onnx_path))  # path: for external weights
        if not ok:
            errors = []
            for i in range(parser.num_errors):
                e = parser.get_error(i)
                node = e.node_name() if hasattr(e, "node_name") else e.node()
                op = e.node_operator() if hasattr(e, "node_operator") else ""
                errors.append(f"{op or 'node'} {node!s}: {e.desc()}")
            plugin = any("plugin registry" in e for e in errors)
            raise ExportError(
                f"TensorRT {self.version} cannot parse the graph: "
                + "; ".join(errors or [self.recent_errors()])
                + (f". {_plugin_hint()}" if plugin else "")
                + " (run `edgecv doctor --target tensorrt` on the bundle for the full check)"
            )
        return parser

    def configure(self, builder: Any, settings: dict, shapes: dict, timing_cache: bytes) -> Any:
        trt = self.trt
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_mb"]) << 20)
        if hasattr(config, "builder_optimization_level"):
            config.builder_optimization_level = int(settings["optimization_level"])
        dynamic = any(s[0] != s[2] for s in shapes.values())
        if dynamic:
            prof = builder.create_optimization_profile()
            for name, (lo, opt, hi) in shapes.items():
                prof.set_shape(name, lo, opt, hi)
            config.add_optimization_profile(prof)
        cache = config.create_timing_cache(timing_cache or b"")
        config.set_timing_cache(cache, False)
        if settings["version_compatible"]:
            config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
            # the lean runtime is not shipped in the plan: the installed TensorRT runs it
            if hasattr(trt.BuilderFlag, "EXCLUDE_LEAN_RUNTIME"):
                config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
        level = settings["hardware_compatibility"]
        if level != "none":
            member = getattr(trt.HardwareCompatibilityLevel, HARDWARE_LEVEL_NAMES[level], None)
            if member is None:
                raise ExportError(f"TensorRT {self.version} has no hardware compatibility level '{level}'")
            config.hardware_compatibility_level = member
        return config

    def build(
        self,
        onnx: bytes | Path,
        settings: dict,
        shapes: dict,
        timing_cache: bytes = b"",
        *,
        onnx_path: Path | None = None,
        plugins: Iterable[dict] = (),
    ) -> tuple[bytes, bytes]:
        """Build a serialized plan from an ONNX graph (its bytes, or its file); returns (plan,
        timing cache). ``onnx_path``: where the bytes came from (TensorRT resolves external
        weights beside it); ``plugins``: the plugins the graph's operators are built from (a
        manifest's ``runtime.tensorrt.plugins``), checked for before parsing."""
        if isinstance(onnx, Path):
            onnx_path = onnx
            onnx = onnx.read_bytes()
        builder = self.builder()
        self.require_plugins(plugins, "the graph")
        network = builder.create_network(self.network_flags())
        parser = self.parse(network, onnx, onnx_path)
        config = self.configure(builder, settings, shapes, timing_cache)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ExportError(f"TensorRT {self.version} could not build the plan: {self.recent_errors()}")
        cache = config.get_timing_cache()
        new_cache = bytes(memoryview(cache.serialize())) if cache is not None else b""
        del parser  # held until here: the parser owns the weights the builder reads
        return bytes(memoryview(plan)), new_cache

    # -- running -------------------------------------------------------------------------------

    def deserialize(self, plan: bytes, host_code: bool = False, plugins: Iterable[dict] = ()) -> tuple[Any, Any]:
        """(runtime, ICudaEngine) from a plan. ``host_code`` lets a version-compatible plan run
        the code it carries: only for a plan built here or one whose maker the caller trusts
        (``trust_plan_code``); a hash does not say who built a plan. ``plugins``: the plugins
        the plan's layers use (a manifest's ``runtime.tensorrt.plugins``), checked for first."""
        try:
            runtime = self.trt.Runtime(self.logger)
        except TypeError as e:
            raise BackendUnavailableError(
                f"TensorRT could not start on a GPU here ({self.recent_errors()}; {e})"
            ) from None
        self.require_plugins(plugins, "the plan")
        if host_code:
            runtime.engine_host_code_allowed = True
        cuda_engine = runtime.deserialize_cuda_engine(plan)
        if cuda_engine is None:
            errors = self.recent_errors()
            if "plugin" in errors.lower():  # a plan of an older bundle, whose manifest lists no plugins
                raise BackendUnavailableError(
                    f"TensorRT {self.version} cannot load the plan: {errors}. {_plugin_hint()}"
                )
            raise PlanError(
                f"TensorRT {self.version} refused the plan: {errors}; rebuild it on this machine with `edgecv build BUNDLE`"
            )
        return runtime, cuda_engine

    def io_tensors(self, cuda_engine: Any) -> list[tuple[str, bool, np.dtype, tuple[int, ...]]]:
        """(name, is_input, numpy dtype, shape with -1 for dynamic dimensions) of each I/O tensor."""
        out = []
        for i in range(cuda_engine.num_io_tensors):
            name = cuda_engine.get_tensor_name(i)
            is_input = cuda_engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
            dt = cuda_engine.get_tensor_dtype(name)
            dname = getattr(dt, "name", str(dt).rsplit(".", 1)[-1])
            if dname not in DTYPES:
                raise EdgecvError(
                    f"tensor {name} of the plan is {dname}, which edgecv cannot hand to numpy; the "
                    "graph's inputs and outputs must be float32, float16 or integer"
                )
            shape = tuple(int(d) for d in cuda_engine.get_tensor_shape(name))
            out.append((name, is_input, np.dtype(DTYPES[dname]), shape))
        return out
