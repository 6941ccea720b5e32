"""A Triton Inference Server model repository from bundles (``edgecv triton``): per bundle a
model folder with ``config.pbtxt``, the bundle's native model file(s) under ``1/`` and its class
names, the config written with Triton's own model-config schema (``tritonclient``'s
``model_config_pb2``).

Each config carries the bundle's manifest as the parameter ``edgecv_manifest`` (compact JSON),
so that a client of the server gets the letterbox, class names and output names with
``get_model_config``. No Triton backend hands model-level parameters it does not know to its
runtime: the onnxruntime, openvino and tensorrt backends each look up their own keys by name
(see docs/serving.md, "Triton model repository").
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import Bundle, staging, swap_dir
from ..errors import BackendUnavailableError, BundleError, EdgecvError, UnknownTargetError
from ..graph_references import check_model
from ..graph_references import protobuf_fields as _fields
from ..runtimes.tensorrt.plans import BUILD_DEFAULTS, MANIFEST_KEY, describe, parse_version
from .protocol import MANIFEST_PARAMETER  # the model-config parameter that carries the manifest

#: the model version folder edgecv writes
VERSION = "1"
#: the class names, one per line, in the model folder (``label_filename`` of an output)
LABELS_FILE = "labels.txt"
#: the largest batch of a bundle with a dynamic batch and no profile of its own (onnxruntime,
#: openvino): the same default as a TensorRT bundle's profile
DEFAULT_MAX_BATCH = int(BUILD_DEFAULTS["max_batch"])
#: the Triton image that serves a repository (its tag: the Triton release, YY.MM)
IMAGE = "nvcr.io/nvidia/tritonserver:<yy.mm>-py3"


class TritonRepositoryError(EdgecvError):
    """A model repository cannot be written as asked: a name given twice, a model folder that is
    not empty, a bundle Triton cannot serve as it is."""


@dataclass(frozen=True)
class TritonTarget:
    """How Triton serves the bundles of one edgecv target."""

    #: ``platform`` of the config ('' where ``backend`` says it)
    platform: str
    #: ``backend`` of the config ('' where ``platform`` says it)
    backend: str
    #: the instance kind (``KIND_CPU`` / ``KIND_GPU``)
    kind: str


#: edgecv target -> how Triton serves it
TARGETS: dict[str, TritonTarget] = {
    "onnxruntime": TritonTarget("onnxruntime_onnx", "", "KIND_CPU"),
    "openvino": TritonTarget("", "openvino", "KIND_CPU"),
    "tensorrt": TritonTarget("tensorrt_plan", "", "KIND_GPU"),
}

#: ONNX TensorProto element types -> Triton data types
_ONNX_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
    16: "TYPE_BF16",
}
#: OpenVINO IR port precisions -> Triton data types
_IR_TYPES = {
    "FP32": "TYPE_FP32",
    "FP16": "TYPE_FP16",
    "BF16": "TYPE_BF16",
    "FP64": "TYPE_FP64",
    "U8": "TYPE_UINT8",
    "I8": "TYPE_INT8",
    "U16": "TYPE_UINT16",
    "I16": "TYPE_INT16",
    "U32": "TYPE_UINT32",
    "I32": "TYPE_INT32",
    "U64": "TYPE_UINT64",
    "I64": "TYPE_INT64",
    "BOOL": "TYPE_BOOL",
    "BOOLEAN": "TYPE_BOOL",
}
#: the manifest's onnxruntime graph optimization level -> the onnxruntime backend's
#: ``optimization.graph.level`` (its default, no field, is ORT_ENABLE_ALL)
_ORT_LEVELS = {"basic": -1, "extended": 1, "disable": 2}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class TensorSpec:
    """A tensor of the model file: its Triton data type and its dims (-1: any size)."""

    data_type: str
    dims: tuple[int, ...]


# --- the model file's tensors ----------------------------------------------------------------------


def onnx_tensors(model: bytes) -> dict[str, TensorSpec]:
    """The inputs and outputs of an ONNX model (its bytes) by name, read with the protobuf walker
    of :mod:`edgecv.graph_references` (no ``onnx`` import). A symbolic dim is -1.

    Raises:
        BundleError: the bytes are not a readable ONNX model.
    """

    # onnx.proto: ModelProto.graph 7; GraphProto.input 11, output 12; ValueInfoProto.name 1,
    # type 2; TypeProto.tensor_type 1; Tensor.elem_type 1, shape 2; TensorShapeProto.dim 1;
    # Dimension.dim_value 1, dim_param 2
    def sub(buf: memoryview, number: int) -> list[memoryview]:
        return [v for f, v in _fields(buf) if f == number and isinstance(v, memoryview)]

    found: dict[str, TensorSpec] = {}
    try:
        for graph in sub(memoryview(model), 7):
            for value_info in sub(graph, 11) + sub(graph, 12):
                names = sub(value_info, 1)
                elem, dims = 0, []
                for tensor_type in (t for ty in sub(value_info, 2) for t in sub(ty, 1)):
                    for f, v in _fields(tensor_type):
                        if f == 1 and isinstance(v, int):
                            elem = v
                    for shape in sub(tensor_type, 2):
                        for dim in sub(shape, 1):
                            value = dict(_fields(dim)).get(1)
                            dims.append(value if isinstance(value, int) and value > 0 else -1)
                if names:
                    name = bytes(names[0]).decode("utf-8", "replace")
                    found[name] = TensorSpec(_ONNX_TYPES.get(elem, f"onnx element type {elem}"), tuple(dims))
    except ValueError as e:
        raise BundleError(f"the model is not a readable ONNX file ({e}); re-export the bundle") from None
    return found


def ir_tensors(xml: bytes) -> dict[str, TensorSpec]:
    """The inputs (Parameter layers) and outputs (Result layers) of an OpenVINO IR (the XML's
    bytes, checked by :func:`edgecv.graph_references.check_openvino_ir`) by each of their tensor
    names. A dynamic dim is -1.

    Raises:
        BundleError: the XML is not an IR.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise BundleError(f"the model is not an OpenVINO IR (XML): {e}; re-export the bundle") from None
    layers = {layer.get("id"): layer for layer in root.iter("layer")}
    edges = {
        (e.get("to-layer"), e.get("to-port")): (e.get("from-layer"), e.get("from-port")) for e in root.iter("edge")
    }

    def spec(port: ET.Element) -> TensorSpec:
        precision = (port.get("precision") or "").upper()
        dims = tuple(int(d.text or "-1") for d in port.findall("dim"))
        return TensorSpec(_IR_TYPES.get(precision, f"IR precision {precision or '?'}"), tuple(max(d, -1) for d in dims))

    def port_names(port: ET.Element | None) -> list[str]:
        return [n.strip() for n in (port.get("names") or "").split(",") if n.strip()] if port is not None else []

    found: dict[str, TensorSpec] = {}
    for layer in layers.values():
        if layer.get("type") == "Parameter":
            port = layer.find("output/port")
            for name in port_names(port):
                found[name] = spec(port)  # type: ignore[arg-type]
        elif layer.get("type") == "Result":
            port = layer.find("input/port")
            if port is None:
                continue
            # the IR names an output on the Result (newer IRs) or on the port that feeds it
            names = [n.strip() for n in (layer.get("output_names") or "").split(",") if n.strip()]
            src_layer, src_port = edges.get((layer.get("id"), port.get("id")), (None, None))
            producer = layers.get(src_layer)
            if producer is not None:
                names += port_names(next((p for p in producer.iter("port") if p.get("id") == src_port), None))
            for name in names:
                found[name] = spec(port)
    return found


