"""Decode once: images and audio decoded into compact arrays (uint8 pixels, int16 samples), cached by ``datasets``.

A task that reads its inputs from files (``decoded_columns`` set) turns the input column into arrays once;
training then augments those arrays on the fly, so a second epoch, and a second run with unchanged files, opens
no image or audio file. The cache file (``<mtl cache>/decoded/<key>.arrow``) is keyed by the task's
``decode_settings()`` and by every input's identity: a file's path, size and modification time (a changed file
decodes again), or the bytes / values of inputs held in memory. A split cut from an already decoded split
(train/validation/test) is selected from it in this process: no file is opened again.

Example::

    decoded = decoded_inputs(task, split, "image")   # columns: pixels, size (+ label); cached on disk
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset

from ..data.columns import holds_text
from ..sources.cache import cache_root

logger = logging.getLogger(__name__)

_DECODED: "OrderedDict[str, tuple[Dataset, dict[str, int]]]" = OrderedDict()  # key -> (table, identity -> row)
_KEEP = 8  # decoded tables remembered in this process (memory-mapped from their cache files)


def decoded_inputs(task: Any, dataset: Dataset, column: str) -> Dataset:
    """``dataset`` with ``column`` replaced by the task's decoded columns (from the cache when possible)."""
    rest = dataset.remove_columns([column])
    table = _decoded_table(task, dataset, column)
    return datasets.concatenate_datasets([rest, table], axis=1) if rest.column_names else table


def is_decoded(task: Any, dataset: Dataset, column: str) -> bool:
    """Whether ``column`` of ``dataset`` is already decoded and cached (nothing would be opened)."""
    key, _ = _key(task, dataset, column)
    return key in _DECODED or _cache_file(key).is_file()


def _decoded_table(task: Any, dataset: Dataset, column: str) -> Dataset:
    key, identities = _key(task, dataset, column)
    path = _cache_file(key)
    if key in _DECODED:
        return _DECODED[key][0]
    if path.is_file():
        table = Dataset.from_file(str(path))
    elif (found := _covering_table(identities)) is not None:  # a split cut from a decoded one
        table = found[0].select([found[1][identity] for identity in identities])
        table = table.flatten_indices(cache_file_name=str(path)) if _on_disk(identities) else table
    else:
        raw = _undecoded(dataset.select_columns([column]))
        kwargs = {"cache_file_name": str(path)} if _on_disk(identities) else {"keep_in_memory": True}
        if _on_disk(identities):
            path.parent.mkdir(parents=True, exist_ok=True)
        # new_fingerprint: the key already names the inputs and settings; without it datasets would hash the bound
        # ``task.decode``, pickling the task's whole model (seconds for every split)
        table = raw.map(task.decode, batched=True, batch_size=64, remove_columns=[column], load_from_cache_file=True,
                        desc=f"decoding {column} (once; cached)", new_fingerprint=key, **kwargs)
        logger.info("decoded %d inputs once%s", len(table), f" into {path}" if _on_disk(identities) else "")
    _remember(key, table, identities)
    return table


def _remember(key: str, table: Dataset, identities: list[str]) -> None:
    _DECODED[key] = (table, {identity: row for row, identity in enumerate(identities)})
    while len(_DECODED) > _KEEP:
        _DECODED.popitem(last=False)


def _covering_table(identities: list[str]) -> tuple[Dataset, dict[str, int]] | None:
    wanted = set(identities)
    return next((found for found in reversed(_DECODED.values()) if wanted.issubset(found[1].keys())), None)


def _key(task: Any, dataset: Dataset, column: str) -> tuple[str, list[str]]:
    feature = dataset.features[column]
    if isinstance(feature, (datasets.Image, datasets.Audio)) or holds_text(feature):
        identities = [_identity(value) for value in _undecoded(dataset.select_columns([column]))[column]]
    else:  # arrays held in the table: the table's fingerprint names them
        identities = [f"row:{dataset._fingerprint}:{row}" for row in range(len(dataset))]
    digest = hashlib.sha256(pickle.dumps([type(task).__name__, task.decode_settings()]))
    for identity in identities:
        digest.update(identity.encode())
    return digest.hexdigest()[:32], identities


def _identity(value: Any) -> str:
    """A file's path, size and modification time (``path#fragment``: the file's, plus the fragment);
    otherwise a digest of the value (in-memory bytes, arrays, images)."""
    path = value.get("path") if isinstance(value, dict) and not value.get("bytes") and "array" not in value else value
    if isinstance(path, (str, os.PathLike)):
        name = str(path)
        on_disk = name if os.path.exists(name) else name.split("#", 1)[0]
        try:
            stat = os.stat(on_disk)
            return f"file:{name}:{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            return f"missing:{name}"  # decoding names the missing file
    return "value:" + hashlib.blake2b(pickle.dumps(value, protocol=5), digest_size=16).hexdigest()


def _on_disk(identities: list[str]) -> bool:
    """Cache on disk when the inputs are files (a re-run decodes nothing); in memory for inputs given in Python."""
    return bool(identities) and identities[0].startswith("file:")


def _undecoded(dataset: Dataset) -> Dataset:
    """Image / Audio columns as their stored bytes or paths: decoding is the task's."""
    for name, feature in dataset.features.items():
        if isinstance(feature, (datasets.Image, datasets.Audio)) and feature.decode:
            dataset = dataset.cast_column(name, type(feature)(decode=False))
    return dataset


def _cache_file(key: str) -> Path:
    return cache_root() / "decoded" / f"{key}.arrow"
