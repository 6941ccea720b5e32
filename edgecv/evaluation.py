"""One evaluation stack for every task: data sets, runs, paired comparisons, tables and the
validation record a bundle's manifest keeps. Each task names its evaluator module
(:attr:`edgecv.tasks.base.Task.evaluator`: :mod:`edgecv.harness` for detectors,
:mod:`edgecv.taskeval` for classifiers and segmenters); this module looks it up and holds
what is the same for all.

Every evaluator module provides ``load_data``, ``evaluate``, ``compare``, ``metrics_table``,
``per_class_table``, ``compare_table``, ``validation_figures``, ``val_headline``,
``compare_headline`` and ``run_record`` (classifiers and segmenters: :mod:`edgecv.taskeval`'s,
with their :class:`~edgecv.taskeval.Scorer`).

Some evaluations score another task's models in another way: ``track`` (:mod:`edgecv.track_eval`)
runs a detector and a tracker over video sequences. They are named in :data:`MODES`, beside the
tasks; a data set says which evaluation it is for (``dataset.task``), so a detector given
tracking sequences is evaluated as a tracker.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from . import tasks
from .errors import EdgecvError

#: evaluations of another task's models: name -> (the task of the models, the evaluator module)
MODES: dict[str, tuple[str, str]] = {"track": ("detect", "track_eval")}


def model_task(evaluation: str) -> str:
    """The task of the models an evaluation takes: ``detect`` for ``track``, else the task itself."""
    return MODES[evaluation][0] if evaluation in MODES else evaluation


def evaluator(task: str) -> ModuleType:
    """The evaluator module of ``task`` or of an evaluation in :data:`MODES`: its own (detect:
    :mod:`edgecv.harness`, track: :mod:`edgecv.track_eval`), or, for a task whose module gives a
    :class:`edgecv.taskeval.Scorer` (``SCORER``), the shared :mod:`edgecv.taskeval`, which finds
    that scorer by the task."""
    if task in MODES:
        return importlib.import_module(f".{MODES[task][1]}", __package__)
    module = importlib.import_module(f".{tasks.get(task).evaluator}", __package__)
    return importlib.import_module(".taskeval", __package__) if hasattr(module, "SCORER") else module


def evaluator_for(model_task_name: str, dataset: Any) -> ModuleType:
    """The evaluator for models of a task on ``dataset``: the evaluation the data set is for where
    it is one of :data:`MODES` (and takes models of that task), else the task's own.

    Raises:
        EdgecvError: the data set is for an evaluation of another task's models.
    """
    mode = getattr(dataset, "task", None)
    if mode in MODES:
        if MODES[mode][0] != model_task_name:
            raise EdgecvError(f"{mode} is evaluated with {MODES[mode][0]} models; this one's task is {model_task_name}")
        return evaluator(mode)
    return evaluator(model_task_name)


def reporter(task: str) -> ModuleType | None:
    """The module whose ``write_report`` writes ``compare --report`` for ``task``; None where
    the task has none."""
    if task in MODES:
        return None
    name = tasks.get(task).report
    return importlib.import_module(f".{name}", __package__) if name else None


def load_dataset(
    data: str | os.PathLike,
    task: str = "detect",
    images: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    fmt: str | None = None,
):
    """A data set of ``task``: for detectors a COCO json, a YOLO or VOC folder (``fmt``, detected by
    default); for classifiers a folder of class folders; for segmenters images/, masks/ and classes.txt;
    for ``track`` MOTChallenge sequences."""
    return evaluator(task).load_data(data, task, images=images, names=names, fmt=fmt)


def evaluate(det, dataset, name: str | None = None, progress: bool = True, warmup: int = 3, **kwargs: Any):
    """Run a model over a data set of its task (or of an evaluation in :data:`MODES` over that task);
    the run's ``metrics.primary`` is mAP50-95, top-1, mIoU or HOTA."""
    return evaluator_for(det.task, dataset).evaluate(det, dataset, name, progress=progress, warmup=warmup, **kwargs)


