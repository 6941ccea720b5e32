"""What every task provides: :class:`Task`, and :class:`Decoder`, the per-model state that
turns a batch's outputs into results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..letterbox import CenterCrop, Letterbox


class Decoder:
    """Turns a batch's fixed-size outputs into one result per image, for one loaded model."""

    def __call__(self, outputs: dict[str, np.ndarray], params: Sequence[Any], conf: float) -> list[Any]:
        raise NotImplementedError


class Task:
    """A task: detect, classify or segment. Stateless; one instance each, in the registry.

    Attributes:
        name: the manifest's ``task``.
        placement: the key of ``input`` that says how an image is placed into the input
            (``letterbox`` or ``crop``).
        size_step: what an input side must be a multiple of (a detector's strides, a
            segmenter's down- and up-sampling, 1 for a classifier that pools globally).
        default_size: the input size when neither the user nor the source says one.
        default_conf: the runtime's score floor when the manifest gives none.
        metric: the name of the metric its accuracy gate compares (for messages).
        gate_key: the name of the gate's limit in a validation record.
        evaluator: the module (under ``edgecv``) with ``load_dataset``, ``evaluate``, ``compare``
            and the tables for this task; imported only when a data set is evaluated.
        report: the module (under ``edgecv``) whose ``write_report`` writes ``compare --report``
            for this task; '' where there is none.
        result: the name of the result type it returns (for docs and messages).
    """

    name: ClassVar[str] = ""
    placement: ClassVar[str] = "letterbox"
    size_step: ClassVar[int] = 1
    default_size: ClassVar[tuple[int, int]] = (640, 640)
    default_conf: ClassVar[float] = 0.0
    metric: ClassVar[str] = ""
    gate_key: ClassVar[str] = "max_drop"
    evaluator: ClassVar[str] = ""
    report: ClassVar[str] = ""
    result: ClassVar[str] = ""

    # -- the input ---------------------------------------------------------------------------

    def placer(self, manifest: dict) -> Letterbox | CenterCrop:
        """The object that places an image into this model's input, and maps results back."""
        size = (manifest["input"]["shape"][1], manifest["input"]["shape"][2])
        lb = manifest["input"]["letterbox"]
        return Letterbox(size, pad_value=lb.get("pad_value", 114), scaleup=lb.get("scaleup", True))

    def input_section(self, size: tuple[int, int], pad_value: int, meta: dict) -> dict:
        """The placement part of a manifest's ``input`` (its ``letterbox`` or ``crop``)."""
        return {"letterbox": {"size": list(size), "pad_value": pad_value, "center": True, "scaleup": True}}

    def describe_input(self, inp: dict) -> str:
        """The placement in words, for ``edgecv inspect``."""
        return f"letterbox pad {inp['letterbox']['pad_value']}"

    def check_size(self, h: int, w: int) -> str:
        """'' when (h, w) is a valid input size, else what is wrong."""
        if not (32 <= h <= 4096 and 32 <= w <= 4096) or h % self.size_step or w % self.size_step:
            what = f"multiples of {self.size_step} " if self.size_step > 1 else ""
            return f"image size {h}x{w} must be {what}between 32 and 4096 for the {self.name} task"
        return ""

    # -- the manifest --------------------------------------------------------------------------

    def output_section(self, *, tensors: Sequence[str], num_classes: int, mode: str, nms: dict) -> dict:
        """The manifest's ``output`` for a graph with these output ``tensors`` (the export side
        knows them), ``num_classes`` classes, and, for detectors, its NMS ``mode`` and settings."""
        raise NotImplementedError

    def validate_input(self, m: dict) -> None:
        """Check the task's part of ``input`` (beyond the common fields)."""

    def validate_output(self, m: dict) -> None:
        """Check ``output``; raises :class:`BundleError`."""
        raise NotImplementedError

    # -- the runtime ---------------------------------------------------------------------------

    def check_options(self, manifest: dict, probabilities: bool) -> None:
        """Refuse load options the bundle cannot honour (:class:`EdgecvError`)."""

    def decoder(
        self, manifest: dict, placer: Letterbox | CenterCrop, *, top_k: int | None, probabilities: bool
    ) -> Decoder:
        """The decoder of one loaded model."""
        raise NotImplementedError

    # -- people ------------------------------------------------------------------------------

    def to_json(self, result: Any) -> Any:
        """The result as plain JSON (``edgecv predict --json``)."""
        raise NotImplementedError

    def summary(self, result: Any, ms: float) -> list[str]:
        """Lines for ``edgecv predict``: a headline and one line per item."""
        raise NotImplementedError

    def draw(self, image: np.ndarray, result: Any) -> np.ndarray:
        """A copy of ``image`` with the result drawn on it."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<task {self.name}>"
