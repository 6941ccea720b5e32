"""Evaluation and benchmarks spread over Ray: ``edgecv val|compare|bench ... --ray [ADDRESS]``.

A detection data set is cut into contiguous shards of images; one Ray task per shard and model
opens the model from its :class:`ModelSpec` (detectors do not travel, their specs do), warms up
and predicts its images with :func:`edgecv.harness.predict_images`. The driver puts the shards
back in the data set's order and scores them with the same functions as a run in one process
(:func:`edgecv.harness.score_predictions`, :func:`edgecv.harness.compare_runs`): the same
detections per image give the same metrics, bootstrap interval and parity to the last digit.

``bench`` runs each model's whole benchmark as one task that takes every CPU of a node, so no
two timed measurements share cores: models run one after another on a node, side by side
across nodes.

Ray is imported only here, and only when a sharded run starts (the ``[serve]`` extra).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import EdgecvError
from .harness import (
    EVAL_CONF,
    CompareResult,
    ImagePrediction,
    Run,
    compare_runs,
    image_items,
    predict_images,
    score_predictions,
)

#: what --ray without an address means: a Ray started here, on this machine's cores
LOCAL = "local"
#: seconds without news from any shard before a sharded run gives up (a task Ray cannot place,
#: a node that went away): an error rather than a hang
IDLE_TIMEOUT = 600.0


class ShardError(EdgecvError):
    """A shard of a sharded run failed, or no shard reported for too long."""


@dataclass(frozen=True)
class ModelSpec:
    """What opens a model on a Ray worker: a bundle directory or a source model (a file,
    ``edgecv-tiny``), how to read a source, and detector options (``threads``, ...); it is
    opened with :func:`edgecv.pipeline.open_model`, as the CLI opens it in one process."""

    spec: str
    source_options: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    name: str | None = None  # the name in tables; None: the model's own (edgecv.comparison.model_name)

    def open(self, **options: Any):
        from .pipeline import open_model

        return open_model(self.spec, source_options=dict(self.source_options), **{**self.options, **options})


def shards(n: int, workers: int) -> list[range]:
    """``n`` items cut into at most ``workers`` contiguous ranges, in order, none empty; the first
    ``n % k`` ranges are one longer than the others. Deterministic: the same cut every run."""
    if workers < 1:
        raise EdgecvError(f"--workers {workers}: give 1 or more")
    k = min(workers, n)
    out, start = [], 0
    for i in range(k):
        size = n // k + (i < n % k)
        out.append(range(start, start + size))
        start += size
    return out


def worker_plan(cpus: int, workers: int | None = None, threads: int | None = None) -> tuple[int, int]:
    """Workers and backend threads per worker on ``cpus`` cores: by default one thread per worker
    and as many workers as cores; given one of them, the other keeps workers x threads <= cores
    (at least 1 each)."""
    for flag, v in (("--workers", workers), ("--worker-threads", threads)):
        if v is not None and v < 1:
            raise EdgecvError(f"{flag} {v}: give 1 or more")
    if workers is None:
        threads = threads or 1
        workers = max(1, cpus // threads)
    elif threads is None:
        threads = max(1, cpus // workers)
    return workers, threads


def _ray():
    try:
        import ray
    except ImportError:
        raise EdgecvError("--ray needs Ray: pip install 'edgecv[serve]'") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse quickly an address where nothing listens: Ray itself retries for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise EdgecvError(
            f"no Ray cluster answers at {address} ({e}): start one with `ray start --head` and give "
            "--ray the address it prints (HOST:6379), or --ray alone for a local Ray"
        ) from None


@contextmanager
def ray_session(address: str | None = LOCAL, num_cpus: int | None = None) -> Iterator[str]:
    """Ray for the length of a ``with`` block: a local Ray on this machine's cores (``address``
    None or :data:`LOCAL`; no dashboard), or a connection to the cluster at ``address``
    (``auto``, ``HOST:6379``, ``ray://HOST:10001``). Shut down at the end; a Ray that was
    already running in this process (started by the caller) is used and left running.

    Yields a description of where the work runs (for messages).
    """
    ray = _ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local = address in (None, "", LOCAL)
    if not local:
        _check_reachable(str(address))
    if ray.is_initialized():
        yield "the running Ray"
        return
    try:
        if local:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "a local Ray" if local else f"the Ray cluster at {address}"
        raise EdgecvError(
            f"could not start or reach {where}: {e}"
            + ("" if local else " (start one with `ray start --head`, then pass its address to --ray)")
        ) from None
    try:
        yield "a local Ray" if local else f"the Ray cluster at {address}"
    finally:
        ray.shutdown()


def cluster_cpus() -> int:
    """The CPUs of the Ray this process is connected to, all nodes together."""
    return max(1, int(_ray().cluster_resources().get("CPU", 1)))


# --- the work on a worker ------------------------------------------------------------------------


def _predict_shard(spec: ModelSpec, items: list, conf: float, categories: list, warmup: int) -> Iterator[Any]:
    """A Ray generator task: first the model's header (name, classes, target, node), then one
    :class:`ImagePrediction` per image of the shard."""
    import ray

    from .comparison import model_name
    from .datasets import category_map

    det = spec.open()
    try:
        yield {
            "name": model_name(spec.spec, det),
            "names": tuple(det.names),
            "manifest": {"target": det.manifest["target"], "precision": det.manifest["precision"]},
            "node": ray.util.get_node_ip_address(),
            "threads_used": getattr(det, "threads_used", None),
        }
        yield from predict_images(det, items, conf, category_map(det.names, categories), warmup)
    finally:
        det.close()


def _bench_model(spec: ModelSpec, images: list | None, options: dict) -> dict:
    """A Ray task that holds a whole node: :func:`edgecv.bench.bench` of one model there."""
    import ray

    from .bench import bench

    result = bench([spec.spec], images=images, open_model=lambda s, **o: spec.open(**o), **options)
    return {**result.to_dict(), "node": ray.util.get_node_ip_address()}


def _failure(e: BaseException) -> str:
    """What went wrong on a worker, in its own words where it was one of edgecv's errors."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, EdgecvError):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return f"{type(e).__name__}: {e}".splitlines()[0]


def _cancel(ray, refs: Sequence[Any]) -> None:
    for r in refs:
        try:
            ray.cancel(r, force=True)
        except Exception:  # noqa: BLE001 - finished already, or not cancellable: nothing to stop
            pass


# --- the driver ----------------------------------------------------------------------------------


@dataclass
class ShardedPredictions:
    """One model's predictions over a data set, put back together from its shards."""

    name: str
    names: tuple[str, ...]
    manifest: dict
    predictions: list[ImagePrediction]  # in the data set's order
    nodes: list[str]  # where each shard ran


def predict_sharded(
    specs: Sequence[ModelSpec],
    dataset,
    *,
    workers: int | None = None,
    threads: int | None = None,
    conf: float | None = EVAL_CONF,
    warmup: int = 3,
    progress: bool = True,
    idle_timeout: float = IDLE_TIMEOUT,
) -> tuple[list[ShardedPredictions], dict]:
    """Every model over every image of ``dataset``, in contiguous shards on Ray tasks (Ray must be
    running: :func:`ray_session`).

    Args:
        workers: shards per model (default: the cluster's CPUs / ``threads``); threads: backend
            threads of each worker (default: CPUs / workers, at least 1).

    Returns:
        Per model its predictions in the data set's order, and the plan (workers, threads, shards).

    Raises:
        ShardError: a shard failed (naming the model and the shard), or none reported for
            ``idle_timeout`` seconds.
    """
    from .console import progress_bar

    ray = _ray()
    if not hasattr(dataset, "coco"):
        raise EdgecvError(
            "--ray shards the evaluation of detectors today; classifiers, segmenters and tracking run in "
            "one process: drop --ray"
        )
    conf = EVAL_CONF if conf is None else conf
    items = image_items(dataset)
    workers, threads = worker_plan(cluster_cpus(), workers, threads)
    parts = shards(len(items), workers)
    task = ray.remote(_predict_shard).options(num_cpus=threads, max_retries=0)
    categories = dataset.coco["categories"]
    tasks: dict[Any, tuple[int, int]] = {}
    for m, spec in enumerate(specs):
        opened = dataclasses.replace(spec, options={"threads": threads, **spec.options})
        for s, r in enumerate(parts):
            tasks[task.remote(opened, items[r.start : r.stop], conf, categories, warmup)] = (m, s)
    headers: list[list[dict | None]] = [[None] * len(parts) for _ in specs]
    got: list[list[list[ImagePrediction]]] = [[[] for _ in parts] for _ in specs]

    def shard_name(m: int, s: int) -> str:
        r = parts[s]
        return f"{specs[m].spec}: shard {s + 1} of {len(parts)} (images {r.start + 1}-{r.stop} of {len(items)})"

    def arrivals() -> Iterator[None]:
        pending = list(tasks)
        while pending:
            ready, _ = ray.wait(pending, num_returns=1, timeout=idle_timeout)
            if not ready:
                _cancel(ray, pending)
                stuck = ", ".join(shard_name(*tasks[g]) for g in pending[:3])
                raise ShardError(
                    f"no shard reported for {idle_timeout:g} s ({stuck}{', ...' if len(pending) > 3 else ''}): "
                    f"the cluster may lack {threads} free CPU{'s' * (threads != 1)} per worker, or a node went away"
                )
            for gen in ready:
                m, s = tasks[gen]
                try:
                    value = ray.get(next(gen))
                except StopIteration:
                    pending.remove(gen)
                    continue
                except Exception as e:  # noqa: BLE001 - the worker's error, a crash or a lost node
                    _cancel(ray, [g for g in pending if g is not gen])
                    raise ShardError(f"{shard_name(m, s)} failed: {_failure(e)}") from None
                if isinstance(value, ImagePrediction):
                    got[m][s].append(value)
                    yield None
                else:
                    headers[m][s] = value

    label = f"{len(specs)} model{'s' * (len(specs) != 1)} x {len(parts)} shard{'s' * (len(parts) != 1)}"
    for _ in progress_bar(arrivals(), len(items) * len(specs), label, progress):
        pass
    out = []
    for m, spec in enumerate(specs):
        head = headers[m][0]
        assert head is not None  # every shard sends its header before its images
        preds = [p for s in range(len(parts)) for p in got[m][s]]
        if [p.image_id for p in preds] != [i for i, _ in items]:
            raise ShardError(f"{spec.spec}: the shards returned {len(preds)} of {len(items)} images")
        nodes = [h["node"] for h in headers[m] if h is not None]
        out.append(ShardedPredictions(spec.name or head["name"], head["names"], head["manifest"], preds, nodes))
    plan = {"workers": len(parts), "threads_per_worker": threads, "shards": [[r.start, r.stop] for r in parts]}
    return out, plan


def latency_note(plan: dict, nodes: Sequence[str]) -> str:
    """The line that says where a sharded run's latencies come from."""
    n, where = plan["workers"], len(set(nodes))
    machines = "sharing one machine" if where == 1 else f"on {where} machines"
    return (
        f"latency per image measured on {n} Ray worker{'s' * (n != 1)} {machines}, "
        f"{plan['threads_per_worker']} backend thread{'s' * (plan['threads_per_worker'] != 1)} each: "
        "not the figure of one process with the machine to itself"
    )


def _runs(sharded: Sequence[ShardedPredictions], specs: Sequence[ModelSpec], dataset, max_dets: int) -> list[Run]:
    from .comparison import distinct_names

    names = distinct_names([s.name for s in sharded], [spec.spec for spec in specs])
    return [
        score_predictions(name, s.predictions, dataset, s.names, s.manifest, max_dets)
        for name, s in zip(names, sharded)
    ]


def evaluate_sharded(
    spec: ModelSpec,
    dataset,
    *,
    workers: int | None = None,
    threads: int | None = None,
    conf: float | None = EVAL_CONF,
    max_dets: int = 100,
    warmup: int = 3,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> Run:
    """:func:`edgecv.harness.run_dataset` of one model, its images sharded over Ray workers: the
    same detections and metrics; the latencies come from the workers."""
    (sharded,), plan = predict_sharded(
        [spec], dataset, workers=workers, threads=threads, conf=conf, warmup=warmup, progress=progress
    )
    if say:
        say(latency_note(plan, sharded.nodes))
    run = _runs([sharded], [spec], dataset, max_dets)[0]
    return run


def compare_sharded(
    specs: Sequence[ModelSpec],
    dataset,
    *,
    workers: int | None = None,
    threads: int | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    conf: float | None = EVAL_CONF,
    max_dets: int = 100,
    warmup: int = 3,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> CompareResult:
    """:func:`edgecv.harness.compare` with every model's images sharded over Ray workers; the
    comparison (bootstrap with its seed, per-class differences, box parity) runs here, on the
    merged detections, as in one process. The settings record the plan under ``ray``."""
    if len(specs) < 2:
        raise EdgecvError("compare needs a reference and at least one candidate")
    conf = EVAL_CONF if conf is None else conf
    t0 = time.perf_counter()
    sharded, plan = predict_sharded(
        specs, dataset, workers=workers, threads=threads, conf=conf, warmup=warmup, progress=progress
    )
    if say:
        say(f"{len(specs)} models over {len(dataset)} images in {time.perf_counter() - t0:.1f} s")
        say(latency_note(plan, [n for s in sharded for n in s.nodes]))
    result = compare_runs(
        _runs(sharded, specs, dataset, max_dets),
        dataset,
        bootstrap=bootstrap,
        seed=seed,
        conf=conf,
        max_dets=max_dets,
        progress=progress,
        say=say,
    )
    result.settings["ray"] = plan
    return result


# --- bench: one whole node per model -------------------------------------------------------------


def _nodes() -> list[dict]:
    ray = _ray()
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]
    if not nodes:
        raise EdgecvError("the Ray cluster has no live node with a CPU")
    return nodes


def bench_sharded(
    models: Sequence[ModelSpec | str],
    *,
    images: Sequence[Any] | None = None,
    say: Callable[[str], None] | None = None,
    idle_timeout: float | None = None,
    **options: Any,
):
    """:func:`edgecv.bench.bench` of each model as one Ray task that asks for every CPU of a node:
    timed measurements never share cores; models run one after another on a node and side by
    side across nodes. Each row records the ``node`` it ran on; ``settings["ray"]["machines"]``
    the machine of each node.

    Args:
        models: model specs, or bundle directories / source models as :func:`edgecv.bench.bench` takes.
        options: as for :func:`edgecv.bench.bench` (batches, threads, seconds, min_iters, warmup,
            stream, peak).
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .bench import BenchResult

    ray = _ray()
    specs = [m if isinstance(m, ModelSpec) else ModelSpec(str(m)) for m in models]
    nodes = _nodes()
    task = ray.remote(_bench_model)
    shared = ray.put(list(images)) if images else None
    queue = list(enumerate(specs))
    running: dict[Any, tuple[int, dict]] = {}
    results: dict[int, dict] = {}

    def submit(node: dict) -> None:
        i, spec = queue.pop(0)
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        cpus = node["Resources"]["CPU"]
        ref = task.options(num_cpus=cpus, scheduling_strategy=strategy, max_retries=0).remote(spec, shared, options)
        running[ref] = (i, node)
        if say:
            say(f"bench {spec.spec} on node {node['NodeManagerAddress']} ({cpus:g} CPUs, the whole node)")

    for node in nodes:
        if queue:
            submit(node)
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=idle_timeout)
        if not ready:
            _cancel(ray, list(running))
            raise ShardError(f"no benchmark finished in {idle_timeout:g} s")
        ref = ready[0]
        i, node = running.pop(ref)
        try:
            results[i] = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the worker's error, a crash or a lost node
            _cancel(ray, list(running))
            raise ShardError(
                f"bench of {specs[i].spec} on node {node['NodeManagerAddress']} failed: {_failure(e)}"
            ) from None
        if queue:
            submit(node)
    rows = [{**row, "node": results[i]["node"]} for i in range(len(specs)) for row in results[i]["rows"]]
    machines = {results[i]["node"]: results[i]["machine"] for i in range(len(specs))}
    first = results[0]
    settings = {**first["settings"], "ray": {"nodes": len(nodes), "machines": machines}}
    return BenchResult(rows, first["machine"], settings)


# --- sweeps: independent jobs, one task each ---------------------------------------------------


def run_tasks(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
    num_cpus: float = 1,
    say: Callable[[str], None] | None = None,
) -> list[tuple[Any, str | None]]:
    """``fn(item)`` for every item as one Ray task each (``num_cpus`` CPUs per task: a 2-core
    machine runs two at once), in the running Ray (see :func:`ray_session`). Returns, in the
    order of ``items``, ``(result, None)`` or ``(None, what went wrong)``: one failing job does
    not stop the others (an export sweep reports every bundle it made and every one it could not).
    """
    ray = _ray()
    names = list(names) if names is not None else [str(i) for i in range(len(items))]
    task = ray.remote(fn)
    refs = {task.options(num_cpus=num_cpus, max_retries=0).remote(item): i for i, item in enumerate(items)}
    out: list[tuple[Any, str | None]] = [(None, "not run")] * len(items)
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        i = refs[ready[0]]
        try:
            out[i] = (ray.get(ready[0]), None)
        except Exception as e:  # noqa: BLE001 - the worker's error, a crash or a lost node
            out[i] = (None, _failure(e))
        if say:
            say(f"{names[i]}: {'done' if out[i][1] is None else 'failed'} ({len(items) - len(pending)}/{len(items)})")
    return out