# --- one model's config ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPlan:
    """What one model folder of the repository will hold: its name, the config (a
    ``model_config_pb2.ModelConfig``) and its files (name under ``1/`` -> the bundle's file)."""

    name: str
    bundle: Bundle
    config: Any
    #: file name under the version folder -> the bundle's file name
    files: dict[str, str]
    #: TensorRT plans: the machine each was built for, in words
    plans: tuple[str, ...] = ()
    #: TensorRT: a plan is version-compatible (the server needs the backend's version-compatible flag)
    version_compatible: bool = False


def _model_config_pb2() -> Any:
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as e:
        raise BackendUnavailableError(
            f"writing a Triton model repository needs tritonclient's model-config schema ({e}): "
            "pip install 'edgecv[serve]'"
        ) from None
    return model_config_pb2


def _tensors(bundle: Bundle, model: bytes) -> dict[str, TensorSpec]:
    entry = next(f for f in bundle.manifest["files"] if f["role"] == "model")
    where = f"bundle '{bundle.path}': {entry['path']}"
    try:
        return ir_tensors(model) if entry["path"].endswith(".xml") else onnx_tensors(model)
    except BundleError as e:
        raise BundleError(f"{where}: {e}") from None


def _plans(bundle: Bundle) -> list[dict]:
    """The TensorRT plans of a bundle, each listed among its hashed files; one per compute
    capability (Triton picks a plan by the GPU's compute capability only)."""
    entries = list(bundle.manifest.get("runtime", {}).get("tensorrt", {}).get(MANIFEST_KEY, []))
    if not entries:
        raise TritonRepositoryError(
            f"bundle '{bundle.path}' holds no TensorRT plan yet (it was exported where TensorRT or a GPU was "
            f"missing): Triton serves plans, not the ONNX graph; build one on the GPU that will serve it "
            f"(`edgecv build {bundle.path}`, with the TensorRT version of the Triton image), then run this again"
        )
    hashed = {f["path"] for f in bundle.manifest["files"]}
    by_cc: dict[str, dict] = {}
    for e in entries:
        if e.get("file") not in hashed:
            raise BundleError(
                f"bundle '{bundle.path}': plan {e.get('file')!r} is not among the bundle's hashed files; "
                f"rebuild it with `edgecv build {bundle.path} --force`"
            )
        cc = str(e["compute_capability"])
        if cc in by_cc:
            raise TritonRepositoryError(
                f"bundle '{bundle.path}' holds two plans for compute capability {cc}: {describe(by_cc[cc])} and "
                f"{describe(e)}; Triton picks a plan by compute capability only (cc_model_filenames), so the "
                "repository can hold one of them: keep the one for the TensorRT of your Triton image in a copy "
                "of the bundle (or export it again and build that one plan)"
            )
        by_cc[cc] = e
    return sorted(by_cc.values(), key=lambda e: parse_version(str(e["compute_capability"])))


