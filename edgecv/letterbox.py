"""The letterbox: one object that resizes and pads images on the way in and maps
boxes back to the original image's pixels on the way out."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class LetterboxParams:
    """How one image was placed into the network input.

    ``input = original * (scale_x, scale_y) + (pad_x, pad_y)``; ``orig_shape`` is (H, W).
    """

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    orig_shape: tuple[int, int]


class Letterbox:
    """Aspect-preserving resize into a fixed (H, W) canvas filled with ``pad_value``.

    The resized image is centred; the per-axis scale is the one actually applied
    after rounding to whole pixels, so :meth:`inverse` is the exact inverse of
    :meth:`forward_boxes`.

    Args:
        size: network input size as (height, width).
        pad_value: grey level of the padding (the YOLO convention is 114).
        scaleup: when False, images smaller than ``size`` are padded, never enlarged.
    """

    def __init__(self, size: tuple[int, int], pad_value: int = 114, scaleup: bool = True) -> None:
        h, w = int(size[0]), int(size[1])
        if h <= 0 or w <= 0:
            raise ValueError(f"letterbox size must be positive, got {size}")
        self.size = (h, w)
        self.pad_value = int(pad_value)
        self.scaleup = bool(scaleup)

    def params(self, orig_shape: tuple[int, int]) -> LetterboxParams:
        """The placement of an image of shape (H, W) into the canvas."""
        oh, ow = int(orig_shape[0]), int(orig_shape[1])
        h, w = self.size
        r = min(h / oh, w / ow)
        if not self.scaleup:
            r = min(r, 1.0)
        nw = max(1, min(w, int(round(ow * r))))
        nh = max(1, min(h, int(round(oh * r))))
        return LetterboxParams(nw / ow, nh / oh, (w - nw) // 2, (h - nh) // 2, (oh, ow))

    def forward(
        self, image: np.ndarray, out: np.ndarray | None = None, convert: int | None = None
    ) -> tuple[np.ndarray, LetterboxParams]:
        """Letterbox an HxWxC (or HxW) uint8 image.

        The resized image is written straight into its place in the canvas and only the border
        is filled, so the frame is read once and the canvas written once. With ``convert`` (an
        OpenCV ``cv2.COLOR_*`` code, see :func:`edgecv.images.prepare`) the colour conversion
        happens on the way in, at the smaller of the two sizes.

        Args:
            image: HxWxC or HxW uint8 array (HxWx3 after ``convert``).
            out: optional preallocated (H, W, 3) uint8 array to write into.
            convert: optional OpenCV colour conversion code.

        Returns:
            The (H, W, C) canvas and the :class:`LetterboxParams` used.
        """
        p = self.params(image.shape[:2])
        h, w = self.size
        nh, nw = int(round(image.shape[0] * p.scale_y)), int(round(image.shape[1] * p.scale_x))
        if out is None:
            channels = 3 if convert is not None else (image.shape[2] if image.ndim == 3 else 1)
            out = np.empty((h, w, channels), dtype=np.uint8)
        y0, x0 = p.pad_y, p.pad_x
        out[:y0] = self.pad_value
        out[y0 + nh :] = self.pad_value
        out[y0 : y0 + nh, :x0] = self.pad_value
        out[y0 : y0 + nh, x0 + nw :] = self.pad_value
        view = out[y0 : y0 + nh, x0 : x0 + nw]
        if (nh, nw) == image.shape[:2]:
            _write(view, image, convert)
            return out, p
        interp = cv2.INTER_AREA if nw < image.shape[1] else cv2.INTER_LINEAR
        if convert is not None and nw > image.shape[1]:  # enlarging: convert the smaller image first
            image, convert = cv2.cvtColor(image, convert), None
        if convert is None and image.ndim == 3 and image.shape[2] == view.shape[2]:
            _written(cv2.resize(image, (nw, nh), dst=view, interpolation=interp), view)
        else:
            _write(view, cv2.resize(image, (nw, nh), interpolation=interp), convert)
        return out, p

    @staticmethod
    def forward_boxes(boxes: np.ndarray, p: LetterboxParams) -> np.ndarray:
        """Map xyxy boxes [N, 4] from original pixels to input pixels."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        b[:, [0, 2]] = b[:, [0, 2]] * p.scale_x + p.pad_x
        b[:, [1, 3]] = b[:, [1, 3]] * p.scale_y + p.pad_y
        return b

    @staticmethod
    def inverse(boxes: np.ndarray, p: LetterboxParams, clip: bool = True) -> np.ndarray:
        """Map xyxy boxes [N, 4] from input pixels back to the original image's pixels.

        Returns float32 boxes, clipped to the original image when ``clip`` is True.
        """
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - p.pad_x) / p.scale_x
        b[:, [1, 3]] = (b[:, [1, 3]] - p.pad_y) / p.scale_y
        if clip:
            oh, ow = p.orig_shape
            b[:, [0, 2]] = b[:, [0, 2]].clip(0, ow)
            b[:, [1, 3]] = b[:, [1, 3]].clip(0, oh)
        return b.astype(np.float32)


