"""Detections: the value every runtime returns for one image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def frozen(a: np.ndarray) -> np.ndarray:
    """``a`` as a contiguous read-only array (a copy where it was writeable): result types are frozen."""
    a = np.ascontiguousarray(a)
    if a.flags.writeable:
        a = a.copy() if a.base is not None else a
        a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Detections:
    """Objects found in one image.

    Attributes:
        xyxy: float32 [N, 4] boxes (x1, y1, x2, y2) in the original image's pixels.
        scores: float32 [N] confidences in [0, 1].
        class_ids: int64 [N] indices into ``names``.
        names: the model's class names (all of them, not one per box).
        masks: optional bool [N, H, W] instance masks in the original image's pixels.

    Arrays are read-only; slicing and filtering return new objects.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...] = field(default=())
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = (
            np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
            if np.size(self.xyxy)
            else np.zeros((0, 4), np.float32)
        )
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids).reshape(-1)
        n = len(xyxy)
        if len(scores) != n or len(class_ids) != n:
            raise ValueError(
                f"Detections: xyxy has {n} rows but scores has {len(scores)} and class_ids {len(class_ids)}"
            )
        if class_ids.size and not np.issubdtype(class_ids.dtype, np.integer):
            if not np.all(np.equal(np.mod(class_ids, 1), 0)):
                raise ValueError("Detections: class_ids must be whole numbers")
        class_ids = class_ids.astype(np.int64)
        names = tuple(str(s) for s in self.names)
        if names and n and (class_ids.min() < 0 or class_ids.max() >= len(names)):
            raise ValueError(f"Detections: class id out of range for {len(names)} class names")
        masks = self.masks
        if masks is not None:
            masks = np.asarray(masks, dtype=bool)
            if masks.ndim != 3 or len(masks) != n:
                raise ValueError(f"Detections: masks must be [N, H, W] with N={n}, got {masks.shape}")
            masks = frozen(masks)
        object.__setattr__(self, "xyxy", frozen(xyxy))
        object.__setattr__(self, "scores", frozen(scores))
        object.__setattr__(self, "class_ids", frozen(class_ids))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "masks", masks)

    @classmethod
    def empty(cls, names: Sequence[str] = ()) -> Detections:
        """No objects."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), tuple(names))

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: Any) -> Detections:
        """Select by int, slice, index array or boolean mask; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.scores[index],
            self.class_ids[index],
            self.names,
            None if self.masks is None else self.masks[index],
        )

    def __iter__(self):
        """Yield (xyxy [4], score, class_id) per object."""
        for i in range(len(self)):
            yield self.xyxy[i], float(self.scores[i]), int(self.class_ids[i])

    @property
    def labels(self) -> list[str]:
        """The class name of each object (its id as text when names are unknown)."""
        return [self.names[c] if c < len(self.names) else str(c) for c in self.class_ids.tolist()]

    @property
    def area(self) -> np.ndarray:
        """Box areas [N] in pixels."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def filter(self, min_score: float) -> Detections:
        """The objects whose score is at least ``min_score``."""
        return self[self.scores >= min_score]

    def to_dict(self) -> list[dict]:
        """JSON-ready list of {"box": [x1, y1, x2, y2], "score", "class_id", "label"}."""
        labels = self.labels
        return [
            {"box": [round(float(v), 2) for v in b], "score": round(s, 5), "class_id": c, "label": labels[i]}
            for i, (b, s, c) in enumerate(self)
        ]

    def __repr__(self) -> str:
        return f"Detections(n={len(self)}, classes={sorted(set(self.labels))})"