def _max_batch(bundle: Bundle, plans: list[dict], asked: int | None) -> int:
    """``max_batch_size``: 0 for a bundle of fixed batch; else ``asked`` or the bundle's profile
    (TensorRT: the smallest max batch of its plans), at most that profile."""
    fixed = bundle.manifest["input"]["shape"][0]
    if fixed > 0:
        if asked:
            raise TritonRepositoryError(
                f"bundle '{bundle.path}' was exported for a fixed batch of {fixed} (its input is "
                f"{bundle.manifest['input']['shape']}): it cannot batch, drop --max-batch (its config gets "
                "max_batch_size 0 and the full input shape) or export it with a dynamic batch"
            )
        return 0
    limit = min((int(e.get("build", {}).get("max_batch", DEFAULT_MAX_BATCH)) for e in plans), default=None)
    if asked is not None:
        if asked < 1:
            raise TritonRepositoryError(f"--max-batch must be 1 or more, not {asked}")
        if limit is not None and asked > limit:
            raise TritonRepositoryError(
                f"bundle '{bundle.path}': its TensorRT plans run batches up to {limit} (their profile); "
                f"--max-batch {asked} is more: rebuild the plans with `edgecv build {bundle.path} --max-batch "
                f"{asked} --force`, or ask for {limit} or less"
            )
        return asked
    return limit if limit is not None else DEFAULT_MAX_BATCH


