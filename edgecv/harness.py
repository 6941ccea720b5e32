"""The accuracy harness: run models over a data set through the same pre/post-processing,
score them with the COCO evaluator, and compare candidates with a reference, paired:
a bootstrap over images for the mAP difference, per-class AP differences, box-level parity."""

from __future__ import annotations

import copy
import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .comparison import comparison_record, gate_failures, intervals, model_name
from .console import points, progress_bar, table
from .datasets import category_map
from .detections import Detections
from .errors import EdgecvError
from .images import read_image
from .metrics import Metrics, coco_metrics, to_coco_results
from .nms import box_iou

#: COCO's evaluation settings: every detection above this score, at most 100 per image.
EVAL_CONF = 0.001
PARITY_CONF = 0.25
PARITY_IOU = 0.5


@dataclass
class Run:
    """One model's pass over a data set."""

    name: str
    detections: dict[int, Detections]
    latency_ms: list[float]  # end to end per image
    names: tuple[str, ...]
    metrics: Metrics
    info: dict = field(default_factory=dict)
    mask_metrics: Metrics | None = None  # COCO segm, for models that return instance masks
    task: str = "detect"

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latency_ms) if self.latency_ms else float("nan")


@dataclass(frozen=True)
class ImagePrediction:
    """One model's output on one image, before scoring: what :func:`predict_images` yields and
    what a shard of a sharded run (:mod:`edgecv.sharding`) sends back."""

    image_id: int
    detections: Detections  # masks dropped: they are in ``segm``, run-length encoded
    latency_ms: float  # end to end, the image already decoded
    segm: list[dict] | None = None  # COCO segm results of the image's masks; None: the model gives none


def image_items(dataset) -> list[tuple[int, Path]]:
    """(image id, image file) of every image of a detection data set, in the data set's order."""
    return [(int(info["id"]), dataset.image_path(info)) for info in dataset.coco["images"]]


def predict_images(
    det,
    items: Sequence[tuple[int, Path]],
    conf: float = EVAL_CONF,
    cat_of: dict[int, int] | None = None,
    warmup: int = 3,
) -> Iterator[ImagePrediction]:
    """Run ``det`` over ``items`` ((image id, file) pairs), one image at a time, in their order.

    Images are decoded before the clock starts; ``warmup`` untimed calls on the first image come
    first. Instance masks are run-length encoded as they come (dense masks are large), with
    ``cat_of`` (model class -> COCO category id) naming their categories.
    """
    if warmup and items:
        first = read_image(items[0][1])
        for _ in range(warmup):
            det(first, conf=conf)
    for image_id, path in items:
        img = read_image(path)
        t0 = time.perf_counter()
        d = det(img, conf=conf)
        ms = (time.perf_counter() - t0) * 1000
        segm = None
        if d.masks is not None:
            segm = to_coco_results({image_id: d}, cat_of or {}, masks=True)
            d = dataclasses.replace(d, masks=None)
        yield ImagePrediction(image_id, d, ms, segm)


def score_predictions(
    name: str,
    predictions: Sequence[ImagePrediction],
    dataset,
    names: Sequence[str],
    manifest: dict,
    max_dets: int = 100,
) -> Run:
    """A model's :class:`Run` from its predictions on every image of ``dataset`` (in the data
    set's order): COCO box metrics, and mask metrics where the model gave instance masks.

    Args:
        names: the model's class names; manifest: its manifest (``target`` and ``precision`` are kept).
    """
    cat_of = category_map(names, dataset.coco["categories"])
    dets = {p.image_id: p.detections for p in predictions}
    run = Run(
        name,
        dets,
        [p.latency_ms for p in predictions],
        tuple(names),
        coco_metrics(dataset.coco, to_coco_results(dets, cat_of), max_dets=max_dets),
        info={"target": manifest["target"], "precision": manifest["precision"], "cat_of": cat_of},
    )
    if any(p.segm is not None for p in predictions):  # instance masks: COCO segm AP beside box AP
        anns = dataset.coco.get("annotations", [])
        if anns and all("segmentation" in a for a in anns):
            segm = [r for p in predictions for r in p.segm or []]
            run.mask_metrics = coco_metrics(dataset.coco, segm, max_dets=max_dets, iou_type="segm")
        else:
            run.info["mask_metrics"] = "the data set lacks a segmentation for some annotations: no mask AP"
    return run


