"""The output folder of a run: guarded against overwriting, written atomically.

Holds the transformers model files, ``metrics.json``, ``recipe.yaml`` (the resolved recipe),
``train_log.jsonl`` and, while training, ``checkpoints/``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

from ..errors import MtlError, OutputExistsError
from ..fs import remove_folder
from ..training.state import checkpoint_folders

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"


MARKER_FILE = ".mtl-output"  # written first into every folder mtl creates; --overwrite replaces only such folders


def check_output_dir(directory: Path, *, overwrite: bool, resume: bool, protected: Sequence[str | Path] = ()) -> bool:
    """Everything :func:`prepare_output_dir` checks, writing nothing; returns whether an old folder will be replaced.

    A non-empty folder is refused unless ``resume`` (kept) or ``overwrite``, and ``overwrite`` replaces only a
    folder that mtl itself wrote (its marker file), never ``/``, the home folder, the working directory or one
    of its parents, nor a folder that holds one of the ``protected`` paths (the data, the checkpoint). A folder
    left by a run that died before finishing anything (marker and recipe only) is replaced without a flag.
    """
    if overwrite and resume:
        raise MtlError("--overwrite and --resume contradict each other; give one")
    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"output.dir {directory} is a file; choose a folder path")
    _require_writable(directory)
    if resume:
        if not (directory / "checkpoints").is_dir():
            raise MtlError(f"--resume: {directory} has no checkpoints/ to resume from; run without --resume")
        return False
    existed = directory.is_dir() and any(directory.iterdir())
    if existed and not (overwrite or _unfinished(directory)):
        raise OutputExistsError(f"output.dir {directory} is not empty; pass --overwrite to replace it, "
                                f"--resume to continue its run, or set output.dir=another/folder")
    if existed:
        refuse_to_replace(directory, protected)
    return existed


def prepare_output_dir(directory: Path, *, overwrite: bool, resume: bool,
                       protected: Sequence[str | Path] = ()) -> bool:
    """Create ``directory`` for a run (after :func:`check_output_dir`) and mark it as mtl's; return whether this
    run created the folder."""
    directory = Path(directory).expanduser()
    if check_output_dir(directory, overwrite=overwrite, resume=resume, protected=protected):
        remove_folder(directory)
    if resume:
        return False
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        mark_as_output(directory)
    except OSError as error:
        raise OutputExistsError(f"output.dir {directory}: cannot write there ({error.strerror}); choose a folder "
                                "you can write to") from None
    return created


def _require_writable(directory: Path) -> None:
    """The folder, or the nearest folder above it that exists, must let this user create files."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputExistsError(f"output.dir {directory}: cannot write in {existing} (permission denied or not a "
                                "folder); choose a folder you can write to")


def clean_failed_run(directory: Path, created: bool) -> None:
    """Remove what a failed run wrote, so that the next attempt needs no flag; a run that wrote a checkpoint
    (after an epoch, or ``train.save_every_steps``) keeps its folder for ``--resume``."""
    directory = Path(directory).expanduser()
    if not directory.is_dir() or checkpoint_folders(directory / "checkpoints"):
        return
    if created:
        remove_folder(directory)
        return
    for item in directory.iterdir():  # the folder was there (empty) before the run: keep it, empty again
        shutil.rmtree(item) if item.is_dir() else item.unlink()


def mark_as_output(directory: Path) -> None:
    """Write mtl's marker into ``directory``: from now on ``--overwrite`` may replace it."""
    (directory / MARKER_FILE).write_text(json.dumps({"written_by": "mtl", "pid": os.getpid()}) + "\n")


def refuse_to_replace(directory: Path, protected: Sequence[str | Path] = ()) -> None:
    """Raise :class:`OutputExistsError` unless ``directory`` is a folder mtl wrote that holds nothing precious."""
    target = directory.expanduser().resolve()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if target == Path(target.anchor) or target == home or cwd == target or target in cwd.parents:
        raise OutputExistsError(f"refusing to replace {directory}: it is the root, the home folder, the working "
                                "directory or one of its parents; set output.dir to a folder of its own")
    for path in protected:
        held = Path(path).expanduser().resolve()
        if held == target or target in held.parents:
            raise OutputExistsError(f"refusing to replace {directory}: it holds {path}, an input of this run; "
                                    "set output.dir to a folder of its own")
    if not (target / MARKER_FILE).is_file():
        raise OutputExistsError(f"refusing to replace {directory}: mtl did not write it (no {MARKER_FILE} file); "
                                "delete it yourself if you are sure, or set output.dir=another/folder")


def _unfinished(directory: Path) -> bool:
    """A folder mtl marked whose run died before any epoch or result was written (marker and recipe only)."""
    names = {p.name for p in directory.iterdir()}
    return MARKER_FILE in names and names <= {MARKER_FILE, RECIPE_FILE}


