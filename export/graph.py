"""The exported graph: uint8 NHWC images in; normalisation, the source model, box
decoding and (by default) fixed-size NMS inside the graph.

``DetectorGraph`` is one torch module used twice: run eagerly it is the ``torch``
reference backend, exported with ``torch.onnx.export`` it is the hand-off to every
target. ONNX sources get the same pre/post graphs merged around them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Protocol

import torch
import torchvision
from torch import nn

from ..errors import ExportError, SourceError
from .spec import InputSpec, NmsSpec, OutputSpec

OPSET = 17
INPUT_NAME = "images"
#: the graph input that carries the NMS score floor, one value per image ([B] float32): the
#: runtime feeds its ``conf`` there, so NMS works only on the candidates the caller keeps
SCORE_INPUT = "score_threshold"
NMS_OUTPUTS = ("num_dets", "boxes", "scores", "labels")
RAW_OUTPUTS = ("boxes", "scores")


class Normalize(nn.Module):
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W], ``(x * scale - mean) / std``."""

    mul: torch.Tensor
    add: torch.Tensor

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mul", spec.scale / std)
        self.register_buffer("add", -mean / std)
        self.identity_affine = bool((mean == 0).all() and (std == 1).all())
        self.scale = float(spec.scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # cast first: TensorRT takes UINT8 only as a network input feeding a Cast
        x = images.float().permute(0, 3, 1, 2)
        if self.identity_affine:  # one Mul instead of Mul + Add
            return x * self.scale
        return x * self.mul + self.add


class Decode(nn.Module):
    """Raw predictions -> boxes xyxy [B, N, 4] in input pixels and scores [B, N, C]."""

    def __init__(self, spec: OutputSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.spec
        if s.layout == "bcn":
            raw = raw.transpose(1, 2)
        box = raw[..., :4]
        scores = raw[..., 4 + int(s.objectness) :]
        if s.apply_sigmoid:
            scores = scores.sigmoid()
        if s.objectness:
            obj = raw[..., 4:5]
            scores = scores * (obj.sigmoid() if s.apply_sigmoid else obj)
        if s.box_format == "cxcywh":
            half = box[..., 2:] / 2
            box = torch.cat([box[..., :2] - half, box[..., :2] + half], -1)
        return box, scores


class _OnnxNMS(torch.autograd.Function):
    """ONNX ``NonMaxSuppression``; the eager forward has the op's semantics (per-class,
    score > threshold, suppress IoU > threshold) through torchvision.

    ``score`` is a float (a floor baked into the graph) or a [B] tensor (the graph's score
    input): NMS runs once over the whole batch, so the graph takes the lowest of the B floors,
    and each image's results are filtered at its own floor on the host. A server that batches
    requests with different floors (Triton's dynamic batching) stays exact this way.
    """

    @staticmethod
    def forward(
        ctx, boxes: torch.Tensor, scores: torch.Tensor, max_per_class: int, iou: float, score: float | torch.Tensor
    ) -> torch.Tensor:
        # boxes [B, N, 4], scores [B, C, N] -> selected [M, 3] (batch, class, box)
        floor = float(score.min()) if isinstance(score, torch.Tensor) else score
        out = []
        for b in range(scores.shape[0]):
            cls, idx = (scores[b] > floor).nonzero(as_tuple=True)
            if idx.numel() == 0:
                continue
            keep = torchvision.ops.batched_nms(boxes[b, idx], scores[b, cls, idx], cls, iou)
            # The op caps each class at max_per_class; the caller keeps the overall top K <= that
            # cap by score, which a per-class cap cannot change, so the eager path skips it.
            out.append(torch.stack([torch.full_like(idx[keep], b), cls[keep], idx[keep]], 1))
        return torch.cat(out) if out else torch.zeros((0, 3), dtype=torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou, score):  # pragma: no cover - used by the exporter
        if isinstance(score, float):
            floor = g.op("Constant", value_t=torch.tensor([score], dtype=torch.float32))
        else:  # the score input [B]: its lowest value, shape [1]
            floor = g.op("ReduceMin", score, keepdims_i=1)
        return g.op(
            "NonMaxSuppression",
            boxes,
            scores,
            g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.int64)),
            g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float32)),
            floor,
        )


