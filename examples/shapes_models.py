"""Two small networks as a user of edgecv would write them, trained on the shapes data by
``examples/train_shapes_tasks.py``: a classifier with squeeze-and-excitation blocks, and a
U-Net. They are plain ``nn.Module`` classes: edgecv knows nothing of them and exports them
through its Python API (``edgecv.export.export(module, task="classify" | "segment")``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SqueezeExcite(nn.Module):
    """SENet's channel attention: global pool, two 1x1 layers, a sigmoid gate."""

    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class ShapesNet(nn.Module):
    """A classifier: four stride-2 stages with SE blocks, global average pool, a linear head.
    Input float NCHW RGB in [0, 1]; output logits [B, num_classes]."""

    def __init__(self, num_classes: int = 6, width: int = 24) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(3, w, 2),
            conv_bn(w, w),
            SqueezeExcite(w),
            conv_bn(w, 2 * w, 2),
            conv_bn(2 * w, 2 * w),
            SqueezeExcite(2 * w),
            conv_bn(2 * w, 4 * w, 2),
            conv_bn(4 * w, 4 * w),
            SqueezeExcite(4 * w),
            conv_bn(4 * w, 4 * w, 2),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class UNet(nn.Module):
    """A U-Net: four down stages, four up stages with skip connections, a 1x1 classifier.
    Input float NCHW RGB in [0, 1], sides multiples of 16; output logits [B, C, H, W]."""

    def __init__(self, num_classes: int = 7, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc = nn.ModuleList(
            [
                nn.Sequential(conv_bn(3, w), conv_bn(w, w)),
                nn.Sequential(conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w)),
                nn.Sequential(conv_bn(2 * w, 4 * w, 2), conv_bn(4 * w, 4 * w)),
                nn.Sequential(conv_bn(4 * w, 8 * w, 2), conv_bn(8 * w, 8 * w)),
                nn.Sequential(conv_bn(8 * w, 16 * w, 2), conv_bn(16 * w, 16 * w)),
            ]
        )
        self.up = nn.ModuleList(
            [
                nn.ConvTranspose2d(16 * w, 8 * w, 2, 2),
                nn.ConvTranspose2d(8 * w, 4 * w, 2, 2),
                nn.ConvTranspose2d(4 * w, 2 * w, 2, 2),
                nn.ConvTranspose2d(2 * w, w, 2, 2),
            ]
        )
        self.dec = nn.ModuleList(
            [conv_bn(16 * w, 8 * w), conv_bn(8 * w, 4 * w), conv_bn(4 * w, 2 * w), conv_bn(2 * w, w)]
        )
        self.out = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.enc:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return self.out(x)
