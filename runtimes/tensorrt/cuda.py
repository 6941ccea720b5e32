"""The few CUDA runtime calls the TensorRT backend needs, without torch.

Two implementations of one small interface: ``cuda-python`` (``cuda.bindings.runtime``,
or ``cuda.cudart`` in older releases) when it is installed, else ctypes over
``libcudart`` as Polygraphy does. Device pointers and streams are plain ints.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, CudaError, EdgecvError

# cudaMemcpyKind
HOST_TO_DEVICE = 1
DEVICE_TO_HOST = 2
# cudaDeviceAttr
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76


@dataclass(frozen=True)
class Device:
    """The GPU a plan is built for and run on."""

    index: int
    name: str
    major: int
    minor: int

    @property
    def compute_capability(self) -> str:
        return f"{self.major}.{self.minor}"


class Cuda:
    """The interface: device memory, page-locked host memory, copies and one stream."""

    def device(self) -> Device:
        raise NotImplementedError

    def malloc(self, nbytes: int) -> int:
        raise NotImplementedError

    def free(self, ptr: int) -> None:
        raise NotImplementedError

    def malloc_host(self, nbytes: int) -> int:
        raise NotImplementedError

    def free_host(self, ptr: int) -> None:
        raise NotImplementedError

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        raise NotImplementedError

    def stream_create(self) -> int:
        raise NotImplementedError

    def stream_synchronize(self, stream: int) -> None:
        raise NotImplementedError

    def stream_destroy(self, stream: int) -> None:
        raise NotImplementedError

    def host_array(self, ptr: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A numpy view of ``nbytes`` of page-locked memory at ``ptr``."""
        dtype = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        buf = (ctypes.c_uint8 * max(n, 1)).from_address(ptr)
        return np.frombuffer(buf, dtype=np.uint8, count=n).view(dtype).reshape(shape)


# --- cuda-python ------------------------------------------------------------------------------


class BindingsCuda(Cuda):
    """``cuda-python``: every call returns ``(err, *values)``."""

    def __init__(self, module: Any) -> None:
        self.rt = module
        self._check(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount")

    def _check(self, result: Any, call: str) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, msg = self.rt.cudaGetErrorString(err)
            raise CudaError(f"{call} failed: {msg.decode() if isinstance(msg, bytes) else msg} (CUDA error {int(err)})")
        return values[0] if len(values) == 1 else values

    def device(self) -> Device:
        index = self._check(self.rt.cudaGetDevice(), "cudaGetDevice")
        props = self._check(self.rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
        return Device(int(index), name, int(props.major), int(props.minor))

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._check(self.rt.cudaFree(ptr), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))

    def free_host(self, ptr: int) -> None:
        self._check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, self.rt.cudaMemcpyKind(kind), stream), "cudaMemcpyAsync")

    def stream_create(self) -> int:
        return int(self._check(self.rt.cudaStreamCreate(), "cudaStreamCreate"))

    def stream_synchronize(self, stream: int) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: int) -> None:
        self._check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")


# --- ctypes over libcudart --------------------------------------------------------------------


def _libcudart_candidates() -> list[str]:
    names = [n for n in (os.environ.get("EDGECV_LIBCUDART"), ctypes.util.find_library("cudart")) if n]
    names += ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
    spec = importlib.util.find_spec("nvidia")  # the CUDA runtime wheels (nvidia-cuda-runtime-*)
    for root in (spec.submodule_search_locations or []) if spec else []:
        names += sorted(glob.glob(os.path.join(root, "*", "lib", "libcudart.so*")), reverse=True)
        names += sorted(glob.glob(os.path.join(root, "*", "*", "lib", "libcudart.so*")), reverse=True)
    return [n for n in dict.fromkeys(names) if not n.endswith(".a")]


