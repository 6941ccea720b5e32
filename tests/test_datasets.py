"""Data sets in COCO, YOLO and VOC form load to the same COCO dict; every problem in them is a clear EdgecvError."""

import json
import sys

import cv2
import numpy as np
import pytest

from edgecv import EdgecvError, datasets
from edgecv.data import shapes
from edgecv.datasets import category_map, load_dataset

W, H = 64, 48
NAMES = ["cat", "dog"]
# file name -> [(class index, [x, y, w, h] pixels)]; c.png has no objects
BOXES = {
    "a.png": [(0, [4.0, 6.0, 20.0, 10.0]), (1, [30.0, 20.0, 34.0, 28.0])],
    "b.png": [(1, [0.0, 0.0, 64.0, 48.0])],
    "c.png": [],
}


def write_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(BOXES):
        cv2.imwrite(str(folder / name), np.full((H, W, 3), 40 * i, np.uint8))
    return folder


def coco_dict():
    images = [{"id": i + 1, "file_name": n, "width": W, "height": H} for i, n in enumerate(BOXES)]
    anns = []
    for i, objects in enumerate(BOXES.values()):
        for cls, box in objects:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": cls + 1,
                    "bbox": list(box),
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(NAMES)]
    return {"images": images, "annotations": anns, "categories": cats}


def write_coco(tmp_path, data=None, text=None):
    write_images(tmp_path / "images")
    path = tmp_path / "ann.json"
    path.write_text(text if text is not None else json.dumps(coco_dict() if data is None else data))
    return path


def write_yolo(tmp_path, classes_file=True):
    write_images(tmp_path / "images")
    labels = tmp_path / "labels"
    labels.mkdir()
    for name, objects in BOXES.items():
        if objects:  # c.png gets no label file: an image without objects
            lines = [
                f"{c} {(x + w / 2) / W:.6f} {(y + h / 2) / H:.6f} {w / W:.6f} {h / H:.6f}"
                for c, (x, y, w, h) in objects
            ]
            (labels / name.replace(".png", ".txt")).write_text("\n".join(lines) + "\n")
    if classes_file:
        (labels / "classes.txt").write_text("\n".join(NAMES) + "\n")
    return labels


def voc_xml(file_name, objects, difficult=()):
    objs = "".join(
        f"<object><name>{NAMES[c]}</name><difficult>{int(k in difficult)}</difficult><bndbox><xmin>{x + 1:g}</xmin>"
        f"<ymin>{y + 1:g}</ymin><xmax>{x + w:g}</xmax><ymax>{y + h:g}</ymax></bndbox></object>"
        for k, (c, (x, y, w, h)) in enumerate(objects)
    )
    return (
        f"<annotation><filename>{file_name}</filename><size><width>{W}</width><height>{H}</height>"
        f"<depth>3</depth></size>{objs}</annotation>"
    )


def write_voc(tmp_path):
    write_images(tmp_path / "JPEGImages")
    ann = tmp_path / "Annotations"
    ann.mkdir()
    for name, objects in BOXES.items():
        (ann / name.replace(".png", ".xml")).write_text(voc_xml(name, objects))
    return ann


def boxes_by_file(ds):
    files = {i["id"]: i["file_name"] for i in ds.coco["images"]}
    cats = {c["id"]: c["name"] for c in ds.coco["categories"]}
    return sorted((files[a["image_id"]], cats[a["category_id"]], a["bbox"]) for a in ds.coco["annotations"])


def test_coco_loads_and_round_trips(tmp_path):
    ds = load_dataset(write_coco(tmp_path))
    assert ds.format == "coco" and ds.name == "ann.json" and len(ds) == 3
    assert ds.root == tmp_path / "images"
    assert ds.coco == coco_dict()
    assert ds.image_path(ds.coco["images"][0]).is_file()
    assert len(ds.sha256) == 64
    # written back and loaded again: the same dict and digest
    again = load_dataset(write_coco(tmp_path / "again", ds.coco))
    assert again.coco == ds.coco and again.sha256 == ds.sha256


