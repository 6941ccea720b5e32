"""Latency harness: stage breakdown, JSON, the ratio-based regression gate, the pytest fixture."""

from __future__ import annotations

import json

import pytest

from edgecv.bench import STAGES, regressions, summarize

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
    assert data["reference_ms"] > 0 and data["machine"]["cores"] >= 1 and "onnxruntime" in data["machine"]["versions"]


def test_bench_gate(default_bundles, baseline, tmp_path, capsys):
    from edgecv.cli import main

    bundle = str(default_bundles["onnxruntime"])
    # a baseline five times faster than anything this machine does: the gate must fail
    fast = json.loads(baseline.read_text())
    for r in fast["rows"]:
        r["stages_ms"]["e2e"]["p50"] /= 5
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    assert main(["bench", bundle, "--batch", "1", *QUICK, "--baseline", str(tmp_path / "fast.json"),
                 "--max-regression", "10%"]) == 1
    assert "gate failed" in capsys.readouterr().err
    # against itself, with room for a noisy shared machine, it passes
    assert main(["bench", bundle, "--batch", "1", *QUICK, "--baseline", str(baseline), "--max-regression", "300%"]) == 0


def test_regressions_compare_ratios_not_times():
    row = {"model": "m", "batch": 1, "threads": "default", "stages_ms": {"e2e": {"p50": 20.0}}}
    base = {"reference_ms": 1.0, "rows": [dict(row, stages_ms={"e2e": {"p50": 10.0}})]}
    # twice the time on a machine twice as slow (reference 2 ms): no regression
    fails, table = regressions({"reference_ms": 2.0, "rows": [row]}, base, 0.1)
    assert not fails and table[0]["change"] == pytest.approx(0.0)
    fails, _ = regressions({"reference_ms": 1.0, "rows": [row]}, base, 0.1)
    assert fails and "100.0% slower" in fails[0]


def test_check_latency_writes_then_gates(default_bundles, tmp_path):
    from edgecv.testing import check_latency

    base = tmp_path / "latency.json"
    first = check_latency(default_bundles["onnxruntime"], base, seconds=0.3)
    assert first["written"] == str(base) and base.exists()
    data = json.loads(base.read_text())
    for r in data["rows"]:
        r["stages_ms"]["e2e"]["p50"] /= 5
    base.write_text(json.dumps(data))
    with pytest.raises(AssertionError, match="latency regression"):
        check_latency(default_bundles["onnxruntime"], base, seconds=0.3)


def test_the_pytest_fixture_in_three_lines(pytester, default_bundles):
    bundle = default_bundles["onnxruntime"]
    pytester.makepyfile(f"""
        def test_latency(edgecv_latency):
            edgecv_latency({str(bundle)!r}, baseline="latency.json", max_regression=3.0, seconds=0.3)
    """)
    result = pytester.runpytest()  # the fixture comes from the plugin edgecv installs
    result.assert_outcomes(passed=1)
    assert (pytester.path / "latency.json").exists()
