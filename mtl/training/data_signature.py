"""What a run was trained on, and with which settings, kept beside its checkpoints, so that ``--resume`` refuses
other data and, in Python, other settings (the command line compares the recipe itself).

A checkpoint holds the model, the optimizer and how far through the epoch the run was; resumed on other
examples (a file edited since, rows added or dropped, labels changed) it would skip the wrong batches and end with
weights no uninterrupted run has. The digest covers every example's input and label in order, without decoding
images or audio (their bytes or paths are what is hashed).

Example::

    check_resumed_data(run_dir / "checkpoints", {"train": train_set, "validation": validation_set}, resuming=True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from datasets import Dataset

from ..config.schema import changed_keys, flat_keys
from ..errors import MtlError
from ..fs import write_json
from .state import START_AFRESH

SIGNATURE_FILE = "data.json"
SETTINGS_FILE = "settings.json"
RESUMABLE_SETTINGS = ("train.num_workers", "train.log_every", "train.report_to")  # how batches are read and logged
BATCH = 256  # rows hashed at a time: embedded images are copied twice per batch (to Python, then pickled)


def data_signature(split: Dataset) -> dict[str, Any]:
    """``{"examples": n, "labels": {label: count}, "digest": sha256}`` of a split's rows in order (every column,
    undecoded)."""
    digest = hashlib.sha256()
    for batch in split.with_format("arrow").iter(batch_size=BATCH):
        digest.update(pickle.dumps(batch.to_pydict(), protocol=4))
    feature = split.features.get("label")
    names = getattr(feature, "names", None)  # a ClassLabel: counted by name, as the message shows them
    labels = Counter(names[label] if names else str(label) for label in split["label"]) if feature else {}
    return {"examples": len(split), "labels": dict(sorted(labels.items())), "digest": digest.hexdigest()}


def check_resumed_data(folder: Path, splits: Mapping[str, Dataset], *, resuming: bool, write: bool = True) -> None:
    """Keep ``splits``' signatures in ``folder`` (a run's ``checkpoints/``) for a fresh run (``write``: on the
    main process); on a resumed one, an :class:`~mtl.errors.MtlError` saying how they differ from the kept ones.
    Checkpoints written before signatures were kept resume unchecked."""
    path = folder / SIGNATURE_FILE
    if not resuming:
        if write:  # hashed only where it is written
            folder.mkdir(parents=True, exist_ok=True)
            write_json(path, {name: data_signature(split) for name, split in splits.items()})
        return
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    now = {name: data_signature(split) for name, split in splits.items() if name in kept}
    changes = [_difference(name, kept[name], now[name]) for name in now if kept[name] != now[name]]
    if changes:
        raise MtlError(f"resume: the data differ from those the run started with ({'; '.join(changes)}); its "
                       "checkpoint would continue on other examples and end unlike any whole run. Resume with the "
                       f"data as they were, or start afresh ({START_AFRESH})")


def _difference(name: str, kept: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    if kept["examples"] != now["examples"]:
        return f"{name}: {kept['examples']:,} examples then, {now['examples']:,} now"
    if kept["labels"] != now["labels"]:
        return f"{name}: label counts {kept['labels']} then, {now['labels']} now"
    return (f"{name}: the same number of examples and labels, but other inputs (texts, files, or the files' paths: "
            "a data folder that moved) or another order")


def check_resumed_settings(folder: Path, settings: Mapping[str, Any], *, resuming: bool, write: bool = True) -> None:
    """Keep a fit's ``settings`` (``{"train": TrainConfig, "freeze": ..., ...}``) in ``folder`` for a fresh run;
    on a resumed one, an :class:`~mtl.errors.MtlError` naming those that changed (a resumed run given more steps or
    another rate ends unlike any whole run). Checkpoints written before settings were kept resume unchecked."""
    path = folder / SETTINGS_FILE
    now = flat_keys(json.loads(json.dumps(settings, default=_plain)))
    if not resuming:
        if write:
            folder.mkdir(parents=True, exist_ok=True)
            write_json(path, now)
        return
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if changed := changed_keys(kept, now, RESUMABLE_SETTINGS):
        raise MtlError(f"resume: the settings differ from those the run started with ({changed}); resume with the "
                       "same settings, or start afresh in another output_dir")


def _plain(value: Any) -> Any:
    """A dataclass as its fields, anything else JSON cannot hold as its text."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)
