"""The latency gates (edgecv.latency): statistics, interleaving, baselines, the CLI's exit codes
and the pytest fixture. Behaviour is asserted, never timings: the gates' false-alarm and
detection rates are measured by benchmarks/latency_gate.py."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from edgecv import latency as L
from edgecv.errors import EdgecvError

QUICK = ["--seconds", "1"]


# --- statistics on synthetic samples -----------------------------------------------------------------


def _blocks(rng, n, level=10.0, noise=0.05):
    return level * np.exp(rng.normal(0, noise, n))


@pytest.mark.parametrize("paired", [True, False])
def test_identical_distributions_never_a_regression(paired):
    verdicts = {"ok": 0, "regression": 0, "inconclusive": 0}
    for seed in range(200):
        rng = np.random.default_rng(seed)
        old, new = _blocks(rng, 30), _blocks(rng, 30)
        ratio, lo, hi = (L.paired_ratio if paired else L.independent_ratio)(old, new, bootstrap=500, seed=seed)
        assert lo <= ratio <= hi
        verdicts[L.decide(ratio, lo, hi, 0.10, (30, 30)).verdict] += 1
    assert verdicts["regression"] == 0
    assert verdicts["ok"] >= 190  # 5% noise per block, 30 blocks: the interval is well inside 10%


@pytest.mark.parametrize("paired", [True, False])
def test_a_shifted_distribution_is_a_regression(paired):
    for seed in range(50):
        rng = np.random.default_rng(seed)
        old, new = _blocks(rng, 30), _blocks(rng, 30, level=13.0)
        ratio, lo, hi = (L.paired_ratio if paired else L.independent_ratio)(old, new, bootstrap=500, seed=seed)
        v = L.decide(ratio, lo, hi, 0.10, (30, 30))
        assert v.verdict == "regression" and v.exit_code == 1 and 1.2 < ratio < 1.4, v


def test_a_straddling_interval_is_inconclusive_and_says_how_long():
    rng = np.random.default_rng(3)
    old, new = _blocks(rng, 12, noise=0.08), _blocks(rng, 12, level=10.8, noise=0.08)
    ratio, lo, hi = L.paired_ratio(old, new, seed=0)
    v = L.decide(ratio, lo, hi, 0.10, (12, 12))
    assert lo < 1.10 < hi and v.verdict == "inconclusive" and v.exit_code == L.EXIT_INCONCLUSIVE
    # +5% known to [-2%, +12%]: the interval must shrink by 1.4x, so about 2.5x the time
    v = L.decide(1.05, 0.98, 1.12, 0.10, (12, 12))
    assert v.verdict == "inconclusive" and v.longer_by == pytest.approx(2.47, abs=0.01)
    assert L.advice(v, 10.0) == "measure longer to settle it: about --seconds 25"
    assert L.advice(v, 10.0, runs=True).endswith("(or over more --runs)")
    # right at the limit, waiting longer will not settle it, and the advice says so
    at = L.decide(1.10, 1.05, 1.15, 0.10, (12, 12))
    assert at.verdict == "inconclusive" and at.longer_by is None and "too close" in L.advice(at, 10.0)


def test_decide_boundaries():
    assert L.decide(1.0, 0.95, 1.10, 0.10, (2, 2)).verdict == "ok"  # at the limit counts as within it
    assert L.decide(1.2, 1.1001, 1.3, 0.10, (2, 2)).verdict == "regression"
    assert L.decide(0.5, 0.4, 0.6, 0.0, (2, 2)).verdict == "ok"  # faster is never a regression
    with pytest.raises(EdgecvError, match="max_regression"):
        L.decide(1.0, 0.9, 1.1, -0.1, (2, 2))


def test_seeded_results_repeat_exactly():
    rng = np.random.default_rng(0)
    old, new = _blocks(rng, 25), _blocks(rng, 25)
    assert L.paired_ratio(old, new, seed=7) == L.paired_ratio(old, new, seed=7)
    assert L.independent_ratio(old, new, seed=7) == L.independent_ratio(old, new, seed=7)
    assert L.paired_ratio(old, new, seed=7) != L.paired_ratio(old, new, seed=8)


def test_paired_ratio_cancels_drift_that_hits_both_sides():
    # the machine slows down 2x half way through; the pairs still show no change
    drift = np.r_[np.ones(20), 2 * np.ones(20)]
    rng = np.random.default_rng(1)
    old, new = _blocks(rng, 40, noise=0.02) * drift, _blocks(rng, 40, noise=0.02) * drift
    ratio, lo, hi = L.paired_ratio(old, new, seed=0)
    assert 0.97 < lo <= ratio <= hi < 1.03


def test_baseline_interval_is_widened_by_the_occasion_spread():
    rng = np.random.default_rng(2)
    base, new = _blocks(rng, 40, noise=0.01), _blocks(rng, 40, noise=0.01)
    _, lo0, hi0 = L.independent_ratio(base, new, seed=0)
    _, lo1, hi1 = L.baseline_interval(base, new, occasion_sd=0.0, seed=0)
    _, lo2, hi2 = L.baseline_interval(base, new, occasion_sd=0.08, seed=0)
    assert lo2 < lo1 < lo0 and hi0 < hi1 < hi2  # the floor widens it; a measured spread more


def test_each_side_takes_its_fastest_run():
    # a load that ran 40% slow for its whole life does not count; the two fastest set the spread
    runs = [[2.0, 2.1, 2.0], [2.8, 2.9, 2.8], [2.04, 2.05, 2.06]]
    assert L.fastest_run(runs) == 0
    steady = [np.full(16, 2.0), np.full(16, 2.8), np.full(16, 2.1)]  # no noise within a run
    assert L.occasion_sd(steady) == pytest.approx(np.log(2.1 / 2.0) / np.sqrt(2))
    assert L.occasion_sd([np.full(16, 2.0)]) == 0.0
    # two runs whose medians differ only as much as their blocks' noise explains: no occasion spread
    rng = np.random.default_rng(0)
    noisy = [2.0 * np.exp(rng.normal(0, 0.2, 16)) for _ in range(3)]
    between = np.sort(np.log([np.median(r) for r in noisy]))
    assert L.occasion_sd(noisy) < (between[1] - between[0]) / np.sqrt(2)
    wide = L.resolution({"occasion_sd": 0.05, "half_width": 0.01})
    assert L.resolution({"occasion_sd": 0.0, "half_width": 0.01}) < wide < 0.2


def test_bad_samples_are_refused():
    with pytest.raises(EdgecvError):
        L.paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(EdgecvError):
        L.paired_ratio([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(EdgecvError):
        L.independent_ratio([1.0], [1.0, 2.0])


# --- interleaving ------------------------------------------------------------------------------------


@pytest.mark.parametrize("runners,rounds", [(2, 30), (2, 31), (3, 12)])
def test_block_orders_are_balanced_and_seeded(runners, rounds):
    orders = L.block_orders(runners, rounds, seed=0)
    assert len(orders) == rounds and all(sorted(o) == list(range(runners)) for o in orders)
    full = rounds - rounds % runners
    for pos in range(runners):  # every runner takes every position equally often
        counts = np.bincount([o[pos] for o in orders[:full]], minlength=runners)
        assert (counts == full // runners).all()
    assert orders == L.block_orders(runners, rounds, seed=0)
    assert orders != L.block_orders(runners, rounds, seed=1)


def test_measure_blocks_gives_each_runner_its_calls_in_the_set_order():
    log = []
    runners = [lambda: log.append("a"), lambda: log.append("b")]
    blocks = L.measure_blocks(runners, [4, 4], rounds=10, seed=5)
    assert blocks.shape == (2, 10) and (blocks >= 0).all()
    assert log.count("a") == log.count("b") == 40
    firsts = [log[i * 8] for i in range(10)]  # each round is one block of each, in the seeded order
    assert firsts == ["ab"[o[0]] for o in L.block_orders(2, 10, seed=5)]


# --- a test double of a detector: sleeps instead of inferring (tests edgecv's own gate logic) ------------


class SleepingDetector:
    """Not a model: ``predict`` sleeps ``ms``; with ``noisy``, the level jumps between 1x and 3x
    every 7 calls at random, as on a machine with a noisy neighbour. It exercises the baseline
    writer's own decisions with known timings."""

    key = "onnxruntime"
    bundle = None
    threads_used = 1

    def __init__(self, ms: float, noisy: bool = False, seed: int = 0) -> None:
        self.ms, self.noisy, self.rng, self.n, self.level = ms, noisy, np.random.default_rng(seed), 0, 1.0
        self.manifest = {"name": f"sleep-{ms}", "target": "onnxruntime", "precision": "fp32"}

    def predict(self, batch):
        if self.noisy and self.n % 7 == 0:
            self.level = float(self.rng.choice([1.0, 3.0]))
        self.n += 1
        time.sleep(self.ms * self.level / 1000)

    def close(self):
        pass


