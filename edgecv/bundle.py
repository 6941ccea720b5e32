"""The bundle: a directory holding native model files and ``edgecv.json``, the manifest.

Writing is atomic (staged in a hidden sibling directory, then renamed into place);
opening validates the manifest against the schema and checks every file's hash
before any backend sees it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import targets, tasks
from .errors import BundleError, UnknownTargetError
from .schema import check_fields

MANIFEST_NAME = "edgecv.json"
SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --- schema -----------------------------------------------------------------------------------

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "task": str,
    "name": str,
    "target": str,
    "precision": str,
    "classes": list,
    "files": list,
    "input": dict,
    "output": dict,
    "provenance": dict,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "edgecv_version": str,
    "runtime": dict,
    "validation": (dict, type(None)),
}
_INPUT: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "shape": list,
    "layout": str,
    "dtype": str,
    "color": str,
    "normalization": dict,
}


def _check_relpath(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 255:
        raise BundleError(f"manifest: file name {name!r} is not a short non-empty string")
    p = Path(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or ".." in p.parts or "\\" in name or p.name != name:
        raise BundleError(f"manifest: file name {name!r} must be a plain name inside the bundle directory")
    return name


def validate_manifest(m: Any) -> dict:
    """Check a parsed manifest against schema version :data:`SCHEMA_VERSION`; return it.

    Raises:
        BundleError: naming the first field that is missing, of the wrong type or out of range.
    """
    if not isinstance(m, dict):
        raise BundleError("manifest: the top level must be a JSON object")
    version = m.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise BundleError(
            f"manifest: schema version {version} is newer than this edgecv understands ({SCHEMA_VERSION}); "
            "upgrade edgecv to load this bundle"
        )
    check_fields(m, _REQUIRED, _OPTIONAL, "manifest")
    if version != SCHEMA_VERSION:
        raise BundleError(f"manifest: unsupported schema version {version} (this edgecv reads {SCHEMA_VERSION})")
    unknown = set(m) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise BundleError(f"manifest: unknown fields {sorted(unknown)} for schema version {SCHEMA_VERSION}")
    if m["task"] not in tasks.names():
        raise BundleError(f"manifest: task '{m['task']}' is not one of {tasks.names()}")
    task = tasks.get(m["task"])
    try:
        target = targets.get(m["target"])
    except UnknownTargetError:
        raise BundleError(f"manifest: target '{m['target']}' is not one of {targets.keys()}") from None
    if m["precision"] not in target.precisions:
        raise BundleError(f"manifest: precision '{m['precision']}' is not one of {target.precisions} ({target.key})")
    if not m["classes"] or not all(isinstance(c, str) for c in m["classes"]) or len(m["classes"]) > 100_000:
        raise BundleError("manifest: classes must be a non-empty list of names")
    if not m["files"]:
        raise BundleError("manifest: files lists no model file")
    seen = set()
    for f in m["files"]:
        if not isinstance(f, dict):
            raise BundleError("manifest: each entry of files must be an object")
        check_fields(f, {"path": str, "sha256": str, "size": int, "role": str}, {}, "files[]")
        _check_relpath(f["path"])
        if f["path"] in seen or f["path"] == MANIFEST_NAME:
            raise BundleError(f"manifest: file {f['path']!r} listed twice or shadows the manifest")
        seen.add(f["path"])
        if len(f["sha256"]) != 64 or f["size"] < 0:
            raise BundleError(f"manifest: file {f['path']!r} has a malformed hash or size")
    check_fields(m["input"], {**_INPUT, task.placement: dict}, {}, "input")
    shape = m["input"]["shape"]
    if (
        len(shape) != 4
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or not all(0 < d <= 16384 for d in shape[1:])
    ):
        raise BundleError(
            f"manifest: input.shape {shape} must be [batch, H, W, 3] with sizes 1..16384 (batch -1 = dynamic)"
        )
    if m["input"]["layout"] != "NHWC" or m["input"]["dtype"] != "uint8" or m["input"]["color"] not in ("RGB", "BGR"):
        raise BundleError("manifest: this edgecv runs uint8 NHWC inputs in RGB or BGR order only")
    task.validate_input(m)
    task.validate_output(m)
    return m


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """An opened, verified bundle directory."""

    path: Path
    manifest: dict

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True) -> Bundle:
        """Open the bundle at ``path``: read and validate the manifest, check every file's hash
        (``verify``; a backend then reads its files with :meth:`read`, which checks them again).

        Raises:
            BundleError: the directory, manifest or a file is missing, malformed or tampered with.
        """
        root = Path(path)
        if not root.is_dir():
            hint = " (a bundle is a directory made by `edgecv export`)" if root.exists() else ""
            raise BundleError(f"no bundle at '{root}'{hint}")
        mpath = root / MANIFEST_NAME
        if not mpath.is_file():
            raise BundleError(f"'{root}' has no {MANIFEST_NAME}: not an edgecv bundle, or an interrupted export")
        if mpath.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"'{mpath}' is larger than {MAX_MANIFEST_BYTES} bytes: refusing to parse it")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"'{mpath}' is not valid JSON: {e}") from None
        bundle = cls(root, validate_manifest(manifest))
        if verify:
            bundle.verify()
        return bundle

    def file(self, role: str) -> Path:
        """Path of the file with ``role`` (e.g. ``model``, ``weights``), confined to the bundle."""
        for f in self.manifest["files"]:
            if f["role"] == role:
                return self._confined(f["path"])
        raise BundleError(f"bundle '{self.path}' has no file with role '{role}'")

    def _confined(self, name: str) -> Path:
        p = self.path / _check_relpath(name)
        if p.is_symlink() or not p.resolve().is_relative_to(self.path.resolve()):
            raise BundleError(f"bundle file {name!r} is a link or lies outside the bundle directory")
        return p

    def verify(self) -> None:
        """Check the size and sha256 of every listed file.

        A file may still change on disk after this check: a backend reads its files with
        :meth:`read`, which checks the very bytes it hands over.
        """
        for f in self.manifest["files"]:
            p = self._confined(f["path"])
            if not p.is_file():
                raise BundleError(f"bundle '{self.path}' is missing {f['path']}: re-export it")
            size = p.stat().st_size
            self._check(f, size, sha256_file(p) if size == f["size"] else "")

    def _check(self, entry: dict, size: int, sha256: str) -> None:
        """Raise unless ``size`` and ``sha256`` are those the manifest lists for ``entry``."""
        if size != entry["size"]:
            raise BundleError(
                f"bundle file {entry['path']} is {size} bytes, the manifest says {entry['size']}: "
                "the file is truncated or was replaced; re-export the bundle"
            )
        if sha256 != entry["sha256"]:
            raise BundleError(
                f"bundle file {entry['path']} does not match its sha256 in the manifest: "
                "it was modified after export; re-export the bundle"
            )

    def read(
        self, role: str | None = None, *, name: str | None = None, into: Callable[[int], Any] | None = None
    ) -> Any:
        """The contents of one file, read once and checked against the manifest's size and
        sha256: the bytes to hand to a backend's library, so that what was checked is what runs
        (a file replaced after the check cannot slip in between).

        Args:
            role: the file's role (``model``, ``weights``); or
            name: its name in the manifest (e.g. one of several plans).
            into: ``into(size)`` returns a writable buffer of ``size`` bytes to read into (memory
                the backend's library owns, so that the file is held once); default: ``bytes``.

        Returns:
            ``bytes``, or the buffer ``into`` returned, filled.

        Raises:
            BundleError: no such file, or its contents are not those the manifest lists.
        """
        if (role is None) == (name is None):
            raise ValueError("read() takes a role or a name")
        entry = next(
            (f for f in self.manifest["files"] if (f["role"] == role if name is None else f["path"] == name)), None
        )
        if entry is None:
            what = f"role '{role}'" if name is None else f"name {name!r}"
            raise BundleError(f"bundle '{self.path}' has no file with {what}")
        p = self._confined(entry["path"])
        try:
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as e:
            raise BundleError(
                f"bundle '{self.path}': cannot read {entry['path']} ({e.strerror}): re-export it"
            ) from None
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size != entry["size"]:
                self._check(entry, size, "")
            if into is None:
                data = fh.read(size + 1)  # one byte more: a file that grew meanwhile is caught
                got, digest = len(data), hashlib.sha256(data).hexdigest()
            else:
                data = into(size)
                view = memoryview(data).cast("B")
                got = 0
                while got < size and (n := fh.readinto(view[got:])):
                    got += n
                got += len(fh.read(1))
                digest = hashlib.sha256(view[: min(got, size)]).hexdigest()
        self._check(entry, got, digest)
        return data

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.manifest["classes"])

    def size_bytes(self) -> int:
        """Total size of the model files and manifest."""
        return sum(f["size"] for f in self.manifest["files"]) + (self.path / MANIFEST_NAME).stat().st_size


# --- writing ----------------------------------------------------------------------------------


@contextlib.contextmanager
def staging(dest: str | os.PathLike) -> Iterator[Path]:
    """A hidden temporary directory beside ``dest`` to build a bundle in.

    On error inside the block it is removed, leaving ``dest`` as it was; the
    caller finishes with :func:`commit`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    try:
        yield tmp
    finally:  # after a successful commit() the directory has been renamed away
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_stale(dest: Path) -> list[Path]:
    """Remove what exports killed before they finished left beside ``dest`` (their staging
    directories, and a replaced bundle not yet deleted), when their process is gone. If
    ``dest`` itself is missing and a replaced bundle is left, it is put back. Returns what was
    removed or restored."""
    done = []
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.(tmp|old)-(\d+)(-.*)?$")
    for p in sorted(dest.parent.iterdir()) if dest.parent.is_dir() else []:
        m = pattern.match(p.name)
        if not m or _pid_alive(int(m.group(2))):
            continue
        if m.group(1) == "old" and not dest.exists() and (p / MANIFEST_NAME).is_file():
            os.replace(p, dest)  # the swap was cut between its two renames: the previous bundle returns
        else:
            shutil.rmtree(p, ignore_errors=True)
        done.append(p)
    return done


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system cannot."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    return rc == 0


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: Path, dest: str | os.PathLike, manifest: dict, roles: dict[str, str]) -> Path:
    """Hash the files in ``tmp``, write the manifest, and move ``tmp`` to ``dest`` atomically.

    Args:
        tmp: the staging directory from :func:`staging`.
        dest: final bundle directory; an existing bundle there is replaced in one rename.
        manifest: the manifest without ``files`` (filled here).
        roles: file name -> role (``model``, ``weights``, ...) for every model file.
    """
    dest = Path(dest)
    files = []
    for name, role in roles.items():
        p = tmp / name
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
        files.append({"path": name, "role": role, "size": p.stat().st_size, "sha256": sha256_file(p)})
    _write_manifest(tmp, dict(manifest, files=files))
    if not dest.exists():
        try:
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
            return dest
        except OSError as e:  # another export put a bundle there meanwhile: replace it below
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    if dest.exists():
        if not (dest / MANIFEST_NAME).is_file() and any(dest.iterdir()):
            raise BundleError(
                f"'{dest}' exists and is not an edgecv bundle: refusing to replace it; choose another output"
            )
        # One atomic swap: at every instant dest is the previous bundle or the new one. The
        # previous one is then in the staging directory's place, renamed to .old and removed.
        swap_dir(tmp, dest)
    _fsync_dir(dest.parent)
    return dest


