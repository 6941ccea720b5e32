"""The harness for classifiers and segmenters: their data sets, metrics, runs and paired
comparisons, with the same bootstrap and gate as the detection harness.

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
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from .errors import EdgecvError
from .images import IMAGE_SUFFIXES, read_image

IGNORE = 255  # mask value of pixels left out of the metrics
PRIMARY = {"classify": ("top1", "top-1"), "segment": ("miou", "mIoU")}


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


def _hash(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_task_dataset(data: str | os.PathLike, task: str, names: Sequence[str] | None = None,
                      images: str | os.PathLike | None = None) -> TaskDataset:
    """Load a classification (image folders) or segmentation (images + masks) data set.

    Args:
        data: classify: the root whose sub-folders are the classes. segment: the root holding
            ``images/`` and ``masks/`` (and ``classes.txt``), or the masks folder with ``images``.
        task: ``classify`` or ``segment``.
        names: segment: class names in mask-value order (default: ``classes.txt``).

    Raises:
        EdgecvError: the layout is not one of these, an image has no mask, or a folder is empty.
    """
    root = Path(data)
    if not root.is_dir():
        raise EdgecvError(f"{task} data '{root}' is not a folder: a classification set is one folder per class, a "
                          "segmentation set a folder with images/ and masks/")
    if task == "classify":
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise EdgecvError(f"'{root}' has no class folders: a classification set holds one folder of images per class")
        paths, labels = [], []
        for k, f in enumerate(folders):
            imgs = _images_in(f)
            paths += imgs
            labels += [k] * len(imgs)
        if not paths:
            raise EdgecvError(f"the class folders of '{root}' hold no images ({', '.join(IMAGE_SUFFIXES)})")
        classes = tuple(f.name for f in folders)
        digest = _hash([f"{p.relative_to(root)}\t{k}" for p, k in zip(paths, labels)])
        return TaskDataset(task, root.name, root, tuple(paths), tuple(labels), classes, digest, "image-folder")
    if task != "segment":
        raise EdgecvError(f"no task data sets for '{task}'")
    masks_dir = root / "masks" if (root / "masks").is_dir() else root
    images_dir = Path(images) if images else root / "images"
    if not images_dir.is_dir():
        raise EdgecvError(f"segmentation data '{root}': no images folder at '{images_dir}' (expected images/ and "
                          "masks/ side by side, or --images)")
    if names is None:
        for cand in (root / "classes.txt", masks_dir / "classes.txt"):
            if cand.is_file():
                names = [ln.strip() for ln in cand.read_text().splitlines() if ln.strip()]
                break
    if not names:
        raise EdgecvError(f"segmentation data '{root}' has no classes.txt: give the class names in mask-value order "
                          "(--data-names)")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() == ".png"}
    paths = _images_in(images_dir)
    missing = [p.name for p in paths if p.stem not in masks]
    if missing:
        raise EdgecvError(f"{len(missing)} image(s) of '{images_dir}' have no mask in '{masks_dir}' (a PNG of the same "
                          f"name), e.g. {', '.join(missing[:3])}")
    if not paths:
        raise EdgecvError(f"'{images_dir}' holds no images")
    labels = [masks[p.stem] for p in paths]
    digest = _hash([f"{p.name}\t{m.stat().st_size}" for p, m in zip(paths, labels)] + list(names))
    return TaskDataset(task, root.name, images_dir, tuple(paths), tuple(labels), tuple(names), digest, "image-mask")


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A mask PNG as uint8 class ids, checked against its image's size."""
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise EdgecvError(f"mask '{path}' could not be read as a PNG")
    if m.ndim == 3:
        m = m[:, :, 0]
    if m.shape != tuple(shape):
        raise EdgecvError(f"mask '{path}' is {m.shape[1]}x{m.shape[0]} but its image is {shape[1]}x{shape[0]}")
    return m


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
        raise EdgecvError(f"the model does not know {len(unknown)} of the data set's classes: {unknown[:5]}; the "
                          f"model's classes are {model}")
    return np.asarray([model.index(n) for n in data_names])


