import numpy as np
import pytest

from edgecv.nms import nms

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


def random_case(seed, n=300, c=4):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.uniform(0, 1, (n, c)).astype(np.float32)
    return boxes, scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("class_aware", [True, False])
def test_matches_torchvision(seed, class_aware):
    boxes, scores = random_case(seed)
    b, s, c = nms(boxes, scores, 0.5, 0.3, max_det=1000, class_aware=class_aware)
    if class_aware:
        cls, idx = np.nonzero(scores.T > 0.3)
        sc = scores[idx, cls]
    else:
        idx = np.nonzero(scores.max(1) > 0.3)[0]
        cls, sc = scores[idx].argmax(1), scores[idx].max(1)
    keep = torchvision.ops.batched_nms(
        torch.from_numpy(boxes[idx]),
        torch.from_numpy(sc),
        torch.from_numpy(cls if class_aware else np.zeros_like(cls)),
        0.5,
    ).numpy()
    expect = sorted(zip(sc[keep].tolist(), cls[keep].tolist()), reverse=True)
    assert sorted(zip(s.tolist(), c.tolist()), reverse=True) == expect


def test_max_det_keeps_the_best():
    boxes, scores = random_case(0)
    _, s, _ = nms(boxes, scores, 0.5, 0.0, max_det=10)
    _, s_all, _ = nms(boxes, scores, 0.5, 0.0, max_det=10000)
    assert len(s) == 10 and np.allclose(s, s_all[:10])


def test_nothing_above_threshold():
    boxes, scores = random_case(1)
    b, s, c = nms(boxes, scores * 0.1, 0.5, 0.5)
    assert b.shape == (0, 4) and s.shape == (0,) and c.shape == (0,)