def run_dataset(
    det,
    dataset,
    conf: float = EVAL_CONF,
    name: str | None = None,
    warmup: int = 3,
    progress: bool = True,
    max_dets: int = 100,
) -> Run:
    """Run ``det`` over every image of ``dataset`` and compute its COCO metrics
    (:func:`predict_images`, then :func:`score_predictions`).

    Images are decoded before the clock starts; ``warmup`` untimed calls come first.
    """
    cat_of = category_map(det.names, dataset.coco["categories"])
    name = name or model_name(None, det)
    items = image_items(dataset)
    predictions = list(progress_bar(predict_images(det, items, conf, cat_of, warmup), len(items), name, progress))
    return score_predictions(name, predictions, dataset, det.names, det.manifest, max_dets)


# --- paired comparison ------------------------------------------------------------------------


class _Resampler:
    """mAP50-95 of one model on a draw of images with replacement, from one COCO evaluation.

    The evaluator's IoUs and per-image data are computed once on the whole set; each draw is
    then evaluated and accumulated by faster-coco-eval's own C++ routine over the drawn image
    list, duplicates included. Where that routine is not reachable (another version of the
    library), each draw is evaluated from scratch as a data set with renumbered duplicates:
    the same figures, slower. ``tests/test_compare.py`` checks that both agree.
    """

    def __init__(self, gt: dict, results: list[dict], max_dets: int, fast: bool = True) -> None:
        self.gt, self.results, self.max_dets = gt, results, max_dets
        self.ev = None
        if fast and results:
            try:
                from faster_coco_eval.core import faster_eval_api

                COCO, COCOeval = _evaluator_classes()
                coco_gt = COCO(gt)
                ev = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox", print_function=lambda *a, **k: None)
                ev.params.imgIds = sorted(int(i["id"]) for i in gt["images"])
                ev.params.maxDets = [1, 10, max_dets]
                ev.evaluate()
                self._c, self.ev = faster_eval_api._C, ev
                self._c.COCOevalEvaluateAccumulate  # noqa: B018 - present in this version?
            except (ImportError, AttributeError):
                self.ev = None

    def map(self, draw: Sequence[int]) -> float:
        """mAP50-95 on the images ``draw`` (ids, repeats allowed)."""
        if not self.results:
            return 0.0
        if self.ev is not None:
            ev = self.ev
            p = copy.copy(ev._paramsEval)
            p.imgIds = list(draw)
            ious = [[ev.ious[i, c] for c in p.catIds] for i in draw]
            e = self._c.COCOevalEvaluateAccumulate(
                p, ious, ev.gt_dataset, ev.dt_dataset, list(draw), p.catIds, bool(p.useCats)
            )
            prec = np.asarray(e["precision"])[:, :, :, 0, -1]
            return float(prec[prec > -1].mean()) if (prec > -1).any() else float("nan")
        return self._slow(draw)

    def _slow(self, draw: Sequence[int]) -> float:
        info = {int(i["id"]): i for i in self.gt["images"]}
        anns: dict[int, list[dict]] = {}
        for a in self.gt["annotations"]:
            anns.setdefault(int(a["image_id"]), []).append(a)
        res: dict[int, list[dict]] = {}
        for r in self.results:
            res.setdefault(int(r["image_id"]), []).append(r)
        images: list[dict] = []
        annotations: list[dict] = []
        results: list[dict] = []
        for new_id, old in enumerate(draw, 1):
            images.append({**info[old], "id": new_id})
            annotations += [
                {**a, "id": len(annotations) + j + 1, "image_id": new_id} for j, a in enumerate(anns.get(old, []))
            ]
            results += [{**r, "image_id": new_id} for r in res.get(old, [])]
        g = {"images": images, "annotations": annotations, "categories": self.gt["categories"]}
        return coco_metrics(g, results, max_dets=self.max_dets).map


def _evaluator_classes():
    from .metrics import coco_classes

    return coco_classes()