@pytest.mark.slow
def test_the_baseline_writer_refuses_a_noisy_run(tmp_path):
    path = tmp_path / "noisy.json"
    with pytest.raises(L.NoisyBaseline, match="not writing the baseline") as e:
        L.record_baseline(SleepingDetector(2.0, noisy=True), path, seconds=0.6, runs=2)
    assert e.value.exit_code == L.EXIT_INCONCLUSIVE and "--force" in str(e.value)
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing written, no temporary left
    data = L.record_baseline(SleepingDetector(2.0, noisy=True), path, seconds=0.6, runs=2, force=True)
    assert data["forced"] and json.loads(path.read_text())["schema"] == L.SCHEMA


def test_a_baseline_of_another_schema_or_an_old_bench_json_is_named_as_such(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"rows": [], "reference_ms": 7.9, "machine": {}}))
    with pytest.raises(L.BaselineError, match="older edgecv"):
        L.read_baseline(old)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "edgecv.latency-baseline/99"}))
    with pytest.raises(L.BaselineError, match="latency-baseline/99"):
        L.read_baseline(other)
    with pytest.raises(L.BaselineMissing, match="--save-baseline"):
        L.read_baseline(tmp_path / "none.json")


@pytest.fixture(scope="module")
def recorded(default_bundles, tmp_path_factory):
    """A baseline of the default onnxruntime bundle, recorded as a user would (forced, so that a
    noisy moment on a shared machine does not fail the tests that only need one)."""
    p = tmp_path_factory.mktemp("gate") / "base.json"
    L.record_baseline(str(default_bundles["onnxruntime"]), p, seconds=1.0, runs=2, force=True)
    return p


