"""Object detection (and instance segmentation, a detector with masks): boxes in the original
image's pixels, after NMS in the graph (``mode: nms``) or on the host (``mode: raw``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..detections import Detections
from ..errors import BundleError
from ..letterbox import CenterCrop, Letterbox, LetterboxParams
from ..masks import paste
from ..nms import nms
from ..schema import check_fields
from .base import Decoder, Task

_OUTPUT = {"mode": str, "tensors": dict, "box_format": str, "nms": dict}
_OUTPUT_OPTIONAL = {"default_conf": (int, float), "coordinates": str, "masks": dict}
_NMS = {"score_threshold": (int, float), "iou_threshold": (int, float), "max_detections": int, "class_aware": bool}


class DetectDecoder(Decoder):
    def __init__(self, manifest: dict, placer: Letterbox) -> None:
        out = manifest["output"]
        self.names = tuple(manifest["classes"])
        self.tensors = dict(out["tensors"])
        self.mode = out["mode"]
        self.nms = dict(out.get("nms", {}))
        self.mask_threshold = float(out["masks"]["threshold"]) if out.get("masks") else None
        self.placer = placer

    def __call__(
        self, outputs: dict[str, np.ndarray], params: Sequence[LetterboxParams], conf: float
    ) -> list[Detections]:
        results = []
        t = self.tensors
        for i, p in enumerate(params):
            if self.mode == "nms":
                n = int(outputs[t["num_dets"]][i])
                boxes = outputs[t["boxes"]][i, :n]
                scores = outputs[t["scores"]][i, :n]
                labels = outputs[t["labels"]][i, :n]
            else:
                s = self.nms
                n = 0
                boxes, scores, labels = nms(
                    outputs[t["boxes"]][i],
                    outputs[t["scores"]][i],
                    s["iou_threshold"],
                    s["score_threshold"],
                    s["max_detections"],
                    s["class_aware"],
                )
            keep = (scores >= conf) & np.isfinite(scores) & np.isfinite(boxes).all(1)
            boxes = self.placer.inverse(boxes[keep], p)
            scores, labels = scores[keep], labels[keep]
            nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # boxes wholly in the padding
            masks = None
            if self.mask_threshold is not None:  # pasted on the host, in the original image's pixels
                probs = outputs[t["masks"]][i, :n][keep][nonempty]
                masks = paste(probs, boxes[nonempty], p.orig_shape, self.mask_threshold)
            results.append(
                Detections(boxes[nonempty], scores[nonempty], labels[nonempty].astype(np.int64), self.names, masks)
            )
        return results


class Detect(Task):
    name = "detect"
    placement = "letterbox"
    size_step = 32
    default_size = (640, 640)
    default_conf = 0.25
    metric = "mAP50-95"
    gate_key = "max_map_drop"
    evaluator = "harness"
    report = "report"
    result = "Detections"

    def validate_output(self, m: dict) -> None:
        out = m["output"]
        check_fields(out, _OUTPUT, _OUTPUT_OPTIONAL, "output")
        if out["mode"] not in ("nms", "raw"):
            raise BundleError(f"manifest: output.mode '{out['mode']}' is not 'nms' or 'raw'")
        masks = out.get("masks")
        if masks is not None:
            check_fields(masks, {"tensor": str, "threshold": (int, float)}, {"paste": str}, "output.masks")
            if masks["tensor"] not in out["tensors"] or not 0 < masks["threshold"] < 1:
                raise BundleError(
                    "manifest: output.masks must name one of output.tensors and have a threshold in (0, 1)"
                )
        check_fields(out["nms"], _NMS, {"score_input": str}, "output.nms")

    def output_section(self, *, tensors: Sequence[str], num_classes: int, mode: str, nms: dict) -> dict:
        """A detector's ``output``: the graph's tensors, the NMS it runs (or the host runs) and,
        with masks, how they are pasted."""
        return {
            "mode": mode,
            "tensors": {n: n for n in tensors},
            "box_format": "xyxy",
            "coordinates": "input_pixels",
            "nms": {**nms, "where": "graph" if mode == "nms" else "host"},
            "default_conf": self.default_conf,
            **(
                {
                    "masks": {
                        "tensor": "masks",
                        "contents": "probabilities of each kept box's mask, in its box",
                        "paste": "host",
                        "threshold": 0.5,
                    }
                }
                if "masks" in tensors
                else {}
            ),
        }

    def decoder(
        self, manifest: dict, placer: Letterbox | CenterCrop, *, top_k: int | None, probabilities: bool
    ) -> Decoder:
        assert isinstance(placer, Letterbox), "a detector's input is letterboxed (Task.placer)"
        return DetectDecoder(manifest, placer)

    def to_json(self, result: Detections) -> Any:
        return result.to_dict()

    def summary(self, result: Detections, ms: float) -> list[str]:
        return [f"{len(result)} {'object' if len(result) == 1 else 'objects'} ({ms:.1f} ms inference)"] + [
            f"  {d['label']:<16} {d['score']:.3f}  [{', '.join(f'{v:.1f}' for v in d['box'])}]"
            for d in result.to_dict()
        ]

    def draw(self, image: np.ndarray, result: Detections) -> np.ndarray:
        from ..draw import draw_detections

        return draw_detections(image, result)
