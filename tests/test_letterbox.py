import cv2
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


# --- a classifier's centre crop, and the inverse letterbox of a segmentation map ------------------


def test_center_crop_matches_torchvision_resize_and_crop():
    import torch
    from torchvision.transforms import functional as TF

    from edgecv.letterbox import CenterCrop

    yy, xx = np.mgrid[0:300, 0:420]
    img = np.stack([(xx * 0.6) % 256, (yy * 0.8) % 256, (xx + yy) * 0.3 % 256], -1).astype(np.uint8)
    ours, p = CenterCrop((64, 64)).forward(img)
    t = torch.from_numpy(img).permute(2, 0, 1)
    theirs = TF.center_crop(TF.resize(t, 73, antialias=True), [64, 64]).permute(1, 2, 0).numpy()
    assert ours.shape == (64, 64, 3) and (p.x1 - p.x0, p.y1 - p.y0) == (263, 263) and p.y0 == 18
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 2.0


def test_center_crop_converts_colour_on_the_way():
    from edgecv.letterbox import CenterCrop

    rng = np.random.default_rng(0)
    crop = CenterCrop((48, 64), resize=80)
    for shape in ((90, 200, 3), (30, 40, 3), (300, 100, 3)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        plain, _ = crop.forward(np.ascontiguousarray(img[:, :, ::-1]))
        fused, _ = crop.forward(img, out=np.empty((48, 64, 3), np.uint8), convert=cv2.COLOR_BGR2RGB)
        assert np.array_equal(plain, fused)


def test_unletterbox_cuts_the_padding_and_restores_the_size():
    from edgecv.letterbox import unletterbox

    for shape in ((100, 50), (37, 211), (128, 128)):
        lb = Letterbox((128, 128))
        labels = (np.arange(shape[0])[:, None] // 10 + np.arange(shape[1])[None] // 10).astype(np.int32) % 5
        p = lb.params(shape)
        canvas = np.full((128, 128), 99, np.int32)  # the padding: a class that must not come back
        nh, nw = int(round(shape[0] * p.scale_y)), int(round(shape[1] * p.scale_x))
        canvas[p.pad_y : p.pad_y + nh, p.pad_x : p.pad_x + nw] = cv2.resize(
            labels.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST
        )
        back = unletterbox(canvas, p)
        assert back.shape == shape and back.dtype == np.int32 and 99 not in back
        assert (back == labels).mean() > 0.9
        probs = unletterbox(np.stack([canvas == 0, canvas != 0]).astype(np.float32), p, nearest=False)
        assert probs.shape == (2, *shape)