def test_coco_extra_keys_dropped_and_defaults_filled(tmp_path):
    data = coco_dict()
    data["info"] = {"year": 2024}
    data["images"][0]["license"] = 3
    for a in data["annotations"]:
        del a["area"], a["iscrowd"]
        a["segmentation"] = []
    ds = load_dataset(write_coco(tmp_path, data))
    assert set(ds.coco) == {"images", "annotations", "categories"}
    assert set(ds.coco["images"][0]) == {"id", "file_name", "width", "height"}
    assert ds.coco["annotations"][0] == {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": [4.0, 6.0, 20.0, 10.0],
        "area": 200.0,
        "iscrowd": 0,
    }


def test_coco_images_default_to_the_json_directory(tmp_path):
    (tmp_path / "images").mkdir()
    write_images(tmp_path)
    (tmp_path / "images").rmdir()
    (tmp_path / "ann.json").write_text(json.dumps(coco_dict()))
    assert load_dataset(tmp_path / "ann.json").root == tmp_path


@pytest.mark.parametrize("fmt", ["yolo", "voc"])
def test_yolo_and_voc_give_the_coco_boxes(tmp_path, fmt):
    coco = load_dataset(write_coco(tmp_path / "coco"))
    data = write_yolo(tmp_path / "yolo") if fmt == "yolo" else write_voc(tmp_path / "voc")
    ds = load_dataset(data)
    assert ds.format == fmt and len(ds) == 3
    assert [c["name"] for c in ds.coco["categories"]] == NAMES
    assert [i["id"] for i in ds.coco["images"]] == [1, 2, 3]
    assert [(i["file_name"], i["width"], i["height"]) for i in ds.coco["images"]] == [(n, W, H) for n in BOXES]
    got, want = boxes_by_file(ds), boxes_by_file(coco)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], atol=1e-3)
    assert all(a["iscrowd"] == 0 and a["area"] > 0 for a in ds.coco["annotations"])


def test_yolo_names_from_classes_txt_and_unlabelled_images(tmp_path):
    labels = write_yolo(tmp_path, classes_file=False)
    (tmp_path / "names.txt").write_text("cat\ndog\n")  # in the labels directory's parent
    ds = load_dataset(labels)
    assert [c["name"] for c in ds.coco["categories"]] == NAMES
    c_id = next(i["id"] for i in ds.coco["images"] if i["file_name"] == "c.png")
    assert not [a for a in ds.coco["annotations"] if a["image_id"] == c_id]


def test_yolo_names_argument_wins(tmp_path):
    ds = load_dataset(write_yolo(tmp_path), names=["x", "y", "z"])
    assert [c["name"] for c in ds.coco["categories"]] == ["x", "y", "z"]


def test_voc_difficult_is_crowd(tmp_path):
    ann = write_voc(tmp_path)
    (ann / "a.xml").write_text(voc_xml("a.png", BOXES["a.png"], difficult={1}))
    ds = load_dataset(ann)
    assert [a["iscrowd"] for a in ds.coco["annotations"]] == [0, 1, 0]


def test_voc_names_argument_sets_category_order(tmp_path):
    ds = load_dataset(write_voc(tmp_path), names=["dog", "cat", "bird"])
    assert [c["name"] for c in ds.coco["categories"]] == ["dog", "cat", "bird"]
    assert [a["category_id"] for a in ds.coco["annotations"]] == [2, 1, 1]


def test_box_slightly_outside_is_clipped(tmp_path):
    data = coco_dict()
    data["annotations"][0]["bbox"] = [-0.5, 6.0, 20.5, 42.5]  # 0.5 px past the left and bottom edges
    del data["annotations"][0]["area"]
    ds = load_dataset(write_coco(tmp_path, data))
    assert ds.coco["annotations"][0]["bbox"] == [0.0, 6.0, 20.0, 42.0]
    assert ds.coco["annotations"][0]["area"] == 20.0 * 42.0
    with pytest.raises(EdgecvError, match="outside their image by more than 0 px"):
        load_dataset(tmp_path / "ann.json", box_tolerance=0)