def _edited(recorded, tmp_path, edit) -> str:
    data = json.loads(recorded.read_text())
    edit(data)
    p = tmp_path / "edited.json"
    p.write_text(json.dumps(data))
    return str(p)


def _scale(factor):
    def edit(data):
        for t in data["timings"]:
            t["ratios"] = [r * factor for r in t["ratios"]]

    return edit


@pytest.mark.slow
def test_a_baseline_from_another_machine_is_reported_never_a_regression(default_bundles, recorded, tmp_path):
    def other(data):
        _scale(0.2)(data)  # five times faster there: a regression if it were this machine
        data["machine"]["cpu"] = "Some Other CPU"

    v = L.check_baseline(
        str(default_bundles["onnxruntime"]), _edited(recorded, tmp_path, other), 0.10, seconds=0.8, runs=1
    )
    assert v.verdict.verdict == "inconclusive" and "another machine" in v.verdict.reason
    assert "Some Other CPU" in v.verdict.reason


@pytest.mark.slow
def test_a_machine_in_another_state_is_not_judged(default_bundles, recorded, tmp_path):
    def slower_then(data):
        _scale(0.2)(data)  # a regression, if the ratio could be trusted
        data["stats"]["reference_ms"] *= 0.3  # but the reference ran 3 times faster when it was recorded

    r = L.check_baseline(
        str(default_bundles["onnxruntime"]), _edited(recorded, tmp_path, slower_then), 0.10, seconds=0.8, runs=1
    )
    assert r.verdict.verdict == "inconclusive" and "the reference workload ran +" in r.verdict.reason


@pytest.mark.slow
def test_the_fingerprint_reports_a_changed_model_exactly(default_bundles, recorded, tmp_path):
    def changed(data):
        data["fingerprint"]["graph_sha256"] = "0" * 64

    r = L.check_baseline(
        str(default_bundles["onnxruntime"]), _edited(recorded, tmp_path, changed), 3.0, seconds=0.8, runs=1
    )
    assert any(n.startswith("the model changed (files sha256 000000000000 ->") for n in r.notes)
    same = L.check_baseline(str(default_bundles["onnxruntime"]), recorded, 3.0, seconds=0.8, runs=1)
    assert "the same model files as the baseline" in same.notes


