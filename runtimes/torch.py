"""The reference backend: the source PyTorch model run eagerly through the same
pre/post-processing graph that the exporter writes (built by edgecv.export)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Detector


class TorchDetector(Detector):
    """Runs an in-memory ``DetectorGraph`` module; made by :func:`edgecv.export.reference`."""

    key = "torch"

    def __init__(self, manifest: dict, bundle: Any = None, *, module: Any = None, **kwargs: Any) -> None:
        if module is None:
            from ..errors import EdgecvError

            raise EdgecvError("the torch backend runs a source model in memory: use edgecv.export.reference(model)")
        self.module = module
        super().__init__(manifest, bundle, **kwargs)

    def activate_impl(self) -> None:
        import torch

        self._torch = torch
        self.module.eval()
        if self.threads:
            torch.set_num_threads(int(self.threads))

    def infer_impl(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        t = self._torch
        with t.inference_mode():
            outs = self.module(t.from_numpy(batch), *(t.from_numpy(v) for v in (extra or {}).values()))
        names = list(self.output_names.values())
        return {n: o.numpy() for n, o in zip(names, outs)}

    def release_impl(self) -> None:
        self.module = None
