"""One setup function (arguments) and one run function per CLI command."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .. import targets
from ..console import count
from ..errors import EdgecvError
from .serve import run_serve, setup_serve
from .track import run_track, setup_track
from .triton import run_triton, setup_triton


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _imgsz(text: str) -> int | tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        vals = [int(p) for p in parts if p]
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size {text!r}: give N or HxW, e.g. 320 or 384x640") from None
    if len(vals) == 1:
        return vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise argparse.ArgumentTypeError(f"image size {text!r}: give N or HxW")


def _names(text: str | None) -> list[str] | None:
    """Class names from --names / --data-names: a file with one per line, or a comma-separated list.
    A single name that looks like a file (a path separator or a file suffix such as .txt) but is
    not one is refused rather than taken as one class of that name."""
    if not text:
        return None
    p = Path(text)
    if p.is_file():
        return [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) == 1 and ("/" in text or "\\" in text or p.suffix.lower() in (".txt", ".names", ".csv", ".yaml")):
        raise EdgecvError(
            f"class names file '{text}' does not exist: give the path of a file with one name per "
            "line, or the names themselves separated by commas"
        )
    return names


# --- export -----------------------------------------------------------------------------------


def _qdq_targets() -> list[str]:
    """The export targets whose INT8 model is an ONNX Q/DQ graph quantized with --calib-method."""
    return [k for k in targets.export_keys() if targets.get(k).int8_graph]


def setup_export(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        nargs="?",
        default="edgecv-tiny",
        help="model file (.pt/.pth edgecv checkpoint, TorchScript, torchvision state dict with --arch, pickled "
        "module or Ultralytics YOLO checkpoint with --trust-pickle, .onnx) or 'edgecv-tiny' (default)",
    )
    p.add_argument(
        "--target",
        "-t",
        default="onnxruntime",
        help=" | ".join(targets.export_keys()) + " (default onnxruntime); several, comma-separated, make a "
        "sweep (every target at every --precision)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        help="fp32 | fp16 | int8 (int8 needs --calib) | bf16 (openvino: FP32 weights, bf16 compute on CPUs that "
        "have it, f32 elsewhere); several, comma-separated, make a sweep",
    )
    p.add_argument("--calib", help="int8 calibration images: a folder, a COCO json, a YOLO labels or VOC xml folder")
    p.add_argument(
        "--calib-size", type=int, default=300, help="calibration images used, a seeded random subset (default 300)"
    )
    p.add_argument(
        "--calib-method",
        default="percentile",
        choices=("minmax", "entropy", "percentile"),
        help="how INT8 activation ranges are set from the calibration images, for the targets whose INT8 model is "
        f"an ONNX Q/DQ graph: {', '.join(_qdq_targets())} (the others' quantizers set their own: "
        f"{', '.join(k for k in targets.export_keys() if k not in _qdq_targets())}); default percentile: "
        "the 99.999th, robust to outliers",
    )
    p.add_argument(
        "--int8-recipe",
        default=None,
        metavar="KEY=VALUE,...",
        help="how int8 is made, changing the default recipe's fields (docs/precision.md#the-int8-recipe), e.g. "
        "head=int8,bias_correction=full",
    )
    p.add_argument(
        "--inference-precision",
        default=None,
        choices=("auto", "f32", "bf16"),
        help="openvino: what the float parts compute in, recorded in the manifest (default: auto for int8, bf16 "
        "where the CPU computes it natively and f32 elsewhere; bf16 for --precision bf16; f32 otherwise); f32 "
        "pins it",
    )
    p.add_argument(
        "--imgsz",
        type=_imgsz,
        default=None,
        help="input size N or HxW, multiples of 32 (default: the model's, else 640)",
    )
    p.add_argument(
        "--rect",
        action="store_true",
        help="a rectangular input for frames of one shape: the longer side --imgsz N (default 640), the shorter "
        "from the median aspect of the --calib images (else --images or --data), e.g. 480x640 for 4:3 video",
    )
    p.add_argument("-o", "--out-dir", default="build", help="parent directory of the bundle (default build/)")
    p.add_argument("--name", default=None, help="bundle directory name (default <model>-<target>-<precision>)")
    p.add_argument(
        "--conf",
        type=float,
        default=0.001,
        help="NMS score floor for calibration and for requests without one; a call's conf is fed to the graph (default 0.001)",
    )
    p.add_argument("--iou", type=float, default=0.5, help="NMS IoU threshold (default 0.5)")
    p.add_argument("--max-det", type=int, default=100, help="detections per image (default 100)")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--raw", action="store_true", help="export raw candidates; NMS runs on the host")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension to 1")
    p.add_argument(
        "--validate",
        action="store_true",
        help="compare the bundle with the source on --data and record the results in the manifest",
    )
    p.add_argument(
        "--max-map-drop",
        "--max-drop",
        dest="max_map_drop",
        type=float,
        default=None,
        help="with --data: int8 (and onnxruntime/tensorrt fp16) keep the most sensitive layers in float until "
        "the bundle loses at most this many points of the task's metric (mAP50-95, top-1, mIoU) "
        "against the source (exit 1 if it cannot); other precisions are validated and exit 1 over it",
    )
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="segmenters: also output the per-pixel class probabilities (the class map is always there)",
    )
    p.add_argument("--bootstrap", type=int, default=200, help="with --validate: bootstrap resamples (default 200)")
    p.add_argument(
        "--max-float-layers",
        type=int,
        default=8,
        help="accuracy control: most layers kept in float before giving up (default 8)",
    )
    add_data_args(p, required=False)
    add_source_args(p)
    add_tensorrt_args(p)
    add_ray_args(p, shards=False, what="run a sweep's exports as Ray tasks, one CPU each. ")


def add_tensorrt_args(p: argparse.ArgumentParser, build: bool = False) -> None:
    g = p.add_argument_group("TensorRT build settings" + ("" if build else " (--target tensorrt)"))
    g.add_argument(
        "--max-batch",
        type=int,
        help="largest batch of the optimization profile (default 8; bundles with a dynamic batch)",
    )
    g.add_argument("--opt-batch", type=int, help="batch TensorRT tunes for (default 1)")
    g.add_argument("--workspace", type=int, dest="workspace_mb", help="builder workspace in MB (default 1024)")
    g.add_argument(
        "--version-compatible",
        action="store_true",
        default=None,
        help="a plan later TensorRT versions can run (TensorRT's VERSION_COMPATIBLE; runs host code from the plan)",
    )
    g.add_argument(
        "--hardware-compatibility",
        choices=("none", "ampere_plus", "same_compute_capability"),
        help="a plan other GPUs can run: ampere_plus (compute capability 8.0+), same_compute_capability "
        "(TensorRT 11+); slower; not on Jetson (default none)",
    )
    g.add_argument("--optimization-level", type=int, help="builder optimization level 0-5 (default 3)")
    if not build:
        g.add_argument(
            "--no-engine",
            action="store_true",
            help="do not build a plan at export even where TensorRT and a GPU are present",
        )


def tensorrt_options(a: argparse.Namespace) -> dict:
    """TensorRT build settings given on the command line (only those given)."""
    opts = {
        "max_batch": a.max_batch,
        "opt_batch": a.opt_batch,
        "workspace_mb": a.workspace_mb,
        "version_compatible": a.version_compatible,
        "hardware_compatibility": a.hardware_compatibility,
        "optimization_level": a.optimization_level,
    }
    opts = {k: v for k, v in opts.items() if v is not None}
    if getattr(a, "no_engine", False):
        opts["build_plan"] = False
    return opts


def add_source_args(p: argparse.ArgumentParser, evaluations: tuple[str, ...] = ()) -> None:
    """The options that describe a source model; ``evaluations`` adds evaluation modes (val and
    compare: ``track``, over a detector) to ``--task``'s choices."""
    g = p.add_argument_group("sources without metadata (TorchScript, ONNX, pickled modules, torchvision state dicts)")
    g.add_argument(
        "--task",
        choices=("detect", "classify", "segment", *evaluations),
        default=None,
        help="what the model does (default: detect; torchvision classifiers and segmenters are recognised). "
        "classify: the model outputs logits [B, C]; segment: per-pixel logits [B, C, h, w]"
        + ("; track: a detector evaluated with a tracker on MOTChallenge sequences (--data)" if evaluations else ""),
    )
    g.add_argument("--names", help="class names: comma-separated, or a text file with one per line")
    g.add_argument(
        "--crop-resize",
        type=int,
        default=None,
        help="classifiers: the shorter side before the centre crop (default: the input size x 256/224)",
    )
    g.add_argument(
        "--layout", default="bcn", choices=("bcn", "bnc"), help="raw output [B,4+C,N] (bcn) or [B,N,4+C] (bnc)"
    )
    g.add_argument("--box-format", default="cxcywh", choices=("cxcywh", "xyxy"))
    g.add_argument("--objectness", action="store_true", help="an objectness column follows the box (YOLOv3/v5)")
    g.add_argument("--sigmoid", action="store_true", help="scores are logits: apply a sigmoid in the graph")
    g.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling a whole model from the file, e.g. an Ultralytics .pt (runs code from it: only "
        "for files you trust)",
    )
    g.add_argument(
        "--arch",
        help="a torchvision model's constructor, for a state dict file (detectors: "
        "retinanet_resnet50_fpn, fcos_resnet50_fpn, ssd300_vgg16, fasterrcnn_resnet50_fpn, "
        "maskrcnn_resnet50_fpn; classifiers: resnet18, mobilenet_v3_large, efficientnet_b0, "
        "...; segmenters: fcn_resnet50, deeplabv3_resnet50, lraspp_mobilenet_v3_large, ...; edgecv models lists them all)",
    )
    g.add_argument(
        "--num-classes",
        type=int,
        help="with --arch: torchvision's num_classes (SSD and R-CNNs: with the background); detectors: read from "
        "the state dict when left out",
    )