# --- the CLI's exit codes ------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_exit_codes(default_bundles, recorded, tmp_path, capsys):
    from edgecv.cli import main

    b = str(default_bundles["onnxruntime"])
    # 0: the bundle against itself, paired, with a limit no noise reaches
    assert (
        main(["bench", b, b, "--compare", *QUICK, "--max-regression", "300%", "--json", str(tmp_path / "g.json")]) == 0
    )
    out = capsys.readouterr().out
    assert "paired:" in out and ": ok" in out
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["mode"] == "paired" and g["verdict"]["verdict"] == "ok" and len(g["timings"][0]["blocks_ms"]) >= 16
    # 1: a baseline five times faster than this machine runs it
    assert (
        main(
            [
                "bench",
                b,
                "--baseline",
                _edited(recorded, tmp_path, _scale(0.2)),
                *QUICK,
                "--runs",
                "1",
                "--max-reference-shift",
                "1000%",
            ]
        )
        == 1
    )
    assert "gate failed" in capsys.readouterr().err

    # 3: a baseline whose runs were 20% apart cannot settle a 0% limit
    def spread(data):
        data["stats"]["occasion_sd"] = 0.2

    assert (
        main(
            [
                "bench",
                b,
                "--baseline",
                _edited(recorded, tmp_path, spread),
                *QUICK,
                "--runs",
                "1",
                "--max-regression",
                "0%",
            ]
        )
        == L.EXIT_INCONCLUSIVE
    )
    assert "inconclusive" in capsys.readouterr().err
    # 2: user errors
    assert main(["bench", b, "--compare"]) == 2
    assert main(["bench", b, "--baseline", str(tmp_path / "missing.json")]) == 2
    assert main(["bench", b, b, "--baseline", str(recorded)]) == 2
    assert main(["bench", b, "--compare", "--save-baseline", "x.json"]) == 2
    assert main(["bench", b, "--baseline", str(recorded), "--batch", "1,2"]) == 2
    err = capsys.readouterr().err
    assert "--compare takes two models" in err and "no latency baseline" in err and "separate gates" in err


@pytest.mark.slow
def test_cli_saves_a_baseline(default_bundles, tmp_path, capsys):
    from edgecv.cli import main

    p = tmp_path / "saved.json"
    code = main(["bench", str(default_bundles["onnxruntime"]), "--save-baseline", str(p), *QUICK, "--runs", "2"])
    if code == L.EXIT_INCONCLUSIVE:  # refused on a noisy moment: it must say why and write nothing
        assert "not writing the baseline" in capsys.readouterr().err and not p.exists()
    else:
        assert code == 0 and json.loads(p.read_text())["schema"] == L.SCHEMA
        assert "set --max-regression above that" in capsys.readouterr().out


# --- the pytest fixture ---------------------------------------------------------------------------------


def test_fixture_missing_baseline_fails_under_ci_and_skips_otherwise(pytester, default_bundles, monkeypatch):
    bundle = default_bundles["onnxruntime"]
    pytester.makepyfile(f"""
        def test_latency(edgecv_latency):
            edgecv_latency({str(bundle)!r}, baseline="latency.json", seconds=0.5)
    """)
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv(  # the variable that asks for a baseline to be written
        "EDGECV_UPDATE_BASELINE", raising=False
    )
    pytester.runpytest().assert_outcomes(failed=1)
    assert not (pytester.path / "latency.json").exists()
    monkeypatch.setenv("CI", "")
    pytester.runpytest().assert_outcomes(skipped=1)
    assert not (pytester.path / "latency.json").exists()


