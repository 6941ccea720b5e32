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
        tracker_ids: optional int64 [N] track identities, set by a tracker
            (:mod:`edgecv.tracking`): the same object keeps its id from frame to frame.

    Arrays are read-only; slicing and filtering return new objects.
    :meth:`to_supervision` and :meth:`from_supervision` convert to and from
    ``supervision.Detections`` (the ``[track]`` extra), losslessly.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...] = field(default=())
    masks: np.ndarray | None = None
    tracker_ids: np.ndarray | None = None

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
        tracker_ids = self.tracker_ids
        if tracker_ids is not None:
            tracker_ids = np.asarray(tracker_ids).reshape(-1)
            if len(tracker_ids) != n:
                raise ValueError(f"Detections: tracker_ids must be [N] with N={n}, got {len(tracker_ids)}")
            if tracker_ids.size and not np.issubdtype(tracker_ids.dtype, np.integer):
                raise ValueError(f"Detections: tracker_ids must be integers, got {tracker_ids.dtype}")
            tracker_ids = frozen(tracker_ids.astype(np.int64))
        object.__setattr__(self, "xyxy", frozen(xyxy))
        object.__setattr__(self, "scores", frozen(scores))
        object.__setattr__(self, "class_ids", frozen(class_ids))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "tracker_ids", tracker_ids)

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
            None if self.tracker_ids is None else self.tracker_ids[index],
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
        """JSON-ready list of {"box": [x1, y1, x2, y2], "score", "class_id", "label"}, with
        "tracker_id" when the objects are tracked."""
        labels = self.labels
        out = [
            {"box": [round(float(v), 2) for v in b], "score": round(s, 5), "class_id": c, "label": labels[i]}
            for i, (b, s, c) in enumerate(self)
        ]
        if self.tracker_ids is not None:
            for row, tid in zip(out, self.tracker_ids.tolist()):
                row["tracker_id"] = tid
        return out

    def to_supervision(self) -> Any:
        """These objects as a ``supervision.Detections`` (xyxy, confidence, class_id, mask,
        tracker_id, and ``data["class_name"]`` for supervision's label annotators), with
        writeable copies of the arrays. Needs supervision (the ``[track]`` extra)."""
        sv = _supervision()
        return sv.Detections(
            xyxy=self.xyxy.copy(),
            confidence=self.scores.copy(),
            class_id=self.class_ids.copy(),
            mask=None if self.masks is None else self.masks.copy(),
            tracker_id=None if self.tracker_ids is None else self.tracker_ids.copy(),
            data={"class_name": np.array(self.labels, dtype=str)},
        )

    @classmethod
    def from_supervision(cls, detections: Any, names: Sequence[str] = ()) -> Detections:
        """A ``supervision.Detections`` as edgecv's: ``confidence`` None is 1.0 for every object
        (as the ``trackers`` package reads it); a ``CompactMask`` is made dense. Needs
        supervision.

        Args:
            detections: the supervision detections; ``class_id`` must be set.
            names: the model's class names.

        Raises:
            ValueError: ``class_id`` is missing, or the arrays disagree (see the class).
        """
        n = len(detections)
        if detections.class_id is None and n:
            raise ValueError("Detections.from_supervision: class_id is None; set the class of every object")
        mask = detections.mask
        if mask is not None and not isinstance(mask, np.ndarray):
            mask = mask.to_dense() if hasattr(mask, "to_dense") else np.asarray(mask)
        return cls(
            np.asarray(detections.xyxy, np.float32).reshape(-1, 4),
            np.ones(n, np.float32) if detections.confidence is None else detections.confidence,
            np.zeros(0, np.int64) if detections.class_id is None else detections.class_id,
            tuple(names),
            mask,
            detections.tracker_id,
        )

    def __repr__(self) -> str:
        tracked = "" if self.tracker_ids is None else f", tracks={sorted(set(self.tracker_ids.tolist()))}"
        return f"Detections(n={len(self)}, classes={sorted(set(self.labels))}{tracked})"


def _supervision() -> Any:
    """supervision, imported where it is used (a device's minimal install does not have it)."""
    try:
        import supervision
    except ImportError as e:
        from .errors import BackendUnavailableError

        raise BackendUnavailableError(
            f"supervision is not installed ({e}); install edgecv's [track] extra: pip install 'edgecv[track]'"
        ) from e
    return supervision