def paired_bootstrap(
    gt: dict,
    ref: list[dict],
    cands: Sequence[list[dict]],
    n: int = 200,
    seed: int = 0,
    level: float = 0.95,
    progress: bool = False,
    max_dets: int = 100,
    fast: bool = True,
) -> list[dict]:
    """Bootstrap over images of the mAP50-95 difference (candidate - reference).

    Each resample draws the images with replacement and evaluates the reference and every
    candidate on the same draw with the COCO evaluator (paired).

    Args:
        gt: COCO ground truth; ref / cands: COCO result lists of the reference and candidates.
        n: resamples; seed: makes the interval repeatable; level: coverage of the interval.

    Returns:
        Per candidate: {"low", "high", "mean", "n", "seed", "level"} in mAP fraction units.
    """
    rng = np.random.default_rng(seed)
    ids = sorted(int(i["id"]) for i in gt["images"])
    base = _Resampler(gt, ref, max_dets, fast)
    others = [_Resampler(gt, c, max_dets, fast) for c in cands]
    diffs: list[list[float]] = [[] for _ in cands]
    for _ in progress_bar(range(n), n, "bootstrap", progress):
        draw = [ids[k] for k in rng.integers(0, len(ids), size=len(ids))]
        b = base.map(draw)
        for j, o in enumerate(others):
            diffs[j].append(o.map(draw) - b)
    return intervals(diffs, n, seed, level)


def box_parity(
    ref: dict[int, Detections], cand: dict[int, Detections], conf: float = PARITY_CONF, iou: float = PARITY_IOU
) -> dict:
    """How well the candidate reproduces the reference's detections, box by box.

    Reference detections with score >= ``conf`` are matched greedily (best score first) to an
    unmatched candidate detection of the same class with IoU >= ``iou``, also at score >= ``conf``.

    Returns:
        matched share, mean IoU and mean absolute score difference of matched pairs, counts of
        reference boxes without partner (missing) and candidate boxes without partner (extra).
    """
    n_ref = matched = extra = 0
    ious: list[float] = []
    sdiff: list[float] = []
    for image_id, r in ref.items():
        r = r.filter(conf)
        c = cand.get(image_id)
        c = c.filter(conf) if c is not None else Detections.empty(r.names)
        n_ref += len(r)
        used = np.zeros(len(c), bool)
        if len(r) and len(c):
            m = box_iou(r.xyxy, c.xyxy)
            m[r.class_ids[:, None] != c.class_ids[None, :]] = 0
            for i in np.argsort(-r.scores, kind="stable"):
                cand_iou = np.where(used, -1.0, m[i])
                j = int(np.argmax(cand_iou))
                if cand_iou[j] >= iou:
                    used[j] = True
                    matched += 1
                    ious.append(float(m[i, j]))
                    sdiff.append(abs(float(r.scores[i]) - float(c.scores[j])))
        extra += int((~used).sum())
    return {
        "reference_boxes": n_ref,
        "matched": matched,
        "matched_share": matched / n_ref if n_ref else float("nan"),
        "mean_iou": float(np.mean(ious)) if ious else float("nan"),
        "mean_abs_score_diff": float(np.mean(sdiff)) if sdiff else float("nan"),
        "missing": n_ref - matched,
        "extra": extra,
        "conf": conf,
        "iou": iou,
    }


@dataclass
class Comparison:
    """One candidate against the reference."""

    name: str
    delta_map: float  # candidate - reference, mAP50-95 fraction
    ci: dict
    per_class_delta: list[tuple[str, float]]  # worst first
    parity: dict

    @property
    def delta(self) -> float:  # the primary metric's difference, as every task's comparison has
        return self.delta_map

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "delta_map": self.delta_map,
            "ci": self.ci,
            "per_class_delta": [{"class": c, "delta": d} for c, d in self.per_class_delta],
            "parity": self.parity,
        }


@dataclass
class CompareResult:
    dataset: dict
    runs: list[Run]
    comparisons: list[Comparison]
    settings: dict
    task: str = "detect"

    def failures(self, max_map_drop: float | None) -> list[str]:
        """Messages for each candidate that loses more than ``max_map_drop`` mAP50-95 points."""
        return gate_failures(self.runs, self.comparisons, max_map_drop)

    def to_dict(self) -> dict:
        return comparison_record(self, hidden=("cat_of",))


