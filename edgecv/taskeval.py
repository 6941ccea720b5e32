"""The evaluation machinery classifiers and segmenters share: data sets of image paths and
labels, runs, an exact paired bootstrap over images, comparisons and tables. What differs
between the two lives in each task's evaluator module, as a :class:`Scorer`
(:mod:`edgecv.classify_eval`, :mod:`edgecv.segment_eval`), found through the task's record.

- Classification: an image-folder data set (one folder per class, named as the class);
  top-1 and top-5 accuracy, per-class accuracy.
- Segmentation: image + mask pairs (``images/NAME.png|jpg`` and ``masks/NAME.png``, the mask's
  pixel values are class ids in ``classes.txt`` order, 255 is ignored); mean IoU over the
  classes present, pixel accuracy, per-class IoU. Masks are compared in the original image's
  pixels, so the runtime's letterbox and its inverse are part of what is measured.

Each image's contribution is kept (a hit per k for classification, a confusion matrix for
segmentation), so the bootstrap over images is exact and fast: a draw sums the drawn images'
contributions.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import tasks
from .comparison import comparison_record, gate_failures, intervals, model_name
from .console import points, progress_bar, table
from .errors import BundleError, DatasetError, EdgecvError
from .images import IMAGE_SUFFIXES, read_image


class Scorer:
    """What a classifier's or segmenter's evaluator provides to the shared machinery."""

    task: str = ""
    #: metrics_table's columns: (heading, stats key) after the model's name
    columns: tuple[tuple[str, str], ...] = ()
    #: what the per-class table holds, and what parity counts (``same top-1``, ``same pixels``)
    per_class_label: str = ""
    same_label: str = ""
    same_unit: str = ""

    def load(
        self, data: str | os.PathLike, names: Sequence[str] | None, images: str | os.PathLike | None
    ) -> TaskDataset:
        raise NotImplementedError

    def start(self, det: Any, dataset: TaskDataset, to_model: np.ndarray) -> Any:
        """State for one run (e.g. a lookup from mask values to model classes)."""
        return None

    def score(self, state: Any, img: np.ndarray, label: Any, result: Any, keep_maps: bool) -> tuple[Any, Any, Any]:
        """One image's (contribution to the metric, predicted class or None, kept map or None)."""
        raise NotImplementedError

    def truth(self, img: np.ndarray, label: Any) -> Any:
        """The image's ground truth, read before the clock starts."""
        return label

    def finish(self, det: Any, dataset: TaskDataset, to_model: np.ndarray, per: np.ndarray, info: dict) -> TaskMetrics:
        raise NotImplementedError

    def metric_on(self, run: TaskRun, counts: np.ndarray) -> float:
        """The primary metric of ``run`` on a draw given as how many times each image was drawn."""
        raise NotImplementedError

    def parity(self, ref: TaskRun, cand: TaskRun) -> dict:
        raise NotImplementedError

    def share(self, parity: dict) -> float:
        """The share of agreement in a parity record."""
        raise NotImplementedError


def scorer_for(task: str) -> Scorer:
    """The :class:`Scorer` of ``task``, from its evaluator module."""
    return importlib.import_module(f".{tasks.get(task).evaluator}", __package__).SCORER


# --- data sets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskDataset:
    """A classification or segmentation data set: image paths, their labels (a class index or
    a mask path) and the class names."""

    task: str
    name: str
    root: Path
    images: tuple[Path, ...]
    labels: tuple[Any, ...]  # classify: class index into ``classes``; segment: the mask's path
    classes: tuple[str, ...]
    sha256: str
    format: str = "image-folder"

    def __len__(self) -> int:
        return len(self.images)


def dataset_hash(parts: Sequence[str]) -> str:
    """A data set's identity: sha256 over one line per image."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def images_in(folder: Path) -> list[Path]:
    """The image files of a folder, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_task_dataset(
    data: str | os.PathLike, task: str, names: Sequence[str] | None = None, images: str | os.PathLike | None = None
) -> TaskDataset:
    """Load a classification (image folders) or segmentation (images + masks) data set; see
    :func:`edgecv.classify_eval.ClassifyScorer.load` and :func:`edgecv.segment_eval.SegmentScorer.load`.

    Raises:
        DatasetError: the layout is not the task's, an image has no mask, or a folder is empty.
    """
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(
            f"{task} data '{root}' is not a folder: a classification set is one folder per class, a "
            "segmentation set a folder with images/ and masks/"
        )
    try:
        scorer = scorer_for(task)
    except (BundleError, AttributeError):  # an unknown task, or one evaluated elsewhere (detect)
        raise DatasetError(f"no task data sets for '{task}'") from None
    return scorer.load(root, names, images)