def model_config(
    bundle: Bundle,
    name: str,
    *,
    instances: int = 1,
    max_batch: int | None = None,
    dynamic_batching: bool = True,
    max_queue_delay_us: int = 0,
    threads: int | None = None,
    streams: int | None = None,
) -> ModelPlan:
    """The Triton model of one verified bundle: its config and the files its folder holds.

    The model file is read with :meth:`Bundle.read` (the bytes its sha256 vouches for) and
    checked with :func:`edgecv.graph_references.check_model` (no external data, no custom
    operators, IR weights only from the hashed ``.bin``); its input and outputs give the
    config's data types and dims.

    Args:
        bundle: an opened bundle (:meth:`Bundle.open`).
        name: the model's name on the server (its folder).
        instances: model instances (``instance_group`` count).
        max_batch: ``max_batch_size`` (default: the bundle's profile; 0 for a fixed-batch bundle).
        dynamic_batching: let the server batch requests (where the bundle can batch).
        max_queue_delay_us: the most a request waits for others to batch with.
        threads: threads per instance (onnxruntime ``intra_op_thread_count``, OpenVINO
            ``INFERENCE_NUM_THREADS``); default: the backend's.
        streams: OpenVINO ``NUM_STREAMS`` (default: the backend's).

    Raises:
        UnknownTargetError: the bundle's target is not one Triton serves.
        BundleError: the model file does not match the manifest or refers outside the bundle.
        TritonRepositoryError: the options do not fit the bundle.
    """
    pb = _model_config_pb2()
    m = bundle.manifest
    target = TARGETS.get(m["target"])
    if target is None:
        raise UnknownTargetError(
            f"bundle '{bundle.path}' is for target '{m['target']}', which Triton does not serve from a bundle; "
            f"edgecv writes Triton models of {', '.join(TARGETS)} bundles"
        )
    if instances < 1:
        raise TritonRepositoryError(f"--instances must be 1 or more, not {instances}")
    if max_queue_delay_us < 0:
        raise TritonRepositoryError(f"--max-queue-delay-us must be 0 or more, not {max_queue_delay_us}")

    graph = bundle.read("model")
    check_model(bundle, graph, m["target"])
    tensors = _tensors(bundle, graph)
    plans = _plans(bundle) if m["target"] == "tensorrt" else []
    batch = _max_batch(bundle, plans, max_batch)

    config = pb.ModelConfig(name=name, max_batch_size=batch)
    if target.platform:
        config.platform = target.platform
    else:
        config.backend = target.backend

    def io(tensor: str, role: str, shape: Sequence[int] | None = None) -> tuple[str, list[int]]:
        spec = tensors.get(tensor)
        if spec is None:
            raise BundleError(
                f"bundle '{bundle.path}': the manifest's {role} {tensor!r} is not a tensor of its model file "
                f"(it has {', '.join(sorted(tensors)) or 'none'}); re-export the bundle"
            )
        if not spec.data_type.startswith("TYPE_"):
            raise TritonRepositoryError(
                f"bundle '{bundle.path}': {role} {tensor!r} has {spec.data_type}, no Triton type"
            )
        dims = list(shape if shape is not None else spec.dims)
        if batch:
            if not dims or dims[0] not in (-1, 0):
                raise TritonRepositoryError(
                    f"bundle '{bundle.path}': {role} {tensor!r} has shape {dims}, without the dynamic batch "
                    "dimension its input has: Triton cannot batch it; write it with --max-batch 0"
                )
            dims = dims[1:]
        return spec.data_type, dims

    inp = m["input"]
    dtype, dims = io(inp["name"], "input", [d if d > 0 else -1 for d in inp["shape"]])
    if dtype != "TYPE_UINT8" or tensors[inp["name"]].dims[1:] != tuple(inp["shape"][1:]):
        raise BundleError(
            f"bundle '{bundle.path}': the model's input {inp['name']!r} is {tensors[inp['name']]}, the manifest "
            f"says uint8 {inp['shape']}: re-export the bundle"
        )
    config.input.add(name=inp["name"], data_type=pb.DataType.Value(dtype), dims=dims)
    score = (m["output"].get("nms") or {}).get("score_input")
    if score:  # the NMS score floor, one per image ([B]): a client sends it with the images
        dtype, dims = io(score, "score input")
        if dtype != "TYPE_FP32":
            raise BundleError(f"bundle '{bundle.path}': the score input {score!r} is {dtype}, not FP32: re-export it")
        floor = config.input.add(name=score, data_type=pb.DataType.Value(dtype), dims=dims or [1])
        if not dims:
            floor.reshape.SetInParent()  # [B]: dims [1] reshaped to none, as for the outputs below
    label_role = "probs" if m["task"] == "classify" else "labels"
    for role, tensor in m["output"]["tensors"].items():
        dtype, dims = io(tensor, f"output {role}")
        out = config.output.add(name=tensor, data_type=pb.DataType.Value(dtype), dims=dims or [1])
        if not dims:
            # a tensor of one value per image ([B]): Triton wants dims, so [1] reshaped to none
            # (triton-inference-server/core src/model_config_utils.cc, ValidateIOShape)
            out.reshape.SetInParent()
        if role == label_role:
            out.label_filename = LABELS_FILE

    if batch and dynamic_batching:
        config.dynamic_batching.SetInParent()
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    config.instance_group.add(kind=pb.ModelInstanceGroup.Kind.Value(target.kind), count=instances)

    files: dict[str, str] = {}
    params: dict[str, str] = {}
    version_compatible = False
    if m["target"] == "onnxruntime":
        files["model.onnx"] = bundle.file("model").name
        level = m.get("runtime", {}).get("onnxruntime", {}).get("graph_optimization_level", "all")
        if level in _ORT_LEVELS:
            config.optimization.graph.level = _ORT_LEVELS[level]
        if threads:
            params["intra_op_thread_count"] = str(threads)
    elif m["target"] == "openvino":
        files["model.xml"] = bundle.file("model").name
        files["model.bin"] = bundle.file("weights").name
        ov = m.get("runtime", {}).get("openvino", {})
        params["PERFORMANCE_HINT"] = str(ov.get("performance_hint", "LATENCY")).upper()
        # The backend's only precision key turns bf16 on; it has none that pins f32 (see docs).
        if ov.get("inference_precision") == "bf16":
            params["HINT_BF16"] = "YES"
        if batch:
            # The backend compiles the model for a batch of exactly max_batch_size and refuses a
            # smaller batch unless it may pad it (openvino_backend src/openvino.cc).
            params["ENABLE_BATCH_PADDING"] = "YES"
        if threads:
            params["INFERENCE_NUM_THREADS"] = str(threads)
        if streams:
            params["NUM_STREAMS"] = str(streams)
    else:
        if len(plans) == 1:
            files["model.plan"] = plans[0]["file"]
        else:
            for e in plans:
                files[e["file"]] = e["file"]
                config.cc_model_filenames[str(e["compute_capability"])] = e["file"]
        version_compatible = any(e.get("version_compatible") for e in plans)
    for key, value in params.items():
        config.parameters[key].string_value = value
    config.parameters[MANIFEST_PARAMETER].string_value = json.dumps(m, separators=(",", ":"))
    return ModelPlan(name, bundle, config, files, tuple(describe(e) for e in plans), version_compatible)


