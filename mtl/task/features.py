"""A task's features for a split: preprocessed once and cached by ``datasets``, or transformed when read
(from inputs decoded once and cached, :mod:`mtl.task.decoding`).

The cache key holds the data's fingerprint, the task's class and options, and a digest of the checkpoint's
processor files, so an unchanged re-run re-tokenizes nothing and any change re-runs preprocessing.

Example::

    features = task_features(task, split, train=True)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from pathlib import Path
from typing import Any

from datasets import Dataset
from datasets.fingerprint import Hasher

from .decoding import decoded_inputs

logger = logging.getLogger(__name__)


def task_features(task: Any, dataset: Dataset, *, train: bool = False) -> Dataset:
    """``dataset`` as model features for ``task`` (a prepared :class:`~mtl.task.Task`); sets
    ``task.last_preprocessed_rows`` to how many rows were preprocessed now (0: all came from the cache)."""
    if task.transforms_on_the_fly:
        task.last_preprocessed_rows = 0
        column = task.spec.input_column
        if task.decoded_columns and column in dataset.column_names:
            dataset = decoded_inputs(task, dataset, column)
        return dataset.with_transform(functools.partial(task.transform, train=train))
    column = task.spec.input_column
    fingerprint = Hasher.hash([getattr(dataset, "_fingerprint", None), preprocess_key(task)])
    processed = {"rows": 0}

    def run(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        processed["rows"] += len(batch[column])
        return task.preprocess(batch)

    features = dataset.map(run, batched=True, remove_columns=[column], new_fingerprint=fingerprint,
                           desc=f"preprocessing ({task.spec.processor_class})")
    if len(dataset) and dataset.cache_files:
        logger.info("preprocessing: %s", f"{processed['rows']:,} examples processed" if processed["rows"]
                    else f"reused the datasets cache for {len(dataset):,} examples")
    task.last_preprocessed_rows = processed["rows"]
    return features


def preprocess_key(task: Any) -> list[Any]:
    """What preprocessing depends on besides the data: the task class, its options and the processor files."""
    return [type(task).__name__, dataclasses.asdict(task.options), processor_digest(task.source.path)]


def processor_digest(folder: Path) -> str:
    """A digest of a checkpoint's small processor files (tokenizer, preprocessor config), not its weights;
    computed once per version of those files."""
    files = sorted(path for path in Path(folder).iterdir() if path.is_file() and path.name != "config.json"
                   and path.suffix in {".json", ".txt", ".model"} and path.stat().st_size < 20_000_000)
    return _digest(tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size) for path in files))


@functools.lru_cache(maxsize=64)
def _digest(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in files:
        digest.update(Path(name).name.encode())
        digest.update(Path(name).read_bytes())
    return digest.hexdigest()
