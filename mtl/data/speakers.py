"""Speaker-disjoint splits: when file names carry a speaker id, no speaker is in two splits.

Speech Commands names clips ``<speaker>_nohash_<n>.wav``; its ``_unknown_`` copies put the word first
(``backward_0c540988_nohash_0.wav.wav``). The speaker is the token right before ``_nohash_``, whatever precedes
it. Files without an id (``_silence_`` cuts, noise) are each their own group.

The hold-out itself is scikit-learn's ``StratifiedGroupKFold``: groups are never split and label shares stay
close to stratified; one fold (the one nearest the requested size) is held out.

Example::

    groups = speaker_groups(dataset)            # None when the input column holds no speaker ids
    rest, held = grouped_hold_out(dataset, groups, 0.2, seed=42)
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import PurePath
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Audio, Dataset

from .columns import holds_text

logger = logging.getLogger(__name__)

MARKER = "_nohash_"
FILE_GROUP = "file:"  # prefix of the group of a file that names no speaker
_SPEAKER = re.compile(r"(?:^|_)([^_]+)" + MARKER)  # the token right before the first _nohash_


def speaker_of(path: str) -> str | None:
    """The speaker id in a Speech Commands-style file name (the token right before ``_nohash_``), or None."""
    name = PurePath(str(path).split("#t=")[0]).name
    match = _SPEAKER.search(name)
    return match.group(1) if match else None


def speaker_groups(dataset: Dataset, column: str | None = None) -> list[str] | None:
    """One group id per row (the speaker, else ``file:<path>``), or None when no row names a speaker.

    ``column`` defaults to the first column other than ``label`` holding paths (strings, or undecoded
    ``datasets.Audio`` structs, whose path is read without loading the audio bytes).
    """
    if column is None:
        column = next((name for name, feature in dataset.features.items() if name != "label"
                       and (holds_text(feature) or isinstance(feature, Audio))), None)
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
    return [s if s is not None else f"{FILE_GROUP}{p}" for s, p in zip(speakers, paths)]


def grouped_hold_out(dataset: Dataset, groups: Sequence[str], size: float, seed: int,
                     names: tuple[str, str] = ("rest", "held out")) -> tuple[Dataset, Dataset]:
    """Split off about ``size`` of the rows, whole groups at a time, stratified by label: ``(rest, held out)``.

    ``StratifiedGroupKFold`` (seeded shuffle) deals the groups into ``round(1/size)`` folds and one fold is
    held out (for ``size`` over one half, one fold is kept and the others held out). With too few groups the
    held-out part is empty: the caller then splits clip by clip. ``names`` only name the two parts in the log.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(dataset["label"]) if "label" in dataset.column_names else np.zeros(len(dataset), int)
    groups = np.asarray(groups, dtype=object)
    held_is_fold = size <= 0.5
    n_splits = max(2, round(1 / (size if held_is_fold else 1 - size)))
    n_groups = len(set(groups.tolist()))
    if n_groups < n_splits or not 0 < size < 1:
        logger.info("data: %d groups cannot be dealt into %d folds for a %.0f%% hold-out", n_groups, n_splits,
                    100 * size)
        return dataset, dataset.select([])
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class rarer than the fold count is expected (few _silence_ clips)
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        try:
            parts = [test for _, test in folds.split(np.zeros(len(labels)), labels, groups)]
        except ValueError as error:  # e.g. every class has fewer rows than there are folds
            logger.info("data: no grouped hold-out (%s)", error)
            return dataset, dataset.select([])
    target = size * len(dataset) if held_is_fold else (1 - size) * len(dataset)
    fold = min(parts, key=lambda part: abs(len(part) - target))  # the fold nearest the requested size
    in_fold = np.zeros(len(dataset), bool)
    in_fold[fold] = True
    held = np.flatnonzero(in_fold if held_is_fold else ~in_fold)
    rest = np.flatnonzero(~in_fold if held_is_fold else in_fold)
    if not len(held) or not len(rest):
        return dataset, dataset.select([])
    _log_speakers(groups, rest, held, names, seed)
    return dataset.select(rest), dataset.select(held)


def hold_out_by_speaker(dataset: Dataset, size: float, seed: int,
                        names: tuple[str, str] = ("rest", "held out")) -> tuple[Dataset, Dataset] | None:
    """A speaker-disjoint hold-out when the rows name speakers, else None (the caller splits as usual)."""
    groups = speaker_groups(dataset)
    return None if groups is None else grouped_hold_out(dataset, groups, size, seed, names)


def _log_speakers(groups: np.ndarray, rest: np.ndarray, held: np.ndarray, names: tuple[str, str], seed: int) -> None:
    speakers = [{g for g in groups[rows].tolist() if not g.startswith(FILE_GROUP)} for rows in (rest, held)]
    shared = len(speakers[0] & speakers[1])  # zero by construction; said, not assumed
    unnamed = sum(g.startswith(FILE_GROUP) for g in groups.tolist())
    logger.info("data: speaker-disjoint split: %s %d speakers, %s %d speakers, %s; %d rows held out (%.1f%%), "
                "seed %d%s", names[0], len(speakers[0]), names[1], len(speakers[1]),
                "none shared" if not shared else f"{shared} SHARED", len(held),
                100 * len(held) / max(len(groups), 1), seed,
                f" ({unnamed} clips name no speaker, each its own group)" if unnamed else "")