def swap_dir(tmp: Path, dest: Path) -> None:
    """Put directory ``tmp`` in the place of directory ``dest`` and remove the previous one: one
    atomic exchange where the OS has it (at every instant ``dest`` is the old folder or the new
    one), else two renames (a process killed between them leaves ``.<name>.old-*`` beside it,
    which :func:`clean_stale` repairs for bundles)."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{threading.get_ident()}")
    if _exchange(tmp, dest):
        os.replace(tmp, old)
    else:
        os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.replace(old, dest)
            raise
    shutil.rmtree(old, ignore_errors=True)


def write_validation(path: str | os.PathLike, validation: dict) -> None:
    """Record validation results in a bundle's manifest (atomically; model files untouched)."""
    root = Path(path)
    with _locked(root):
        bundle = Bundle.open(root, verify=False)
        _write_manifest(root, dict(bundle.manifest, validation=validation))


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive lock on a bundle while its manifest is rewritten (POSIX; elsewhere a no-op)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    if not root.is_dir():
        raise BundleError(f"no bundle at '{root}'")
    fd = os.open(root, os.O_RDONLY)  # the directory itself: no lock file left in the bundle
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_manifest(root: Path, manifest: dict) -> None:
    validate_manifest(manifest)
    atomic_write(root / MANIFEST_NAME, (json.dumps(manifest, indent=2, default=float) + "\n").encode("utf-8"))
    _fsync_dir(root)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path``, flush it to disk, and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def add_file(path: str | os.PathLike, name: str, data: bytes, role: str, update=None) -> Path:
    """Add (or replace) one file of a bundle and list it in the manifest, e.g. a TensorRT plan
    built on the device.

    The bundle is verified first; the file is written beside its final name and renamed
    into place, then the manifest is rewritten atomically, under a lock, so that concurrent
    additions to one bundle all land. ``update(manifest)`` may edit the new manifest (e.g.
    its ``runtime`` section) before it is written. A file of the same name is replaced.

    Raises:
        BundleError: the bundle does not verify, or ``name`` is not a plain file name.
    """
    root = Path(path)
    _check_relpath(name)
    if name == MANIFEST_NAME:
        raise BundleError(f"'{name}' is the manifest's own name")
    with _locked(root):
        bundle = Bundle.open(root)
        dest = bundle._confined(name)
        atomic_write(dest, data)
        entry = {"path": name, "role": role, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        files = [f for f in bundle.manifest["files"] if f["path"] != name] + [entry]
        manifest = json.loads(json.dumps(dict(bundle.manifest, files=files)))  # a deep copy to edit
        if update is not None:
            update(manifest)
        _write_manifest(root, manifest)
    return dest