class FixedNMS(nn.Module):
    """NMS with fixed-size outputs: ``num_dets [B]`` int32, ``boxes [B, K, 4]``,
    ``scores [B, K]``, ``labels [B, K]`` int32 (padding rows are zeros and label -1)."""

    def __init__(self, nms: NmsSpec, num_classes: int, num_candidates: int) -> None:
        super().__init__()
        if nms.max_detections > num_classes * num_candidates:
            raise ExportError(
                f"max detections {nms.max_detections} exceeds the model's {num_classes * num_candidates} candidates"
            )
        self.nms = nms
        self.c, self.n = num_classes, num_candidates

    def forward(
        self, boxes: torch.Tensor, scores: torch.Tensor, floor: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``floor``: the score input [B] (None: the spec's score threshold, baked in)."""
        k, n = self.nms.max_detections, self.n
        if not self.nms.class_aware:
            best, cls = scores.max(-1)
            nms_scores = best.unsqueeze(1)  # [B, 1, N]
        else:
            nms_scores = scores.transpose(1, 2)  # [B, C, N]
        score = float(self.nms.score_threshold) if floor is None else floor
        sel = _OnnxNMS.apply(boxes, nms_scores, k, float(self.nms.iou_threshold), score)
        cc = nms_scores.shape[1]
        flat = nms_scores.reshape(-1)
        lin = sel[:, 0] * (cc * n) + sel[:, 1] * n + sel[:, 2]
        # Scatter the kept scores into a dense [B, C*N] map filled with -1, then take the top K:
        # fixed shapes, no data-dependent output.
        dense = torch.full_like(flat, -1.0).scatter(0, lin, flat.gather(0, lin)).reshape(-1, cc * n)
        top_s, top_i = dense.topk(k, dim=1)
        box_idx = top_i % n
        valid = top_s > -0.5
        # a flat Gather, not GatherElements: when ``boxes`` is a slice of the raw output (xyxy
        # sources), exporters fold the slice into GatherElements' data, which OpenVINO rejects
        # (its data and indices must agree on every axis but the gathered one)
        offsets = torch.arange(boxes.shape[0], device=boxes.device).unsqueeze(1) * n
        top_b = boxes.reshape(-1, 4)[(box_idx + offsets).reshape(-1)].reshape(-1, k, 4)
        if self.nms.class_aware:
            labels = top_i // n
        else:
            labels = cls.gather(1, box_idx)
        num = valid.sum(1).to(torch.int32)
        top_s = torch.where(valid, top_s, torch.zeros_like(top_s))
        top_b = top_b * valid.unsqueeze(-1).to(top_b.dtype)
        labels = torch.where(valid, labels, torch.full_like(labels, -1)).to(torch.int32)
        return num, top_b, top_s, labels


class DetectorGraph(nn.Module):
    """normalise -> model -> decode -> NMS (mode ``"nms"``) or raw candidates (mode ``"raw"``).

    Args:
        model: the source detector, float NCHW in, raw predictions out (first output if several).
        in_spec / out_spec / nms: the contracts; ``num_candidates`` is N of the raw output.
        score_input: in mode ``"nms"``, take the NMS score floor as a second input,
            :data:`SCORE_INPUT` [B] float32 (else the spec's ``score_threshold`` is baked in).
    """

    def __init__(
        self,
        model: nn.Module | None,
        in_spec: InputSpec,
        out_spec: OutputSpec,
        nms: NmsSpec,
        num_candidates: int,
        mode: str = "nms",
        score_input: bool = True,
    ) -> None:
        super().__init__()
        if mode not in ("nms", "raw"):
            raise ExportError(f"output mode must be 'nms' or 'raw', got {mode!r}")
        self.normalize = Normalize(in_spec)
        self.model = model
        self.decode = Decode(out_spec)
        self.mode = mode
        self.nms = FixedNMS(nms, out_spec.num_classes, num_candidates) if mode == "nms" else None
        self.score_input = bool(score_input) and self.nms is not None
        # instance masks (Mask R-CNN): the model's mask head runs on the boxes NMS kept
        self.with_masks = has_masks(model)
        if self.with_masks and mode != "nms":
            raise ExportError(
                "a model with instance masks computes them for the boxes NMS keeps: export it with "
                "mode 'nms' (the default), not 'raw'"
            )

    @property
    def output_names(self) -> tuple[str, ...]:
        return output_names(self.mode, self.with_masks)

    @property
    def extra_inputs(self) -> dict[str, torch.Tensor]:
        """The graph's inputs after the images, by name, with an example value for batch 1."""
        if not self.score_input:
            return {}
        assert self.nms is not None
        return {SCORE_INPUT: torch.tensor([self.nms.nms.score_threshold], dtype=torch.float32)}

    def postprocess(self, raw: torch.Tensor, floor: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        boxes, scores = self.decode(raw)
        if self.nms is None:
            return boxes, scores
        return self.nms(boxes, scores, floor if self.score_input else None)

    def forward(self, images: torch.Tensor, floor: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``floor``: the score input [B] when the graph takes it (None: the spec's threshold)."""
        assert self.model is not None, "a graph without its model (an ONNX source's) is exported in parts, not run"
        x = self.normalize(images)
        if self.with_masks:
            masked: Any = self.model  # has_masks: it has forward_features and masks
            raw, features = masked.forward_features(x)
            num, boxes, scores, labels = self.postprocess(raw, floor)
            return num, boxes, scores, labels, masked.masks(features, boxes, labels)
        raw = self.model(x)
        if isinstance(raw, (tuple, list)):
            raw = raw[0]
        return self.postprocess(raw, floor)


class TaskGraph(Protocol):
    """What :func:`export_onnx_source` reads from a task's graph: :class:`DetectorGraph`, or a
    classifier's or segmenter's graph (:mod:`edgecv.export.tasks`)."""

    normalize: Normalize

    @property
    def output_names(self) -> tuple[str, ...]: ...

    def postprocess(self, raw: Any) -> tuple[torch.Tensor, ...]: ...


def extra_inputs(graph: Any) -> dict[str, torch.Tensor]:
    """A task graph's inputs after the images (a detector's score floor), with example values."""
    return dict(getattr(graph, "extra_inputs", {}))


class _Post(nn.Module):
    def __init__(self, graph: TaskGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, raw: torch.Tensor, *extra: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.graph.postprocess(raw, *extra)


def has_masks(model: nn.Module | None) -> bool:
    """Whether a source module has an instance-mask head (``forward_features`` and ``masks``)."""
    return (
        model is not None
        and callable(getattr(model, "masks", None))
        and callable(getattr(model, "forward_features", None))
    )


def output_names(mode: str, masks: bool = False) -> tuple[str, ...]:
    """The graph's outputs: NMS outputs (and ``masks`` [B, K, M, M], mask probabilities of the
    kept boxes, in their box) or raw candidates."""
    return (NMS_OUTPUTS + ("masks",) if masks else NMS_OUTPUTS) if mode == "nms" else RAW_OUTPUTS


def _export(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    in_name: str,
    out_names: tuple[str, ...],
    dynamic_batch: bool,
    opset: int,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """``extra``: inputs after ``example`` by name (each with a batch axis first, like it)."""
    extra = extra or {}
    in_names = [in_name, *extra]
    axes = {n: {0: "batch"} for n in in_names} if dynamic_batch else None
    if axes:
        axes.update({n: {0: "batch"} for n in out_names})
    module.eval()
    # The TorchScript exporter warns about tracing the eager NMS and about its own deprecation:
    # noise for a user, since the graph is checked below.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example, *extra.values()),
            str(path),
            input_names=in_names,
            output_names=list(out_names),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def finish(model_proto, path: Path) -> None:
    """Clean the graph with onnxslim, check it, infer shapes and save it."""
    import onnx
    import onnxslim

    slim = onnxslim.slim(model_proto)
    if slim is not None:
        model_proto = slim
    # The TorchScript exporter names output dimensions it could not follow (e.g. the K of
    # scores after a Where); forget those names so that inference can state the static size
    # (TensorRT and the static check then see fixed-size outputs). The batch stays dynamic.
    for out in model_proto.graph.output:
        for dim in out.type.tensor_type.shape.dim:
            if dim.dim_param and dim.dim_param != "batch":
                dim.ClearField("dim_param")
    del model_proto.graph.value_info[:]
    try:
        onnx.checker.check_model(model_proto, full_check=True)
        model_proto = onnx.shape_inference.infer_shapes(model_proto, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported ONNX graph is invalid: {e}") from None
    onnx.save(model_proto, str(path))


def export_torch(
    graph: DetectorGraph, imgsz: tuple[int, int], path: Path, dynamic_batch: bool = True, opset: int = OPSET
) -> None:
    """Export a torch :class:`DetectorGraph` to a checked, slimmed ONNX file at ``path``."""
    import onnx

    example = torch.full((1, imgsz[0], imgsz[1], 3), 114, dtype=torch.uint8)
    raw_path = path.with_suffix(".raw.onnx")
    try:
        _export(graph, example, raw_path, INPUT_NAME, graph.output_names, dynamic_batch, opset, extra_inputs(graph))
        finish(onnx.load(str(raw_path)), path)
    finally:
        raw_path.unlink(missing_ok=True)


def export_model(
    module: nn.Module, imgsz: tuple[int, int], path: Path, dynamic_batch: bool = True, opset: int = OPSET
) -> None:
    """Export a raw-prediction model alone (float NCHW in, its first output out) to ONNX."""
    example = torch.zeros((1, 3, imgsz[0], imgsz[1]), dtype=torch.float32)
    _export(module, example, path, "input", ("raw",), dynamic_batch, opset)


def fixed_batch(onnx_path: Path) -> bool:
    """Whether the ONNX model's input has a fixed batch dimension."""
    import onnx

    dims = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return bool(dims) and dims[0].HasField("dim_value")


def export_onnx_source(
    src_path: Path, graph: TaskGraph, imgsz: tuple[int, int], raw_shape: tuple, path: Path, dynamic_batch: bool = True
) -> None:
    """Wrap an ONNX model with the pre/post graphs of ``graph`` (whose model is None): a
    :class:`DetectorGraph`, or a classifier's or segmenter's graph (:mod:`edgecv.export.tasks`)."""
    import onnx
    from onnx import compose, version_converter

    src = onnx.load(str(src_path))
    opset = next((o.version for o in src.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if opset < 11:
        src = version_converter.convert_version(src, 11)
        opset = 11
    opset = min(opset, 20)  # the TorchScript exporter's newest
    src_in, src_out = src.graph.input[0].name, src.graph.output[0].name
    tmp = path.parent
    pre_p, post_p = tmp / "_pre.onnx", tmp / "_post.onnx"
    try:
        _export(
            graph.normalize,
            torch.zeros((1, imgsz[0], imgsz[1], 3), dtype=torch.uint8),
            pre_p,
            INPUT_NAME,
            ("pre_out",),
            dynamic_batch,
            opset,
        )
        example = torch.zeros(
            tuple(1 if not isinstance(d, int) else d for d in (1, *raw_shape[1:])), dtype=torch.float32
        )
        _export(
            _Post(graph),
            example,
            post_p,
            "post_in",
            tuple(graph.output_names),
            dynamic_batch,
            opset,
            extra_inputs(graph),
        )
        pre, post = onnx.load(str(pre_p)), onnx.load(str(post_p))
    finally:
        pre_p.unlink(missing_ok=True)
        post_p.unlink(missing_ok=True)
    # every part must declare the same opset and IR version before they can be merged
    for m in (pre, post, src):
        others = [o for o in m.opset_import if o.domain not in ("", "ai.onnx")]
        del m.opset_import[:]
        m.opset_import.extend([onnx.helper.make_opsetid("", opset), *others])
        m.ir_version = max(pre.ir_version, post.ir_version, src.ir_version)
    src = compose.add_prefix(src, prefix="model/")
    # edgecv's own parts get prefixes too: their inner names may coincide (a Cast in each)
    pre = compose.add_prefix(pre, prefix="pre/", rename_inputs=False, rename_outputs=False)
    post = compose.add_prefix(post, prefix="post/", rename_inputs=False, rename_outputs=False)
    try:
        merged = compose.merge_models(pre, src, io_map=[("pre_out", "model/" + src_in)])
        merged = compose.merge_models(merged, post, io_map=[("model/" + src_out, "post_in")])
    except Exception as e:  # onnx raises plain ValueError/ValidationError here
        raise SourceError(
            f"could not join the ONNX model '{src_path}' with edgecv's pre/post-processing: {e}"
        ) from None
    # merge_models lists each part's opset imports: keep one per domain (quantizers insist)
    versions: dict[str, int] = {}
    for o in merged.opset_import:
        versions[o.domain] = max(versions.get(o.domain, 0), o.version)
    del merged.opset_import[:]
    merged.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in versions.items())
    finish(merged, path)
