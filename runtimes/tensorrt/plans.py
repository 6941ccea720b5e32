"""The plan store: the build settings a tensorrt bundle carries, which TensorRT plan fits this
GPU and TensorRT, and :func:`ensure_plan`, the one way to get a plan: find one, or build it
and keep it (in a bundle, in a bundle being exported, or in a cache directory). Loading,
``edgecv build`` (:func:`build_bundle_plan`) and the export all go through it.

A plan belongs to one GPU and one TensorRT version unless it was built
version-compatible (later TensorRT versions may run it) or with a
hardware-compatibility level (``ampere_plus``: any GPU of compute capability 8.0 or
later; ``same_compute_capability``: any GPU of the same compute capability). Nothing
here imports ``tensorrt``: building goes through :class:`.api.TrtApi`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...bundle import Bundle, add_file, atomic_write, sha256_file
from ...errors import BackendUnavailableError, BundleError, CudaError, EdgecvError, PlanError
from ...graph_references import check_model, check_onnx
from . import cuda as _cuda
from .api import TrtApi, parse_version

log = logging.getLogger("edgecv")

Say = Callable[[str], None]

# The bundle format's names for plans, unchanged since its first schema version.
#: the manifest's list of plans: ``runtime.tensorrt.engines``
MANIFEST_KEY = "engines"
#: the role of a plan among the bundle's files
FILE_ROLE = "engine"
#: a plan's file name in a bundle: ``engine-<gpu>-sm<cc>-trt<version>.plan``
FILE_PREFIX = "engine-"

#: options of plans that were renamed -> their names now (the old ones still work, with a warning)
RENAMED_OPTIONS = {"build_engine": "build_plan", "engine_cache": "plan_cache"}

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


def renamed_options(options: dict, where: str, stacklevel: int = 2) -> dict:
    """``options`` with the old names of :data:`RENAMED_OPTIONS` replaced by the new ones, each
    with a DeprecationWarning (``stacklevel`` as the caller would pass it to ``warnings.warn``).

    Raises:
        EdgecvError: an option is given under both names.
    """
    out = dict(options)
    for old, new in RENAMED_OPTIONS.items():
        if old in out:
            if new in out:
                raise EdgecvError(f"{where}: {old} is the old name of {new}; pass {new} only")
            warnings.warn(
                f"{where}: {old} is now called {new}; the old name will be removed",
                DeprecationWarning,
                stacklevel=stacklevel + 1,
            )
            out[new] = out.pop(old)
    return out


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
        raise EdgecvError(
            f"TensorRT profile batches must satisfy 1 <= opt ({s['opt_batch']}) <= max "
            f"({s['max_batch']}) <= {MAX_PROFILE_BATCH}"
        )
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
    """The optimization profile of a bundle: input name -> (min, opt, max) shapes.

    A bundle's image size is fixed (its letterbox size); its batch is 1 or dynamic, and a
    dynamic batch spans 1 .. ``max_batch`` with TensorRT tuning for ``opt_batch``. A graph
    that takes the NMS score floor has it as a second input, one value per image ([B]).
    """
    inp = manifest["input"]
    return profile_for(inp["name"], inp["shape"], settings, extra_inputs_of(manifest))


def extra_inputs_of(manifest: dict) -> tuple[str, ...]:
    """The inputs of a bundle's graph after the images: the NMS score floor ([B]) where it has one."""
    score = (manifest.get("output", {}).get("nms") or {}).get("score_input")
    return (score,) if score else ()