# --- metrics --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskMetrics:
    """Accuracy of one model on one data set (fractions in [0, 1], NaN where undefined)."""

    task: str
    stats: dict[str, float]  # classify: top1, top5; segment: miou, pixel_acc, mean_acc
    per_class: dict[str, float]  # classify: accuracy per class; segment: IoU per class

    @property
    def primary(self) -> float:
        """The figure the gate is on: top-1 accuracy or mean IoU."""
        return self.stats[PRIMARY[self.task][0]]

    @property
    def primary_name(self) -> str:
        return PRIMARY[self.task][1]

    def to_dict(self) -> dict:
        return {"stats": self.stats, "per_class": self.per_class}


def classification_metrics(ranks: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> TaskMetrics:
    """From the rank of the true class in each image's predictions (0 = top-1; k or more: not
    in the top k) and the true labels (model class indices)."""
    per = {}
    for k, n in enumerate(names):
        sel = labels == k
        if sel.any():
            per[n] = float((ranks[sel] == 0).mean())
    return TaskMetrics("classify", {"top1": float((ranks < 1).mean()), "top5": float((ranks < 5).mean()),
                                    "images": float(len(ranks))}, per)


def confusion(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] pixel counts (true class, predicted class); ``gt`` of :data:`IGNORE` (or out of range) left out."""
    valid = gt < num_classes
    idx = gt[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(conf: np.ndarray, names: Sequence[str]) -> TaskMetrics:
    """mIoU over the classes that occur (in the truth or the prediction), pixel accuracy, mean
    class accuracy and per-class IoU from a summed confusion matrix."""
    inter = np.diag(conf).astype(np.float64)
    gt, pred = conf.sum(1).astype(np.float64), conf.sum(0).astype(np.float64)
    union = gt + pred - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    acc = np.where(gt > 0, inter / np.maximum(gt, 1), np.nan)
    total = conf.sum()
    stats = {"miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
             "pixel_acc": float(inter.sum() / total) if total else float("nan"),
             "mean_acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")}
    return TaskMetrics("segment", stats, {n: float(v) for n, v in zip(names, iou) if np.isfinite(v)})


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


def run_task_dataset(det, dataset: TaskDataset, name: str | None = None, warmup: int = 3, progress: bool = True,
                     keep_maps: bool = True) -> TaskRun:
    """Run a classifier or segmenter over every image of ``dataset`` and compute its metrics.
    Images are decoded before the clock starts; ``warmup`` untimed calls come first."""
    from .harness import model_name, progress_bar

    task = det.task
    if task != dataset.task:
        raise EdgecvError(f"a {task} model cannot be evaluated on a {dataset.task} data set")
    to_model = class_index(det.names, dataset.classes)
    name = name or model_name(None, det)
    if warmup:
        first = read_image(dataset.images[0])
        for _ in range(warmup):
            det(first)
    times, per, top1, maps = [], [], [], []
    c = len(det.names)
    if task == "segment":  # mask value (uint8) -> model class; c (IGNORE, unknown values): left out by confusion()
        lut = np.full(256, c, dtype=np.int64)
        lut[: len(to_model)] = to_model[:256]
        lut[IGNORE] = c
    for path, label in progress_bar(list(zip(dataset.images, dataset.labels)), len(dataset), name, progress):
        img = read_image(path)
        if task == "segment":
            gt_raw = read_mask(label, img.shape[:2])
        t0 = time.perf_counter()
        r = det(img)
        times.append((time.perf_counter() - t0) * 1000)
        if task == "classify":
            truth = int(to_model[label])
            hit = np.flatnonzero(r.class_ids == truth)
            per.append(int(hit[0]) if hit.size else len(r.class_ids) + 100)
            top1.append(r.top1)
        else:
            per.append(confusion(lut[gt_raw], r.class_map, c))
            if keep_maps:
                maps.append(r.class_map.astype(np.int16 if c < 32768 else np.int32))
    per_arr = np.asarray(per)
    info = {"target": det.manifest["target"], "precision": det.manifest["precision"], "task": task}
    if task == "classify":
        labels = np.asarray([int(to_model[k]) for k in dataset.labels])
        if det.top_k < 5:
            info["note"] = f"top-5 counts the model's top {det.top_k} only"
        metrics = classification_metrics(per_arr, labels, det.names)
        info["labels"] = labels
        return TaskRun(name, task, per_arr, np.asarray(top1), times, tuple(det.names), metrics, info)
    metrics = segmentation_metrics(per_arr.sum(0), det.names)
    return TaskRun(name, task, per_arr, np.zeros(0), times, tuple(det.names), metrics, info, maps if keep_maps else None)


def _metric_on(run: TaskRun, counts: np.ndarray) -> float:
    """The primary metric of ``run`` on a draw given as how many times each image was drawn."""
    if run.task == "classify":
        return float(np.dot(counts, run.per_image == 0) / counts.sum())
    conf = np.tensordot(counts, run.per_image, axes=1)
    return segmentation_metrics(conf, run.names).primary


def paired_bootstrap(ref: TaskRun, cands: Sequence[TaskRun], n: int = 200, seed: int = 0,
                     level: float = 0.95) -> list[dict]:
    """Bootstrap over images of the difference of the primary metric (candidate - reference);
    every model is scored on the same draws."""
    rng = np.random.default_rng(seed)
    m = len(ref.per_image)
    diffs: list[list[float]] = [[] for _ in cands]
    for _ in range(n):
        counts = np.bincount(rng.integers(0, m, size=m), minlength=m)
        b = _metric_on(ref, counts)
        for j, c in enumerate(cands):
            diffs[j].append(_metric_on(c, counts) - b)
    alpha = (1 - level) / 2
    return [{"low": float(np.quantile(d, alpha)), "high": float(np.quantile(d, 1 - alpha)), "mean": float(np.mean(d)),
             "n": n, "seed": seed, "level": level} for d in diffs]


def parity(ref: TaskRun, cand: TaskRun) -> dict:
    """How closely the candidate reproduces the reference's own predictions: the share of images
    with the same top-1 class, or the share of pixels with the same class."""
    if ref.task == "classify":
        same = ref.top1 == cand.top1
        return {"same_top1": int(same.sum()), "images": int(len(same)), "same_top1_share": float(same.mean()),
                "differing_images": [int(i) for i in np.flatnonzero(~same)[:20]]}
    if ref.maps is None or cand.maps is None:
        return {}
    same = sum(int((a == b).sum()) for a, b in zip(ref.maps, cand.maps))
    total = sum(a.size for a in ref.maps)
    return {"same_pixels": same, "pixels": total, "same_pixel_share": same / total if total else float("nan")}


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
        return {"name": self.name, "delta": self.delta, "ci": self.ci,
                "per_class_delta": [{"class": c, "delta": d} for c, d in self.per_class_delta], "parity": self.parity}


@dataclass
class TaskCompareResult:
    task: str
    dataset: dict
    runs: list[TaskRun]
    comparisons: list[TaskComparison]
    settings: dict

    def failures(self, max_drop: float | None) -> list[str]:
        """Messages for each candidate that loses more than ``max_drop`` points of the primary metric."""
        from .harness import gate_failures

        return gate_failures(self.runs, self.comparisons, max_drop)

    def to_dict(self) -> dict:
        return {"task": self.task, "dataset": self.dataset, "settings": self.settings,
                "models": [{"name": r.name, **{k: v for k, v in r.info.items() if k != "labels"},
                            "metrics": r.metrics.to_dict(),
                            "latency_ms": {"p50": r.median_ms, "mean": float(np.mean(r.latency_ms))}} for r in self.runs],
                "comparisons": [c.to_dict() for c in self.comparisons]}


def dataset_info(dataset: TaskDataset) -> dict:
    return {"name": dataset.name, "format": dataset.format, "images": len(dataset), "sha256": dataset.sha256}


def compare_tasks(models: Sequence[tuple[str, Any]], dataset: TaskDataset, *, bootstrap: int = 200, seed: int = 0,
                  progress: bool = True, say: Callable[[str], None] | None = None) -> TaskCompareResult:
    """Evaluate every model on the same images; compare each candidate with the first, paired."""
    if len(models) < 2:
        raise EdgecvError("compare needs a reference and at least one candidate")
    tasks = {det.task for _, det in models}
    if len(tasks) > 1:
        raise EdgecvError(f"compare takes models of one task; these are {sorted(tasks)}")
    runs = [run_task_dataset(det, dataset, name, progress=progress) for name, det in models]
    ref = runs[0]
    if bootstrap:
        if say:
            say(f"paired bootstrap over {len(dataset)} images, {bootstrap} resamples, seed {seed}")
        cis = paired_bootstrap(ref, runs[1:], bootstrap, seed)
    else:
        cis = [{"low": float("nan"), "high": float("nan"), "mean": float("nan"), "n": 0, "seed": seed, "level": 0.95}
               for _ in runs[1:]]
    comps = []
    for run, ci in zip(runs[1:], cis):
        deltas = sorted(((k, run.metrics.per_class[k] - v) for k, v in ref.metrics.per_class.items()
                         if k in run.metrics.per_class), key=lambda kv: kv[1])
        comps.append(TaskComparison(run.name, run.metrics.primary - ref.metrics.primary, ci, deltas, parity(ref, run)))
    return TaskCompareResult(ref.task, dataset_info(dataset), runs, comps, {"bootstrap": bootstrap, "seed": seed})


# --- tables ---------------------------------------------------------------------------------------

def _pts(v: float) -> str:
    return "—" if v is None or np.isnan(v) else f"{v * 100:.2f}"


def metrics_table(runs: Sequence[TaskRun]) -> str:
    from .harness import _table

    if runs[0].task == "classify":
        head, keys = ("model", "top-1", "top-5", "p50 ms"), ("top1", "top5")
    else:
        head, keys = ("model", "mIoU", "pixel acc", "mean acc", "p50 ms"), ("miou", "pixel_acc", "mean_acc")
    return _table(head, [(r.name, *(_pts(r.metrics.stats[k]) for k in keys), f"{r.median_ms:.2f}") for r in runs])


def per_class_table(runs: Sequence[TaskRun]) -> str:
    from .harness import _table

    names = list(runs[0].metrics.per_class)
    return _table((f"class ({'accuracy' if runs[0].task == 'classify' else 'IoU'})", *(r.name for r in runs)),
                  [(n, *(_pts(r.metrics.per_class.get(n, np.nan)) for r in runs)) for n in names])


def compare_table(result: TaskCompareResult) -> str:
    """One row per candidate: the primary metric and its difference with the interval, the worst
    class, and parity with the reference's own predictions."""
    from .harness import _table

    ref = result.runs[0]
    what = ref.metrics.primary_name
    same = "same top-1" if result.task == "classify" else "same pixels"
    rows = [(ref.name, _pts(ref.metrics.primary), "reference", "", "", "", f"{ref.median_ms:.2f}")]
    for run, c in zip(result.runs[1:], result.comparisons):
        p = c.parity
        share = p.get("same_top1_share", p.get("same_pixel_share", float("nan")))
        worst = f"{c.per_class_delta[0][0]} {c.per_class_delta[0][1] * 100:+.2f}" if c.per_class_delta else "—"
        ci = "—" if np.isnan(c.ci["low"]) else f"[{c.ci['low'] * 100:+.2f}, {c.ci['high'] * 100:+.2f}]"
        rows.append((run.name, _pts(run.metrics.primary), f"{c.delta * 100:+.2f}", ci, worst,
                     "—" if np.isnan(share) else f"{share * 100:.2f}%", f"{run.median_ms:.2f}"))
    return _table(("model", what, "Δ points", "95% CI", "worst class Δ", same, "p50 ms"), rows)
