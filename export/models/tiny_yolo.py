"""edgecv-tiny: the project's own small single-stage detector (tiny-YOLO lineage,
anchor-free head), trained on the synthetic shapes set by ``train.py``.

Its inference output is the YOLOv8 raw layout: ``[B, 4 + C, N]`` with boxes as
(cx, cy, w, h) in input pixels and sigmoid class scores, so it goes through the
same :class:`~edgecv.export.spec.OutputSpec` path as any YOLO-style model.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

#: Where the trained weights ship inside the package (a weights-only checkpoint).
WEIGHTS_NAME = "edgecv-tiny.pt"
STRIDES = (8, 16, 32)


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True)
        )


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBN(c, c // 2, 1), ConvBN(c // 2, c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinyYolo(nn.Module):
    """Backbone (stride 32) + FPN + a shared coupled head per level.

    Args:
        num_classes: number of classes C.
        width: channels of the stride-8 stage; later stages scale from it.
    """

    def __init__(self, num_classes: int, width: int = 64, neck: int = 64) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.stem = nn.Sequential(ConvBN(3, 16, 3, 2), ConvBN(16, 32, 3, 2), Residual(32))
        self.stage3 = nn.Sequential(ConvBN(32, w, 3, 2), Residual(w), Residual(w))
        self.stage4 = nn.Sequential(ConvBN(w, 2 * w, 3, 2), Residual(2 * w), Residual(2 * w))
        self.stage5 = nn.Sequential(ConvBN(2 * w, 3 * w, 3, 2), Residual(3 * w))
        self.lat = nn.ModuleList([ConvBN(c, neck, 1) for c in (w, 2 * w, 3 * w)])
        self.smooth = nn.ModuleList([ConvBN(neck, neck, 3) for _ in STRIDES])
        self.box_branch = nn.ModuleList([ConvBN(neck, neck, 3) for _ in STRIDES])
        self.cls_branch = nn.ModuleList([ConvBN(neck, neck, 3) for _ in STRIDES])
        self.box_out = nn.ModuleList([nn.Conv2d(neck, 4, 1) for _ in STRIDES])
        self.cls_out = nn.ModuleList([nn.Conv2d(neck, num_classes, 1) for _ in STRIDES])
        for conv in self.cls_out:  # prior of 1% foreground, as in RetinaNet
            nn.init.constant_(cast(torch.Tensor, conv.bias), -4.6)  # a Conv2d's bias, read through ModuleList

    def features(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per level, the raw box distances [B, 4, h, w] and class logits [B, C, h, w]."""
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        p5 = self.lat[2](c5)
        p4 = self.lat[1](c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = self.lat[0](c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        out = []
        for i, p in enumerate((p3, p4, p5)):
            p = self.smooth[i](p)
            out.append((self.box_out[i](self.box_branch[i](p)), self.cls_out[i](self.cls_branch[i](p))))
        return out

    @staticmethod
    def anchors(feats: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell centres [N, 2] in input pixels and their strides [N, 1], level by level."""
        pts, strides = [], []
        for (box, _), s in zip(feats, STRIDES):
            h, w = box.shape[-2:]
            ys = (torch.arange(h, dtype=box.dtype, device=box.device) + 0.5) * s
            xs = (torch.arange(w, dtype=box.dtype, device=box.device) + 0.5) * s
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            pts.append(torch.stack([xx, yy], -1).reshape(-1, 2))
            strides.append(torch.full((h * w, 1), float(s), dtype=box.dtype, device=box.device))
        return torch.cat(pts), torch.cat(strides)

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes xyxy [B, N, 4] in input pixels, class logits [B, N, C], anchor points [N, 2]."""
        feats = self.features(x)
        pts, strides = self.anchors(feats)
        dist = torch.cat([b.flatten(2) for b, _ in feats], 2).transpose(1, 2)
        logits = torch.cat([c.flatten(2) for _, c in feats], 2).transpose(1, 2)
        ltrb = F.softplus(dist) * strides
        boxes = torch.cat([pts - ltrb[..., :2], pts + ltrb[..., 2:]], -1)
        return boxes, logits, pts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw predictions [B, 4 + C, N]: (cx, cy, w, h) in input pixels, then class scores."""
        boxes, logits, _ = self.forward_parts(x)
        cxcy = (boxes[..., :2] + boxes[..., 2:]) / 2
        wh = boxes[..., 2:] - boxes[..., :2]
        return torch.cat([cxcy, wh, logits.sigmoid()], -1).transpose(1, 2)