def source_options(a: argparse.Namespace) -> dict:
    """Export options that describe a source model, from the arguments of add_source_args."""
    return dict(
        names=_names(a.names),
        layout=a.layout,
        box_format=a.box_format,
        objectness=a.objectness,
        apply_sigmoid=a.sigmoid,
        trust_pickle=a.trust_pickle,
        imgsz=getattr(a, "imgsz", None),
        arch=getattr(a, "arch", None),
        num_classes=getattr(a, "num_classes", None),
        task=getattr(a, "task", None),
        **({"crop_resize": a.crop_resize} if getattr(a, "crop_resize", None) else {}),
    )


def task_of(spec: str, a: argparse.Namespace) -> str:
    """The task of a model named on the command line: a bundle's manifest says; for a source,
    --task, or a torchvision constructor's kind, else detect."""
    from ..bundle import MANIFEST_NAME, Bundle

    if (Path(spec) / MANIFEST_NAME).is_file():
        return Bundle.open(spec, verify=False).manifest["task"]
    if getattr(a, "task", None):
        return a.task
    arch = getattr(a, "arch", None)
    if arch:
        try:
            from ..export.tasks import CLASSIFIERS, SEGMENTERS
        except ImportError:
            return "detect"
        return "classify" if arch in CLASSIFIERS else "segment" if arch in SEGMENTERS else "detect"
    return "detect"


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data set")
    g.add_argument(
        "--data",
        required=required,
        help="detection: a COCO json, a folder of YOLO txt labels, or a folder of VOC xml; classification: a "
        "folder of class folders; segmentation: a folder with images/, masks/ and classes.txt; --task track: a folder "
        "of MOTChallenge sequences (seqinfo.ini, img1/, gt/gt.txt) or one sequence",
    )
    g.add_argument("--images", help="the images folder (default: beside the annotations)")
    g.add_argument(
        "--data-names",
        help="class names of a YOLO set, or a segmentation set's in mask-value order (default: classes.txt)",
    )
    g.add_argument(
        "--format", dest="data_format", choices=("coco", "yolo", "voc"), help="data set format (default: detected)"
    )


def open_dataset(a: argparse.Namespace, task: str = "detect"):
    from ..evaluation import load_dataset

    return load_dataset(a.data, task, images=a.images, names=_names(a.data_names), fmt=a.data_format)


