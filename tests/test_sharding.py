"""Sharded evaluation on Ray (edgecv.sharding): the merged shards give the same detections,
metrics, bootstrap interval and parity as one process, to the last digit; uneven shards; a
failing shard names its model and shard; the CLI's --ray. One local Ray (2 CPUs) per module."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecv.errors import EdgecvError
from edgecv.harness import compare, compare_table, metrics_table, run_dataset
from edgecv.sharding import (
    ModelSpec,
    ShardError,
    compare_sharded,
    evaluate_sharded,
    ray_session,
    shards,
    worker_plan,
)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset(val_set):
    from edgecv.datasets import load_dataset

    images_dir, ann = val_set
    return load_dataset(ann, images_dir)


@pytest.fixture(scope="module")
def pair(default_bundles, tmp_path_factory) -> list[str]:
    """Reference and candidate: the onnxruntime and openvino bundles (or, without openvino, a
    copy of the onnxruntime one)."""
    ref = default_bundles["onnxruntime"]
    if "openvino" in default_bundles:
        return [str(ref), str(default_bundles["openvino"])]
    return [str(ref), str(shutil.copytree(ref, tmp_path_factory.mktemp("copy") / ref.name))]


def without_latency(text: str) -> str:
    """A table with its last column (p50 ms, measured wherever the model ran) cut off."""
    return "\n".join(line.rsplit("  ", 1)[0].rstrip() for line in text.splitlines())


def same_figures(a, b) -> bool:
    """Equal to the last digit, NaN (a size class without objects) equal to NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def same_detections(a, b) -> bool:
    return list(a) == list(b) and all(
        np.array_equal(a[k].xyxy, b[k].xyxy)
        and np.array_equal(a[k].scores, b[k].scores)
        and np.array_equal(a[k].class_ids, b[k].class_ids)
        for k in a
    )


@pytest.mark.parametrize(
    ("n", "workers", "sizes"),
    [(24, 2, [12, 12]), (10, 3, [4, 3, 3]), (1, 2, [1]), (3, 8, [1, 1, 1]), (0, 2, [])],
)
def test_shards_are_contiguous_and_cover_every_image_once(n, workers, sizes):
    parts = shards(n, workers)
    assert [len(r) for r in parts] == sizes
    assert [i for r in parts for i in r] == list(range(n))


def test_worker_plan_keeps_workers_times_threads_within_the_cores():
    assert worker_plan(8) == (8, 1)
    assert worker_plan(8, workers=3) == (3, 2)
    assert worker_plan(8, threads=4) == (2, 4)
    assert worker_plan(2, threads=4) == (1, 4)
    with pytest.raises(EdgecvError, match="--workers 0"):
        worker_plan(2, workers=0)


def test_an_address_where_no_ray_listens_is_refused_at_once():
    with pytest.raises(EdgecvError, match="no Ray cluster answers at 127.0.0.1:1"):
        with ray_session("127.0.0.1:1"):
            pass


def test_sharded_compare_equals_one_process(local_ray, pair, dataset):
    from edgecv.comparison import distinct_names, model_name
    from edgecv.pipeline import open_model

    dets = [open_model(p) for p in pair]
    names = distinct_names([model_name(p, d) for p, d in zip(pair, dets)], pair)
    try:
        one = compare(list(zip(names, dets)), dataset, bootstrap=30, seed=3, progress=False)
    finally:
        for d in dets:
            d.close()
    sharded = compare_sharded([ModelSpec(p) for p in pair], dataset, workers=2, bootstrap=30, seed=3, progress=False)
    assert sharded.settings.pop("ray") == {"workers": 2, "threads_per_worker": 1, "shards": [[0, 12], [12, 24]]}
    assert sharded.settings == one.settings and sharded.dataset == one.dataset
    assert without_latency(compare_table(sharded)) == without_latency(compare_table(one))
    assert without_latency(metrics_table(sharded.runs)) == without_latency(metrics_table(one.runs))
    for a, b in zip(one.runs, sharded.runs):
        assert a.name == b.name and a.info == b.info
        assert same_figures(a.metrics.to_dict(), b.metrics.to_dict())
        assert same_detections(a.detections, b.detections)
        assert len(b.latency_ms) == len(dataset)
    assert same_figures([c.to_dict() for c in sharded.comparisons], [c.to_dict() for c in one.comparisons])
    assert not np.isnan(sharded.comparisons[0].ci["low"])  # the bootstrap ran, with the same draws


