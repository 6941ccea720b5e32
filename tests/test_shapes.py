import json

import numpy as np

from edgecv.data import shapes


def test_samples_are_deterministic_and_splits_differ():
    a, b = shapes.render(123, 7), shapes.render(123, 7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    c = shapes.render(124, 7)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_boxes_lie_in_the_image_and_cover_the_size_range():
    sides = []
    for i in range(60):
        s = shapes.render(shapes.SPLIT_SEEDS["val"], i)
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.image.shape[2] == 3
        assert len(s.boxes) == len(s.class_ids) >= 1
        assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2] <= w).all() and (s.boxes[:, 3] <= h).all()
        assert (s.class_ids >= 0).all() and (s.class_ids < len(shapes.CLASSES)).all()
        sides += np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1]).tolist()
    assert min(sides) <= 14 and max(sides) >= 120


def test_write_coco(tmp_path):
    images, ann = shapes.write_coco(tmp_path, "val", 5)
    data = json.loads(ann.read_text())
    assert [c["name"] for c in data["categories"]] == list(shapes.CLASSES)
    assert len(data["images"]) == 5 and len(list(images.glob("*.png"))) == 5
    assert all(a["bbox"][2] > 0 and a["bbox"][3] > 0 for a in data["annotations"])
    # written once, reused after
    mtime = ann.stat().st_mtime_ns
    shapes.write_coco(tmp_path, "val", 5)
    assert ann.stat().st_mtime_ns == mtime


def test_instance_masks_fit_their_boxes_and_round_trip_as_coco_rle(tmp_path):
    from pycocotools import mask as coco_mask

    for i in range(10):
        s = shapes.render(shapes.SPLIT_SEEDS["val"], i)
        masks = s.masks()
        assert masks.shape == (len(s.boxes),) + s.image.shape[:2]
        assert not (masks.sum(0) > 1).any()  # one object per pixel
        for m, box in zip(masks, s.boxes):
            ys, xs = np.nonzero(m)
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box.tolist()
            r = shapes.rle(m)
            back = coco_mask.decode(coco_mask.frPyObjects(r, *r["size"])).astype(bool)
            assert np.array_equal(back, m)
    _, ann = shapes.write_coco(tmp_path, "val", 3)
    data = json.loads(ann.read_text())
    assert all(
        a["segmentation"]["size"]
        == [data["images"][a["image_id"] - 1]["height"], data["images"][a["image_id"] - 1]["width"]]
        for a in data["annotations"]
    )
