"""Raw tables: a data source (built-in name, Hub id, local files, Python objects) becomes a DatasetDict.

Local files are read with ``datasets``' own builders, so every later ``map`` is cached by fingerprint.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping

from datasets import Dataset, DatasetDict, load_dataset

from ..errors import DataError, describe
from .audio import holds_audio, read_audio_folder, without_audio_decoding
from .builtin import builtin_names, load_builtin
from .idx import idx_pairs, read_idx_folder
from .images import IMAGE_SUFFIXES
from .pixels import looks_like_pixel_csv, read_pixel_csv

_READERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
SPLIT_FILE_STEMS = ("train", "validation", "valid", "dev", "val", "test")


def read_files(files: Mapping[str, str | Path]) -> DatasetDict:
    """Read ``{split: path}`` local files (CSV, TSV, JSON, JSONL or Parquet; one format) into a DatasetDict."""
    paths = {split: Path(path).expanduser() for split, path in files.items()}
    for split, path in paths.items():
        if not path.is_file():
            raise DataError(f"data.files.{split}: file {path} does not exist")
        if path.stat().st_size == 0:
            raise DataError(f"{split} file {path} is empty; it needs a header and at least one row per split")
    if all(looks_like_pixel_csv(path) for path in paths.values()):
        return DatasetDict({split: read_pixel_csv(path) for split, path in paths.items()})
    suffixes = {path.suffix.lower() for path in paths.values()}
    unknown = suffixes - set(_READERS)
    if unknown or len(suffixes) != 1:
        raise DataError(f"data files {', '.join(str(p) for p in paths.values())}: use one of the formats "
                        f"{', '.join(_READERS)} for all splits")
    builder, options = _READERS[suffixes.pop()]
    try:
        return load_dataset(builder, data_files={s: str(p) for s, p in paths.items()}, **options)
    except Exception as error:  # pyarrow / pandas parse errors carry the detail
        raise DataError(f"cannot read {', '.join(str(p) for p in paths.values())}: {describe(error)}; "
                        "check the file's format and delimiter") from None


def read_source(source: str, config: str | None = None) -> DatasetDict:
    """A built-in dataset, a local file or folder of split files, or a Hub dataset id."""
    builtin = load_builtin(source)
    if builtin is not None:
        return builtin
    path = Path(source).expanduser()
    if path.is_file():
        return read_files({"train": path})
    if path.is_dir():
        found = {p.stem.lower(): p for p in sorted(path.iterdir()) if p.suffix.lower() in _READERS}
        files = {stem: found[stem] for stem in SPLIT_FILE_STEMS if stem in found}
        if not files and idx_pairs(path):
            return read_idx_folder(path)  # MNIST's IDX files
        if not files and _holds_images(path):
            return load_dataset("imagefolder", data_dir=str(path))  # <split>/<label>/x.jpg or <label>/x.jpg
        if not files and holds_audio(path):
            return read_audio_folder(path)  # <split>/<label>/x.wav or <label>/x.wav, audio kept as paths
        if not files:
            raise DataError(f"data.source: folder {path} holds no train/validation/test files "
                            f"({', '.join(_READERS)}); name them train.csv, test.csv, ...")
        return read_files(files)
    if source.startswith((".", "/", "~")) or Path(source).suffix.lower() in _READERS:
        raise DataError(f"data.source: {source} does not exist (looked in {path.resolve().parent}); check the path")
    return _read_hub(source, config)


def _holds_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*") if p.is_file())


def _read_hub(source: str, config: str | None) -> DatasetDict:
    try:
        loaded = load_dataset(source, config)
    except Exception as error:
        raise DataError(
            f"data.source: {source!r} is not a built-in dataset ({', '.join(builtin_names())}), not a local "
            f"file or folder, and the Hub could not provide it ({describe(error)}). Check the name, or download "
            "it where the Hub is reachable and point data.source or data.files at the files."
        ) from None
    loaded = loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
    return without_audio_decoding(loaded)  # Audio columns stay bytes/paths; mtl decodes them with soundfile


def to_dataset(data: Any, what: str = "data") -> Dataset:
    """A ``datasets.Dataset`` from a Dataset, pandas DataFrame, dict of columns, list of rows or file path."""
    if isinstance(data, Dataset):
        return without_audio_decoding(data)
    if isinstance(data, DatasetDict):
        raise DataError(f"{what}: pass one split (e.g. data['train']), not a whole DatasetDict")
    if isinstance(data, (str, Path)):
        return read_files({"train": data})["train"]
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return Dataset.from_pandas(data, preserve_index=False)
    except ImportError:  # pandas is optional for this path
        pass
    if isinstance(data, Mapping):
        return Dataset.from_dict(dict(data))
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], Mapping):
        return Dataset.from_list(list(data))
    raise DataError(f"{what}: cannot use a {type(data).__name__}; pass a datasets.Dataset, a pandas DataFrame, "
                    "a dict of columns, a list of row dicts or a file path")
