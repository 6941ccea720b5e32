"""Trying to break edgecv: every kind of frame a camera pipeline produces, backends that fail,
8 threads on one detector, long runs, exports killed part-way and run concurrently.

The figures these tests produce are recorded in docs/reliability.md
(``python -m pytest tests/test_reliability.py -s`` prints them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from edgecv import InferenceError, InvalidImageError, load
from edgecv.bundle import MANIFEST_NAME, Bundle
from edgecv.runtimes import available

from .conftest import EXPORT_TARGETS

BACKENDS = available()
ROOT = Path(__file__).resolve().parents[1]


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.setflags(write=False)
    return a


def _check_boxes(d, h: int, w: int) -> None:
    assert np.isfinite(d.xyxy).all() and np.isfinite(d.scores).all()
    assert (d.xyxy[:, 0] >= 0).all() and (d.xyxy[:, 1] >= 0).all()
    assert (d.xyxy[:, 2] <= w).all() and (d.xyxy[:, 3] <= h).all()
    assert (d.xyxy[:, 0] <= d.xyxy[:, 2]).all() and (d.xyxy[:, 1] <= d.xyxy[:, 3]).all()


# --- inputs ---------------------------------------------------------------------------------------


def handled_inputs(base: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """kind -> (frame, the contiguous BGR frame it must give the same result as; None: no reference)."""
    big = np.ascontiguousarray(np.tile(base, (12, 12, 1)))  # ~3.6k x 4.8k
    return {
        "uint8 HxWx3 BGR": (base, base),
        "uint8 HxWx3 RGB (color='rgb')": (np.ascontiguousarray(base[:, :, ::-1]), base),
        "grey HxW": (base[:, :, 1].copy(), None),
        "grey HxWx1": (base[:, :, 1:2].copy(), None),
        "HxWx4 (alpha dropped)": (np.dstack([base, np.full(base.shape[:2], 7, np.uint8)]), base),
        "non-contiguous view (every 2nd pixel)": (base[::2, ::2], np.ascontiguousarray(base[::2, ::2])),
        "negative strides (flipped view)": (base[::-1, ::-1], np.ascontiguousarray(base[::-1, ::-1])),
        "Fortran order": (np.asfortranarray(base), base),
        "read-only array": (_readonly(base), base),
        "smallest frame, 8x8": (np.ascontiguousarray(base[:8, :8]), None),
        "8 x 4000 strip": (np.ascontiguousarray(np.tile(base[:8], (1, 13, 1))[:, :4000]), None),
        "4000 x 8 strip": (np.ascontiguousarray(np.tile(base[:, :8], (13, 1, 1))[:4000]), None),
        "large frame": (big, None),
    }


REFUSED = {
    "1x1": (np.zeros((1, 1, 3), np.uint8), "1x1 pixels"),
    "0x0": (np.zeros((0, 0, 3), np.uint8), "0x0 pixels"),
    "uint16": (np.zeros((64, 64, 3), np.uint16), "dtype is uint16"),
    "float32 0..1": (np.zeros((64, 64, 3), np.float32), "dtype is float32"),
    "float64": (np.zeros((64, 64, 3), np.float64), "dtype is float64"),
    "int8": (np.zeros((64, 64, 3), np.int8), "dtype is int8"),
    "bool": (np.zeros((64, 64, 3), bool), "dtype is bool"),
    "5 channels": (np.zeros((64, 64, 5), np.uint8), r"shape \(64, 64, 5\)"),
    "a batch array": (np.zeros((2, 64, 64, 3), np.uint8), "predict"),
    "0-d array": (np.array(3, np.uint8), r"shape \(\)"),
    "object array": (np.array([[None]], object), "dtype is object"),
    "a list of numbers": ([[1, 2], [3, 4]], "list"),
    "None": (None, "NoneType"),
    "too large": (np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8), (40000, 8, 3), (0, 0, 1)), "40000 pixels"),
}


@pytest.fixture(scope="module", params=BACKENDS)
def det(request, make_detector):
    d = make_detector(request.param)
    yield d
    d.close()


def test_every_frame_kind_is_handled_or_refused_by_name(det, val_images, capsys):
    base = val_images[0]
    pristine = base.copy()
    tried = 0
    for kind, (frame, ref) in handled_inputs(base).items():
        color = "rgb" if "color='rgb'" in kind else "bgr"
        d = det(frame, conf=0.05, color=color)
        _check_boxes(d, *frame.shape[:2])
        if ref is not None:
            want = det(ref, conf=0.05)
            assert len(d) == len(want) and np.allclose(d.xyxy, want.xyxy, atol=1e-3), kind
        tried += 1
    assert np.array_equal(base, pristine), "a frame is never modified in place"
    for frame, msg in REFUSED.values():
        with pytest.raises(InvalidImageError, match=msg):
            det(frame)
        tried += 1
    with capsys.disabled():
        print(f"\n[reliability] {det.key}: {tried} frame kinds tried ({len(REFUSED)} refused by name)")


def test_boxes_are_clipped_finite_and_ordered_on_many_frames(det, val_images):
    frames = [*val_images[:12], _frame(17, 900, 1), _frame(900, 17, 2), _frame(8, 8, 3)]
    for img in frames:  # conf 0.001: every candidate the graph keeps, in the padding and at the edges too
        _check_boxes(det(img, conf=0.001), *img.shape[:2])


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [RuntimeError("simulated device fault: CUDA error 700"), MemoryError("cannot allocate")]
)
def test_a_backend_failure_is_an_edgecv_error_and_the_detector_stays_usable(det, val_images, monkeypatch, fault):
    real = det.infer_impl

    def failing(batch, extra=None):
        raise fault

    monkeypatch.setattr(det, "infer_impl", failing)
    with pytest.raises(InferenceError, match=str(fault.args[0]).split(":")[0]) as e:
        det(val_images[0])
    assert e.value.__cause__ is fault and det.key in str(e.value)
    monkeypatch.setattr(det, "infer_impl", real)
    assert len(det(val_images[0])) > 0


# --- threads --------------------------------------------------------------------------------------


def test_eight_threads_on_one_detector_each_get_their_own_results(det, val_images, capsys):
    frames = val_images[:16]
    want = [det(f) for f in frames]
    errors: list[BaseException] = []
    calls = [0] * 8

    def worker(t: int) -> None:
        try:
            for k in range(12):
                i = (t * 5 + k) % len(frames)
                got = det(frames[i])
                assert len(got) == len(want[i]) and np.allclose(got.xyxy, want[i].xyxy, atol=1e-3), (t, i)
                calls[t] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[0]
    assert sum(calls) == 96
    with capsys.disabled():
        print(
            f"\n[reliability] {det.key}: 8 threads x 12 calls, every result its own frame's "
            f"({'parallel calls' if det.thread_safe else 'calls serialised by a lock'})"
        )


# --- long runs ------------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _os_threads() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


#: inferences per soak (set EDGECV_SOAK_CALLS to soak longer, or shorter), and load/close cycles
#: (EDGECV_SOAK_CYCLES); the time bound grows with the calls past the default
SOAK_CALLS = int(os.environ.get("EDGECV_SOAK_CALLS", "20000"))
SOAK_CYCLES = int(os.environ.get("EDGECV_SOAK_CYCLES", "30"))
SOAK_SECONDS = 240 * max(1.0, SOAK_CALLS / 20_000)


@pytest.fixture(scope="module")
def small_bundles(default_src, tmp_path_factory):
    """The default detector at 64x64: the soak measures the runtime, not the network."""
    from edgecv.export import export

    out = tmp_path_factory.mktemp("small")
    return {t: export(default_src, t, out_dir=out, imgsz=64) for t in EXPORT_TARGETS}


SOAK_CHILD = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    from edgecv import EdgecvError, load
    from tests.test_reliability import _fds, _frame, _os_threads, _rss_mb

    bundle, calls, bound = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    frames = [_frame(48 + i, 64, i) for i in range(16)]
    with load(bundle, threads=1) as d:  # the backend's process-wide state, made once
        d(frames[0])
    fds0, threads0 = _fds(), _os_threads()
    det = load(bundle, threads=1)
    for i in range(500):  # warm-up: allocator pools, the backend's caches
        det(frames[i % 16])
    rss = [_rss_mb()]
    t0 = time.perf_counter()
    for i in range(calls):
        det(frames[i % 16])
        if (i + 1) % max(1, calls // 8) == 0:
            rss.append(_rss_mb())
        if time.perf_counter() - t0 > bound:  # bounded in time on a slow machine
            break
    n, seconds = i + 1, time.perf_counter() - t0
    rss.append(_rss_mb())
    det.close()
    try:
        det(frames[0])
        refused = ""
    except EdgecvError as e:
        refused = str(e)
    print(json.dumps({"n": n, "seconds": seconds, "rss": rss, "fds": [fds0, _fds()],
                      "threads": [threads0, _os_threads()], "refused": refused}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads memory and descriptors from /proc")
@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_soak_memory_threads_and_descriptors_stay_flat(target, small_bundles, capsys):
    """In a process of its own, as in a device app: the test process's other work (earlier
    tests' garbage, their threads) would otherwise move its resident memory by megabytes."""
    proc = subprocess.run(
        [sys.executable, "-c", SOAK_CHILD, str(small_bundles[target]), str(SOAK_CALLS), str(SOAK_SECONDS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=SOAK_SECONDS + 360,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    rss, n = r["rss"], r["n"]
    with capsys.disabled():
        print(
            f"\n[reliability] soak {target}: {n} inferences in {r['seconds']:.0f} s, RSS {rss[0]:.1f} -> "
            f"{rss[-1]:.1f} MB after warm-up ({rss[-1] - rss[0]:+.2f} MB; along the way "
            f"{' '.join(f'{x - rss[0]:+.1f}' for x in rss[1:-1])}); fds {r['fds'][0]} -> {r['fds'][1]} after close; "
            f"OS threads {r['threads'][0]} -> {r['threads'][1]}"
        )
    assert n >= min(5000, SOAK_CALLS), f"only {n} inferences in the time bound"
    assert rss[-1] - rss[0] < 5.0
    # a leak grows with the calls: the second half must not grow by more than the first half's settling
    half = len(rss) // 2
    assert rss[-1] - rss[half] < 2.0, rss
    assert "closed" in r["refused"], r["refused"]
    fds, threads = r["fds"], r["threads"]
    assert fds[1] <= fds[0] and threads[1] <= threads[0] + 1  # +1: a pool thread the backend may keep for reuse


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads descriptors and threads from /proc")
@pytest.mark.parametrize("target", EXPORT_TARGETS)
def test_load_close_cycles_leak_nothing(target, small_bundles, capsys):
    frame = _frame(64, 64)
    with load(small_bundles[target]) as d:
        d(frame)
    fds0, threads0, rss0 = _fds(), _os_threads(), _rss_mb()
    for _ in range(SOAK_CYCLES):
        with load(small_bundles[target]) as d:
            d(frame)
    fds1, threads1, rss1 = _fds(), _os_threads(), _rss_mb()
    with capsys.disabled():
        print(
            f"\n[reliability] {target}: {SOAK_CYCLES} load/close cycles: fds {fds0} -> {fds1}, OS threads {threads0} -> "
            f"{threads1}, RSS {rss1 - rss0:+.1f} MB"
        )
    assert fds1 <= fds0 and threads1 <= threads0 + 1 and rss1 - rss0 < 20


# --- exports killed part-way, and run concurrently -----------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys
    import edgecv.bundle as B
    from edgecv.export import export
    stage, dest, conf = sys.argv[1], sys.argv[2], float(sys.argv[3])

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if stage == "before-swap":
        B._exchange = lambda a, b: die()
    elif stage == "after-swap":
        real = B._exchange
        def swap(a, b):
            real(a, b)
            die()
        B._exchange = swap

    def say(msg):
        print(msg, flush=True)
        if stage != "none" and stage in msg:
            die()

    export(None, "onnxruntime", out_dir=os.path.dirname(dest), name=os.path.basename(dest), imgsz=64, conf=conf,
           progress=say)
""")


def _export_child(stage: str, dest: Path, conf: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, stage, str(dest), str(conf)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def _conf_of(dest: Path) -> float:
    return Bundle.open(dest).manifest["output"]["nms"]["score_threshold"]  # verifies every file


@pytest.mark.slow
def test_an_export_killed_at_any_stage_leaves_the_previous_bundle_or_the_new_one(tmp_path, capsys):
    dest = tmp_path / "b"
    assert _export_child("none", dest, 0.001).returncode == 0
    stages = ["exporting the graph", "building the onnxruntime model", "before-swap", "after-swap"]
    outcome = {}
    for k, stage in enumerate(stages):
        before = _conf_of(dest)
        new = 0.002 + 0.001 * k
        r = _export_child(stage, dest, new)
        assert r.returncode == -signal.SIGKILL, (stage, r.returncode, r.stderr[-2000:])
        after = _conf_of(dest)  # a whole, verified bundle
        assert after in (before, new), stage
        outcome[stage] = "new" if after == new else "previous"
        assert all((dest / f["path"]).is_file() for f in Bundle.open(dest).manifest["files"])
    assert outcome["exporting the graph"] == outcome["building the onnxruntime model"] == "previous"
    assert outcome["before-swap"] == "previous" and outcome["after-swap"] == "new"
    litter = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert litter, "the killed exports left their staging directories"
    assert _export_child("none", dest, 0.5).returncode == 0  # the next export clears what dead ones left
    assert _conf_of(dest) == 0.5 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with capsys.disabled():
        print(
            f"\n[reliability] {len(stages)} exports killed (SIGKILL) at: "
            + ", ".join(f"{s} -> {o} bundle" for s, o in outcome.items())
        )


@pytest.mark.slow
def test_a_swap_cut_between_its_two_renames_is_repaired(tmp_path):
    """Where the atomic exchange is missing, a kill between the two renames leaves no bundle at
    dest for a moment; the next export (or clean_stale) puts the previous one back."""
    from edgecv.bundle import clean_stale

    dest = tmp_path / "b"
    assert _export_child("none", dest, 0.001).returncode == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".b.old-{int(dead.stdout)}-1"
    os.replace(dest, orphan)  # the state after the first rename, its process gone
    assert not dest.exists()
    assert clean_stale(dest) == [orphan]
    assert _conf_of(dest) == 0.001


@pytest.mark.slow
def test_concurrent_exports_to_one_output_leave_one_whole_bundle(tmp_path, capsys):
    dest = tmp_path / "b"
    confs = [0.01, 0.02, 0.03]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, "none", str(dest), str(c)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for c in confs
    ]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 0, 0], [p.stderr.read()[-1000:] for p in procs]
    assert _conf_of(dest) in confs  # one of them, whole and verified
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with capsys.disabled():
        print("\n[reliability] 3 concurrent exports to one output: all exit 0, the bundle is one of them, verified")


def test_a_manifest_is_written_whole_when_validation_is_recorded_concurrently(default_bundles, tmp_path):
    import shutil

    from edgecv.bundle import write_validation

    b = tmp_path / "b"
    shutil.copytree(default_bundles["onnxruntime"], b)
    threads = [threading.Thread(target=write_validation, args=(b, {"run": i, "pad": "x" * 5000})) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads((b / MANIFEST_NAME).read_text())["validation"]["run"] in range(8)
    assert not [p for p in b.iterdir() if p.name.startswith(".")]


# --- supply chain ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "versions, text",
    [
        ({"torch": "2.13.0", "torchvision": "0.28.0"}, "torchvision::nms does not exist"),
        ({"torch": "2.14.1", "torchvision": "0.28.0"}, "not built for torch 2.14.1"),
        ({"opencv-python": "4.10.0.84", "opencv-python-headless": "5.0.0.93"}, "both provide cv2 and differ"),
        ({"onnxruntime": "1.17.3", "numpy": "2.1.0"}, "built for numpy 1"),
        ({"openvino": "2024.6.0", "nncf": "3.0.0"}, "needs OpenVINO 2025"),
    ],
)
def test_known_bad_combinations_are_flagged(versions, text):
    from edgecv.envcheck import problems

    (line,) = problems(versions)
    assert text in line and "pip install" in line
    good = {
        "torch": "2.14.1+cu130",
        "torchvision": "0.29.1",
        "opencv-python": "5.0.0.93",
        "opencv-python-headless": "5.0.0.93",
        "onnxruntime": "1.32.0",
        "numpy": "2.4.6",
        "openvino": "2026.4.1",
        "nncf": "3.4.0",
    }
    assert problems(good) == []
    assert "outside the range" in problems({"numpy": "3.0.0"}, {"numpy": ">=1.24,<3"})[0]


def test_this_installation_has_no_known_problem_and_env_says_so(capsys):
    from edgecv.cli import main
    from edgecv.envcheck import installed, own_ranges, problems

    assert problems(installed(), own_ranges()) == []
    assert main(["env", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == []


def test_every_dependency_is_pinned_to_a_compatible_range():
    import re

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    loose = [
        r
        for r in reqs
        if not r.startswith("edgecv[") and not re.search(r"(<|==)", r) and not r.startswith("setuptools")
    ]
    assert loose == [], f"give these an upper bound: {loose}"