def class_index(model_names: Sequence[str], data_names: Sequence[str]) -> np.ndarray:
    """For each data set class, the model's class index, matched by name (or by position when the
    model's names are the generic ``class0, class1, ...`` and the counts agree).

    Raises:
        EdgecvError: a data set class the model does not know.
    """
    model = list(model_names)
    if all(n == f"class{i}" for i, n in enumerate(model)) and len(model) == len(data_names):
        return np.arange(len(model))
    unknown = [n for n in data_names if n not in model]
    if unknown:
        raise DatasetError(
            f"the model does not know {len(unknown)} of the data set's classes: {unknown[:5]}; the "
            f"model's classes are {model}"
        )
    return np.asarray([model.index(n) for n in data_names])


# --- metrics --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskMetrics:
    """Accuracy of one model on one data set (fractions in [0, 1], NaN where undefined)."""

    task: str
    stats: dict[str, float]  # classify: top1, top5; segment: miou, pixel_acc, mean_acc
    per_class: dict[str, float]  # classify: accuracy per class; segment: IoU per class
    primary_key: str = ""  # the statistic the gate is on: top1 or miou

    @property
    def primary(self) -> float:
        """The figure the gate is on: top-1 accuracy or mean IoU."""
        return self.stats[self.primary_key]

    @property
    def primary_name(self) -> str:
        """Its name: the task's metric (top-1, mIoU)."""
        return tasks.get(self.task).metric

    def to_dict(self) -> dict:
        return {"stats": self.stats, "per_class": self.per_class}


# --- runs -----------------------------------------------------------------------------------------


@dataclass
class TaskRun:
    """One model's pass over a classification or segmentation set."""

    name: str
    task: str
    per_image: np.ndarray  # classify: rank of the true class [N]; segment: confusion matrices [N, C, C]
    top1: np.ndarray  # classify: the predicted class of each image [N]; segment: empty (see ``maps``)
    latency_ms: list[float]
    names: tuple[str, ...]
    metrics: TaskMetrics
    info: dict = field(default_factory=dict)
    maps: list[np.ndarray] | None = None  # segment: the predicted class maps (for pixel parity)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latency_ms) if self.latency_ms else float("nan")


def run_task_dataset(
    det, dataset: TaskDataset, name: str | None = None, warmup: int = 3, progress: bool = True, keep_maps: bool = True
) -> TaskRun:
    """Run a classifier or segmenter over every image of ``dataset`` and compute its metrics.
    Images are decoded before the clock starts; ``warmup`` untimed calls come first."""
    task = det.task
    if task != dataset.task:
        raise EdgecvError(f"a model of task {task} cannot be evaluated on a data set of task {dataset.task}")
    scorer = scorer_for(task)
    to_model = class_index(det.names, dataset.classes)
    name = name or model_name(None, det)
    if warmup:
        first = read_image(dataset.images[0])
        for _ in range(warmup):
            det(first)
    times, per, top1, maps = [], [], [], []
    state = scorer.start(det, dataset, to_model)
    for path, label in progress_bar(list(zip(dataset.images, dataset.labels)), len(dataset), name, progress):
        img = read_image(path)
        truth = scorer.truth(img, label)
        t0 = time.perf_counter()
        r = det(img)
        times.append((time.perf_counter() - t0) * 1000)
        contribution, predicted, kept = scorer.score(state, img, truth, r, keep_maps)
        per.append(contribution)
        if predicted is not None:
            top1.append(predicted)
        if kept is not None:
            maps.append(kept)
    per_arr = np.asarray(per)
    info = {"target": det.manifest["target"], "precision": det.manifest["precision"], "task": task}
    metrics = scorer.finish(det, dataset, to_model, per_arr, info)
    return TaskRun(
        name,
        task,
        per_arr,
        np.asarray(top1) if top1 else np.zeros(0),
        times,
        tuple(det.names),
        metrics,
        info,
        maps if keep_maps and maps else None,
    )


