"""The task as a seam: what a detector, a classifier or a segmenter does differently, in one
record each (:class:`~edgecv.tasks.base.Task`), looked up by the manifest's ``task``.

Each task owns how the image is placed into the input (a letterbox or a centre crop), its
manifest sections (built at export and validated at load), the decoding of the graph's
fixed-size outputs into its result type, its default size and score floor, the name of its
metric, its evaluator (named here, imported only when a data set is evaluated) and how its
results are drawn and printed. The runtime, the manifest, the harness and the CLI look the
task up instead of branching on its name. numpy and OpenCV only.

Adding a task is one module here plus its registration below (and, to export it, its graph
wrapper under ``edgecv.export``); see docs/architecture.md.
"""

from __future__ import annotations

from ..errors import BundleError
from .base import Task
from .classify import Classify
from .detect import Detect
from .segment import Segment

_TASKS: dict[str, Task] = {}


def register(task: Task) -> None:
    """Add a task. Raises ValueError on a duplicate name."""
    if task.name in _TASKS:
        raise ValueError(f"task '{task.name}' is already registered")
    _TASKS[task.name] = task


for _t in (Detect(), Classify(), Segment()):
    register(_t)


def get(name: str) -> Task:
    """The task called ``name``; :class:`BundleError` names the known ones."""
    if name not in _TASKS:
        raise BundleError(f"task '{name}' is not one of {names()}")
    return _TASKS[name]


def names() -> tuple[str, ...]:
    """Every registered task's name."""
    return tuple(_TASKS)


__all__ = ["Classify", "Detect", "Segment", "Task", "get", "names", "register"]