def compare(
    models: Sequence[tuple[str, Any]],
    dataset,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    conf: float = EVAL_CONF,
    max_dets: int = 100,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> CompareResult:
    """Evaluate every model on the same images; compare each candidate with the first (the reference).

    Args:
        models: (name, detector) pairs; the first is the reference (usually the PyTorch source).
        dataset: an :class:`edgecv.datasets.Dataset` (classifiers and segmenters: a
            :class:`edgecv.taskeval.TaskDataset`, and the result is a ``TaskCompareResult``).
        bootstrap: resamples for the confidence interval of the mAP difference (0 to skip).
    """
    if len(models) < 2:
        raise EdgecvError("compare needs a reference and at least one candidate")
    if not hasattr(dataset, "coco"):
        raise EdgecvError(
            f"detectors are compared on a detection data set (COCO, YOLO, VOC), not on a set of task {dataset.task}"
        )
    runs = [run_dataset(det, dataset, conf, name, progress=progress, max_dets=max_dets) for name, det in models]
    return compare_runs(
        runs, dataset, bootstrap=bootstrap, seed=seed, conf=conf, max_dets=max_dets, progress=progress, say=say
    )


def compare_runs(
    runs: Sequence[Run],
    dataset,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    conf: float = EVAL_CONF,
    max_dets: int = 100,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> CompareResult:
    """The paired comparison of runs over ``dataset`` (the first the reference): the bootstrap
    interval of each candidate's mAP difference, its per-class differences and box parity.
    :func:`compare` runs the models first; a sharded run (:mod:`edgecv.sharding`) merges its
    shards into runs and comes here."""
    runs = list(runs)
    ref = runs[0]
    results = [to_coco_results(r.detections, r.info["cat_of"]) for r in runs]
    if bootstrap:
        if say:
            say(
                f"paired bootstrap over {len(dataset)} image{'s' * (len(dataset) != 1)}, {bootstrap} resamples, seed {seed}"
            )
        cis = paired_bootstrap(
            dataset.coco, results[0], results[1:], bootstrap, seed, progress=progress, max_dets=max_dets
        )
    else:
        cis = intervals([[] for _ in runs[1:]], 0, seed)
    comps = []
    for run, ci in zip(runs[1:], cis):
        deltas = [
            (k, run.metrics.per_class[k] - v)
            for k, v in ref.metrics.per_class.items()
            if not (np.isnan(v) or np.isnan(run.metrics.per_class.get(k, np.nan)))
        ]
        deltas.sort(key=lambda kv: kv[1])
        comps.append(
            Comparison(
                run.name, run.metrics.map - ref.metrics.map, ci, deltas, box_parity(ref.detections, run.detections)
            )
        )
    info = {"name": dataset.name, "format": dataset.format, "images": len(dataset), "sha256": dataset.sha256}
    return CompareResult(info, runs, comps, {"conf": conf, "max_dets": max_dets, "bootstrap": bootstrap, "seed": seed})


# --- tables -----------------------------------------------------------------------------------


def metrics_table(runs: Sequence[Run]) -> str:
    """mAP50-95, mAP50, mAP75, AP S/M/L, AR1/10/100 (in points) and median latency per model."""
    keys = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "ar1", "ar10", "ar100")
    head: tuple[str, ...] = (
        "model",
        "mAP50-95",
        "mAP50",
        "mAP75",
        "APs",
        "APm",
        "APl",
        "AR1",
        "AR10",
        "AR100",
        "p50 ms",
    )
    rows: list[tuple[str, ...]] = [
        (r.name, *(points(r.metrics.stats[k]) for k in keys), f"{r.median_ms:.2f}") for r in runs
    ]
    if any(r.mask_metrics is not None for r in runs):  # instance masks: COCO segm beside box AP
        head = (*head[:-1], "mask mAP50-95", "mask mAP50", head[-1])
        rows = [
            (
                *row[:-1],
                points(r.mask_metrics.map if r.mask_metrics else np.nan),
                points(r.mask_metrics.stats["map50"] if r.mask_metrics else np.nan),
                row[-1],
            )
            for row, r in zip(rows, runs)
        ]
    return table(head, rows)


def per_class_table(runs: Sequence[Run]) -> str:
    names = list(runs[0].metrics.per_class)
    return table(
        ("class", *(r.name for r in runs)),
        [(n, *(points(r.metrics.per_class.get(n, np.nan)) for r in runs)) for n in names],
    )


def compare_table(result: CompareResult) -> str:
    """One row per candidate: mAP and difference with its interval, worst class, box parity
    (a classifier's or segmenter's comparison: :func:`edgecv.taskeval.compare_table`)."""
    ref = result.runs[0]
    rows: list[tuple[str, ...]] = [
        (ref.name, points(ref.metrics.map), "reference", "", "", "", "", "", f"{ref.median_ms:.2f}")
    ]
    for run, c in zip(result.runs[1:], result.comparisons):
        p = c.parity
        worst = f"{c.per_class_delta[0][0]} {c.per_class_delta[0][1] * 100:+.2f}" if c.per_class_delta else "—"
        ci = "—" if np.isnan(c.ci["low"]) else f"[{c.ci['low'] * 100:+.2f}, {c.ci['high'] * 100:+.2f}]"
        rows.append(
            (
                run.name,
                points(run.metrics.map),
                f"{c.delta_map * 100:+.2f}",
                ci,
                worst,
                "—" if np.isnan(p["matched_share"]) else f"{p['matched_share'] * 100:.1f}%",
                "—" if np.isnan(p["mean_iou"]) else f"{p['mean_iou']:.4f}",
                f"{p['missing']}/{p['extra']}",
                f"{run.median_ms:.2f}",
            )
        )
    head: tuple[str, ...] = (
        "model",
        "mAP50-95",
        "Δ points",
        "95% CI",
        "worst class Δ",
        "boxes matched",
        "mean IoU",
        "missing/extra",
        "p50 ms",
    )
    if ref.mask_metrics is not None:  # mask AP and its difference, after the box columns
        head = (*head[:-1], "mask mAP", "mask Δ", head[-1])
        rows = [
            (
                *row[:-1],
                points(r.mask_metrics.map if r.mask_metrics else np.nan),
                "reference"
                if r is ref
                else (f"{(r.mask_metrics.map - ref.mask_metrics.map) * 100:+.2f}" if r.mask_metrics else "—"),
                row[-1],
            )
            for row, r in zip(rows, result.runs)
        ]
    return table(head, rows)


# --- the evaluator interface (see edgecv.evaluation) ---------------------------------------------


def load_data(
    data: str | os.PathLike,
    task: str = "detect",
    images: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    fmt: str | None = None,
):
    """A detection data set: a COCO json, a folder of YOLO txt labels or of VOC xml."""
    from .datasets import load_dataset

    return load_dataset(data, images, names=names, fmt=fmt)


def evaluate(det, dataset, name: str | None = None, progress: bool = True, warmup: int = 3, **kwargs: Any) -> Run:
    """:func:`run_dataset`, after checking that the data set is a detection set."""
    if not hasattr(dataset, "coco"):
        raise EdgecvError(
            f"a detector is evaluated on a detection data set (COCO, YOLO, VOC), not on a set of task {dataset.task}"
        )
    return run_dataset(det, dataset, name=name, progress=progress, warmup=warmup, **kwargs)


def validation_figures(result: CompareResult) -> dict:
    """A detector's figures in a bundle's validation record: box mAP (and mask mAP) of source and
    bundle, and their difference."""
    src, cand = result.runs
    return {
        "source": {"map": src.metrics.stats["map"], "map50": src.metrics.stats["map50"], "p50_ms": src.median_ms},
        "bundle": {"map": cand.metrics.stats["map"], "map50": cand.metrics.stats["map50"], "p50_ms": cand.median_ms},
        **(
            {"mask_map": {"source": src.mask_metrics.map, "bundle": cand.mask_metrics.map}}
            if src.mask_metrics is not None and cand.mask_metrics is not None
            else {}
        ),
        "delta_map": result.comparisons[0].delta_map,
    }


def val_headline(run: Run, dataset, conf: float, max_dets: int) -> str:
    """The line ``edgecv val`` prints above a detector's tables."""
    return f"{run.name} on {dataset.name} ({len(dataset)} image{'s' * (len(dataset) != 1)}), score >= {conf}, up to {max_dets} per image:"


def compare_headline(result: CompareResult, dataset, bootstrap: int, seed: int) -> str:
    """The line ``edgecv compare`` prints above a detector comparison's tables."""
    return (
        f"{dataset.name}: {len(dataset)} image{'s' * (len(dataset) != 1)}; reference {result.runs[0].name}; mAP in points, "
        f"95% CI from a paired bootstrap ({bootstrap} resamples, seed {seed}); boxes: reference score >= "
        f"{PARITY_CONF}, same class, IoU >= {PARITY_IOU}"
    )


def run_record(run: Run, dataset) -> dict:
    """``edgecv val --json``: a detector's metrics on a data set."""
    return {
        "model": run.name,
        "dataset": dataset.name,
        "images": len(dataset),
        "metrics": run.metrics.to_dict(),
        "median_ms": run.median_ms,
    }