def _quiet_torch() -> None:
    """Silence what torch says that is no news to a user of the CLI: its warnings during tracing
    and ONNX export, and "No CUDA runtime is found", which torch.utils.cpp_extension logs when NNCF
    (openvino INT8) imports it on a machine without CUDA; errors still show."""
    import warnings

    warnings.filterwarnings("ignore", module="torch")
    for name in ("torch.onnx", "torch.utils.cpp_extension"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _split(value: str) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def run_export(a: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise EdgecvError(
            f"export needs the exporter's packages ({e.name} is missing): pip install 'edgecv[export]'"
        ) from None
    jobs = [(t, p) for t in _split(a.target) for p in _split(a.precision)]
    if not jobs:
        raise EdgecvError("--target and --precision need at least one value each")
    if a.rect:
        a.imgsz = rect_size(a)
    if len(jobs) == 1 and a.ray is None:
        a.target, a.precision = jobs[0]
        bundle, table, failures = export_one(a)
        if table:
            print(table, file=sys.stderr)
        print(bundle)
        for f in failures:
            _err(f"edgecv: gate failed: {f}")
        return 1 if failures else 0
    return export_sweep(a, jobs)


def rect_size(a: argparse.Namespace) -> tuple[int, int]:
    """``--rect``: the input size whose longer side is ``--imgsz`` (640 when not given) and whose
    shorter side follows the frames' median aspect (:func:`edgecv.export.calibration.rect_imgsz`)."""
    from ..export.calibration import rect_imgsz

    if isinstance(a.imgsz, tuple):
        raise EdgecvError(
            f"--rect chooses the shorter side itself: give --imgsz one number (the longer side), not {a.imgsz}"
        )
    frames = a.calib or getattr(a, "images", None) or a.data
    if not frames:
        raise EdgecvError("--rect reads the frames' shape from images: give --calib (or --images or --data)")
    size = rect_imgsz(frames, a.imgsz or 640)
    _err(f"--rect: input {size[0]}x{size[1]} (the median aspect of the images in {frames})")
    return size


def export_sweep(a: argparse.Namespace, jobs: list[tuple[str, str]]) -> int:
    """``--target a,b --precision x,y``: one export per (target, precision), one after another, or
    one Ray task each with ``--ray``. Every bundle made is printed; a job that fails is reported
    and the others go on (exit 1 when a gate failed, 2 when an export could not be made)."""
    import copy

    if a.name:
        raise EdgecvError(
            f"--name names one bundle; this sweep makes {len(jobs)}: drop --name (each is <model>-<target>-<precision>)"
        )
    known = set(targets.export_keys())
    unknown = sorted({t for t, _ in jobs} - known)
    if unknown:
        raise EdgecvError(f"unknown target(s) {', '.join(unknown)}: choose from {', '.join(sorted(known))}")
    names = [f"{t} {p}" for t, p in jobs]
    per_job = []
    for t, p in jobs:
        one = copy.copy(a)
        one.target, one.precision, one.ray = t, p, None
        per_job.append(one)
    results: list[tuple[Any, str | None]] = []
    if a.ray is None:
        for name, one in zip(names, per_job):
            _err(f"export {name} ({len(results) + 1}/{len(jobs)})")
            try:
                results.append((export_one(one), None))
            except EdgecvError as e:
                results.append((None, str(e)))
    else:
        from ..sharding import ray_session, run_tasks

        with ray_session(a.ray) as where:
            _err(f"export sweep: {len(jobs)} exports on {where}, one task each")
            results = run_tasks(export_one, per_job, names=names, say=_err)
    gate_failed = errors = False
    for name, (done, error) in zip(names, results):
        if error is not None:
            errors = True
            _err(f"edgecv: export {name} failed: {error}")
            continue
        bundle, table, failures = done
        if table:
            print(table, file=sys.stderr)
        print(bundle)
        for f in failures:
            gate_failed = True
            _err(f"edgecv: gate failed ({name}): {f}")
    return 2 if errors else 1 if gate_failed else 0


def export_one(a: argparse.Namespace) -> tuple[Path, str | None, list[str]]:
    """One export of ``a.model`` to ``a.target`` at ``a.precision``, checked as the options say:
    the bundle, the comparison table (when validated) and the gates that failed. Runs in a Ray
    task for ``export --ray`` (the namespace travels; the data set is opened where it runs)."""
    _quiet_torch()
    from ..evaluation import compare_table
    from ..pipeline import export_checked

    gated = a.validate or a.max_map_drop is not None
    if gated and not a.data:
        raise EdgecvError("--validate and --max-map-drop need a validation set: --data (and --images)")
    dataset = open_dataset(a, task_of(a.model, a)) if gated else None  # a bad data set fails before the work
    opts = source_options(a)
    if a.probabilities:
        opts["probabilities"] = True
    trt = tensorrt_options(a)
    nms = dict(conf=a.conf, iou=a.iou, max_det=a.max_det, class_aware=not a.agnostic, mode="raw" if a.raw else "nms")
    bundle, result, failures = export_checked(
        a.model,
        a.target,
        dataset,
        max_drop=a.max_map_drop,
        validate=a.validate,
        bootstrap=a.bootstrap,
        max_float_layers=a.max_float_layers,
        progress=sys.stderr.isatty(),
        say=_err,
        source_options=opts,
        out_dir=a.out_dir,
        name=a.name,
        precision=a.precision,
        dynamic_batch=not a.static_batch,
        calib=a.calib,
        calib_size=a.calib_size,
        calib_method=a.calib_method,
        tensorrt=trt or None,
        int8_recipe=a.int8_recipe if a.precision == "int8" else None,
        inference_precision=a.inference_precision if a.target == "openvino" else None,
        **nms,
    )
    return Path(bundle), (compare_table(result) if result is not None else None), list(failures)


# --- predict ----------------------------------------------------------------------------------


def setup_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle directory")
    p.add_argument(
        "images", nargs="+", help="image files, folders of images or globs, video files (every frame; --save: an mp4)"
    )
    p.add_argument(
        "--save",
        help="write the image with boxes drawn (classes tinted, top classes written) here (a "
        "directory when several images)",
    )
    p.add_argument("--conf", type=float, default=None, help="minimum score (default: the bundle's, 0.25)")
    p.add_argument("--json", action="store_true", help="print detections as JSON")
    add_backend_arg(p)
    add_trust_plan_code_arg(p)


def add_trust_plan_code_arg(p: argparse.ArgumentParser) -> None:
    """``--trust-plan-code``: :func:`edgecv.runtimes.load`'s ``trust_plan_code``, named like
    ``--trust-pickle``: both let a file run code in this process."""
    p.add_argument(
        "--trust-plan-code",
        action="store_true",
        help="allow a version-compatible TensorRT plan, whose host code TensorRT runs in this process "
        "(the bundle's hashes prove it intact, not who built it: only for bundles you trust)",
    )


def add_backend_arg(p: argparse.ArgumentParser) -> None:
    """``--backend``: run a bundle on another backend than its target's, where its model allows
    (:func:`edgecv.runtimes.load`'s ``backend``), as the harness does on a CPU."""
    hosts = sorted({t.measured_on for k in targets.export_keys() if (t := targets.get(k)).measured_on})
    guests = [k for k in targets.export_keys() if targets.get(k).measured_on]
    p.add_argument(
        "--backend",
        choices=targets.export_keys(),
        default=None,
        help="run the bundle on this backend (default: its target's); "
        + "; ".join(
            f"{h} runs the ONNX graph of {' and '.join(g for g in guests if targets.get(g).measured_on == h)} "
            "bundles on a CPU, as bench, val and compare do"
            for h in hosts
        ),
    )


def image_paths(specs: list[str]) -> list[str]:
    """Image files from the command line: files as given, folders as the images in them (sorted),
    globs expanded. Refuses a folder or glob with no image, and a file that does not exist."""
    import glob

    from ..images import IMAGE_SUFFIXES

    out: list[str] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            what = f"the folder '{spec}'"
        elif glob.has_magic(spec):
            found = sorted(f for f in glob.glob(spec) if Path(f).suffix.lower() in IMAGE_SUFFIXES)
            what = f"'{spec}'"
        else:
            out.append(spec)  # read_image says clearly when it does not exist
            continue
        if not found:
            raise EdgecvError(f"{what} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        out += found
    return out


def _load_for_predict(a: argparse.Namespace):
    """The bundle's detector on --backend, or on its target's; where that target cannot run
    here but its graph can on another backend, the refusal says which --backend to give."""
    from ..bundle import Bundle
    from ..errors import BackendUnavailableError
    from ..runtimes import load

    try:
        return load(
            a.bundle,
            **({"backend": a.backend} if a.backend else {}),
            conf=a.conf,
            trust_plan_code=a.trust_plan_code,
        )
    except BackendUnavailableError as e:
        if a.backend:
            raise
        via = targets.get(Bundle.open(a.bundle, verify=False).target).measured_on
        if not via:
            raise
        raise BackendUnavailableError(f"{e}. To run its graph on this CPU: edgecv predict --backend {via}") from e


def run_predict(a: argparse.Namespace) -> int:
    import cv2

    from ..images import IMAGE_SUFFIXES, read_image
    from .track import is_video_file, predict_video

    videos = [s for s in a.images if is_video_file(s)]
    paths = image_paths([s for s in a.images if not is_video_file(s)])
    # --save: a folder when it names one, ends in a separator, or several images or videos are drawn
    save_dir = a.save and (len(paths) + len(videos) > 1 or a.save.endswith(("/", os.sep)) or Path(a.save).is_dir())
    out: dict[str, Any] = {}
    with _load_for_predict(a) as det:
        task = det.task_def
        for path in paths:
            img = read_image(path)
            result = det(img)
            out[path] = task.to_json(result)
            if not a.json:
                lines = task.summary(result, det.last_timing["infer"] * 1000)
                print(f"{path}: {lines[0]}")
                for line in lines[1:]:
                    print(line)
            if a.save:
                dest = Path(a.save)
                if save_dir:
                    dest.mkdir(parents=True, exist_ok=True)
                    dest = dest / Path(path).name
                try:
                    written = cv2.imwrite(str(dest), task.draw(img, result))
                except cv2.error:  # OpenCV raises for an extension it has no writer for
                    written = False
                if not written:
                    raise EdgecvError(
                        f"could not write '{dest}': give a file name with an image extension "
                        f"({', '.join(IMAGE_SUFFIXES)}) or a folder, in a directory that exists and is writable"
                    )
        for spec in videos:  # every frame through the detector; --save: an mp4 per video
            if save_dir:
                Path(a.save).mkdir(parents=True, exist_ok=True)
            drawn = (Path(a.save) / f"{Path(spec).stem}.mp4" if save_dir else Path(a.save)) if a.save else None
            out[spec] = predict_video(det, spec, drawn, quiet=a.json)
    if a.json:
        print(json.dumps(out, indent=2))
    return 0


# --- inspect ----------------------------------------------------------------------------------


def setup_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")


def _describe_plan(entry: dict) -> str:
    from ..runtimes.tensorrt.plans import describe

    return describe(entry)


def run_inspect(a: argparse.Namespace) -> int:
    from ..bundle import Bundle
    from ..graph_references import check_bundle
    from . import describe

    b = Bundle.open(a.bundle)  # verifies schema and hashes
    check_bundle(b)  # and that its graph refers to nothing else
    m = b.manifest
    if a.json:
        print(json.dumps(m, indent=2))
        return 0
    inp, out, prov = m["input"], m["output"], m["provenance"]
    nms = out.get("nms")
    print(f"bundle     {b.path}")
    print(
        f"model      {m['name']}  task {m['task']}  target {m['target']}  precision {m['precision']}  "
        f"schema v{m['schema_version']}"
    )
    print(f"classes    {len(m['classes'])}: {', '.join(m['classes'][:20])}{' ...' if len(m['classes']) > 20 else ''}")
    from .. import tasks

    place = tasks.get(m["task"]).describe_input(inp)
    print(
        f"input      {inp['name']} {inp['dtype']} {inp['layout']} {inp['shape']} (batch -1 = dynamic), {inp['color']}, "
        f"{place}, normalisation in graph: scale {inp['normalization']['scale']:.6g} "
        f"mean {inp['normalization']['mean']} std {inp['normalization']['std']}"
    )
    if nms is None:  # a classifier or segmenter
        for t, what in out.get("contents", {}).items():
            print(f"output     {t}: {what}")
    else:
        print(
            f"output     {out['mode']}: {', '.join(out['tensors'])}; boxes {out['box_format']} in "
            f"{out.get('coordinates', 'input_pixels')}"
        )
        print(
            f"nms        in {nms.get('where', 'graph')}: score > {nms['score_threshold']}, IoU > {nms['iou_threshold']} "
            f"suppressed, max {nms['max_detections']}, {'per class' if nms['class_aware'] else 'class-agnostic'}; "
            f"results filtered at conf {out.get('default_conf', 0.25)}"
        )
    src = prov.get("source", {})
    print(f"source     {src.get('kind')} {src.get('path') or ''} sha256 {src.get('sha256', '')[:16]}…")
    print(f"versions   {', '.join(f'{k} {v}' for k, v in prov.get('versions', {}).items())}")
    print(f"created    {prov.get('created')}")
    for line in describe.quantization_lines(prov):
        print(line)
    for line in describe.runtime_lines(m):
        print(line)
    if "engines" in m.get("runtime", {}).get("tensorrt", {}):
        engines = m["runtime"]["tensorrt"]["engines"]
        for e in engines:
            print(f"plan       {e['file']}: {_describe_plan(e)}, built {e.get('built')}")
        if not engines:
            print("plan       none yet: `edgecv build BUNDLE` builds one on the device")
    for line in describe.trust_lines(m):
        print(line)
    print("files (sha256 verified):")
    for f in m["files"]:
        print(f"  {f['path']:<14} {f['role']:<8} {f['size']:>12,d} B  {f['sha256']}")
    if m.get("validation"):
        for line in describe.validation_lines(m["validation"]):
            print(line)
    else:
        print("validation none recorded (export --validate --data DATA records one)")
    return 0


# --- build (TensorRT plans on the device) -----------------------------------------------------


def setup_build(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="a tensorrt bundle directory")
    p.add_argument("--cache-dir", help="keep the plan in this directory instead of adding it to the bundle")
    p.add_argument(
        "--timing-cache",
        help="TensorRT timing cache file, read and updated (default: in the edgecv "
        "cache directory, one per GPU and TensorRT version)",
    )
    p.add_argument("--force", action="store_true", help="build even when the bundle has a plan for this machine")
    add_tensorrt_args(p, build=True)


def run_build(a: argparse.Namespace) -> int:
    from ..runtimes.tensorrt.plans import build_bundle_plan, runs_host_code

    plan = build_bundle_plan(
        a.bundle, cache_dir=a.cache_dir, timing_cache=a.timing_cache, force=a.force, say=_err, **tensorrt_options(a)
    )
    if runs_host_code(plan.entry):
        _err(
            "this plan is version-compatible: it carries host code that TensorRT runs, so loading the bundle "
            "needs --trust-plan-code (load(..., trust_plan_code=True)) wherever it runs"
        )
    print(plan.path)
    return 0


# --- doctor (static checks) -------------------------------------------------------------------


def setup_doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="a bundle directory or an ONNX file")
    p.add_argument(
        "--target",
        "-t",
        default="tensorrt",
        choices=("tensorrt",),
        help="the target whose rules are checked (tensorrt)",
    )
    p.add_argument(
        "--versions",
        nargs="?",
        const="",
        metavar="LIST",
        help="comma-separated TensorRT versions to check: 10.3, 10.15, 11.0, 11.2, 11.5, or 10.x / 11.x (default all); "
        "without a list: the versions, the releases each stands for, and which tables are the parser's own "
        "(authoritative) and which are derived from release notes",
    )
    p.add_argument("--json", action="store_true", help="print the findings as JSON")


def run_doctor(a: argparse.Namespace) -> int:
    from ..runtimes.tensorrt import static_check  # reads graphs with the onnx package (pip install onnx), not torch

    if a.versions == "":  # --versions alone: which tables the check has
        print(static_check.versions_table())
        if a.model is None:
            return 0
    if a.model is None:
        raise EdgecvError("give a bundle or an ONNX file to check (or --versions alone to list the TensorRT versions)")
    versions = [v.strip() for v in a.versions.split(",")] if a.versions else None
    path = Path(a.model)
    if path.is_dir():
        report = static_check.check_bundle(path, versions)
    elif path.is_file():
        report = static_check.check(path, None, versions)
    else:
        raise EdgecvError(f"no bundle or ONNX file at '{path}'")
    print(static_check.to_json(report) if a.json else report.table())
    return 1 if report.errors else 0


# --- env --------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def setup_env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print as JSON")


def run_env(a: argparse.Namespace) -> int:
    from .. import __version__
    from ..runtimes import registry

    rows = []
    for key in registry.keys():
        usable, note = registry.usable_here(key)
        rows.append({"backend": key, "usable": usable, "version": _version(registry.entry(key).requires), "note": note})
    from ..cpu import isa

    flags = " ".join(isa())
    from ..envcheck import installed, own_ranges, problems, torch_status

    versions = installed()
    info: dict[str, Any] = {
        "edgecv": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_flags": flags,
        "backends": rows,
        "problems": problems(versions, own_ranges()),
        "export": {d: versions.get(d) or _version(d) for d in ("torch", "torchvision", "onnx", "onnxslim")},
        "torch": torch_status(versions),
        "eval": {"faster-coco-eval": _version("faster-coco-eval")},
    }
    if a.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"edgecv {__version__}  python {info['python']}  {info['platform']}")
    print(f"cpu        {flags or '-'}")
    print(f"{'backend':<12} {'usable':<7} {'version':<12} note")
    for r in rows:
        print(f"{r['backend']:<12} {'yes' if r['usable'] else 'no':<7} {r['version'] or '-':<12} {r['note']}")
    print("exporter   " + ", ".join(f"{k} {v or 'missing'}" for k, v in info["export"].items()))
    print(f"pair       {info['torch']}")
    print("metrics    " + ", ".join(f"{k} {v or 'missing'}" for k, v in info["eval"].items()))
    for p in info["problems"]:
        print(f"problem    {p}")
    if not info["problems"]:
        print("problems   none known among the installed versions")
    return 0


# --- models -----------------------------------------------------------------------------------


def setup_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print as JSON")


def run_models(a: argparse.Namespace) -> int:
    from .models import catalogue, format_catalogue

    cat = catalogue()
    print(json.dumps(cat, indent=2) if a.json else format_catalogue(cat))
    return 0


# --- demo -------------------------------------------------------------------------------------


def setup_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", default="build/demo", help="where data and bundles go (default build/demo)")
    p.add_argument("--count", type=int, default=200, help="validation images (default 200)")
    p.add_argument("--json", help="also write the table as JSON to this file")


def run_demo(a: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise EdgecvError(
            "the demo exports the default detector and needs the exporter: pip install 'edgecv[all]'"
        ) from None
    _quiet_torch()
    from ..demo import format_table
    from ..demo import run_demo as demo

    rows = demo(a.out_dir, count=a.count, say=_err, progress=sys.stderr.isatty())
    print()
    print(f"edgecv-tiny on the shapes validation split ({count(a.count, 'image')}), conf 0.001, COCO mAP in points:")
    print(format_table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return 0


# --- val / compare / bench -------------------------------------------------------------------


def add_eval_mode_args(p: argparse.ArgumentParser) -> None:
    """--tracker, for ``--task track``."""
    p.add_argument(
        "--tracker",
        default="bytetrack",
        help="--task track: the tracker the detections go through (bytetrack, sort, ocsort; default bytetrack)",
    )


def evaluation_of(spec: str, a: argparse.Namespace) -> str:
    """What val or compare evaluates: an evaluation mode given as --task (track), else the model's task."""
    from ..evaluation import MODES

    return a.task if a.task in MODES else task_of(spec, a)


def eval_source_options(a: argparse.Namespace) -> dict:
    """source_options, with an evaluation mode's --task (track) replaced by the task of its models."""
    from ..evaluation import model_task

    opts = source_options(a)
    if opts.get("task"):
        opts["task"] = model_task(opts["task"])
    return opts


def eval_conf(a: argparse.Namespace, evaluation: str) -> float | None:
    """--conf, or its default: COCO's 0.001 for accuracy, the detector's own floor for tracking
    (as edgecv track runs it)."""
    from ..evaluation import MODES

    return a.conf if a.conf is not None or evaluation in MODES else 0.001


def add_ray_args(p: argparse.ArgumentParser, shards: bool = True, what: str | None = None) -> None:
    """--ray [ADDRESS] (and, for val and compare, --workers and --worker-threads); ``what`` says
    what --ray does for a command whose work is not sharded images or a bench."""
    g = p.add_argument_group("on Ray (pip install 'edgecv[serve]'; see docs/serving.md)")
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help=(
            what
            or (
                "shard the images over Ray workers; the metrics are those of one process. "
                if shards
                else "run each model's bench as one task that takes a whole node: never two on the same cores. "
            )
        )
        + "Without ADDRESS a local Ray on this machine's cores; with it the cluster there (auto, HOST:6379, "
        "ray://HOST:10001)",
    )
    if shards:
        g.add_argument(
            "--workers",
            type=int,
            default=None,
            help="with --ray: shards per model (default: the cluster's CPUs / --worker-threads)",
        )
        g.add_argument(
            "--worker-threads",
            type=int,
            default=None,
            help="with --ray: backend threads of each worker (default: CPUs / --workers, at least 1)",
        )


def sharded_specs(a: argparse.Namespace, models: list[str], evaluation: str, options: list[dict]) -> list:
    """The models of val or compare --ray as specs a Ray worker opens (``options``: each one's
    source options); detectors only."""
    from ..sharding import ModelSpec

    if evaluation != "detect":
        raise EdgecvError(
            f"--ray shards the evaluation of detectors today; {evaluation} runs in one process: drop --ray"
        )
    return [ModelSpec(m, o) for m, o in zip(models, options)]


def setup_val(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a bundle directory, or a source model (run through the torch reference)")
    add_data_args(p)
    p.add_argument(
        "--conf",
        type=float,
        default=None,
        help="score threshold of the evaluation (default: COCO's 0.001; --task track: the detector's own)",
    )
    p.add_argument("--max-det", type=int, default=100, help="detections per image counted (COCO: 100)")
    p.add_argument(
        "--imgsz",
        type=_imgsz,
        default=None,
        help="input size of a source model (a bundle's is fixed at export: --imgsz must not contradict it)",
    )
    p.add_argument("--json", help="write the metrics as JSON to this file")
    add_eval_mode_args(p)
    add_ray_args(p)
    add_source_args(p, evaluations=("track",))


def run_val(a: argparse.Namespace) -> int:
    from ..evaluation import evaluate, evaluator, metrics_table, per_class_table
    from ..pipeline import input_size, open_model, size_text

    _quiet_torch()
    evaluation = evaluation_of(a.model, a)
    conf = eval_conf(a, evaluation)
    opts = eval_source_options(a)
    size = input_size(a.model)
    if size is not None and opts.get("imgsz") is not None and size_text(opts["imgsz"]) != size_text(size):
        raise EdgecvError(
            f"--imgsz {size_text(opts['imgsz'])} contradicts the bundle, which takes {size_text(size)} (its size is "
            "fixed at export): drop --imgsz, or export a bundle at that size"
        )
    specs = sharded_specs(a, [a.model], evaluation, [opts]) if a.ray is not None else []
    dataset = open_dataset(a, evaluation)
    if a.ray is not None:
        from ..sharding import evaluate_sharded, ray_session

        with ray_session(a.ray):
            run = evaluate_sharded(
                specs[0],
                dataset,
                workers=a.workers,
                threads=a.worker_threads,
                conf=conf,
                max_dets=a.max_det,
                progress=sys.stderr.isatty(),
                say=_err,
            )
    else:
        with open_model(a.model, source_options=opts) as det:
            run = evaluate(
                det,
                dataset,
                progress=sys.stderr.isatty(),
                conf=conf,
                max_dets=a.max_det,
                **({"tracker": a.tracker} if evaluation == "track" else {}),
            )
    ev = evaluator(run.task)
    print(ev.val_headline(run, dataset, conf, a.max_det))
    print(metrics_table([run]))
    print()
    print(per_class_table([run]))
    if a.json:
        Path(a.json).write_text(json.dumps(ev.run_record(run, dataset), indent=2))
    return 0


def setup_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", help="the reference (a source model or a bundle), then the candidates")
    add_data_args(p)
    p.add_argument(
        "--max-map-drop",
        "--max-drop",
        dest="max_map_drop",
        type=float,
        default=None,
        help="exit 1 when a candidate loses more points of the task's metric (mAP50-95, top-1, mIoU; "
        "--task track: HOTA)",
    )
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the 95%% interval (default 200)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--conf",
        type=float,
        default=None,
        help="score threshold of the evaluation (default: COCO's 0.001; --task track: the detector's own)",
    )
    p.add_argument("--max-det", type=int, default=100)
    p.add_argument(
        "--imgsz",
        type=_imgsz,
        default=None,
        help="input size of a source model (default: the size of the bundles it is compared with; one that "
        "contradicts them is refused without --across-sizes)",
    )
    p.add_argument(
        "--across-sizes",
        action="store_true",
        help="compare models of different input sizes (each named with its size in the tables): the difference "
        "then includes the size's, and is no measure of a conversion",
    )
    p.add_argument("--json", help="write the comparison as JSON to this file")
    p.add_argument("--report", help="write a Markdown report with plots into this directory")
    add_eval_mode_args(p)
    add_ray_args(p)
    add_source_args(p, evaluations=("track",))


def run_compare(a: argparse.Namespace) -> int:
    from ..comparison import distinct_names, model_name
    from ..evaluation import compare, compare_table, evaluator, metrics_table, per_class_table, reporter
    from ..pipeline import open_model, sized_source_options

    _quiet_torch()
    if len(a.models) < 2:
        raise EdgecvError("compare needs a reference and at least one candidate")
    kinds = {evaluation_of(m, a) for m in a.models}
    if len(kinds) > 1:
        raise EdgecvError(
            f"compare takes models of one task; these are {sorted(kinds)} (give --task for a source model)"
        )
    task = kinds.pop()
    ev = evaluator(task)
    report_writer = reporter(task) if a.report else None
    if a.report and report_writer is None:
        raise EdgecvError("--report is written for detectors; for a classifier, segmenter or tracking use --json")
    per_model = sized_source_options(a.models, eval_source_options(a), a.across_sizes)
    if a.ray is not None and a.across_sizes:
        raise EdgecvError("--across-sizes runs in one process: drop --ray")
    specs = sharded_specs(a, a.models, task, per_model) if a.ray is not None else []
    dataset = open_dataset(a, task)
    settings: dict[str, Any] = dict(
        bootstrap=a.bootstrap,
        seed=a.seed,
        conf=eval_conf(a, task),
        max_dets=a.max_det,
        progress=sys.stderr.isatty(),
        say=_err,
    )
    if a.ray is not None:
        from ..sharding import compare_sharded, ray_session

        with ray_session(a.ray):
            result = compare_sharded(specs, dataset, workers=a.workers, threads=a.worker_threads, **settings)
    else:
        dets = [open_model(m, source_options=o) for m, o in zip(a.models, per_model)]
        try:
            result = compare(
                list(zip(distinct_names([model_name(m, d) for m, d in zip(a.models, dets)], a.models), dets)),
                dataset,
                across_sizes=a.across_sizes,
                **settings,
                **({"tracker": a.tracker} if task == "track" else {}),
            )
        finally:
            for d in dets:
                d.close()
    failures = result.failures(a.max_map_drop)
    print(ev.compare_headline(result, dataset, a.bootstrap, a.seed))
    print(compare_table(result))
    print()
    print(metrics_table(result.runs))
    print()
    print(per_class_table(result.runs))
    if a.json:
        Path(a.json).write_text(json.dumps(result.to_dict(), indent=2, default=float))
    if report_writer is not None:
        report = report_writer.write_report(result, a.report, failures if a.max_map_drop is not None else None)
        _err(f"report: {report}")
    for f in failures:
        _err(f"edgecv: gate failed: {f}")
    return 1 if failures else 0


def _ints(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 1,4") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive whole numbers")
    return vals


def _percent(text: str) -> float:
    t = text.strip()
    try:
        return float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction (0.1) or a percentage (10%)") from None


def setup_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", help="bundle directories (or source models, run through the torch reference)")
    p.add_argument("--batch", type=_ints, default=[1], help="batch sizes, e.g. 1,4 (default 1)")
    p.add_argument("--threads", type=_ints, default=None, help="intra-op thread counts, e.g. 1,2 (default: backend's)")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="least time per measurement (default 10; a gate's measuring time: --compare 8 in all, "
        "--save-baseline 3 per run, --baseline the baseline's)",
    )
    p.add_argument("--min-iters", type=int, default=30, help="least iterations per measurement (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up calls (default 5, and at least 1 s)")
    add_data_args(p, required=False)
    p.add_argument("--limit", type=int, default=32, help="images taken from --data (default 32)")
    p.add_argument("--stream", action="store_true", help="also measure frames per second through det.stream()")
    p.add_argument(
        "--peak",
        action="store_true",
        help="also count the model's operations, measure the backend's peak at the same precision "
        "(a large matrix product) and report the fraction achieved",
    )
    p.add_argument("--json", help="write the results (or a gate's outcome) as JSON to this file")
    g = p.add_argument_group("latency gates", "exit 0 ok, 1 regression, 3 inconclusive (measure longer), 2 error")
    g.add_argument(
        "--compare",
        action="store_true",
        help="paired gate: OLD NEW run in one process, alternating in short blocks; the slowdown of NEW "
        "with a 95%% interval",
    )
    g.add_argument(
        "--save-baseline",
        metavar="FILE",
        help="record a latency baseline for one model (refused when the machine is too noisy)",
    )
    g.add_argument("--baseline", metavar="FILE", help="gate one model against a baseline from --save-baseline")
    g.add_argument("--max-regression", type=_percent, default=0.10, help="allowed slowdown (default 10%%)")
    g.add_argument(
        "--runs",
        type=int,
        default=None,
        help="separate runs, each loading the model anew, the fastest counting: a baseline is "
        "recorded from 3 by default, and checked with as many as it was recorded from",
    )
    g.add_argument("--seed", type=int, default=None, help="seed of the block order and the bootstrap")
    g.add_argument("--force", action="store_true", help="write the baseline even when the machine was noisy")
    g.add_argument(
        "--max-reference-shift",
        type=_percent,
        default=None,
        help="against a baseline: how much slower (or, by the same factor, faster) the reference workload may "
        "run than in the baseline before a slowdown is not judged (default 100%%: twice as slow or half the time)",
    )
    add_ray_args(p, shards=False)


def run_bench(a: argparse.Namespace) -> int:
    from ..images import read_image

    _quiet_torch()
    images = None
    if a.data:
        ds = open_dataset(a, task_of(a.models[0], a) if a.models else "detect")
        paths = ds.images if hasattr(ds, "images") else [ds.image_path(i) for i in ds.coco["images"]]
        images = [read_image(p) for p in paths[: a.limit]]
    if a.compare or a.save_baseline or a.baseline:
        if a.ray is not None:
            raise EdgecvError("the latency gates run both sides in one process by design: drop --ray")
        return run_latency_gate(a, images)
    from ..bench import bench, bench_table

    seconds = 10.0 if a.seconds is None else a.seconds
    if a.ray is not None:  # the same bench, each model one task on a whole node
        from ..sharding import bench_sharded, ray_session

        session: contextlib.AbstractContextManager[Any] = ray_session(a.ray)
        measure: Callable[..., Any] = bench_sharded
    else:
        session, measure = contextlib.nullcontext(), bench
    with session:
        result = measure(
            a.models,
            batches=a.batch,
            threads=a.threads or [None],
            seconds=seconds,
            min_iters=a.min_iters,
            warmup=a.warmup,
            images=images,
            say=_err,
            stream=a.stream,
            peak=a.peak,
        )
    m = result.machine
    print(
        f"{m['cpu']}, {m['cores']} cores; {result.settings['images']} images; warm-up {a.warmup}+ calls, "
        f">= {a.min_iters} calls and {seconds:g} s per row"
    )
    for node, nm in result.settings.get("ray", {}).get("machines", {}).items():
        print(f"node {node}: {nm['cpu']}, {nm['cores']} cores")
    print(bench_table(result))
    if a.json:
        result.save(a.json)
    return 0


def run_latency_gate(a: argparse.Namespace, images: list | None) -> int:
    """``bench --compare``, ``--save-baseline`` and ``--baseline``: see :mod:`edgecv.latency`."""
    from .. import latency as L

    modes = [
        m
        for m, on in (("--compare", a.compare), ("--save-baseline", a.save_baseline), ("--baseline", a.baseline))
        if on
    ]
    if len(modes) > 1:
        raise EdgecvError(f"{' and '.join(modes)} are separate gates: give one")
    if len(a.batch) > 1 or (a.threads and len(a.threads) > 1):
        raise EdgecvError(f"{modes[0]} measures one batch size and one thread count: give --batch N and --threads N")
    if a.stream or a.peak:
        raise EdgecvError(f"{modes[0]} gates the end-to-end latency; --stream and --peak belong to a plain bench")
    threads = a.threads[0] if a.threads else None
    batch = a.batch[0]
    secs = {} if a.seconds is None else {"seconds": a.seconds}
    if a.compare:
        if len(a.models) != 2:
            raise EdgecvError(f"--compare takes two models, OLD then NEW (got {len(a.models)})")
        result = L.compare_latency(
            a.models[0],
            a.models[1],
            a.max_regression,
            batch=batch,
            threads=threads,
            images=images,
            seed=a.seed or 0,
            say=_err,
            **secs,
        )
    else:
        if len(a.models) != 1:
            raise EdgecvError(
                f"{modes[0]} takes one model (got {len(a.models)}); to gate two against each other, use --compare"
            )
        if a.save_baseline:
            data = L.record_baseline(
                a.models[0],
                a.save_baseline,
                batch=batch,
                threads=threads,
                images=images,
                seed=a.seed or 0,
                force=a.force,
                say=_err,
                **secs,
                **({} if a.runs is None else {"runs": a.runs}),
            )
            st = data["stats"]
            print(
                f"baseline {a.save_baseline}: {data['model']}, {st['median_ms']:.2f} ms = {st['median_ratio']:.3f} x "
                f"the reference workload ({st['reference_ms']:.2f} ms); 95% interval ±{st['half_width'] * 100:.1f}%, "
                f"blocks spread {st['spread'] * 100:.1f}%; runs {', '.join(f'{r:.3f}' for r in st['run_medians'])}, "
                f"the two fastest {st['occasion_sd'] * 100:.1f}% apart beyond their own noise"
            )
            for p in data["forced"]:
                _err(f"edgecv: warning: written with --force despite: {p}")
            print(
                f"a gate against it can resolve a slowdown of about {L.resolution(st) * 100:.0f}% or more at this "
                "noise: set --max-regression above that"
            )
            return 0
        shift = {} if a.max_reference_shift is None else {"max_reference_shift": a.max_reference_shift}
        result = L.check_baseline(
            a.models[0],
            a.baseline,
            a.max_regression,
            a.seconds,
            a.runs,
            threads,
            images,
            say=_err,
            **({} if a.seed is None else {"seed": a.seed}),
            **shift,
        )
    print(result.report())
    if a.json:
        Path(a.json).write_text(json.dumps(result.to_dict(), indent=2, default=float))
    v = result.verdict
    if v.verdict == "regression":
        _err(f"edgecv: gate failed: {result.timings[-1].model} is slower: {v.summary()}")
    elif v.verdict == "inconclusive":
        _err(
            f"edgecv: inconclusive: {v.reason}; "
            f"{L.advice(v, result.settings.get('seconds_flag'), result.mode == 'baseline')}"
        )
    return v.exit_code


COMMANDS = {
    "export": (setup_export, run_export, "export a detector to a bundle for one target"),
    "predict": (setup_predict, run_predict, "run a bundle on images or videos; print and draw the detections"),
    "track": (setup_track, run_track, "detect and track objects in a video, frames, a camera or a stream"),
    "inspect": (setup_inspect, run_inspect, "show a bundle's manifest, files, hashes and I/O contract"),
    "val": (setup_val, run_val, "COCO metrics of a bundle or source model on a data set"),
    "compare": (setup_compare, run_compare, "compare bundles with a reference on a data set, paired; gate on mAP drop"),
    "bench": (setup_bench, run_bench, "latency percentiles per stage, batch and threads; gate against a baseline"),
    "serve": (
        setup_serve,
        run_serve,
        "serve bundles over the Open Inference Protocol (KServe v2) on Ray Serve, with dynamic batching",
    ),
    "build": (setup_build, run_build, "build a TensorRT plan for this GPU and add it to a tensorrt bundle"),
    "triton": (setup_triton, run_triton, "write a Triton Inference Server model repository from bundles"),
    "doctor": (setup_doctor, run_doctor, "static check of a bundle or ONNX graph against TensorRT's rules"),
    "env": (setup_env, run_env, "which backends are usable here, with versions"),
    "models": (
        setup_models,
        run_models,
        "what can be exported: sources and --arch constructors per task, targets x precisions",
    ),
    "demo": (
        setup_demo,
        run_demo,
        "export the default detector to every CPU target and compare them on the shapes set",
    ),
}
