"""The output folder of a run: guarded against overwriting, written atomically.

Holds the transformers model files, ``metrics.json``, ``recipe.yaml`` (the resolved recipe),
``train_log.jsonl`` and, while training, ``checkpoints/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import MtlError, OutputExistsError

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"


def prepare_output_dir(directory: Path, *, overwrite: bool, resume: bool) -> None:
    """Create ``directory``; refuse a non-empty one unless ``overwrite`` (clear it) or ``resume`` (keep it)."""
    if overwrite and resume:
        raise MtlError("--overwrite and --resume contradict each other; give one")
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"output.dir {directory} is a file; choose a folder path")
    non_empty = directory.is_dir() and any(directory.iterdir())
    if resume:
        if not (directory / "checkpoints").is_dir():
            raise MtlError(f"--resume: {directory} has no checkpoints/ to resume from; run without --resume")
        return
    if non_empty and not overwrite:
        raise OutputExistsError(f"output.dir {directory} is not empty; pass --overwrite to replace it, "
                                f"--resume to continue its run, or set output.dir=another/folder")
    if non_empty:
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


def readable(path: Path) -> None:
    """Give a file written through ``tempfile`` (mode 0600) the usual permissions under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as out:
        out.write(text)
    readable(Path(tmp))
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
