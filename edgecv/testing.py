"""Latency regression tests in a user's own test suite.

As a pytest fixture (installed with edgecv as the ``edgecv`` pytest plugin)::

    def test_detector_latency(edgecv_latency):
        edgecv_latency("build/yolo-openvino-fp32", baseline="tests/latency.json", max_regression=0.10)

or as a plain function, :func:`check_latency`. The first run (or any run with
``EDGECV_UPDATE_BASELINE=1``) writes the baseline; later runs fail when the p50
end-to-end latency, as a ratio to a reference workload measured in the same run,
grows by more than ``max_regression``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

UPDATE_ENV = "EDGECV_UPDATE_BASELINE"


def check_latency(bundle: str | os.PathLike, baseline: str | os.PathLike, max_regression: float = 0.10,
                  batch: int = 1, seconds: float = 3.0, threads: int | None = None,
                  images: Sequence[Any] | None = None, update: bool | None = None) -> dict:
    """Benchmark ``bundle`` and compare it with ``baseline``; raise AssertionError on a regression.

    Returns the comparison rows (ratios now and in the baseline, relative change).
    """
    from .bench import bench, regressions

    result = bench([bundle], batches=(batch,), threads=(threads,), seconds=seconds, min_iters=20, images=images)
    path = Path(baseline)
    if update is None:
        update = os.environ.get(UPDATE_ENV, "") not in ("", "0")
    if update or not path.exists():
        result.save(path)
        return {"written": str(path), "rows": result.rows}
    fails, table = regressions(result, json.loads(path.read_text()), max_regression)
    if fails:
        raise AssertionError("latency regression:\n" + "\n".join(fails))
    return {"rows": table}


try:  # the fixture exists only where pytest does
    import pytest

    @pytest.fixture
    def edgecv_latency():
        """``edgecv_latency(bundle, baseline=..., max_regression=0.10, ...)``: see :func:`check_latency`."""
        return check_latency
except ImportError:  # pragma: no cover - a device install without pytest
    pass