def profile_for(
    name: str, shape: Sequence[int], settings: dict, extra: Sequence[str] = ()
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The profile of an input of shape ``[batch, ...]`` (batch <= 0: dynamic), and of the
    ``extra`` inputs of one value per image ([batch]) that go with it."""
    b, *rest = (int(d) for d in shape)
    batches = (b,) * 3 if b > 0 else (1, settings["opt_batch"], settings["max_batch"])
    out = {name: tuple((n, *rest) for n in batches)}
    out.update({e: tuple((n,) for n in batches) for e in extra})
    return out


def plugins_of(manifest: dict) -> tuple[dict, ...]:
    """The TensorRT plugins a tensorrt bundle's graph needs, as its export recorded them (none
    recorded by bundles exported before edgecv looked)."""
    return tuple(manifest.get("runtime", {}).get("tensorrt", {}).get("plugins", []))


@dataclass(frozen=True)
class Graph:
    """The ONNX graph plans are built from: its file, its sha256 and its input ``[batch, ...]``
    (batch <= 0: dynamic); :meth:`read` gives its bytes."""

    path: Path
    sha256: str
    input_name: str
    input_shape: tuple[int, ...]
    bundle: Bundle | None = field(default=None, repr=False, compare=False)
    #: the TensorRT plugins its operators are built from (``{"name", "version", "ops"}``, the static
    #: check's :meth:`~.static_check.Report.plugin_entries`): looked for before a plan is built or loaded
    plugins: tuple[dict, ...] = field(default=(), compare=False)
    #: its inputs after the images, one value per image ([batch]): the NMS score floor
    extra_inputs: tuple[str, ...] = ()

    def read(self) -> bytes:
        """The graph's bytes, checked against :attr:`sha256` as they are read: a plan is built
        from the graph its record names, even if the file is replaced meanwhile. TensorRT's
        parser is given the graph's path and would read external weights beside it, and look
        operators of other domains up among plugins: a graph that refers to either is refused
        (:func:`edgecv.graph_references.check_onnx`).

        Raises:
            BundleError: the file no longer has that sha256, or it refers to what no manifest hashes.
        """
        if self.bundle is not None:
            data = self.bundle.read("model")
            check_model(self.bundle, data, "tensorrt")
            return data
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise BundleError(f"the graph '{self.path}' changed while its plan was being built; export again")
        check_onnx(data, self.path.name, "tensorrt", f"'{self.path.parent}': ")
        return data

    @classmethod
    def of_bundle(cls, bundle: Bundle) -> Graph:
        """A bundle's graph (its hash from the manifest: the bundle was verified on open)."""
        path = bundle.file("model")  # a BundleError naming the bundle when it has no graph
        sha = next(f["sha256"] for f in bundle.manifest["files"] if f["role"] == "model")
        inp, m = bundle.manifest["input"], bundle.manifest
        shape = tuple(int(d) for d in inp["shape"])
        return cls(path, sha, inp["name"], shape, bundle, plugins_of(m), extra_inputs_of(m))

    @classmethod
    def of_file(
        cls,
        path: str | os.PathLike,
        input_name: str,
        input_shape: Sequence[int],
        plugins: Sequence[dict] = (),
        extra_inputs: Sequence[str] = (),
    ) -> Graph:
        """A graph outside a bundle (a bundle being exported); its sha256 is computed."""
        shape = tuple(int(d) for d in input_shape)
        return cls(Path(path), sha256_file(path), input_name, shape, None, tuple(plugins), tuple(extra_inputs))

    def profile(self, settings: dict) -> dict[str, tuple[tuple[int, ...], ...]]:
        """The optimization profile a plan of this graph is built with."""
        return profile_for(self.input_name, self.input_shape, settings, self.extra_inputs)


# --- identity, selection ------------------------------------------------------------------------


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


def identity_here(api: TrtApi, cuda: _cuda.Cuda | None = None) -> Identity:
    """This machine's GPU and TensorRT.

    Raises:
        CudaError: no GPU can be used (no driver, no device).
    """
    dev = (cuda or _cuda.open_cuda()).device()
    return Identity(dev.name, dev.compute_capability, api.version)