def _set(entry, **fields):
    entry.update(fields)


@pytest.mark.parametrize(
    "mutate, msg",
    [
        (lambda d: d["images"][0].pop("width"), r"missing or wrongly typed fields \(1\): images\[0\] has no 'width'"),
        (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] has no 'bbox'"),
        (lambda d: d["categories"][0].pop("name"), r"categories\[0\] has no 'name'"),
        (lambda d: _set(d["images"][1], id="two"), r"images\[1\]\.id = \"two\" is not an integer"),
        (lambda d: _set(d["images"][1], id=True), r"images\[1\]\.id = true is not an integer"),
        (lambda d: _set(d["annotations"][0], bbox=[1, 2, 3]), r"bbox = \[1, 2, 3\] is not a list of 4"),
        (lambda d: _set(d["annotations"][0], iscrowd=2), r"iscrowd = 2 is not 0 or 1"),
        (lambda d: d["annotations"].__setitem__(0, "box"), r"annotations\[0\] is of type str, not an object"),
        (lambda d: _set(d["images"][1], id=1), r"duplicate image ids \(1\): 1"),
        (lambda d: _set(d["annotations"][1], id=1), r"duplicate annotation ids \(1\): 1"),
        (lambda d: _set(d["categories"][1], name="cat"), r"duplicate category names \(1\): cat"),
        (lambda d: _set(d["annotations"][2], image_id=99), r"unknown image ids \(1\): annotation 3 -> image 99"),
        (
            lambda d: _set(d["annotations"][0], category_id=7),
            r"undeclared category ids \(1\): annotation 1 -> category 7",
        ),
        (
            lambda d: [_set(i, file_name=f"gone{k}.png") for k, i in enumerate(d["images"])],
            r"image files of .* are missing from .* \(3\): gone0\.png, gone1\.png, gone2\.png",
        ),
        (
            lambda d: _set(d["annotations"][0], bbox=[50, 6, 20, 10]),
            r"outside their image by more than 1 px \(1\): annotation 1",
        ),
        (lambda d: _set(d["annotations"][0], bbox=[4, 6, 0, 10]), r"width or height <= 0 \(1\): annotation 1"),
        (lambda d: _set(d["annotations"][0], bbox=[4, 6, 20, -1]), r"width or height <= 0"),
        (lambda d: d.update(images=[], annotations=[]), "has no images"),
        (lambda d: d.pop("annotations"), "not a COCO detection file: no 'annotations'"),
        (lambda d: d.update(images={}), "'images' is of type dict, not a list"),
    ],
)
def test_bad_coco_is_refused(tmp_path, mutate, msg):
    data = coco_dict()
    mutate(data)
    with pytest.raises(EdgecvError, match=msg):
        load_dataset(write_coco(tmp_path, data))


@pytest.mark.parametrize(
    "text, msg",
    [
        ('{"images": [}', r"not valid JSON: .* at line 1, column 13"),
        ('{\n"images": []\n', r"not valid JSON: .* at line 3"),
        ("[]", "holds a JSON list, not an object"),
        ("", "not valid JSON"),
    ],
)
def test_malformed_json(tmp_path, text, msg):
    with pytest.raises(EdgecvError, match=msg):
        load_dataset(write_coco(tmp_path, text=text))


def test_many_problems_show_five_examples_and_the_count(tmp_path):
    data = coco_dict()
    data["annotations"] = [dict(data["annotations"][0], id=k, bbox=[60, 6, 20, 10]) for k in range(1, 9)]
    with pytest.raises(EdgecvError, match=r"\(8\): annotation 1 .*annotation 5 .* and 3 more"):
        load_dataset(write_coco(tmp_path, data))


def test_oversized_annotation_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_ANNOTATION_BYTES", 100)
    with pytest.raises(EdgecvError, match="at most 0 MiB"):
        load_dataset(write_coco(tmp_path))


