"""The evaluator of classifiers: an image-folder data set (one folder per class, named as the
class); top-1 and top-5 accuracy and per-class accuracy. Each image's contribution is the rank
of its true class among the model's predictions, so a bootstrap draw is a weighted count."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import taskeval as T
from .errors import DatasetError
from .images import IMAGE_SUFFIXES


def classification_metrics(ranks: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> T.TaskMetrics:
    """From the rank of the true class in each image's predictions (0 = top-1; k or more: not
    in the top k) and the true labels (model class indices)."""
    per = {}
    for k, n in enumerate(names):
        sel = labels == k
        if sel.any():
            per[n] = float((ranks[sel] == 0).mean())
    return T.TaskMetrics(
        "classify",
        {"top1": float((ranks < 1).mean()), "top5": float((ranks < 5).mean()), "images": float(len(ranks))},
        per,
        "top1",
    )


class ClassifyScorer(T.Scorer):
    task = "classify"
    columns = (("top-1", "top1"), ("top-5", "top5"))
    per_class_label = "accuracy"
    same_label, same_unit = "same top-1", "images"

    def load(
        self, data: str | os.PathLike, names: Sequence[str] | None, images: str | os.PathLike | None
    ) -> T.TaskDataset:
        """The root's sub-folders are the classes (in name order), their images the samples."""
        root = Path(data)
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise DatasetError(
                f"'{root}' has no class folders: a classification set holds one folder of images per class"
            )
        paths: list[Path] = []
        labels: list[int] = []
        for k, f in enumerate(folders):
            imgs = T.images_in(f)
            paths += imgs
            labels += [k] * len(imgs)
        if not paths:
            raise DatasetError(f"the class folders of '{root}' hold no images ({', '.join(IMAGE_SUFFIXES)})")
        digest = T.dataset_hash([f"{p.relative_to(root)}\t{k}" for p, k in zip(paths, labels)])
        return T.TaskDataset(
            "classify",
            root.name,
            root,
            tuple(paths),
            tuple(labels),
            tuple(f.name for f in folders),
            digest,
            "image-folder",
        )

    def start(self, det: Any, dataset: T.TaskDataset, to_model: np.ndarray) -> Any:
        return to_model

    def score(self, state: Any, img: np.ndarray, label: Any, result: Any, keep_maps: bool) -> tuple[Any, Any, Any]:
        truth = int(state[label])
        hit = np.flatnonzero(result.class_ids == truth)
        return (int(hit[0]) if hit.size else len(result.class_ids) + 100), result.top1, None

    def finish(
        self, det: Any, dataset: T.TaskDataset, to_model: np.ndarray, per: np.ndarray, info: dict
    ) -> T.TaskMetrics:
        labels = np.asarray([int(to_model[k]) for k in dataset.labels])
        if det.top_k < 5:
            info["note"] = f"top-5 counts the model's top {det.top_k} only"
        info["labels"] = labels
        return classification_metrics(per, labels, det.names)

    def metric_on(self, run: T.TaskRun, counts: np.ndarray) -> float:
        return float(np.dot(counts, run.per_image == 0) / counts.sum())

    def parity(self, ref: T.TaskRun, cand: T.TaskRun) -> dict:
        same = ref.top1 == cand.top1
        return {
            "same_top1": int(same.sum()),
            "images": int(len(same)),
            "same_top1_share": float(same.mean()),
            "differing_images": [int(i) for i in np.flatnonzero(~same)[:20]],
        }

    def share(self, parity: dict) -> float:
        return float(parity.get("same_top1_share", float("nan")))


SCORER = ClassifyScorer()
