"""torchvision's detection models as edgecv sources.

A torchvision detector resizes and normalises its input itself and ends in its own per-level
top-k and NMS, which export poorly and differ from one family to the next. edgecv keeps the
network and the family's box decoding, and replaces the rest with its own contract: the
runtime's letterbox (the model sees the bundle's fixed input size, so torchvision's resize is
a no-op and its anchors are constants) and edgecv's NMS over every candidate.

Single-stage families (RetinaNet, FCOS, SSD, SSDlite) become a raw-prediction module
``[B, N, 4 + C]``: boxes xyxy in input pixels, clipped to the input, then class scores as
torchvision computes them (RetinaNet: sigmoid; FCOS: sqrt(sigmoid(class) * sigmoid(centerness));
SSD: softmax without the background column). Class ``i`` of the bundle is torchvision's label
``i`` for RetinaNet and FCOS, ``i + 1`` for SSD (whose label 0 is the background).

Two-stage families (Faster R-CNN, Mask R-CNN) keep the RPN (with its proposal top-k and NMS)
and the RoI heads in the graph, for batch 1 (:class:`TwoStage`); each (proposal, class) pair is
a candidate. Mask R-CNN's mask head runs in the graph on the boxes edgecv's NMS keeps
(:class:`MaskTwoStage`); pasting the masks into the image runs on the host (:mod:`edgecv.masks`).
Class ``i`` is torchvision's label ``i + 1``.

torchvision ships no type information, and ``nn.Module`` types a submodule read by name as
``Tensor | Module``: a torchvision detector and the parts of it read by name are ``Any`` here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, cast

import torch
from torch import nn

from ..errors import SourceError
from .spec import InputSpec, OutputSpec

#: Constructors a state dict can be loaded into (``--arch``), by family.
SINGLE_STAGE = {
    "retinanet_resnet50_fpn": "retinanet",
    "retinanet_resnet50_fpn_v2": "retinanet",
    "fcos_resnet50_fpn": "fcos",
    "ssd300_vgg16": "ssd",
    "ssdlite320_mobilenet_v3_large": "ssd",
}
TWO_STAGE = {
    "fasterrcnn_resnet50_fpn": "fasterrcnn",
    "fasterrcnn_resnet50_fpn_v2": "fasterrcnn",
    "fasterrcnn_mobilenet_v3_large_fpn": "fasterrcnn",
    "fasterrcnn_mobilenet_v3_large_320_fpn": "fasterrcnn",
    "maskrcnn_resnet50_fpn": "maskrcnn",
    "maskrcnn_resnet50_fpn_v2": "maskrcnn",
}
CONSTRUCTORS = {**SINGLE_STAGE, **TWO_STAGE}
#: families whose label 0 is the background, which edgecv drops
BACKGROUND = ("ssd", "fasterrcnn", "maskrcnn")


def family(module: Any) -> str | None:
    """``retinanet``, ``fcos``, ``ssd``, ``maskrcnn`` or ``fasterrcnn`` for a torchvision detector, else None."""
    try:
        from torchvision.models.detection import faster_rcnn, fcos, mask_rcnn, retinanet, ssd
    except ImportError:
        return None
    for cls, name in (
        (retinanet.RetinaNet, "retinanet"),
        (fcos.FCOS, "fcos"),
        (ssd.SSD, "ssd"),
        (mask_rcnn.MaskRCNN, "maskrcnn"),
        (faster_rcnn.FasterRCNN, "fasterrcnn"),
    ):
        if isinstance(module, cls):
            return name
    return None


def num_classes(module: nn.Module) -> int:
    """Classes the bundle reports: torchvision's ``num_classes``, less the background for SSD."""
    kind = family(module)
    det: Any = module
    if kind == "ssd":
        return det.head.classification_head.num_columns - 1  # SSDScoringHead: classes + background
    if kind in ("retinanet", "fcos"):
        return det.head.classification_head.num_classes
    return det.roi_heads.box_predictor.cls_score.out_features - 1


