"""The runtime side of the target records (:mod:`edgecv.targets`): whether a backend's library
is installed, and its detector class.

A backend module is imported only when it is used; :func:`is_available` looks the
library up with ``importlib.util.find_spec`` and imports nothing.
"""

from __future__ import annotations

import importlib
import importlib.util

from .. import targets
from ..errors import BackendUnavailableError
from ..targets import Target


def keys() -> list[str]:
    """Every registered backend key."""
    return list(targets.keys())


def entry(key: str) -> Target:
    """The target record of backend ``key`` (:class:`UnknownTargetError` when there is none)."""
    return targets.get(key)


def is_available(key: str) -> bool:
    """Whether the library backend ``key`` needs is installed (nothing is imported)."""
    try:
        return importlib.util.find_spec(entry(key).requires) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[str]:
    """The keys of the backends usable here."""
    return [k for k in targets.keys() if is_available(k)]


def usable_here(key: str) -> tuple[bool, str]:
    """Whether backend ``key`` can run here, and a note: why not and what to do, or (for a GPU
    backend) on what. Imports the backend's library (a broken install shows only then)."""
    e = entry(key)
    if e.usable_check:
        module, func = e.usable_check.split(":")
        return getattr(importlib.import_module(f".{module}", __package__), func)()
    if not is_available(key):
        return False, e.hint or f"pip install 'edgecv[{e.extra}]'"
    try:
        importlib.import_module(e.requires)
    except Exception as err:  # noqa: BLE001 - a broken install raises all sorts
        return False, f"import failed: {type(err).__name__}: {err}"
    return True, ""


def get_backend(key: str) -> type:
    """Import and return the detector class of backend ``key``."""
    e = entry(key)
    if not is_available(key):
        raise BackendUnavailableError(
            f"the {key} backend needs the '{e.requires}' package, which is not installed here: "
            + (e.hint or f"pip install 'edgecv[{e.extra}]'")
        )
    module, cls = e.runtime.split(":")
    return getattr(importlib.import_module(f".{module}", __package__), cls)
