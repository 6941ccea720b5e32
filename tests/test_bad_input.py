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