class CtypesCuda(Cuda):
    """ctypes over ``libcudart.so`` (found on the library path, or in NVIDIA's runtime wheels)."""

    def __init__(self, path: str | None = None) -> None:
        lib = None
        tried = [path] if path else _libcudart_candidates()
        for name in tried:
            try:
                lib = ctypes.CDLL(name)
                self.path = name
                break
            except OSError:
                continue
        if lib is None:
            raise BackendUnavailableError(
                "the CUDA runtime library (libcudart.so) was not found: install the CUDA toolkit or "
                "`pip install cuda-python` (tried: " + ", ".join(tried) + ")"
            )
        self.lib = lib
        L = self.lib
        vp, sz, ci = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        L.cudaGetErrorString.restype = ctypes.c_char_p
        L.cudaGetErrorString.argtypes = [ci]
        L.cudaMalloc.argtypes = [ctypes.POINTER(vp), sz]
        L.cudaMallocHost.argtypes = [ctypes.POINTER(vp), sz]
        L.cudaFree.argtypes = [vp]
        L.cudaFreeHost.argtypes = [vp]
        L.cudaMemcpyAsync.argtypes = [vp, vp, sz, ci, vp]
        L.cudaStreamCreate.argtypes = [ctypes.POINTER(vp)]
        L.cudaStreamSynchronize.argtypes = [vp]
        L.cudaStreamDestroy.argtypes = [vp]
        L.cudaDeviceGetAttribute.argtypes = [ctypes.POINTER(ci), ci, ci]
        n = ci(0)
        self._check(L.cudaGetDeviceCount(ctypes.byref(n)), "cudaGetDeviceCount")
        if n.value < 1:
            raise CudaError("no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)")

    def _check(self, err: int, call: str) -> None:
        if err != 0:
            msg = self.lib.cudaGetErrorString(err)
            raise CudaError(f"{call} failed: {msg.decode() if msg else 'unknown error'} (CUDA error {err})")

    def device(self) -> Device:
        L, ci = self.lib, ctypes.c_int
        index, major, minor = ci(0), ci(0), ci(0)
        self._check(L.cudaGetDevice(ctypes.byref(index)), "cudaGetDevice")
        self._check(L.cudaDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, index), "cudaDeviceGetAttribute")
        self._check(L.cudaDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, index), "cudaDeviceGetAttribute")
        # cudaDeviceProp starts with char name[256] in every CUDA version; the rest of its layout
        # changes between versions, so it is read into a buffer larger than any of them.
        props = ctypes.create_string_buffer(16384)
        fn = getattr(L, "cudaGetDeviceProperties_v2", None) or L.cudaGetDeviceProperties
        self._check(fn(props, index), "cudaGetDeviceProperties")
        return Device(
            index.value, props.raw[:256].split(b"\0", 1)[0].decode(errors="replace"), major.value, minor.value
        )

    def malloc(self, nbytes: int) -> int:
        p = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(p), nbytes), "cudaMalloc")
        return int(p.value or 0)

    def free(self, ptr: int) -> None:
        self._check(self.lib.cudaFree(ptr), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        p = ctypes.c_void_p()
        self._check(self.lib.cudaMallocHost(ctypes.byref(p), nbytes), "cudaMallocHost")
        return int(p.value or 0)

    def free_host(self, ptr: int) -> None:
        self._check(self.lib.cudaFreeHost(ptr), "cudaFreeHost")

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self._check(self.lib.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync")

    def stream_create(self) -> int:
        s = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return int(s.value or 0)

    def stream_synchronize(self, stream: int) -> None:
        self._check(self.lib.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: int) -> None:
        self._check(self.lib.cudaStreamDestroy(stream), "cudaStreamDestroy")


def _bindings_module() -> Any | None:
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            if importlib.util.find_spec(name.rsplit(".", 1)[0]) is None:
                continue
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def open_cuda(prefer: str | None = None) -> Cuda:
    """The CUDA runtime: ``cuda-python`` if installed (or ``prefer="bindings"``), else ctypes.

    Raises:
        BackendUnavailableError: no CUDA runtime library is installed.
        CudaError: the library is there but no GPU can be used (no driver, no device).
    """
    first: EdgecvError | None = None
    if prefer != "ctypes":
        module = _bindings_module()
        if module is not None:
            try:
                return BindingsCuda(module)
            except CudaError as e:  # e.g. cuda-python 13 over a CUDA 12 driver (JetPack 6): try libcudart
                if prefer == "bindings":
                    raise
                first = e
        elif prefer == "bindings":
            raise BackendUnavailableError("cuda-python is not installed: pip install 'edgecv[tensorrt]'")
    try:
        return CtypesCuda()
    except EdgecvError:
        if first is not None:
            raise first from None
        raise
