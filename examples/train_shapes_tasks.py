"""Train the two example networks of ``examples/shapes_models.py`` on the shapes data and
write their weights (state dicts in FP16, loaded with ``torch.load(weights_only=True)``):

    python examples/train_shapes_tasks.py --out tests/fixtures/tasks

- ``shapes_classifier.pt``: ShapesNet on object crops (6 classes), 64x64 after edgecv's
  classification preprocessing (shorter side to 73, centre crop 64);
- ``shapes_unet.pt``: UNet on whole images letterboxed to 128x128 (7 classes: the
  background and the 6 shapes).

Reproducible from the seeds; about 15 minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes_models import ShapesNet, UNet  # noqa: E402

from edgecv.data import shapes  # noqa: E402
from edgecv.letterbox import CenterCrop, Letterbox  # noqa: E402

CLS_SIZE, SEG_SIZE = 64, 128


def classification_data(n_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    crop = CenterCrop((CLS_SIZE, CLS_SIZE))
    xs, ys = [], []
    for i in range(n_images):
        for img, cid in shapes.crops(shapes.render(shapes.SPLIT_SEEDS["train"], i)):
            xs.append(crop.forward(np.ascontiguousarray(img[:, :, ::-1]))[0])
            ys.append(cid)
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys)


def segmentation_data(n_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    lb = Letterbox((SEG_SIZE, SEG_SIZE))
    xs, ys = [], []
    for i in range(n_images):
        s = shapes.render(shapes.SPLIT_SEEDS["train"], i)
        canvas, _ = lb.forward(np.ascontiguousarray(s.image[:, :, ::-1]))
        # the class map through the same placement, nearest neighbour; the padding is background
        p = lb.params(s.image.shape[:2])
        nh, nw = int(round(s.image.shape[0] * p.scale_y)), int(round(s.image.shape[1] * p.scale_x))
        m = np.zeros((SEG_SIZE, SEG_SIZE), np.uint8)
        m[p.pad_y : p.pad_y + nh, p.pad_x : p.pad_x + nw] = cv2.resize(
            shapes.class_map(s), (nw, nh), interpolation=cv2.INTER_NEAREST
        )
        xs.append(canvas)
        ys.append(m)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)).long()


def to_input(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).float() / 255


def train(model, x, y, epochs: int, batch: int, lr: float, augment, seed: int, weight=None) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        t0, total = time.time(), 0.0
        order = torch.randperm(len(x), generator=g)
        for k in range(0, len(x), batch):
            idx = order[k : k + batch]
            xb, yb = augment(to_input(x[idx]), y[idx], g)
            loss = F.cross_entropy(model(xb), yb, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f} ({time.time() - t0:.1f} s)", flush=True)
    model.eval()


def flip(x, y, g):
    """Horizontal flips (the shapes are symmetric left to right)."""
    f = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(f[:, None, None, None], x.flip(-1), x)
    if y.ndim == 3:
        y = torch.where(f[:, None, None], y.flip(-1), y)
    return x, y


def save(model, path: Path) -> None:
    """The weights in FP16 (the U-Net's would be 7 MB in FP32); ``load_state_dict`` copies them
    into the FP32 parameters."""
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/tasks")
    ap.add_argument("--cls-images", type=int, default=1000, help="train images whose crops are used")
    ap.add_argument("--seg-images", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=10, help="classifier epochs")
    ap.add_argument("--seg-epochs", type=int, default=25)
    ap.add_argument("--only", choices=("classify", "segment"), help="train one of the two")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    if args.only in (None, "classify"):
        x, y = classification_data(args.cls_images)
        print(f"classifier: {len(x)} crops", flush=True)
        net = ShapesNet(len(shapes.CLASSES))
        train(net, x, y, args.epochs, 64, 4e-3, flip, 1)
        save(net, out / "shapes_classifier.pt")
    if args.only in (None, "segment"):
        torch.manual_seed(0)
        x, y = segmentation_data(args.seg_images)
        print(f"U-Net: {len(x)} images", flush=True)
        unet = UNet(len(shapes.SEG_CLASSES))
        # the background is most of every image: it counts a quarter as much as a shape's pixel
        weight = torch.tensor([0.25] + [1.0] * len(shapes.CLASSES))
        train(unet, x, y, args.seg_epochs, 16, 4e-3, flip, 2, weight)
        save(unet, out / "shapes_unet.pt")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