@pytest.mark.parametrize(
    "text, msg",
    [
        ("0 0.5 0.5 0.2\n", r"wrong number of values \(1\): a\.txt:1 has 4"),
        ("0 0.5 0.5 0.2 0.2 0.1 0.1\n", r"wrong number of values \(1\): a\.txt:1 has 7"),
        ("0 0.5 half 0.2 0.2\n", r"not numbers \(1\): a\.txt:1"),
        ("0 0.5 nan 0.2 0.2\n", r"not numbers \(1\): a\.txt:1"),
        ("0 0.5 0.5 0.2 0.2\n\n0 30 20 10 10\n", r"outside 0\.\.1 \(1\): a\.txt:3"),
        ("2 0.5 0.5 0.2 0.2\n", r"class index not in 0\.\.1 \(2 class names\) \(1\): a\.txt:1 has 2"),
        ("-1 0.5 0.5 0.2 0.2\n", r"class index not in 0\.\.1"),
        ("0.5 0.5 0.5 0.2 0.2\n", r"class index not in 0\.\.1"),
        ("0 0.5 0.5 0 0.2\n", r"width or height <= 0 \(1\): a\.txt box 1"),
        ("0 0.99 0.5 0.2 0.2\n", r"outside their image by more than 1 px \(1\): a\.txt box 1"),
    ],
)
def test_bad_yolo_lines(tmp_path, text, msg):
    labels = write_yolo(tmp_path)
    (labels / "a.txt").write_text(text)
    with pytest.raises(EdgecvError, match=msg):
        load_dataset(labels)


def test_yolo_problems_across_files_are_counted_together(tmp_path):
    labels = write_yolo(tmp_path)
    (labels / "a.txt").write_text("0 0.5 0.5\n5 0.5 0.5 0.1 0.1\n")
    (labels / "b.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(
        EdgecvError,
        match=r"malformed lines .* \(3\) - .*wrong number of values \(2\): a\.txt:1 has 3, "
        r"b\.txt:1 has 3; .*class index .* \(1\): a\.txt:2",
    ):
        load_dataset(labels)


