"""Turning what a camera pipeline or a user hands in into the HxWx3 uint8 image a model needs."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .errors import InvalidImageError

#: A detector accepts an array or a path to an image file.
ImageLike = np.ndarray | str | os.PathLike

MIN_SIDE = 8  # smaller frames are refused: nothing can be detected in them
MAX_SIDE = 32768
MAX_FILE_BYTES = 256 * 2**20  # a larger image file is a mistake or an attack: it is not read
COLORS = ("bgr", "rgb")
#: the files a folder of images is read from (calibration sets, classification and segmentation sets)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 BGR (OpenCV's order)."""
    p = Path(path)
    if not p.is_file():
        raise InvalidImageError(f"image file '{p}' does not exist")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise InvalidImageError(
            f"image file '{p}' is {p.stat().st_size / 2**20:.0f} MB, over edgecv's limit of "
            f"{MAX_FILE_BYTES // 2**20} MB: not read"
        )
    data = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InvalidImageError(
            f"'{p}' could not be decoded as an image (truncated, or not an image format OpenCV reads)"
        )
    return img


def prepare(image: ImageLike, color: str, model_color: str = "RGB") -> tuple[np.ndarray, int | None]:
    """Validate ``image`` without copying it: returns the pixels (HxW or HxWxC uint8, possibly a
    view of the caller's array) and the OpenCV colour conversion (a ``cv2.COLOR_*`` code, or None)
    that turns them into HxWx3 in ``model_color`` order. :class:`~edgecv.letterbox.Letterbox`
    applies it while writing into the network input, so a frame is copied once, not three times.

    Args: as :func:`to_model_input`.

    Raises:
        InvalidImageError: wrong dtype, channel count or size.
    """
    if isinstance(image, (str, os.PathLike)):
        image, color = read_image(image), "bgr"
    if color not in COLORS:
        raise InvalidImageError(f"color must be one of {COLORS}, got {color!r}")
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"expected an HxWx3 uint8 numpy array or an image path, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidImageError(
            f"image dtype is {image.dtype}; edgecv takes 8-bit images (uint8, 0..255). "
            "Convert 16-bit or float frames first, e.g. (img / 257).astype(np.uint8) or (img * 255).clip(0, 255).astype(np.uint8)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InvalidImageError(
            f"image shape {image.shape} is not HxW (grey), HxWx1, HxWx3 or HxWx4; a batch goes to predict() as a list"
        )
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise InvalidImageError(f"image is {w}x{h} pixels; edgecv takes sides from {MIN_SIDE} to {MAX_SIDE} pixels")
    swap = (color == "bgr") != (model_color.upper() == "BGR")
    code: int | None
    if image.ndim == 2:
        code = cv2.COLOR_GRAY2RGB
    elif image.shape[2] == 4:
        code = cv2.COLOR_BGRA2RGB if swap else cv2.COLOR_BGRA2BGR
    else:
        code = cv2.COLOR_BGR2RGB if swap else None
    return cv_view(image), code


def cv_view(image: np.ndarray) -> np.ndarray:
    """``image`` itself where OpenCV can read it in place (pixels contiguous, rows at a positive
    stride: a C-ordered array or a crop of one); otherwise a contiguous copy (Fortran order,
    reversed or strided axes)."""
    s, item = image.strides, image.itemsize
    pixel = item if image.ndim == 2 else item * image.shape[2]
    if (image.ndim == 2 or s[2] == item) and s[1] == pixel and s[0] >= pixel * image.shape[1]:
        return image
    return np.ascontiguousarray(image)


def to_model_input(image: ImageLike, color: str, model_color: str = "RGB") -> np.ndarray:
    """Validate ``image`` and return a contiguous HxWx3 uint8 array in ``model_color`` order.

    Args:
        image: HxWx3 (colour), HxW or HxWx1 (grey) or HxWx4 (colour + alpha, alpha dropped)
            uint8 array, or a path to an image file (read as BGR, whatever ``color`` says).
        color: channel order of an array input, ``"bgr"`` (OpenCV, most camera SDKs) or ``"rgb"``.
        model_color: channel order the model was exported with.

    Raises:
        InvalidImageError: wrong dtype, channel count or size.
    """
    pixels, code = prepare(image, color, model_color)
    return np.ascontiguousarray(pixels) if code is None else cv2.cvtColor(pixels, code)
