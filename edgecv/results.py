"""What a classifier and a semantic segmenter return for one image, beside
:class:`~edgecv.detections.Detections`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detections import frozen


@dataclass(frozen=True)
class Classifications:
    """The top-k classes of one image, best first.

    Attributes:
        class_ids: int64 [k] indices into ``names``.
        scores: float32 [k] probabilities (the graph's softmax), descending.
        names: the model's class names (all of them).
        probabilities: optional float32 [C], every class's probability.
    """

    class_ids: np.ndarray
    scores: np.ndarray
    names: tuple[str, ...] = field(default=())
    probabilities: np.ndarray | None = None

    def __post_init__(self) -> None:
        ids = np.asarray(self.class_ids).reshape(-1).astype(np.int64)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(ids) != len(scores):
            raise ValueError(f"Classifications: {len(ids)} class ids but {len(scores)} scores")
        names = tuple(str(n) for n in self.names)
        if names and len(ids) and (ids.min() < 0 or ids.max() >= len(names)):
            raise ValueError(f"Classifications: class id out of range for {len(names)} class names")
        object.__setattr__(self, "class_ids", frozen(ids))
        object.__setattr__(self, "scores", frozen(scores))
        object.__setattr__(self, "names", names)
        if self.probabilities is not None:
            object.__setattr__(
                self, "probabilities", frozen(np.asarray(self.probabilities, dtype=np.float32).reshape(-1))
            )

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def top1(self) -> int:
        """The best class id."""
        return int(self.class_ids[0])

    @property
    def label(self) -> str:
        """The best class's name."""
        return self.names[self.top1] if self.names else str(self.top1)

    def to_list(self) -> list[dict]:
        return [
            {"class_id": int(c), "name": self.names[c] if self.names else str(c), "score": float(s)}
            for c, s in zip(self.class_ids, self.scores)
        ]

    def __repr__(self) -> str:
        top = ", ".join(f"{d['name']} {d['score']:.3f}" for d in self.to_list()[:5])
        return f"Classifications({top})"


@dataclass(frozen=True)
class SegmentationMap:
    """Per-pixel classes of one image, in the original image's pixels.

    Attributes:
        class_map: [H, W] class ids (int32), indices into ``names``.
        names: the model's class names.
        probabilities: optional float32 [C, H, W] per-class probabilities (when the bundle was
            exported with them and the runtime was asked for them).
    """

    class_map: np.ndarray
    names: tuple[str, ...] = field(default=())
    probabilities: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = np.asarray(self.class_map)
        if m.ndim != 2:
            raise ValueError(f"SegmentationMap: class_map must be [H, W], got {m.shape}")
        m = m.astype(np.int32, copy=False)
        names = tuple(str(n) for n in self.names)
        if names and m.size and (m.min() < 0 or m.max() >= len(names)):
            raise ValueError(f"SegmentationMap: class id out of range for {len(names)} class names")
        object.__setattr__(self, "class_map", frozen(m))
        object.__setattr__(self, "names", names)
        if self.probabilities is not None:
            p = np.asarray(self.probabilities, dtype=np.float32)
            if p.ndim != 3 or p.shape[1:] != m.shape:
                raise ValueError(
                    f"SegmentationMap: probabilities must be [C, {m.shape[0]}, {m.shape[1]}], got {p.shape}"
                )
            object.__setattr__(self, "probabilities", frozen(p))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.class_map.shape)

    def mask(self, class_id: int) -> np.ndarray:
        """bool [H, W]: the pixels of one class."""
        return self.class_map == int(class_id)

    def areas(self) -> dict[str, int]:
        """Pixels per class present in the image, by name."""
        counts = np.bincount(self.class_map.ravel(), minlength=len(self.names))
        return {(self.names[i] if self.names else str(i)): int(c) for i, c in enumerate(counts) if c}

    def __repr__(self) -> str:
        return f"SegmentationMap({self.shape[0]}x{self.shape[1]}, {self.areas()})"
