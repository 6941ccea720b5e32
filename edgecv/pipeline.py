"""The orchestration layer above the exporter and the evaluation: open any model (a bundle, or
a source run as the PyTorch reference), validate a bundle against its source, and export with
the accuracy gate — the one call behind ``edgecv export --data``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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

    ref = open_model(source, source_options=dict(source_options or {}))
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
