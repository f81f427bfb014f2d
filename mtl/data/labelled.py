"""Labelled splits: canonical columns, a ClassLabel label, train/validation/test and few-shot limits.

Example::

    data = load_labelled(recipe.data, input_name="text", input_candidates=("text", "sentence"))
    data.splits        # DatasetDict(train, validation, test) with columns text, label
    data.label_names   # ['negative', 'positive']
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Value

from ..config.sections import DataConfig
from ..errors import DataError, first_few
from .audio import check_keywords, relabel_keywords
from .columns import TEXT_TYPES, holds_text
from .splits import STANDARDISED as _STANDARDISED, complete_splits, limit_per_class, warn_shared_inputs
from .tables import (SOURCE_FILES, holds_raw_json, paths_from_table_folder, read_files, read_source, refuse_raw_json,
                     to_dataset)

logger = logging.getLogger(__name__)

LABEL_CANDIDATES = ("label", "labels", "sentiment", "class", "target", "category", "intent")
VALIDATION_NAMES = ("validation", "valid", "dev", "val")
InputCheck = Callable[[Dataset, str, str], None]  # (split, input column, where) -> raises DataError


@dataclass
class LabelledData:
    """Splits with an input column and a ClassLabel ``label`` column."""

    splits: DatasetDict
    label_names: list[str]
    input_column: str

    def summary(self) -> str:
        sizes = ", ".join(f"{name} {len(split):,}" for name, split in self.splits.items())
        return f"{len(self.label_names)} labels ({', '.join(self.label_names[:8])}{'...' if len(self.label_names) > 8 else ''}); {sizes}"


def load_labelled(config: DataConfig, *, input_name: str, input_candidates: Sequence[str],
                  label_names: Sequence[str] | None = None, raw: DatasetDict | None = None,
                  check: InputCheck | None = None) -> LabelledData:
    """Read the recipe's data section into labelled train/validation/test splits; ``check`` (the task's
    :meth:`~mtl.task.hooks.TaskHooks.check_inputs`) opens every input once, before training."""
    if raw is None:
        raw = read_files(config.files) if config.files else read_source(config.source, config.config)
    raw = _pick_splits(raw, config)
    if config.test_source:
        raw["test"] = _test_split_of(config.test_source)
    splits = DatasetDict({
        name: standardize(split, input_name=input_name, input_candidates=input_candidates,
                          input_column=config.input_column, label_column=config.label_column, where=name,
                          check=check)
        for name, split in raw.items()
    })
    if config.keywords:
        check_keywords(splits, config.keywords)
        splits = DatasetDict({name: relabel_keywords(split, config.keywords) for name, split in splits.items()})
    splits, names = encode_labels(splits, label_names or config.label_names,
                                  known_as="the model's labels" if label_names else "data.label_names")
    splits = complete_splits(splits, config)
    require_trainable_labels(splits["train"], names, "data.label_names" if config.label_names else "the data")
    if config.limit_per_class:
        splits["train"] = limit_per_class(splits["train"], config.limit_per_class, config.split_seed)
    warn_shared_inputs(splits, input_name, named=_find_column(raw["train"], config.input_column, input_candidates,
                                                              "input", "train"))
    _STANDARDISED.update(split._fingerprint for split in splits.values())
    data = LabelledData(splits, names, input_name)
    logger.info("data: %s", data.summary())
    return data


def _pick_splits(raw: DatasetDict, config: DataConfig) -> DatasetDict:
    def named(wanted: str | None, candidates: Sequence[str], role: str) -> str | None:
        if wanted is not None:
            if wanted not in raw:
                raise DataError(f"data.{role}_split: no split {wanted!r} in the data (splits: {', '.join(raw)})")
            return wanted
        return next((c for c in candidates if c in raw), None)

    train = named(config.train_split, (), "train")
    validation = named(config.validation_split, VALIDATION_NAMES, "validation")
    test = named(config.test_split, ("test",), "test")
    picked = {"train": raw[train]}
    for role, name in (("validation", validation), ("test", test)):
        if name is None:
            continue
        split = raw[name]
        label_feature = next((c for c in (config.label_column, *LABEL_CANDIDATES) if c and c in split.column_names), None)
        if label_feature and _all_unlabelled(split, label_feature):
            logger.warning("data: split %r has no labels (all -1); a %s split is made from train instead", name, role)
            continue
        picked[role] = split
    return DatasetDict(picked)


def _test_split_of(source: str) -> Dataset:
    """The ``test`` split of another source (or its only split), for ``data.test_source``."""
    other = read_source(source)
    if "test" in other:
        return other["test"]
    if len(other) == 1:
        return next(iter(other.values()))
    raise DataError(f"data.test_source: {source} has splits {', '.join(other)} but none called 'test'; "
                    "point it at one file or a folder with a test split")


def _all_unlabelled(split: Dataset, column: str) -> bool:
    if holds_raw_json(split, column):  # standardize names the column and the file
        return False
    values = split.unique(column)
    return bool(values) and all(v == -1 for v in values)


def standardize(split: Dataset, *, input_name: str, input_candidates: Sequence[str], input_column: str | None = None,
                label_column: str | None = None, where: str = "data", need_label: bool = True,
                check: InputCheck | None = None) -> Dataset:
    """Keep the input and label columns only, renamed to ``input_name`` and ``label``; ``check`` the inputs (its
    messages name the file too, when the split was read from one)."""
    file = SOURCE_FILES.get(split._fingerprint)
    source_input = _find_column(split, input_column, input_candidates, "input", where)
    keep = {source_input: input_name}
    if need_label:
        keep[_find_column(split, label_column, LABEL_CANDIDATES, "label", where)] = "label"
    named = f"{where} ({file})" if file else where
    refuse_raw_json(split, list(keep), named)
    if need_label:
        _refuse_label_lists(split, next(old for old, new in keep.items() if new == "label"), named)
    if RATE_COLUMN in split.column_names and RATE_COLUMN not in keep and _holds_bare_arrays(split, source_input):
        split = split.map(lambda batch: {source_input: [{"array": samples, "sampling_rate": rate} for samples, rate
                                                        in zip(batch[source_input], batch[RATE_COLUMN])]},
                          batched=True)  # bare sample arrays with their rate in a column beside: read at that rate
    split = split.select_columns(list(keep))
    renames = {old: new for old, new in keep.items() if old != new}
    split = split.rename_columns(renames) if renames else split
    if file and holds_text(split.features[input_name]):
        split = paths_from_table_folder(split, input_name, Path(file))  # as mtl.predict reads a table's paths
    if check is not None:  # e.g. every image or audio file is opened before training starts
        check(split, input_name, f"{where} ({file})" if file else where)
    _STANDARDISED.add(split._fingerprint)
    return split


RATE_COLUMN = "sampling_rate"  # a column of sampling rates beside bare audio sample arrays


def _refuse_label_lists(split: Dataset, column: str, where: str) -> None:
    """A DataError when the label column holds lists: several labels per example (multi-label data), or a JSON
    file written column by column (one record whose every value is a list)."""
    feature = split.features[column]
    lists = isinstance(feature, list) or hasattr(feature, "feature")  # datasets' List / Sequence, or [Value]
    if isinstance(feature, (ClassLabel, Value)) or not lists:
        return
    if len(split) == 1 and all(not isinstance(f, (ClassLabel, Value)) for f in split.features.values()):
        raise DataError(f"{where}: one record whose every value is a list: the file is written column by column; "
                        "write one record per example (pandas: df.to_json(path, orient='records', lines=True))")
    raise DataError(f"{where}: the label column {column!r} holds lists (e.g. {split[0][column]!r}): mtl trains "
                    "classifiers of one label per example; give each row one label (several labels per example need a "
                    "multi-label model, which mtl does not train)")


def _holds_bare_arrays(split: Dataset, column: str) -> bool:
    """Whether ``column`` holds arrays of numbers (audio samples without their rate: mono or channels x samples)."""
    feature = split.features[column]
    while getattr(feature, "feature", None) is not None and not isinstance(feature, Value):
        feature = feature.feature
    return feature is not split.features[column] and isinstance(feature, Value) and feature.dtype not in (
        *TEXT_TYPES, "binary", "large_binary")


def column_named(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    """The first of ``columns`` named like one of ``candidates`` (in their order), ignoring letter case: the
    input column of ``Text,Label`` is ``Text``; None when no column is."""
    lowered = {str(column).lower(): column for column in reversed(list(columns))}
    return next((lowered[candidate.lower()] for candidate in candidates if candidate.lower() in lowered), None)


def _find_column(split: Dataset, wanted: str | None, candidates: Sequence[str], role: str, where: str) -> str:
    columns = split.column_names
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"data.{role}_column: {where} has no column {wanted!r} (columns: {', '.join(columns)}); "
                            f"set data.{role}_column to the one holding the {role}s")
        return wanted
    found = column_named(columns, candidates)
    if found is not None:
        return found
    wrapped = [name for name in columns if isinstance(getattr(split.features[name], "feature", None), dict)]
    if wrapped:  # {"data": [{"text": ..., "label": ...}, ...]}: the records sit inside one field
        raise DataError(f"{where}: the records are wrapped in the field {wrapped[0]!r} (a list of objects); write "
                        "the file as the list of records itself, one object per example (pandas: "
                        f"pd.json_normalize(json.load(f)[{wrapped[0]!r}]).to_json(path, orient='records', lines=True))")
    raise DataError(f"{where}: cannot tell which column is the {role} (columns: {', '.join(columns)}; "
                    f"looked for {', '.join(candidates)}). Set data.{role}_column in the recipe; in Python, rename "
                    f"the column, e.g. df.rename(columns={{'YOUR_COLUMN': {candidates[0]!r}}}).")


def encode_labels(splits: DatasetDict, label_names: Sequence[str] | None = None, *, train_key: str = "train",
                  known_as: str = "the model's labels") -> tuple[DatasetDict, list[str]]:
    """Make ``label`` a ClassLabel with names, the same mapping in every split."""
    train = splits[train_key]
    feature = train.features["label"]
    if isinstance(feature, ClassLabel) and label_names is not None and list(feature.names) != list(label_names):
        splits = DatasetDict({k: _as_strings(v) for k, v in splits.items()})
    elif isinstance(feature, ClassLabel):
        names = list(feature.names)
        for name, split in splits.items():
            other = split.features["label"]
            if not isinstance(other, ClassLabel) or list(other.names) != names:
                return encode_labels(DatasetDict({k: _as_strings(v) for k, v in splits.items()}), names,
                                     train_key=train_key, known_as="the training labels")
        return splits, names
    values = {name: _label_values(split, name) for name, split in splits.items()}
    train_values = values[train_key]
    all_int = all(_is_whole(v) for v in train_values)
    if label_names is not None:
        names = list(label_names)
        lookup: dict[Any, int] = {n: i for i, n in enumerate(names)}
        if all_int:
            lookup.update({i: i for i in range(len(names))})
    elif all_int:
        ordered = sorted({int(v) for v in train_values})
        names = [str(v) for v in ordered]
        lookup = {v: i for i, v in enumerate(ordered)}
    else:  # text labels, or numbers that are not all whole (0, 0.5, 1): named as _index reads them
        numbers = all(isinstance(v, (int, float, np.integer, np.floating)) for v in train_values)
        names = [_label_text(v) for v in sorted(train_values, key=float if numbers else str)]
        names = list(dict.fromkeys(names)) if numbers else sorted(set(names))
        lookup = {n: i for i, n in enumerate(names)}
    if label_names is None and not all_int:
        _check_near_duplicates(names, train_key)
    for split_name, split in splits.items():
        unknown = [v for v in values[split_name] if _index(v, lookup) is None]
        if unknown:
            row = _first_row(split, unknown[0])
            rows = sum(_index(v, lookup) is None for v in split["label"])
            among = known_as if label_names is not None else "the training labels"
            fix = {"the training labels": f"fix the row or add examples of it to {train_key}",
                   "the model's labels": "fix the row (the model predicts only these labels)"}.get(
                among, f"fix the row or add it to {among}")
            more = f"{rows} such rows, labels {', '.join(map(repr, unknown[:5]))}; " if rows > 1 else ""
            alike = _written_alike(unknown[0], names)
            hint = (f"; it is {alike[1]} label {alike[0]!r}: if they are one label, write them alike in every "
                    "split" if alike else "")
            raise DataError(f"{split_name} row {row}: label {unknown[0]!r} is not among {among} "
                            f"({', '.join(names[:20])}){hint}; {fix} ({more}rows counted from 1, the header not "
                            "counted)")
    new_feature = ClassLabel(names=names)

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[int]]:
        return {"label": [_index(v, lookup) for v in batch["label"]]}

    encoded = {}
    for name, split in splits.items():
        features = split.features.copy()
        features["label"] = new_feature
        encoded[name] = split.map(encode, batched=True, features=features, desc=f"encoding {name} labels")
    encoded = DatasetDict(encoded)
    return encoded, names


def require_trainable_labels(train: Dataset, names: Sequence[str], named_by: str = "the data") -> None:
    """A classifier needs examples of at least two labels, and of every label it is to predict."""
    if len(train) == 0:
        raise DataError(f"train: {named_by} holds no examples (0 rows); give the rows to train on")
    counts = np.bincount(np.asarray(train["label"], dtype=np.int64), minlength=len(names))
    present = [name for name, count in zip(names, counts) if count]
    if len(present) < 2:
        raise DataError(f"train: only one label ({', '.join(map(repr, present)) or 'none'}) among {len(train)} "
                        "examples; a classifier needs examples of at least two labels. Check the label column "
                        "(data.label_column) or add examples of the other labels")
    missing = [name for name, count in zip(names, counts) if not count]
    if missing:
        verb = "has" if len(missing) == 1 else "have"
        raise DataError(f"train: {named_by} names {len(names)} labels but {len(missing)} of them {verb} no training "
                        f"example ({', '.join(map(repr, missing[:10]))}); the model could never predict them. "
                        + ("Remove those names from data.label_names or add examples of them" if named_by ==
                           "data.label_names" else "Add training examples of them (each label needs a few, so that "
                           "some are left for training after the validation and test rows are held out) or remove "
                           "their rows"))


def _as_strings(split: Dataset) -> Dataset:
    feature = split.features["label"]
    if not isinstance(feature, ClassLabel):
        return split
    features = split.features.copy()
    features["label"] = Value("string")
    return split.map(lambda batch: {"label": feature.int2str(batch["label"])}, batched=True, features=features)


def _is_whole(value: Any) -> bool:
    """An integer label, or a float one with nothing after the point (1.0, as a CSV column with a gap reads)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating))
                                                    and float(value).is_integer())


