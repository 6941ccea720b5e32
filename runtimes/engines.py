"""TensorRT plans: the build settings a bundle carries, which plan fits this GPU and
TensorRT, building one, and keeping it (in the bundle or in a cache directory).

A plan belongs to one GPU and one TensorRT version unless it was built
version-compatible (later TensorRT versions may run it) or with a
hardware-compatibility level (``ampere_plus``: any GPU of compute capability 8.0 or
later; ``same_compute_capability``: any GPU of the same compute capability). Nothing
here imports ``tensorrt``: the builder and the runtime go through
:class:`edgecv.runtimes.trt_api.TrtApi`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..bundle import Bundle, add_file, atomic_write
from ..errors import BackendUnavailableError, BundleError, EdgecvError

log = logging.getLogger("edgecv")

HARDWARE_LEVELS = ("none", "ampere_plus", "same_compute_capability")
#: what ``edgecv export --target tensorrt`` writes into ``runtime.tensorrt.build``
BUILD_DEFAULTS: dict[str, Any] = {
    "workspace_mb": 1024,
    "opt_batch": 1,
    "max_batch": 8,
    "version_compatible": False,
    "hardware_compatibility": "none",
    "optimization_level": 3,
}
MAX_PROFILE_BATCH = 1024


def cache_dir() -> Path:
    """Default directory of plans built on first load and of timing caches."""
    return Path(os.environ.get("EDGECV_CACHE", Path.home() / ".cache" / "edgecv")) / "tensorrt"


# --- settings and profile -----------------------------------------------------------------------

def check_settings(settings: dict) -> dict:
    """Validate build settings; returns them merged over :data:`BUILD_DEFAULTS`.

    Raises:
        EdgecvError: naming the setting that is unknown or out of range.
    """
    unknown = set(settings) - set(BUILD_DEFAULTS)
    if unknown:
        raise EdgecvError(f"unknown TensorRT build settings {sorted(unknown)}; known: {sorted(BUILD_DEFAULTS)}")
    s = {**BUILD_DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    for key in ("workspace_mb", "opt_batch", "max_batch", "optimization_level"):
        if not isinstance(s[key], int) or isinstance(s[key], bool):
            raise EdgecvError(f"TensorRT build setting {key} must be an integer, not {s[key]!r}")
    if not 1 <= s["opt_batch"] <= s["max_batch"] <= MAX_PROFILE_BATCH:
        raise EdgecvError(f"TensorRT profile batches must satisfy 1 <= opt ({s['opt_batch']}) <= max "
                          f"({s['max_batch']}) <= {MAX_PROFILE_BATCH}")
    if not 16 <= s["workspace_mb"] <= 1 << 20:
        raise EdgecvError(f"TensorRT workspace {s['workspace_mb']} MB must be between 16 MB and 1 TB")
    if not 0 <= s["optimization_level"] <= 5:
        raise EdgecvError(f"TensorRT builder optimization level {s['optimization_level']} must be 0..5")
    if s["hardware_compatibility"] not in HARDWARE_LEVELS:
        raise EdgecvError(f"hardware compatibility '{s['hardware_compatibility']}' is not one of {HARDWARE_LEVELS}")
    if not isinstance(s["version_compatible"], bool):
        raise EdgecvError("TensorRT build setting version_compatible must be true or false")
    return s


def settings_of(manifest: dict, **overrides: Any) -> dict:
    """The build settings of a tensorrt bundle, with ``overrides`` (None = keep)."""
    rt = manifest.get("runtime", {}).get("tensorrt", {})
    return check_settings({**rt.get("build", {}), **{k: v for k, v in overrides.items() if v is not None}})


def profile(manifest: dict, settings: dict) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The optimization profile: input name -> (min, opt, max) shapes.

    A bundle's image size is fixed (its letterbox size); its batch is 1 or dynamic, and a
    dynamic batch spans 1 .. ``max_batch`` with TensorRT tuning for ``opt_batch``.
    """
    inp = manifest["input"]
    return profile_for(inp["name"], inp["shape"], settings)


def profile_for(name: str, shape: list[int] | tuple[int, ...], settings: dict) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The profile of one input of shape ``[batch, ...]`` (batch <= 0: dynamic)."""
    b, *rest = (int(d) for d in shape)
    if b > 0:
        shapes = ((b, *rest),) * 3
    else:
        shapes = ((1, *rest), (settings["opt_batch"], *rest), (settings["max_batch"], *rest))
    return {name: shapes}


# --- identity, selection ------------------------------------------------------------------------

def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> (10, 3, 0, 26); non-numeric parts end the version."""
    out = []
    for part in str(text).split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        out.append(int(m.group()))
    return tuple(out)


