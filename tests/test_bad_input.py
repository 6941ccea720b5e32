"""Bad input to a detector: each kind raises an EdgecvError naming the problem."""

import numpy as np
import pytest

from edgecv import EdgecvError, InvalidImageError


@pytest.fixture(scope="module")
def det(make_detector):
    return make_detector("onnxruntime")


@pytest.mark.parametrize(
    "image, msg",
    [
        (np.zeros((64, 64, 3), np.float32), "dtype is float32"),
        (np.zeros((64, 64, 3), np.uint16), "dtype is uint16"),
        (np.zeros((64, 64, 2), np.uint8), "shape"),
        (np.zeros((64, 64, 5), np.uint8), "shape"),
        (np.zeros((2, 64, 64, 3), np.uint8), "shape"),
        (np.zeros((0, 64, 3), np.uint8), "pixels"),
        (np.zeros((1, 1, 3), np.uint8), "1x1 pixels"),
        (np.zeros((64,), np.uint8), "shape"),
        ([[1, 2], [3, 4]], "one image"),
        ("no/such/file.jpg", "does not exist"),
    ],
)
def test_bad_images_are_refused(det, image, msg):
    with pytest.raises(InvalidImageError, match=msg):
        det(image)


def test_unreadable_image_file(det, tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(InvalidImageError, match="could not be decoded"):
        det(p)


def test_wrong_colour_argument(det):
    with pytest.raises(InvalidImageError, match="color must be"):
        det(np.zeros((64, 64, 3), np.uint8), color="hsv")


def test_a_batch_array_is_not_a_list(det):
    with pytest.raises(InvalidImageError, match="list"):
        det.predict(np.zeros((64, 64, 3), np.uint8))


def test_errors_are_edgecv_errors():
    assert issubclass(InvalidImageError, EdgecvError)


# --- image files declaring more pixels than edgecv decodes ------------------------------------------


def _png(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR (valid, with its CRC) declares ``width`` x ``height`` RGB pixels,
    followed by an IDAT of a few bytes: what a decoder would allocate for is the declared size."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def _jpeg(width: int, height: int) -> bytes:
    """The start of a baseline JPEG: SOI, an APP0 (JFIF) segment, and a frame header (SOF0)
    declaring ``width`` x ``height`` with 3 components; then a few stray bytes."""
    import struct

    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + bytes(32)


@pytest.fixture
def no_decoding(monkeypatch):
    """cv2.imdecode replaced by a recorder: any call is a decode that should not have happened."""
    import edgecv.images as images

    calls = []
    monkeypatch.setattr(images.cv2, "imdecode", lambda *a, **k: calls.append(a) or None)
    return calls


@pytest.mark.parametrize(
    "name, make, width, height",
    [
        ("huge.png", _png, 60000, 60000),  # 3.6 G pixels: past OpenCV's own limit too
        ("big.png", _png, 20000, 12000),  # 240 M pixels: under OpenCV's 2^30, over edgecv's
        ("huge.jpg", _jpeg, 60000, 60000),
        ("big.jpg", _jpeg, 16000, 10000),
    ],
)
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(
    tmp_path, no_decoding, name, make, width, height
):
    from edgecv.images import MAX_PIXELS, read_image

    p = tmp_path / name
    p.write_bytes(make(width, height))
    assert p.stat().st_size < 200
    with pytest.raises(InvalidImageError) as e:
        read_image(p)
    msg = str(e.value)
    assert str(p) in msg and f"declares {width}x{height} pixels" in msg
    assert f"at most {MAX_PIXELS / 1e6:.0f} megapixels" in msg and "not decoded" in msg
    assert no_decoding == [], "cv2.imdecode was called on a file over the limit"


def test_the_pixel_limit_is_edgecvs_own(tmp_path, monkeypatch):
    """With the limit lowered to 1000 pixels, a real 40x30 PNG (1200) is refused and a 30x30 one loads."""
    import cv2

    import edgecv.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((30, 40, 3), 7, np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.full((30, 30, 3), 7, np.uint8))
    with pytest.raises(InvalidImageError, match="declares 40x30 pixels"):
        images.read_image(tmp_path / "a.png")
    assert images.read_image(tmp_path / "b.png").shape == (30, 30, 3)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm"])
def test_ordinary_images_still_load_in_every_format_whose_header_is_read(tmp_path, ext):
    import cv2

    from edgecv.images import declared_size, read_image

    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    p = tmp_path / f"a{ext}"
    assert cv2.imwrite(str(p), img)
    assert declared_size(np.fromfile(p, np.uint8)) == (53, 37)
    got = read_image(p)
    assert got.shape == (37, 53, 3)
    if ext in (".png", ".bmp", ".tif", ".ppm"):  # lossless
        np.testing.assert_array_equal(got, img)


@pytest.mark.parametrize(
    "data, msg",
    [
        (_png(40, 30)[:20], "header is truncated"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64), "not a JPEG, PNG"),  # JPEG 2000: no header read
        (_png(0, 30), "declares 0x30 pixels"),
    ],
    ids=["truncated-png", "jpeg-2000", "zero-width-png"],
)
def test_headers_edgecv_cannot_read_are_refused_without_decoding(tmp_path, no_decoding, data, msg):
    from edgecv.images import read_image

    p = tmp_path / "x.img"
    p.write_bytes(data)
    with pytest.raises(InvalidImageError, match=msg):
        read_image(p)
    assert no_decoding == []
