"""Imported first by :mod:`edgecv.export`: the exporter refuses a torch or torchvision outside the
range it supports (:data:`edgecv.envcheck.TORCH_RANGE`) with what to install, rather than failing
later in a torch API that is missing or different."""

from ..envcheck import require_torch

require_torch()
