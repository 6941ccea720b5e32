"""Train edgecv-tiny, the default detector, on the synthetic shapes set.

Reproducible: the data, the initial weights and the sample order depend only on
the seeds below. Run it from a checkout with the ``[export]`` extra installed::

    python -m edgecv.export.models.train --out edgecv/assets/edgecv-tiny.pt

About 45 minutes on two CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torchvision
from torch.nn import functional as F

from ...data import shapes
from ...letterbox import Letterbox
from .tiny_yolo import TinyYolo

IMGSZ = (320, 320)


def _prepare(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = shapes.render(shapes.SPLIT_SEEDS["train"], index)
    lb = Letterbox(IMGSZ)
    rgb = np.ascontiguousarray(s.image[:, :, ::-1])
    canvas, p = lb.forward(rgb)
    return canvas, lb.forward_boxes(s.boxes, p).astype(np.float32), s.class_ids


def assign(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    pts: torch.Tensor,
    gt: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Task-aligned assignment (as in TOOD / YOLOv8) for one image.

    Args:
        scores: predicted class probabilities [N, C] (detached).
        boxes: predicted xyxy boxes [N, 4] (detached).
        pts: anchor points [N, 2].
        gt: ground-truth xyxy boxes [M, 4]; labels: their classes [M].

    Returns:
        target scores [N, C] (IoU-aware soft labels), target boxes [N, 4], foreground mask [N].
    """
    n = pts.shape[0]
    t_scores = torch.zeros(n, num_classes)
    t_boxes = torch.zeros(n, 4)
    if gt.shape[0] == 0:
        return t_scores, t_boxes, torch.zeros(n, dtype=torch.bool)
    x, y = pts[:, 0][None], pts[:, 1][None]
    inside = (x > gt[:, 0:1]) & (x < gt[:, 2:3]) & (y > gt[:, 1:2]) & (y < gt[:, 3:4])
    empty = ~inside.any(1)
    if empty.any():  # objects smaller than a cell: take the nearest anchor
        centres = (gt[empty, :2] + gt[empty, 2:]) / 2
        inside[empty.nonzero()[:, 0], torch.cdist(centres, pts).argmin(1)] = True
    iou = torchvision.ops.box_iou(gt, boxes).clamp(0)
    align = scores[:, labels].T.pow(alpha) * iou.pow(beta) * inside
    top = align.topk(min(topk, n), dim=1).indices
    cand = torch.zeros_like(inside).scatter_(1, top, True) & inside
    multi = cand.sum(0) > 1
    if multi.any():  # an anchor claimed by several objects keeps the best-overlapping one
        best = (iou * cand).argmax(0)
        cand[:, multi] = F.one_hot(best[multi], gt.shape[0]).T.bool()
    fg = cand.any(0)
    gi = cand.float().argmax(0)
    align = align * cand
    norm = align / (align.amax(1, keepdim=True) + 1e-9) * (iou * cand).amax(1, keepdim=True)
    t_scores[fg, labels[gi[fg]]] = norm.amax(0)[fg]
    t_boxes = gt[gi]
    return t_scores, t_boxes, fg


