"""Latency regression tests in a user's own test suite.

As a pytest fixture (installed with edgecv as the ``edgecv`` pytest plugin)::

    def test_detector_latency(edgecv_latency):
        # against a stored baseline (recorded with EDGECV_UPDATE_BASELINE=1, then committed)
        edgecv_latency("build/yolo-openvino-fp32", baseline="tests/latency.json", max_regression=0.10)
        # or paired, against the released bundle, both run here
        edgecv_latency("build/yolo-openvino-fp32", against="release/yolo-openvino-fp32")

or as a plain function, :func:`check_latency`. Both use the gates of :mod:`edgecv.latency`:
a regression fails the test, an inconclusive result skips it with the reason (or retries
once, measuring longer, or fails: ``on_inconclusive``), and a missing baseline is an error
when the ``CI`` environment variable is set, a skip otherwise: a baseline is only ever
written when asked (``EDGECV_UPDATE_BASELINE=1`` or ``update=True``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

UPDATE_ENV = "EDGECV_UPDATE_BASELINE"
#: the most a retry measures, as a multiple of the first run's time
RETRY_CAP = 4.0


class LatencyRegression(AssertionError):
    """The gate found the model slower than allowed; the message has the figures."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def in_ci() -> bool:
    """Whether this runs in CI (the ``CI`` environment variable, as CI services set it)."""
    return _flag("CI")


def check_latency(
    bundle: str | os.PathLike,
    baseline: str | os.PathLike | None = None,
    max_regression: float = 0.10,
    *,
    against: str | os.PathLike | None = None,
    batch: int = 1,
    threads: int | None = None,
    seconds: float | None = None,
    runs: int | None = None,
    images: Sequence[Any] | None = None,
    update: bool | None = None,
    retry: bool = False,
    max_reference_shift: float | None = None,
    say: Any = None,
):
    """Gate ``bundle``'s latency; raise :class:`LatencyRegression` on a regression.

    Args:
        baseline: a stored baseline file (see :func:`edgecv.latency.record_baseline`).
        against: instead of a baseline, the old bundle, run paired with ``bundle`` here.
        update: write the baseline instead of checking (default: ``EDGECV_UPDATE_BASELINE``).
        retry: when inconclusive, measure once more for as long as the first run suggests
            (at most 4 times as long).
        max_reference_shift: see :func:`edgecv.latency.check_baseline`.

    Returns:
        the :class:`edgecv.latency.GateResult` (verdict ok or inconclusive), or the baseline
        written when updating.

    Raises:
        LatencyRegression: the whole interval of the slowdown lies above the limit.
        edgecv.errors.BaselineMissing: no baseline and no update asked for.
        edgecv.latency.NoisyBaseline: asked to write a baseline on a machine too noisy for one.
    """
    from . import latency as L
    from .errors import EdgecvError

    if (baseline is None) == (against is None):
        raise EdgecvError("check_latency takes either baseline= (a stored baseline) or against= (the old bundle)")

    def measured(secs: float | None) -> dict[str, Any]:  # the library's defaults unless a time was given
        return {} if secs is None else {"seconds": secs}

    if against is not None:

        def gate(secs: float | None):
            return L.compare_latency(
                against, bundle, max_regression, batch=batch, threads=threads, images=images, say=say, **measured(secs)
            )
    else:
        path = Path(baseline)  # type: ignore[arg-type]
        if update is None:
            update = _flag(UPDATE_ENV)
        if update:
            given_runs: dict[str, Any] = {} if runs is None else {"runs": runs}
            return L.record_baseline(
                bundle,
                path,
                batch=batch,
                threads=threads,
                images=images,
                say=say,
                **measured(seconds),
                **given_runs,
            )

        def gate(secs: float | None):
            shift = L.MAX_REFERENCE_SHIFT if max_reference_shift is None else max_reference_shift
            return L.check_baseline(
                bundle, path, max_regression, secs, runs, threads, images, say=say, max_reference_shift=shift
            )

    result = gate(seconds)
    v = result.verdict
    if retry and v.verdict == "inconclusive" and v.longer_by:
        first = result.settings["seconds_flag"]
        result = gate(first * min(v.longer_by, RETRY_CAP))
        v = result.verdict
    if v.verdict == "regression":
        raise LatencyRegression("latency regression:\n" + result.report())
    return result


try:  # the fixture exists only where pytest does
    import pytest

    @pytest.fixture
    def edgecv_latency():
        """``edgecv_latency(bundle, baseline=... | against=..., max_regression=0.10, on_inconclusive="skip", ...)``.

        ``on_inconclusive``: ``skip`` (default) skips the test with the reason, ``retry``
        measures once more for longer and skips if still inconclusive, ``fail`` fails it. A
        missing baseline fails the test when ``CI`` is set and skips it otherwise.
        Other arguments: see :func:`check_latency`.
        """
        from .errors import BaselineMissing

        def gate(bundle, baseline=None, max_regression=0.10, *, on_inconclusive: str = "skip", **kwargs):
            if on_inconclusive not in ("skip", "retry", "fail"):
                raise ValueError(f"on_inconclusive must be skip, retry or fail (got {on_inconclusive!r})")
            try:
                result = check_latency(bundle, baseline, max_regression, retry=on_inconclusive == "retry", **kwargs)
            except BaselineMissing as e:
                if in_ci():
                    pytest.fail(f"{e} (CI is set: a missing baseline is an error, never a pass)", pytrace=False)
                pytest.skip(str(e))
            if isinstance(result, dict):  # a baseline written on request
                return result
            if result.verdict.verdict == "inconclusive":
                from .latency import advice

                text = (
                    f"latency inconclusive: {result.verdict.summary()}; "
                    f"{advice(result.verdict, result.settings.get('seconds_flag'), result.mode == 'baseline')}"
                )
                if on_inconclusive == "fail":
                    pytest.fail(text, pytrace=False)
                pytest.skip(text)
            return result

        return gate
except ImportError:  # pragma: no cover - a device install without pytest
    pass
