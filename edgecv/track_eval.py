"""Tracking accuracy: HOTA, MOTA, IDF1 and ID switches of a detector plus a tracker on
MOTChallenge sequences, and the paired comparison of a bundle's tracks with its source's.

The metrics are trackeval's own (its ``HOTA``, ``CLEAR`` and ``Identity`` classes, called per
sequence and combined with their ``combine_sequences``); this module only reads the files and
builds what those classes take: per frame, the ground-truth and tracker ids and their IoU
matrix. Evaluation is class-agnostic, as trackeval's MOT15 benchmark is: every ground-truth
row whose ``conf`` column is not 0 is a target, every tracker row a hypothesis.

A data set is a folder of MOTChallenge sequences, or one sequence::

    <seq>/seqinfo.ini     [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    <seq>/img1/000001.jpg ...
    <seq>/gt/gt.txt       frame,id,x,y,w,h,conf,class,visibility   (frames from 1, boxes in pixels)

Tracker results use the same rows (``frame,id,x,y,w,h,score,class,...``), one array per
sequence as :func:`read_mot_txt` returns it.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .comparison import comparison_record, gate_failures, intervals, model_name
from .console import count, points, progress_bar, table
from .errors import DatasetError, EdgecvError
from .images import IMAGE_SUFFIXES

#: the columns of :func:`read_mot_txt`'s rows
COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "visibility")
#: fewer sequences than this are too few to resample: the bootstrap draws blocks of frames instead
MIN_SEQUENCES = 8
#: the length of those blocks, in frames
BLOCK_FRAMES = 10
#: two boxes are the same box in the identical-track-set share when no corner moves more (pixels)
BOX_TOL = 1.0
#: the figures a comparison reports a difference of, with an interval each (``hota`` is the gate's)
DELTAS = ("hota", "mota", "idf1")


# --- files ----------------------------------------------------------------------------------------


def read_mot_txt(path: str | os.PathLike) -> np.ndarray:
    """Read a MOTChallenge text file (ground truth or tracker results).

    Rows are ``frame,id,x,y,w,h[,conf[,class[,visibility[,...]]]]``, separated by commas or
    white space; a missing ``conf`` or ``visibility`` is 1, a missing ``class`` -1, and columns
    after the ninth (a tracker file's world coordinates) are ignored.

    Returns:
        float64 [N, 9]: ``frame, id, x, y, w, h, conf, class, visibility`` (:data:`COLUMNS`),
        ``x, y`` the box's top-left corner in pixels; sorted by frame, then id.

    Raises:
        DatasetError: the file is missing, or a line (named by number) is not such a row.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read MOT file {path}: {e}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        where = f"{path}, line {n}"
        if len(fields) < 6:
            raise DatasetError(f"{where}: {len(fields)} fields, a MOT row has at least 6 (frame,id,x,y,w,h): {line!r}")
        try:
            values = [float(f) for f in fields[:9]]
        except ValueError:
            raise DatasetError(f"{where}: not a number in {line!r}") from None
        if not all(np.isfinite(values)):
            raise DatasetError(f"{where}: a value is not finite: {line!r}")
        values += [1.0, -1.0, 1.0][len(values) - 6 :]
        frame, ident, _, _, w, h = values[:6]
        if frame < 1 or frame != int(frame):
            raise DatasetError(f"{where}: frame {fields[0]} is not a whole number from 1")
        if ident != int(ident):
            raise DatasetError(f"{where}: id {fields[1]} is not a whole number")
        if w < 0 or h < 0:
            raise DatasetError(f"{where}: negative width or height ({fields[4]}, {fields[5]})")
        rows.append(values)
    out = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def write_mot_txt(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write rows as :func:`read_mot_txt` returns them (``frame,id,x,y,w,h,conf,class,visibility``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{int(r[0])},{int(r[1])},{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.3f},{r[6]:.5g},{int(r[7])},{r[8]:.5g}"
        for r in np.asarray(rows).reshape(-1, 9)
    ]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _line_of(text: str, key: str) -> int:
    """The line number of ``key = ...`` in an ini file's text (0 where it is not there)."""
    for n, line in enumerate(text.splitlines(), 1):
        if line.split("=", 1)[0].strip().lower() == key.lower():
            return n
    return 0


def read_seqinfo(path: str | os.PathLike) -> dict:
    """A sequence's ``seqinfo.ini``: its ``[Sequence]`` section with ``seqLength`` (required),
    ``name``, ``imDir`` (default img1), ``imExt`` (.jpg), ``frameRate``, ``imWidth``, ``imHeight``.

    Raises:
        DatasetError: the file cannot be parsed, or a value (named with its line) is missing or wrong.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as e:
        raise DatasetError(
            f"{path}, line {e.lineno}: a value before the [Sequence] header: {e.line.strip()!r}"
        ) from None
    except configparser.Error as e:
        line = getattr(e, "lineno", None)
        raise DatasetError(
            f"{path}{f', line {line}' if line else ''}: not a valid seqinfo.ini ({type(e).__name__}: "
            f"{' '.join(str(e).split())})"
        ) from None
    if not parser.has_section("Sequence"):
        raise DatasetError(f"{path} has no [Sequence] section (MOTChallenge's seqinfo.ini)")
    sec = parser["Sequence"]

    def number(key: str, kind: type, default: Any = None, required: bool = False) -> Any:
        if key not in sec:
            if required:
                raise DatasetError(f"{path}: [Sequence] has no {key}")
            return default
        try:
            value = kind(sec[key])
        except ValueError:
            raise DatasetError(
                f"{path}, line {_line_of(text, key)}: {key} = {sec[key]!r} is not a{'n integer' if kind is int else ' number'}"
            ) from None
        if value <= 0:
            raise DatasetError(f"{path}, line {_line_of(text, key)}: {key} must be positive, not {sec[key]}")
        return value

    return {
        "name": sec.get("name", path.parent.name),
        "imDir": sec.get("imDir", "img1"),
        "imExt": sec.get("imExt", ".jpg"),
        "seqLength": number("seqLength", int, required=True),
        "frameRate": number("frameRate", float, 30.0),
        "imWidth": number("imWidth", int),
        "imHeight": number("imHeight", int),
    }


# --- data sets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotSequence:
    """One MOTChallenge sequence: its frames and ground truth.

    Attributes:
        name: the sequence's name (its folder's).
        root: the sequence's folder.
        images: the frames, in order (``images[k]`` is frame ``k + 1``).
        gt: float64 [M, 9] ground-truth rows (:data:`COLUMNS`); rows with ``conf`` 0 are ignored.
        frame_rate: frames per second (seqinfo.ini's frameRate).
    """

    name: str
    root: Path
    images: tuple[Path, ...]
    gt: np.ndarray
    frame_rate: float = 30.0

    @property
    def length(self) -> int:
        return len(self.images)

    @property
    def image_dir(self) -> Path:
        return self.images[0].parent if self.images else self.root / "img1"


@dataclass(frozen=True)
class TrackDataset:
    """MOTChallenge sequences with ground-truth tracks (:func:`load_mot`)."""

    name: str
    root: Path
    sequences: tuple[MotSequence, ...]
    sha256: str
    task: str = "track"  # the evaluation it is for (edgecv.evaluation looks it up)
    format: str = "mot"

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def frames(self) -> int:
        return sum(s.length for s in self.sequences)

    def describe(self) -> str:
        """``4 sequences, 240 frames``."""
        return f"{count(len(self), 'sequence')}, {count(self.frames, 'frame')}"


def _is_sequence(folder: Path) -> bool:
    return (folder / "seqinfo.ini").is_file() or (folder / "gt" / "gt.txt").is_file()


def load_sequence(folder: str | os.PathLike) -> MotSequence:
    """One sequence folder: ``seqinfo.ini``, its frames (``imDir``) and ``gt/gt.txt``.

    Raises:
        DatasetError: a file is missing or malformed (named, with the line), the frame count is
            not seqLength, or the ground truth names a frame past the last or one id twice in a frame.
    """
    folder = Path(folder)
    info_path, gt_path = folder / "seqinfo.ini", folder / "gt" / "gt.txt"
    if not info_path.is_file():
        raise DatasetError(f"sequence {folder} has no seqinfo.ini (MOTChallenge: [Sequence] with seqLength, imDir)")
    if not gt_path.is_file():
        raise DatasetError(f"sequence {folder} has no ground truth {gt_path}")
    info = read_seqinfo(info_path)
    img_dir = folder / info["imDir"]
    if not img_dir.is_dir():
        raise DatasetError(f"{info_path}: imDir {info['imDir']!r} is not a folder in {folder}")
    images = tuple(sorted(p for p in img_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
    if len(images) != info["seqLength"]:
        raise DatasetError(
            f"{info_path}: seqLength is {info['seqLength']} but {img_dir} holds {count(len(images), 'image')}"
        )
    gt = read_mot_txt(gt_path)
    if len(gt) and gt[:, 0].max() > info["seqLength"]:
        row = int(np.argmax(gt[:, 0]))
        raise DatasetError(
            f"{gt_path}: frame {int(gt[row, 0])} is past the sequence's last ({info['seqLength']}, seqinfo.ini)"
        )
    keys = gt[:, :2]
    if len(keys) and len(np.unique(keys, axis=0)) != len(keys):
        dup = keys[np.flatnonzero((np.diff(keys, axis=0) == 0).all(axis=1))[0]]
        raise DatasetError(f"{gt_path}: id {int(dup[1])} appears twice in frame {int(dup[0])}")
    return MotSequence(folder.name, folder, images, gt, info["frameRate"])


def load_mot(root: str | os.PathLike) -> TrackDataset:
    """A MOTChallenge data set: a folder of sequence folders, or one sequence folder.

    Raises:
        DatasetError: no sequence is found, or one is malformed (see :func:`load_sequence`).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"tracking data '{root}' is not a folder: give MOTChallenge sequences or one sequence")
    if _is_sequence(root):
        folders = [root]
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and _is_sequence(p))
    if not folders:
        raise DatasetError(
            f"no MOTChallenge sequence in {root}: each sequence is a folder with seqinfo.ini, img1/ and gt/gt.txt"
        )
    sequences = tuple(load_sequence(f) for f in folders)
    digest = hashlib.sha256()
    for s in sequences:
        digest.update(f"{s.name}:{s.length}\n".encode())
        digest.update(np.ascontiguousarray(s.gt).tobytes())
    return TrackDataset(root.name, root, sequences, digest.hexdigest())


