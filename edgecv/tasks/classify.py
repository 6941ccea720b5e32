"""Image classification: the shorter side resized and a centre crop on the host, a softmax in
the graph (``probs`` [B, C]), the top k picked on the host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import BundleError
from ..letterbox import CenterCrop, Letterbox
from ..results import Classifications
from ..schema import check_fields
from .base import Decoder, Task


def check_dense_output(m: dict, required: set[str], optional: set[str]) -> None:
    """The output section of a task whose graph gives dense tensors (a classifier's ``probs``
    [B, C], a segmenter's ``labels`` [B, H, W] and optional ``probs``)."""
    out = m["output"]
    check_fields(out, {"tensors": dict}, {"top_k": int, "coordinates": str, "contents": dict}, "output")
    have = set(out["tensors"])
    if (
        not required <= have
        or have - required - optional
        or not all(isinstance(v, str) for v in out["tensors"].values())
    ):
        raise BundleError(
            f"manifest: output.tensors of a bundle of task {m['task']} must name {sorted(required)}"
            f"{f' (and may name {sorted(optional)})' if optional else ''}, got {sorted(have)}"
        )
    if "top_k" in out and not 1 <= out["top_k"] <= len(m["classes"]):
        raise BundleError(f"manifest: output.top_k {out['top_k']} must be between 1 and the number of classes")
    unknown = set(out) - {"tensors", "top_k", "coordinates", "contents"}
    if unknown:
        raise BundleError(f"manifest: unknown fields {sorted(unknown)} in the output of a bundle of task {m['task']}")


class ClassifyDecoder(Decoder):
    def __init__(self, manifest: dict, top_k: int | None, probabilities: bool) -> None:
        names = tuple(manifest["classes"])
        self.names = names
        self.tensor = manifest["output"]["tensors"]["probs"]
        self.top_k = max(1, min(len(names), int(top_k if top_k is not None else manifest["output"].get("top_k", 5))))
        self.probabilities = probabilities

    def __call__(self, outputs: dict[str, np.ndarray], params: Sequence[Any], conf: float) -> list[Classifications]:
        probs = outputs[self.tensor]
        out = []
        for i in range(len(params)):
            p = probs[i].astype(np.float32, copy=False)
            top = np.argsort(-p, kind="stable")[: self.top_k]
            out.append(Classifications(top, p[top], self.names, p.copy() if self.probabilities else None))
        return out


class Classify(Task):
    name = "classify"
    placement = "crop"
    size_step = 1
    default_size = (224, 224)
    default_conf = 0.0
    metric = "top-1"
    evaluator = "classify_eval"
    result = "Classifications"

    def placer(self, manifest: dict) -> Letterbox | CenterCrop:
        inp = manifest["input"]
        return CenterCrop((inp["shape"][1], inp["shape"][2]), inp["crop"]["resize"])

    def input_section(self, size: tuple[int, int], pad_value: int, meta: dict) -> dict:
        resize = CenterCrop(size, meta.get("crop_resize")).resize  # default: torchvision's 256 -> 224
        return {"crop": {"size": list(size), "resize": resize, "center": True}}

    def describe_input(self, inp: dict) -> str:
        crop = inp["crop"]
        return f"shorter side to {crop['resize']}, centre crop {crop['size'][0]}x{crop['size'][1]}"

    def validate_input(self, m: dict) -> None:
        shape = m["input"]["shape"]
        crop = m["input"]["crop"]
        check_fields(crop, {"size": list, "resize": int}, {}, "input.crop")
        if crop["size"] != shape[1:3] or not max(shape[1:3]) <= crop["resize"] <= 16384:
            raise BundleError(f"manifest: input.crop {crop} must have the input's size and resize >= its sides")

    def validate_output(self, m: dict) -> None:
        check_dense_output(m, {"probs"}, set())

    def output_section(self, *, tensors: Sequence[str], num_classes: int, mode: str, nms: dict) -> dict:
        return {
            "tensors": {"probs": "probs"},
            "top_k": min(5, num_classes),
            "contents": {"probs": "softmax over the classes, [B, C]"},
        }

    def decoder(
        self, manifest: dict, placer: Letterbox | CenterCrop, *, top_k: int | None, probabilities: bool
    ) -> Decoder:
        return ClassifyDecoder(manifest, top_k, probabilities)

    def to_json(self, result: Classifications) -> Any:
        return result.to_list()

    def summary(self, result: Classifications, ms: float) -> list[str]:
        return [f"{result.label} ({ms:.1f} ms inference)"] + [
            f"  {d['name']:<16} {d['score']:.3f}" for d in result.to_list()
        ]

    def draw(self, image: np.ndarray, result: Classifications) -> np.ndarray:
        from ..draw import draw_classification

        return draw_classification(image, result)