def default_size(module: nn.Module, step: int = 32) -> tuple[int, int] | None:
    """The square input size the detector's own transform evaluates at: its ``fixed_size`` (SSD)
    or its test-time ``min_size`` (the R-CNNs, RetinaNet, FCOS: 800; the ``*_320_fpn`` models:
    320), rounded up to a multiple of ``step``. None without a GeneralizedRCNNTransform."""
    t: Any = getattr(module, "transform", None)
    fixed = getattr(t, "fixed_size", None)
    min_size = getattr(t, "min_size", None)
    side = max(fixed) if fixed else (min_size[-1] if isinstance(min_size, (tuple, list)) and min_size else None)
    if not isinstance(side, int) or side < 1:
        return None
    side = -(-side // step) * step
    return (side, side)


def coco_names(module: nn.Module) -> tuple[str, ...] | None:
    """torchvision's COCO category names in the bundle's class order, for a detector with COCO's 91
    outputs (torchvision's COCO-trained models); else None. Class ``i`` is torchvision's label ``i``
    (``i + 1`` for the families with a background), so the names keep torchvision's "N/A" gaps."""
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_320_FPN_Weights as Weights

    categories = list(Weights.COCO_V1.meta["categories"])  # the same 91 names for every COCO detector
    offset = 1 if family(module) in BACKGROUND else 0
    return tuple(categories[offset:]) if num_classes(module) + offset == len(categories) else None


def input_spec(module: nn.Module) -> InputSpec:
    """torchvision's normalisation, ``(x / 255 - mean) / std`` on RGB."""
    t: Any = module.transform  # GeneralizedRCNNTransform: three means and three deviations
    return InputSpec(
        scale=1 / 255,
        mean=cast("tuple[float, float, float]", tuple(float(v) for v in t.image_mean)),
        std=cast("tuple[float, float, float]", tuple(float(v) for v in t.image_std)),
        color="RGB",
        pad_value=114,
    )


def build(arch: str, classes: int, state_dict: dict | None = None) -> nn.Module:
    """Construct ``arch`` with ``classes`` classes (torchvision's count, background included where
    the family has one) and no downloaded weights, then load ``state_dict``.

    Raises:
        SourceError: an unknown constructor, or a state dict that does not fit.
    """
    from torchvision.models import detection as D

    if arch not in CONSTRUCTORS:
        raise SourceError(f"unknown torchvision detector '{arch}'; edgecv takes: {', '.join(sorted(CONSTRUCTORS))}")
    kw: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": classes}
    model = getattr(D, arch)(**kw)
    if state_dict is not None:
        state_dict = state_dict.get("model", state_dict) if isinstance(state_dict.get("model"), dict) else state_dict
        mine = model.state_dict()
        bad = [k for k, v in state_dict.items() if k in mine and mine[k].shape != v.shape]
        missing = [k for k in mine if k not in state_dict]
        unexpected = [k for k in state_dict if k not in mine]
        if bad:
            k = bad[0]
            raise SourceError(
                f"the state dict does not fit {arch} with {classes} class{'es' * (classes != 1)}: '{k}' is {list(state_dict[k].shape)} in the "
                f"file, {list(mine[k].shape)} in the model ({len(bad)} tensor(s) differ). Check --num-classes "
                f"(torchvision counts the background class for {', '.join(sorted(set(CONSTRUCTORS.values()) - {'retinanet', 'fcos'}))}) "
                "and --arch"
            )
        if missing or unexpected:
            raise SourceError(
                f"the state dict does not fit {arch}: {len(missing)} of its tensors are missing (e.g. "
                f"{missing[:2]}) and {len(unexpected)} are unknown (e.g. {unexpected[:2]}). Check --arch"
            )
        model.load_state_dict(state_dict)
    return model.eval()


def classes_in(arch: str, state_dict: dict) -> int | None:
    """torchvision's class count for ``arch`` read from the shapes of ``state_dict``, or None.

    The class-dependent tensors are found by building ``arch`` at two counts and seeing which
    shapes change: each is ``a * classes + b`` along its first axis (``a`` anchors per place), so
    the file's shape gives the count. None when the tensors disagree or are missing.
    """
    import torch
    from torchvision.models import detection as D

    state_dict = state_dict.get("model", state_dict) if isinstance(state_dict.get("model"), dict) else state_dict
    shapes = []
    for n in (2, 3):
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = getattr(D, arch)(weights=None, weights_backbone=None, num_classes=n)
        shapes.append({k: v.shape for k, v in model.state_dict().items()})
    found = set()
    for k, two in shapes[0].items():
        three, have = shapes[1][k], state_dict.get(k)
        if two == three:
            continue
        if have is None or len(have.shape) != len(two) or have.shape[1:] != two[1:]:
            return None
        a = three[0] - two[0]
        b = two[0] - 2 * a
        if (have.shape[0] - b) % a:
            return None
        found.add((have.shape[0] - b) // a)
    return found.pop() if len(found) == 1 and min(found) > 0 else None


class SingleStage(nn.Module):
    """A torchvision single-stage detector's network and box decoding at a fixed input size.

    Input: the normalised float image [B, 3, H, W]. Output: [B, N, 4 + C], xyxy boxes in input
    pixels clipped to the input, then class scores.
    """

    backbone: nn.Module
    head: nn.Module
    box_coder: Any
    anchors: torch.Tensor

    def __init__(self, model: nn.Module, imgsz: tuple[int, int]) -> None:
        super().__init__()
        from torchvision.models.detection.image_list import ImageList

        self.kind = family(model)
        if self.kind not in ("retinanet", "fcos", "ssd"):
            raise SourceError(f"{type(model).__name__} is not a single-stage torchvision detector")
        det: Any = model
        self.backbone, self.head, self.box_coder = det.backbone, det.head, det.box_coder
        self.imgsz = (int(imgsz[0]), int(imgsz[1]))
        with torch.no_grad():
            x = torch.zeros(1, 3, *self.imgsz)
            anchors = det.anchor_generator(ImageList(x, [self.imgsz]), self._features(x))[0]
        self.register_buffer("anchors", anchors.float(), persistent=False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.backbone(x)
        if isinstance(f, torch.Tensor):
            f = OrderedDict([("0", f)])
        return list(f.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self._features(x))
        reg, logits = out["bbox_regression"], out["cls_logits"]
        b, n = reg.shape[0], reg.shape[1]
        if self.kind == "fcos":
            boxes = self.box_coder.decode(reg, self.anchors.unsqueeze(0))
            scores = torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(out["bbox_ctrness"]))
        else:
            anchors = self.anchors.unsqueeze(0).expand(b, n, 4).reshape(-1, 4)
            boxes = self.box_coder.decode_single(reg.reshape(-1, 4), anchors).reshape(b, n, 4)
            scores = torch.softmax(logits, -1)[..., 1:] if self.kind == "ssd" else torch.sigmoid(logits)
        h, w = self.imgsz
        limit = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        return torch.cat([boxes, scores], -1)


class TwoStage(nn.Module):
    """A torchvision Faster R-CNN's network at a fixed input size, batch 1: backbone, RPN (its
    proposals and their NMS stay in the graph: ONNX handles them), RoI box head, class-specific
    box decoding.

    Input: the normalised float image [1, 3, H, W]. Output: [1, P * C, 4 + C] for P proposals
    (the RPN's test-time ``post_nms_top_n``) and C classes: one candidate per (proposal, class)
    with that class's box, clipped to the input, and that class's softmax score in its own
    column (the others zero). edgecv's class-aware NMS over these candidates is torchvision's
    per-class NMS. When the RPN keeps fewer than P proposals the rest are zero-score rows.
    """

    backbone: nn.Module
    rpn: nn.Module
    roi_heads: Any
    eye: torch.Tensor

    def __init__(self, model: nn.Module, imgsz: tuple[int, int]) -> None:
        super().__init__()
        if family(model) not in ("fasterrcnn", "maskrcnn"):
            raise SourceError(f"{type(model).__name__} is not a torchvision Faster or Mask R-CNN")
        det: Any = model
        self.backbone, self.rpn, self.roi_heads = det.backbone, det.rpn, det.roi_heads
        self.imgsz = (int(imgsz[0]), int(imgsz[1]))
        self.proposals = int(det.rpn._post_nms_top_n["testing"])
        self.register_buffer("eye", torch.eye(num_classes(model)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, OrderedDict[str, torch.Tensor]]:
        """The candidates and the backbone's feature maps."""
        from torchvision.models.detection.image_list import ImageList

        images = ImageList(x, [self.imgsz])
        features = self.backbone(x)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        proposals, _ = self.rpn(images, features)
        rh = self.roi_heads
        f = rh.box_head(rh.box_roi_pool(features, proposals, images.image_sizes))
        logits, reg = rh.box_predictor(f)
        boxes = rh.box_coder.decode(reg, proposals)[:, 1:]  # [P, C, 4], background dropped
        scores = torch.softmax(logits, -1)[:, 1:]
        h, w = self.imgsz
        limit = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        c, p = scores.shape[1], self.proposals
        boxes = torch.cat([boxes, boxes.new_zeros(p, c, 4)])[:p]  # pad to a fixed candidate count
        scores = torch.cat([scores, scores.new_zeros(p, c)])[:p]
        one_hot = (scores.unsqueeze(2) * self.eye).reshape(p * c, c)
        return torch.cat([boxes.reshape(p * c, 4), one_hot], 1).unsqueeze(0), features


class MaskTwoStage(TwoStage):
    """A torchvision Mask R-CNN: :class:`TwoStage` plus its mask head, which the graph runs on
    the boxes its NMS keeps (:meth:`masks`). Pasting the masks into the image is left to the
    host (:mod:`edgecv.masks`)."""

    def __init__(self, model: nn.Module, imgsz: tuple[int, int]) -> None:
        if family(model) != "maskrcnn":
            raise SourceError(f"{type(model).__name__} is not a torchvision Mask R-CNN")
        super().__init__(model, imgsz)

    def masks(
        self, features: OrderedDict[str, torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """Mask probabilities [1, K, M, M] of the kept ``boxes`` [1, K, 4] (input pixels) for
        their ``labels`` [1, K] (edgecv's class index; -1 on padding rows)."""
        rh = self.roi_heads
        b = boxes[0]
        logits = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(features, [b], [self.imgsz])))  # [K, C + 1, M, M]
        k, m = logits.shape[0], logits.shape[-1]
        lab = labels[0].long()
        lab = torch.where(lab >= 0, lab, 0)  # padding rows take class 0 (a Where: TensorRT clips floats only)
        idx = (lab + 1).view(k, 1, 1, 1).expand(k, 1, m, m)  # + 1: the background
        return logits.gather(1, idx).squeeze(1).sigmoid().unsqueeze(0)


def raw_module(model: nn.Module, imgsz: tuple[int, int]) -> nn.Module:
    """The raw-prediction module of a torchvision detector at input size ``imgsz``."""
    kind = family(model)
    if kind == "maskrcnn":
        return MaskTwoStage(model, imgsz).eval()
    if kind == "fasterrcnn":
        return TwoStage(model, imgsz).eval()
    return SingleStage(model, imgsz).eval()


def single_stage_source_parts(model: nn.Module, imgsz: tuple[int, int]) -> tuple[nn.Module, OutputSpec, InputSpec]:
    """The raw module, its output spec and its input spec for an edgecv source."""
    return SingleStage(model, imgsz).eval(), OutputSpec(num_classes(model), "bnc", "xyxy"), input_spec(model)