def can_build_here() -> str | None:
    """None if TensorRT and a GPU are usable here, else why not (nothing heavy is imported
    unless ``tensorrt`` is installed)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed"
    try:
        identity_here(TrtApi())
    except EdgecvError as e:
        return str(e)
    return None


def usable_here() -> tuple[bool, str]:
    """For ``edgecv env``: whether plans build and run here, and on what GPU or why not."""
    reason = can_build_here()
    if reason is not None:
        return False, f"{reason}; export still writes the TensorRT graph and checks it (edgecv doctor)"
    from .cuda import open_cuda

    d = open_cuda().device()
    return True, f"plans build and run here ({d.name}, compute capability {d.compute_capability})"


def describe(entry: dict) -> str:
    """The machine a plan's entry was built for, in words."""
    extra = []
    if entry.get("version_compatible"):
        extra.append("version-compatible")
    if entry.get("hardware_compatibility", "none") != "none":
        extra.append(f"hardware compatibility {entry['hardware_compatibility']}")
    return f"{entry['gpu']} (compute capability {entry['compute_capability']}) with TensorRT {entry['tensorrt']}" + (
        f" [{', '.join(extra)}]" if extra else ""
    )


def runs_host_code(entry: dict) -> bool:
    """Whether TensorRT runs code the plan of ``entry`` carries (a version-compatible plan: the
    runtime must set ``engine_host_code_allowed`` to deserialize it)."""
    return bool(entry.get("version_compatible"))


#: why a plan that runs host code needs trust, for messages and docs
HOST_CODE_REASON = (
    "a version-compatible plan carries host code that TensorRT runs in this process, and the manifest's "
    "hash proves that the plan is intact, not who built it"
)


def trust_refusal(plan_file: str, where: str) -> BundleError:
    """The refusal of a plan that runs host code, loaded without ``trust_plan_code``."""
    return BundleError(
        f"{where}: plan {plan_file} is version-compatible: {HOST_CODE_REASON}. Load it only if you trust "
        "whoever built the bundle: load(..., trust_plan_code=True), or --trust-plan-code on the command "
        "line; or build a plan of your own on this machine (`edgecv build BUNDLE --force`, without "
        "--version-compatible)"
    )


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
        return f"built on the GPU {entry['gpu']}, this one is {here.gpu}"
    return None


def select(entries: list[dict], here: Identity, graph_sha256: str | None = None) -> dict | None:
    """The plan to run here: an exact match first, then a compatible one; None if none fits.

    A plan built from another graph than the bundle's (``graph_sha256``) never fits."""
    usable = [
        e
        for e in entries
        if refusal(e, here) is None and (graph_sha256 is None or e.get("graph_sha256") in (None, graph_sha256))
    ]
    exact = [
        e
        for e in usable
        if e["tensorrt"] == here.tensorrt
        and e["gpu"] == here.gpu
        and e["compute_capability"] == here.compute_capability
    ]
    return exact[0] if exact else usable[0] if usable else None


def mismatch_message(entries: list[dict], here: Identity, where: str) -> str:
    """What was found, what this machine is, and how to get a plan for it."""
    if entries:
        found = "; ".join(f"{describe(e)}: {refusal(e, here) or 'built from another graph'}" for e in entries)
        head = f"{where} has no TensorRT plan for this machine. It has plans for: {found}."
    else:
        head = f"{where} has no TensorRT plan yet (it was exported where TensorRT or a GPU was missing)."
    return (
        f"{head} This machine is {here}. Build one here: `edgecv build {where}` (adds it to the bundle), "
        "or load with build_plan=True (builds on first load and caches it)."
    )