def test_yolo_label_without_image(tmp_path):
    labels = write_yolo(tmp_path)
    (labels / "zzz.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(EdgecvError, match=r"label files .* have no image .* \(1\): zzz\.txt"):
        load_dataset(labels)


def test_yolo_without_names(tmp_path):
    with pytest.raises(EdgecvError, match="no class names .* pass names"):
        load_dataset(write_yolo(tmp_path, classes_file=False))


def test_yolo_needs_images_dir_when_not_beside_labels(tmp_path):
    labels = write_yolo(tmp_path)
    moved = labels.rename(tmp_path / "txt")
    with pytest.raises(EdgecvError, match="--images"):
        load_dataset(moved)
    assert len(load_dataset(moved, tmp_path / "images")) == 3


def test_yolo_with_no_images_is_empty(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (tmp_path / "images").mkdir()
    (labels / "classes.txt").write_text("cat\n")
    with pytest.raises(EdgecvError, match="has no images"):
        load_dataset(labels, fmt="yolo")


def test_yolo_unreadable_image(tmp_path):
    labels = write_yolo(tmp_path)
    (tmp_path / "images" / "b.png").write_bytes(b"not a png")
    with pytest.raises(EdgecvError, match=r"cannot be decoded \(1\): b\.png"):
        load_dataset(labels)


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n'
    "<annotation><filename>&b;</filename></annotation>"
)


@pytest.mark.parametrize(
    "text, msg",
    [
        (BILLION_LAUGHS, r"entities .* \(1\): a\.xml"),
        ("<annotation><filename>a.png</filename>", r"not well-formed XML \(1\): a\.xml \(line 1"),
        (voc_xml("a.png", BOXES["a.png"]).replace("<filename>a.png</filename>", ""), r"a\.xml: no <filename>"),
        (voc_xml("a.png", BOXES["a.png"]).replace("<width>64</width>", "<width>0</width>"), r"a\.xml: <size>"),
        (voc_xml("a.png", BOXES["a.png"]).replace("<xmin>5</xmin>", ""), r"a\.xml object 1: <bndbox> lacks"),
        (
            voc_xml("a.png", BOXES["a.png"]).replace("<difficult>0</difficult>", "<difficult>yes</difficult>", 1),
            r"a\.xml object 1: <difficult> is not 0 or 1",
        ),
        (voc_xml("a.png", BOXES["a.png"]).replace("<name>cat</name>", "<name></name>"), r"a\.xml object 1: no <name>"),
        (voc_xml("b.png", BOXES["a.png"]), r"same image more than once \(1\): b\.png"),
        (voc_xml("x.png", BOXES["a.png"]), r"missing from .* \(1\): x\.png"),
        (
            voc_xml("a.png", BOXES["a.png"]).replace("<xmax>24</xmax>", "<xmax>4</xmax>"),
            r"width or height <= 0 \(1\): a\.xml object 1",
        ),
        (voc_xml("a.png", BOXES["a.png"]).replace("<xmax>24</xmax>", "<xmax>70</xmax>"), r"outside .* a\.xml object 1"),
    ],
)
def test_bad_voc_is_refused(tmp_path, text, msg):
    ann = write_voc(tmp_path)
    (ann / "a.xml").write_text(text)
    with pytest.raises(EdgecvError, match=msg):
        load_dataset(ann)


def test_voc_object_names_must_be_among_given_names(tmp_path):
    with pytest.raises(
        EdgecvError, match=r"not among the given names .* \(2\): a\.xml object 2 is 'dog', b\.xml object 1 is 'dog'"
    ):
        load_dataset(write_voc(tmp_path), names=["cat", "bird"])


def test_voc_without_defusedxml(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "defusedxml", None)
    with pytest.raises(EdgecvError, match=r"pip install 'edgecv\[eval\]'"):
        load_dataset(write_voc(tmp_path))


def test_unknown_formats(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(EdgecvError, match="cannot tell the format .* expected a COCO .json file"):
        load_dataset(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgecvError, match="holds no .xml or .txt label files"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(EdgecvError, match="unknown data set format 'csv'"):
        load_dataset(tmp_path / "x.csv", fmt="csv")
    with pytest.raises(EdgecvError, match="does not exist"):
        load_dataset(tmp_path / "nothing.json")


def test_category_map_by_name():
    cats = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    assert category_map(["cat", "bird", "dog"], cats) == {0: 3, 2: 7}
    with pytest.raises(EdgecvError, match=r"does not know 2 .*: fox, owl; the model's classes are \['cat', 'dog'\]"):
        category_map(["cat", "dog"], cats + [{"id": 9, "name": "fox"}, {"id": 10, "name": "owl"}])


def test_shapes_split_loads(tmp_path):
    images_dir, ann = shapes.write_coco(tmp_path, "val", 5)
    ds = load_dataset(ann, images_dir)
    assert len(ds) == 5 and ds.format == "coco"
    assert [c["name"] for c in ds.coco["categories"]] == list(shapes.CLASSES)
    assert category_map(list(shapes.CLASSES), ds.coco["categories"]) == {i: i + 1 for i in range(len(shapes.CLASSES))}


def test_coco_segmentations_are_kept_and_checked(tmp_path):
    data = coco_dict()
    poly = [[4.0, 6.0, 24.0, 6.0, 24.0, 16.0]]
    rle = {"size": [H, W], "counts": [10, 5, H * W - 15]}
    data["annotations"][0]["segmentation"] = poly
    data["annotations"][1]["segmentation"] = rle
    ds = load_dataset(write_coco(tmp_path / "ok", data))
    assert ds.coco["annotations"][0]["segmentation"] == poly and ds.coco["annotations"][1]["segmentation"] == rle
    assert "segmentation" not in ds.coco["annotations"][2]
    data["annotations"][0]["segmentation"] = [[1.0, 2.0, 3.0]]  # an odd number of coordinates
    with pytest.raises(EdgecvError, match=r"annotations\[0\].segmentation .* is not polygons"):
        load_dataset(write_coco(tmp_path / "bad", data))
