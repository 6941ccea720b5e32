"""Video sources and sinks (edgecv.video) and the moving-shapes sequences (edgecv.data.moving_shapes):
real files, folders, sockets and generated sequences, no stand-ins."""

from __future__ import annotations

import configparser
import logging
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv import EdgecvError, VideoError
from edgecv.data.moving_shapes import write_mot, write_video
from edgecv.video import Frame, VideoWriter, open_source

SIZE = (160, 96)  # (w, h)
FPS = 25.0


def _frame(i: int) -> np.ndarray:
    """Frame i of the test clips: a grey level that encodes i (5 levels apart), a marker that moves."""
    img = np.full((SIZE[1], SIZE[0], 3), 5 * i, np.uint8)
    cv2.rectangle(img, (4 * i % 140, 20), (4 * i % 140 + 16, 40), (255, 255, 255), -1)
    return img


def _write_clip(path: Path, n: int = 40) -> Path:
    with VideoWriter(path, FPS, SIZE) as out:
        for i in range(n):
            out.write(_frame(i))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture(scope="module")
def mot(tmp_path_factory) -> list[Path]:
    return write_mot(tmp_path_factory.mktemp("mot"), sequences=2, frames=40, seed=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- sources ----------------------------------------------------------------------------------


def test_file_frames_timestamps_and_properties(clip):
    with open_source(clip) as src:
        assert src.fps == pytest.approx(FPS)
        assert src.size == SIZE
        assert src.frame_count == 40
        frames = list(src)
    assert [f.index for f in frames] == list(range(40))
    assert [f.timestamp for f in frames] == pytest.approx([i / FPS for i in range(40)])
    assert all(isinstance(f, Frame) and f.source == str(clip) for f in frames)
    assert frames[7].image.shape == (SIZE[1], SIZE[0], 3) and frames[7].image.dtype == np.uint8
    # the grey level of frame i comes back (lossy codec: within a few levels)
    assert abs(float(frames[7].image[80:, :].mean()) - 35) < 4
    assert src.dropped == 0 and src.delivered == 40


def test_folder_and_glob_in_sorted_order_with_fps(tmp_path):
    for i in (2, 0, 1, 3):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), _frame(10 * i))
    (tmp_path / "notes.txt").write_text("not a frame")
    with open_source(tmp_path, fps=10) as src:
        frames = list(src)
        assert src.frame_count == 4 and src.fps == 10
    assert [int(f.image[80, 0, 0]) for f in frames] == [0, 50, 100, 150]
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    with open_source(str(tmp_path / "f00[12].png")) as src:
        frames = list(src)
        assert src.fps == 30.0  # the default rate of a folder's timestamps
    assert [int(f.image[80, 0, 0]) for f in frames] == [50, 100]
    assert frames[1].timestamp == pytest.approx(1 / 30)


def test_folder_counts_and_logs_an_unreadable_image(tmp_path, caplog):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), _frame(i))
    (tmp_path / "f1.png").write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, logger="edgecv"), open_source(tmp_path) as src:
        frames = list(src)
    assert [f.index for f in frames] == [0, 2]
    assert src.dropped == 1
    assert "f1.png" in caplog.text and "dropped" in caplog.text


