"""Writing files and folders so that a crash never leaves half of them: stage beside the target, then rename.

One helper for every atomic write in mtl: :func:`write_text_atomic` for a file, :func:`atomic_folder` for a
whole folder (a model, a run's outputs, a training checkpoint). A folder is swapped in with one
``renameat2(RENAME_EXCHANGE)`` where Linux offers it, so a kill at any moment leaves the old folder or the new
one under the target's name, never a mix; elsewhere the old folder is renamed aside first and
:func:`clean_orphans` puts it back if the process died between the two renames.

Example::

    with atomic_folder(Path("outputs/run")) as staging:
        model.save_pretrained(staging)          # nothing is visible at outputs/run until the block ends
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

STAGING_PREFIX = ".tmp-mtl-"  # every temporary file or folder mtl leaves beside a target starts with this
MARKER_FILE = ".mtl-output"  # written first into every folder mtl creates; --overwrite replaces only such folders
_ASIDE = "old"
_RENAME_EXCHANGE = 2  # linux/fs.h


def readable(path: Path) -> None:
    """Give a file written through ``tempfile`` (mode 0600) the usual permissions under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; when the block ends without error it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=_prefix(path), dir=path.parent)
    os.close(handle)
    try:
        yield Path(tmp)
        readable(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    """:func:`write_text_atomic` of ``data`` as indented JSON (non-JSON values as text)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; when the block ends without error it replaces ``target``
    whole (the old folder, if any, is deleted); on error it is removed and ``target`` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_prefix(target), dir=target.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        swap_in(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def new_folder(target: Path) -> Iterator[Path]:
    """Yield a staging folder that becomes ``target`` when the block ends without error; ``target`` must not exist
    (or be empty) then: FileExistsError if another process made it first. A cache entry is built this way."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_prefix(target), dir=target.parent))
    try:
        yield staging
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        try:
            os.rename(staging, target)  # refuses a non-empty target: a concurrent builder won
        except OSError as error:
            if target.exists():
                raise FileExistsError(f"{target} appeared while it was being built") from error
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def swap_in(staging: Path, target: Path) -> None:
    """Put folder ``staging`` at ``target``; whatever was at ``target`` ends up at ``staging`` and is deleted."""
    if target.exists() and _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)
        return
    aside = staging.with_name(f"{staging.name}-{_ASIDE}")
    if target.exists():
        os.replace(target, aside)  # a kill right after this: clean_orphans renames it back
    os.replace(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


def remove_folder(folder: Path) -> None:
    """Delete ``folder``, renamed aside first, so that a crash never leaves it half-deleted under its name."""
    trash = Path(tempfile.mkdtemp(prefix=_prefix(folder), dir=folder.parent))
    os.replace(folder, trash / "removed")
    shutil.rmtree(trash, ignore_errors=True)


def clean_orphans(target: Path) -> list[Path]:
    """Remove what killed processes left beside ``target`` (staging folders and files); if ``target`` itself is
    missing because a process died mid-swap, the old folder is put back first. Returns the removed paths."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    prefix = f"{STAGING_PREFIX}{target.name}-"
    leftovers = sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix) and not _in_use(p))
    for path in leftovers:
        if path.name.endswith(f"-{_ASIDE}") and path.is_dir() and not target.exists():
            os.replace(path, target)
    removed = [p for p in leftovers if p.exists()]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return removed


def _prefix(target: Path) -> str:
    return f"{STAGING_PREFIX}{target.name}-{os.getpid()}-"


def _in_use(path: Path) -> bool:
    """Whether the process that made ``path`` (its id is in the name) is still running."""
    pid = path.name.rsplit("-", 2 if path.name.endswith(f"-{_ASIDE}") else 1)[0].rsplit("-", 1)[-1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def walk_paths(folder: Path) -> Iterator[Path]:
    """Every file and folder below ``folder``, following links to folders (``Path.rglob`` does not before Python
    3.13, so a data folder whose label folders are links looked empty); each real folder is entered once."""
    seen: set[tuple[int, int]] = set()
    for root, folders, files in os.walk(folder, followlinks=True):
        info = os.stat(root)
        if (info.st_dev, info.st_ino) in seen:
            folders[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        base = Path(root)
        yield from (base / name for name in folders)
        yield from (base / name for name in files)