# --- metrics --------------------------------------------------------------------------------------


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes given as ``x, y, w, h`` ([N, 4] and [M, 4]) -> [N, M] (trackeval's box IoU)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0][:, None], b[:, 0][None]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1][:, None], b[:, 1][None]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > np.finfo(float).eps, inter / np.maximum(union, np.finfo(float).eps), 0.0)


def _by_frame(rows: np.ndarray, first: int, last: int) -> list[np.ndarray]:
    """Rows of frames ``first..last`` (inclusive), one array per frame."""
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    frames = rows[:, 0]
    cuts = np.searchsorted(frames, np.arange(first, last + 2), side="left")
    return [rows[cuts[i] : cuts[i + 1]] for i in range(last - first + 1)]


def sequence_data(gt: np.ndarray, tracks: np.ndarray, first: int, last: int) -> dict:
    """What trackeval's metrics take for frames ``first..last`` of one sequence: per frame the
    ground-truth and tracker ids (relabelled 0..n-1) and their IoU matrix; ground truth with
    ``conf`` 0 is left out.

    Raises:
        EdgecvError: the tracker gives one id to two boxes of a frame.
    """
    gt = gt[gt[:, 6] != 0]
    gt_frames, tr_frames = _by_frame(gt, first, last), _by_frame(tracks, first, last)
    gt_ids_all = np.unique(np.concatenate([f[:, 1] for f in gt_frames])) if gt_frames else np.zeros(0)
    tr_ids_all = np.unique(np.concatenate([f[:, 1] for f in tr_frames])) if tr_frames else np.zeros(0)
    data: dict[str, Any] = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for t, (g, r) in enumerate(zip(gt_frames, tr_frames)):
        if len(np.unique(r[:, 1])) != len(r):
            raise EdgecvError(f"the tracker gave one id to two boxes in frame {first + t}")
        data["gt_ids"].append(np.searchsorted(gt_ids_all, g[:, 1]).astype(int))
        data["tracker_ids"].append(np.searchsorted(tr_ids_all, r[:, 1]).astype(int))
        data["similarity_scores"].append(box_iou(g[:, 2:6], r[:, 2:6]))
    data.update(
        num_timesteps=last - first + 1,
        num_gt_ids=len(gt_ids_all),
        num_tracker_ids=len(tr_ids_all),
        num_gt_dets=int(sum(len(f) for f in gt_frames)),
        num_tracker_dets=int(sum(len(f) for f in tr_frames)),
    )
    return data


_METRICS: tuple | None = None


def _metrics() -> tuple:
    """trackeval's HOTA, CLEAR and Identity (imported when first used: evaluation only)."""
    global _METRICS
    if _METRICS is None:
        try:
            from trackeval.metrics import CLEAR, HOTA, Identity
        except ImportError:
            raise EdgecvError("tracking metrics need trackeval: pip install 'edgecv[track-eval]'") from None
        _METRICS = (HOTA(), CLEAR({"PRINT_CONFIG": False}), Identity({"PRINT_CONFIG": False}))
    return _METRICS


def eval_sequence(data: dict) -> dict[str, dict]:
    """trackeval's per-sequence results on :func:`sequence_data`'s dict, by metric class name."""
    return {m.get_name(): m.eval_sequence(data) for m in _metrics()}


def combine(raw: Sequence[dict[str, dict]]) -> dict[str, dict]:
    """Sequences' results combined the way trackeval combines them (each metric's ``combine_sequences``)."""
    return {m.get_name(): m.combine_sequences({i: r[m.get_name()] for i, r in enumerate(raw)}) for m in _metrics()}


#: the figures reported: name -> (trackeval metric class, its field); HOTA's fields, one value per
#: IoU threshold, are averaged over the thresholds, as trackeval reports them
FIGURES: dict[str, tuple[str, str]] = {
    "hota": ("HOTA", "HOTA"),
    "deta": ("HOTA", "DetA"),
    "assa": ("HOTA", "AssA"),
    "loca": ("HOTA", "LocA"),
    "mota": ("CLEAR", "MOTA"),
    "motp": ("CLEAR", "MOTP"),
    "idf1": ("Identity", "IDF1"),
    "idp": ("Identity", "IDP"),
    "idr": ("Identity", "IDR"),
    "idsw": ("CLEAR", "IDSW"),
    "tp": ("CLEAR", "CLR_TP"),
    "fp": ("CLEAR", "CLR_FP"),
    "fn": ("CLEAR", "CLR_FN"),
    "mt": ("CLEAR", "MT"),
    "ml": ("CLEAR", "ML"),
    "frag": ("CLEAR", "Frag"),
}


def summary(res: dict[str, dict]) -> dict[str, float]:
    """The :data:`FIGURES` of trackeval's results: fractions in [0, 1], counts as floats."""
    return {k: float(np.mean(res[metric][name])) for k, (metric, name) in FIGURES.items()}


@dataclass(frozen=True)
class TrackMetrics:
    """Tracking accuracy on a data set: the combined figures (:func:`summary`), the same per
    sequence, and trackeval's raw results per sequence (what a bootstrap combines)."""

    stats: dict[str, float]
    per_sequence: dict[str, dict[str, float]]
    raw: dict[str, dict[str, dict]] = field(repr=False, default_factory=dict)
    task: str = "track"
    primary_key: str = "hota"

    @property
    def primary(self) -> float:
        """HOTA: the figure the gate is on."""
        return self.stats[self.primary_key]

    @property
    def primary_name(self) -> str:
        return "HOTA"

    @property
    def per_class(self) -> dict[str, float]:  # the per-table the evaluation stack prints: HOTA per sequence
        return {k: v["hota"] for k, v in self.per_sequence.items()}

    def to_dict(self) -> dict:
        return {"stats": self.stats, "per_sequence": self.per_sequence}


def _results_for(gt: TrackDataset, results: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [s.name for s in gt.sequences if s.name not in results]
    if missing:
        raise EdgecvError(f"no tracker results for sequence(s) {missing}")
    out = {}
    for s in gt.sequences:
        rows = np.asarray(results[s.name], dtype=np.float64).reshape(-1, 9)
        rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
        if len(rows) and (rows[0, 0] < 1 or rows[-1, 0] > s.length):
            raise EdgecvError(f"tracker results of {s.name} name frame {int(rows[-1, 0])}, outside 1..{s.length}")
        out[s.name] = rows
    return out


def evaluate_sequences(gt: TrackDataset, results_per_sequence: Mapping[str, np.ndarray]) -> TrackMetrics:
    """HOTA, MOTA, IDF1, ID switches (trackeval) of tracker results on ground truth, per sequence
    and combined over the sequences as trackeval combines them.

    Args:
        gt: the data set (:func:`load_mot`).
        results_per_sequence: sequence name -> float [N, 9] rows (:func:`read_mot_txt`'s columns;
            ``conf``, ``class`` and ``visibility`` are not used).

    Raises:
        EdgecvError: a sequence has no results, or results name frames outside it.
    """
    results = _results_for(gt, results_per_sequence)
    raw = {s.name: eval_sequence(sequence_data(s.gt, results[s.name], 1, s.length)) for s in gt.sequences}
    return TrackMetrics(summary(combine(list(raw.values()))), {k: summary(v) for k, v in raw.items()}, raw)


# --- runs -----------------------------------------------------------------------------------------


def rows_of(frame_number: int, dets: Any) -> np.ndarray:
    """MOT rows [N, 9] of one frame's tracked detections (boxes without a tracker id left out)."""
    ids = getattr(dets, "tracker_ids", None)
    if ids is None or len(dets.xyxy) == 0:
        return np.zeros((0, 9))
    ids = np.asarray(ids).reshape(-1)
    keep = ids >= 0
    xyxy = np.asarray(dets.xyxy, dtype=np.float64)[keep]
    n = len(xyxy)
    return np.column_stack(
        [
            np.full(n, frame_number),
            ids[keep],
            xyxy[:, 0],
            xyxy[:, 1],
            xyxy[:, 2] - xyxy[:, 0],
            xyxy[:, 3] - xyxy[:, 1],
            np.asarray(dets.scores, dtype=np.float64)[keep],
            np.asarray(dets.class_ids, dtype=np.float64)[keep],
            np.full(n, -1.0),
        ]
    ).reshape(-1, 9)


def _track_sequences(
    det: Any, dataset: TrackDataset, tracker: str, conf: float | None, name: str, progress: bool
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Each sequence tracked from its first frame with a fresh tracker made for its frame rate;
    the MOT rows per sequence and the time of every frame (ms, from one yield to the next)."""
    from .tracking import make_tracker, track

    results, times = {}, []
    bar = progress_bar(range(dataset.frames), dataset.frames, name, progress)
    ticks = iter(bar)
    for seq in dataset.sequences:
        rows, n = [], 0
        t0 = time.perf_counter()
        for frame, dets in track(det, str(seq.image_dir), make_tracker(tracker, frame_rate=seq.frame_rate), conf=conf):
            times.append((time.perf_counter() - t0) * 1000)
            n += 1
            rows.append(rows_of(frame.index + 1, dets))
            next(ticks, None)
            t0 = time.perf_counter()
        if n != seq.length:
            raise EdgecvError(
                f"tracking {seq.name} gave {count(n, 'frame')}; the sequence has {seq.length} (seqinfo.ini)"
            )
        results[seq.name] = np.concatenate(rows) if rows else np.zeros((0, 9))
    if hasattr(bar, "close"):
        bar.close()
    return results, times


def run_tracking(
    det: Any, dataset: TrackDataset, tracker: str = "bytetrack", conf: float | None = None, progress: bool = False
) -> dict[str, np.ndarray]:
    """Track every sequence of ``dataset`` with ``det`` and a fresh ``tracker`` each
    (:func:`edgecv.tracking.track` over the sequence's frames).

    Returns:
        sequence name -> float64 [N, 9] MOT rows (:data:`COLUMNS`; ``conf`` is the score,
        ``visibility`` -1), frames numbered from 1 in the sequence's order.
    """
    return _track_sequences(det, dataset, tracker, conf, model_name(None, det), progress)[0]


@dataclass
class TrackRun:
    """One model's tracks over a data set and their metrics."""

    name: str
    results: dict[str, np.ndarray]
    latency_ms: list[float]  # per frame: decode, inference and tracking
    metrics: TrackMetrics
    info: dict = field(default_factory=dict)
    task: str = "track"

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latency_ms) if self.latency_ms else float("nan")


def evaluate(
    det: Any,
    dataset: TrackDataset,
    name: str | None = None,
    progress: bool = True,
    warmup: int = 3,
    tracker: str = "bytetrack",
    conf: float | None = None,
    max_dets: int | None = None,
) -> TrackRun:
    """Track every sequence with ``det`` and ``tracker`` and score the tracks (``max_dets`` is a
    detection evaluation's; the detector's own limit applies)."""
    if not isinstance(dataset, TrackDataset):
        raise EdgecvError(
            "tracking is evaluated on MOTChallenge sequences (load_mot), not on a " + type(dataset).__name__
        )
    if det.task != "detect":
        raise EdgecvError(f"tracking needs a detector; this model's task is {det.task}")
    name = name or model_name(None, det)
    if warmup and dataset.sequences and dataset.sequences[0].images:
        from .images import read_image

        first = read_image(dataset.sequences[0].images[0])
        for _ in range(warmup):
            det(first)
    results, times = _track_sequences(det, dataset, tracker, conf, name, progress)
    info = {
        "target": det.manifest["target"],
        "precision": det.manifest["precision"],
        "tracker": tracker,
        "conf": conf,
    }
    return TrackRun(name, results, times, evaluate_sequences(dataset, results), info)


# --- paired comparison ----------------------------------------------------------------------------


def identical_frames(ref: np.ndarray, cand: np.ndarray, length: int, box_tol: float = BOX_TOL) -> tuple[int, int]:
    """How many frames of one sequence the two trackers give the same track set: the same
    number of boxes, each matched one to one with a box of the same class within ``box_tol``
    pixels on every side, and the same ids up to one relabelling kept for the whole sequence
    (the first frame that pairs a reference id with a candidate id fixes that pair).

    Returns:
        (frames with identical track sets, frames with the same boxes whatever their ids).
    """
    from scipy.optimize import linear_sum_assignment

    same_ids = same_boxes = 0
    to_cand: dict[float, float] = {}
    to_ref: dict[float, float] = {}
    for r, c in zip(_by_frame(ref, 1, length), _by_frame(cand, 1, length)):
        if len(r) != len(c):
            continue
        if len(r) == 0:
            same_ids += 1
            same_boxes += 1
            continue
        rb = np.column_stack([r[:, 2:4], r[:, 2:4] + r[:, 4:6]])
        cb = np.column_stack([c[:, 2:4], c[:, 2:4] + c[:, 4:6]])
        dist = np.abs(rb[:, None] - cb[None]).max(axis=2)
        dist[r[:, 7][:, None] != c[:, 7][None]] = np.inf
        rows, cols = linear_sum_assignment(np.where(np.isfinite(dist), dist, 1e9))
        if not (dist[rows, cols] <= box_tol).all():
            continue
        same_boxes += 1
        pairs = list(zip(r[rows, 1], c[cols, 1]))
        if all(to_cand.get(a, b) == b and to_ref.get(b, a) == a for a, b in pairs):
            same_ids += 1
        for a, b in pairs:
            if a not in to_cand and b not in to_ref:
                to_cand[a], to_ref[b] = b, a
    return same_ids, same_boxes


def track_parity(ref: TrackRun, cand: TrackRun, dataset: TrackDataset, box_tol: float = BOX_TOL) -> dict:
    """The share of frames where the candidate's track set is the reference's
    (:func:`identical_frames`), over every sequence."""
    same = boxes = 0
    for s in dataset.sequences:
        a, b = identical_frames(ref.results[s.name], cand.results[s.name], s.length, box_tol)
        same, boxes = same + a, boxes + b
    n = dataset.frames
    return {
        "identical_frames": same,
        "same_boxes_frames": boxes,
        "frames": n,
        "identical_share": same / n if n else float("nan"),
        "box_tol": box_tol,
    }


def bootstrap_units(dataset: TrackDataset) -> tuple[str, list[tuple[str, int, int]]]:
    """What the bootstrap resamples: whole sequences when there are :data:`MIN_SEQUENCES` or
    more, else blocks of :data:`BLOCK_FRAMES` consecutive frames (the last of a sequence may
    be shorter). Returns the unit's name and the units as (sequence, first, last frame)."""
    if len(dataset) >= MIN_SEQUENCES:
        return "sequences", [(s.name, 1, s.length) for s in dataset.sequences]
    blocks = [
        (s.name, first, min(first + BLOCK_FRAMES - 1, s.length))
        for s in dataset.sequences
        for first in range(1, s.length + 1, BLOCK_FRAMES)
    ]
    return f"blocks of {BLOCK_FRAMES} frames", blocks


def paired_bootstrap(
    dataset: TrackDataset, runs: Sequence[TrackRun], n: int = 200, seed: int = 0, level: float = 0.95
) -> tuple[str, int, dict[str, list[dict]]]:
    """Bootstrap of the differences of HOTA, MOTA and IDF1 (candidate - reference, ``runs[0]`` the
    reference) over sequences, or over blocks of frames where sequences are few
    (:func:`bootstrap_units`); every model is scored on the same draws, each draw combined as
    trackeval combines sequences.

    Returns:
        (the unit's name, how many units, metric -> one :func:`edgecv.comparison.intervals` record per candidate).
    """
    unit, units = bootstrap_units(dataset)
    by_name = {s.name: s for s in dataset.sequences}
    per_run = []
    for run in runs:
        if unit == "sequences":
            per_run.append([run.metrics.raw[name] for name, _, _ in units])
        else:
            per_run.append(
                [
                    eval_sequence(sequence_data(by_name[name].gt, run.results[name], first, last))
                    for name, first, last in units
                ]
            )
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[list[float]]] = {k: [[] for _ in runs[1:]] for k in DELTAS}
    for _ in range(n):
        draw = rng.integers(0, len(units), size=len(units))
        stats = [summary(combine([raw[i] for i in draw])) for raw in per_run]
        for k in DELTAS:
            for j, s in enumerate(stats[1:]):
                diffs[k][j].append(s[k] - stats[0][k])
    return unit, len(units), {k: intervals(diffs[k], n, seed, level) for k in DELTAS}


@dataclass
class TrackComparison:
    name: str
    delta: float  # candidate - reference, HOTA (fraction)
    ci: dict  # HOTA's interval
    deltas: dict[str, float]  # hota, mota, idf1
    cis: dict[str, dict]
    parity: dict

    @property
    def delta_map(self) -> float:  # the name the detection harness's callers read
        return self.delta

    def to_dict(self) -> dict:
        return {"name": self.name, "deltas": self.deltas, "ci": self.cis, "parity": self.parity}


@dataclass
class TrackCompareResult:
    dataset: dict
    runs: list[TrackRun]
    comparisons: list[TrackComparison]
    settings: dict
    task: str = "track"

    def failures(self, max_drop: float | None) -> list[str]:
        """Messages for each candidate that loses more than ``max_drop`` HOTA points."""
        return gate_failures(self.runs, self.comparisons, max_drop)

    def to_dict(self) -> dict:
        return comparison_record(self)


def dataset_info(dataset: TrackDataset) -> dict:
    return {
        "name": dataset.name,
        "format": dataset.format,
        "sequences": len(dataset),
        "frames": dataset.frames,
        "sha256": dataset.sha256,
    }


def compare(
    models: Sequence[tuple[str, Any]],
    dataset: TrackDataset,
    *,
    tracker: str = "bytetrack",
    bootstrap: int = 200,
    seed: int = 0,
    conf: float | None = None,
    max_dets: int | None = None,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> TrackCompareResult:
    """Track the same sequences with every model and compare each candidate with the first (the
    reference, usually the PyTorch source): HOTA, MOTA and IDF1 differences with a paired
    bootstrap interval, and the share of frames with identical track sets.

    Args:
        models: (name, detector) pairs, the reference first.
        tracker: the tracker every model's detections go through (:func:`edgecv.tracking.make_tracker`).
        bootstrap: resamples (0: no interval); over sequences, or over blocks of
            :data:`BLOCK_FRAMES` frames when there are fewer than :data:`MIN_SEQUENCES`.
        conf: the detections' score floor handed to the tracker (None: ``track``'s default).
    """
    if len(models) < 2:
        raise EdgecvError("compare needs a reference and at least one candidate")
    runs = [evaluate(det, dataset, name, progress=progress, tracker=tracker, conf=conf) for name, det in models]
    unit, n_units = bootstrap_units(dataset)[0], len(bootstrap_units(dataset)[1])
    if bootstrap:
        if say:
            say(f"paired bootstrap over {n_units} {unit}, {bootstrap} resamples, seed {seed}")
        unit, n_units, cis = paired_bootstrap(dataset, runs, bootstrap, seed)
    else:
        cis = {k: intervals([[] for _ in runs[1:]], 0, seed) for k in DELTAS}
    ref = runs[0]
    comps = []
    for j, run in enumerate(runs[1:]):
        deltas = {k: run.metrics.stats[k] - ref.metrics.stats[k] for k in DELTAS}
        run_cis = {k: cis[k][j] for k in DELTAS}
        comps.append(
            TrackComparison(run.name, deltas["hota"], run_cis["hota"], deltas, run_cis, track_parity(ref, run, dataset))
        )
    settings = {
        "tracker": tracker,
        "conf": conf,
        "bootstrap": bootstrap,
        "seed": seed,
        "bootstrap_unit": unit,
        "bootstrap_units": n_units,
        "box_tol": BOX_TOL,
    }
    return TrackCompareResult(dataset_info(dataset), runs, comps, settings)


# --- tables ---------------------------------------------------------------------------------------


def _ci(c: dict) -> str:
    return "—" if np.isnan(c["low"]) else f"[{c['low'] * 100:+.2f}, {c['high'] * 100:+.2f}]"


def metrics_table(runs: Sequence[TrackRun]) -> str:
    """HOTA, DetA, AssA, MOTA, MOTP, IDF1 (points), ID switches, FP, FN and the median time per frame."""
    head = ("model", "HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN", "ms/frame")
    rows = []
    for r in runs:
        s = r.metrics.stats
        rows.append(
            (
                r.name,
                *(points(s[k]) for k in ("hota", "deta", "assa", "mota", "motp", "idf1")),
                *(str(int(s[k])) for k in ("idsw", "fp", "fn")),
                f"{r.median_ms:.2f}",
            )
        )
    return table(head, rows)


def per_class_table(runs: Sequence[TrackRun]) -> str:
    """HOTA per sequence (points), per model: tracking's table beside the combined figures."""
    names = list(runs[0].metrics.per_sequence)
    return table(
        ("sequence (HOTA)", *(r.name for r in runs)),
        [(n, *(points(r.metrics.per_sequence.get(n, {}).get("hota", np.nan)) for r in runs)) for n in names],
    )


def compare_table(result: TrackCompareResult) -> str:
    """One row per candidate: HOTA and its difference with the interval, MOTA's and IDF1's
    differences with theirs, ID switches, and the share of frames with identical track sets."""
    ref = result.runs[0]
    rows = [
        (
            ref.name,
            points(ref.metrics.primary),
            "reference",
            "",
            "",
            "",
            str(int(ref.metrics.stats["idsw"])),
            "",
            f"{ref.median_ms:.2f}",
        )
    ]
    for run, c in zip(result.runs[1:], result.comparisons):
        share = c.parity["identical_share"]
        rows.append(
            (
                run.name,
                points(run.metrics.primary),
                f"{c.deltas['hota'] * 100:+.2f}",
                _ci(c.cis["hota"]),
                f"{c.deltas['mota'] * 100:+.2f} {_ci(c.cis['mota'])}",
                f"{c.deltas['idf1'] * 100:+.2f} {_ci(c.cis['idf1'])}",
                str(int(run.metrics.stats["idsw"])),
                "—" if np.isnan(share) else f"{share * 100:.2f}%",
                f"{run.median_ms:.2f}",
            )
        )
    head = (
        "model",
        "HOTA",
        "Δ HOTA",
        "95% CI",
        "Δ MOTA [95% CI]",
        "Δ IDF1 [95% CI]",
        "IDSW",
        "identical frames",
        "ms/frame",
    )
    return table(head, rows)


# --- the evaluator interface (see edgecv.evaluation) ---------------------------------------------


def load_data(
    data: str | os.PathLike,
    task: str = "track",
    images: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    fmt: str | None = None,
) -> TrackDataset:
    """:func:`load_mot` (``images``, ``names`` and ``fmt`` have no use here: the layout is MOTChallenge's)."""
    if fmt not in (None, "mot"):
        raise DatasetError(f"tracking data is MOTChallenge sequences, not {fmt}")
    return load_mot(data)


def val_headline(run: TrackRun, dataset: TrackDataset, conf: float | None, max_dets: int | None) -> str:
    """The line ``edgecv val --task track`` prints above its tables."""
    floor = "track's default score floor" if conf is None else f"score >= {conf}"
    return f"{run.name} on {dataset.name} ({dataset.describe()}), tracker {run.info['tracker']}, {floor}:"


def compare_headline(result: TrackCompareResult, dataset: TrackDataset, bootstrap: int, seed: int) -> str:
    """The line ``edgecv compare --task track`` prints above its tables: what the interval is over."""
    s = result.settings
    over = f"{s['bootstrap_units']} {s['bootstrap_unit']}"
    if s["bootstrap_unit"] != "sequences":
        over += f" ({count(len(dataset), 'sequence')} are too few to resample)"
    return (
        f"{dataset.name}: {dataset.describe()}; tracker {s['tracker']}; reference {result.runs[0].name}; HOTA, "
        f"MOTA, IDF1 in points, 95% CI from a paired bootstrap over {over}, {bootstrap} resamples, seed {seed}; "
        f"identical frames: same boxes (within {s['box_tol']:g} px, same class) and same ids up to one relabelling"
    )


def run_record(run: TrackRun, dataset: TrackDataset) -> dict:
    """``edgecv val --task track --json``: the tracking metrics, combined and per sequence."""
    return {
        "model": run.name,
        "task": "track",
        "dataset": dataset.name,
        "sequences": len(dataset),
        "frames": dataset.frames,
        "tracker": run.info["tracker"],
        "metrics": run.metrics.to_dict(),
        "median_ms": run.median_ms,
    }


def validation_figures(result: TrackCompareResult) -> dict:
    """Tracking figures of source and bundle, and the differences."""
    src, cand = result.runs
    return {
        "task": "track",
        "metric": "HOTA",
        "source": {**src.metrics.stats, "ms_per_frame": src.median_ms},
        "bundle": {**cand.metrics.stats, "ms_per_frame": cand.median_ms},
        "delta": result.comparisons[0].deltas,
    }
