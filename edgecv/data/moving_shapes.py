"""Moving-shapes sequences: the shapes set's objects moving over its backgrounds, crossing,
occluding one another and entering and leaving the frame, with ground-truth track ids, written
as MOTChallenge sequences (``img1/``, ``gt/gt.txt``, ``seqinfo.ini``).

The objects and backgrounds are cut from :func:`edgecv.data.shapes.render` samples, so the
default detector, trained on that set, sees the shapes it knows. Deterministic: a sequence
depends only on the seed and its index.
"""

from __future__ import annotations

import configparser
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DatasetError
from ..video import VideoWriter, open_source
from .shapes import render

#: seeds of the samples the sprites and the backgrounds are cut from (apart from every split's)
SPRITE_SEED = 4_000_037
BACKGROUND_SEED = 5_000_011
FRAME_RATE = 30
SPRITE_SIDES = (32, 140)  # shortest and longest box side of an object, pixels
MAX_SPEED = 6.0  # pixels per frame
MIN_VISIBILITY = 0.05  # a row of gt.txt shows at least this share of its object


@dataclass(frozen=True)
class Sprite:
    """One object cut from a shapes sample: its pixels (h x w x 3 BGR), mask (h x w bool) and class id."""

    image: np.ndarray
    mask: np.ndarray
    class_id: int


def sprites(count: int, start: int = 0) -> list[Sprite]:
    """``count`` whole, unoccluded objects of the shapes renderer (box sides within
    :data:`SPRITE_SIDES`), cut from the samples of :data:`SPRITE_SEED` from ``start`` on."""
    out: list[Sprite] = []
    i = start
    while len(out) < count:
        s = render(SPRITE_SEED, i)
        i += 1
        assert s.instances is not None  # render draws every sample's instance map
        h, w = s.image.shape[:2]
        for k, (box, cid) in enumerate(zip(s.boxes, s.class_ids)):
            x0, y0, x1, y1 = (int(v) for v in box)
            if not (SPRITE_SIDES[0] <= min(x1 - x0, y1 - y0) and max(x1 - x0, y1 - y0) <= SPRITE_SIDES[1]):
                continue
            a, b, c, d = x0 - 2, y0 - 2, x1 + 2, y1 + 2
            if a < 0 or b < 0 or c > w or d > h:
                continue  # cut by the border
            window = s.instances[b:d, a:c]
            if np.any((window != k) & (window != -1)):
                continue  # touched or covered by another object: not whole
            mask = window[2:-2, 2:-2] == k  # the object's box
            out.append(Sprite(s.image[y0:y1, x0:x1].copy(), mask, int(cid)))
            if len(out) == count:
                break
    return out


def background(index: int, size: tuple[int, int]) -> np.ndarray:
    """A shapes background of ``size`` (w, h): a sample with few objects, its objects painted
    out (inpainted), resized."""
    i = index * 1000
    while True:
        s = render(BACKGROUND_SEED, i)
        i += 1
        assert s.instances is not None
        objects = s.instances >= 0
        if objects.mean() < 0.06:
            break
    hole = cv2.dilate(objects.astype(np.uint8), np.ones((7, 7), np.uint8))
    clean = cv2.inpaint(s.image, hole, 7, cv2.INPAINT_TELEA)
    return cv2.resize(clean, size, interpolation=cv2.INTER_LINEAR)


@dataclass
class _Track:
    sprite: Sprite
    depth: float
    start: int
    x: float
    y: float
    vx: float
    vy: float


