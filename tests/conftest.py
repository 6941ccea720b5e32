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


def pytest_collection_modifyitems(config, items):
    import importlib.util

    marked = [item for item in items if item.get_closest_marker("tensorrt") is not None]
    if not marked:
        return
    if importlib.util.find_spec("tensorrt") is None:
        reason = "needs TensorRT and an NVIDIA GPU; TensorRT is not installed here"
    else:
        from edgecv.runtimes.engines import can_build_here

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
