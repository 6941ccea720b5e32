"""Tracking: the Tracker wrappers over the trackers package, the supervision round trip,
track() over a generated moving-shapes sequence, and edgecv track end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgecv import Detections
from edgecv.cli import main
from edgecv.errors import BackendUnavailableError, EdgecvError
from edgecv.tracking import TRACKERS, JsonlWriter, MotWriter, Tracker, make_tracker, track

from .conftest import ROOT

pytest.importorskip("trackers")
sv = pytest.importorskip("supervision")

NAMES = ("a", "b")
FRAMES = 30


def box_at(x: float, y: float, side: float = 30) -> list[float]:
    return [x, y, x + side, y + side]


def run(tracker: Tracker, per_frame: list[Detections]) -> list[Detections]:
    return [tracker.update(d) for d in per_frame]


@pytest.mark.parametrize("name", list(TRACKERS))
def test_ids_are_stable_on_a_straight_moving_object(name):
    frames = [Detections([box_at(10 + 4 * i, 50)], [0.9], [0], NAMES) for i in range(120)]
    out = run(make_tracker(name), frames)
    ids = [d.tracker_ids.tolist() for d in out]
    first = next(i for i, t in enumerate(ids) if t)
    assert first <= 3  # confirmed within the tracker's minimum_consecutive_frames
    assert all(t == [1] for t in ids[first:]), ids
    assert all(d.tracker_ids.dtype == np.int64 for d in out)
    np.testing.assert_allclose(out[-1].xyxy, frames[-1].xyxy)  # the detection's box, not a prediction


@pytest.mark.parametrize("name", list(TRACKERS))
def test_a_crossing_well_apart_in_iou_swaps_no_ids(name):
    """Two objects pass each other in x, 10 px apart in y: their boxes never overlap (IoU 0)."""
    frames = []
    for i in range(80):
        # listed in alternating order: association, not input order, must keep the ids
        rows = [(box_at(20 + 5 * i, 40), 0.9, 0), (box_at(420 - 5 * i, 80), 0.85, 1)]
        rows = rows if i % 2 else rows[::-1]
        frames.append(Detections([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], NAMES))
    out = run(make_tracker(name), frames)
    by_lane: dict[int, set[int]] = {40: set(), 80: set()}
    for d in out:
        for (_, y1, _, _), tid in zip(d.xyxy.tolist(), d.tracker_ids.tolist()):
            by_lane[round(y1)].add(tid)
    assert len(by_lane[40]) == 1 and len(by_lane[80]) == 1, by_lane
    assert by_lane[40] != by_lane[80]
    assert sum(len(d) == 2 for d in out) >= 75  # both tracked through the crossing


def test_reset_starts_ids_again():
    t = make_tracker("sort", minimum_consecutive_frames=1)
    first = run(t, [Detections([box_at(4 * i, 0)], [0.9], [0], NAMES) for i in range(5)])
    t.reset()
    again = run(t, [Detections([box_at(300, 4 * i)], [0.9], [1], NAMES) for i in range(5)])
    assert first[-1].tracker_ids.tolist() == again[-1].tracker_ids.tolist() == [1]


def test_empty_frames_give_empty_tracked_detections():
    t = make_tracker()
    out = t.update(Detections.empty(NAMES))
    assert len(out) == 0 and out.tracker_ids is not None and out.names == NAMES


def full_detections(n=5, size=(24, 32)) -> Detections:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 20, (n, 2)).astype(np.float32)
    return Detections(
        np.concatenate([xy, xy + rng.uniform(1, 9, (n, 2))], 1),
        rng.uniform(0, 1, n),
        rng.integers(0, 2, n),
        NAMES,
        masks=rng.uniform(size=(n, *size)) > 0.5,
        tracker_ids=rng.integers(1, 1000, n),
    )


@pytest.mark.parametrize(
    "d", [full_detections(), full_detections(1), Detections.empty(NAMES)], ids=["five", "one", "empty"]
)
def test_supervision_round_trip_is_lossless(d):
    s = d.to_supervision()
    assert isinstance(s, sv.Detections) and len(s) == len(d)
    assert s.data["class_name"].tolist() == d.labels
    back = Detections.from_supervision(s, NAMES)
    for field in ("xyxy", "scores", "class_ids", "masks", "tracker_ids"):
        a, b = getattr(d, field), getattr(back, field)
        if a is None:
            assert b is None, field
        else:
            assert a.dtype == b.dtype and np.array_equal(a, b), field
    assert back.names == d.names


def test_to_supervision_copies_and_from_supervision_fills_a_missing_confidence():
    d = full_detections(3)
    s = d.to_supervision()
    s.xyxy[0, 0] = -1.0  # supervision's arrays are writeable copies
    assert d.xyxy[0, 0] != -1.0
    back = Detections.from_supervision(sv.Detections(xyxy=s.xyxy, class_id=s.class_id), NAMES)
    assert back.scores.tolist() == [1.0, 1.0, 1.0] and back.tracker_ids is None and back.masks is None
    with pytest.raises(ValueError, match="class_id"):
        Detections.from_supervision(sv.Detections(xyxy=s.xyxy), NAMES)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_tracker("deepsort"), "unknown tracker 'deepsort'; choose one of: bytetrack, sort, ocsort"),
        (lambda: make_tracker("sort", lost_frames=3), "no option lost_frames; its options: lost_track_buffer"),
        (lambda: make_tracker("bytetrack", frame_rate=0), "refused its options"),
    ],
)
def test_make_tracker_errors(call, match):
    with pytest.raises(EdgecvError, match=match):
        call()


def test_make_tracker_says_which_extra_when_trackers_is_missing():
    code = (
        "import sys; sys.modules['trackers'] = None\n"  # how Python marks a package as not importable
        "from edgecv.tracking import make_tracker\n"
        "try:\n    make_tracker('sort')\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.startswith(BackendUnavailableError.__name__)
    assert "pip install 'edgecv[track]'" in out.stdout


def test_tracking_imports_no_torch():
    """A device install (a backend's extra plus [track]) tracks without torch."""
    code = (
        "import sys, numpy as np\n"
        "import edgecv.tracking as t\n"
        "from edgecv import Detections\n"
        "before = 'supervision' in sys.modules or 'trackers' in sys.modules\n"
        "tr = t.make_tracker('bytetrack')\n"
        "out = tr.update(Detections([[0, 0, 9, 9]], [0.9], [0], ('a',)))\n"
        "t.draw_tracks(np.zeros((20, 20, 3), np.uint8), out)\n"
        "print(before, sorted(m for m in ('torch', 'torchvision', 'onnx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False []"


def test_writers_read_back(tmp_path):
    from trackers.io.mot import load_mot_file

    from edgecv.video import Frame

    d = Detections([[10, 20, 40, 60], [1.5, 2.5, 3.5, 4.5]], [0.9, 0.4], [1, 0], NAMES, tracker_ids=[7, 2])
    frame = Frame(index=4, image=np.zeros((8, 8, 3), np.uint8), timestamp=0.16, source="x")
    with MotWriter(tmp_path / "t.txt") as w:
        w.write(frame, d)
        w.write(5, d[1])
    with JsonlWriter(tmp_path / "t.jsonl") as j:
        j.write(frame, d)
    mot = load_mot_file(tmp_path / "t.txt")
    assert sorted(mot) == [5, 6]
    assert mot[5].ids.tolist() == [7, 2] and mot[6].ids.tolist() == [2]
    np.testing.assert_allclose(mot[5].boxes[0], [10, 20, 30, 40])
    assert mot[5].classes.tolist() == [2, 1]  # class ids from 1, as MOTChallenge's gt.txt
    line = (tmp_path / "t.txt").read_text().splitlines()[0]
    assert line == "5,7,10.00,20.00,30.00,40.00,0.90000,2,-1,-1"
    rec = json.loads((tmp_path / "t.jsonl").read_text())
    assert rec["frame"] == 4 and [o["tracker_id"] for o in rec["objects"]] == [7, 2]
    with pytest.raises(EdgecvError, match="tracker_ids"), MotWriter(tmp_path / "u.txt") as w:
        w.write(0, Detections.empty(NAMES))


# --- over the default detector -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    from edgecv.data.moving_shapes import write_mot, write_video

    out = tmp_path_factory.mktemp("mot")
    (seq,) = write_mot(out, sequences=1, frames=FRAMES, seed=0)
    return seq, write_video(seq, out / "seq.mp4")


@pytest.fixture(scope="module")
def bundle(default_bundles):
    return default_bundles["onnxruntime"]


def test_track_over_a_moving_shapes_sequence(bundle, sequence):
    import edgecv
    from edgecv.video import open_source

    seq, _ = sequence
    with edgecv.load(bundle) as det:
        results = list(track(det, seq / "img1"))
        with open_source(seq / "img1") as src:
            frames = list(src)
        again = list(track(det, iter(frames), make_tracker("bytetrack")))  # an iterable of Frames
    assert [f.index for f, _ in results] == list(range(FRAMES))
    assert all(d.tracker_ids is not None for _, d in results)
    ids = set(np.concatenate([d.tracker_ids for _, d in results]).tolist())
    assert len(ids) >= 2 and min(ids) == 1
    assert sum(len(d) > 0 for _, d in results) >= FRAMES - 2
    gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",")
    assert len(ids) <= 2 * len(set(gt[:, 1].tolist()))  # ids are kept, not handed out per frame
    assert [d.tracker_ids.tolist() for _, d in again] == [d.tracker_ids.tolist() for _, d in results]


def test_track_stops_early_and_refuses_a_missing_source(bundle, sequence, tmp_path):
    import threading

    import edgecv

    seq, _ = sequence
    with edgecv.load(bundle) as det:
        results = track(det, seq / "img1")
        first = [next(results) for _ in range(3)]
        results.close()  # the reader thread and the source stop with it
        assert [f.index for f, _ in first] == [0, 1, 2]
        assert not any(t.name == "edgecv-track-read" for t in threading.enumerate())
        with pytest.raises(EdgecvError, match="does not exist"):
            next(track(det, tmp_path / "missing.mp4"))


@pytest.mark.slow
def test_cli_track_end_to_end(bundle, sequence, tmp_path, capsys):
    from trackers.io.mot import load_mot_file

    seq, mp4 = sequence
    txt, jsonl, video = tmp_path / "t.txt", tmp_path / "t.jsonl", tmp_path / "t.mp4"
    code = main(
        ["track", str(seq), "--model", str(bundle), "--txt", str(txt), "--jsonl", str(jsonl), "--save", str(video)]
    )
    assert code == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert summary.startswith(f"tracked {FRAMES} frames of {seq}: ") and "0 dropped frames" in summary
    mot = load_mot_file(txt)
    assert set(mot) <= set(range(1, FRAMES + 1)) and len(mot) >= FRAMES - 2
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(FRAMES))
    n_tracks = len({o["tracker_id"] for r in records for o in r["objects"]})
    assert f": {n_tracks} tracks," in summary
    assert sum(len(r["objects"]) for r in records) == sum(len(f.ids) for f in mot.values())
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape[:2] == cv2.imread(str(seq / "img1" / "000001.jpg")).shape[:2]

    assert main(["track", str(mp4), "--model", str(bundle), "--tracker", "ocsort", "--txt", str(txt)]) == 0
    assert capsys.readouterr().out.startswith(f"tracked {FRAMES} frames of {mp4}: ")
    assert len(load_mot_file(txt)) >= FRAMES - 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["{mp4}", "--model", "{tmp}/no-bundle"], "no bundle"),
        (["{tmp}/missing.mp4", "--model", "{bundle}"], "does not exist"),
        (["{mp4}", "--model", "{bundle}", "--save", "{tmp}/out.avi"], "ending in .mp4"),
    ],
)
def test_cli_track_user_errors_exit_2(bundle, sequence, tmp_path, capsys, args, message):
    _, mp4 = sequence
    argv = [a.format(mp4=mp4, tmp=tmp_path, bundle=bundle) for a in args]
    assert main(["track", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_predict_on_a_video(bundle, sequence, tmp_path, capsys):
    _, mp4 = sequence
    out = tmp_path / "drawn.mp4"
    assert main(["predict", str(bundle), str(mp4), "--save", str(out), "--json"]) == 0
    frames = json.loads(capsys.readouterr().out)[str(mp4)]
    assert [f["frame"] for f in frames] == list(range(FRAMES))
    assert sum(len(f["objects"]) for f in frames) > FRAMES
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    cap.release()


def test_edgecv_track_is_the_tracking_pipeline_and_import_edgecv_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, edgecv; assert callable(edgecv.track); "
        "print(sorted(m for m in ('trackers', 'supervision', 'edgecv.tracking') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # nothing of tracking is imported until edgecv.track is called
