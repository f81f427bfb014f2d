"""Speaker-disjoint splits: when file names carry a speaker id, no speaker is in two splits.

Speech Commands names clips ``<speaker>_nohash_<n>.wav`` (``_unknown_`` copies prefix the word:
``backward_0c540988_nohash_0.wav``); the speaker is the last ``_``-separated part before ``_nohash_``.
Files without an id (``_silence_`` cuts, noise) are their own group.

Example::

    groups = speaker_groups(dataset)            # None when the input column holds no speaker ids
    rest, held = grouped_hold_out(dataset, groups, 0.2, seed=42)
"""

from __future__ import annotations

import logging
from pathlib import PurePath
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Audio, Dataset

logger = logging.getLogger(__name__)

MARKER = "_nohash_"


def speaker_of(path: str) -> str | None:
    """The speaker id in a Speech Commands-style file name, or None."""
    name = PurePath(str(path).split("#t=")[0]).name
    if MARKER not in name:
        return None
    return name.split(MARKER)[0].rsplit("_", 1)[-1] or None


def speaker_groups(dataset: Dataset, column: str | None = None) -> list[str] | None:
    """One group id per row (the speaker, else the file itself), or None when no row names a speaker.

    ``column`` defaults to the first column other than ``label`` holding paths (strings, or undecoded
    ``datasets.Audio`` structs, whose path is read without loading the audio bytes).
    """
    if column is None:
        column = next((name for name, feature in dataset.features.items() if name != "label"
                       and (getattr(feature, "dtype", None) == "string" or isinstance(feature, Audio))), None)
    if column is None or column not in dataset.column_names or not len(dataset):
        return None
    values = dataset.with_format("arrow")[column]
    if pa.types.is_struct(values.type):
        if values.type.get_field_index("path") < 0:
            return None
        values = pc.struct_field(values, "path")
    paths = values.to_pylist()
    speakers = [speaker_of(p) if isinstance(p, str) else None for p in paths]
    if not any(speakers):
        return None
    return [s if s is not None else f"file:{p}" for s, p in zip(speakers, paths)]


def grouped_hold_out(dataset: Dataset, groups: Sequence[str], size: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split off about ``size`` of the rows, whole groups at a time: ``(rest, held out)``.

    Groups are dealt out in a seeded random order; a group goes to the held-out side while that side is
    short of its target for the group's commonest label, so label shares stay close to stratified.
    """
    labels = np.asarray(dataset["label"]) if "label" in dataset.column_names else np.zeros(len(dataset), int)
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    order = list(members)
    np.random.default_rng(seed).shuffle(order)
    values, totals = np.unique(labels, return_counts=True)
    target = dict(zip(values.tolist(), (totals * size).tolist()))
    taken = dict.fromkeys(target, 0.0)
    held: list[int] = []
    for group in order:
        rows = members[group]
        group_labels, counts = np.unique(labels[rows], return_counts=True)
        if all(taken[label] + count <= target[label] + 0.5 for label, count in zip(group_labels.tolist(), counts)):
            held += rows
            for label, count in zip(group_labels.tolist(), counts):
                taken[label] += count
    for group in order[:-1] if not held else ():  # every group outgrew its share: whole groups up to the size,
        held += members[group]                     # never all of them
        if len(held) >= size * len(dataset):
            break
    held_set = set(held)
    rest = [i for i in range(len(dataset)) if i not in held_set]
    logger.info("data: speaker-disjoint split: %d groups, %d rows held out (%.1f%%), seed %d",
                len(order), len(held), 100 * len(held) / max(len(dataset), 1), seed)
    return dataset.select(rest), dataset.select(sorted(held))


def hold_out_by_speaker(dataset: Dataset, size: float, seed: int) -> tuple[Dataset, Dataset] | None:
    """A speaker-disjoint hold-out when the rows name speakers, else None (the caller splits as usual)."""
    groups = speaker_groups(dataset)
    return None if groups is None else grouped_hold_out(dataset, groups, size, seed)
