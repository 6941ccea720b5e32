"""Latency harness: stage breakdown and JSON. The latency gates are tested in test_latency_gate.py."""

from __future__ import annotations

import json

import pytest

from edgecv.bench import STAGES, summarize

QUICK = ["--seconds", "0.3", "--min-iters", "5", "--warmup", "2"]


def test_summarize():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["p50"] == 3.0 and s["min"] == 1.0 and s["max"] == 100.0 and s["p99"] > s["p90"] > s["p50"]


@pytest.fixture(scope="module")
def baseline(default_bundles, tmp_path_factory):
    from edgecv.cli import main

    p = tmp_path_factory.mktemp("bench") / "base.json"
    assert main(["bench", str(default_bundles["onnxruntime"]), "--batch", "1,2", *QUICK, "--json", str(p)]) == 0
    return p


def test_bench_json_records_stages_and_machine(baseline):
    data = json.loads(baseline.read_text())
    assert [r["batch"] for r in data["rows"]] == [1, 2]
    for r in data["rows"]:
        assert set(r["stages_ms"]) == set(STAGES)
        s = r["stages_ms"]
        assert s["e2e"]["p50"] >= s["infer"]["p50"] > 0 and r["iterations"] >= 5 and r["throughput_ips"] > 0
    assert data["machine"]["cores"] >= 1 and "onnxruntime" in data["machine"]["versions"]
    assert isinstance(data["machine"]["isa"], list)
