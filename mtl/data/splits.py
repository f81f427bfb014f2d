"""Splits: missing validation and test splits carved from train (stratified, seeded, speaker-disjoint when the
files name speakers), and few-shot limits per class.

Example::

    rest, held_out = hold_out(train, 0.1, seed=42)
"""

from __future__ import annotations

import logging
from typing import Hashable

import numpy as np
import pyarrow as pa
from datasets import Audio, Dataset, DatasetDict, Image

from ..config.sections import DataConfig
from ..errors import DataError
from .speakers import hold_out_by_speaker

logger = logging.getLogger(__name__)

STANDARDISED: set[str] = set()  # fingerprints of splits already standardised and checked in this process


def inherit_checked(parent: Dataset, *parts: Dataset) -> tuple[Dataset, ...]:
    """Rows of a checked split need no second check: record ``parts`` as checked when ``parent`` was."""
    if parent._fingerprint in STANDARDISED:
        STANDARDISED.update(part._fingerprint for part in parts)
    return parts


def complete_splits(splits: DatasetDict, config: DataConfig) -> DatasetDict:
    """Carve missing test and validation splits out of train, stratified and seeded."""
    splits = DatasetDict(splits)
    for role, size in (("test", config.test_size), ("validation", config.validation_size)):
        if role in splits:
            continue
        splits["train"], splits[role] = hold_out(splits["train"], size, config.split_seed, names=("train", role))
        logger.info("data: no %s split given; held out %d training examples (%.0f%%, seed %d)",
                    role, len(splits[role]), 100 * size, config.split_seed)
    return DatasetDict({k: splits[k] for k in ("train", "validation", "test")})


def hold_out(dataset: Dataset, size: float, seed: int,
             names: tuple[str, str] = ("rest", "held out")) -> tuple[Dataset, Dataset]:
    """Split off a stratified, seeded fraction ``size``: (rest, held out); speaker-disjoint when file names carry
    speaker ids (Speech Commands' ``<speaker>_nohash_<n>.wav``). ``names`` name the two parts in the log."""
    by_speaker = hold_out_by_speaker(dataset, size, seed, names)
    if by_speaker is not None and len(by_speaker[1]):
        return inherit_checked(dataset, *by_speaker)
    if by_speaker is not None:
        logger.warning("data: too few speakers for a speaker-disjoint split of %.0f%%; splitting by clip", 100 * size)
    try:
        parts = dataset.train_test_split(test_size=size, stratify_by_column="label", seed=seed)
    except ValueError:  # a class with a single example, or fewer held-out rows than classes
        return inherit_checked(dataset, *_hold_out_keeping_singletons(dataset, size, seed, names))
    return inherit_checked(dataset, parts["train"], parts["test"])


def _hold_out_keeping_singletons(dataset: Dataset, size: float, seed: int,
                                 names: tuple[str, str]) -> tuple[Dataset, Dataset]:
    """The split when stratifying fails: classes with one example stay in the first part (a class never seen in
    training cannot be learnt); the rest is split stratified where scikit-learn can, else at random."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(dataset["label"])
    values, counts = np.unique(labels, return_counts=True)
    single = set(values[counts < 2].tolist())
    is_single = np.isin(labels, values[counts < 2])
    rows = np.flatnonzero(~is_single)
    held_count = max(1, round(size * len(dataset)))
    if single:
        names_of = getattr(dataset.features["label"], "names", None)
        shown = sorted(names_of[v] if names_of else str(v) for v in single)
        logger.warning("data: %d label%s with a single example (%s) stay%s in %s; %s has none of %s",
                       len(single), "s" if len(single) > 1 else "", ", ".join(shown[:5]) + (", ..." if len(shown) > 5
                                                                                            else ""),
                       "" if len(single) > 1 else "s", names[0], names[1], "them" if len(single) > 1 else "it")
    if held_count >= len(rows):
        raise DataError(f"data: {len(dataset)} examples are too few to hold out {held_count} {names[1]} examples "
                        f"({len(rows)} of them belong to labels with more than one example); add examples, or give "
                        "your own splits with data.files: {train: ..., validation: ..., test: ...}")
    try:
        rest, held = train_test_split(rows, test_size=held_count, stratify=labels[rows], random_state=seed)
    except ValueError:  # fewer held-out rows than classes: no stratified split exists
        logger.warning("data: %d %s examples cannot hold every one of %d labels; split at random (seed %d)",
                       held_count, names[1], len(values) - len(single), seed)
        rest, held = train_test_split(rows, test_size=held_count, random_state=seed)
    keep = np.sort(np.concatenate([rest, np.flatnonzero(is_single)]))
    return dataset.select(keep.tolist()), dataset.select(np.sort(held).tolist())


def limit_per_class(dataset: Dataset, limit: int, seed: int) -> Dataset:
    """Keep at most ``limit`` examples of each class, chosen at random with ``seed``."""
    labels = np.asarray(dataset["label"])
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        keep.extend(rng.permutation(indices)[:limit].tolist())
    logger.info("data: limit_per_class=%d keeps %d of %d training examples", limit, len(keep), len(dataset))
    return inherit_checked(dataset, dataset.select(sorted(keep)))[0]


def warn_shared_inputs(splits: DatasetDict, column: str, named: str) -> None:
    """Log one warning when validation or test rows have an input identical to a training row's (texts, file
    paths or in-memory file bytes; other inputs are not compared). Splits are left as drawn. ``named`` is the
    input column as the data names it, for the pandas fix shown."""
    train = input_keys(splits["train"], column)
    if train is None:
        return
    seen = {key for key in train if key is not None}
    found = []
    for name in ("test", "validation"):
        keys = input_keys(splits[name], column) if name in splits else None
        shared = sum(key is not None and key in seen for key in keys or ())
        if shared:
            found.append(f"{shared} of {len(keys)} {name} rows")
    if not found:
        return
    repeats = sum(key is not None for key in train) - len(seen)
    logger.warning("data: %s have the same %s as a training row%s, so their scores overstate how the model does on "
                   "new data; deduplicate the data before training, e.g. df.drop_duplicates(subset=[%r]) in pandas, "
                   "or, with split files, drop those rows from the validation and test files: "
                   "test[~test[%r].isin(train[%r])]", " and ".join(found), column,
                   f" ({repeats} training rows also repeat another training row)" if repeats else "", named, named,
                   named)


def input_keys(split: Dataset, column: str) -> list[Hashable] | None:
    """One hashable key per row, equal for identical inputs: the text or path itself, or a file's in-memory bytes
    (read as stored, nothing decoded); None for inputs that are not compared (arrays)."""
    values = split.with_format("arrow")[:][column]
    if isinstance(split.features[column], (Image, Audio)):
        return [item and (item.get("bytes") or item.get("path")) for item in values.to_pylist()]
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values.to_pylist()
    return None
