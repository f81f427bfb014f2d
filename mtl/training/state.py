"""Training checkpoints, written atomically: a staging folder beside the target first, then one rename.

Layout under a run's ``checkpoints/``: ``epoch-N/`` (accelerate state + ``trainer_state.json``) for the
latest finished epoch, and ``best-model.safetensors`` for the best weights so far. A killed run leaves
at most a staging folder behind, which :func:`latest_checkpoint` ignores and the next save removes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError
from ..fs import STAGING_PREFIX, atomic_file, clean_orphans, swap_in

STATE_FILE = "trainer_state.json"
BEST_WEIGHTS = "best-model.safetensors"


def save_epoch_checkpoint(accelerator: Any, folder: Path, epoch: int, state: dict[str, Any], keep_last: int = 1) -> Path:
    """Save accelerate state and ``state`` for a finished epoch, then drop older epoch checkpoints.

    Call it on every process: accelerate writes what each process owns, the main process renames.
    """
    final = folder / f"epoch-{epoch}"
    tmp = folder / f"{STAGING_PREFIX}{final.name}-staging"  # one name all processes agree on
    if accelerator.is_main_process:
        clean_orphans(final)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
        swap_in(tmp, final)
        for old in _epoch_folders(folder)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete epoch checkpoint and its trainer state, or None."""
    for candidate in reversed(_epoch_folders(folder)):
        state_file = candidate / STATE_FILE
        if state_file.is_file():
            try:
                return candidate, json.loads(state_file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise CheckpointError(f"--resume: {state_file} is damaged ({error}); delete {candidate} to resume "
                                      "from an earlier epoch, or start afresh with --overwrite") from None
    return None


def has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a complete epoch checkpoint to resume from."""
    return latest_checkpoint(folder) is not None


def _epoch_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("epoch-") and p.name[6:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[6:]))


def save_weights(model: nn.Module, path: Path) -> None:
    """Write a model's weights to ``path`` (safetensors) through a temporary file and a rename."""
    from safetensors.torch import save_model

    with atomic_file(path) as tmp:
        save_model(model, str(tmp))


def load_weights(model: nn.Module, path: Path) -> None:
    """Load weights written by :func:`save_weights`."""
    from safetensors.torch import load_model

    load_model(model, str(path))


def remove_tree(folder: Path) -> None:
    """Delete a checkpoints folder after a successful run."""
    shutil.rmtree(folder, ignore_errors=True)
