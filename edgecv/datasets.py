"""Loading a detection data set given as COCO json, YOLO txt or Pascal VOC xml into one COCO-format dict.

Every problem in the files is an DatasetError that counts the cases and names a few of them: nothing is skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import cv2
import numpy as np

from .errors import DatasetError

FORMATS = ("coco", "yolo", "voc")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
NAME_FILES = ("classes.txt", "names.txt")  # class names of a YOLO set, one a line; not label files
MAX_ANNOTATION_BYTES = 512 * 2**20  # a larger annotation file is a mistake or an attack, and would exhaust memory
MAX_EXAMPLES = 5
# normalised YOLO values this far outside 0..1 are taken as rounding; the pixel edges are then checked
# against box_tolerance like every other format's
YOLO_TOLERANCE = 0.01


@dataclass(frozen=True)
class Dataset:
    """A loaded data set: its images directory and its annotations in COCO form, whatever format they came in."""

    name: str  # the annotation file's or folder's name
    root: Path  # the images directory
    coco: dict  # {"images": [...], "annotations": [...], "categories": [...]}
    format: str  # "coco", "yolo" or "voc"
    sha256: str  # of json.dumps(coco, sort_keys=True): identifies the annotations a result was computed on

    def image_path(self, info: dict) -> Path:
        """Path of the image file of ``info``, an entry of ``coco["images"]``."""
        return self.root / info["file_name"]

    def __len__(self) -> int:
        return len(self.coco["images"])


def load_dataset(
    data: str | os.PathLike,
    images: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    fmt: str | None = None,
    box_tolerance: float = 1.0,
) -> Dataset:
    """Load and validate a detection data set.

    Args:
        data: a COCO ``.json`` file, a directory of YOLO ``.txt`` label files, or a directory of
            Pascal VOC ``.xml`` files.
        images: the images directory. When None: for COCO the json's directory joined with
            ``images`` if that exists, else the json's own directory; for YOLO the ``images``
            sibling of a ``labels`` directory; for VOC ``data/../JPEGImages``.
        names: class names, in class index order for YOLO. When None, YOLO reads ``classes.txt``
            or ``names.txt`` from the labels directory or its parent and VOC takes the sorted names
            seen. A COCO json carries its own names, so this is ignored for it.
        fmt: ``"coco"``, ``"yolo"`` or ``"voc"``; None picks it from what ``data`` is.
        box_tolerance: boxes out of their image by at most this many pixels are clipped to it;
            farther out is an error.

    Returns:
        The data set; YOLO and VOC images get ids 1..N in file name order and categories ids
        1..C in ``names`` order.

    Raises:
        DatasetError: anything wrong with the files, with the number of cases and a few examples.
    """
    data = Path(data)
    if not data.exists():
        raise DatasetError(f"data set '{data}' does not exist")
    if not (isinstance(box_tolerance, (int, float)) and math.isfinite(box_tolerance) and box_tolerance >= 0):
        raise DatasetError(f"box_tolerance must be a number of pixels >= 0, got {box_tolerance!r}")
    if fmt is None:
        fmt = _detect_format(data)
    elif fmt not in FORMATS:
        raise DatasetError(f"unknown data set format {fmt!r}; edgecv reads {', '.join(FORMATS)}")
    if fmt == "coco" and not data.is_file():
        raise DatasetError(f"a COCO data set is a .json file, but '{data}' is a directory")
    if fmt != "coco" and not data.is_dir():
        raise DatasetError(f"the {fmt.upper()} format is a directory of label files, but '{data}' is a file")
    images_dir = Path(images) if images is not None else None
    if images_dir is not None and not images_dir.is_dir():
        raise DatasetError(f"images directory '{images_dir}' does not exist or is not a directory")
    if names is not None:
        names = _check_names(names, "names")
    if fmt == "coco":
        coco, root, where = _load_coco(data, images_dir)
    elif fmt == "yolo":
        coco, root, where = _load_yolo(data, images_dir, names)
    else:
        coco, root, where = _load_voc(data, images_dir, names)
    _check_images_and_boxes(coco, root, where, box_tolerance, data)
    digest = hashlib.sha256(json.dumps(coco, sort_keys=True).encode()).hexdigest()
    return Dataset(data.name, root, coco, fmt, digest)


def category_map(model_names: Sequence[str], categories: Sequence[dict]) -> dict[int, int]:
    """Model class index -> COCO category id, matched by name.

    Args:
        model_names: the model's class names, in class index order.
        categories: a data set's ``coco["categories"]``.

    Returns:
        The mapping; model classes that are not data set categories are left out (detections of
        them are not scored).

    Raises:
        DatasetError: some data set categories are not model classes (their objects could never be found).
    """
    known = set(model_names)
    unknown = [str(c["name"]) for c in categories if c["name"] not in known]
    if unknown:
        raise DatasetError(
            f"the model does not know {len(unknown)} of the data set's categories: {_examples(unknown)}; "
            f"the model's classes are {list(model_names)}. Evaluate with a model trained on these "
            "categories, or remove their annotations from the data set"
        )
    by_name = {c["name"]: int(c["id"]) for c in categories}
    return {i: by_name[n] for i, n in enumerate(model_names) if n in by_name}


# --- messages ---------------------------------------------------------------------------------------------


def _examples(cases: Sequence[str]) -> str:
    more = len(cases) - MAX_EXAMPLES
    return ", ".join(cases[:MAX_EXAMPLES]) + (f" and {more} more" if more > 0 else "")


def _fail(what: str, cases: Sequence[str], fix: str) -> NoReturn:
    raise DatasetError(f"{what} ({len(cases)}): {_examples(cases)}. {fix}")


def _fail_grouped(what: str, groups: dict[str, list[str]], fix: str) -> NoReturn:
    """One error for several kinds of problem, each with its count and examples."""
    groups = {k: v for k, v in groups.items() if v}
    parts = "; ".join(f"{kind} ({len(cases)}): {_examples(cases)}" for kind, cases in groups.items())
    raise DatasetError(f"{what} ({sum(len(v) for v in groups.values())}) - {parts}. {fix}")


# --- shared ---------------------------------------------------------------------------------------------


def _detect_format(data: Path) -> str:
    expected = (
        "expected a COCO .json file, a directory of YOLO .txt label files or a directory of Pascal VOC .xml files"
    )
    if data.is_file():
        if data.suffix.lower() == ".json":
            return "coco"
        raise DatasetError(f"cannot tell the format of '{data}': {expected} (or pass the format explicitly)")
    has_xml = any(p.suffix.lower() == ".xml" for p in data.iterdir())
    has_txt = any(p.suffix.lower() == ".txt" and p.name.lower() not in NAME_FILES for p in data.iterdir())
    if has_xml and has_txt:
        raise DatasetError(f"'{data}' holds both .xml and .txt files: pass the format explicitly ('voc' or 'yolo')")
    if has_xml:
        return "voc"
    if has_txt:
        return "yolo"
    raise DatasetError(f"cannot tell the format of '{data}': it holds no .xml or .txt label files; {expected}")


def _read_bytes(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_ANNOTATION_BYTES:
        raise DatasetError(
            f"annotation file '{path}' is {size / 2**20:.0f} MiB; edgecv reads annotation files of "
            f"at most {MAX_ANNOTATION_BYTES // 2**20} MiB. Split the data set into smaller files"
        )
    return path.read_bytes()


def _check_names(names: Sequence[str], source: str) -> list[str]:
    if isinstance(names, (str, bytes)) or not all(isinstance(n, str) and n.strip() for n in names):
        raise DatasetError(f"class names from {source} must be a list of non-empty strings, got {names!r:.200}")
    names = [n.strip() for n in names]
    if not names:
        raise DatasetError(f"no class names in {source}")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        _fail(f"class names from {source} repeat", dups, "Each class needs a name of its own")
    return names


def _check_images_and_boxes(coco: dict, root: Path, where: list[str], tol: float, source: Path) -> None:
    """Refuse an empty set, missing image files and bad boxes; clip boxes out by at most ``tol`` px, fill areas."""
    if not coco["images"]:
        raise DatasetError(f"data set '{source}' has no images; a data set needs at least one")
    missing = [info["file_name"] for info in coco["images"] if not (root / info["file_name"]).is_file()]
    if missing:
        _fail(
            f"image files of '{source}' are missing from '{root}'",
            missing,
            "Check that the images directory (images=, --images) is the right one and holds every image",
        )
    sizes = {info["id"]: (info["width"], info["height"]) for info in coco["images"]}
    names = {info["id"]: info["file_name"] for info in coco["images"]}
    empty, outside = [], []
    for ann, loc in zip(coco["annotations"], where):
        w_img, h_img = sizes[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        shown = f"{loc} [x, y, w, h] = [{x:g}, {y:g}, {w:g}, {h:g}] in {names[ann['image_id']]} ({w_img}x{h_img})"
        if w <= 0 or h <= 0:
            empty.append(shown)
            continue
        x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, w_img), min(y + h, h_img)
        # a box out by less than the tolerance but also too small to keep anything after clipping is out too
        if x < -tol or y < -tol or x + w > w_img + tol or y + h > h_img + tol or x1 <= x0 or y1 <= y0:
            outside.append(shown)
            continue
        ann["bbox"] = [x0, y0, x1 - x0, y1 - y0]
        if ann["area"] is None:
            ann["area"] = (x1 - x0) * (y1 - y0)
    if empty:
        _fail(f"boxes in '{source}' have width or height <= 0", empty, "Fix or remove these annotations")
    if outside:
        _fail(
            f"boxes in '{source}' lie outside their image by more than {tol:g} px",
            outside,
            "Fix these annotations, check the image sizes, or raise box_tolerance if small overshoots are expected",
        )


# --- COCO -----------------------------------------------------------------------------------------------


def _int(v) -> int | None:
    if isinstance(v, bool):  # JSON true is not an id
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _positive_int(v) -> int | None:
    i = _int(v)
    return i if i is not None and i > 0 else None


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _file_name(v) -> str | None:
    return v if isinstance(v, str) and v else None


def _bbox(v) -> list[float] | None:
    if not isinstance(v, list) or len(v) != 4:
        return None
    xywh = [x for x in map(_number, v) if x is not None]
    return xywh if len(xywh) == 4 else None


def _crowd(v) -> int | None:
    i = _int(v)
    return i if i in (0, 1) else None


def _empty(v) -> bool:
    """None, or an empty list or object: an optional field left out."""
    return v is None or (isinstance(v, (list, dict)) and not v)


def _segmentation(v):
    """A COCO segmentation (polygons or RLE), kept as it is; None when malformed."""
    if isinstance(v, dict):
        size = v.get("size")
        ok = isinstance(size, list) and len(size) == 2 and all(_positive_int(x) for x in size)
        return v if ok and isinstance(v.get("counts"), (str, list)) else None
    if (
        isinstance(v, list)
        and v
        and all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_number(x) is not None for x in p)
            for p in v
        )
    ):
        return v
    return None


def _name(v) -> str | None:
    return v if isinstance(v, str) and v.strip() else None


# field -> (conversion returning None when the value is unusable, what it must be, default when missing;
# ... marks a required field)
_Spec = dict[str, tuple[Callable, str, object]]
IMAGE_FIELDS: _Spec = {
    "id": (_int, "an integer", ...),
    "file_name": (_file_name, "a non-empty string", ...),
    "width": (_positive_int, "a positive integer", ...),
    "height": (_positive_int, "a positive integer", ...),
}
ANNOTATION_FIELDS: _Spec = {
    "id": (_int, "an integer", ...),
    "image_id": (_int, "an integer", ...),
    "category_id": (_int, "an integer", ...),
    "bbox": (_bbox, "a list of 4 finite numbers [x, y, w, h]", ...),
    "area": (_number, "a finite number", None),
    "iscrowd": (_crowd, "0 or 1", 0),
    "segmentation": (_segmentation, "polygons [[x, y, ...], ...] or an RLE {size, counts}", None),
}
CATEGORY_FIELDS: _Spec = {"id": (_int, "an integer", ...), "name": (_name, "a non-empty string", ...)}


def _entries(data: dict, key: str, spec: _Spec, problems: list[str]) -> list[dict]:
    """The entries of ``data[key]`` reduced to the fields of ``spec``, converted; problems are appended."""
    out = []
    for i, entry in enumerate(data[key]):
        if not isinstance(entry, dict):
            problems.append(f"{key}[{i}] is of type {type(entry).__name__}, not an object")
            continue
        clean, ok = {}, True
        for field, (convert, must_be, default) in spec.items():
            if field not in entry or (default is not ... and _empty(entry[field])):
                if default is ...:
                    problems.append(f"{key}[{i}] has no '{field}'")
                    ok = False
                clean[field] = None if default is ... else default
                continue
            value = convert(entry[field])
            if value is None:
                problems.append(f"{key}[{i}].{field} = {json.dumps(entry[field])[:40]} is not {must_be}")
                ok = False
            clean[field] = value
        if ok:
            if "segmentation" in clean and clean["segmentation"] is None:
                del clean["segmentation"]  # optional: absent, not null, for the evaluator
            out.append(clean)
    return out


def _duplicates(values: list) -> list[str]:
    seen, dups = set(), []
    for v in values:
        if v in seen and str(v) not in dups:
            dups.append(str(v))
        seen.add(v)
    return dups


def _load_coco(path: Path, images: Path | None) -> tuple[dict, Path, list[str]]:
    try:
        data = json.loads(_read_bytes(path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"'{path}' is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"'{path}' is not valid JSON: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"'{path}' holds a JSON {type(data).__name__}, not an object with 'images', "
            "'annotations' and 'categories': it is not a COCO detection file"
        )
    wrong = [
        f"no '{k}'" if k not in data else f"'{k}' is of type {type(data[k]).__name__}, not a list"
        for k in ("images", "annotations", "categories")
        if not isinstance(data.get(k), list)
    ]
    if wrong:
        raise DatasetError(
            f"'{path}' is not a COCO detection file: {'; '.join(wrong)}. "
            "A COCO detection json needs the lists 'images', 'annotations' and 'categories'"
        )
    problems: list[str] = []
    imgs = _entries(data, "images", IMAGE_FIELDS, problems)
    anns = _entries(data, "annotations", ANNOTATION_FIELDS, problems)
    cats = _entries(data, "categories", CATEGORY_FIELDS, problems)
    if problems:
        _fail(
            f"entries of '{path}' have missing or wrongly typed fields",
            problems,
            "Images need id, file_name, width, height; annotations id, image_id, category_id, bbox [x, y, w, h]; "
            "categories id, name",
        )
    for what, dups in (
        ("duplicate image ids", _duplicates([i["id"] for i in imgs])),
        ("duplicate annotation ids", _duplicates([a["id"] for a in anns])),
        ("duplicate category ids", _duplicates([c["id"] for c in cats])),
        ("duplicate category names", _duplicates([c["name"] for c in cats])),
    ):
        if dups:
            _fail(f"'{path}' has {what}", dups, "Ids and category names must be unique")
    image_ids, cat_ids = {i["id"] for i in imgs}, {c["id"] for c in cats}
    bad_img = [f"annotation {a['id']} -> image {a['image_id']}" for a in anns if a["image_id"] not in image_ids]
    if bad_img:
        _fail(
            f"annotations in '{path}' point at unknown image ids",
            bad_img,
            "Every annotation's image_id must be the id of an entry of 'images'",
        )
    bad_cat = [f"annotation {a['id']} -> category {a['category_id']}" for a in anns if a["category_id"] not in cat_ids]
    if bad_cat:
        _fail(
            f"annotations in '{path}' use undeclared category ids",
            bad_cat,
            f"Every category_id must be declared in 'categories' (declared: {sorted(cat_ids)})",
        )
    if images is None:
        images = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    where = [f"annotation {a['id']}" for a in anns]
    return {"images": imgs, "annotations": anns, "categories": cats}, images, where


# --- YOLO -----------------------------------------------------------------------------------------------


def _yolo_images_dir(labels: Path) -> Path:
    # the two usual layouts: <set>/labels next to <set>/images, and labels/<split> next to images/<split>
    if labels.name == "labels" and (labels.parent / "images").is_dir():
        return labels.parent / "images"
    if labels.parent.name == "labels" and (labels.parent.parent / "images" / labels.name).is_dir():
        return labels.parent.parent / "images" / labels.name
    raise DatasetError(
        f"cannot find the images of the YOLO labels in '{labels}': pass the images directory (images=, --images)"
    )


def _yolo_names(labels: Path) -> list[str]:
    for folder in (labels, labels.parent):
        for fname in NAME_FILES:
            p = folder / fname
            if p.is_file():
                try:
                    lines = _read_bytes(p).decode("utf-8").splitlines()
                except UnicodeDecodeError:
                    raise DatasetError(f"class names file '{p}' is not UTF-8 text") from None
                while lines and not lines[-1].strip():  # an editor's trailing newline is no class
                    lines.pop()
                blank = [f"line {k}" for k, line in enumerate(lines, 1) if not line.strip()]
                if blank:
                    _fail(
                        f"class names file '{p}' has blank lines",
                        blank,
                        "Write one name per line: a blank line would shift every class index after it",
                    )
                return _check_names(lines, f"'{p}'")
    raise DatasetError(
        f"no class names for the YOLO labels in '{labels}': pass names (--data-names) or put a "
        f"classes.txt (one name per line, in class index order) in '{labels}' or its parent"
    )


def _parse_yolo(path: Path, n_names: int, groups: dict[str, list[str]]) -> list[tuple[int, float, float, float, float]]:
    """The (class, cx, cy, w, h) rows of a YOLO label file; malformed lines go to ``groups`` by kind."""

    def problem(kind: str, case: str) -> None:
        groups.setdefault(kind, []).append(case)

    try:
        text = _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        problem("files that are not UTF-8 text", path.name)
        return []
    rows: list[tuple[int, float, float, float, float]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        loc = f"{path.name}:{lineno}"
        if len(parts) != 5:
            problem("lines with the wrong number of values", f"{loc} has {len(parts)}")
            continue
        try:
            values = [float(v) for v in parts]
        except ValueError:
            values = []
        if not values or not all(math.isfinite(v) for v in values):
            problem("lines with values that are not numbers", loc)
            continue
        cls = values[0]
        if not cls.is_integer() or not 0 <= cls < n_names:
            problem(
                f"lines with a class index not in 0..{n_names - 1} ({n_names} class names)", f"{loc} has {parts[0]}"
            )
            continue
        if any(not -YOLO_TOLERANCE <= v <= 1 + YOLO_TOLERANCE for v in values[1:]):
            problem("lines with values outside 0..1", loc)
            continue
        cx, cy, w, h = values[1:]
        rows.append((int(cls), cx, cy, w, h))
    return rows


def _image_size(path: Path) -> tuple[int, int] | None:
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    return None if img is None else (int(img.shape[1]), int(img.shape[0]))


def _load_yolo(labels: Path, images: Path | None, names: list[str] | None) -> tuple[dict, Path, list[str]]:
    root = images if images is not None else _yolo_images_dir(labels)
    names = names if names is not None else _yolo_names(labels)
    image_files = sorted(
        (p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: p.name
    )
    label_files = {
        p.stem: p
        for p in labels.iterdir()
        if p.is_file() and p.suffix.lower() == ".txt" and p.name.lower() not in NAME_FILES
    }
    by_stem: dict[str, list[str]] = {}
    for p in image_files:
        by_stem.setdefault(p.stem, []).append(p.name)
    shared = [" and ".join(v) for v in by_stem.values() if len(v) > 1]
    if shared:
        _fail(
            f"images in '{root}' share a name stem, so a YOLO label file cannot tell which it belongs to",
            shared,
            "Rename or remove one image of each pair",
        )
    orphans = sorted(p.name for stem, p in label_files.items() if stem not in by_stem)
    if orphans:
        _fail(
            f"YOLO label files in '{labels}' have no image in '{root}'",
            orphans,
            f"Add the images ({' '.join(IMAGE_EXTENSIONS)}, same name stem as the label file), check the "
            "images directory, or remove the label files",
        )
    groups: dict[str, list[str]] = {}
    rows = {stem: _parse_yolo(label_files[stem], len(names), groups) for stem in sorted(label_files)}
    if groups:
        _fail_grouped(
            f"malformed lines in the YOLO label files of '{labels}'",
            groups,
            "Each line must be 'class cx cy w h': an integer class index into the names and a box "
            "normalised by the image size (0..1)",
        )
    sizes = {p.name: _image_size(p) for p in image_files}
    unreadable = [name for name, size in sizes.items() if size is None]
    if unreadable:
        _fail(f"images in '{root}' cannot be decoded", unreadable, "Replace or remove these files")
    imgs: list[dict] = []
    anns: list[dict] = []
    where: list[str] = []
    for image_id, p in enumerate(image_files, 1):
        size = sizes[p.name]
        assert size is not None  # the images that cannot be decoded were refused above
        w_img, h_img = size
        imgs.append({"id": image_id, "file_name": p.name, "width": w_img, "height": h_img})
        for k, (cls, cx, cy, w, h) in enumerate(rows.get(p.stem, []), 1):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,
                    "bbox": [(cx - w / 2) * w_img, (cy - h / 2) * h_img, w * w_img, h * h_img],
                    "area": None,
                    "iscrowd": 0,
                }
            )
            where.append(f"{p.stem}.txt box {k}")
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    return {"images": imgs, "annotations": anns, "categories": cats}, root, where


# --- Pascal VOC -----------------------------------------------------------------------------------------


def _load_voc(ann_dir: Path, images: Path | None, names: list[str] | None) -> tuple[dict, Path, list[str]]:
    try:
        from defusedxml import DefusedXmlException
        from defusedxml import ElementTree as SafeET
    except ImportError:
        raise DatasetError("reading Pascal VOC xml needs defusedxml: pip install 'edgecv[eval]'") from None
    if images is None:
        images = ann_dir.parent / "JPEGImages"
        if not images.is_dir():
            raise DatasetError(
                f"cannot find the images of the VOC annotations in '{ann_dir}' (no '{images}'): "
                "pass the images directory (images=, --images)"
            )
    groups: dict[str, list[str]] = {
        "not well-formed XML": [],
        "XML declaring entities or external references (refused: entity expansion is a known attack)": [],
        "missing or invalid fields": [],
    }
    refused = list(groups)[1]
    # (file_name, width, height, [(name, difficult, xmin, ymin, xmax, ymax, where)], xml name); a missing
    # width or height is reported below, before the records are read
    records: list[tuple[str, int | None, int | None, list[tuple[str, int, float, float, float, float, str]], str]] = []
    for path in sorted(p for p in ann_dir.iterdir() if p.is_file() and p.suffix.lower() == ".xml"):
        try:
            root = SafeET.fromstring(_read_bytes(path))
        except DefusedXmlException:
            groups[refused].append(path.name)
            continue
        except SafeET.ParseError as e:
            line, col = e.position
            groups.setdefault("not well-formed XML", []).append(f"{path.name} (line {line}, column {col})")
            continue
        bad = groups["missing or invalid fields"]
        file_name = (root.findtext("filename") or "").strip()
        if not file_name:
            bad.append(f"{path.name}: no <filename>")
        size = [_positive_int(_xml_number(root.findtext(f"size/{k}"))) for k in ("width", "height")]
        if None in size:
            bad.append(f"{path.name}: <size> has no positive integer <width> and <height>")
        objects: list[tuple[str, int, float, float, float, float, str]] = []
        for k, obj in enumerate(root.findall("object"), 1):
            loc = f"{path.name} object {k}"
            name = (obj.findtext("name") or "").strip()
            difficult = _crowd(_xml_number(obj.findtext("difficult") or "0"))
            coords = [_xml_number(obj.findtext(f"bndbox/{c}")) for c in ("xmin", "ymin", "xmax", "ymax")]
            box = [c for c in coords if c is not None]
            if not name:
                bad.append(f"{loc}: no <name>")
            elif difficult is None:
                bad.append(f"{loc}: <difficult> is not 0 or 1")
            elif len(box) < 4:
                bad.append(f"{loc}: <bndbox> lacks a numeric xmin, ymin, xmax or ymax")
            else:
                x0, y0, x1, y1 = box
                objects.append((name, difficult, x0, y0, x1, y1, loc))
        records.append((file_name, size[0], size[1], objects, path.name))
    if any(groups.values()):
        _fail_grouped(
            f"Pascal VOC files in '{ann_dir}' cannot be read",
            groups,
            "Each file needs <filename>, <size> with <width> and <height>, and for every <object> a "
            "<name> and a <bndbox> with <xmin> <ymin> <xmax> <ymax>; "
            "remove any <!DOCTYPE> entity declarations",
        )
    dups = _duplicates([r[0] for r in records])
    if dups:
        _fail(
            f"VOC files in '{ann_dir}' describe the same image more than once",
            dups,
            "Keep one annotation file per image",
        )
    seen = sorted({o[0] for r in records for o in r[3]})
    if names is None:
        names = seen
    else:
        unknown = [f"{o[-1]} is '{o[0]}'" for r in records for o in r[3] if o[0] not in names]
        if unknown:
            _fail(
                f"VOC objects in '{ann_dir}' have names that are not among the given names {names}",
                unknown,
                "Add these names to the names, or fix the objects",
            )
    cat_ids = {n: i + 1 for i, n in enumerate(names)}
    imgs: list[dict] = []
    anns: list[dict] = []
    where: list[str] = []
    for image_id, (file_name, w_img, h_img, objects, _) in enumerate(sorted(records, key=lambda r: r[0]), 1):
        imgs.append({"id": image_id, "file_name": file_name, "width": w_img, "height": h_img})
        for name, difficult, x0, y0, x1, y1, loc in objects:
            # VOC counts pixels from 1 and includes both edges
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[name],
                    "bbox": [x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1],
                    "area": None,
                    "iscrowd": difficult,
                }
            )
            where.append(loc)
    cats = [{"id": i, "name": n} for n, i in cat_ids.items()]
    return {"images": imgs, "annotations": anns, "categories": cats}, images, where


def _xml_number(text: str | None) -> float | None:
    try:
        v = float(text.strip()) if text is not None else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) else None