# --- the repository --------------------------------------------------------------------------------


def plan_repository(
    bundles: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    force: bool = False,
    **options: Any,
) -> list[ModelPlan]:
    """Open and verify every bundle and make its model's config, before anything is written.

    Raises:
        BundleError: a bundle is missing, broken or tampered with.
        TritonRepositoryError: two models would share a name, a model folder is not empty
            (without ``force``), or the options do not fit a bundle.
        UnknownTargetError: a bundle's target is not one Triton serves.
    """
    if not bundles:
        raise TritonRepositoryError("no bundle given: edgecv triton BUNDLE... -o DIR")
    if names is not None and len(names) != len(bundles):
        raise TritonRepositoryError(
            f"{len(names)} --name for {len(bundles)} bundles: give one --name per bundle, in the same order"
        )
    opened = [Bundle.open(b) for b in bundles]  # verifies every file's size and sha256
    chosen = list(names) if names is not None else [b.manifest["name"] for b in opened]
    seen: dict[str, Bundle] = {}
    for name, b in zip(chosen, opened):
        if not _NAME.match(name):
            raise TritonRepositoryError(
                f"model name {name!r} (bundle '{b.path}') is not a folder name Triton takes: use letters, digits, "
                "'_', '-' and '.', not starting with '.' or '-' (--name NAME)"
            )
        if name in seen:
            raise TritonRepositoryError(
                f"bundles '{seen[name].path}' and '{b.path}' would both be the model {name!r}: a repository holds "
                "one model per name; give each bundle its own with --name (one per bundle, in order)"
            )
        seen[name] = b
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TritonRepositoryError(f"'{out}' is a file: the model repository is a folder")
    for name in chosen:
        dest = out / name
        if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not force):
            raise TritonRepositoryError(
                f"'{dest}' exists and is not empty: refusing to overwrite it; --force replaces it "
                "(or write to another -o folder)"
            )
    return [model_config(b, name, **options) for name, b in zip(chosen, opened)]


