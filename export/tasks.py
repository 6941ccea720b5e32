"""Classification and semantic segmentation: the graphs edgecv exports around a classifier or
a segmenter, and what it knows of torchvision's.

The contract is the detector's (uint8 NHWC in, normalisation inside the graph, fixed-size
outputs), with the task's head in the graph:

- ``classify``: the image is resized (shorter side) and centre-cropped on the host (see
  :class:`edgecv.letterbox.CenterCrop`); the graph ends in a softmax: ``probs`` [B, C]. The top k
  are picked on the host.
- ``segment``: the image is letterboxed; the graph resizes the logits to the input size if the
  network did not, and ends in an argmax: ``labels`` int32 [B, H, W] in input pixels (and, when
  exported with ``probabilities``, the softmax ``probs`` [B, C, H, W]). The host cuts the padding
  and resizes the map to the original image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ExportError, SourceError
from ..tasks import names as task_names
from .graph import DetectorGraph, Normalize
from .spec import InputSpec

TASKS = task_names()  # detect, classify, segment

#: torchvision's classification and segmentation constructors a state dict can be loaded into
CLASSIFIERS = (
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg16",
    "vgg16_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "googlenet",
    "inception_v3",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
    "densenet121",
    "mnasnet1_0",
    "convnext_tiny",
)
SEGMENTERS = (
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)

#: ImageNet's normalisation, which torchvision's classifiers and segmenters are trained with
IMAGENET = InputSpec(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), color="RGB", pad_value=114)


def main_output(out: Any) -> torch.Tensor:
    """The main output of a network: torchvision's segmenters return ``{"out", "aux"}``,
    GoogLeNet/Inception in training a named tuple; others a tensor or a tuple."""
    if isinstance(out, dict):
        out = out["out"] if "out" in out else next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise SourceError(f"the model returned {type(out).__name__}; a classifier or segmenter must return logits")
    return out


class ClassifierGraph(nn.Module):
    """normalise -> model -> softmax: uint8 [B, H, W, 3] -> ``probs`` float32 [B, C]."""

    output_names = ("probs",)
    mode = "classify"

    def __init__(self, model: nn.Module | None, in_spec: InputSpec) -> None:
        super().__init__()
        self.normalize = Normalize(in_spec)
        self.model = model

    def postprocess(self, logits: Any) -> tuple[torch.Tensor, ...]:
        x = main_output(logits).float()
        return (torch.softmax(x.flatten(1), dim=1),)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        assert self.model is not None, "a graph without its model (an ONNX source's) is exported in parts, not run"
        return self.postprocess(self.model(self.normalize(images)))


class SegmenterGraph(nn.Module):
    """normalise -> model -> (resize to the input) -> argmax: uint8 [B, H, W, 3] -> ``labels``
    int32 [B, H, W] (and ``probs`` float32 [B, C, H, W] with ``probabilities``)."""

    mode = "segment"

    def __init__(
        self, model: nn.Module | None, in_spec: InputSpec, imgsz: tuple[int, int], probabilities: bool = False
    ) -> None:
        super().__init__()
        self.normalize = Normalize(in_spec)
        self.model = model
        self.imgsz = tuple(imgsz)
        self.probabilities = bool(probabilities)

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("labels", "probs") if self.probabilities else ("labels",)

    def postprocess(self, logits: Any) -> tuple[torch.Tensor, ...]:
        x = main_output(logits).float()
        if tuple(x.shape[-2:]) != self.imgsz:
            x = F.interpolate(x, size=self.imgsz, mode="bilinear", align_corners=False)
        labels = x.argmax(1).to(torch.int32)  # int32: TensorRT has no INT64 outputs
        return (labels, torch.softmax(x, 1)) if self.probabilities else (labels,)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        assert self.model is not None, "a graph without its model (an ONNX source's) is exported in parts, not run"
        return self.postprocess(self.model(self.normalize(images)))


def task_graph(
    src: Any,
    module: nn.Module | None,
    imgsz: tuple[int, int],
    nms: Any,
    mode: str,
    probabilities: bool,
    probe: Callable[[], tuple],
    score_input: bool = True,
) -> DetectorGraph | ClassifierGraph | SegmenterGraph:
    """The graph edgecv exports around ``module`` (None: an ONNX source's, joined later) for the
    source's task: a detector's decode and NMS, a classifier's softmax, a segmenter's argmax.
    ``probe`` gives the network's output shape (a detector's candidate count), when needed;
    ``score_input``: a detector's NMS takes its score floor as an input (:data:`graph.SCORE_INPUT`)."""
    if src.task == "detect":
        n = src.out_spec.check_shape(probe())
        return DetectorGraph(module, src.in_spec, src.out_spec, nms, n, mode, score_input).eval()
    if src.task == "classify":
        return ClassifierGraph(module, src.in_spec).eval()
    return SegmenterGraph(module, src.in_spec, imgsz, probabilities).eval()


