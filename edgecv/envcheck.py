"""Installed versions, and the combinations of them known to break edgecv (``edgecv env``).

:func:`problems` is a pure function of a name -> version mapping, so each rule is tested
with the versions that trigger it.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, requires, version

DISTS = (
    "numpy",
    "opencv-python-headless",
    "opencv-python",
    "onnxruntime",
    "openvino",
    "nncf",
    "onnx",
    "onnxslim",
    "torch",
    "torchvision",
    "ultralytics",
    "faster-coco-eval",
    "defusedxml",
    "cuda-python",
    "tensorrt",
)


#: what the exporter needs of torch and torchvision: torch.onnx.export(..., dynamo=False) arrived in
#: torch 2.5, and torch 2.N pairs with torchvision 0.(N+15). The ``[export]`` extra pins the tested pair;
#: ``[export-core]`` leaves torch to the user's own environment within this range.
TORCH_RANGE = {"torch": ">=2.5,<3", "torchvision": ">=0.20,<1"}

#: torch/torchvision pairs the whole test suite ran with, and where
TESTED_PAIRS = {("2.14.1", "0.29.1"): "CI: .ci/run with the [export] extra's pins"}


def torch_status(v: dict[str, str | None]) -> str:
    """One line on the installed torch/torchvision pair: tested, in the supported range, or neither."""
    torch, tv = v.get("torch"), v.get("torchvision")
    if not torch:
        return "torch missing: the exporter needs it (pip install 'edgecv[export]', or your own torch>=2.5)"
    pair = (torch.split("+")[0], (tv or "").split("+")[0])
    tested = ", ".join(f"{t}+{w}" for t, w in TESTED_PAIRS)
    if pair in TESTED_PAIRS:
        return f"torch {torch} + torchvision {tv}: a tested pair ({TESTED_PAIRS[pair]})"
    if tv and all(_satisfies(have, TORCH_RANGE[d]) for d, have in (("torch", torch), ("torchvision", tv))):
        return f"torch {torch} + torchvision {tv}: in the supported range, not a tested pair (tested: {tested})"
    return (
        f"torch {torch} + torchvision {tv or 'missing'}: outside the supported range "
        f"(torch{TORCH_RANGE['torch']}, torchvision{TORCH_RANGE['torchvision']}; tested: {tested})"
    )


def require_torch() -> None:
    """Refuse an exporter import under a torch or torchvision outside :data:`TORCH_RANGE`."""
    v = {d: _installed(d) for d in TORCH_RANGE}
    bad = [f"{d} {have}" for d, have in v.items() if have and not _satisfies(have, TORCH_RANGE[d])]
    if bad:
        from .errors import EdgecvError

        raise EdgecvError(
            f"the exporter needs torch{TORCH_RANGE['torch']} and torchvision{TORCH_RANGE['torchvision']}, "
            f"found {' and '.join(bad)}: pip install 'edgecv[export]' (the tested pair), or upgrade your own "
            "torch and torchvision together (torch 2.N with torchvision 0.(N+15))"
        )


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def installed() -> dict[str, str | None]:
    return {d: _installed(d) for d in DISTS}


def _v(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    return tuple(int(m) for m in re.findall(r"\d+", text.split("+")[0])[:3])


def problems(v: dict[str, str | None], ranges: dict[str, str] | None = None) -> list[str]:
    """What is wrong with the installed versions ``v``: each line says what and what to do.

    Args:
        ranges: dist -> pip specifier (edgecv's own requirements); versions outside are flagged.
    """
    out = []
    torch, tv = _v(v.get("torch")), _v(v.get("torchvision"))
    if torch[:3] == (2, 13, 0) and tv:
        out.append(
            "torch 2.13.0 (the CPU build) breaks torchvision ('torchvision::nms does not exist'): "
            "pip install torch==2.14.1 torchvision==0.29.1"
        )
    if len(torch) >= 2 and len(tv) >= 2 and torch[0] == 2 and tv[0] == 0 and tv[1] != torch[1] + 15:
        out.append(
            f"torchvision {v['torchvision']} is not built for torch {v['torch']} (torch 2.N pairs with "
            "torchvision 0.(N+15)): pip install torch==2.14.1 torchvision==0.29.1"
        )
    head, full = v.get("opencv-python-headless"), v.get("opencv-python")
    if head and full and head != full:
        out.append(
            f"opencv-python {full} and opencv-python-headless {head} both provide cv2 and differ: whichever "
            f"was installed last wins; install the same version of both (pip install opencv-python=={head})"
        )
    ort, np_ = _v(v.get("onnxruntime")), _v(v.get("numpy"))
    if ort and np_ and np_[0] >= 2 and ort < (1, 19):
        out.append(
            f"onnxruntime {v['onnxruntime']} was built for numpy 1 and fails with numpy {v['numpy']}: "
            "pip install 'onnxruntime>=1.19'"
        )
    ov, nncf = _v(v.get("openvino")), _v(v.get("nncf"))
    if ov and nncf and nncf[0] >= 3 and ov < (2025, 0):
        out.append(f"nncf {v['nncf']} needs OpenVINO 2025 or later (found {v['openvino']}): pip install -U openvino")
    for dist, spec in (ranges or {}).items():
        have = v.get(dist)
        if have and not _satisfies(have, spec):
            out.append(f"{dist} {have} is outside the range edgecv is tested with ({spec}): pip install '{dist}{spec}'")
    return out


def _satisfies(have: str, spec: str) -> bool:
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError:  # pragma: no cover - packaging comes with pip and setuptools
        return True
    try:
        return Version(have) in SpecifierSet(spec)
    except Exception:  # an unparsable local version: do not guess
        return True


def own_ranges() -> dict[str, str]:
    """edgecv's requirements (all extras) as dist -> specifier, from its installed metadata.

    torch and torchvision get the supported range (:data:`TORCH_RANGE`) rather than the
    ``[export]`` extra's exact pins: a user's own torch within the range is not a problem.
    """
    out: dict[str, str] = {}
    try:
        reqs = requires("edgecv") or []
    except PackageNotFoundError:
        return out
    for r in reqs:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*([<>=!~][^;]*)?", r)
        if m and m.group(3) and m.group(1) != "edgecv":
            out[m.group(1).lower()] = m.group(3).strip()
    return {**out, **TORCH_RANGE} if out else out