@pytest.mark.parametrize(
    "spec, match",
    [
        ("missing.mp4", "does not exist"),
        ("empty_dir", "holds no images"),
        ("nothing_*.png", "no files match"),
    ],
)
def test_sources_that_are_not_there(tmp_path, monkeypatch, spec, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(VideoError, match=match):
        open_source(spec)


def test_generated_mp4_from_a_sequence(mot, tmp_path):
    info = configparser.ConfigParser()
    info.read(mot[0] / "seqinfo.ini")
    n, rate = int(info["Sequence"]["seqLength"]), float(info["Sequence"]["frameRate"])
    path = write_video(mot[0], tmp_path / "seq.mp4")
    with open_source(path) as src:
        assert src.frame_count == n and src.fps == pytest.approx(rate)
        assert src.size == (int(info["Sequence"]["imWidth"]), int(info["Sequence"]["imHeight"]))
        frames = list(src)
    assert len(frames) == n and src.dropped == 0
    assert [f.timestamp for f in frames] == pytest.approx([i / rate for i in range(n)])
    first = cv2.imread(str(mot[0] / "img1" / "000001.jpg")).astype(np.float32)
    assert np.abs(frames[0].image.astype(np.float32) - first).mean() < 6  # the same picture, re-encoded


def _faststart(src: Path, dst: Path) -> Path:
    """Remux ``src`` with its index (moov) before the frames, as streaming encoders write it: a cut
    copy still opens, with the frames before the cut."""
    av = pytest.importorskip("av")
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def test_truncated_mp4_gives_frames_to_the_damage_and_counts_the_rest(clip, tmp_path, caplog):
    data = _faststart(clip, tmp_path / "fs.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with caplog.at_level(logging.WARNING, logger="edgecv"), open_source(cut) as src:
        frames = list(src)
    assert 0 < len(frames) < 40
    assert len(frames) + src.dropped == 40 == src.frame_count
    assert [f.index for f in frames] == list(range(len(frames)))
    assert "cut.mp4" in caplog.text and f"{src.dropped} of its 40 frames" in caplog.text


def test_mp4_cut_before_its_index_is_a_clear_error(clip, tmp_path):
    cut = tmp_path / "cut_index.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # OpenCV writes the index last
    with pytest.raises(VideoError, match=r"'.*cut_index\.mp4' cannot be opened.*re-encode"):
        open_source(cut)


def test_garbage_bytes_are_a_clear_error(tmp_path):
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"not a video at all " * 500)
    with pytest.raises(VideoError, match=r"garbage\.mp4' cannot be opened") as e:
        open_source(bad)
    assert isinstance(e.value, EdgecvError) and e.value.exit_code == 2


def test_frames_that_do_not_decode_are_a_clear_error(clip, tmp_path):
    data = bytearray(_faststart(clip, tmp_path / "fs.mp4").read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = bytes(len(data) - start)  # a valid index over zeroed frames
    bad = tmp_path / "zeroed.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoError, match=r"zeroed\.mp4' opened but no frame decodes"), open_source(bad) as src:
        list(src)


@pytest.mark.parametrize("index", [57, "57"])
def test_a_camera_that_does_not_exist_fails_fast(index):
    t0 = time.monotonic()
    with pytest.raises(VideoError, match="camera 57"):
        open_source(index, timeout=3)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_a_url_that_refuses_is_retried_with_back_off_then_an_error(scheme, caplog):
    url = f"{scheme}://127.0.0.1:{_free_port()}/stream"
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="edgecv"), pytest.raises(VideoError) as e:
        open_source(url, retries=2, backoff=0.1, timeout=2)
    elapsed = time.monotonic() - t0
    assert url in str(e.value) and "after 3 attempt(s)" in str(e.value)
    waits = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(waits) == 2 and "0.10 s (attempt 1 of 2)" in waits[0] and "0.20 s (attempt 2 of 2)" in waits[1]
    assert 0.3 <= elapsed < 5  # both back-offs were waited, and no more


def test_a_server_that_never_answers_is_given_up_after_the_timeout():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # take connections and say nothing
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(VideoError, match="refused or did not answer after 1 attempt"):
            open_source(f"http://127.0.0.1:{server.getsockname()[1]}/x", retries=0, timeout=1.0)
        assert time.monotonic() - t0 < 6
    finally:
        stop.set()
        thread.join(2)
        for c in held:
            c.close()
        server.close()


# --- the writer -------------------------------------------------------------------------------


def test_writer_round_trip(tmp_path):
    path = _write_clip(tmp_path / "out.mp4", n=12)
    assert path.stat().st_size > 0
    with open_source(path) as src:
        frames = list(src)
    assert len(frames) == 12
    levels = [float(f.image[80:, :].mean()) for f in frames]
    assert np.allclose(levels, [5 * i for i in range(12)], atol=4)


def test_writer_errors(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "such" / "dir.mp4", 25, SIZE)
    with pytest.raises(VideoError, match="codec 'ZZZZ'"):
        VideoWriter(tmp_path / "x.mp4", 25, SIZE, fourcc="ZZZZ")
    with pytest.raises(VideoError, match="positive fps"):
        VideoWriter(tmp_path / "x.mp4", 0, SIZE)
    with VideoWriter(tmp_path / "x.mp4", 25, SIZE) as out:
        with pytest.raises(VideoError, match="expected HxWx3 uint8 BGR of 160x96"):
            out.write(np.zeros((10, 10, 3), np.uint8))
        out.write(_frame(0))
    assert out.frames == 1


# --- the moving-shapes sequences --------------------------------------------------------------


def _gt(seq: Path) -> np.ndarray:
    rows = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
    assert rows.shape[1] == 9  # frame,id,x,y,w,h,conf,class,visibility
    return rows


def test_mot_layout_and_gt(mot):
    assert [p.name for p in mot] == ["shapes-s3-01", "shapes-s3-02"]
    for seq in mot:
        info = configparser.ConfigParser()
        info.optionxform = str  # type: ignore[assignment,method-assign]
        info.read(seq / "seqinfo.ini")
        s = info["Sequence"]
        assert (s["name"], s["imDir"], s["imExt"], s["seqLength"]) == (seq.name, "img1", ".jpg", "40")
        w, h = int(s["imWidth"]), int(s["imHeight"])
        images = sorted((seq / "img1").glob("*.jpg"))
        assert [p.name for p in images[:2]] == ["000001.jpg", "000002.jpg"] and len(images) == 40
        assert cv2.imread(str(images[0])).shape == (h, w, 3)
        rows = _gt(seq)
        assert set(rows[:, 6]) == {1} and set(rows[:, 7]) <= set(range(1, 7))
        assert rows[:, 0].min() >= 1 and rows[:, 0].max() <= 40
        assert (rows[:, 2] >= 0).all() and (rows[:, 2] + rows[:, 4] <= w).all()
        assert (rows[:, 3] >= 0).all() and (rows[:, 3] + rows[:, 5] <= h).all()
        assert ((rows[:, 8] > 0) & (rows[:, 8] <= 1)).all()
        for tid in set(rows[:, 1]):  # an id keeps its class and appears at most once a frame
            own = rows[rows[:, 1] == tid]
            assert len(set(own[:, 7])) == 1 and len(set(own[:, 0])) == len(own)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_mot_objects_cross_occlude_enter_and_leave(mot):
    crossing = occluded = entering = leaving = 0
    for seq in mot:
        rows = _gt(seq)
        for f in range(1, 41):
            r = rows[rows[:, 0] == f]
            crossing += sum(_iou(r[i, 2:6], r[j, 2:6]) > 0.1 for i in range(len(r)) for j in range(i + 1, len(r)))
            occluded += int((r[:, 8] < 0.9).sum())
        for tid in set(rows[:, 1]):
            own = rows[rows[:, 1] == tid]
            entering += own[:, 0].min() > 1
            leaving += own[:, 0].max() < 40
    assert crossing > 0 and occluded > 0 and entering > 0 and leaving > 0


def test_mot_is_deterministic_and_reused(mot, tmp_path):
    again = write_mot(tmp_path, sequences=1, frames=40, seed=3)[0]
    assert (again / "gt" / "gt.txt").read_bytes() == (mot[0] / "gt" / "gt.txt").read_bytes()
    for name in ("000001.jpg", "000040.jpg"):
        assert (again / "img1" / name).read_bytes() == (mot[0] / "img1" / name).read_bytes()
    other = write_mot(tmp_path / "other", sequences=1, frames=40, seed=4)[0]
    assert (other / "gt" / "gt.txt").read_bytes() != (again / "gt" / "gt.txt").read_bytes()
    stamp = (again / "img1" / "000001.jpg").stat().st_mtime_ns
    write_mot(tmp_path, sequences=1, frames=40, seed=3)  # complete output is reused, not rewritten
    assert (again / "img1" / "000001.jpg").stat().st_mtime_ns == stamp