# --- where plans are kept -----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A plan for this machine: where it is kept, its entry (as a manifest lists it) and whether
    it was built just now; :meth:`read` gives its bytes (those checked against the hash its
    store vouches for, where it has one: a bundle's manifest, a cache's sidecar)."""

    path: Path
    entry: dict
    built: bool = False
    data: bytes | None = field(default=None, repr=False)
    bundle: Bundle | None = field(default=None, repr=False, compare=False)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.bundle is not None:
            return self.bundle.read(name=self.entry["file"])
        return self.path.read_bytes()


class PlanStore:
    """A place plans are kept. :func:`ensure_plan` looks in its stores in order and keeps a new
    plan in the last one."""

    #: the place, in words, for messages
    where: str = ""

    def entries(self) -> list[dict]:
        """The entries of the plans listed here (named when none fits)."""
        return []

    def find(self, graph: Graph, here: Identity, settings: dict, same_settings: bool) -> Plan | None:
        """The plan kept here that runs ``graph`` on ``here``; with ``same_settings``, only one
        built with ``settings``."""
        raise NotImplementedError

    def check_writable(self) -> None:
        """Raise, before a build, when a new plan could not be kept here."""

    def put(self, data: bytes, entry: dict) -> Plan:
        """Keep a new plan (replacing one for the same graph, settings and machine)."""
        raise NotImplementedError


def _plan_name(entry: dict) -> str:
    return f"{FILE_PREFIX}{entry['key']}.plan"


class BundlePlans(PlanStore):
    """The plans of a bundle: hashed files of the bundle, listed in ``runtime.tensorrt`` of its
    manifest; one per GPU and TensorRT version. Adding one is atomic (see :func:`add_file`)."""

    def __init__(self, bundle: Bundle) -> None:
        if bundle.target != "tensorrt":
            raise BundleError(
                f"'{bundle.path}' is a bundle for {bundle.target}; plans are built for tensorrt bundles "
                "(edgecv export --target tensorrt)"
            )
        self.bundle = bundle
        self.where = str(bundle.path)

    def entries(self) -> list[dict]:
        return list(self.bundle.manifest.get("runtime", {}).get("tensorrt", {}).get(MANIFEST_KEY, []))

    def find(self, graph: Graph, here: Identity, settings: dict, same_settings: bool) -> Plan | None:
        entry = select(
            [e for e in self.entries() if not same_settings or e.get("build") == settings], here, graph.sha256
        )
        if entry is None:
            return None
        if entry["file"] not in {f["path"] for f in self.bundle.manifest["files"]}:
            raise BundleError(
                f"manifest: plan {entry['file']!r} is not among the bundle's hashed files; "
                f"rebuild it with `edgecv build {self.bundle.path} --force`"
            )
        return Plan(self.bundle._confined(entry["file"]), entry, bundle=self.bundle)

    def check_writable(self) -> None:
        if not os.access(self.bundle.path, os.W_OK):
            raise BundleError(
                f"'{self.bundle.path}' is read-only: keep its plans in a cache directory "
                "(load(..., plan_cache=DIR), or edgecv build --cache-dir DIR)"
            )

    def put(self, data: bytes, entry: dict) -> Plan:
        name = _plan_name(entry)
        entry = dict(entry, file=name)

        def update(m: dict) -> None:
            rt = m.setdefault("runtime", {}).setdefault("tensorrt", {})
            rt[MANIFEST_KEY] = [e for e in rt.get(MANIFEST_KEY, []) if e.get("file") != name] + [entry]

        return Plan(add_file(self.bundle.path, name, data, FILE_ROLE, update), entry, built=True, data=data)


class StagedPlans(PlanStore):
    """The plans of a bundle being exported: files in its staging directory; :meth:`entries`
    and :attr:`roles` go into the manifest the export writes."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.where = str(self.dir)
        self._entries: list[dict] = []
        #: file name -> role, for the manifest's file list
        self.roles: dict[str, str] = {}

    def entries(self) -> list[dict]:
        return list(self._entries)

    def find(self, graph: Graph, here: Identity, settings: dict, same_settings: bool) -> Plan | None:
        entry = select([e for e in self._entries if not same_settings or e["build"] == settings], here, graph.sha256)
        return None if entry is None else Plan(self.dir / entry["file"], entry)

    def put(self, data: bytes, entry: dict) -> Plan:
        name = _plan_name(entry)
        entry = dict(entry, file=name)
        path = self.dir / name
        path.write_bytes(data)  # the export stages the whole bundle and renames it into place
        self._entries = [e for e in self._entries if e["file"] != name] + [entry]
        self.roles[name] = FILE_ROLE
        return Plan(path, entry, built=True, data=data)


