"""Turning what a camera pipeline or a user hands in into the HxWx3 uint8 image a model needs."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np

from .errors import InvalidImageError

#: A detector accepts an array or a path to an image file.
ImageLike = np.ndarray | str | os.PathLike

MIN_SIDE = 8  # smaller frames are refused: nothing can be detected in them
MAX_SIDE = 32768
MAX_FILE_BYTES = 256 * 2**20  # a larger image file is a mistake or an attack: it is not read
#: the most pixels an image file may declare; checked in its header, before it is decoded. 2^27
#: (134 megapixels, 400 MB decoded) is above any camera's frame, and an eighth of OpenCV's own
#: 2^30: a file of a few bytes cannot make the decoder allocate gigabytes.
MAX_PIXELS = 2**27
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
    return decode_image(np.fromfile(p, dtype=np.uint8), p)


def decode_image(data: np.ndarray | bytes, path: str | os.PathLike = "image") -> np.ndarray:
    """Decode an encoded image (the bytes of a JPEG, PNG... file) as HxWx3 uint8 BGR, after
    checking the size its header declares against :data:`MAX_PIXELS` and :data:`MAX_SIDE`.

    Args:
        data: the file's bytes (``bytes`` or a uint8 array).
        path: where they came from, for messages.
    """
    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    w, h = declared_size(data, path)
    if min(w, h) < 1:
        raise InvalidImageError(_UNDECODABLE.format(path) + f": its header declares {w}x{h} pixels")
    if max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        raise InvalidImageError(
            f"image file '{path}' declares {w}x{h} pixels ({w * h / 1e6:.0f} megapixels); edgecv decodes "
            f"images of at most {MAX_PIXELS / 1e6:.0f} megapixels and {MAX_SIDE} pixels a side "
            "(edgecv.images.MAX_PIXELS): not decoded. Downscale or tile it first"
        )
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidImageError(_UNDECODABLE.format(path))
    return img


_UNDECODABLE = "'{}' could not be decoded as an image (truncated, or not an image format OpenCV reads)"
#: what :func:`declared_size` reads the size of; other files are not decoded
HEADER_FORMATS = ("JPEG", "PNG", "BMP", "WebP", "TIFF", "PNM/PFM")


def declared_size(data: np.ndarray, path: str | os.PathLike = "image") -> tuple[int, int]:
    """The (width, height) an image file declares in its header (JPEG's frame header, PNG's
    IHDR, BMP's info header, WebP's VP8/VP8L/VP8X header, TIFF's first directory, PNM's
    header), read without decoding anything.

    Args:
        data: the file's bytes (uint8 array).
        path: the file, for messages.

    Raises:
        InvalidImageError: the header is truncated or malformed, or the format is none of
            :data:`HEADER_FORMATS`.
    """
    b = np.ascontiguousarray(data, dtype=np.uint8).data.cast("B")  # a view: the file is not copied
    head = bytes(b[:32])
    size: tuple[int, int] | None = None
    known = True
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            size = struct.unpack(">II", head[16:24]) if head[12:16] == b"IHDR" else None
        elif head.startswith(b"\xff\xd8"):
            size = _jpeg_size(b)
        elif head.startswith(b"BM"):
            (dib,) = struct.unpack("<I", head[14:18])
            w, h = struct.unpack("<HH", head[18:22]) if dib == 12 else struct.unpack("<ii", head[18:26])
            size = (abs(w), abs(h))
        elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            size = _webp_size(head)
        elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            size = _tiff_size(b)
        elif len(head) > 1 and head[:1] == b"P" and head[1:2] in b"123456Ff":
            size = _pnm_size(bytes(b[:4096]))
        else:
            known = False
    except (struct.error, ValueError, IndexError):
        size = None
    if not known:
        raise InvalidImageError(
            f"'{path}' could not be decoded: it is not a {', '.join(HEADER_FORMATS[:-1])} or "
            f"{HEADER_FORMATS[-1]} file, the formats edgecv reads; convert it to PNG or JPEG"
        )
    if size is None:
        raise InvalidImageError(_UNDECODABLE.format(path) + ": its header is truncated or malformed")
    return int(size[0]), int(size[1])


def _jpeg_size(b: memoryview) -> tuple[int, int] | None:
    """Walk the segments up to the frame header (SOF0..SOF15 but DHT, JPG and DAC)."""
    i = 2
    while i + 4 <= len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
        elif marker in (0xD9, 0xDA):  # the end, or the scan, before any frame header
            return None
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", b[i + 5 : i + 9])
            return w, h
        else:
            i += 2 + struct.unpack(">H", b[i + 2 : i + 4])[0]
    return None


def _webp_size(b: bytes) -> tuple[int, int] | None:
    chunk = b[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        (bits,) = struct.unpack("<I", b[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    return None


def _tiff_size(b: memoryview) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first directory, classic or BigTIFF."""
    e = "<" if bytes(b[:2]) == b"II" else ">"
    big = bytes(b[2:4]) in (b"+\x00", b"\x00+")
    (ifd,) = struct.unpack(e + "Q", b[8:16]) if big else struct.unpack(e + "I", b[4:8])
    count_fmt, entry, value_at = ("Q", 20, 12) if big else ("H", 12, 8)
    (n,) = struct.unpack_from(e + count_fmt, b, ifd)
    first = ifd + (8 if big else 2)
    found = {}
    for k in range(min(n, 4096)):
        at = first + k * entry
        tag, kind = struct.unpack_from(e + "HH", b, at)
        if tag in (256, 257):
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            found[tag] = struct.unpack_from(e + fmt, b, at + value_at)[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm_size(b: bytes) -> tuple[int, int] | None:
    """Width and height: the two numbers after the magic, past whitespace and # comments."""
    numbers: list[int] = []
    i = 2
    while len(numbers) < 2 and i < min(len(b), 4096):
        c = b[i : i + 1]
        if c.isspace():
            i += 1
        elif c == b"#":
            end = b.find(b"\n", i)
            i = len(b) if end < 0 else end + 1
        else:
            j = i
            while j < len(b) and b[j : j + 1].isdigit():
                j += 1
            if j == i:
                return None
            numbers.append(int(b[i:j]))
            i = j
    return (numbers[0], numbers[1]) if len(numbers) == 2 else None


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