def _index(value: Any, lookup: dict[Any, int]) -> int | None:
    """The class index of a label value: by its text first (label 5 is the name "5", 1.0 the name "1"), else
    an integer as an index into the names given (data.label_names for labels 0..n-1); None when unknown."""
    text = _label_text(value)
    return lookup[text] if text in lookup else lookup.get(int(value) if _is_whole(value) else value)


def _label_text(value: Any) -> str:
    """A label value's name: whole numbers without their fraction (1.0 is "1"), anything else as ``str`` gives."""
    return str(int(value)) if _is_whole(value) else str(value)


def _label_values(split: Dataset, split_name: str) -> list[Any]:
    values = split.unique("label")
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):
        rows = [row for row, label in enumerate(split["label"], 1) if label is None or label != label]
        if len(rows) == 1:
            raise DataError(f"{split_name} row {rows[0]}: the label is empty; fill it in or remove the row")
        raise DataError(f"{split_name} rows {first_few([str(row) for row in rows])}: the label is empty ({len(rows)} "
                        f"of {len(split)} rows); fill them in or remove those rows")
    return values


def _check_near_duplicates(names: Sequence[str], train_key: str) -> None:
    """Labels that differ only in surrounding spaces are one label written twice (an error); labels that differ
    only in letter case probably are (a warning)."""
    spaced = _alike(names, str.strip)
    if spaced:
        shown = "; ".join(" vs ".join(map(repr, group)) for group in spaced[:5])
        raise DataError(f"{train_key}: labels that differ only in spaces before or after them: {shown}; they would "
                        "be trained as different classes. Strip the label column (e.g. df['label'] = "
                        "df['label'].str.strip() in pandas)")
    for group in _alike(names, _as_number):
        logger.warning("data: labels %s are one number written differently and are trained as different classes; if "
                       "they are one class, write them alike", " and ".join(map(repr, group)))
    for group in _alike(names, lambda name: name.strip().casefold()):
        logger.warning("data: labels %s differ only in letter case%s and are trained as different classes; if they "
                       "are one class, write them alike", " and ".join(map(repr, group)),
                       " and spaces" if any(name != name.strip() for name in group) else "")


