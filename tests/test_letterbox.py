import numpy as np
import pytest

from edgecv.letterbox import Letterbox

SHAPES = [(1, 1), (17, 333), (333, 17), (479, 641), (320, 320), (123, 457), (1080, 1920), (9, 8), (641, 479)]
SIZES = [(320, 320), (384, 640), (224, 160)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("hw", SHAPES)
def test_boxes_round_trip_within_half_a_pixel(hw, size):
    lb = Letterbox(size)
    h, w = hw
    p = lb.params(hw)
    rng = np.random.default_rng(h * 1000 + w)
    xy = rng.uniform(0, 1, size=(50, 4)) * [w, h, w, h]
    boxes = np.concatenate([np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:])], 1)
    back = lb.inverse(lb.forward_boxes(boxes, p), p)
    assert np.abs(back - boxes).max() < 0.5


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("hw", SHAPES)
def test_image_is_centred_inside_the_canvas(hw, size):
    lb = Letterbox(size, pad_value=114)
    img = np.full((*hw, 3), 200, np.uint8)
    out, p = lb.forward(img)
    assert out.shape == (*size, 3) and out.dtype == np.uint8
    # the image's corners land where forward_boxes says they do
    x1, y1, x2, y2 = lb.forward_boxes(np.array([[0, 0, hw[1], hw[0]]]), p)[0]
    assert (out[int(y1) : int(round(y2)), int(x1) : int(round(x2))] == 200).all()
    assert (out == 114).sum() == out.size - 3 * int(round(y2 - y1)) * int(round(x2 - x1))
    # centred: the two pads differ by at most a pixel
    assert abs(x1 - (size[1] - x2)) <= 1 and abs(y1 - (size[0] - y2)) <= 1


def test_a_box_maps_to_the_pixels_it_covers():
    lb = Letterbox((320, 320))
    img = np.zeros((200, 400, 3), np.uint8)
    img[50:100, 100:300] = 255
    out, p = lb.forward(img)
    ys, xs = np.nonzero(out[:, :, 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float64)
    back = lb.inverse(found, p)[0]
    assert np.allclose(back, [100, 50, 300, 100], atol=1.0)


def test_inverse_clips_to_the_original_image():
    lb = Letterbox((320, 320))
    p = lb.params((100, 200))
    back = lb.inverse(np.array([[-50.0, -50.0, 400.0, 400.0]]), p)
    assert back.tolist() == [[0.0, 0.0, 200.0, 100.0]]


def test_no_scaleup_pads_small_images():
    lb = Letterbox((320, 320), scaleup=False)
    p = lb.params((100, 50))
    assert p.scale_x == p.scale_y == 1.0


def test_writes_into_a_preallocated_buffer():
    lb = Letterbox((64, 64))
    buf = np.zeros((64, 64, 3), np.uint8)
    out, _ = lb.forward(np.full((10, 40, 3), 7, np.uint8), out=buf)
    assert out is buf and (buf == 7).any() and (buf == 114).any()
