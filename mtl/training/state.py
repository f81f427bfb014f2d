"""Training checkpoints, written atomically: a staging folder beside the target first, then one rename.

Layout under a run's ``checkpoints/``: the newest checkpoint, ``epoch-N/`` after a finished epoch or ``step-N/``
inside one (``train.save_every_steps``), each holding accelerate state + ``trainer_state.json``, and
``best-model.safetensors`` for the best weights so far. A killed run leaves
at most a staging folder behind, which :func:`latest_checkpoint` ignores and the next save removes.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, OutputExistsError
from ..fs import STAGING_PREFIX, atomic_file, clean_orphans, swap_in

STATE_FILE = "trainer_state.json"
BEST_WEIGHTS = "best-model.safetensors"


def save_checkpoint(accelerator: Any, folder: Path, name: str, state: dict[str, Any]) -> Path:
    """Save accelerate state and ``state`` as ``folder/name``, then drop every older checkpoint.

    ``name`` is ``epoch-N`` after the N-th epoch (counted from 1, as the log counts), ``step-N`` inside one. Call
    it on every process: accelerate writes what each process owns, the main process renames.
    """
    final = folder / name
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
        for old in checkpoint_folders(folder):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The complete checkpoint with the most optimizer steps and its trainer state, or None."""
    found = []
    for candidate in checkpoint_folders(folder):
        state_file = candidate / STATE_FILE
        if state_file.is_file():
            try:
                state = json.loads(state_file.read_text())
                found.append((int(state["result"]["global_step"]), candidate, state))
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
                raise CheckpointError(f"resume: {state_file} is damaged ({error}); delete {candidate} to resume "
                                      f"from an earlier checkpoint, or start afresh ({START_AFRESH})") from None
    if not found:
        return None
    _, newest, state = max(found, key=lambda item: item[0])
    return newest, state


def has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a complete checkpoint to resume from."""
    return latest_checkpoint(folder) is not None


def checkpoint_folders(folder: Path) -> list[Path]:
    """The checkpoint folders (``epoch-N``, ``step-N``) in a run's ``checkpoints/``, complete or not."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_dir() and p.name.partition("-")[0] in ("epoch", "step")
            and p.name.partition("-")[2].isdigit()]


START_AFRESH = "--overwrite on the command line; in Python, fit in another output_dir"  # how a stopped run's messages
# say to start over, for both ways a run is started


def refuse_earlier_checkpoints(run_dir: Path) -> None:
    """A new (not resumed) run must not write over the checkpoints an earlier run left in ``run_dir``: they are
    what ``resume=True`` continues from, and a new run would replace them epoch by epoch."""
    found = sorted(p.name for p in checkpoint_folders(run_dir / "checkpoints"))
    if found:
        raise OutputExistsError(f"fit: output_dir {run_dir} holds an earlier run's checkpoints ({', '.join(found)}); "
                                "pass resume=True to continue that run, or give another output_dir (delete "
                                f"{run_dir / 'checkpoints'} to start afresh there)")


def random_states() -> tuple[Any, ...]:
    """This process's Python, NumPy, torch CPU and CUDA random states (see :func:`set_random_states`)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def set_random_states(states: tuple[Any, ...]) -> None:
    """Put back random states taken by :func:`random_states`."""
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])
    if states[3] is not None:
        torch.cuda.set_rng_state_all(states[3])


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
