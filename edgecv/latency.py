"""Latency gates that hold on a shared, noisy machine: interleaved measurement in short blocks,
an interval on the slowdown, and three verdicts (ok, regression, inconclusive).

Two modes:

- **paired** (:func:`compare_latency`): the old and the new model run in one process, in many
  short alternating blocks in a balanced, seeded order, so drift and contention hit both alike;
  the slowdown is the median over rounds of the ratio of the two block medians.
- **stored baseline** (:func:`record_baseline`, :func:`check_baseline`): each block of model
  calls is paired with a block of a fixed reference workload run with the same threads, all
  through the run; the unit is the ratio of the two block medians, and the run's ratios are
  compared with the baseline's.

In both, the 95% interval comes from a seeded bootstrap over blocks. The verdict is
*regression* only when the whole interval lies above ``1 + max_regression``, *ok* when it lies
at or below it, *inconclusive* otherwise, with the measuring time that would likely settle it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BaselineError, BaselineMissing, EdgecvError, NoisyBaseline

SCHEMA = "edgecv.latency-baseline/1"
#: exit status of an inconclusive gate (0 ok, 1 regression, 2 user error)
EXIT_INCONCLUSIVE = 3
CONFIDENCE = 0.95
BOOTSTRAP = 2000
#: a baseline is refused when the 95% interval of its median ratio is wider than this, either side,
#: or its fastest runs are further apart than this beyond their own noise
MAX_BASELINE_NOISE = 0.05
#: a run is called busy when other processes took more than this share of the CPUs, or the
#: hypervisor stole more than this share
MAX_BUSY_SHARE = 0.10
#: a check whose reference workload ran slower than (1 + this) times the baseline's, or faster
#: than 1 / (1 + this) times, ran on a machine in another state, and a slowdown there is not
#: judged. The reference is sized to move with the machine (the shared cache), so shifts well
#: short of that are what the ratio corrects: on the 2-core development machine, checks whose
#: reference ran 16% to 78% slower than at recording measured a 1.21x model at +18% to +24%
MAX_REFERENCE_SHIFT = 1.0
#: the least occasion spread (log scale) assumed between a baseline and a later run: a few
#: recorded runs cannot show how far a run's level moves from one day to another
MIN_OCCASION_SD = 0.02


# --- statistics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The outcome of a gate: the slowdown ``ratio`` (new / old, 1.10 = 10% slower) with its
    interval, and ``verdict`` one of ``ok``, ``regression``, ``inconclusive``."""

    verdict: str
    ratio: float
    low: float
    high: float
    limit: float
    blocks: tuple[int, int]
    reason: str = ""
    #: for an inconclusive verdict: the measuring time (in units of this run's) that would likely
    #: settle it, or None when the change sits too close to the limit to settle by waiting
    longer_by: float | None = None

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "regression": 1}.get(self.verdict, EXIT_INCONCLUSIVE)

    def summary(self) -> str:
        """One line: the change, its interval, the limit and the verdict."""
        pct = lambda r: f"{(r - 1) * 100:+.1f}%"  # noqa: E731
        return (
            f"{pct(self.ratio)} [{pct(self.low)}, {pct(self.high)}] against a limit of {pct(self.limit)}: "
            f"{self.verdict}" + (f" ({self.reason})" if self.reason else "")
        )


def _bootstrap_medians(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.integers(0, len(x), size=(n, len(x)))
    return np.median(x[idx], axis=1)


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    a = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [a, 1 - a])
    return float(lo), float(hi)


