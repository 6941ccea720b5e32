"""What the evaluation, bench and CLI print for people: aligned tables, points, progress bars."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    lines = [tuple(map(str, head)), *[tuple(map(str, r)) for r in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]

    def fmt(line: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))

    return "\n".join([fmt(lines[0]), "  ".join("-" * w for w in widths), *map(fmt, lines[1:])])


def points(v: float | None) -> str:
    """A fraction as points (x 100, two decimals); a dash where there is none."""
    return "—" if v is None or np.isnan(v) else f"{v * 100:.2f}"


def count(n: float, noun: str, plural: str | None = None) -> str:
    """A count with its noun, singular for one: ``1 class``, ``2 classes``, ``0 images``.

    Args:
        n: the count (a float that holds a whole number, e.g. a record's ``images``, is fine).
        noun: the singular; its plural adds ``es`` after s, x, z, ch and sh, ``ies`` for a
            consonant and y, else ``s``.
        plural: the plural where that rule does not make it.
    """
    k = int(n)
    if k == 1:
        return f"1 {noun}"
    if plural is None:
        if noun.endswith(("s", "x", "z", "ch", "sh")):
            plural = noun + "es"
        elif noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
            plural = noun[:-1] + "ies"
        else:
            plural = noun + "s"
    return f"{k} {plural}"


def progress_bar(iterable, total: int, desc: str, enabled: bool = True):
    """tqdm on stderr when it is installed and ``enabled``; the iterable itself otherwise."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
