"""Shared fixtures: the shapes validation images, the default detector and its bundles."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from edgecv.data import shapes
from edgecv.runtimes import registry

warnings.filterwarnings("ignore", module="torch")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Calibration cache of this test session only: no hit from an earlier run."""
    import os

    old = os.environ.get("EDGECV_CACHE")
    os.environ["EDGECV_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("EDGECV_CACHE", None)
    else:
        os.environ["EDGECV_CACHE"] = old


#: set to 1 to run the nightly lane too (docs/testing.md)
NIGHTLY_ENV = "EDGECV_NIGHTLY"


def pytest_collection_modifyitems(config, items):
    import importlib.util
    import os

    if os.environ.get(NIGHTLY_ENV) != "1":
        for item in items:
            if item.get_closest_marker("nightly") is not None:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"nightly lane (a full-size model a lighter test covers in CI): {NIGHTLY_ENV}=1 runs it"
                    )
                )
    marked = [item for item in items if item.get_closest_marker("tensorrt") is not None]
    if not marked:
        return
    if importlib.util.find_spec("tensorrt") is None:
        reason = "needs TensorRT and an NVIDIA GPU; TensorRT is not installed here"
    else:
        from edgecv.runtimes.tensorrt.plans import can_build_here

        why = can_build_here()
        reason = f"needs TensorRT and an NVIDIA GPU: {why}" if why else None
    if reason:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def val_set(tmp_path_factory) -> tuple[Path, Path]:
    """24 images of the shapes validation split, COCO json."""
    return shapes.write_coco(tmp_path_factory.mktemp("shapes"), "val", 24)


@pytest.fixture(scope="session")
def val_images(val_set) -> list:
    from edgecv.images import read_image

    return [read_image(p) for p in sorted(val_set[0].glob("*.png"))]


@pytest.fixture(scope="session")
def default_src():
    pytest.importorskip("torch")
    from edgecv.export import default_source

    return default_source()


EXPORT_TARGETS = [k for k in ("onnxruntime", "openvino") if registry.is_available(k)]


@pytest.fixture(scope="session")
def default_bundles(default_src, tmp_path_factory) -> dict[str, Path]:
    """The default detector exported once to every CPU target available here."""
    from edgecv.export import export

    out = tmp_path_factory.mktemp("bundles")
    return {t: export(default_src, t, out_dir=out) for t in EXPORT_TARGETS}


#: calibration images of the default detector's INT8 exports
CALIB_SIZE = 64


@pytest.fixture(scope="session")
def calib_images() -> list:
    """The default detector's calibration images: the training split, never the validation split."""
    return [shapes.render(shapes.SPLIT_SEEDS["train"], i).image for i in range(CALIB_SIZE)]


@pytest.fixture(scope="session")
def default_int8_bundle(default_src, calib_images, tmp_path_factory) -> Path:
    """The default detector's onnxruntime INT8 bundle, calibrated on 16 images, exported once.
    Shared by every test that asks for it: read it, never change it."""
    pytest.importorskip("onnxruntime")
    from edgecv.export import export

    return export(
        default_src,
        "onnxruntime",
        precision="int8",
        out_dir=tmp_path_factory.mktemp("int8"),
        calib=calib_images,
        calib_size=16,
    )


@pytest.fixture(scope="session")
def default_tensorrt_graph(default_src, tmp_path_factory) -> Path:
    """The default detector exported for tensorrt at 320, exported once (where TensorRT is missing:
    the graph and its settings, no plan). Shared: copy it before changing it."""
    from edgecv.export import export

    return export(default_src, "tensorrt", out_dir=tmp_path_factory.mktemp("trt"), imgsz=320)


@pytest.fixture(scope="session")
def make_detector(default_src, default_bundles):
    """key -> a detector of the default model on that backend (``torch``: the reference)."""
    from edgecv import load
    from edgecv.export import reference

    def make(key: str, **options):
        if key == "torch":
            return reference(default_src, detector_options=options)
        return load(default_bundles[key], **options)

    return make


# --- classification and segmentation ---------------------------------------------------------------

TASK_FIXTURES = ROOT / "tests" / "fixtures" / "tasks"
#: the example networks' input sizes (examples/train_shapes_tasks.py)
TASK_SIZES = {"classify": 64, "segment": 128}


def example_model(task: str):
    """The trained example network of ``task`` (examples/shapes_models.py, a user's own module),
    with the weights examples/train_shapes_tasks.py wrote."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("shapes_models", ROOT / "examples" / "shapes_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if task == "classify":
        net, weights = mod.ShapesNet(len(shapes.CLASSES)), "shapes_classifier.pt"
    else:
        net, weights = mod.UNet(len(shapes.SEG_CLASSES)), "shapes_unet.pt"
    net.load_state_dict(torch.load(TASK_FIXTURES / weights, map_location="cpu", weights_only=True))
    return net.eval()


def task_names(task: str) -> list[str]:
    return list(shapes.CLASSES if task == "classify" else shapes.SEG_CLASSES)


@pytest.fixture(scope="session")
def cls_set(tmp_path_factory):
    """240 object crops of the shapes validation split, one folder per class."""
    return shapes.write_classification(tmp_path_factory.mktemp("cls"), "val", 240)


@pytest.fixture(scope="session")
def seg_set(tmp_path_factory):
    """40 images of the shapes validation split with class masks."""
    return shapes.write_segmentation(tmp_path_factory.mktemp("seg"), "val", 40)


@pytest.fixture(scope="session")
def task_calib(tmp_path_factory):
    """INT8 calibration data of each task, from the shapes calibration split."""
    root = tmp_path_factory.mktemp("taskcalib")
    return {
        "classify": shapes.write_classification(root / "classify", "calib", 200),
        "segment": shapes.write_segmentation(root / "segment", "calib", 60),
    }


@pytest.fixture(scope="session")
def task_bundles(tmp_path_factory, task_calib):
    """(task, target, precision) -> the example network's bundle, exported once; made on first use."""
    from edgecv.export import export

    out = tmp_path_factory.mktemp("taskbundles")
    made: dict = {}

    def get(task: str, target: str, precision: str = "fp32"):
        key = (task, target, precision)
        if key not in made:
            made[key] = export(
                example_model(task),
                target,
                task=task,
                names=task_names(task),
                imgsz=TASK_SIZES[task],
                precision=precision,
                out_dir=out,
                name=f"{task}-{target}-{precision}",
                calib=task_calib[task] if precision == "int8" else None,
            )
        return made[key]

    return get


@pytest.fixture(scope="session")
def task_reference():
    """task -> the torch reference of the example network (the graph every bundle is compared with)."""
    from edgecv.export import reference

    made: dict = {}

    def get(task: str, **options):
        if options:
            return reference(
                example_model(task), task=task, names=task_names(task), imgsz=TASK_SIZES[task], detector_options=options
            )
        if task not in made:
            made[task] = reference(example_model(task), task=task, names=task_names(task), imgsz=TASK_SIZES[task])
        return made[task]

    return get
