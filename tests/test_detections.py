import numpy as np
import pytest

from edgecv import Detections

NAMES = ("a", "b", "c")


def dets(n=4):
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, 100, (n, 2))
    return Detections(np.concatenate([xy, xy + 10], 1), rng.uniform(0, 1, n), rng.integers(0, 3, n), NAMES)


def test_types_are_normalised():
    d = dets()
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (4, 4)
    assert d.scores.dtype == np.float32 and d.class_ids.dtype == np.int64
    assert d.names == NAMES


def test_arrays_are_read_only_and_not_shared_with_the_caller():
    xyxy = np.zeros((1, 4), np.float32)
    d = Detections(xyxy, [0.5], [1], NAMES)
    with pytest.raises(ValueError):
        d.xyxy[0, 0] = 1
    xyxy[0, 0] = 5  # the caller's array stays writeable and does not leak in
    assert d.xyxy[0, 0] == 0
    with pytest.raises(AttributeError):
        d.scores = np.zeros(1)


@pytest.mark.parametrize("index, n", [(0, 1), (slice(1, 3), 2), (np.array([True, False, True, False]), 2), ([3, 0], 2)])
def test_slicing_returns_detections(index, n):
    d = dets()
    s = d[index]
    assert isinstance(s, Detections) and len(s) == n and s.names == NAMES


def test_filter_and_labels():
    d = Detections([[0, 0, 1, 1], [0, 0, 2, 2]], [0.2, 0.9], [0, 2], NAMES)
    assert d.filter(0.5).labels == ["c"]
    assert d.to_dict()[1]["label"] == "c"
    assert len(Detections.empty(NAMES)) == 0


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(xyxy=np.zeros((2, 4)), scores=[1.0], class_ids=[0, 1]), "rows"),
        (dict(xyxy=np.zeros((1, 4)), scores=[1.0], class_ids=[3]), "out of range"),
        (dict(xyxy=np.zeros((1, 4)), scores=[1.0], class_ids=[0.5]), "whole numbers"),
        (dict(xyxy=np.zeros((1, 4)), scores=[1.0], class_ids=[0], masks=np.zeros((2, 5, 5))), "masks"),
        (dict(xyxy=np.zeros((1, 4)), scores=[1.0], class_ids=[0], tracker_ids=[1, 2]), "tracker_ids must be"),
        (dict(xyxy=np.zeros((1, 4)), scores=[1.0], class_ids=[0], tracker_ids=[1.5]), "integers"),
    ],
)
def test_invalid_detections_raise(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Detections(names=NAMES, **kwargs)


def tracked(n=4):
    d = dets(n)
    return Detections(d.xyxy, d.scores, d.class_ids, NAMES, tracker_ids=np.arange(10, 10 + n, dtype=np.int32))


def test_tracker_ids_are_int64_read_only_and_kept_by_selection():
    d = tracked()
    assert d.tracker_ids.dtype == np.int64 and not d.tracker_ids.flags.writeable
    assert d[[3, 0]].tracker_ids.tolist() == [13, 10]
    assert d[1].tracker_ids.tolist() == [11]
    keep = d.scores >= np.median(d.scores)
    assert d.filter(float(np.median(d.scores))).tracker_ids.tolist() == np.arange(10, 14)[keep].tolist()
    assert [row["tracker_id"] for row in d.to_dict()] == [10, 11, 12, 13]
    assert "tracker_id" not in dets().to_dict()[0]
    assert dets()[0:2].tracker_ids is None
