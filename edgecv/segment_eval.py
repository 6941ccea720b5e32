"""The evaluator of segmenters: image + mask pairs (``images/NAME.png|jpg`` and
``masks/NAME.png``; a mask's pixel values are class ids in ``classes.txt`` order, 255 is
ignored); mean IoU over the classes present, pixel accuracy, per-class IoU. Masks are compared
in the original image's pixels, so the runtime's letterbox and its inverse are part of what is
measured. Each image's contribution is its confusion matrix, so a bootstrap draw is a
weighted sum."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import taskeval as T
from .errors import DatasetError

IGNORE = 255  # mask value of pixels left out of the metrics


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A mask PNG as uint8 class ids, checked against its image's size."""
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise DatasetError(f"mask '{path}' could not be read as a PNG")
    if m.ndim == 3:
        m = m[:, :, 0]
    if m.shape != tuple(shape):
        raise DatasetError(f"mask '{path}' is {m.shape[1]}x{m.shape[0]} but its image is {shape[1]}x{shape[0]}")
    return m


def confusion(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] pixel counts (true class, predicted class); ``gt`` of :data:`IGNORE` (or out of range) left out."""
    valid = gt < num_classes
    idx = gt[valid].astype(np.int64) * num_classes + pred[valid].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(conf: np.ndarray, names: Sequence[str]) -> T.TaskMetrics:
    """mIoU over the classes that occur (in the truth or the prediction), pixel accuracy, mean
    class accuracy and per-class IoU from a summed confusion matrix."""
    inter = np.diag(conf).astype(np.float64)
    gt, pred = conf.sum(1).astype(np.float64), conf.sum(0).astype(np.float64)
    union = gt + pred - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    acc = np.where(gt > 0, inter / np.maximum(gt, 1), np.nan)
    total = conf.sum()
    stats = {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_acc": float(inter.sum() / total) if total else float("nan"),
        "mean_acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
    }
    return T.TaskMetrics("segment", stats, {n: float(v) for n, v in zip(names, iou) if np.isfinite(v)}, "miou")


class SegmentScorer(T.Scorer):
    task = "segment"
    columns = (("mIoU", "miou"), ("pixel acc", "pixel_acc"), ("mean acc", "mean_acc"))
    per_class_label = "IoU"
    same_label, same_unit = "same pixels", "pixels"

    def load(
        self, data: str | os.PathLike, names: Sequence[str] | None, images: str | os.PathLike | None
    ) -> T.TaskDataset:
        """``data`` holds ``images/`` and ``masks/`` (and ``classes.txt``), or is the masks folder
        with ``images`` given; ``names`` are the classes in mask-value order."""
        root = Path(data)
        masks_dir = root / "masks" if (root / "masks").is_dir() else root
        images_dir = Path(images) if images else root / "images"
        if not images_dir.is_dir():
            raise DatasetError(
                f"segmentation data '{root}': no images folder at '{images_dir}' (expected images/ and "
                "masks/ side by side, or --images)"
            )
        if names is None:
            for cand in (root / "classes.txt", masks_dir / "classes.txt"):
                if cand.is_file():
                    names = [ln.strip() for ln in cand.read_text().splitlines() if ln.strip()]
                    break
        if not names:
            raise DatasetError(
                f"segmentation data '{root}' has no classes.txt: give the class names in mask-value "
                "order (--data-names)"
            )
        masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() == ".png"}
        paths = T.images_in(images_dir)
        missing = [p.name for p in paths if p.stem not in masks]
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) of '{images_dir}' have no mask in '{masks_dir}' (a PNG of the "
                f"same name), e.g. {', '.join(missing[:3])}"
            )
        if not paths:
            raise DatasetError(f"'{images_dir}' holds no images")
        labels = [masks[p.stem] for p in paths]
        digest = T.dataset_hash([f"{p.name}\t{m.stat().st_size}" for p, m in zip(paths, labels)] + list(names))
        return T.TaskDataset(
            "segment", root.name, images_dir, tuple(paths), tuple(labels), tuple(names), digest, "image-mask"
        )

    def start(self, det: Any, dataset: T.TaskDataset, to_model: np.ndarray) -> Any:
        c = len(det.names)  # mask value (uint8) -> model class; c (IGNORE, unknown values): left out by confusion()
        lut = np.full(256, c, dtype=np.int64)
        lut[: len(to_model)] = to_model[:256]
        lut[IGNORE] = c
        return lut, c

    def truth(self, img: np.ndarray, label: Any) -> Any:
        return read_mask(label, img.shape[:2])

    def score(self, state: Any, img: np.ndarray, label: Any, result: Any, keep_maps: bool) -> tuple[Any, Any, Any]:
        lut, c = state
        kept = result.class_map.astype(np.int16 if c < 32768 else np.int32) if keep_maps else None
        return confusion(lut[label], result.class_map, c), None, kept

    def finish(
        self, det: Any, dataset: T.TaskDataset, to_model: np.ndarray, per: np.ndarray, info: dict
    ) -> T.TaskMetrics:
        return segmentation_metrics(per.sum(0), det.names)

    def metric_on(self, run: T.TaskRun, counts: np.ndarray) -> float:
        return segmentation_metrics(np.tensordot(counts, run.per_image, axes=1), run.names).primary

    def parity(self, ref: T.TaskRun, cand: T.TaskRun) -> dict:
        if ref.maps is None or cand.maps is None:
            return {}
        same = sum(int((a == b).sum()) for a, b in zip(ref.maps, cand.maps))
        total = sum(a.size for a in ref.maps)
        return {"same_pixels": same, "pixels": total, "same_pixel_share": same / total if total else float("nan")}

    def share(self, parity: dict) -> float:
        return float(parity.get("same_pixel_share", float("nan")))


SCORER = SegmentScorer()
