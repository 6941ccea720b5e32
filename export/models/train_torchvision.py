"""Train small members of torchvision's detection families on the synthetic shapes set.

They are torchvision's own ``RetinaNet``, ``FCOS``, ``SSD``, ``FasterRCNN`` and ``MaskRCNN`` classes with a small
backbone (edgecv-tiny's residual CNN and a torchvision FPN, about 0.5 M parameters), and torchvision's
``ssdlite320_mobilenet_v3_large`` as it is (``ssdlite``: 3.4 M parameters, random initial weights), trained with
torchvision's own losses, so that mAP-level checks of those families need no download::

    python -m edgecv.export.models.train_torchvision --family retinanet --out build/tv/retinanet.pt

The checkpoint holds the state dict and the settings to rebuild the model (:func:`build`).
Reproducible like ``train.py``: data, initial weights and sample order depend only on seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from ...data import shapes
from .tiny_yolo import ConvBN, Residual
from .train import IMGSZ, Optimizer, render_training_set, sample_order, schedule_args

FAMILIES = ("retinanet", "fcos", "ssd", "ssdlite", "fasterrcnn", "maskrcnn")


class TinyBackbone(nn.Module):
    """edgecv-tiny's backbone (strides 8, 16, 32) and a torchvision FPN: OrderedDict of 3 maps."""

    def __init__(self, width: int = 32, out_channels: int = 64) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        w = width
        self.stem = nn.Sequential(ConvBN(3, 16, 3, 2), ConvBN(16, 32, 3, 2), Residual(32))
        self.stage3 = nn.Sequential(ConvBN(32, w, 3, 2), Residual(w))
        self.stage4 = nn.Sequential(ConvBN(w, 2 * w, 3, 2), Residual(2 * w))
        self.stage5 = nn.Sequential(ConvBN(2 * w, 3 * w, 3, 2), Residual(3 * w))
        self.fpn = FeaturePyramidNetwork([w, 2 * w, 3 * w], out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        return self.fpn(OrderedDict([("0", c3), ("1", c4), ("2", c5)]))


def build(family: str, num_classes: int = len(shapes.CLASSES)) -> nn.Module:
    """A small torchvision ``family`` detector for ``num_classes`` object classes at 320x320."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.ssd import SSD, SSDHead

    size = IMGSZ[0]
    common = dict(min_size=size, max_size=size, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])
    backbone = TinyBackbone()
    if family == "retinanet":
        # the v2 head (GroupNorm, GIoU loss): the v1 head does not learn on this small backbone
        from functools import partial

        from torchvision.models.detection.retinanet import RetinaNetHead

        anchors = AnchorGenerator(((12, 20), (32, 52), (80, 136)), ((0.5, 1.0, 2.0),) * 3)
        head = RetinaNetHead(
            backbone.out_channels,
            anchors.num_anchors_per_location()[0],
            num_classes,
            norm_layer=partial(nn.GroupNorm, 16),
        )
        head.regression_head._loss_type = "giou"
        return RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head, **common)
    if family in ("fasterrcnn", "maskrcnn"):
        from torchvision.models.detection.faster_rcnn import FasterRCNN, FastRCNNPredictor, TwoMLPHead
        from torchvision.models.detection.mask_rcnn import MaskRCNN, MaskRCNNHeads, MaskRCNNPredictor
        from torchvision.ops import MultiScaleRoIAlign

        anchors = AnchorGenerator(((16,), (40,), (100,)), ((0.5, 1.0, 2.0),) * 3)
        rep = 128  # a small box head keeps the weights under 5 MB
        extra: dict = {}
        if family == "maskrcnn":
            extra = dict(
                mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 14, 2),
                mask_head=MaskRCNNHeads(backbone.out_channels, [64, 64], 1),
                mask_predictor=MaskRCNNPredictor(64, 64, num_classes + 1),
            )
        return (MaskRCNN if family == "maskrcnn" else FasterRCNN)(
            backbone,
            None,
            rpn_anchor_generator=anchors,
            box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, 2),
            box_head=TwoMLPHead(backbone.out_channels * 49, rep),
            box_predictor=FastRCNNPredictor(rep, num_classes + 1),
            rpn_pre_nms_top_n_test=300,
            rpn_post_nms_top_n_test=150,
            rpn_pre_nms_top_n_train=600,
            rpn_post_nms_top_n_train=300,
            box_batch_size_per_image=128,
            box_score_thresh=0.001,
            **extra,
            **common,
        )
    if family == "fcos":
        anchors = AnchorGenerator(((8,), (16,), (32,)), ((1.0,),) * 3)
        return FCOS(backbone, num_classes, anchor_generator=anchors, center_sampling_radius=1.5, **common)
    if family == "ssd":
        anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3]], min_ratio=0.05, max_ratio=0.6)
        head = SSDHead([backbone.out_channels] * 3, anchors.num_anchors_per_location(), num_classes + 1)
        return SSD(
            backbone,
            anchors,
            (size, size),
            num_classes + 1,
            head=head,
            image_mean=common["image_mean"],
            image_std=common["image_std"],
        )
    if family == "ssdlite":
        # torchvision's own SSDlite (MobileNetV3-Large, depthwise convolutions and hardswish: the
        # hardest of the families to quantize), from random weights: nothing is downloaded
        from torchvision.models.detection import ssdlite320_mobilenet_v3_large

        return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes + 1)
    raise ValueError(f"unknown family {family!r}; choose one of {FAMILIES}")


def _instance_map(index: int) -> np.ndarray:
    """Sample ``index``'s instance map letterboxed like its image (nearest neighbour; -1 outside)."""
    from ...letterbox import Letterbox

    s = shapes.render(shapes.SPLIT_SEEDS["train"], index)
    assert s.instances is not None  # render draws every sample's instance map
    p = Letterbox(IMGSZ).params(s.image.shape[:2])
    nh, nw = int(round(s.image.shape[0] * p.scale_y)), int(round(s.image.shape[1] * p.scale_x))
    out = np.full(IMGSZ, -1, dtype=np.int16)
    out[p.pad_y : p.pad_y + nh, p.pad_x : p.pad_x + nw] = cv2.resize(
        s.instances, (nw, nh), interpolation=cv2.INTER_NEAREST
    )
    return out


def render_instance_maps(samples: int) -> list[np.ndarray]:
    """Instance maps of the first ``samples`` training images, as :func:`render_training_set` places them."""
    from multiprocessing import Pool

    with Pool(os.cpu_count() or 1) as pool:
        return pool.map(_instance_map, range(samples), chunksize=64)


def load(path: str | os.PathLike, family: str | None = None) -> nn.Module:
    """Rebuild a checkpoint written by this script (weights only).

    ``family="fasterrcnn"`` on a Mask R-CNN checkpoint gives the Faster R-CNN that is its box
    branch: the same network without the mask head.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    family = family or ckpt["family"]
    model = build(family, ckpt["num_classes"])
    sd = ckpt["state_dict"]
    if family == "fasterrcnn" and ckpt["family"] == "maskrcnn":
        sd = {k: v for k, v in sd.items() if not k.startswith("roi_heads.mask_")}
    elif family != ckpt["family"]:
        raise ValueError(f"{path} holds a model of family {ckpt['family']}, not {family}")
    model.load_state_dict(sd)
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=FAMILIES)
    ap.add_argument("--out", required=True)
    schedule_args(ap, steps=1200, batch=16)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    data = render_training_set(args.samples)
    model = build(args.family)
    optim = Optimizer(model, args.lr, args.steps)
    order = sample_order(np.random.default_rng(args.seed), args.samples, args.steps, args.batch)
    offset = 1 if args.family in ("ssd", "ssdlite", "fasterrcnn", "maskrcnn") else 0  # their label 0 is the background
    instances = render_instance_maps(args.samples) if args.family == "maskrcnn" else None
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        idx = order[step * args.batch : (step + 1) * args.batch]
        images, targets = [], []
        for i in idx:
            img, boxes, labels = data[i]
            images.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255))
            targets.append(
                {
                    "boxes": torch.from_numpy(boxes).float().reshape(-1, 4),
                    "labels": torch.from_numpy(labels).long() + offset,
                }
            )
            if instances is not None:
                inst = torch.from_numpy(instances[i].astype(np.int64))
                targets[-1]["masks"] = (inst[None] == torch.arange(len(boxes))[:, None, None]).to(torch.uint8)
        losses = model(images, targets)
        loss = sum(losses.values())
        optim.step(loss)
        if step % 50 == 0 or step == args.steps - 1:
            rate = (step + 1) / (time.time() - t0)
            parts = " ".join(f"{k} {float(v):.3f}" for k, v in losses.items())
            print(
                f"step {step + 1}/{args.steps} loss {float(loss):.3f} ({parts}) {rate:.2f} it/s "
                f"eta {(args.steps - step) / rate / 60:.0f} min",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(
        {
            "family": args.family,
            "num_classes": len(shapes.CLASSES),
            "names": list(shapes.CLASSES),
            "state_dict": optim.ema.model.state_dict(),
            "train": vars(args),
        },
        tmp,
    )
    os.replace(tmp, out)
    print(f"saved {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