def _write_model(plan: ModelPlan, out: Path) -> Path:
    """Write one model folder: staged beside it, then renamed into place (a model folder there is
    replaced: the caller checked that it may be)."""
    from google.protobuf import text_format

    dest = out / plan.name
    with staging(dest) as tmp:
        version = tmp / VERSION
        version.mkdir()
        for name, src in plan.files.items():
            data = plan.bundle.read(name=src)  # the bytes its sha256 vouches for, read once
            with open(version / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        (tmp / LABELS_FILE).write_text("".join(f"{c}\n" for c in plan.bundle.classes), encoding="utf-8")
        (tmp / "config.pbtxt").write_text(text_format.MessageToString(plan.config, as_utf8=True), encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        for folder in (tmp, version):  # the staging folder is private: the server may run as another user
            folder.chmod(0o777 & ~umask)
        if not dest.is_dir() or dest.is_symlink():
            os.replace(tmp, dest)
            return dest
        swap_dir(tmp, dest)  # --force: the new folder takes the old one's place
    return dest


def write_repository(
    bundles: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    instances: int = 1,
    max_batch: int | None = None,
    dynamic_batching: bool = True,
    max_queue_delay_us: int = 0,
    threads: int | None = None,
    streams: int | None = None,
    force: bool = False,
) -> list[Path]:
    """Write a Triton model repository: one model folder per bundle under ``out_dir``.

    Each folder ``NAME/`` holds ``config.pbtxt``, ``labels.txt`` (the class names) and ``1/``
    with the bundle's model: ``model.onnx`` (onnxruntime, platform ``onnxruntime_onnx``),
    ``model.xml`` + ``model.bin`` (openvino, backend ``openvino``) or ``model.plan`` (tensorrt,
    platform ``tensorrt_plan``; with several plans, each under its bundle name and listed in
    ``cc_model_filenames`` by compute capability). Every bundle is verified (sizes and sha256,
    what its graph refers to) and every config made before the first folder is written; each
    folder is staged beside its final place and renamed into it.

    Args:
        bundles: bundle directories.
        out_dir: the model repository (made if missing; other models in it are left alone).
        names: the model names, one per bundle (default: each manifest's ``name``).
        instances: model instances per model (``instance_group``: KIND_CPU for onnxruntime and
            openvino, KIND_GPU for tensorrt).
        max_batch: ``max_batch_size`` (default: the bundle's batch profile; a fixed-batch
            bundle gets 0 and its full input shape).
        dynamic_batching: let the server batch requests (only where the bundle can batch).
        max_queue_delay_us: ``dynamic_batching.max_queue_delay_microseconds``.
        threads: threads per instance (onnxruntime, OpenVINO).
        streams: OpenVINO's ``NUM_STREAMS``.
        force: replace model folders of the same names.

    Returns:
        The model folders written, in the order of ``bundles``.

    Raises:
        BundleError, UnknownTargetError, TritonRepositoryError: see :func:`plan_repository`.
        BackendUnavailableError: tritonclient is not installed (the ``[serve]`` extra).
    """
    plans = plan_repository(
        bundles,
        out_dir,
        names=names,
        force=force,
        instances=instances,
        max_batch=max_batch,
        dynamic_batching=dynamic_batching,
        max_queue_delay_us=max_queue_delay_us,
        threads=threads,
        streams=streams,
    )
    return write_models(plans, out_dir)


def write_models(plans: Sequence[ModelPlan], out_dir: str | os.PathLike) -> list[Path]:
    """Write the model folders of :func:`plan_repository` under ``out_dir``; returns them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [_write_model(p, out) for p in plans]


def serve_commands(out_dir: str | os.PathLike, plans: Sequence[ModelPlan] = ()) -> list[str]:
    """The commands that serve the repository at ``out_dir``: ``tritonserver`` as it is, and in
    Triton's container (``<yy.mm>``: the Triton release; for TensorRT plans, the one whose
    TensorRT version built them)."""
    repo = Path(out_dir).resolve()
    gpu = any(p.bundle.target == "tensorrt" for p in plans)
    extra = " --backend-config=tensorrt,version-compatible=true" if any(p.version_compatible for p in plans) else ""
    return [
        f"tritonserver --model-repository={repo}{extra}",
        f"docker run --rm{' --gpus all' if gpu else ''} -p 8000:8000 -p 8001:8001 -p 8002:8002 "
        f"-v {repo}:/models {IMAGE} tritonserver --model-repository=/models{extra}",
    ]
