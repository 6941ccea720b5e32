"""Train small members of torchvision's single-stage families on the synthetic shapes set.

They are torchvision's own ``RetinaNet``, ``FCOS`` and ``SSD`` classes with a small backbone
(edgecv-tiny's residual CNN and a torchvision FPN, about 0.5 M parameters), trained with
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

import numpy as np
import torch
from torch import nn

from ...data import shapes
from .tiny_yolo import ConvBN, Residual
from .train import IMGSZ, Optimizer, render_training_set, sample_order

FAMILIES = ("retinanet", "fcos", "ssd")


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

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        return self.fpn(OrderedDict([("0", c3), ("1", c4), ("2", c5)]))


def build(family: str, num_classes: int = len(shapes.CLASSES)) -> nn.Module:
    """A small torchvision ``family`` detector for ``num_classes`` object classes at 320x320."""
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.ssd import SSD, SSDHead
    from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator

    size = IMGSZ[0]
    common = dict(min_size=size, max_size=size, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])
    backbone = TinyBackbone()
    if family == "retinanet":
        anchors = AnchorGenerator(((12, 20), (32, 52), (80, 136)), ((0.5, 1.0, 2.0),) * 3)
        return RetinaNet(backbone, num_classes, anchor_generator=anchors, **common)
    if family == "fcos":
        anchors = AnchorGenerator(((8,), (16,), (32,)), ((1.0,),) * 3)
        return FCOS(backbone, num_classes, anchor_generator=anchors, center_sampling_radius=1.5, **common)
    if family == "ssd":
        anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3]], min_ratio=0.05, max_ratio=0.6)
        head = SSDHead([backbone.out_channels] * 3, anchors.num_anchors_per_location(), num_classes + 1)
        return SSD(backbone, anchors, (size, size), num_classes + 1, head=head, image_mean=common["image_mean"],
                   image_std=common["image_std"])
    raise ValueError(f"unknown family {family!r}; choose one of {FAMILIES}")


def load(path: str | os.PathLike) -> nn.Module:
    """Rebuild a checkpoint written by this script (weights only)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build(ckpt["family"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=FAMILIES)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    data = render_training_set(args.samples)
    model = build(args.family)
    optim = Optimizer(model, args.lr, args.steps)
    order = sample_order(np.random.default_rng(args.seed), args.samples, args.steps, args.batch)
    offset = 1 if args.family == "ssd" else 0  # SSD's label 0 is the background
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        idx = order[step * args.batch: (step + 1) * args.batch]
        images, targets = [], []
        for i in idx:
            img, boxes, labels = data[i]
            images.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255))
            targets.append({"boxes": torch.from_numpy(boxes).float().reshape(-1, 4),
                            "labels": torch.from_numpy(labels).long() + offset})
        losses = model(images, targets)
        loss = sum(losses.values())
        optim.step(loss)
        if step % 50 == 0 or step == args.steps - 1:
            rate = (step + 1) / (time.time() - t0)
            parts = " ".join(f"{k} {float(v):.3f}" for k, v in losses.items())
            print(f"step {step + 1}/{args.steps} loss {float(loss):.3f} ({parts}) {rate:.2f} it/s "
                  f"eta {(args.steps - step) / rate / 60:.0f} min", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({"family": args.family, "num_classes": len(shapes.CLASSES), "names": list(shapes.CLASSES),
                "state_dict": optim.ema.model.state_dict(), "train": vars(args)}, tmp)
    os.replace(tmp, out)
    print(f"saved {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