def loss_fn(
    model: TinyYolo, images: torch.Tensor, targets: list[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, dict]:
    boxes, logits, pts = model.forward_parts(images)
    c = model.num_classes
    ts, tb, fgs = [], [], []
    with torch.no_grad():
        probs = logits.sigmoid()
        for i, (gt, lab) in enumerate(targets):
            a, b, f = assign(probs[i].float(), boxes[i].detach().float(), pts, gt, lab, c)
            ts.append(a)
            tb.append(b)
            fgs.append(f)
    t_scores, t_boxes, fg = torch.stack(ts), torch.stack(tb), torch.stack(fgs)
    norm = t_scores.sum().clamp(min=1.0)
    cls = F.binary_cross_entropy_with_logits(logits, t_scores, reduction="sum") / norm
    if fg.any():
        w = t_scores.sum(-1)[fg]
        box = (torchvision.ops.complete_box_iou_loss(boxes[fg], t_boxes[fg], reduction="none") * w).sum() / norm
    else:
        box = boxes.sum() * 0
    loss = 0.5 * cls + 7.5 * box
    return loss, {"cls": cls.item(), "box": box.item(), "fg": int(fg.sum())}


class EMA:
    """Exponential moving average of the weights, with a ramp for the first steps."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 200))
        src = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1 - d)
            else:
                v.copy_(src[k])


def render_training_set(samples: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first ``samples`` images of the train split, letterboxed to IMGSZ, with their boxes and classes."""
    t0 = time.time()
    with Pool(os.cpu_count() or 1) as pool:
        data = pool.map(_prepare, range(samples), chunksize=64)
    print(f"rendered {len(data)} training images in {time.time() - t0:.0f}s", flush=True)
    return data


def sample_order(rng: np.random.Generator, samples: int, steps: int, batch: int) -> np.ndarray:
    """Sample indices for ``steps`` batches: whole permutations of the set, one after another."""
    return np.concatenate([rng.permutation(samples) for _ in range(steps * batch // samples + 1)])


def schedule_args(ap, steps: int, batch: int, samples: int = 4000, lr: float = 2e-3) -> None:
    """The options every training script shares: steps, batch, samples, lr, seed."""
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--samples", type=int, default=samples, help="training images rendered up front")
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=0)


class Optimizer:
    """AdamW with a linear warm-up and a cosine schedule, gradient clipping and a weight EMA."""

    def __init__(self, model: torch.nn.Module, lr: float, steps: int, warmup: int = 100) -> None:
        self.model = model
        self.ema = EMA(model)
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt,
            lambda s: (
                min(1.0, (s + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
            ),
        )

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.opt.step()
        self.sched.step()
        self.ema.update(self.model)


def checkpoint(model: TinyYolo, args: argparse.Namespace, step: int) -> dict:
    return {
        "format": "edgecv-checkpoint",
        "version": 1,
        "arch": "tiny_yolo",
        "config": {"num_classes": model.num_classes, "width": args.width, "neck": args.neck},
        "names": list(shapes.CLASSES),
        "imgsz": list(IMGSZ),
        "state_dict": {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
        "train": {"steps": step, "batch": args.batch, "samples": args.samples, "lr": args.lr, "seed": args.seed},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "edgecv" / "assets" / "edgecv-tiny.pt"))
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--samples", type=int, default=8000, help="training images rendered up front")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--neck", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    data = render_training_set(args.samples)
    images = np.stack([d[0] for d in data])

    model = TinyYolo(len(shapes.CLASSES), args.width, args.neck).to(memory_format=torch.channels_last)
    optim = Optimizer(model, args.lr, args.steps)
    rng = np.random.default_rng(args.seed)
    order = sample_order(rng, args.samples, args.steps, args.batch)
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        idx = order[step * args.batch : (step + 1) * args.batch]
        flip = rng.random(len(idx)) < 0.5
        batch = images[idx].copy()
        batch[flip] = batch[flip][:, :, ::-1]
        targets = []
        for j, i in enumerate(idx):
            b = data[i][1].copy()
            if flip[j]:
                b[:, [0, 2]] = IMGSZ[1] - b[:, [2, 0]]
            targets.append((torch.from_numpy(b), torch.from_numpy(data[i][2])))
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=torch.channels_last)
        loss, parts = loss_fn(model, x, targets)
        optim.step(loss)
        if step % 50 == 0 or step == args.steps - 1:
            rate = (step + 1) / (time.time() - t0)
            print(
                f"step {step + 1}/{args.steps} loss {float(loss):.3f} cls {parts['cls']:.3f} box {parts['box']:.3f} "
                f"fg {parts['fg']} lr {optim.sched.get_last_lr()[0]:.2e} {rate:.2f} it/s eta {(args.steps - step) / rate / 60:.0f} min",
                flush=True,
            )
        if (step + 1) % 200 == 0 or step == args.steps - 1:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            ema = cast(TinyYolo, optim.ema.model)  # the average of the TinyYolo built above
            torch.save(checkpoint(ema.to(memory_format=torch.contiguous_format), args, step + 1), tmp)
            os.replace(tmp, out)
    print(f"saved {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
