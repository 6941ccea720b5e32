"""TensorRT target: the ONNX graph TensorRT builds in strongly typed mode (TensorRT 10 and 11)
and its build settings; the plan itself comes from the plan store
(:func:`edgecv.runtimes.tensorrt.plans.ensure_plan`) when TensorRT and a GPU are present at export.

FP32: the ONNX graph; FP16: an FP16 graph with I/O, decode and NMS in FP32; INT8: explicit
symmetric QuantizeLinear/DequantizeLinear pairs (zero point 0, as TensorRT's parser
requires). Every graph passes the static check (:mod:`edgecv.runtimes.tensorrt.static_check`)
before it is written; its accuracy is measured on any CPU by running the same graph in
onnxruntime. Plans are built where they run: ``edgecv build BUNDLE`` on the device, or
``load(..., build_plan=True)``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from ...errors import ExportError
from ...runtimes.tensorrt import plans, static_check
from .. import quantize as Q

log = logging.getLogger("edgecv.export")


def _input_shape(onnx_path: Path) -> tuple[str, list[int], list[str]]:
    """The graph's image input (name and shape) and the names of its other inputs (the score floor)."""
    import onnx

    inputs = onnx.load(str(onnx_path), load_external_data=False).graph.input
    inp = inputs[0]
    shape = [d.dim_value if d.dim_value > 0 else -1 for d in inp.type.tensor_type.shape.dim]
    return inp.name, shape, [i.name for i in inputs[1:]]


def nonzero_on_float(path: Path) -> int:
    """Cast the BOOL inputs of NonZero nodes to FLOAT, in place, in the main graph and in the
    bodies of If, Loop and Scan nodes: TensorRT's parser lists NonZero for FP32/FP16, and
    torchvision's two-stage detectors take NonZero of masks (the same indices either way).
    Returns the number of nodes changed."""
    import onnx

    model = onnx.load(str(path))
    changed = _nonzero_on_float(model.graph, {})
    if changed:
        model = onnx.shape_inference.infer_shapes(model)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return changed


def _nonzero_on_float(graph, outer: dict[str, int], start: int = 0) -> int:
    """:func:`nonzero_on_float` on one graph; ``outer``: the element types of the names it reads
    from the graphs around it. Returns the number of nodes changed (``start`` numbers the casts)."""
    from onnx import AttributeProto, TensorProto, helper

    types = {
        **outer,
        **{v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]},
        **{t.name: t.data_type for t in graph.initializer},
    }
    nodes, changed = [], start
    for node in graph.node:
        if node.op_type == "NonZero" and types.get(node.input[0]) == TensorProto.BOOL:
            cast_out = f"{node.input[0]}_as_float_{changed}"
            nodes.append(
                helper.make_node(
                    "Cast",
                    [node.input[0]],
                    [cast_out],
                    to=TensorProto.FLOAT,
                    name=f"{node.name or 'NonZero'}_cast_input",
                )
            )
            node.input[0] = cast_out
            changed += 1
        for a in node.attribute:
            for body in [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs):
                changed = _nonzero_on_float(body, types, changed)
        nodes.append(node)
    if len(nodes) != len(graph.node):
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def build(
    onnx_path: Path,
    out_dir: Path,
    precision: str,
    calib=None,
    calib_method: str = "percentile",
    exclude: tuple[str, ...] = (),
    tensorrt: dict | None = None,
    progress: Callable[[str], None] | None = None,
    recipe: Q.Int8Recipe | None = None,
    **_: object,
) -> tuple[dict[str, str], dict, dict]:
    say = progress or log.info
    # user -> export() -> here: the warning names the user's line
    options = plans.renamed_options(tensorrt or {}, "export(tensorrt=...)", stacklevel=3)
    want_plan = options.pop("build_plan", None)  # None: when TensorRT and a GPU are here
    settings = plans.check_settings(options)
    target = out_dir / "model.onnx"
    record: dict = {}
    if precision == "fp32":
        shutil.copyfile(onnx_path, target)
    elif precision == "fp16":
        record = Q.fp16_graph(onnx_path, target, keep=exclude)
    else:
        r = recipe or Q.Int8Recipe()
        record = Q.int8_build(
            onnx_path,
            out_dir,
            calib,
            {"target": "tensorrt", "method": calib_method, "symmetric": True},
            ["model.onnx"],
            lambda ex: Q.quantize_qdq(
                onnx_path, target, calib, symmetric=True, method=calib_method, exclude=ex, per_channel=r.per_channel
            ),
            exclude,
            r,
        )
    nonzero_on_float(target)
    name, shape, extra = _input_shape(target)
    prof = plans.profile_for(name, shape, settings, extra)
    report = static_check.check(target, prof, path="model.onnx")
    if report.errors:
        raise ExportError("TensorRT would refuse this graph:\n" + report.table())
    say(f"TensorRT static check: {report.summary()}")
    graph = plans.Graph.of_file(target, name, shape, report.plugin_entries(), extra)
    staged = plans.StagedPlans(out_dir)
    reason = "not asked for" if want_plan is False else plans.can_build_here()
    if reason is None:
        plans.ensure_plan(graph, [staged], settings, build=True, say=say)
    elif want_plan:
        raise ExportError(f"a plan was asked for at export, but it cannot be built here: {reason}")
    else:
        say(f"no TensorRT plan built at export ({reason}): build it on the device with `edgecv build BUNDLE`")
    if plans.runs_host_code(settings):
        say(
            "version-compatible: the bundle's plans will carry host code that TensorRT runs, so loading "
            "the bundle will need --trust-plan-code (load(..., trust_plan_code=True))"
        )
    runtime = {
        "strongly_typed": True,
        # the plugins of NVIDIA's plugin library the graph's operators are built from: checked for
        # in TensorRT's plugin registry before a plan is built or loaded on the device
        "plugins": report.plugin_entries(),
        "build": settings,
        "profile": {n: dict(zip(("min", "opt", "max"), (list(x) for x in v))) for n, v in prof.items()},
        plans.MANIFEST_KEY: staged.entries(),
        "static_check": {"versions": report.versions, "errors": 0, "warnings": report.count("warning")},
    }
    return {"model.onnx": "model", **staged.roles}, runtime, record


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_bindings"):
        try:
            return {"tensorrt": version(dist)}
        except PackageNotFoundError:
            continue
    return {}
