"""What the exporter needs to know about a source model beyond its weights:
the layout of its raw output and how its input is normalised."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import SourceError

LAYOUTS = ("bcn", "bnc")
BOX_FORMATS = ("cxcywh", "xyxy")


@dataclass(frozen=True)
class OutputSpec:
    """Layout of a YOLO-style raw prediction tensor.

    Attributes:
        num_classes: C.
        layout: ``"bcn"`` for [B, 4 (+1) + C, N] (YOLOv8 / YOLO11), ``"bnc"`` for [B, N, 4 (+1) + C] (YOLOv5).
        box_format: ``"cxcywh"`` or ``"xyxy"``, in input pixels.
        objectness: a score column after the box that multiplies the class scores (YOLOv3/v5).
        apply_sigmoid: the scores are logits; the graph applies a sigmoid.
    """

    num_classes: int
    layout: str = "bcn"
    box_format: str = "cxcywh"
    objectness: bool = False
    apply_sigmoid: bool = False

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise SourceError(f"output spec: num_classes must be at least 1, got {self.num_classes}")
        if self.layout not in LAYOUTS:
            raise SourceError(f"output spec: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.box_format not in BOX_FORMATS:
            raise SourceError(f"output spec: box_format must be one of {BOX_FORMATS}, got {self.box_format!r}")

    @property
    def channels(self) -> int:
        """Values per candidate: 4 box values, the objectness if any, C scores."""
        return 4 + int(self.objectness) + self.num_classes

    def check_shape(self, shape: tuple[int | str | None, ...]) -> int:
        """Check a raw output shape against the spec; return the number of candidates N.

        Raises:
            SourceError: the shape does not have the layout this spec describes.
        """
        if len(shape) != 3:
            raise SourceError(
                f"model output has shape {list(shape)}; the spec expects a rank-3 tensor "
                f"({'[B, 4+C, N]' if self.layout == 'bcn' else '[B, N, 4+C]'})"
            )
        ch, n = (shape[1], shape[2]) if self.layout == "bcn" else (shape[2], shape[1])
        if isinstance(ch, int) and ch != self.channels:
            other = shape[2] if self.layout == "bcn" else shape[1]
            hint = " (the other layout would fit: set layout)" if other == self.channels else ""
            raise SourceError(
                f"model output has shape {list(shape)}, but the spec (layout {self.layout}, {self.num_classes} class{'es' * (self.num_classes != 1)}"
                f"{', objectness' if self.objectness else ''}) expects {self.channels} values per candidate{hint}"
            )
        if not isinstance(n, int):
            raise SourceError(f"model output shape {list(shape)}: the number of candidates must be static")
        return n

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class InputSpec:
    """How the source model expects its float NCHW input: ``(x * scale - mean) / std``, in ``color`` order."""

    scale: float = 1 / 255
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    color: str = "RGB"
    pad_value: int = 114

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


@dataclass(frozen=True)
class NmsSpec:
    """NMS baked into the exported graph (``mode="nms"``) or run on the host (``mode="raw"``)."""

    score_threshold: float = 0.001
    iou_threshold: float = 0.5
    max_detections: int = 100
    class_aware: bool = True

    def __post_init__(self) -> None:
        from ..errors import ExportError

        if (
            not 0 <= self.score_threshold < 1
            or not 0 < self.iou_threshold <= 1
            or not 1 <= self.max_detections <= 10000
        ):
            raise ExportError(
                f"NMS settings out of range: {self}; need 0 <= score < 1, 0 < iou <= 1, 1 <= max_det <= 10000"
            )

    def to_dict(self) -> dict:
        return asdict(self)