def paired_bootstrap(
    ref: TaskRun, cands: Sequence[TaskRun], n: int = 200, seed: int = 0, level: float = 0.95
) -> list[dict]:
    """Bootstrap over images of the difference of the primary metric (candidate - reference);
    every model is scored on the same draws."""
    scorer = scorer_for(ref.task)
    rng = np.random.default_rng(seed)
    m = len(ref.per_image)
    diffs: list[list[float]] = [[] for _ in cands]
    for _ in range(n):
        counts = np.bincount(rng.integers(0, m, size=m), minlength=m)
        b = scorer.metric_on(ref, counts)
        for j, c in enumerate(cands):
            diffs[j].append(scorer.metric_on(c, counts) - b)
    return intervals(diffs, n, seed, level)


def parity(ref: TaskRun, cand: TaskRun) -> dict:
    """How closely the candidate reproduces the reference's own predictions: the share of images
    with the same top-1 class, or the share of pixels with the same class."""
    return scorer_for(ref.task).parity(ref, cand)


@dataclass
class TaskComparison:
    name: str
    delta: float  # candidate - reference, primary metric (fraction)
    ci: dict
    per_class_delta: list[tuple[str, float]]  # worst first
    parity: dict

    @property
    def delta_map(self) -> float:  # the name the detection harness's callers read
        return self.delta

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "delta": self.delta,
            "ci": self.ci,
            "per_class_delta": [{"class": c, "delta": d} for c, d in self.per_class_delta],
            "parity": self.parity,
        }


@dataclass
class TaskCompareResult:
    task: str
    dataset: dict
    runs: list[TaskRun]
    comparisons: list[TaskComparison]
    settings: dict

    def failures(self, max_drop: float | None) -> list[str]:
        """Messages for each candidate that loses more than ``max_drop`` points of the primary metric."""
        return gate_failures(self.runs, self.comparisons, max_drop)

    def to_dict(self) -> dict:
        return comparison_record(self, hidden=("labels",))


def dataset_info(dataset: TaskDataset) -> dict:
    return {"name": dataset.name, "format": dataset.format, "images": len(dataset), "sha256": dataset.sha256}


def compare(
    models: Sequence[tuple[str, Any]],
    dataset: TaskDataset,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    conf: float | None = None,
    max_dets: int | None = None,
) -> TaskCompareResult:
    """Evaluate every model on the same images; compare each candidate with the first, paired
    (``conf`` and ``max_dets`` are a detector's; ignored here)."""
    if len(models) < 2:
        raise EdgecvError("compare needs a reference and at least one candidate")
    kinds = {det.task for _, det in models}
    if len(kinds) > 1:
        raise EdgecvError(f"compare takes models of one task; these are {sorted(kinds)}")
    runs = [run_task_dataset(det, dataset, name, progress=progress) for name, det in models]
    ref = runs[0]
    if bootstrap:
        if say:
            say(
                f"paired bootstrap over {len(dataset)} image{'s' * (len(dataset) != 1)}, {bootstrap} resamples, seed {seed}"
            )
        cis = paired_bootstrap(ref, runs[1:], bootstrap, seed)
    else:
        cis = intervals([[] for _ in runs[1:]], 0, seed)
    comps = []
    for run, ci in zip(runs[1:], cis):
        deltas = sorted(
            ((k, run.metrics.per_class[k] - v) for k, v in ref.metrics.per_class.items() if k in run.metrics.per_class),
            key=lambda kv: kv[1],
        )
        comps.append(TaskComparison(run.name, run.metrics.primary - ref.metrics.primary, ci, deltas, parity(ref, run)))
    return TaskCompareResult(ref.task, dataset_info(dataset), runs, comps, {"bootstrap": bootstrap, "seed": seed})


# --- tables ---------------------------------------------------------------------------------------


def metrics_table(runs: Sequence[TaskRun]) -> str:
    """Every statistic of the task's metrics in points, and the median latency, per model."""
    cols = scorer_for(runs[0].task).columns
    head, keys = ("model", *(h for h, _ in cols), "p50 ms"), tuple(k for _, k in cols)
    return table(head, [(r.name, *(points(r.metrics.stats[k]) for k in keys), f"{r.median_ms:.2f}") for r in runs])