def compare(
    models: Sequence[tuple[str, Any]],
    dataset,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    across_sizes: bool = False,
    **kwargs: Any,
):
    """Evaluate every model on the same images (or sequences) and compare each candidate with the
    first (the reference), paired: a bootstrap over images (tracking: sequences or blocks of
    frames) for the difference of the primary metric.

    The models must take one input size, so that a difference is the conversion's and not the
    size's (:func:`edgecv.pipeline.sized_source_options` runs a source at its bundles' size);
    ``across_sizes`` allows different sizes and names each model with its size (``@640x640``)."""
    if len(models) < 2:
        raise EdgecvError("compare needs a reference and at least one candidate")
    kinds = {det.task for _, det in models}
    if len(kinds) > 1:
        raise EdgecvError(f"compare takes models of one task; these are {sorted(kinds)}")
    models = labelled_sizes(models, across_sizes)
    return evaluator_for(kinds.pop(), dataset).compare(
        models, dataset, bootstrap=bootstrap, seed=seed, progress=progress, say=say, **kwargs
    )


def manifest_input_size(manifest: dict) -> tuple[int, int]:
    """The (height, width) a model takes, from its manifest's input shape [B, H, W, 3]."""
    h, w = manifest["input"]["shape"][1:3]
    return int(h), int(w)


def model_input_size(det: Any) -> tuple[int, int]:
    """The (height, width) an open model takes."""
    return manifest_input_size(det.manifest)


def labelled_sizes(models: Sequence[tuple[str, Any]], across_sizes: bool) -> list[tuple[str, Any]]:
    """``models`` as they are where they take one input size; else refused, or with
    ``across_sizes`` each named with its size (``yolov8n (torch) @320x320``)."""
    sizes = [model_input_size(det) for _, det in models]
    if len(set(sizes)) == 1:
        return list(models)
    listed = ", ".join(f"{name} {h}x{w}" for (name, _), (h, w) in zip(models, sizes))
    if not across_sizes:
        raise EdgecvError(
            f"these models take different input sizes ({listed}): a difference between them would be the size's, "
            "not the conversion's. Run a source at its bundles' size (imgsz), or ask for a comparison across "
            "sizes by name (across_sizes=True, compare --across-sizes)"
        )
    return [(f"{name} @{h}x{w}", det) for (name, det), (h, w) in zip(models, sizes)]


def metrics_table(runs: Sequence[Any]) -> str:
    """Every statistic of the task's metrics, in points, and the median latency, per model."""
    return evaluator(runs[0].task).metrics_table(runs)


def per_class_table(runs: Sequence[Any]) -> str:
    """The task's per-class metric (AP50-95, accuracy or IoU) per model."""
    return evaluator(runs[0].task).per_class_table(runs)


def compare_table(result: Any) -> str:
    """One row per candidate: the primary metric, its difference with the interval, the worst
    class and the parity of the outputs."""
    return evaluator(result.task).compare_table(result)


def validation_record(
    result: Any,
    target: str,
    det: Any = None,
    max_drop: float | None = None,
    passed: bool | None = None,
    machine: dict | None = None,
    **extra: Any,
) -> dict:
    """The ``validation`` a bundle's manifest keeps after a comparison with its source (from
    ``edgecv export --validate`` and from accuracy control alike): the data set and settings,
    the task's figures (:func:`validation_figures` of its evaluator), the paired interval and
    parity, the gate, how and where it was measured, and anything in ``extra``."""
    from .targets import get as get_target

    task = tasks.get(result.task)
    c = result.comparisons[0]
    record = {
        "dataset": result.dataset,
        "settings": result.settings,
        **evaluator(result.task).validation_figures(result),
        "ci95": [c.ci["low"], c.ci["high"]],
        "parity": c.parity,
        "gate": None if max_drop is None else {task.gate_key: max_drop, "passed": bool(passed)},
        **({"machine": machine} if machine else {}),
        "measured_with": get_target(target).describe_measurement(),
        # openvino: the compute type the CPU plugin actually used (a bf16 bundle runs f32 on CPUs without bf16)
        **({"inference_precision": det.inference_precision} if hasattr(det, "inference_precision") else {}),
        **extra,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return record