@pytest.mark.slow
def test_fixture_writes_only_when_asked_and_skips_when_inconclusive(pytester, default_bundles, recorded, monkeypatch):
    bundle = default_bundles["onnxruntime"]
    monkeypatch.delenv("CI", raising=False)
    data = json.loads(recorded.read_text())
    data["stats"]["occasion_sd"] = 0.2  # runs 20% apart: a 0% limit cannot be settled
    (pytester.path / "wide.json").write_text(json.dumps(data))
    pytester.makepyfile(f"""
        def test_written(edgecv_latency):
            edgecv_latency({str(bundle)!r}, baseline="new.json", seconds=0.5, runs=1, update=True)

        def test_inconclusive(edgecv_latency):
            edgecv_latency({str(bundle)!r}, baseline="wide.json", max_regression=0.0, seconds=0.5, runs=1)

        def test_inconclusive_fails_when_asked(edgecv_latency):
            edgecv_latency({str(bundle)!r}, baseline="wide.json", max_regression=0.0, seconds=0.5, runs=1,
                           on_inconclusive="fail")
    """)
    result = pytester.runpytest("-rs")
    outcomes = result.parseoutcomes()
    # the update may be refused as too noisy on a busy moment: then it fails, saying so
    assert outcomes.get("skipped") == 1 and outcomes.get("failed", 0) in (1, 2)
    result.stdout.fnmatch_lines(["*latency inconclusive*"])
    if outcomes.get("passed") == 1:
        assert json.loads((pytester.path / "new.json").read_text())["schema"] == L.SCHEMA


@pytest.mark.slow
def test_check_latency_raises_on_a_regression(default_bundles, recorded, tmp_path):
    from edgecv.testing import LatencyRegression, check_latency

    with pytest.raises(LatencyRegression, match="latency regression"):
        check_latency(
            default_bundles["onnxruntime"],
            _edited(recorded, tmp_path, _scale(0.2)),
            seconds=0.8,
            runs=1,
            max_reference_shift=10.0,
        )
    with pytest.raises(EdgecvError, match="either baseline= .* or against="):
        check_latency(default_bundles["onnxruntime"])


# --- the machine's noise, the reference workload ---------------------------------------------------------


def test_cpu_load_sees_this_process_working():
    with L.CpuLoad() as load:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    if not load.result:
        pytest.skip("/proc/stat is not readable here")
    assert load.result["own_share"] > 0.1 and 0 <= load.result["others_share"] <= 1


@pytest.mark.parametrize(
    "load,busy",
    [
        ({"others_share": 0.02, "steal_share": 0.0}, False),
        ({"others_share": 0.45, "steal_share": 0.0}, True),
        ({"others_share": 0.0, "steal_share": 0.2}, True),
        ({}, False),
    ],
)
def test_busy_reason(load, busy):
    assert bool(L.busy_reason(load)) == busy


def test_reference_workload_file_is_what_its_script_builds():
    pytest.importorskip("onnx")
    from edgecv.assets import reference_workload as R

    assert R.PATH.read_bytes() == R.build()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_reference_workload_runs_on_the_models_backend(backend):
    pytest.importorskip(backend)
    ref = L.ReferenceWorkload(backend, threads=1)
    ref()
    assert ref.describe() == {"workload": "reference-workload.onnx", "backend": backend, "threads": 1}


@pytest.mark.parametrize(
    "text,flags",
    [
        ("processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni\n", ["avx2", "avx512f", "avx512_vnni"]),
        (
            "flags\t\t: fpu sse avx2 avx512f avx512_vnni avx_vnni avx512_bf16 amx_tile amx_int8 amx_bf16\n",
            list(__import__("edgecv.cpu", fromlist=["ISA_FLAGS"]).ISA_FLAGS),
        ),
        ("flags\t\t: fpu sse sse2\n", []),
        ("", []),
    ],
)
def test_isa_is_read_from_the_flags_line(text, flags):
    from edgecv.cpu import isa

    assert isa(text) == flags


@pytest.mark.parametrize(
    "flags,bf16",
    [
        (["avx2"], False),
        (["avx2", "avx512f", "avx512_vnni"], False),  # VNNI speeds INT8, not bf16
        (["avx2", "avx512f", "avx512_vnni", "avx512_bf16"], True),
        (["avx2", "avx512f", "amx_tile", "amx_int8", "amx_bf16"], True),
    ],
)
def test_auto_float_precision_follows_the_cpus_bf16(flags, bf16):
    """OpenVINO's ``inference_precision="auto"``: bf16 only where the CPU computes it natively."""
    from edgecv.cpu import computes_bf16, float_precision

    assert computes_bf16(flags) is bf16
    assert float_precision(flags) == ("bf16" if bf16 else "f32")