_WRITTEN_ALIKE: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("written with other spaces than", str.strip),
    ("the same number as", lambda name: _as_number(name.strip())),
    ("written in another letter case than", lambda name: name.strip().casefold()),
)


def _written_alike(value: Any, names: Sequence[str]) -> tuple[str, str] | None:
    """The known name that ``value`` differs from only in how it is written ("01" vs "1", " pos" vs "pos", "POS"
    vs "pos"), with how they differ; None when no name is that close.

    >>> _written_alike("01", ["0", "1"])
    ('1', 'the same number as')
    """
    text = _label_text(value)
    for how, key in _WRITTEN_ALIKE:
        for name in names:
            if key(name) == key(text):
                return name, how
    return None


def _as_number(name: str) -> Any:
    """A label's number, or the label itself when it is not one ("01" and "1.0" are both 1.0)."""
    try:
        return float(name)
    except ValueError:
        return name


def _alike(names: Sequence[str], key: Callable[[str], Any]) -> list[list[str]]:
    """Groups of two or more names that ``key`` makes equal."""
    groups: dict[Any, list[str]] = {}
    for name in names:
        groups.setdefault(key(name), []).append(name)
    return [group for group in groups.values() if len(group) > 1]


def _first_row(split: Dataset, value: Any) -> int:
    for index, label in enumerate(split["label"]):
        if label == value or (value is None and (label is None or label != label)):
            return index + 1
    return -1


def labelled_split(data: Any, *, input_name: str, input_candidates: Sequence[str], label_names: Sequence[str] | None,
                   what: str, need_label: bool = True, check: InputCheck | None = None,
                   known_as: str = "the model's labels") -> tuple[Dataset, list[str] | None]:
    """One split for the Python API (fit/evaluate): any table-like object, standardized and label-encoded.

    A split that :func:`load_labelled` (or an earlier call) already standardised and checked is used as it is.
    """
    split = to_dataset(data, what)
    if split._fingerprint not in _STANDARDISED or set(split.column_names) != {input_name, "label"}:
        split = standardize(split, input_name=input_name, input_candidates=input_candidates, where=what,
                            need_label=need_label, check=check)
    if not need_label:
        return split, label_names
    encoded, names = encode_labels(DatasetDict({what: split}), label_names, train_key=what, known_as=known_as)
    _STANDARDISED.add(encoded[what]._fingerprint)
    return encoded[what], names