def unletterbox(canvas: np.ndarray, p: LetterboxParams, nearest: bool = True) -> np.ndarray:
    """Map a dense network output [H, W] or [C, H, W] from the letterboxed input back to the
    original image's pixels: the padding is cut and the rest resized to the original size
    (nearest neighbour for class ids, linear for probabilities)."""
    h, w = canvas.shape[-2:]
    oh, ow = p.orig_shape
    nh = max(1, min(h - p.pad_y, int(round(oh * p.scale_y))))
    nw = max(1, min(w - p.pad_x, int(round(ow * p.scale_x))))
    view = canvas[..., p.pad_y : p.pad_y + nh, p.pad_x : p.pad_x + nw]
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    if view.ndim == 2:
        return _resize_plane(view, ow, oh, interp)
    return np.stack([_resize_plane(v, ow, oh, interp) for v in view])


def _resize_plane(plane: np.ndarray, ow: int, oh: int, interp: int) -> np.ndarray:
    if plane.shape == (oh, ow):
        return np.ascontiguousarray(plane)
    if interp == cv2.INTER_NEAREST:  # index arithmetic: exact for any dtype (class ids are int32)
        ys = np.minimum(((np.arange(oh) + 0.5) * plane.shape[0] / oh).astype(np.intp), plane.shape[0] - 1)
        xs = np.minimum(((np.arange(ow) + 0.5) * plane.shape[1] / ow).astype(np.intp), plane.shape[1] - 1)
        return plane[ys[:, None], xs[None, :]]
    return cv2.resize(np.ascontiguousarray(plane, dtype=np.float32), (ow, oh), interpolation=interp)


def _write(view: np.ndarray, src: np.ndarray, convert: int | None) -> None:
    """``view[...] = src`` (after ``convert``), through OpenCV's destination argument where it
    writes in place."""
    if convert is not None:
        _written(cv2.cvtColor(src, convert, dst=view), view)
    elif src.ndim == 2 and view.ndim == 3:
        view[...] = src[:, :, None]
    else:
        view[...] = src


def _written(got: np.ndarray, view: np.ndarray) -> None:
    """Make sure an OpenCV call given ``dst=view`` wrote there (it makes a new array instead
    when it cannot)."""
    if not np.shares_memory(got, view):
        view[...] = got.reshape(view.shape)


@dataclass(frozen=True)
class CropParams:
    """The region of the original image (xyxy, whole pixels) that filled the network input."""

    x0: int
    y0: int
    x1: int
    y1: int
    orig_shape: tuple[int, int]


class CenterCrop:
    """Resize so that the shorter side is ``resize``, then take the centred (H, W) crop: the
    classification contract (torchvision's ``Resize(resize)`` + ``CenterCrop(size)``).

    The crop is cut from the original image and resized once into the canvas (the same
    pixels, one pass). ``resize`` defaults to ``size * 256 / 224`` (ImageNet's ratio).
    """

    def __init__(self, size: tuple[int, int], resize: int | None = None) -> None:
        h, w = int(size[0]), int(size[1])
        if h <= 0 or w <= 0:
            raise ValueError(f"crop size must be positive, got {size}")
        self.size = (h, w)
        self.resize = int(resize) if resize else int(round(max(h, w) * 256 / 224))
        if self.resize < max(h, w):
            raise ValueError(f"resize {self.resize} is smaller than the crop {h}x{w}")

    def params(self, orig_shape: tuple[int, int]) -> CropParams:
        oh, ow = int(orig_shape[0]), int(orig_shape[1])
        h, w = self.size
        s = self.resize / min(oh, ow)
        ch, cw = min(oh, h / s), min(ow, w / s)  # the crop, in original pixels
        y0, x0 = int(round((oh - ch) / 2)), int(round((ow - cw) / 2))
        y1, x1 = max(y0 + 1, min(oh, int(round(y0 + ch)))), max(x0 + 1, min(ow, int(round(x0 + cw))))
        return CropParams(x0, y0, x1, y1, (oh, ow))

    def forward(
        self, image: np.ndarray, out: np.ndarray | None = None, convert: int | None = None
    ) -> tuple[np.ndarray, CropParams]:
        """Crop and resize an HxWxC (or HxW) uint8 image into the (H, W) canvas; ``out`` and
        ``convert`` as for :meth:`Letterbox.forward`."""
        p = self.params(image.shape[:2])
        h, w = self.size
        if out is None:
            channels = 3 if convert is not None else (image.shape[2] if image.ndim == 3 else 1)
            out = np.empty((h, w, channels), dtype=np.uint8)
        region = image[p.y0 : p.y1, p.x0 : p.x1]
        if region.shape[:2] == (h, w):
            _write(out, region, convert)
            return out, p
        interp = cv2.INTER_AREA if region.shape[1] > w else cv2.INTER_LINEAR
        if convert is not None and w > region.shape[1]:
            region, convert = cv2.cvtColor(np.ascontiguousarray(region), convert), None
        if convert is None and region.ndim == 3 and region.shape[2] == out.shape[2]:
            _written(cv2.resize(region, (w, h), dst=out, interpolation=interp), out)
        else:
            _write(out, cv2.resize(region, (w, h), interpolation=interp), convert)
        return out, p