class PlanCache(PlanStore):
    """Plans kept outside bundles, keyed by the graph, the build settings and the machine.

    Each plan has a JSON sidecar with its sha256; a plan whose bytes do not match it is
    never handed to TensorRT (it is rebuilt).
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.dir = Path(directory) if directory is not None else cache_dir()
        self.where = str(self.dir)

    @staticmethod
    def _key(graph_sha256: str, settings: dict, machine_key: str) -> str:
        s = json.dumps({k: settings[k] for k in sorted(BUILD_DEFAULTS)}, sort_keys=True)
        return f"{graph_sha256[:16]}-{hashlib.sha256(s.encode()).hexdigest()[:8]}-{machine_key}"

    def find(self, graph: Graph, here: Identity, settings: dict, same_settings: bool) -> Plan | None:
        # always with the same settings: they are part of the key
        key = self._key(graph.sha256, settings, here.key)
        path, meta = self.dir / f"{key}.plan", self.dir / f"{key}.json"
        if not (path.is_file() and meta.is_file()):
            return None
        try:
            entry = json.loads(meta.read_text())
            data = path.read_bytes()
        except (OSError, ValueError):
            return None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256") or refusal(entry, here) is not None:
            log.warning("tensorrt: cached plan %s does not match its record; it will be rebuilt", path)
            return None
        return Plan(path, entry, data=data)

    def put(self, data: bytes, entry: dict) -> Plan:
        key = self._key(entry["graph_sha256"], entry["build"], entry["key"])
        path = self.dir / f"{key}.plan"
        entry = dict(entry, file=path.name)
        atomic_write(path, data)  # the plan first: a sidecar never names a missing plan
        atomic_write(
            self.dir / f"{key}.json",
            json.dumps(dict(entry, sha256=hashlib.sha256(data).hexdigest()), indent=2).encode(),
        )
        return Plan(path, entry, built=True, data=data)


# --- finding or building ------------------------------------------------------------------------


def plan_entry(here: Identity, settings: dict, graph_sha256: str, seconds: float) -> dict:
    """The record of a plan built here (its ``file`` is set where it is kept)."""
    return {
        "file": None,
        "key": here.key,
        "gpu": here.gpu,
        "compute_capability": here.compute_capability,
        "tensorrt": here.tensorrt,
        "version_compatible": settings["version_compatible"],
        "hardware_compatibility": settings["hardware_compatibility"],
        "graph_sha256": graph_sha256,
        "build": {k: settings[k] for k in BUILD_DEFAULTS},
        "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
    }


def timing_cache_path(here: Identity, directory: Path | None = None) -> Path:
    """TensorRT's timing cache for this GPU and TensorRT version, in ``directory`` (default :func:`cache_dir`)."""
    return (directory or cache_dir()) / f"timing-{here.key}.cache"


def _build(api: TrtApi, graph: Graph, settings: dict, timing_cache: Path, say: Say) -> tuple[bytes, float]:
    """Build a plan of ``graph`` on this GPU; returns (plan, seconds). ``timing_cache`` is read
    if it exists and rewritten after the build, so that later builds on the same GPU and
    TensorRT skip the kernel timing already done."""
    cache = timing_cache.read_bytes() if timing_cache.is_file() else b""
    shapes = graph.profile(settings)
    say(
        f"building a TensorRT {api.version} plan (strongly typed; profile "
        + ", ".join(f"{n} {list(s[0])}..{list(s[2])}" for n, s in shapes.items())
        + f"; workspace {settings['workspace_mb']} MB{'; timing cache reused' if cache else ''})"
    )
    t0 = time.perf_counter()
    data, new_cache = api.build(graph.read(), settings, shapes, cache, onnx_path=graph.path, plugins=graph.plugins)
    seconds = time.perf_counter() - t0
    if new_cache:
        atomic_write(timing_cache, new_cache)
    say(f"plan built in {seconds:.1f} s ({len(data) / 1e6:.1f} MB)")
    return data, seconds


