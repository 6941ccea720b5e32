"""The orchestration layer above the exporter and the evaluation: open any model (a bundle, or
a source run as the PyTorch reference), validate a bundle against its source, and export with
the accuracy gate — the one call behind ``edgecv export --data``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import targets
from .errors import EdgecvError


def open_model(spec: Any, **options: Any):
    """A detector from a bundle directory (its graph run where this machine can: a TensorRT
    bundle's on onnxruntime), or the ``torch`` reference of a source model.

    Args:
        spec: a bundle directory, a model file / ``edgecv-tiny`` / nn.Module (run as the reference).
        **options: detector options (conf, threads, ...); for sources also export options
            (names, imgsz, layout, ...) under ``source_options``.
    """
    from .bundle import MANIFEST_NAME, Bundle
    from .runtimes import load

    source_options = options.pop("source_options", {}) or {}
    if isinstance(spec, (str, os.PathLike)) and (Path(spec) / MANIFEST_NAME).is_file():
        target = targets.get(Bundle.open(spec, verify=False).target)
        via = target.validation_backend
        return load(spec, **({"backend": via} if via != target.key else {}), **options)
    try:
        from .export import reference
    except ImportError as e:
        raise EdgecvError(
            f"'{spec}' is not a bundle; running a source model needs the exporter ({e.name} is missing): "
            "pip install 'edgecv[export]'"
        ) from None
    return reference(spec, detector_options=options, **source_options)


def input_size(spec: Any) -> tuple[int, int] | None:
    """The (height, width) that a bundle directory's model takes; None for anything else (a source)."""
    from .bundle import MANIFEST_NAME, Bundle
    from .evaluation import manifest_input_size

    if isinstance(spec, (str, os.PathLike)) and (Path(spec) / MANIFEST_NAME).is_file():
        return manifest_input_size(Bundle.open(spec, verify=False).manifest)
    return None


def size_text(size: Any) -> str:
    """``640x640`` for (640, 640) or 640."""
    h, w = (size, size) if isinstance(size, int) else size
    return f"{h}x{w}"


def sized_source_options(
    models: Sequence[Any], source_options: dict | None = None, across_sizes: bool = False
) -> list[dict]:
    """The source options each of ``models`` opens with, so that a comparison measures the
    conversion and not a change of input size: a source model runs at the input size of the
    bundles it is compared with.

    A source's own size (its checkpoint's training size, or 640) is not what a bundle of it was
    exported at when ``--imgsz`` differed at export; compared at their own sizes, a YOLOv8n
    trained at 320 and its FP32 bundle at 640 differ by 21 mAP points, all of it the size.

    Args:
        models: bundle directories and sources, as the command line names them.
        source_options: how to read a source; its ``imgsz`` is the size asked for (``--imgsz``).
        across_sizes: allow models of different input sizes (``compare --across-sizes``): each
            source then runs at ``imgsz`` or its own size, and nothing is refused.

    Raises:
        EdgecvError: the bundles take different sizes, or ``imgsz`` contradicts theirs, and
            ``across_sizes`` is not set.
    """
    opts = dict(source_options or {})
    sizes = {str(m): input_size(m) for m in models}
    bundles = {m: s for m, s in sizes.items() if s is not None}
    distinct = sorted(set(bundles.values()))
    asked = opts.get("imgsz")
    asked_hw = None if asked is None else ((asked, asked) if isinstance(asked, int) else tuple(asked))
    listed = ", ".join(f"{Path(m).name} {size_text(s)}" for m, s in bundles.items())
    if across_sizes or not distinct:
        return [opts for _ in models]
    if len(distinct) > 1:
        raise EdgecvError(
            f"these bundles take different input sizes ({listed}): a difference between them would be the size's, "
            "not the conversion's. Compare bundles of one size, or ask for a comparison across sizes by name: "
            "--across-sizes"
        )
    (size,) = distinct
    if asked_hw is not None and asked_hw != size:
        raise EdgecvError(
            f"--imgsz {size_text(asked_hw)} contradicts the bundle{'s' * (len(bundles) > 1)} ({listed}): a source "
            f"model is run at the size of the bundles it is compared with. Drop --imgsz (the source then runs at "
            f"{size_text(size)}), or ask for a comparison across sizes by name: --across-sizes"
        )
    sized = {**opts, "imgsz": size if size[0] != size[1] else size[0]}
    return [opts if str(m) in bundles else sized for m in models]


def validate_bundle(
    bundle: str | os.PathLike,
    source: Any,
    dataset,
    source_options: dict | None = None,
    max_map_drop: float | None = None,
    bootstrap: int = 200,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
):
    """Compare a bundle with its source on ``dataset`` and record the results in its manifest
    (:func:`edgecv.evaluation.validation_record`).

    Returns the comparison and the gate's failure messages (empty when it passed or no gate was set).
    """
    from .bundle import Bundle, write_validation
    from .comparison import model_name
    from .cpu import machine
    from .evaluation import compare, validation_record

    ref = open_model(source, source_options=sized_source_options([bundle, source], source_options)[1])
    det = open_model(bundle)  # a tensorrt bundle's graph is measured where this runs: on the CPU
    target = Bundle.open(bundle, verify=False).target
    try:
        result = compare(
            [(model_name(source, ref), ref), (det.bundle.path.name, det)],
            dataset,
            bootstrap=bootstrap,
            progress=progress,
            say=say,
        )
        failures = result.failures(max_map_drop)
        write_validation(bundle, validation_record(result, target, det, max_map_drop, not failures, machine()))
    finally:
        ref.close()
        det.close()
    return result, failures


def export_checked(
    model: Any,
    target: str,
    dataset=None,
    *,
    max_drop: float | None = None,
    validate: bool = False,
    bootstrap: int = 200,
    max_float_layers: int = 8,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
    source_options: dict | None = None,
    **export_options: Any,
) -> tuple[Path, Any, list[str]]:
    """Export ``model`` for ``target`` and, with a data set, hold it to its source's accuracy.

    Where keeping layers in float can change the bundle's accuracy (INT8, and FP16 graphs on
    onnxruntime and tensorrt; :attr:`edgecv.targets.Target.accuracy_control`) and ``max_drop``
    is given, this is accuracy control (:func:`edgecv.export.accuracy.export_within_budget`):
    the bundle is written only once it loses at most ``max_drop`` points. Otherwise the bundle
    is exported and then, with ``validate`` or ``max_drop``, compared with its source and the
    figures recorded in its manifest.

    Args:
        source_options: how to read the source (names, task, layout, ...), for the export and
            for the reference it is compared with.
        **export_options: as for :func:`edgecv.export.export` (precision, calib, NMS settings, ...).

    Returns:
        The bundle, the comparison (None when not validated) and the gate's failure messages.

    Raises:
        AccuracyBudgetError: accuracy control could not meet ``max_drop``.
    """
    from .export import export

    opts = dict(source_options or {})
    gated = validate or max_drop is not None
    if gated and dataset is None:
        raise EdgecvError("validation and an accuracy budget need a validation set: --data (and --images)")
    precision = export_options.get("precision", "fp32")
    if max_drop is not None and precision in targets.export_target(target).accuracy_control:
        from .export.accuracy import export_within_budget

        bundle = export_within_budget(
            model,
            target,
            dataset,
            max_drop,
            bootstrap=bootstrap,
            say=say or (lambda m: None),
            max_steps=max_float_layers,
            progress=progress,
            **export_options,
            **opts,
        )
        return bundle, None, []
    bundle = export(model, target, progress=say, **export_options, **opts)
    if not gated:
        return bundle, None, []
    if say:
        say(
            f"validating {bundle.name} against the source on {dataset.name} ({len(dataset)} image{'s' * (len(dataset) != 1)})"
        )
    nms = {k: export_options[k] for k in ("conf", "iou", "max_det", "class_aware", "mode") if k in export_options}
    result, failures = validate_bundle(
        bundle,
        model,
        dataset,
        source_options={**opts, **nms},
        max_map_drop=max_drop,
        bootstrap=bootstrap,
        progress=progress,
        say=say,
    )
    return bundle, result, failures
