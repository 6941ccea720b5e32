"""A TEST DOUBLE of the ``tensorrt`` module and of the CUDA runtime. It is not TensorRT.

TensorRT cannot be installed on the machines edgecv is developed on. This double
implements the part of the TensorRT 10.x / 11.x Python API that edgecv calls, with the
behaviour edgecv relies on (as documented by NVIDIA, see ../shared/API-NOTES.md), so that
edgecv's own logic around TensorRT is tested: the 10/11 adapter, plan selection by GPU
and version, caches, profiles, buffers and copies, the manifest. What it cannot tell is
whether real TensorRT builds and runs our graphs: the tests in tests/gpu do that.

- ``make_tensorrt(version)`` returns a module object to put in ``sys.modules["tensorrt"]``.
  11.x has no ``EXPLICIT_BATCH``, no FP16/INT8 builder flags; 10.3 has no
  ``SAME_COMPUTE_CAPABILITY``. Networks must be strongly typed (10.x: the flag).
- Its "plan" is a JSON header (TensorRT version, GPU, build flags) and the ONNX bytes; its
  engine runs the graph with onnxruntime on the CPU, reading and writing the memory at
  the addresses edgecv sets. ``deserialize_cuda_engine`` returns None, logging TensorRT's
  message, for a plan of another version (unless version-compatible and host code is
  allowed) or another compute capability.
- Plugins: ``init_libnvinfer_plugins(logger, namespace)`` registers the creators of NVIDIA's
  plugin library (ROIAlign_TRT, ScatterElements, ModulatedDeformConv2d) in the module's plugin
  registry (``get_plugin_registry().get_creator(name, version, namespace)``), or nothing with
  ``plugin_library=False``. As the real parser does, the double's parser builds RoiAlign from
  ROIAlign_TRT version 2 and fails with "ROIAlign plugin was not found in the plugin registry!"
  without it; a plan records the plugins it uses, and its runtime refuses to deserialize it
  while one is not registered. ``stats["plugin_inits"]`` counts the registrations.
- ``FakeCuda`` is host memory behind the :class:`edgecv.runtimes.tensorrt.cuda.Cuda` interface; it
  checks every copy against live allocations and counts what is still allocated.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from importlib.machinery import ModuleSpec

import numpy as np

from edgecv.runtimes.tensorrt.cuda import Cuda, Device

MAGIC = b"EDGECV-TRT-DOUBLE\n"
_ONNX_TO_TRT = {1: "FLOAT", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "HALF"}


class FakeCuda(Cuda):
    """Host memory standing in for device memory; every pointer is checked."""

    def __init__(self, name: str = "NVIDIA Orin", cc: tuple[int, int] = (8, 7)) -> None:
        self.dev = Device(0, name, *cc)
        self.device_mem: dict[int, np.ndarray] = {}
        self.host_mem: dict[int, np.ndarray] = {}
        self.streams: set[int] = set()
        self._next_stream = 1
        self.copies = 0

    def device(self) -> Device:
        return self.dev

    def _alloc(self, table: dict, nbytes: int) -> int:
        buf = np.zeros(max(nbytes, 1), np.uint8)
        ptr = buf.ctypes.data
        table[ptr] = buf
        return ptr

    def malloc(self, nbytes: int) -> int:
        return self._alloc(self.device_mem, nbytes)

    def malloc_host(self, nbytes: int) -> int:
        return self._alloc(self.host_mem, nbytes)

    def free(self, ptr: int) -> None:
        if self.device_mem.pop(ptr, None) is None:
            raise AssertionError(f"cudaFree of {ptr:#x}, which is not a live device allocation")

    def free_host(self, ptr: int) -> None:
        if self.host_mem.pop(ptr, None) is None:
            raise AssertionError(f"cudaFreeHost of {ptr:#x}, which is not a live host allocation")

    def _check(self, table: dict, ptr: int, nbytes: int, what: str) -> None:
        for base, buf in table.items():
            if base <= ptr and ptr + nbytes <= base + buf.nbytes:
                return
        raise AssertionError(f"memcpy {what} {ptr:#x}+{nbytes} is outside every live allocation")

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        if stream not in self.streams:
            raise AssertionError("memcpy on a stream that was not created")
        dst_t, src_t = (self.device_mem, self.host_mem) if kind == 1 else (self.host_mem, self.device_mem)
        self._check(dst_t, dst, nbytes, "destination")
        self._check(src_t, src, nbytes, "source")
        ctypes.memmove(dst, src, nbytes)
        self.copies += 1

    def stream_create(self) -> int:
        s = self._next_stream
        self._next_stream += 1
        self.streams.add(s)
        return s

    def stream_synchronize(self, stream: int) -> None:
        assert stream in self.streams

    def stream_destroy(self, stream: int) -> None:
        self.streams.remove(stream)

    def outstanding(self) -> int:
        return len(self.device_mem) + len(self.host_mem) + len(self.streams)


#: the creators NVIDIA's plugin library registers that edgecv's graphs can need: (name, version)
PLUGIN_LIBRARY = (
    ("ROIAlign_TRT", "1"),
    ("ROIAlign_TRT", "2"),
    ("ScatterElements", "2"),
    ("ModulatedDeformConv2d", "1"),
)
#: ONNX op -> the plugin the parser builds it from (onnx-tensorrt importRoiAlign: ROIAlign_TRT version 2)
PARSER_PLUGINS = {"RoiAlign": ("ROIAlign_TRT", "2", "ROIAlign plugin was not found in the plugin registry!")}


def make_tensorrt(
    version: str = "10.3.0",
    gpu: FakeCuda | None = None,
    gpu_ok: bool = True,
    unsupported_ops: tuple[str, ...] = (),
    plugin_library: bool = True,
) -> types.ModuleType:
    """A module with the TensorRT API subset edgecv uses (see the module docstring)."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = ModuleSpec("tensorrt", None)
    trt.__version__ = version
    trt.__double__ = True
    # host_code: engine_host_code_allowed at each deserialize_cuda_engine call, in order
    stats = {"builds": 0, "timing_cache_in": [], "deserialized": 0, "host_code": [], "plugin_inits": 0}
    trt.stats = stats
    cuda = gpu or FakeCuda()
    creators: dict[tuple[str, str, str], object] = {}  # (name, version, namespace) -> creator

    class PluginCreator:
        def __init__(self, name: str, plugin_version: str, namespace: str) -> None:
            self.name, self.plugin_version, self.plugin_namespace = name, plugin_version, namespace

    class PluginRegistry:
        @property
        def all_creators(self):
            return list(creators.values())

        def get_creator(self, type, version, plugin_namespace=""):  # noqa: A002 - TensorRT's names
            return creators.get((type, version, plugin_namespace))

    registry = PluginRegistry()

    def get_plugin_registry():
        return registry

    def init_libnvinfer_plugins(logger, namespace):
        stats["plugin_inits"] += 1
        if not plugin_library:
            _log(logger, Severity.ERROR, "double: libnvinfer_plugin.so.10: cannot open shared object file")
            return False
        for name, v in PLUGIN_LIBRARY:
            creators[(name, v, namespace)] = PluginCreator(name, v, namespace)
        return True

    class _Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    Severity = _Severity

    class ILogger:
        Severity = _Severity

        def __init__(self) -> None:
            pass

    class Logger(ILogger):
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = tuple(Severity)

    flags = {"STRONGLY_TYPED": 1} if major >= 11 else {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)
    builder_flags = ["DEBUG", "GPU_FALLBACK", "REFIT", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "TF32"]
    if major < 11:
        builder_flags += ["FP16", "BF16", "INT8", "FP8", "OBEY_PRECISION_CONSTRAINTS"]
    BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags)
    MemoryPoolType = enum.IntEnum("MemoryPoolType", ["WORKSPACE", "TACTIC_DRAM"])
    levels = ["NONE", "AMPERE_PLUS"] + (["SAME_COMPUTE_CAPABILITY"] if major >= 11 else [])
    HardwareCompatibilityLevel = enum.IntEnum("HardwareCompatibilityLevel", levels)
    TensorIOMode = enum.IntEnum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    DataType = enum.IntEnum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "BF16", "INT64", "FP8"])

    def _log(logger, sev, msg):
        logger.log(sev, msg)

    class Network:
        def __init__(self, flag_bits: int) -> None:
            self.strongly_typed = major >= 11 or bool(
                flag_bits & (1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED))
            )
            self.onnx = None
            self.plugins: list = []

    class ParserError:
        def __init__(self, node: int, name: str, op: str, desc: str) -> None:
            self._n, self._name, self._op, self._desc = node, name, op, desc

        def node(self):
            return self._n

        def node_name(self):
            return self._name

        def node_operator(self):
            return self._op

        def desc(self):
            return self._desc

    class OnnxParser:
        def __init__(self, network: Network, logger) -> None:
            self.network, self.logger, self.errors = network, logger, []

        def parse(self, model: bytes, path: str | None = None) -> bool:
            import onnx

            proto = onnx.load_from_string(bytes(model))
            used = []
            for i, node in enumerate(proto.graph.node):
                if node.op_type in unsupported_ops:
                    self.errors.append(
                        ParserError(i, node.name, node.op_type, f"No importer registered for op: {node.op_type}")
                    )
                if node.op_type in PARSER_PLUGINS:
                    name, v, missing = PARSER_PLUGINS[node.op_type]
                    if registry.get_creator(name, v, "") is None:
                        self.errors.append(ParserError(i, node.name, node.op_type, missing))
                    elif [name, v] not in used:
                        used.append([name, v])
            if self.errors:
                return False
            self.network.plugins = used
            self.network.onnx = bytes(model)
            self.network.inputs = [
                (i.name, [d.dim_value or -1 for d in i.type.tensor_type.shape.dim]) for i in proto.graph.input
            ]
            return True

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.entries = json.loads(data.decode()) if data else []

        def serialize(self) -> memoryview:
            return memoryview(json.dumps(self.entries).encode())

    class Profile:
        def __init__(self) -> None:
            self.shapes = {}

        def set_shape(self, name, min, opt, max):  # noqa: A002 - TensorRT's names
            if not all(a <= b <= c for a, b, c in zip(min, opt, max)):
                raise RuntimeError("Shape provided for min is inconsistent with other shapes")
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    class Config:
        def __init__(self) -> None:
            self.flags, self.profiles, self.pools = set(), [], {}
            self.timing_cache = None
            self.builder_optimization_level = 3
            self.hardware_compatibility_level = HardwareCompatibilityLevel.NONE

        def set_memory_pool_limit(self, pool, n):
            self.pools[pool] = n

        def set_flag(self, flag):
            self.flags.add(flag)

        def add_optimization_profile(self, p):
            self.profiles.append(p)
            return len(self.profiles) - 1

        def create_timing_cache(self, data: bytes):
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.timing_cache = cache
            return True

        def get_timing_cache(self):
            return self.timing_cache

    class Builder:
        def __init__(self, logger) -> None:
            if not gpu_ok:
                _log(logger, Severity.ERROR, "CUDA initialization failure with error: 35")
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.logger = logger

        def create_network(self, flags: int = 0) -> Network:
            if major >= 11 and flags & ~(1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)):
                raise ValueError("unknown network creation flag")
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config):
            if not network.strongly_typed:
                _log(self.logger, Severity.ERROR, "double: edgecv must build strongly typed networks")
                return None
            dynamic = [n for n, shape in network.inputs if -1 in shape]
            covered = {n for p in config.profiles for n in p.shapes}
            if set(dynamic) - covered:
                _log(
                    self.logger,
                    Severity.ERROR,
                    "Network has dynamic or shape inputs, but no optimization profile has been defined.",
                )
                return None
            stats["builds"] += 1
            stats["timing_cache_in"].append(len(config.timing_cache.entries) if config.timing_cache else None)
            if config.timing_cache is not None:
                config.timing_cache.entries.append(f"{cuda.dev.name}:{stats['builds']}")
            header = {
                "tensorrt": version,
                "gpu": cuda.dev.name,
                "cc": [cuda.dev.major, cuda.dev.minor],
                "version_compatible": BuilderFlag.VERSION_COMPATIBLE in config.flags,
                "hardware": config.hardware_compatibility_level.name,
                "profiles": [{k: [list(s) for s in v] for k, v in p.shapes.items()} for p in config.profiles],
                "workspace": config.pools.get(MemoryPoolType.WORKSPACE),
                "plugins": network.plugins,
            }
            return memoryview(MAGIC + json.dumps(header).encode() + b"\n" + network.onnx)

    class Engine:
        def __init__(self, header: dict, onnx_bytes: bytes) -> None:
            import onnx
            import onnxruntime as ort

            self.header = header
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            self.session = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
            proto = onnx.load_from_string(onnx_bytes)
            self.io = []
            for vi, mode in [
                *[(i, TensorIOMode.INPUT) for i in proto.graph.input],
                *[(o, TensorIOMode.OUTPUT) for o in proto.graph.output],
            ]:
                tt = vi.type.tensor_type
                shape = tuple(d.dim_value if d.dim_value > 0 else -1 for d in tt.shape.dim)
                self.io.append((vi.name, mode, DataType[_ONNX_TO_TRT[tt.elem_type]], shape))

        @property
        def num_io_tensors(self) -> int:
            return len(self.io)

        def get_tensor_name(self, i):
            return self.io[i][0]

        def _t(self, name):
            return next(t for t in self.io if t[0] == name)

        def get_tensor_mode(self, name):
            return self._t(name)[1]

        def get_tensor_dtype(self, name):
            return self._t(name)[2]

        def get_tensor_shape(self, name):
            return self._t(name)[3]

        def create_execution_context(self):
            return Context(self)

    np_types = {
        "FLOAT": np.float32,
        "HALF": np.float16,
        "INT8": np.int8,
        "INT32": np.int32,
        "INT64": np.int64,
        "BOOL": np.bool_,
        "UINT8": np.uint8,
    }

    class Context:
        def __init__(self, engine: Engine) -> None:
            self.engine, self.addresses, self.shapes = engine, {}, {}

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = int(ptr)
            return True

        def set_input_shape(self, name, shape):
            prof = self.engine.header["profiles"]
            if prof:
                lo, _, hi = prof[0][name]
                if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
                    return False
            self.shapes[name] = tuple(shape)
            return True

        def infer_shapes(self):
            return [n for n, m, _, s in self.engine.io if m == TensorIOMode.INPUT and -1 in s and n not in self.shapes]

        def get_tensor_shape(self, name):
            _, mode, _, shape = self.engine._t(name)
            if mode == TensorIOMode.INPUT:
                return self.shapes.get(name, shape)
            batch = next(iter(self.shapes.values()))[0] if self.shapes else 1
            return tuple(batch if (i == 0 and d < 0) else d for i, d in enumerate(shape))

        def _array(self, name, shape):
            dtype = np.dtype(np_types[self.engine._t(name)[2].name])
            n = int(np.prod(shape)) * dtype.itemsize
            buf = (ctypes.c_uint8 * n).from_address(self.addresses[name])
            return np.frombuffer(buf, np.uint8).view(dtype).reshape(shape)

        def execute_async_v3(self, stream) -> bool:
            missing = [t[0] for t in self.engine.io if t[0] not in self.addresses]
            if missing:
                raise AssertionError(f"execute_async_v3 without addresses for {missing}")
            feeds = {}
            for name, mode, _, shape in self.engine.io:
                if mode == TensorIOMode.INPUT:
                    s = self.shapes.get(name, shape)
                    cuda._check(cuda.device_mem, self.addresses[name], 1, "input")
                    feeds[name] = self._array(name, s).copy()
            outs = self.engine.session.run(None, feeds)
            for (name, _, _, _), value in zip([t for t in self.engine.io if t[1] == TensorIOMode.OUTPUT], outs):
                shape = self.get_tensor_shape(name)
                cuda._check(cuda.device_mem, self.addresses[name], value.nbytes, "output")
                self._array(name, shape)[...] = value.reshape(shape)
            return True

    class Runtime:
        def __init__(self, logger) -> None:
            if not gpu_ok:
                _log(logger, Severity.ERROR, "CUDA initialization failure with error: 35")
                raise TypeError("pybind11::init(): factory function returned nullptr")
            self.logger = logger
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, plan: bytes):
            stats["host_code"].append(self.engine_host_code_allowed)
            data = bytes(plan)
            if not data.startswith(MAGIC):
                _log(
                    self.logger,
                    Severity.ERROR,
                    "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                    "(Serialization assertion magicTagRead == kMAGIC_TAG failed.)",
                )
                return None
            head, onnx_bytes = data[len(MAGIC) :].split(b"\n", 1)
            header = json.loads(head)
            built = tuple(int(p) for p in header["tensorrt"].split("."))
            here = tuple(int(p) for p in version.split("."))
            if header["tensorrt"] != version:
                if not header["version_compatible"] or here < built:
                    _log(
                        self.logger,
                        Severity.ERROR,
                        "IRuntime::deserializeCudaEngine: Error Code 6: API Usage Error "
                        "(The engine plan file is not compatible with this version of TensorRT, expecting library "
                        f"version {version} got {header['tensorrt']}, please rebuild.)",
                    )
                    return None
                if not self.engine_host_code_allowed:
                    _log(
                        self.logger,
                        Severity.ERROR,
                        "Cannot deserialize a version-compatible engine: engine_host_code_allowed is false",
                    )
                    return None
            if header["hardware"] == "NONE" and header["cc"] != [cuda.dev.major, cuda.dev.minor]:
                _log(
                    self.logger,
                    Severity.ERROR,
                    "The engine plan file is generated on an incompatible device, "
                    f"expecting compute {cuda.dev.major}.{cuda.dev.minor} got compute "
                    f"{header['cc'][0]}.{header['cc'][1]}, please rebuild.",
                )
                return None
            for name, v in header.get("plugins", []):
                if registry.get_creator(name, v, "") is None:
                    _log(
                        self.logger,
                        Severity.ERROR,
                        f"IPluginRegistry::getCreator: Error Code 4: API Usage Error (Cannot find plugin: {name}, "
                        f"version: {v}, namespace:.)",
                    )
                    return None
            stats["deserialized"] += 1
            return Engine(header, onnx_bytes)

    for name, obj in dict(
        ILogger=ILogger,
        Logger=Logger,
        NetworkDefinitionCreationFlag=NetworkDefinitionCreationFlag,
        BuilderFlag=BuilderFlag,
        MemoryPoolType=MemoryPoolType,
        HardwareCompatibilityLevel=HardwareCompatibilityLevel,
        TensorIOMode=TensorIOMode,
        DataType=DataType,
        OnnxParser=OnnxParser,
        Builder=Builder,
        Runtime=Runtime,
        init_libnvinfer_plugins=init_libnvinfer_plugins,
        get_plugin_registry=get_plugin_registry,
    ).items():
        setattr(trt, name, obj)
    trt.cuda = cuda
    return trt
