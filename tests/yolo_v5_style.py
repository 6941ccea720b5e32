"""An independently built YOLO-style detector for parity tests: anchor-based,
YOLOv5's output layout [B, N, 5 + C] (cx, cy, w, h, objectness logit, class logits),
deterministic random weights. Not trained: parity needs the same numbers, not good ones."""

from __future__ import annotations

import torch
from torch import nn

ANCHORS = ((10.0, 13.0), (30.0, 40.0), (80.0, 90.0))


class TinyV5(nn.Module):
    def __init__(self, num_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        with torch.random.fork_rng():  # PyTorch's default initialisation, seeded
            torch.manual_seed(seed)
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3, 2, 1),
                nn.SiLU(),
                nn.Conv2d(8, 16, 3, 2, 1),
                nn.SiLU(),
                nn.Conv2d(16, 16, 3, 2, 1),
                nn.SiLU(),
            )
            self.head = nn.Conv2d(16, len(ANCHORS) * (5 + num_classes), 1)
            with torch.no_grad():
                self.head.weight.mul_(6.0)  # spread the scores out, so some pass 0.25 and few tie
                self.head.bias.view(len(ANCHORS), -1)[:, 4:].add_(1.0)
        self.register_buffer("anchors", torch.tensor(ANCHORS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride = 8
        f = self.head(self.body(x))
        b, _, h, w = f.shape
        na, no = len(ANCHORS), 5 + self.num_classes
        f = f.view(b, na, no, h, w).permute(0, 1, 3, 4, 2)  # [B, A, H, W, no]
        yy, xx = torch.meshgrid(torch.arange(h, dtype=f.dtype), torch.arange(w, dtype=f.dtype), indexing="ij")
        grid = torch.stack([xx, yy], -1)
        xy = (f[..., :2].sigmoid() * 2 - 0.5 + grid) * stride
        wh = (f[..., 2:4].sigmoid() * 2) ** 2 * self.anchors.view(1, na, 1, 1, 2)
        # a position-dependent objectness term: the flat padding of a letterbox would otherwise
        # give many cells exactly the same score, and ties make NMS order backend-dependent
        obj = f[..., 4:5] + 3.0 * torch.sin(xx * 0.77 + yy * 1.31).unsqueeze(-1) - 4.0
        cls = (f[..., 5:] - 1.0) * 10.0  # spread the class logits: random weights leave them close together
        out = torch.cat([xy, wh, obj, cls], -1)
        return out.reshape(b, -1, no)
