"""Tracking accuracy (edgecv.track_eval): its HOTA, MOTA, IDF1 and ID switches equal trackeval's
own file-based MOTChallenge evaluation (and hand-computed values) on hand-made sequences; the
loader refuses malformed sequences naming the file and line; the identical-track-set share; and
the comparison of the default detector's bundles with its source on moving-shapes sequences.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv import track_eval as te
from edgecv.cli import main
from edgecv.errors import DatasetError

LENGTH = 6


def moving(ident: int, x0: float, y0: float, dx: float, frames=range(1, LENGTH + 1), w=20.0, h=16.0, conf=1.0):
    """MOT rows of one object moving ``dx`` pixels a frame to the right."""
    return [[f, ident, x0 + dx * (f - 1), y0, w, h, conf, 1, 1] for f in frames]


def rows(*objects) -> np.ndarray:
    out = [r for o in objects for r in o]
    return np.asarray(out, dtype=np.float64).reshape(-1, 9)


def write_sequence(root: Path, name: str, gt: np.ndarray, length: int = LENGTH) -> Path:
    """A MOTChallenge sequence folder: seqinfo.ini, black frames in img1/, gt/gt.txt."""
    seq = root / name
    (seq / "img1").mkdir(parents=True)
    for i in range(length):
        cv2.imwrite(str(seq / "img1" / f"{i + 1:06d}.jpg"), np.zeros((48, 64, 3), np.uint8))
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={length}\nimWidth=64\nimHeight=48\nimExt=.jpg\n"
    )
    te.write_mot_txt(seq / "gt" / "gt.txt", gt)
    return seq


GT = rows(moving(1, 2, 4, 3), moving(2, 40, 20, -2))  # 12 boxes, 2 objects, 6 frames
IGNORED = rows(moving(9, 5, 30, 0, conf=0))  # conf 0: not a target

#: name -> (tracker rows, hand-computed figures)
CASES = {
    "perfect": (
        rows(moving(10, 2, 4, 3), moving(20, 40, 20, -2)),  # other ids: only their consistency counts
        {"hota": 1.0, "mota": 1.0, "idf1": 1.0, "idsw": 0, "fp": 0, "fn": 0},
    ),
    "id_switch": (
        rows(moving(1, 2, 4, 3, range(1, 4)), moving(3, 2, 4, 3, range(4, 7)), moving(2, 40, 20, -2)),
        {"mota": 1 - 1 / 12, "idf1": (2 * 9) / (2 * 9 + 3 + 3), "idsw": 1, "fp": 0, "fn": 0},
    ),
    "missed_object": (
        rows(moving(1, 2, 4, 3), moving(2, 40, 20, -2, range(1, 4))),
        {"mota": 1 - 3 / 12, "idf1": (2 * 9) / (2 * 9 + 0 + 3), "idsw": 0, "fp": 0, "fn": 3},
    ),
    "false_positive": (
        rows(moving(1, 2, 4, 3), moving(2, 40, 20, -2), moving(7, 30, 2, 0, range(2, 4))),
        {"mota": 1 - 2 / 12, "idf1": (2 * 12) / (2 * 12 + 2 + 0), "idsw": 0, "fp": 2, "fn": 0},
    ),
    "shifted_boxes": (  # IoU between 0.5 and 0.95: HOTA averages over its IoU thresholds
        rows(moving(1, 4, 5, 3), moving(2, 42, 21, -2)),
        {"mota": 1.0, "idsw": 0, "fp": 0, "fn": 0},
    ),
}


def trackeval_files(tmp: Path, gt_root: Path, results: dict[str, np.ndarray], lengths: dict[str, int]) -> dict:
    """trackeval's own MOTChallenge evaluation (its file readers and dataset class, MOT15: no
    class filtering) of result files: per sequence and COMBINED_SEQ, by metric class name."""
    import trackeval

    for name, r in results.items():
        te.write_mot_txt(tmp / "trackers" / "t" / "data" / f"{name}.txt", r)
    quiet = {"PRINT_CONFIG": False}
    evaluator = trackeval.Evaluator(
        {
            **quiet,
            "USE_PARALLEL": False,
            "PRINT_RESULTS": False,
            "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
            "LOG_ON_ERROR": None,
        }
    )
    dataset = trackeval.datasets.MotChallenge2DBox(
        {
            **quiet,
            "GT_FOLDER": str(gt_root),
            "TRACKERS_FOLDER": str(tmp / "trackers"),
            "OUTPUT_FOLDER": str(tmp / "out"),
            "TRACKERS_TO_EVAL": ["t"],
            "BENCHMARK": "MOT15",
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": lengths,
        }
    )
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]
    out, _ = evaluator.evaluate([dataset], metrics)
    return {seq: res["pedestrian"] for seq, res in out["MotChallenge2DBox"]["t"].items()}


def assert_same(ours: dict, theirs: dict) -> None:
    assert ours == pytest.approx(te.summary(theirs), abs=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_metrics_equal_trackevals_file_based_evaluation_and_hand_computed_values(case, tmp_path):
    tracks, expected = CASES[case]
    write_sequence(tmp_path / "gt", case, np.concatenate([GT, IGNORED]))
    dataset = te.load_mot(tmp_path / "gt")
    ours = te.evaluate_sequences(dataset, {case: tracks})
    theirs = trackeval_files(tmp_path, tmp_path / "gt", {case: tracks}, {case: LENGTH})
    assert_same(ours.per_sequence[case], theirs[case])
    assert_same(ours.stats, theirs["COMBINED_SEQ"])
    for key, value in expected.items():
        assert ours.stats[key] == pytest.approx(value), key
    if case == "shifted_boxes":
        assert 0.3 < ours.stats["hota"] < 0.95
    elif case != "perfect":
        assert ours.stats["hota"] < 1.0


def test_an_empty_sequence_counts_for_nothing_and_combines_as_trackeval_does(tmp_path):
    gt_root = tmp_path / "gt"
    write_sequence(gt_root, "empty", rows(), length=4)
    write_sequence(gt_root, "busy", GT)
    dataset = te.load_mot(gt_root)
    assert [s.name for s in dataset.sequences] == ["busy", "empty"]
    tracks = {"busy": CASES["id_switch"][0], "empty": rows()}
    ours = te.evaluate_sequences(dataset, tracks)
    theirs = trackeval_files(tmp_path, gt_root, tracks, {"busy": LENGTH, "empty": 4})
    for name in ("busy", "empty"):
        assert_same(ours.per_sequence[name], theirs[name])
    assert_same(ours.stats, theirs["COMBINED_SEQ"])
    empty = ours.per_sequence["empty"]
    assert (empty["tp"], empty["fp"], empty["fn"], empty["idsw"]) == (0, 0, 0, 0)
    # the empty sequence adds no error: the combined figures are the busy sequence's
    assert ours.stats == pytest.approx(ours.per_sequence["busy"])
    # a tracker that finds nothing on a sequence with objects: every box missed
    none = te.evaluate_sequences(dataset, {"busy": rows(), "empty": rows()})
    assert (none.stats["hota"], none.stats["fn"], none.stats["tp"]) == (0.0, 12, 0)


def test_sequences_combine_as_trackeval_combines_them(tmp_path):
    gt_root = tmp_path / "gt"
    tracks = {}
    for case, (r, _) in CASES.items():
        write_sequence(gt_root, case, GT)
        tracks[case] = r
    ours = te.evaluate_sequences(te.load_mot(gt_root), tracks)
    theirs = trackeval_files(tmp_path, gt_root, tracks, dict.fromkeys(CASES, LENGTH))
    assert_same(ours.stats, theirs["COMBINED_SEQ"])
    # combined is not the mean of the sequences: HOTA's association part is weighted by matches
    assert ours.stats["idsw"] == 1 and ours.stats["fp"] == 2 and ours.stats["fn"] == 3


def test_results_for_every_sequence_and_inside_it(tmp_path):
    write_sequence(tmp_path, "a", GT)
    dataset = te.load_mot(tmp_path / "a")  # one sequence given directly
    assert len(dataset) == 1 and dataset.frames == LENGTH
    with pytest.raises(te.EdgecvError, match=r"no tracker results for sequence\(s\) \['a'\]"):
        te.evaluate_sequences(dataset, {})
    with pytest.raises(te.EdgecvError, match="outside 1..6"):
        te.evaluate_sequences(dataset, {"a": rows(moving(1, 0, 0, 1, range(5, 8)))})
    twice = rows(moving(1, 0, 0, 1), moving(1, 30, 30, 1))
    with pytest.raises(te.EdgecvError, match="one id to two boxes in frame 1"):
        te.evaluate_sequences(dataset, {"a": twice})


def test_read_mot_txt_fills_missing_columns_and_reads_spaces(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("2,5,1,2,3,4\n\n1 7 1.5 2.5 3 4 0.9 2 0.5 -1\n")
    r = te.read_mot_txt(p)
    np.testing.assert_array_equal(r[:, 0], [1, 2])  # sorted by frame
    np.testing.assert_allclose(r[0], [1, 7, 1.5, 2.5, 3, 4, 0.9, 2, 0.5])
    np.testing.assert_allclose(r[1, 6:], [1, -1, 1])  # conf 1, class -1, visibility 1


SEQINFO = "[Sequence]\nname=s\nimDir=img1\nframeRate=30\nseqLength=6\nimWidth=64\nimHeight=48\nimExt=.jpg\n"


@pytest.mark.parametrize(
    "file, text, message",
    [
        ("gt/gt.txt", "1,1,0,0,10,10,1,1,1\n1,2,0,0\n", r"gt\.txt, line 2: 4 fields, a MOT row has at least 6"),
        ("gt/gt.txt", "1,1,0,0,10,10,1,1,1\n2,1,zero,0,10,10,1,1,1\n", r"gt\.txt, line 2: not a number"),
        ("gt/gt.txt", "0,1,0,0,10,10,1,1,1\n", r"gt\.txt, line 1: frame 0 is not a whole number from 1"),
        ("gt/gt.txt", "1,1.5,0,0,10,10,1,1,1\n", r"gt\.txt, line 1: id 1.5 is not a whole number"),
        ("gt/gt.txt", "1,1,0,0,-10,10,1,1,1\n", r"gt\.txt, line 1: negative width or height"),
        ("gt/gt.txt", "1,1,0,0,nan,10,1,1,1\n", r"gt\.txt, line 1: a value is not finite"),
        ("gt/gt.txt", "7,1,0,0,10,10,1,1,1\n", r"gt\.txt: frame 7 is past the sequence's last \(6"),
        ("gt/gt.txt", "1,1,0,0,10,10,1,1,1\n1,1,5,5,10,10,1,1,1\n", r"gt\.txt: id 1 appears twice in frame 1"),
        (
            "seqinfo.ini",
            SEQINFO.replace("seqLength=6", "seqLength=six"),
            r"seqinfo\.ini, line 5: seqLength = 'six' is not an integer",
        ),
        ("seqinfo.ini", SEQINFO.replace("seqLength=6\n", ""), r"seqinfo\.ini: \[Sequence\] has no seqLength"),
        (
            "seqinfo.ini",
            SEQINFO.replace("seqLength=6", "seqLength=7"),
            r"seqinfo\.ini: seqLength is 7 but .*img1 holds 6 images",
        ),
        (
            "seqinfo.ini",
            SEQINFO.replace("frameRate=30", "frameRate=-1"),
            r"seqinfo\.ini, line 4: frameRate must be positive",
        ),
        ("seqinfo.ini", SEQINFO.replace("[Sequence]", "[Seq]"), r"seqinfo\.ini has no \[Sequence\] section"),
        ("seqinfo.ini", "seqLength=6\n", r"seqinfo\.ini, line 1: a value before the \[Sequence\] header"),
        (
            "seqinfo.ini",
            SEQINFO + "seqLength=6\n",
            r"seqinfo\.ini, line 9: not a valid seqinfo\.ini \(DuplicateOptionError",
        ),
        ("seqinfo.ini", SEQINFO.replace("imDir=img1", "imDir=frames"), r"seqinfo\.ini: imDir 'frames' is not a folder"),
    ],
)
def test_the_loader_names_the_file_and_line_of_a_malformed_sequence(file, text, message, tmp_path):
    seq = write_sequence(tmp_path, "s", GT)
    (seq / file).write_text(text)
    with pytest.raises(DatasetError, match=message):
        te.load_mot(tmp_path)


def test_the_loader_refuses_folders_without_sequences(tmp_path):
    with pytest.raises(DatasetError, match="is not a folder"):
        te.load_mot(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no MOTChallenge sequence in .*empty"):
        te.load_mot(tmp_path / "empty")
    seq = write_sequence(tmp_path / "one", "s", GT)
    (seq / "seqinfo.ini").unlink()
    with pytest.raises(DatasetError, match="has no seqinfo.ini"):
        te.load_mot(tmp_path / "one")


def test_identical_track_sets_allow_a_relabelling_but_not_a_switch_or_a_moved_box():
    ref = rows(moving(1, 2, 4, 3), moving(2, 40, 20, -2))
    relabelled = rows(moving(8, 2, 4, 3), moving(5, 40, 20, -2))
    assert te.identical_frames(ref, relabelled, LENGTH) == (LENGTH, LENGTH)
    nudged = relabelled.copy()
    nudged[:, 2] += 0.5  # within BOX_TOL
    assert te.identical_frames(ref, nudged, LENGTH) == (LENGTH, LENGTH)
    moved = relabelled.copy()
    moved[relabelled[:, 0] == 2, 2] += 2.0  # frame 2's boxes move 2 px
    assert te.identical_frames(ref, moved, LENGTH) == (LENGTH - 1, LENGTH - 1)
    swapped = relabelled.copy()
    late = swapped[:, 0] >= 4
    swapped[late, 1] = np.where(swapped[late, 1] == 8, 5, 8)  # the two ids trade places from frame 4
    assert te.identical_frames(ref, swapped, LENGTH) == (3, LENGTH)
    other_class = relabelled.copy()
    other_class[0, 7] = 3
    assert te.identical_frames(ref, other_class, LENGTH) == (LENGTH - 1, LENGTH - 1)
    fewer = relabelled[relabelled[:, 0] != 6]
    assert te.identical_frames(ref, fewer, LENGTH) == (LENGTH - 1, LENGTH - 1)
    assert te.identical_frames(rows(), rows(), 3) == (3, 3)  # empty frames agree


def test_few_sequences_are_resampled_as_blocks_of_frames(tmp_path):
    for i in range(3):
        write_sequence(tmp_path, f"s{i}", GT, length=25)
    unit, units = te.bootstrap_units(te.load_mot(tmp_path))
    assert unit == f"blocks of {te.BLOCK_FRAMES} frames"
    assert units[:3] == [("s0", 1, 10), ("s0", 11, 20), ("s0", 21, 25)] and len(units) == 9
    for i in range(3, te.MIN_SEQUENCES):
        write_sequence(tmp_path, f"s{i}", GT, length=25)
    unit, units = te.bootstrap_units(te.load_mot(tmp_path))
    assert unit == "sequences" and len(units) == te.MIN_SEQUENCES


def test_val_track_on_a_malformed_sequence_exits_2_naming_the_file(tmp_path, capsys):
    seq = write_sequence(tmp_path, "s", GT)
    (seq / "gt" / "gt.txt").write_text("1,1,0\n")
    assert main(["val", "edgecv-tiny", "--task", "track", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "gt.txt, line 1: 3 fields" in err and "Traceback" not in err


# --- the default detector on moving shapes --------------------------------------------------------


@pytest.fixture(scope="module")
def moving_shapes(tmp_path_factory) -> Path:
    from edgecv.data.moving_shapes import write_mot

    out = tmp_path_factory.mktemp("mot")
    write_mot(out, sequences=2, frames=30, seed=0)
    return out


@pytest.mark.slow
def test_fp32_bundles_track_as_the_source_does(default_bundles, moving_shapes):
    pytest.importorskip("trackers")
    from edgecv import load
    from edgecv.pipeline import open_model

    dataset = te.load_mot(moving_shapes)
    assert len(dataset) == 2 and dataset.frames == 60
    models = [("source", open_model("edgecv-tiny"))] + [(k, load(b)) for k, b in default_bundles.items()]
    said: list[str] = []
    result = te.compare(models, dataset, bootstrap=50, seed=0, progress=False, say=said.append)
    ref = result.runs[0]
    assert ref.metrics.stats["hota"] > 0.3, te.metrics_table(result.runs)  # the detector tracks the shapes
    assert "blocks of 10 frames" in said[0]
    for c in result.comparisons:
        assert abs(c.deltas["hota"] * 100) < 0.005, te.compare_table(result)
        assert c.parity["identical_share"] >= 0.999, c.parity
        assert c.cis["hota"]["low"] <= 0 <= c.cis["hota"]["high"]
    assert result.failures(0.0) == []
    table = te.compare_table(result)
    assert "identical frames" in table and "100.00%" in table
    headline = te.compare_headline(result, dataset, 50, 0)
    assert "over 6 blocks of 10 frames (2 sequences are too few to resample)" in headline
    for _, det in models:
        det.close()


@pytest.mark.slow
def test_compare_track_cli_gates_on_hota(default_bundles, moving_shapes, tmp_path, capsys):
    pytest.importorskip("trackers")
    bundle = str(default_bundles["onnxruntime"])
    args = ["compare", "edgecv-tiny", bundle, "--task", "track", "--data", str(moving_shapes), "--bootstrap", "20"]
    assert main([*args, "--max-drop", "0.5", "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "Δ HOTA" in out and "sequence (HOTA)" in out
    # a gate no candidate can pass (lose at most -1 points: gain one) fails with exit 1
    assert main([*args, "--max-drop", "-1"]) == 1
    assert "gate failed" in capsys.readouterr().err
    assert main(["val", bundle, "--task", "track", "--data", str(moving_shapes), "--tracker", "sort"]) == 0
    assert "tracker sort" in capsys.readouterr().out