def paired_ratio(
    old: Sequence[float],
    new: Sequence[float],
    confidence: float = CONFIDENCE,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Slowdown of ``new`` over ``old`` from paired block medians (one pair per round).

    Returns (ratio, low, high): the median over rounds of new/old, and its ``confidence``
    interval from a bootstrap over rounds. Seeded: the same inputs give the same result.
    """
    a, b = np.asarray(old, np.float64), np.asarray(new, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise EdgecvError("a paired comparison needs the same number (at least 2) of blocks on each side")
    if (a <= 0).any() or (b <= 0).any():
        raise EdgecvError("block times must be positive")
    d = np.log(b / a)
    draws = _bootstrap_medians(d, bootstrap, np.random.default_rng(seed))
    lo, hi = _interval(draws, confidence)
    return float(np.exp(np.median(d))), math.exp(lo), math.exp(hi)


def independent_ratio(
    old: Sequence[float],
    new: Sequence[float],
    confidence: float = CONFIDENCE,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Slowdown of ``new`` over ``old`` from two independent samples of block values.

    Returns (ratio, low, high): median(new) / median(old), and its ``confidence`` interval from
    resampling each side on its own. Seeded: the same inputs give the same result.
    """
    a, b = np.asarray(old, np.float64), np.asarray(new, np.float64)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise EdgecvError("a comparison needs at least 2 blocks on each side")
    rng = np.random.default_rng(seed)
    draws = np.log(_bootstrap_medians(b, bootstrap, rng)) - np.log(_bootstrap_medians(a, bootstrap, rng))
    lo, hi = _interval(draws, confidence)
    return float(np.median(b) / np.median(a)), math.exp(lo), math.exp(hi)


def decide(
    ratio: float, low: float, high: float, max_regression: float, blocks: tuple[int, int], reason: str = ""
) -> Verdict:
    """The verdict for a slowdown interval against ``1 + max_regression``.

    regression: the whole interval above the limit; ok: the whole interval at or below it;
    inconclusive: it straddles the limit. For an inconclusive verdict, ``longer_by`` estimates
    how many times longer a run must measure for the interval (narrowing as 1/sqrt(time)) to
    clear the limit, from the distance of the estimate to the limit.
    """
    if max_regression < 0:
        raise EdgecvError(f"max_regression must be 0 or more (got {max_regression})")
    limit = 1.0 + max_regression
    if low > limit:
        return Verdict("regression", ratio, low, high, limit, blocks, reason)
    if high <= limit:
        return Verdict("ok", ratio, low, high, limit, blocks, reason)
    half = (math.log(high) - math.log(low)) / 2
    gap = abs(math.log(ratio) - math.log(limit))
    longer = None
    if gap > half / 4:  # closer than that, the run would have to be 16 times longer or more
        longer = max(1.5, 1.2 * (half / gap) ** 2)
    why = reason or "the interval straddles the limit"
    return Verdict("inconclusive", ratio, low, high, limit, blocks, why, longer)


# --- interleaved measurement ----------------------------------------------------------------------


def block_orders(runners: int, rounds: int, seed: int = 0) -> list[tuple[int, ...]]:
    """The order of the ``runners`` blocks in each of ``rounds`` rounds: the rotations of
    ``0..runners-1`` (a cyclic Latin square: every runner takes every position equally often
    over each ``runners`` rounds), shuffled with ``seed``."""
    base = [tuple((i + r) % runners for i in range(runners)) for r in range(runners)]
    orders = [base[i % runners] for i in range(rounds)]
    full = rounds - rounds % runners
    rng = np.random.default_rng(seed)
    head = [orders[i] for i in rng.permutation(full)] if full else []
    return head + orders[full:]


def measure_blocks(
    runners: Sequence[Callable[[], Any]],
    calls: Sequence[int],
    rounds: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Run each runner in blocks of ``calls[i]`` calls, interleaved over ``rounds`` rounds.

    Returns the block medians in ms, shape [runners, rounds]. Every call of a block is timed on
    its own; the block's value is the median of its calls, so one noisy burst moves one block.
    """
    out = np.zeros((len(runners), rounds))
    clock = time.perf_counter
    for r, order in enumerate(block_orders(len(runners), rounds, seed)):
        for i in order:
            run, times = runners[i], []
            for _ in range(calls[i]):
                t0 = clock()
                run()
                times.append(clock() - t0)
            out[i, r] = float(np.median(times)) * 1000
        if progress:
            progress(r + 1, rounds)
    return out


class ReferenceWorkload:
    """A fixed convolutional network (``edgecv/assets/reference-workload.onnx``), its activations
    sized for the last-level cache as a detector's are, run by the model's own backend with the
    model's threads, so that what slows the model on this machine (another process on a core,
    a neighbour filling the shared cache, a lower clock, the backend's thread pool waking)
    slows it alike. Latencies in a stored baseline are ratios to it.

    ``backend`` onnxruntime or openvino runs it there; any other (the torch reference, TensorRT
    measured on this CPU) runs it in onnxruntime, else openvino, where installed.
    """

    def __init__(self, backend: str | None = None, threads: int | None = None) -> None:
        from importlib.util import find_spec

        from .assets.reference_workload import INPUT, PATH, SIZE

        have = [k for k in ("onnxruntime", "openvino") if find_spec(k) is not None]
        if not have:
            raise EdgecvError(
                "the latency baseline's reference workload runs in onnxruntime or openvino; install one "
                "(pip install 'edgecv[onnxruntime]') or gate paired (edgecv bench OLD NEW --compare)"
            )
        self.backend = backend if backend in have else have[0]
        self.threads = threads
        x = np.random.default_rng(0).random((1, 3, SIZE, SIZE), dtype=np.float32)
        if self.backend == "onnxruntime":
            import onnxruntime as ort

            so = ort.SessionOptions()
            if threads:
                so.intra_op_num_threads = int(threads)
            so.log_severity_level = 3
            # its threads must not spin after each run, taking cycles from the model's next block
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(PATH), so, providers=["CPUExecutionProvider"])
            self._run = lambda: session.run(None, {INPUT: x})
        else:
            import openvino as ov

            config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            request = ov.Core().compile_model(str(PATH), "CPU", config).create_infer_request()
            self._run = lambda: request.infer({0: x}, share_inputs=True)

    def __call__(self) -> None:
        self._run()

    def describe(self) -> dict:
        return {"workload": "reference-workload.onnx", "backend": self.backend, "threads": self.threads}


# --- the machine's noise -------------------------------------------------------------------------


def _proc_stat() -> list[int] | None:
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    return [int(v) for v in first[1:9]] + [0] * max(0, 8 - len(first[1:9]))


class CpuLoad:
    """Who used the CPUs during a span: this process, other processes, the hypervisor (steal).

    Read from /proc/stat and this process's own CPU time; empty where /proc is not readable.
    """

    def __enter__(self) -> CpuLoad:
        self.t0, self.stat0, self.own0 = time.monotonic(), _proc_stat(), os.times()
        self.result: dict[str, float] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        stat1, own1 = _proc_stat(), os.times()
        if self.stat0 is None or stat1 is None:
            return
        d = [b - a for a, b in zip(self.stat0, stat1)]
        total = sum(d)
        if total <= 0:
            return
        user, nice, system, idle, iowait, irq, softirq, steal = d[:8]
        tick = os.sysconf("SC_CLK_TCK")
        own = ((own1.user - self.own0.user) + (own1.system - self.own0.system)) * tick
        busy = user + nice + system + irq + softirq
        self.result = {
            "steal_share": steal / total,
            "others_share": max(0.0, busy - own) / total,
            "own_share": min(1.0, own / total),
            "cpus": os.cpu_count() or 1,
        }
        try:
            self.result["loadavg_1m"] = float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass


def busy_reason(load: dict[str, float], max_share: float = MAX_BUSY_SHARE) -> str:
    """Why a run counts as busy (other processes or steal above ``max_share``), or ''."""
    parts = []
    if load.get("others_share", 0.0) > max_share:
        parts.append(f"other processes used {load['others_share'] * 100:.0f}% of the CPUs")
    if load.get("steal_share", 0.0) > max_share:
        parts.append(f"the hypervisor stole {load['steal_share'] * 100:.0f}% of the CPU time")
    return "; ".join(parts)


def robust_spread(x: Sequence[float] | np.ndarray) -> float:
    """Relative spread of a sample: 1.4826 x median absolute deviation / median (0.1 = 10%)."""
    a = np.asarray(x, np.float64)
    med = float(np.median(a))
    return float(1.4826 * np.median(np.abs(a - med)) / med) if med > 0 else float("nan")


# --- what the machine and model are ----------------------------------------------------------------


def machine_key(machine: dict) -> dict:
    """What must match for two runs' ratios to be comparable: CPU model, ISA, usable CPUs."""
    return {"cpu": machine.get("cpu"), "isa": machine.get("isa"), "cpus": machine.get("usable_cpus")}


def fingerprint(det) -> dict:
    """The model's deterministic identity: sha256 over its bundle files' hashes and, where it can
    be counted, its operations per image. A change here is reported exactly, before timing."""
    bundle = getattr(det, "bundle", None)
    out: dict[str, Any] = {}
    if bundle is not None:
        files = sorted((f["path"], f["sha256"]) for f in bundle.manifest["files"])
        out["graph_sha256"] = hashlib.sha256(json.dumps(files).encode()).hexdigest()
        from .bench import model_file

        f = model_file(det)
        if f is not None:
            try:
                from .limits import count_operations

                out["gops_per_image"] = round(count_operations(f).gops, 4)
            except Exception:  # noqa: BLE001 - counting needs onnx or openvino; the hash still holds
                pass
    else:
        out["source"] = det.manifest.get("name")
    return out


def describe_change(base: dict, now: dict) -> str:
    """The deterministic difference between two fingerprints, in words ('' when the same)."""
    if not base.get("graph_sha256") or not now.get("graph_sha256"):
        return ""
    if base["graph_sha256"] == now["graph_sha256"]:
        return ""
    text = f"the model changed (files sha256 {base['graph_sha256'][:12]} -> {now['graph_sha256'][:12]})"
    g0, g1 = base.get("gops_per_image"), now.get("gops_per_image")
    if g0 and g1:
        text += f"; operations per image {g0:.3f} -> {g1:.3f} GOPs ({(g1 / g0 - 1) * 100:+.1f}%)"
    return text


# --- the gate --------------------------------------------------------------------------------------


@dataclass
class Timing:
    """One model's side of a gate run: its block medians (ms) and, against a stored baseline,
    the reference workload's block medians and the per-block ratios."""

    model: str
    blocks_ms: list[float]
    calls_per_block: int
    reference_ms: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    def median_ms(self) -> float:
        return float(np.median(self.blocks_ms))


@dataclass
class GateResult:
    """A gate's outcome with everything it was decided on."""

    mode: str  # "paired" or "baseline"
    verdict: Verdict
    timings: list[Timing]
    load: dict
    settings: dict
    machine: dict
    notes: list[str] = field(default_factory=list)
    fingerprints: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "verdict": asdict(self.verdict),
            "timings": [asdict(t) for t in self.timings],
            "load": self.load,
            "settings": self.settings,
            "machine": self.machine,
            "notes": self.notes,
            "fingerprints": self.fingerprints,
        }

    def report(self) -> str:
        """The gate's outcome for a person: what ran, the noise, the change, the verdict and what to do."""
        v = self.verdict
        lines = []
        if self.mode == "paired":
            old, new = self.timings
            lines.append(
                f"paired: old {old.model}, new {new.model}: {v.blocks[0]} rounds of "
                f"{old.calls_per_block} calls each, alternating in a balanced seeded order"
            )
            lines.append(
                f"  old median {old.median_ms():.2f} ms (block spread {robust_spread(old.blocks_ms) * 100:.1f}%), "
                f"new median {new.median_ms():.2f} ms (block spread {robust_spread(new.blocks_ms) * 100:.1f}%)"
            )
        else:
            t = self.timings[0]
            meds = self.settings.get("run_medians", [])
            lines.append(
                f"against the baseline: {t.model}, the fastest of {len(meds)} run{'s' * (len(meds) != 1)} (median ratios "
                f"{', '.join(f'{m:.3f}' for m in meds)}): {v.blocks[1]} blocks of {t.calls_per_block} calls, "
                "each beside a block of the reference workload"
            )
            base = self.settings.get("baseline", {})
            lines.append(
                f"  now: median {t.median_ms():.2f} ms = {np.median(t.ratios):.3f} x reference "
                f"({np.median(t.reference_ms):.2f} ms), block spread {robust_spread(t.ratios) * 100:.1f}%"
            )
            if base:
                lines.append(
                    f"  baseline: median {base['median_ms']:.2f} ms = {base['median_ratio']:.3f} x reference "
                    f"({base['reference_ms']:.2f} ms), block spread {base['spread'] * 100:.1f}%, "
                    f"fastest of {base.get('runs', 1)} run{'s' * (base.get('runs', 1) != 1)}, the two fastest "
                    f"{base.get('occasion_sd', 0) * 100:.1f}% apart, "
                    f"recorded {base.get('recorded', '?')}"
                )
        load = self.load
        if load:
            lines.append(
                f"  machine: other processes {load.get('others_share', 0) * 100:.0f}% of the CPUs, steal "
                f"{load.get('steal_share', 0) * 100:.0f}%, load average {load.get('loadavg_1m', float('nan')):.2f}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"slowdown {v.summary()}")
        if v.verdict == "inconclusive":
            lines.append("  " + advice(v, self.settings.get("seconds_flag"), self.mode == "baseline"))
        return "\n".join(lines)


def advice(v: Verdict, seconds: float | None, runs: bool = False) -> str:
    """What to do about an inconclusive verdict (``runs``: against a stored baseline, where
    more runs also narrow the interval)."""
    if v.longer_by is None:
        return (
            f"the change ({(v.ratio - 1) * 100:+.1f}%) is too close to the limit ({(v.limit - 1) * 100:+.1f}%) to "
            "settle by measuring longer; if it matters, look at it by hand or set the limit with the noise in mind"
        )
    more = " (or over more --runs)" if runs else ""
    if seconds:
        return f"measure longer to settle it: about --seconds {math.ceil(seconds * v.longer_by)}{more}"
    return f"measure about {v.longer_by:.1f} times longer to settle it"


class _Calls:
    """``det.predict`` on batches cycled from a fixed list, as a zero-argument callable."""

    def __init__(self, det, batches: list[list[np.ndarray]]) -> None:
        self.det, self.batches, self.n = det, batches, 0

    def __call__(self) -> None:
        self.det.predict(self.batches[self.n % len(self.batches)])
        self.n += 1


def _warm(run: Callable[[], Any], calls: int, seconds: float) -> float:
    """Warm up ``run``: at least ``calls`` calls and ``seconds``; returns the median ms of the last half."""
    times: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(times) < calls or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[len(times) // 2 :])) * 1000


def _plan(
    seconds: float, block_ms: float, per_call_ms: Sequence[float], min_calls: int, min_rounds: int
) -> tuple[list[int], int]:
    """Calls per block for each runner (filling ``block_ms``) and rounds filling ``seconds``."""
    calls = [max(min_calls, math.ceil(block_ms / max(t, 1e-3))) for t in per_call_ms]
    round_ms = sum(c * t for c, t in zip(calls, per_call_ms))
    return calls, max(min_rounds, int(seconds * 1000 / max(round_ms, 1e-3)))


def _open(spec: Any, threads: int | None, opener: Callable[..., Any] | None):
    from .pipeline import open_model

    opener = opener or open_model
    return opener(spec, threads=threads) if threads else opener(spec)


def _name(spec: Any, det: Any) -> str:
    from .comparison import model_name

    return model_name(spec, det)


def _progress(say: Callable[[str], None] | None, what: str) -> Callable[[int, int], None] | None:
    if say is None:
        return None
    step = {"next": 0.25}

    def report(done: int, total: int) -> None:
        if done / total >= step["next"] or done == total:
            say(f"{what}: {done}/{total} rounds")
            step["next"] = done / total + 0.25

    return report


def _machine(threads_used: int | None) -> dict:
    from .cpu import machine, usable_cpus

    m = machine()
    m["usable_cpus"] = len(usable_cpus())
    m["threads_used"] = threads_used
    return m


def compare_latency(
    old: Any,
    new: Any,
    max_regression: float = 0.10,
    seconds: float = 8.0,
    batch: int = 1,
    threads: int | None = None,
    images: Sequence[np.ndarray] | None = None,
    seed: int = 0,
    block_ms: float = 100.0,
    warmup_seconds: float = 1.0,
    open_model: Callable[..., Any] | None = None,
    say: Callable[[str], None] | None = None,
) -> GateResult:
    """Paired A/B latency gate: ``new`` against ``old``, both run in this process.

    The two alternate in blocks of the same number of calls (about ``block_ms`` each), in a
    balanced order shuffled with ``seed``, for about ``seconds`` in all. The slowdown is the
    median over rounds of new/old block medians, with a 95% bootstrap interval over rounds.

    Args:
        old, new: bundle directories or source models (or loaded detectors).
        max_regression: allowed slowdown, 0.10 = 10%.
    """
    dets, opened = [], []
    try:
        for spec in (old, new):
            if hasattr(spec, "predict"):
                dets.append(spec)
            else:
                dets.append(_open(spec, threads, open_model))
                opened.append(dets[-1])
        names = [_name(s, d) for s, d in zip((old, new), dets)]
        from .bench import cycled_batches

        batches = cycled_batches(images, batch)
        runners = [_Calls(d, batches) for d in dets]
        if say:
            say(f"warming up {names[0]} and {names[1]}")
        for r in runners:
            _warm(r, 5, warmup_seconds)
        per_call = [_warm(r, 3, 0.0) for r in runners]  # timed once both are warm
        calls, rounds = _plan(seconds, block_ms, [max(per_call)] * 2, 3, 16)
        rounds += rounds % 2
        with CpuLoad() as load:
            blocks = measure_blocks(runners, calls, rounds, seed, _progress(say, "paired blocks"))
        ratio, lo, hi = paired_ratio(blocks[0], blocks[1], seed=seed)
        verdict = decide(ratio, lo, hi, max_regression, (rounds, rounds))
        fps = [fingerprint(d) for d in dets]
        notes = []
        change = describe_change(fps[0], fps[1])
        notes.append(change or ("the same model files on both sides" if fps[0].get("graph_sha256") else ""))
        settings = {
            "batch": batch,
            "threads": threads or "default",
            "seconds": seconds,
            "seconds_flag": seconds,
            "seed": seed,
            "max_regression": max_regression,
            "block_ms": block_ms,
            "images": "dataset" if images else "synthetic 640x480",
        }
        timings = [Timing(n, [float(x) for x in b], calls[0]) for n, b in zip(names, blocks)]
        return GateResult(
            "paired",
            verdict,
            timings,
            load.result,
            settings,
            _machine(getattr(dets[1], "threads_used", None)),
            [n for n in notes if n],
            fps,
        )
    finally:
        for d in opened:
            d.close()


def measure_against_reference(
    model: Any,
    seconds: float = 10.0,
    batch: int = 1,
    threads: int | None = None,
    images: Sequence[np.ndarray] | None = None,
    seed: int = 0,
    block_ms: float = 100.0,
    warmup_seconds: float = 0.5,
    open_model: Callable[..., Any] | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[Timing, dict, dict, dict]:
    """Time ``model`` in blocks, each beside a block of the reference workload run with the
    model's threads, in a balanced seeded order, for about ``seconds``. ``model`` is a bundle
    or source (loaded here and closed after) or a loaded detector (used as it is).

    Returns (timing with per-block ratios, CPU load of the run, machine, fingerprint).
    """
    det = model if hasattr(model, "predict") else _open(model, threads, open_model)
    try:
        name = _name(model, det)
        from .bench import cycled_batches

        runner = _Calls(det, cycled_batches(images, batch))
        reference = ReferenceWorkload(det.key, getattr(det, "threads_used", None) or threads)
        if say:
            say(
                f"warming up {name} and the reference workload ({reference.backend}, "
                f"{reference.threads or 'default'} threads)"
            )
        _warm(runner, 5, warmup_seconds)
        per_call = [_warm(runner, 3, 0.0), _warm(reference, 5, 0.2)]
        # the reference's block is a third of the model's: it only has to track the machine
        calls, rounds = _plan(seconds, block_ms, per_call, 3, 16)
        calls[1] = max(3, math.ceil(calls[0] * per_call[0] / per_call[1] / 3))
        rounds += rounds % 2
        with CpuLoad() as load:
            blocks = measure_blocks([runner, reference], calls, rounds, seed, _progress(say, f"{name} blocks"))
        timing = Timing(
            name,
            [float(x) for x in blocks[0]],
            calls[0],
            [float(x) for x in blocks[1]],
            [float(x) for x in blocks[0] / blocks[1]],
        )
        return timing, load.result, _machine(getattr(det, "threads_used", None)), fingerprint(det)
    finally:
        if det is not model:
            det.close()


def fastest_run(ratios_per_run: Sequence[Sequence[float]]) -> int:
    """Index of the run with the lowest median ratio.

    On a shared 2-core machine a YOLOv8n at 640 now and then ran 15-40% slower for seconds at a
    time (over several runs in a row, now and then): the neighbours' share of the shared
    last-level cache, which the reference workload is sized to feel. What it does not follow
    only ever slows a run, so each side of a baseline gate takes the fastest of the same number
    of runs, as ``timeit`` takes the best of its repeats: a false alarm then needs every run of
    the check to be slow.
    """
    return int(np.argmin([np.median(r) for r in ratios_per_run]))


def median_sd(ratios: Sequence[float], seed: int = 0) -> float:
    """Sampling standard deviation (log scale) of a run's median ratio, by bootstrap over its blocks."""
    x = np.log(np.asarray(ratios, np.float64))
    return float(_bootstrap_medians(x, BOOTSTRAP, np.random.default_rng(seed)).std())


def occasion_sd(run_ratios: Sequence[Sequence[float]], seed: int = 0) -> float:
    """How far the level of a good run moves between loads (log scale), beyond the sampling noise
    of its median: from the two fastest runs, the variance of their medians less the mean
    sampling variance of a median (0 with one run, or when sampling explains it all)."""
    if len(run_ratios) < 2:
        return 0.0
    meds = [float(np.median(r)) for r in run_ratios]
    i, j = np.argsort(meds)[:2]
    between = (math.log(meds[j]) - math.log(meds[i])) ** 2 / 2
    within = (median_sd(run_ratios[i], seed) ** 2 + median_sd(run_ratios[j], seed) ** 2) / 2
    return math.sqrt(max(0.0, between - within))


def record_baseline(
    model: Any,
    path: str | os.PathLike,
    seconds: float = 3.0,
    runs: int = 3,
    batch: int = 1,
    threads: int | None = None,
    images: Sequence[np.ndarray] | None = None,
    seed: int = 0,
    max_noise: float = MAX_BASELINE_NOISE,
    force: bool = False,
    open_model: Callable[..., Any] | None = None,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Measure ``model`` against the reference workload and write a baseline to ``path``.

    ``runs`` separate measurements of ``seconds`` each, the model loaded anew for each; the
    baseline's level is the fastest run (:func:`fastest_run`), and the two fastest runs show
    how far a good run's level moves between loads beyond their own noise (:func:`occasion_sd`). Refuses
    (:class:`NoisyBaseline`, nothing written) a recording too noisy to judge against: a median
    ratio known to worse than ``max_noise`` either side (95%), two fastest runs further apart
    than ``max_noise``, or a machine on which other processes or the hypervisor took more
    than 10% of the CPUs. ``force`` writes it anyway, marked as forced. Returns the baseline.
    """
    if runs < 1:
        raise EdgecvError(f"a baseline needs at least 1 run (got {runs})")
    timings: list[Timing] = []
    loads: list[dict] = []
    mach: dict = {}
    fp: dict = {}
    for k in range(runs):
        if say and runs > 1:
            say(f"baseline run {k + 1} of {runs}")
        t, load, mach, fp = measure_against_reference(
            model, seconds, batch, threads, images, seed + k, open_model=open_model, say=say
        )
        timings.append(t)
        loads.append(load)
    best = timings[fastest_run([t.ratios for t in timings])]
    ratios = np.asarray(best.ratios)
    run_medians = [float(np.median(t.ratios)) for t in timings]
    ratio = float(np.median(ratios))
    lo, hi = _interval(_bootstrap_medians(ratios, BOOTSTRAP, np.random.default_rng(seed)), CONFIDENCE)
    stats: dict[str, Any] = {
        "median_ratio": ratio,
        "interval": [lo, hi],
        "half_width": max(ratio - lo, hi - ratio) / ratio,
        "spread": robust_spread(ratios),
        "run_medians": run_medians,
        "occasion_sd": occasion_sd([t.ratios for t in timings], seed),
        "median_ms": best.median_ms(),
        "reference_ms": float(np.median(best.reference_ms)),
        "reference_spread": robust_spread(best.reference_ms),
    }
    problems = []
    if stats["half_width"] > max_noise:
        problems.append(
            f"its median latency ratio is known only to ±{stats['half_width'] * 100:.1f}% (95%), above "
            f"the ±{max_noise * 100:.1f}% a baseline needs (block spread {stats['spread'] * 100:.1f}%)"
        )
    if stats["occasion_sd"] > max_noise:
        problems.append(
            f"its fastest runs differ by {stats['occasion_sd'] * 100:.1f}% beyond their own noise (median "
            f"ratios of the {runs} runs: {', '.join(f'{r:.3f}' for r in run_medians)}), above "
            f"{max_noise * 100:.1f}%"
        )
    busy = [busy_reason(ld) for ld in loads if busy_reason(ld)]
    if busy:
        problems.append(f"the machine was busy: {busy[0]}")
    if problems and not force:
        raise NoisyBaseline(
            f"not writing the baseline {path}: " + "; ".join(problems) + ". Record it on a quieter "
            "machine or measure longer (--seconds), gate paired instead (edgecv bench OLD NEW "
            "--compare), or pass --force to write it anyway"
        )
    data = {
        "schema": SCHEMA,
        "model": timings[0].model,
        "recorded": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            "batch": batch,
            "threads": threads or "default",
            "seconds": seconds,
            "runs": runs,
            "seed": seed,
            "images": "dataset" if images else "synthetic 640x480",
        },
        "machine": mach,
        "load": loads,
        "fingerprint": fp,
        "stats": stats,
        "timings": [asdict(t) for t in timings],
        "forced": problems,
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, p)
    if say:
        say(
            f"baseline written: {p} ({timings[0].model}: {stats['median_ms']:.2f} ms = {ratio:.3f} x reference, "
            f"±{stats['half_width'] * 100:.1f}% within, fastest runs {stats['occasion_sd'] * 100:.1f}% apart beyond "
            "that)"
        )
    return data


def read_baseline(path: str | os.PathLike) -> dict:
    """A stored baseline, checked for its schema; :class:`BaselineMissing` when there is none."""
    p = Path(path)
    if not p.is_file():
        raise BaselineMissing(
            f"no latency baseline at {p}: record one with `edgecv bench MODEL --save-baseline {p}` "
            "(in pytest: EDGECV_UPDATE_BASELINE=1) and commit it"
        )
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise BaselineError(f"cannot read the latency baseline {p}: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        what = (
            "a bench result of an older edgecv (a single ratio to a reference timed before and after)"
            if isinstance(data, dict) and "rows" in data and "reference_ms" in data
            else f"of schema {data.get('schema')!r}"
            if isinstance(data, dict)
            else "not a JSON object"
        )
        raise BaselineError(
            f"{p} is {what}, not an edgecv latency baseline ({SCHEMA}): record it again with "
            f"`edgecv bench MODEL --save-baseline {p}`"
        )
    return data


def baseline_interval(
    base_ratios: Sequence[float], new_ratios: Sequence[float], occasion_sd: float, seed: int = 0
) -> tuple[float, float, float]:
    """Slowdown of a run over a stored baseline (each side its fastest run), with its interval.

    The bootstrap interval over blocks sees only the noise within the two runs; the level of a
    good run also moves between loads by ``occasion_sd`` (log scale, from the baseline's runs,
    beyond their sampling noise, at least :data:`MIN_OCCASION_SD`), once on each side:
    1.96 x sqrt(2) x sd, added in quadrature on each side of the estimate.
    """
    ratio, lo, hi = independent_ratio(base_ratios, new_ratios, seed=seed)
    z = 1.959964
    extra = z * max(occasion_sd, MIN_OCCASION_SD) * math.sqrt(2)
    c = math.log(ratio)
    down = math.hypot(c - math.log(lo), extra)
    up = math.hypot(math.log(hi) - c, extra)
    return ratio, math.exp(c - down), math.exp(c + up)


def check_baseline(
    model: Any,
    path: str | os.PathLike,
    max_regression: float = 0.10,
    seconds: float | None = None,
    runs: int | None = None,
    threads: int | None = None,
    images: Sequence[np.ndarray] | None = None,
    seed: int = 1000,
    max_reference_shift: float = MAX_REFERENCE_SHIFT,
    open_model: Callable[..., Any] | None = None,
    say: Callable[[str], None] | None = None,
) -> GateResult:
    """Gate ``model`` against the stored baseline at ``path``.

    Runs as the baseline was recorded (batch, threads, images kind; ``seconds`` per run and
    ``runs``, each loading the model anew, default to the baseline's), and compares the blocks'
    ratios to the reference workload in the fastest run with those of the baseline's fastest
    run (:func:`fastest_run`, :func:`baseline_interval`). The verdict is inconclusive, never a regression,
    when the baseline comes from another machine or other backend versions, when this run
    was busy (see :func:`busy_reason`), or when its reference workload ran more than
    ``max_reference_shift`` away from the baseline's.
    """
    base = read_baseline(path)
    bs = base["settings"]
    if bs["images"] != ("dataset" if images else "synthetic 640x480"):
        raise BaselineError(
            f"the baseline {path} was recorded on {bs['images']} images, this run has "
            f"{'a data set' if images else 'the synthetic image'}: give the same images"
        )
    t_arg = threads if threads is not None else (bs["threads"] if bs["threads"] != "default" else None)
    secs = float(seconds if seconds is not None else bs["seconds"])
    runs = int(runs if runs is not None else bs.get("runs", 1))
    if runs < 1:
        raise EdgecvError(f"a gate needs at least 1 run (got {runs})")
    parts, loads = [], []
    for k in range(runs):
        t, load, mach, fp = measure_against_reference(
            model, secs, int(bs["batch"]), t_arg, images, seed + k, open_model=open_model, say=say
        )
        parts.append(t)
        loads.append(load)
    timing = parts[fastest_run([t.ratios for t in parts])]
    load = max(loads, key=lambda ld: ld.get("others_share", 0) + ld.get("steal_share", 0))
    base_ratios = base["timings"][fastest_run([t["ratios"] for t in base["timings"]])]["ratios"]
    ratio, lo, hi = baseline_interval(base_ratios, timing.ratios, base["stats"]["occasion_sd"], seed)
    notes, reason = [], ""
    change = describe_change(base.get("fingerprint", {}), fp)
    if change:
        notes.append(change)
    elif base.get("fingerprint", {}).get("graph_sha256") and fp.get("graph_sha256"):
        notes.append("the same model files as the baseline")
    here = machine_key(mach)
    other = {k: (v, here[k]) for k, v in machine_key(base["machine"]).items() if v != here[k]}
    bv, nv = base["machine"].get("versions", {}), mach.get("versions", {})
    versions = {k: (bv[k], nv.get(k)) for k in bv if k in ("onnxruntime", "openvino") and bv[k] != nv.get(k)}
    if other:
        reason = "the baseline was recorded on another machine: " + ", ".join(
            f"{k} {a} there, {b} here" for k, (a, b) in other.items()
        )
    elif versions:
        reason = "the baseline was recorded with other versions: " + ", ".join(
            f"{k} {a} there, {b} here" for k, (a, b) in versions.items()
        )
    elif busy_reason(load):
        reason = (
            f"this run was busy ({busy_reason(load)}): a slowdown under load is not judged against a quiet baseline"
        )
    else:
        shift = float(np.median(timing.reference_ms)) / base["stats"]["reference_ms"] - 1
        if abs(math.log1p(shift)) > math.log1p(max_reference_shift):  # as far slower as faster, by factor
            reason = (
                f"the reference workload ran {shift * 100:+.0f}% against the baseline's "
                f"({np.median(timing.reference_ms):.2f} vs {base['stats']['reference_ms']:.2f} ms): the machine "
                "is not in the state the baseline was recorded in, and the ratio is not trusted that far"
            )
    verdict = decide(ratio, lo, hi, max_regression, (len(base_ratios), len(timing.ratios)))
    if reason and verdict.verdict == "regression":
        verdict = Verdict("inconclusive", ratio, lo, hi, verdict.limit, verdict.blocks, reason, None)
    elif reason:
        notes.append(reason)
    if other:
        notes.append("keep one baseline per kind of machine, or gate paired (edgecv bench OLD NEW --compare)")
    if base.get("forced"):
        notes.append("the baseline was written with --force despite: " + "; ".join(base["forced"]))
    settings = {
        "batch": int(bs["batch"]),
        "threads": t_arg or "default",
        "seconds": secs * runs,
        "seconds_flag": secs,
        "runs": runs,
        "run_medians": [float(np.median(t.ratios)) for t in parts],
        "seed": seed,
        "max_regression": max_regression,
        "images": bs["images"],
        "baseline_path": str(path),
        "baseline": {**base["stats"], "recorded": base.get("recorded"), "runs": len(base["timings"])},
    }
    return GateResult("baseline", verdict, [timing], load, settings, mach, notes, [base.get("fingerprint", {}), fp])


def resolution(stats: dict) -> float:
    """The smallest slowdown a gate against a baseline with these ``stats`` can tell from no
    change, at the noise they show (a check as noisy as the recording): the half-width of the
    interval :func:`baseline_interval` gives."""
    extra = 1.959964 * max(stats["occasion_sd"], MIN_OCCASION_SD) * math.sqrt(2)
    within = math.log(1 + stats["half_width"]) * math.sqrt(2)
    return math.exp(math.hypot(extra, within)) - 1