def ensure_plan(
    graph: Graph,
    stores: Sequence[PlanStore],
    settings: dict,
    *,
    build: bool = False,
    same_settings: bool = False,
    force: bool = False,
    timing_cache: str | os.PathLike | None = None,
    api: TrtApi | None = None,
    here: Identity | None = None,
    say: Say | None = None,
) -> Plan:
    """The plan that runs ``graph`` on this machine: the first that fits in ``stores``, else,
    with ``build``, one built here and kept in the last store.

    Args:
        graph: the ONNX graph plans are built from.
        stores: where to look, in order; a new plan is kept in the last one.
        settings: the build settings (:func:`check_settings`) of a new plan.
        build: build a plan when none fits.
        same_settings: a plan found must have been built with ``settings`` (a cache
            directory's plans always are: the settings are part of their key).
        force: build even when a plan fits.
        timing_cache: TensorRT's timing cache file (default: one per GPU and TensorRT version,
            beside the plans when they are kept in a cache directory, else in :func:`cache_dir`).
        api, here: TensorRT and this machine, where the caller has them already.
        say: where progress goes (default: the ``edgecv`` logger).

    Raises:
        PlanError: no plan fits and ``build`` is False (the message says what was
            found, what this machine is and how to get a plan); TensorRT or a GPU is missing
            (:class:`CudaError`: no usable GPU).
        BundleError: a new plan cannot be kept (a read-only bundle): raised before building.
        ExportError: TensorRT cannot parse the graph or build the plan.
    """
    say = say or log.info
    api = api or TrtApi()
    here = here or identity_here(api)
    if not force:
        for store in stores:
            plan = store.find(graph, here, settings, same_settings)
            if plan is not None:
                return plan
    if not build:
        raise PlanError(mismatch_message([e for s in stores for e in s.entries()], here, stores[0].where))
    keep = stores[-1]
    keep.check_writable()
    if timing_cache is None:
        timing = timing_cache_path(here, keep.dir if isinstance(keep, PlanCache) else None)
    else:
        timing = Path(timing_cache)
    say(f"this machine: {here}")
    data, seconds = _build(api, graph, settings, timing, say)
    plan = keep.put(data, plan_entry(here, settings, graph.sha256, seconds))
    say(f"plan written: {plan.path} (timing cache {timing})")
    return plan


def build_bundle_plan(
    bundle: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    timing_cache: str | os.PathLike | None = None,
    force: bool = False,
    say: Say | None = None,
    **settings: Any,
) -> Plan:
    """A plan of a tensorrt bundle for this GPU and TensorRT (``edgecv build``), built with the
    bundle's build settings and ``settings`` over them; added to the bundle, or kept in
    ``cache_dir``. A plan built so that is there already is returned as it is (``force``:
    rebuild it).

    Raises:
        BundleError: not a tensorrt bundle, or one that does not verify.
        BackendUnavailableError: no TensorRT or no usable GPU here.
        EdgecvError: a build setting is unknown or out of range.
    """
    say = say or log.info
    b = Bundle.open(bundle)
    stores: list[PlanStore] = [BundlePlans(b)] + ([PlanCache(cache_dir)] if cache_dir is not None else [])
    api = TrtApi()
    try:
        here = identity_here(api)
    except CudaError as e:
        raise BackendUnavailableError(
            f"no usable NVIDIA GPU here ({e}): plans are built on the GPU that runs them"
        ) from None
    plan = ensure_plan(
        Graph.of_bundle(b),
        stores,
        settings_of(b.manifest, **settings),
        build=True,
        same_settings=True,
        force=force,
        timing_cache=timing_cache,
        api=api,
        here=here,
        say=say,
    )
    if not plan.built:
        say(f"there is a plan for this machine already: {plan.path} ({describe(plan.entry)}); --force rebuilds it")
    return plan
