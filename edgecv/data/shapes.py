"""The synthetic shapes data set: coloured shapes of several classes on textured
backgrounds, with occlusion and object sizes from about 8 px to half the image.

It is deterministic: sample ``i`` of a split depends only on the split's seed and
``i``. The default detector is trained on it and validated on its ``val`` split,
which :func:`write_coco` writes in COCO format.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")

#: Seeds of the named splits; a split's samples never overlap another's.
SPLIT_SEEDS = {"train": 1_000_003, "val": 2_000_003, "calib": 3_000_017}

MIN_SIZE = 8  # smallest object side, pixels
MAX_OCCLUSION = 0.4  # a placement may hide at most this share of an earlier object


@dataclass(frozen=True)
class Sample:
    """One image (HxWx3 uint8, BGR), its boxes (xyxy pixel edges, float32 [N, 4]) and class ids [N].

    ``instances`` (HxW int16) says which object each pixel shows: ``i`` for box ``i``, -1 for the
    background; ``instances == i`` is object i's visible mask.
    """

    image: np.ndarray
    boxes: np.ndarray
    class_ids: np.ndarray
    instances: np.ndarray | None = None

    def masks(self) -> np.ndarray:
        """Visible instance masks, bool [N, H, W]."""
        if self.instances is None:
            return np.zeros((0,) + self.image.shape[:2], dtype=bool)
        return self.instances[None] == np.arange(len(self.boxes), dtype=np.int16)[:, None, None]


def rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed run-length encoding of a bool mask (column-major runs, 0s first)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(4)
    base = rng.uniform(40, 215, size=3)
    if kind == 0:  # linear gradient
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.ogrid[0:h, 0:w]
        t = (xx * math.cos(a) + yy * math.sin(a)) / max(h, w)
        other = rng.uniform(40, 215, size=3)
        img = base[None, None] * (1 - t[..., None]) + other[None, None] * t[..., None]
    elif kind == 1:  # stripes
        a = rng.uniform(0, math.pi)
        period = rng.uniform(6, 40)
        yy, xx = np.ogrid[0:h, 0:w]
        s = np.sin(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / period)
        img = base[None, None] + rng.uniform(10, 35) * s[..., None]
    elif kind == 2:  # cloudy blotches: coarse noise upsampled
        cells = int(rng.integers(3, 12))
        coarse = rng.uniform(-1, 1, size=(cells, cells, 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        img = base[None, None] + rng.uniform(15, 50) * smooth
    else:  # flat colour
        img = np.broadcast_to(base[None, None], (h, w, 3)).astype(np.float32)
    img = img + rng.normal(0, rng.uniform(2, 10), size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _polygon(cls: str, cx: float, cy: float, r: float, rot: float) -> np.ndarray | None:
    def ring(n: int, rr: np.ndarray, phase: float) -> np.ndarray:
        t = phase + rot + np.arange(n) * 2 * math.pi / n
        return np.stack([cx + rr * np.cos(t), cy + rr * np.sin(t)], axis=1)

    if cls == "square":
        return ring(4, np.full(4, r * math.sqrt(2)), math.pi / 4 - rot)  # axis-aligned
    if cls == "diamond":
        return ring(4, np.array([r, r * 0.7, r, r * 0.7]), -math.pi / 2 - rot)
    if cls == "triangle":
        return ring(3, np.full(3, r * 1.15), -math.pi / 2)
    if cls == "star":
        return ring(10, np.tile([r * 1.15, r * 0.5], 5), -math.pi / 2)
    if cls == "cross":
        a, b = r, r * 0.38
        pts = np.array(
            [[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]]
        )
        c, s = math.cos(rot), math.sin(rot)
        return pts @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])
    return None  # circle


def _colour(rng: np.random.Generator, bg: np.ndarray) -> tuple[int, int, int]:
    for _ in range(50):
        col = rng.integers(0, 256, size=3)
        if np.abs(col - bg).sum() > 150:
            break
    return int(col[0]), int(col[1]), int(col[2])


def render(seed: int, index: int) -> Sample:
    """Render sample ``index`` of the split seeded ``seed``."""
    rng = np.random.default_rng([seed, index])
    h, w = int(rng.integers(224, 417)), int(rng.integers(224, 417))
    img = _background(rng, h, w)
    owner = np.full((h, w), -1, dtype=np.int32)  # which object each pixel shows
    classes: list[int] = []
    visible: list[int] = []  # pixels each object still shows
    n_obj = int(rng.integers(1, 9))
    max_side = min(h, w) / 2
    for _ in range(n_obj * 4):
        if len(classes) >= n_obj:
            break
        cls_id = int(rng.integers(len(CLASSES)))
        side = float(math.exp(rng.uniform(math.log(MIN_SIZE + 2), math.log(max_side))))
        r = side / 2
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        rot = rng.uniform(-0.35, 0.35)
        # draw into a window around the object only: the full-image work is what costs
        x0, y0 = max(0, int(cx - 1.3 * r) - 2), max(0, int(cy - 1.3 * r) - 2)
        x1, y1 = min(w, int(cx + 1.3 * r) + 3), min(h, int(cy + 1.3 * r) + 3)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        poly = _polygon(CLASSES[cls_id], cx - x0, cy - y0, r, rot)
        if poly is None:
            cv2.circle(mask, (int(round(cx - x0)), int(round(cy - y0))), max(1, int(round(r))), 1, -1)
        else:
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        sel = mask.astype(bool)
        if sel.sum() < MIN_SIZE * MIN_SIZE // 2:
            continue
        win_owner = owner[y0:y1, x0:x1]
        hidden = np.bincount(win_owner[sel] + 1, minlength=len(classes) + 1)[1:]
        if np.any(hidden > MAX_OCCLUSION * np.asarray(visible, dtype=np.float64)[: len(hidden)]):
            continue
        win = img[y0:y1, x0:x1]
        win[sel] = _colour(rng, win[sel].mean(axis=0))
        win_owner[sel] = len(classes)
        visible[: len(hidden)] = [v - int(c) for v, c in zip(visible, hidden)]
        visible.append(int(sel.sum()))
        classes.append(cls_id)
    boxes: list[list[int]] = []
    ids: list[int] = []
    instances = np.full((h, w), -1, dtype=np.int16)
    for k, cls_id in enumerate(classes):
        sel = owner == k
        ys, xs = np.nonzero(sel)
        if len(xs) == 0:
            continue
        instances[sel] = len(boxes)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        ids.append(cls_id)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.9))
    img = np.clip(img.astype(np.int16) + rng.normal(0, 3, size=img.shape).astype(np.int16), 0, 255).astype(np.uint8)
    return Sample(img, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(ids, np.int64), instances)


def write_coco(out_dir: str | os.PathLike, split: str = "val", count: int = 200) -> tuple[Path, Path]:
    """Write ``count`` samples of ``split`` as PNG images plus a COCO json (boxes and visible
    instance masks, as uncompressed RLE).

    Returns ``(images_dir, annotations_json)``. Category ids are 1-based, in
    :data:`CLASSES` order. Existing complete output is reused.
    """
    out = Path(out_dir)
    images_dir, ann_path = out / "images", out / "annotations.json"
    if ann_path.exists():
        try:
            data = json.loads(ann_path.read_text())
            if (
                data.get("info", {}).get("split") == split
                and len(data["images"]) == count
                and all("segmentation" in a for a in data["annotations"][:1])
            ):
                return images_dir, ann_path
        except (OSError, ValueError, KeyError):
            pass
    images_dir.mkdir(parents=True, exist_ok=True)
    seed = SPLIT_SEEDS[split]
    images: list[dict] = []
    anns: list[dict] = []
    for i in range(count):
        s = render(seed, i)
        assert s.instances is not None  # render draws every sample's instance map
        name = f"{split}_{i:05d}.png"
        cv2.imwrite(str(images_dir / name), s.image)
        images.append({"id": i + 1, "file_name": name, "height": s.image.shape[0], "width": s.image.shape[1]})
        for k, (box, cid) in enumerate(zip(s.boxes, s.class_ids)):
            x0, y0, x1, y1 = (float(v) for v in box)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(cid) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "segmentation": rle(s.instances == k),
                }
            )
    data = {
        "info": {"description": "edgecv synthetic shapes", "split": split, "seed": seed},
        "images": images,
        "annotations": anns,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
    }
    tmp = ann_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, ann_path)  # the json is written last: its presence marks a complete set
    return images_dir, ann_path


# --- the same images as a classification and a semantic segmentation task ---------------------

#: Classes of the segmentation task: the background, then :data:`CLASSES`.
SEG_CLASSES: tuple[str, ...] = ("background", *CLASSES)


def crops(sample: Sample, min_side: int = 16, margin: float = 1.4) -> list[tuple[np.ndarray, int]]:
    """Square crops around the objects of ``sample`` that show at least 70% of their box
    (``margin`` times the box's longer side, clipped to the image), with their class ids."""
    out = []
    h, w = sample.image.shape[:2]
    for k, (box, cid) in enumerate(zip(sample.boxes, sample.class_ids)):
        x0, y0, x1, y1 = (float(v) for v in box)
        bw, bh = x1 - x0, y1 - y0
        if min(bw, bh) < min_side or sample.instances is None:
            continue
        if (sample.instances[int(y0) : int(y1), int(x0) : int(x1)] == k).sum() < 0.35 * bw * bh:
            continue  # mostly hidden
        half = margin * max(bw, bh) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        a, b = int(max(0, cx - half)), int(max(0, cy - half))
        c, d = int(min(w, cx + half)), int(min(h, cy + half))
        out.append((np.ascontiguousarray(sample.image[b:d, a:c]), int(cid)))
    return out


def class_map(sample: Sample) -> np.ndarray:
    """Per-pixel class ids (uint8 HxW): 0 for the background, ``k + 1`` for class ``k``."""
    out = np.zeros(sample.image.shape[:2], dtype=np.uint8)
    if sample.instances is not None:
        for k, cid in enumerate(sample.class_ids):
            out[sample.instances == k] = int(cid) + 1
    return out


def _complete(marker: Path, expect: dict) -> bool:
    try:
        return json.loads(marker.read_text()) == expect
    except (OSError, ValueError):
        return False


def write_classification(out_dir: str | os.PathLike, split: str = "val", count: int = 300) -> Path:
    """Write ``count`` object crops of ``split`` as an image-folder data set: one folder per
    class (named as in :data:`CLASSES`), PNG files. Returns the root; complete output is reused."""
    root = Path(out_dir)
    marker = root / ".shapes.json"
    expect = {"task": "classify", "split": split, "count": count}
    if _complete(marker, expect):
        return root
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
    written, i = 0, 0
    while written < count:
        for crop, cid in crops(render(SPLIT_SEEDS[split], i)):
            if written < count:
                cv2.imwrite(str(root / CLASSES[cid] / f"{split}_{i:05d}_{written:05d}.png"), crop)
                written += 1
        i += 1
    marker.write_text(json.dumps(expect))  # last: its presence marks a complete set
    return root


def write_segmentation(out_dir: str | os.PathLike, split: str = "val", count: int = 100) -> Path:
    """Write ``count`` samples of ``split`` as a segmentation data set: ``images/*.png``,
    ``masks/*.png`` (class ids per pixel, :data:`SEG_CLASSES` order, 0 the background) and
    ``classes.txt``. Returns the root; complete output is reused."""
    root = Path(out_dir)
    marker = root / ".shapes.json"
    expect = {"task": "segment", "split": split, "count": count}
    if _complete(marker, expect):
        return root
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        s = render(SPLIT_SEEDS[split], i)
        cv2.imwrite(str(root / "images" / f"{split}_{i:05d}.png"), s.image)
        cv2.imwrite(str(root / "masks" / f"{split}_{i:05d}.png"), class_map(s))
    (root / "classes.txt").write_text("\n".join(SEG_CLASSES) + "\n")
    marker.write_text(json.dumps(expect))
    return root