@dataclass(frozen=True)
class Identity:
    """What a plan is tied to: the GPU (name, compute capability) and the TensorRT version."""

    gpu: str
    compute_capability: str  # "8.7"
    tensorrt: str  # "10.3.0"

    @property
    def key(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-") or "gpu"
        return f"{slug}-sm{self.compute_capability.replace('.', '')}-trt{self.tensorrt}"

    def __str__(self) -> str:
        return f"{self.gpu} (compute capability {self.compute_capability}) with TensorRT {self.tensorrt}"


def describe(entry: dict) -> str:
    extra = []
    if entry.get("version_compatible"):
        extra.append("version-compatible")
    if entry.get("hardware_compatibility", "none") != "none":
        extra.append(f"hardware compatibility {entry['hardware_compatibility']}")
    return (f"{entry['gpu']} (compute capability {entry['compute_capability']}) with TensorRT {entry['tensorrt']}"
            + (f" [{', '.join(extra)}]" if extra else ""))


def refusal(entry: dict, here: Identity) -> str | None:
    """Why the plan described by ``entry`` cannot run here; None if it can."""
    built, now = parse_version(entry["tensorrt"]), parse_version(here.tensorrt)
    if entry.get("version_compatible"):  # TensorRT itself has the last word when it deserializes
        if now < built:
            return f"built version-compatible with TensorRT {entry['tensorrt']}: it runs on that version or later only"
    elif built != now:
        return f"built with TensorRT {entry['tensorrt']}, this machine has {here.tensorrt}"
    level = entry.get("hardware_compatibility", "none")
    cc_built, cc_here = parse_version(entry["compute_capability"]), parse_version(here.compute_capability)
    if level == "ampere_plus":
        if cc_here < (8, 0):
            return f"built for Ampere and later GPUs; this GPU has compute capability {here.compute_capability}"
    elif cc_built != cc_here:
        return f"built for compute capability {entry['compute_capability']}, this GPU has {here.compute_capability}"
    elif level == "none" and entry["gpu"] != here.gpu:
        return f"built on a {entry['gpu']}, this GPU is a {here.gpu}"
    return None


def select(entries: list[dict], here: Identity, graph_sha256: str | None = None) -> dict | None:
    """The plan to run here: an exact match first, then a compatible one; None if none fits.

    A plan built from another graph than the bundle's (``graph_sha256``) never fits."""
    usable = [e for e in entries if refusal(e, here) is None
              and (graph_sha256 is None or e.get("graph_sha256") in (None, graph_sha256))]
    exact = [e for e in usable if e["tensorrt"] == here.tensorrt and e["gpu"] == here.gpu
             and e["compute_capability"] == here.compute_capability]
    return (exact or usable or [None])[0]


def mismatch_message(entries: list[dict], here: Identity, where: str) -> str:
    """What was found, what this machine is, and how to get a plan for it."""
    if entries:
        found = "; ".join(f"{describe(e)}: {refusal(e, here) or 'built from another graph'}" for e in entries)
        head = f"{where} has no TensorRT plan for this machine. It has plans for: {found}."
    else:
        head = f"{where} has no TensorRT plan yet (it was exported where TensorRT or a GPU was missing)."
    return (f"{head} This machine is {here}. Build one here: `edgecv build {where}` (adds it to the bundle), "
            "or load with build_engine=True (builds on first load and caches it).")


# --- building -----------------------------------------------------------------------------------

def plan_entry(here: Identity, settings: dict, graph_sha256: str, file: str | None, seconds: float) -> dict:
    return {"file": file, "key": here.key, "gpu": here.gpu, "compute_capability": here.compute_capability,
            "tensorrt": here.tensorrt, "version_compatible": settings["version_compatible"],
            "hardware_compatibility": settings["hardware_compatibility"], "graph_sha256": graph_sha256,
            "build": {k: settings[k] for k in BUILD_DEFAULTS},
            "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 1)}


def timing_cache_path(here: Identity, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / f"timing-{here.key}.cache"


def build_plan(api: Any, onnx_path: Path, manifest: dict, settings: dict, timing_cache: Path | None = None,
               say: Callable[[str], None] | None = None) -> tuple[bytes, float]:
    """Build a plan from the bundle's ONNX graph on this GPU; returns (plan, seconds).

    ``timing_cache`` is read if it exists and rewritten after the build, so that later
    builds on the same GPU and TensorRT skip the kernel timing already done.
    """
    say = say or log.info
    cache = timing_cache.read_bytes() if timing_cache is not None and timing_cache.is_file() else b""
    shapes = profile(manifest, settings)
    say(f"building a TensorRT {api.version} plan (strongly typed; profile "
        + ", ".join(f"{n} {list(s[0])}..{list(s[2])}" for n, s in shapes.items())
        + f"; workspace {settings['workspace_mb']} MB{'; timing cache reused' if cache else ''})")
    t0 = time.perf_counter()
    plan, new_cache = api.build(onnx_path, settings, shapes, cache)
    seconds = time.perf_counter() - t0
    if timing_cache is not None and new_cache:
        atomic_write(timing_cache, new_cache)
    say(f"plan built in {seconds:.1f} s ({len(plan) / 1e6:.1f} MB)")
    return plan, seconds


def add_to_bundle(bundle_path: Path, plan: bytes, entry: dict) -> Path:
    """Write ``plan`` into the bundle and list it in ``runtime.tensorrt.engines``; a plan for
    the same GPU and TensorRT is replaced."""
    name = f"engine-{entry['key']}.plan"
    entry = dict(entry, file=name)

    def update(m: dict) -> None:
        rt = m.setdefault("runtime", {}).setdefault("tensorrt", {})
        rt["engines"] = [e for e in rt.get("engines", []) if e.get("file") != name] + [entry]

    return add_file(bundle_path, name, plan, "engine", update)


class PlanCache:
    """Plans kept outside the bundle, keyed by the graph, the build settings and the machine.

    Each plan has a JSON sidecar with its sha256; a plan whose bytes do not match it is
    never handed to TensorRT.
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.dir = Path(directory) if directory is not None else cache_dir()

    def key(self, graph_sha256: str, settings: dict, here: Identity) -> str:
        s = json.dumps({k: settings[k] for k in sorted(BUILD_DEFAULTS)}, sort_keys=True)
        return f"{graph_sha256[:16]}-{hashlib.sha256(s.encode()).hexdigest()[:8]}-{here.key}"

    def get(self, graph_sha256: str, settings: dict, here: Identity) -> tuple[bytes, dict] | None:
        key = self.key(graph_sha256, settings, here)
        plan, meta = self.dir / f"{key}.plan", self.dir / f"{key}.json"
        if not (plan.is_file() and meta.is_file()):
            return None
        try:
            entry = json.loads(meta.read_text())
            data = plan.read_bytes()
        except (OSError, ValueError):
            return None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256") or refusal(entry, here) is not None:
            log.warning("tensorrt: cached plan %s does not match its record; it will be rebuilt", plan)
            return None
        return data, entry

    def put(self, plan: bytes, entry: dict, graph_sha256: str, settings: dict, here: Identity) -> Path:
        key = self.key(graph_sha256, settings, here)
        path = self.dir / f"{key}.plan"
        atomic_write(path, plan)  # the plan first: a sidecar never names a missing plan
        atomic_write(self.dir / f"{key}.json",
                      json.dumps(dict(entry, file=path.name, sha256=hashlib.sha256(plan).hexdigest()), indent=2).encode())
        return path


def graph_sha256(bundle: Bundle) -> str:
    """sha256 of the bundle's ONNX graph (from the manifest; the bundle was verified on open)."""
    bundle.file("model")  # a BundleError naming the bundle when it has no graph
    return next(f["sha256"] for f in bundle.manifest["files"] if f["role"] == "model")


def find_plan(bundle: Bundle, here: Identity, *, build_engine: bool = False, engine_cache: str | os.PathLike | None = None,
              api: Any = None, say: Callable[[str], None] | None = None) -> tuple[bytes, dict]:
    """The plan to run ``bundle`` on this machine: from the bundle, else from ``engine_cache``,
    else built here when ``build_engine`` (and kept in ``engine_cache``, or in the bundle).

    Raises:
        BackendUnavailableError: no plan fits and building was not asked for.
    """
    if bundle.target != "tensorrt":
        raise BundleError(f"'{bundle.path}' is a {bundle.target} bundle, not a tensorrt one")
    rt = bundle.manifest.get("runtime", {}).get("tensorrt", {})
    entries = list(rt.get("engines", []))
    gsha = graph_sha256(bundle)
    entry = select(entries, here, gsha)
    if entry is not None:
        path = bundle._confined(entry["file"])
        listed = {f["path"] for f in bundle.manifest["files"]}
        if entry["file"] not in listed:
            raise BundleError(f"manifest: engine {entry['file']!r} is not among the bundle's hashed files; "
                              f"rebuild it with `edgecv build {bundle.path} --force`")
        return path.read_bytes(), entry
    settings = settings_of(bundle.manifest)
    cache = PlanCache(engine_cache) if engine_cache is not None else None
    if cache is not None:
        hit = cache.get(gsha, settings, here)
        if hit is not None:
            return hit
    if not build_engine:
        raise BackendUnavailableError(mismatch_message(entries, here, str(bundle.path)))
    plan, seconds = build_plan(api, bundle.file("model"), bundle.manifest, settings,
                               timing_cache_path(here, cache.dir if cache else None), say)
    entry = plan_entry(here, settings, gsha, None, seconds)
    if cache is not None:
        cache.put(plan, entry, gsha, settings, here)
    else:
        if not os.access(bundle.path, os.W_OK):
            raise BundleError(f"the plan was built but '{bundle.path}' is read-only: pass engine_cache=DIR to keep "
                              "plans elsewhere")
        dest = add_to_bundle(bundle.path, plan, entry)
        entry = dict(entry, file=dest.name)
    return plan, entry


def identity_here(api: Any, cuda: Any) -> Identity:
    dev = cuda.device()
    return Identity(dev.name, dev.compute_capability, api.version)


def can_build_here() -> str | None:
    """None if TensorRT and a GPU are usable here, else why not (nothing heavy is imported
    unless ``tensorrt`` is installed)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed"
    try:
        from .cuda import open_cuda
        from .trt_api import TrtApi

        TrtApi()
        open_cuda().device()
    except EdgecvError as e:
        return str(e)
    return None
