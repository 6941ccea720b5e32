"""Train an Ultralytics YOLO, built from Ultralytics' own yaml, briefly on the synthetic shapes set.

It is Ultralytics' ``DetectionModel`` and its own loss (``model.loss``); only the loop, the data and
the optimizer are edgecv's (those of ``train.py``). Nothing is downloaded. The result is written as
an Ultralytics checkpoint with Ultralytics' own ``YOLO.save``, so it loads like any ``yolov8n.pt``::

    python -m edgecv.export.models.train_ultralytics --yaml yolov8n.yaml --out build/yolov8n-shapes.pt

``--weights-out`` also writes the weights alone, packed (:func:`pack`: safe to load, and small
enough to commit); :func:`checkpoint_from_weights` turns them back into an Ultralytics checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...data import shapes
from .train import IMGSZ, Optimizer, render_training_set, sample_order, schedule_args

if TYPE_CHECKING:
    from ultralytics.nn.tasks import DetectionModel


def build(yaml: str = "yolov8n.yaml", num_classes: int = len(shapes.CLASSES)) -> DetectionModel:
    """Ultralytics' ``DetectionModel`` from one of its packaged yamls, with its training hyperparameters."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(yaml, nc=num_classes, verbose=False)
    # the default hyperparameters (box, cls, dfl gains) that its loss reads; a plain attribute, where
    # torch types nn.Module's __setattr__ value as Tensor | Module
    model.args = get_cfg()  # type: ignore[assignment]
    model.names = (
        {i: n for i, n in enumerate(shapes.CLASSES)}
        if num_classes == len(shapes.CLASSES)
        else {i: f"class{i}" for i in range(num_classes)}
    )
    return model


def save_checkpoint(model: torch.nn.Module, out: str | os.PathLike, imgsz: int, yaml: str) -> Path:
    """Write ``model`` as an Ultralytics checkpoint, with ``YOLO.save`` (atomic: temp file, then rename)."""
    from ultralytics import YOLO

    yolo = YOLO(yaml, task="detect", verbose=False)
    yolo.model = model  # type: ignore[assignment]  # mypy infers Ultralytics' Model.model as str | None
    yolo.ckpt = {"train_args": {"task": "detect", "imgsz": imgsz, "model": yaml, "data": "edgecv shapes"}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.pt")
    yolo.save(tmp)
    os.replace(tmp, out)
    return out


def pack(state_dict: dict) -> dict:
    """A compact copy of a state dict: convolution kernels as int8 with one FP32 scale per output
    channel (symmetric), every other float tensor in FP16. YOLOv8n is 6 MB even in FP16; this is
    about 3.5 MB. The weights :func:`unpack` gives back are the model's weights from then on."""
    out = {}
    for k, v in state_dict.items():
        if v.is_floating_point() and v.ndim == 4:
            scale = v.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12) / 127
            out[k] = {"q": torch.round(v / scale).to(torch.int8), "scale": scale.float()}
        else:
            out[k] = v.half() if v.is_floating_point() else v
    return out


def unpack(packed: dict) -> dict:
    """The FP32 state dict of :func:`pack`'s output."""
    return {
        k: v["q"].float() * v["scale"] if isinstance(v, dict) else (v.float() if v.is_floating_point() else v)
        for k, v in packed.items()
    }


def checkpoint_from_weights(weights: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Rebuild an Ultralytics checkpoint from the weights file written by ``--weights-out``."""
    w = torch.load(weights, map_location="cpu", weights_only=True)
    model = build(w["yaml"], len(w["names"]))
    model.names = dict(enumerate(w["names"]))
    model.load_state_dict(unpack(w["state_dict"]))
    return save_checkpoint(model.eval(), out, w["imgsz"], w["yaml"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--yaml", default="yolov8n.yaml", help="an Ultralytics model yaml (packaged with ultralytics)")
    ap.add_argument("--out", required=True, help="the Ultralytics checkpoint to write")
    ap.add_argument("--weights-out", help="also write the weights alone, packed (int8 kernels, FP16 rest)")
    ap.add_argument(
        "--from-weights",
        help="start from a packed weights file (--weights-out) instead of random weights: a few steps at a small "
        "--lr move its kernels off the int8 grid that packing put them on",
    )
    schedule_args(ap, steps=600, batch=16)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    data = render_training_set(args.samples)
    if args.from_weights:
        w = torch.load(args.from_weights, map_location="cpu", weights_only=True)
        args.yaml = w["yaml"]
        model = build(w["yaml"], len(w["names"]))
        model.load_state_dict(unpack(w["state_dict"]))
    else:
        model = build(args.yaml)
    optim = Optimizer(model, args.lr, args.steps)
    order = sample_order(np.random.default_rng(args.seed), args.samples, args.steps, args.batch)
    h, w = IMGSZ
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        idx = order[step * args.batch : (step + 1) * args.batch]
        images, bidx, cls, boxes = [], [], [], []
        for j, i in enumerate(idx):
            img, b, c = data[i]
            images.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1))
            xywh = (
                np.stack(
                    [
                        (b[:, 0] + b[:, 2]) / 2 / w,
                        (b[:, 1] + b[:, 3]) / 2 / h,
                        (b[:, 2] - b[:, 0]) / w,
                        (b[:, 3] - b[:, 1]) / h,
                    ],
                    1,
                )
                if len(b)
                else np.zeros((0, 4))
            )
            boxes.append(torch.from_numpy(xywh).float())
            cls.append(torch.from_numpy(c).float().view(-1, 1))
            bidx.append(torch.full((len(b),), j, dtype=torch.float32))
        batch = {
            "img": torch.stack(images).float().div_(255),
            "batch_idx": torch.cat(bidx),
            "cls": torch.cat(cls),
            "bboxes": torch.cat(boxes),
        }
        loss, items = model.loss(batch)
        optim.step(loss.sum())
        if step % 50 == 0 or step == args.steps - 1:
            rate = (step + 1) / (time.time() - t0)
            vals = items.tolist() if isinstance(items, torch.Tensor) else [float(v) for v in items.values()]
            print(
                f"step {step + 1}/{args.steps} loss {float(loss.sum()) / args.batch:.3f} "
                f"(box, cls, dfl {', '.join(f'{v:.3f}' for v in vals)}) {rate:.2f} it/s "
                f"eta {(args.steps - step) / rate / 60:.0f} min",
                flush=True,
            )
    final = optim.ema.model.eval()
    final.names = model.names
    final.args = model.args
    save_checkpoint(final, args.out, h, args.yaml)
    if args.weights_out:
        Path(args.weights_out).parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "format": "edgecv-ultralytics-weights",
                "yaml": args.yaml,
                "imgsz": h,
                "names": list(shapes.CLASSES),
                "train": vars(args),
                "state_dict": pack(final.state_dict()),
            },
            args.weights_out,
        )
    print(f"saved {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