def _tracks(rng: np.random.Generator, pool: list[Sprite], size: tuple[int, int], frames: int) -> list[_Track]:
    w, h = size
    n = len(pool)
    tracks: list[_Track] = []
    for j, sp in enumerate(pool):
        sh, sw = sp.mask.shape
        speed = rng.uniform(1.5, MAX_SPEED * 0.75)
        kind = j % 3
        if kind == 0:  # enters through a side at some frame, crosses the image
            start = int(rng.integers(0, max(1, frames // 2)))
            side = int(rng.integers(4))
            if side < 2:  # left or right
                x = -sw + 1.0 if side == 0 else w - 1.0
                y = rng.uniform(0, h - sh)
                ang = rng.uniform(-0.5, 0.5) + (0 if side == 0 else math.pi)
            else:  # top or bottom
                x = rng.uniform(0, w - sw)
                y = -sh + 1.0 if side == 2 else h - 1.0
                ang = rng.uniform(-0.5, 0.5) + (math.pi / 2 if side == 2 else -math.pi / 2)
        elif kind == 1:  # starts inside, heading for the centre band so that paths cross
            start = 0
            x, y = rng.uniform(0, w - sw), rng.uniform(0, h - sh)
            tx, ty = rng.uniform(0.3, 0.7) * w - sw / 2, rng.uniform(0.3, 0.7) * h - sh / 2
            ang = math.atan2(ty - y, tx - x) + rng.uniform(-0.3, 0.3)
        else:  # starts inside near a side and leaves through it within the first half
            start = 0
            gap = min(rng.uniform(0.1, 0.4) * frames * speed, (min(w - sw, h - sh)) / 2)
            side = int(rng.integers(4))
            if side < 2:
                x = gap if side == 0 else w - sw - gap
                y = rng.uniform(0, h - sh)
                ang = rng.uniform(-0.4, 0.4) + (math.pi if side == 0 else 0)
            else:
                x = rng.uniform(0, w - sw)
                y = gap if side == 2 else h - sh - gap
                ang = rng.uniform(-0.4, 0.4) + (-math.pi / 2 if side == 2 else math.pi / 2)
        depth = float(j + rng.uniform(0, n))  # draw order: larger is in front
        tracks.append(_Track(sp, depth, start, float(x), float(y), speed * math.cos(ang), speed * math.sin(ang)))
    return tracks


def render_sequence(seed: int, index: int, frames: int = 60, size: tuple[int, int] = (640, 384)):
    """Yield ``(image, rows)`` per frame of sequence ``index`` under ``seed``: ``image`` HxWx3
    uint8 BGR, ``rows`` a list of ``(track_id, x, y, w, h, class_id, visibility)`` with the
    object's whole box (clipped to the image, pixels), its 0-based class and the share of it in
    view. Objects entirely hidden or outside the image have no row."""
    rng = np.random.default_rng([seed, index, 19])
    w, h = size
    n_obj = int(rng.integers(6, 10))
    pool = sprites(n_obj, start=int(rng.integers(0, 10_000)))
    bg = background(int(rng.integers(0, 1_000)), size)
    tracks = _tracks(rng, pool, size, frames)
    order = sorted(range(len(tracks)), key=lambda j: tracks[j].depth)
    for t in range(frames):
        img = bg.copy()
        owner = np.full((h, w), -1, dtype=np.int32)
        placed: dict[int, tuple[int, int, int, int, int]] = {}
        for j in order:
            tr = tracks[j]
            if t < tr.start:
                continue
            sh, sw = tr.sprite.mask.shape
            x0, y0 = int(round(tr.x)), int(round(tr.y))
            a, b, c, d = max(0, x0), max(0, y0), min(w, x0 + sw), min(h, y0 + sh)
            if a >= c or b >= d:
                continue
            sel = tr.sprite.mask[b - y0 : d - y0, a - x0 : c - x0]
            img[b:d, a:c][sel] = tr.sprite.image[b - y0 : d - y0, a - x0 : c - x0][sel]
            owner[b:d, a:c][sel] = j
            placed[j] = (a, b, c, d, int(tr.sprite.mask.sum()))
        noise = rng.normal(0, 2.0, size=img.shape)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        counts = np.bincount(owner.ravel() + 1, minlength=len(tracks) + 1)[1:]
        rows = []
        for j, (a, b, c, d, total) in sorted(placed.items()):
            vis = counts[j] / total
            if vis >= MIN_VISIBILITY:
                rows.append((j + 1, a, b, c - a, d - b, tracks[j].sprite.class_id, float(vis)))
        yield img, rows
        for tr in tracks:  # linear motion with small random accelerations
            if t >= tr.start:
                tr.x += tr.vx
                tr.y += tr.vy
                tr.vx, tr.vy = tr.vx + rng.normal(0, 0.12), tr.vy + rng.normal(0, 0.12)
                speed = math.hypot(tr.vx, tr.vy)
                if speed > MAX_SPEED:
                    tr.vx, tr.vy = tr.vx * MAX_SPEED / speed, tr.vy * MAX_SPEED / speed


def write_mot(
    out_dir: str | os.PathLike,
    sequences: int = 4,
    frames: int = 60,
    size: tuple[int, int] = (640, 384),
    seed: int = 0,
) -> list[Path]:
    """Write ``sequences`` moving-shapes sequences of ``frames`` frames as MOTChallenge sequences.

    Each is ``out_dir/<name>/`` with ``img1/000001.jpg ...``, ``gt/gt.txt`` (rows
    ``frame,id,x,y,w,h,1,class,visibility``: 1-based frame, track id and class in
    :data:`~edgecv.data.shapes.CLASSES` order, the whole box in pixels clipped to the image,
    the share of it in view) and ``seqinfo.ini``. Complete output is reused.

    Returns:
        The sequence folders, in order.
    """
    out = Path(out_dir)
    dirs = []
    for i in range(sequences):
        name = f"shapes-s{seed}-{i + 1:02d}"
        seq = out / name
        dirs.append(seq)
        marker = seq / ".moving_shapes.json"
        expect = {"seed": seed, "index": i, "frames": frames, "size": list(size)}
        try:
            if json.loads(marker.read_text()) == expect:
                continue
        except (OSError, ValueError):
            pass
        (seq / "img1").mkdir(parents=True, exist_ok=True)
        (seq / "gt").mkdir(exist_ok=True)
        lines = []
        for t, (img, rows) in enumerate(render_sequence(seed, i, frames, size)):
            cv2.imwrite(str(seq / "img1" / f"{t + 1:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            lines += [f"{t + 1},{tid},{x},{y},{bw},{bh},1,{cid + 1},{vis:.3f}" for tid, x, y, bw, bh, cid, vis in rows]
        (seq / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
        info = configparser.ConfigParser()
        info.optionxform = str  # type: ignore[assignment,method-assign]  # keep MOTChallenge's key case
        info["Sequence"] = {
            "name": name,
            "imDir": "img1",
            "frameRate": str(FRAME_RATE),
            "seqLength": str(frames),
            "imWidth": str(size[0]),
            "imHeight": str(size[1]),
            "imExt": ".jpg",
        }
        with open(seq / "seqinfo.ini", "w") as f:
            info.write(f, space_around_delimiters=False)
        marker.write_text(json.dumps(expect))  # last: its presence marks a complete sequence
    return dirs


def write_video(seq_dir: str | os.PathLike, path: str | os.PathLike, fps: float | None = None) -> Path:
    """Write the frames of MOTChallenge sequence ``seq_dir`` as an mp4 at ``fps`` (default: its
    seqinfo.ini ``frameRate``). Returns ``path``."""
    seq = Path(seq_dir)
    info = configparser.ConfigParser()
    info.optionxform = str  # type: ignore[assignment,method-assign]
    info.read(seq / "seqinfo.ini")
    section = dict(info["Sequence"]) if info.has_section("Sequence") else {}
    rate = float(fps or section.get("frameRate") or FRAME_RATE)
    frames = seq / section.get("imDir", "img1")
    if not frames.is_dir():
        raise DatasetError(f"'{seq}' has no {frames.name}/ folder of frames: is it a MOTChallenge sequence?")
    with open_source(frames, fps=rate) as src:
        out: VideoWriter | None = None
        try:
            for frame in src:
                if out is None:
                    out = VideoWriter(path, rate, (frame.image.shape[1], frame.image.shape[0]))
                out.write(frame.image)
        finally:
            if out is not None:
                out.close()
    return Path(path)
