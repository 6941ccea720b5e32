"""What the CPU this process may run on offers: its physical cores (the default thread count of
every CPU backend) and the vector extensions that decide which kernels backends pick."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity mask, where the OS has one)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on: SMT siblings count once.

    Inference kernels keep a core's vector units busy, so a second thread on its sibling slows
    both; onnxruntime and OpenVINO default to one thread per physical core for this reason.
    Falls back to the number of usable logical CPUs where the topology is not readable.
    """
    cpus = usable_cpus()
    cores = set()
    for c in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add(
                (topo.joinpath("physical_package_id").read_text().strip(), topo.joinpath("core_id").read_text().strip())
            )
        except OSError:
            return len(cpus)
    return max(1, len(cores))


#: the vector extensions that change which kernels CPU backends run (int8 dot products, bf16, AMX)
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def isa(cpuinfo: str | None = None) -> list[str]:
    """The :data:`ISA_FLAGS` this CPU has, read from ``/proc/cpuinfo`` (or the ``cpuinfo`` text
    given); empty where it is not readable."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    have = set(next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "").split(":", 1)[-1].split())
    return [f for f in ISA_FLAGS if f in have]


def computes_bf16(flags: list[str] | None = None) -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512_BF16 or AMX-BF16), where OpenVINO's
    CPU plugin computes bf16 as fast as or faster than f32; ``flags`` as :func:`isa` gives them."""
    have = set(isa() if flags is None else flags)
    return bool(have & {"avx512_bf16", "amx_bf16"})


def float_precision(flags: list[str] | None = None) -> str:
    """The precision OpenVINO's float operations run in for ``inference_precision="auto"``:
    ``bf16`` on CPUs that compute it natively, ``f32`` elsewhere (AVX2-only CPUs emulate bf16)."""
    return "bf16" if computes_bf16(flags) else "f32"


#: the x86 extensions with an 8-bit dot product that sums in 32 bits (VNNI, AMX-INT8)
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_dot_saturates(flags: list[str] | None = None, arch: str | None = None) -> bool:
    """Whether onnxruntime's U8S8 INT8 kernels on this CPU add pairs of 8-bit products in 16
    bits with saturation (``vpmaddubsw``): x86 CPUs without VNNI or AMX-INT8. There, 8-bit
    weights overflow and INT8 models need 7-bit weights (``reduce_range``); VNNI, AMX and Arm's
    dot-product instructions sum in 32 bits. ``flags`` as :func:`isa` gives them, ``arch`` as
    ``platform.machine()``."""
    import platform

    machine_arch = (arch or platform.machine()).lower()
    if machine_arch not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    have = set(isa() if flags is None else flags)
    return not have & set(INT8_DOT_FLAGS)


def model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module says."""
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor()


def machine() -> dict:
    """The machine a run was measured on: CPU model, cores, ISA, Python, platform and the
    versions of the libraries that decide speed. Recorded with every benchmark figure."""
    import numpy as np

    from . import __version__

    versions = {"edgecv": __version__, "numpy": np.__version__}
    for dist in ("onnxruntime", "openvino", "torch"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return {
        "cpu": model_name(),
        "cores": os.cpu_count(),
        "isa": isa(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
