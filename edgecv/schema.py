"""Field checks shared by the manifest's validators (the bundle's, and each task's sections)."""

from __future__ import annotations

from typing import Any

from .errors import BundleError

Fields = dict[str, Any]  # field name -> type or tuple of types


def check_fields(obj: dict, required: Fields, optional: Fields, where: str) -> None:
    """Check that ``obj`` has every ``required`` field with its type, and ``optional`` ones
    with theirs where present. Raises :class:`BundleError` naming the first that is not."""
    for key, typ in required.items():
        if key not in obj:
            raise BundleError(f"manifest: {where} is missing the field '{key}'")
        if not isinstance(obj[key], typ) or (typ is int and isinstance(obj[key], bool)):
            raise BundleError(f"manifest: {where}.{key} has type {type(obj[key]).__name__}, expected {typ}")
    for key, typ in optional.items():
        if key in obj and not isinstance(obj[key], typ):
            raise BundleError(f"manifest: {where}.{key} has type {type(obj[key]).__name__}, expected {typ}")