def per_class_table(runs: Sequence[TaskRun]) -> str:
    """The per-class metric (accuracy, IoU) per model."""
    names = list(runs[0].metrics.per_class)
    return table(
        (f"class ({scorer_for(runs[0].task).per_class_label})", *(r.name for r in runs)),
        [(n, *(points(r.metrics.per_class.get(n, np.nan)) for r in runs)) for n in names],
    )


def compare_table(result: TaskCompareResult) -> str:
    """One row per candidate: the primary metric and its difference with the interval, the worst
    class, and parity with the reference's own predictions."""
    ref = result.runs[0]
    what = ref.metrics.primary_name
    scorer = scorer_for(result.task)
    same = scorer.same_label
    rows = [(ref.name, points(ref.metrics.primary), "reference", "", "", "", f"{ref.median_ms:.2f}")]
    for run, c in zip(result.runs[1:], result.comparisons):
        p = c.parity
        share = scorer.share(p)
        worst = f"{c.per_class_delta[0][0]} {c.per_class_delta[0][1] * 100:+.2f}" if c.per_class_delta else "—"
        ci = "—" if np.isnan(c.ci["low"]) else f"[{c.ci['low'] * 100:+.2f}, {c.ci['high'] * 100:+.2f}]"
        rows.append(
            (
                run.name,
                points(run.metrics.primary),
                f"{c.delta * 100:+.2f}",
                ci,
                worst,
                "—" if np.isnan(share) else f"{share * 100:.2f}%",
                f"{run.median_ms:.2f}",
            )
        )
    return table(("model", what, "Δ points", "95% CI", "worst class Δ", same, "p50 ms"), rows)


# --- the evaluator interface (see edgecv.evaluation) ---------------------------------------------


def load_data(
    data: str | os.PathLike,
    task: str,
    images: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    fmt: str | None = None,
) -> TaskDataset:
    """:func:`load_task_dataset` (``fmt`` has no use here: each task has one layout)."""
    return load_task_dataset(data, task, names=names, images=images)


def evaluate(
    det,
    dataset: TaskDataset,
    name: str | None = None,
    progress: bool = True,
    warmup: int = 3,
    conf: float | None = None,
    max_dets: int | None = None,
    keep_maps: bool = False,
) -> TaskRun:
    """:func:`run_task_dataset` (``conf`` and ``max_dets`` are a detector's; ignored here)."""
    return run_task_dataset(det, dataset, name, warmup=warmup, progress=progress, keep_maps=keep_maps)


def val_headline(run: TaskRun, dataset: TaskDataset, conf: float, max_dets: int) -> str:
    """The line ``edgecv val`` prints above a classifier's or segmenter's tables."""
    return f"{run.name} on {dataset.name} ({len(dataset)} image{'s' * (len(dataset) != 1)}), {run.task}:"


def compare_headline(result: TaskCompareResult, dataset: TaskDataset, bootstrap: int, seed: int) -> str:
    """The line ``edgecv compare`` prints above a classifier's or segmenter's comparison."""
    what = result.runs[0].metrics.primary_name
    scorer = scorer_for(result.task)
    same = f"{scorer.same_label}: {scorer.same_unit}"
    return (
        f"{dataset.name}: {len(dataset)} image{'s' * (len(dataset) != 1)}; reference {result.runs[0].name}; {what} in points, 95% CI from "
        f"a paired bootstrap ({bootstrap} resamples, seed {seed}); {same} where the candidate predicts what the "
        "reference predicts"
    )


def run_record(run: TaskRun, dataset: TaskDataset) -> dict:
    """``edgecv val --json``: a classifier's or segmenter's metrics on a data set."""
    return {
        "model": run.name,
        "task": run.task,
        "dataset": dataset.name,
        "images": len(dataset),
        "metrics": run.metrics.to_dict(),
        "median_ms": run.median_ms,
    }


def validation_figures(result: TaskCompareResult) -> dict:
    """A classifier's or segmenter's figures in a bundle's validation record: every statistic of
    its task for source and bundle, and the primary metric's difference."""
    src, cand = result.runs
    return {
        "task": result.task,
        "metric": src.metrics.primary_name,
        "source": {**src.metrics.stats, "p50_ms": src.median_ms},
        "bundle": {**cand.metrics.stats, "p50_ms": cand.median_ms},
        "delta": result.comparisons[0].delta,
    }