def test_sharded_val_with_uneven_shards_equals_one_process(local_ray, pair, dataset):
    from edgecv.pipeline import open_model

    with open_model(pair[0]) as det:
        one = run_dataset(det, dataset, progress=False)
    notes: list[str] = []
    got = evaluate_sharded(ModelSpec(pair[0]), dataset, workers=5, progress=False, say=notes.append)  # 5,5,5,5,4
    assert same_figures(got.metrics.stats, one.metrics.stats) and same_detections(got.detections, one.detections)
    assert "5 Ray workers sharing one machine" in notes[0]


def test_more_workers_than_images(local_ray, pair, dataset, tmp_path):
    from edgecv.datasets import load_dataset

    coco = dict(dataset.coco)
    first = coco["images"][0]
    coco["images"] = [first]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] == first["id"]]
    (tmp_path / "one.json").write_text(json.dumps(coco))
    one_image = load_dataset(tmp_path / "one.json", dataset.root)
    from edgecv.pipeline import open_model

    with open_model(pair[0]) as det:
        one = run_dataset(det, one_image, progress=False)
    got = evaluate_sharded(ModelSpec(pair[0]), one_image, workers=2, progress=False)
    assert list(got.detections) == [first["id"]] and same_figures(got.metrics.stats, one.metrics.stats)


def test_a_failing_shard_names_the_model_and_the_shard(local_ray, pair, dataset, tmp_path):
    missing = str(tmp_path / "no-such-bundle")
    with pytest.raises(ShardError) as e:
        compare_sharded([ModelSpec(pair[0]), ModelSpec(missing)], dataset, workers=2, bootstrap=0, progress=False)
    msg = str(e.value)
    assert missing in msg and "shard" in msg and "of 2" in msg and "failed" in msg


def test_cli_compare_and_bench_on_ray(local_ray, pair, val_set, tmp_path, capsys):
    from edgecv.cli import main

    images_dir, ann = val_set
    data = ["--data", str(ann), "--images", str(images_dir)]
    code = main(
        ["compare", *pair, *data, "--bootstrap", "10", "--ray", "--workers", "2", "--json", str(tmp_path / "c.json")]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "2 Ray workers sharing one machine" in out.err and "mAP50-95" in out.out
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["settings"]["ray"]["workers"] == 2 and record["comparisons"][0]["parity"]["matched_share"] == 1.0

    code = main(["bench", pair[0], "--ray", "--seconds", "0.1", "--min-iters", "3", "--warmup", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "node" in out.out.splitlines()[-4] and "whole node" in out.err

    code = main(["val", pair[0], *data, "--ray", "--task", "track"])
    assert code == 2 and "detectors today" in capsys.readouterr().err


def test_export_sweep_in_one_process_and_on_ray(local_ray, tmp_path, capsys):
    """`export --target a,b --precision x,y` makes every bundle, in one process or as Ray tasks;
    a job that cannot be made (int8 without --calib) is reported while the others are made; a
    sweep refuses --name and an unknown target before any work."""
    from edgecv import load
    from edgecv.cli import main

    def bundles(out: str) -> list[Path]:
        return [Path(line) for line in out.splitlines() if line.strip()]

    code = main(["export", "--target", "onnxruntime,openvino", "-o", str(tmp_path / "one")])
    out, err = capsys.readouterr()
    made = bundles(out)
    assert code == 0, err
    assert [b.name for b in made] == ["edgecv-tiny-onnxruntime-fp32", "edgecv-tiny-openvino-fp32"]
    code = main(["export", "--target", "onnxruntime,openvino", "--ray", "-o", str(tmp_path / "ray")])
    out, err = capsys.readouterr()
    assert code == 0, err
    on_ray = bundles(out)
    assert [b.name for b in on_ray] == [b.name for b in made]
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    for a, b in zip(made, on_ray):
        with load(a) as x, load(b) as y:
            np.testing.assert_array_equal(x(img, conf=0.01).xyxy, y(img, conf=0.01).xyxy)

    code = main(["export", "--precision", "fp32,int8", "-o", str(tmp_path / "part")])
    out, err = capsys.readouterr()
    assert code == 2 and [b.name for b in bundles(out)] == ["edgecv-tiny-onnxruntime-fp32"]
    assert "export onnxruntime int8 failed" in err and "--calib" in err
    assert main(["export", "--target", "onnxruntime,openvino", "--name", "x", "-o", str(tmp_path)]) == 2
    assert "--name names one bundle" in capsys.readouterr().err
    assert main(["export", "--target", "onnxruntime,tflite", "-o", str(tmp_path / "bad")]) == 2
    assert "unknown target(s) tflite" in capsys.readouterr().err and not (tmp_path / "bad").exists()