def output_tensors(src: Any, mode: str, probabilities: bool) -> tuple[str, ...]:
    """The names of the outputs :func:`task_graph` gives for this source."""
    if src.task == "detect":
        from .graph import has_masks, output_names

        return output_names(mode, has_masks(src.module))
    if src.task == "classify":
        return ClassifierGraph.output_names
    return ("labels", "probs") if probabilities else ("labels",)


def check_options(src: Any, probabilities: bool) -> None:
    """Refuse export options the source's task has no use for."""
    if probabilities and src.task != "segment":
        raise ExportError("probabilities are an output of segmenters (a classifier always outputs them)")


def export_options(src: Any, mode: str, nms: Any) -> dict:
    """The task's part of the export options recorded in the manifest's provenance."""
    return {"mode": mode, "nms": nms.to_dict()} if src.task == "detect" else {"task": src.task}


def check_output(task: str, shape: tuple, num_classes: int) -> None:
    """Check the network's output shape for its task: [B, C] logits, or [B, C, h, w].

    Raises:
        SourceError: the shape does not fit the task or the number of class names.
    """
    want = "[B, C] (logits)" if task == "classify" else "[B, C, h, w] (per-pixel logits)"
    rank_ok = len(shape) == 2 if task == "classify" else len(shape) == 4
    if not rank_ok:
        raise SourceError(f"a model of task {task} must output {want}; this one outputs shape {list(shape)}")
    c = shape[1]
    if isinstance(c, int) and c != num_classes:
        raise SourceError(
            f"the model outputs {c} class{'es' * (c != 1)} but {num_classes} class name{'s' * (num_classes != 1)} were given"
        )


# --- torchvision ---------------------------------------------------------------------------------


def torchvision_task(module: Any) -> str | None:
    """``classify`` or ``segment`` for a torchvision classification or segmentation model."""
    try:
        from torchvision import models as M
        from torchvision.models import segmentation as S
    except ImportError:
        return None
    if isinstance(module, (S.FCN, S.DeepLabV3, S.LRASPP)):
        return "segment"
    classifiers = tuple(
        getattr(M, n)
        for n in (
            "AlexNet",
            "VGG",
            "ResNet",
            "GoogLeNet",
            "Inception3",
            "MobileNetV2",
            "MobileNetV3",
            "EfficientNet",
            "RegNet",
            "ShuffleNetV2",
            "SqueezeNet",
            "DenseNet",
            "MNASNet",
            "ConvNeXt",
        )
        if hasattr(M, n)
    )
    return "classify" if isinstance(module, classifiers) else None


def default_size(task: str, module: Any) -> tuple[int, int]:
    """torchvision's evaluation sizes: 224 (Inception v3: 299), segmentation 520."""
    if task == "segment":
        return (520, 520)
    return (299, 299) if type(module).__name__ == "Inception3" else (224, 224)


def build(arch: str, num_classes: int, state_dict: dict) -> nn.Module:
    """A torchvision classifier or segmenter ``arch`` with ``num_classes``, loaded from ``state_dict``.

    Raises:
        SourceError: an unknown constructor, or weights that do not fit it.
    """
    from torchvision import models

    if arch not in CLASSIFIERS + SEGMENTERS:
        raise SourceError(f"unknown torchvision constructor '{arch}'")
    kw: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if arch in SEGMENTERS:
        kw.update(
            weights_backbone=None,
            **({"aux_loss": True} if any(k.startswith("aux_classifier") for k in state_dict) else {}),
        )
    elif arch in ("googlenet", "inception_v3"):
        kw.update(aux_logits=any(k.startswith("aux") for k in state_dict), init_weights=False)
    model = models.get_model(arch, **kw)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise SourceError(
            f"the state dict does not fit torchvision's {arch} with {num_classes} class{'es' * (num_classes != 1)}: {e}"
        ) from None
    return model.eval()


def settle_batchnorm(module: nn.Module, size: int | tuple[int, int], batches: int = 3, seed: int = 0) -> nn.Module:
    """Give a randomly initialised network BatchNorm statistics of its own activations (from
    standard-normal inputs, as normalised images are), and put it in eval mode.

    Freshly constructed, many torchvision networks output the same class probabilities for every
    image (MobileNet and EfficientNet exactly uniform, Inception saturated), so a comparison of an
    export with its source at random weights would check nothing; after this, the outputs depend
    on the input. For checks without trained weights only.
    """
    h, w = (size, size) if isinstance(size, int) else size
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches
    module.train()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(batches):
            module(torch.randn(8, 3, h, w, generator=g))
    return module.eval()
