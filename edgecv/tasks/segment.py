"""Semantic segmentation: a letterbox on the host, an argmax in the graph (``labels`` int32
[B, H, W] in input pixels, optionally the softmax ``probs``); the host cuts the padding and
resizes the map to the original image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EdgecvError
from ..letterbox import CenterCrop, Letterbox, LetterboxParams, unletterbox
from ..results import SegmentationMap
from .base import Decoder, Task
from .classify import check_dense_output


class SegmentDecoder(Decoder):
    def __init__(self, manifest: dict, probabilities: bool) -> None:
        self.names = tuple(manifest["classes"])
        self.tensors = dict(manifest["output"]["tensors"])
        self.probabilities = probabilities

    def __call__(
        self, outputs: dict[str, np.ndarray], params: Sequence[LetterboxParams], conf: float
    ) -> list[SegmentationMap]:
        labels = outputs[self.tensors["labels"]]
        probs = outputs[self.tensors["probs"]] if self.probabilities else None  # refused at load if not exported
        out = []
        for i, p in enumerate(params):
            cls = unletterbox(labels[i], p, nearest=True)
            prob = unletterbox(probs[i], p, nearest=False) if probs is not None else None
            out.append(SegmentationMap(cls, self.names, prob))
        return out


class Segment(Task):
    name = "segment"
    placement = "letterbox"
    size_step = 8
    default_size = (512, 512)
    default_conf = 0.0
    metric = "mIoU"
    evaluator = "segment_eval"
    result = "SegmentationMap"

    def validate_output(self, m: dict) -> None:
        check_dense_output(m, {"labels"}, {"probs"})

    def output_section(self, *, tensors: Sequence[str], num_classes: int, mode: str, nms: dict) -> dict:
        return {
            "tensors": {n: n for n in tensors},
            "coordinates": "input_pixels",
            "contents": {
                "labels": "argmax class id per input pixel, int32 [B, H, W]",
                **({"probs": "softmax per pixel, [B, C, H, W]"} if "probs" in tensors else {}),
            },
        }

    def check_options(self, manifest: dict, probabilities: bool) -> None:
        if probabilities and "probs" not in manifest["output"]["tensors"]:
            raise EdgecvError(
                f"this segmenter ({manifest['name']}) was exported without probabilities: export it with "
                "--probabilities (Python: probabilities=True), or load it without them"
            )

    def decoder(
        self, manifest: dict, placer: Letterbox | CenterCrop, *, top_k: int | None, probabilities: bool
    ) -> Decoder:
        return SegmentDecoder(manifest, probabilities)

    def to_json(self, result: SegmentationMap) -> Any:
        return {"shape": list(result.shape), "pixels": result.areas()}

    def summary(self, result: SegmentationMap, ms: float) -> list[str]:
        h, w = result.shape
        return [f"{w}x{h} ({ms:.1f} ms inference)"] + [
            f"  {n:<16} {c:>9d} px  {c / (h * w) * 100:5.1f}%" for n, c in result.areas().items()
        ]

    def draw(self, image: np.ndarray, result: SegmentationMap) -> np.ndarray:
        from ..draw import draw_segmentation

        return draw_segmentation(image, result)
