"""Raw tables: a data source (built-in name, Hub id, local files, Python objects) becomes a DatasetDict.

Local files are read with ``datasets``' own builders, so every later ``map`` is cached by fingerprint.
"""

from __future__ import annotations

import csv
import glob
import logging
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, Value, load_dataset
from PIL import Image

from ..errors import DataError, describe, first_few
from .columns import holds_text
from .audio import AUDIO_SUFFIXES, read_audio_folder, without_audio_decoding
from .builtin import builtin_names, load_builtin
from .folders import (SPLIT_WORDS, holds_media, mtl_output_folders, read_image_folder, refuse_mtl_outputs,
                      tables_named_by_split, warn_empty_label_folders, warn_left_out_files)
from .idx import idx_pairs, read_idx_folder
from .images import IMAGE_SUFFIXES, image_from_array
from .pixels import looks_like_pixel_csv, read_pixel_csv

logger = logging.getLogger(__name__)

_READERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {"keep_default_na": False, "na_values": [""]}),  # only an empty cell is missing: NA, null are text
    ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "keep_default_na": False, "na_values": [""]}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
SPLIT_FILE_STEMS = ("train", "validation", "valid", "dev", "val", "test")
SOURCE_FILES: dict[str, str] = {}  # fingerprint of a split read by read_files -> its file, for messages naming it


def read_files(files: Mapping[str, str | Path]) -> DatasetDict:
    """Read ``{split: path}`` local files (CSV, TSV, JSON, JSONL or Parquet; one format) into a DatasetDict."""
    paths = {split: Path(path).expanduser() for split, path in files.items()}
    for split, path in paths.items():
        if not path.is_file():
            raise DataError(f"data.files.{split}: file {path} does not exist")
        if path.stat().st_size == 0:
            raise DataError(f"{split} file {path} is empty; it needs a header and at least one row per split")
    if all(looks_like_pixel_csv(path) for path in paths.values()):
        pixels = DatasetDict({split: read_pixel_csv(path) for split, path in paths.items()})
        SOURCE_FILES.update({split._fingerprint: str(paths[name]) for name, split in pixels.items()})
        return pixels
    suffixes = {path.suffix.lower() for path in paths.values()}
    unknown = suffixes - set(_READERS)
    if unknown or len(suffixes) != 1:
        raise DataError(f"data files {', '.join(str(p) for p in paths.values())}: use one of the formats "
                        f"{', '.join(_READERS)} for all splits")
    builder, options = _READERS[suffixes.pop()]
    for path in paths.values():
        require_utf8(path)
        check_table_layout(path)
    try:
        loaded = load_dataset(builder, data_files={s: glob.escape(str(p)) for s, p in paths.items()}, **options)
    except Exception as error:  # pyarrow / pandas parse errors carry the detail
        names = ", ".join(str(p) for p in paths.values())
        if "codec can't decode" in f"{error} {error.__cause__} {error.__context__}":
            raise DataError(not_utf8(Path(names))) from None
        if len(paths) > 1:
            _refuse_differing_columns(paths, builder, options)
        raise DataError(f"cannot read {names}: {describe(error)}; check the file's format and delimiter") from None
    if builder == "csv":
        loaded = _numbers_as_written(loaded, paths, options)
    SOURCE_FILES.update({split._fingerprint: str(paths[name]) for name, split in loaded.items()})
    return loaded


_LEADING_ZERO = re.compile(r"^\s*[+-]?0\d")


def _numbers_as_written(tables: DatasetDict, paths: Mapping[str, Path], options: dict[str, Any]) -> DatasetDict:
    """Number columns of a CSV/TSV that the numbers would change, kept as the text written: values that read as one
    number ("01" and "1", "1" and "1.0": labels merged without a word) or with leading zeros (codes, zip codes,
    digit-only texts such as "007"). Every other number column stays numbers."""
    import pandas as pd

    first = next(iter(tables.values()))
    numeric = [name for name, feature in first.features.items()
               if isinstance(feature, Value) and feature.dtype.startswith(("int", "uint", "float"))]
    if not numeric:
        return tables
    try:
        written = {split: pd.read_csv(path, usecols=numeric, dtype=str, **options) for split, path in paths.items()}
    except (ValueError, OSError, pd.errors.ParserError):  # rows datasets read alike: nothing to compare against
        return tables
    reasons = {name: _numbers_lose_writing([value for frame in written.values() for value in frame[name].dropna()],
                                           integer=not first.features[name].dtype.startswith("float"))
               for name in numeric}
    changed = [name for name, reason in reasons.items() if reason]
    if not changed:
        return tables
    kept = {}
    for split, table in tables.items():
        if len(written[split]) != len(table):
            return tables
        order = table.column_names
        for name in changed:
            values = [None if pd.isna(value) else value for value in written[split][name]]
            table = table.remove_columns(name).add_column(name, values, feature=Value("string"))
        kept[split] = table.select_columns(order)
    for name in changed:
        logger.info("%s: column %r is read as text, as written (read as numbers, %s)",
                    ", ".join(p.name for p in paths.values()), name, reasons[name])
    return DatasetDict(kept)


def _numbers_lose_writing(values: Sequence[str], *, integer: bool) -> str | None:
    """What reading ``values`` as numbers loses (two texts become one number, or a leading zero goes), or None."""
    for value in values:
        if _LEADING_ZERO.match(value):
            return f"{value.strip()!r} would lose its leading zero"
    numbers: dict[float | int, str] = {}
    for value in values:
        try:
            number = int(value) if integer else float(value)
        except ValueError:
            return None
        if numbers.setdefault(number, value.strip()) != value.strip():
            return f"{numbers[number]!r} and {value.strip()!r} would be one number"
    return None


def _refuse_differing_columns(paths: Mapping[str, Path], builder: str, options: dict[str, Any]) -> None:
    """A DataError naming the column whose kind of values differs between split files (labels 0/1 in train.csv,
    neg/pos in test.csv), found by reading each file alone; nothing when each file alone fails too."""
    kinds: dict[str, dict[str, str]] = {}
    for path in paths.values():
        try:
            table = load_dataset(builder, data_files=glob.escape(str(path)), **options)["train"]
        except Exception:
            return
        for column, feature in table.features.items():
            kind = "text" if holds_text(feature) else str(getattr(feature, "dtype", type(feature).__name__))
            kinds.setdefault(column, {})[path.name] = "numbers" if kind.startswith(("int", "float")) else kind
    for column, by_file in kinds.items():
        if len(set(by_file.values())) > 1:
            shown = ", ".join(f"{kind} in {name}" for name, kind in by_file.items())
            raise DataError(f"column {column!r} holds {shown}; write it alike in every split file (all label names "
                            "or all numbers)")


def holds_raw_json(split: Dataset, column: str) -> bool:
    """Whether ``datasets`` kept ``column`` as raw JSON: its values differ in type from row to row (``"0"`` and
    ``0``), or are objects with differing keys; no later step can sort, compare or encode such a column."""
    return type(split.features.get(column)).__name__ == "Json"


def refuse_raw_json(split: Dataset, columns: Sequence[str], where: str) -> None:
    """A DataError naming the first of ``columns`` (the input and label) that :func:`holds_raw_json`."""
    mixed = [column for column in columns if holds_raw_json(split, column)]
    if mixed:
        source = SOURCE_FILES.get(split._fingerprint)
        first = _first_differing_row(Path(source), mixed[0]) if source else None
        example = first or ' (e.g. "0" in quotes in some rows and 0 without in others, or objects with different keys)'
        raise DataError(f"{where}: column {mixed[0]!r} mixes value types from row to row{example}; write every value "
                        "of the column the same way, e.g. all labels as text")


def _first_differing_row(path: Path, column: str) -> str | None:
    """``" (row 1: int, row 2: str in data.jsonl)"``: the first record of a JSON or JSON Lines file whose
    ``column`` holds another type of value than the first record's; None when the file cannot tell."""
    import json

    try:
        text = path.read_text()
        records = json.loads(text) if path.suffix.lower() == ".json" else \
            [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    kinds = [type(record.get(column)).__name__ for record in records if isinstance(record, dict)]
    row = next((row for row, kind in enumerate(kinds[1:], start=2) if kind != kinds[0]), None)
    return f" (row 1: {kinds[0]}, row {row}: {kinds[row - 1]} in {path.name})" if row else None


DELIMITERS = {".csv": ",", ".tsv": "\t"}


def table_relative(value: str, table_folder: Path) -> str:
    """A file path read from a table: relative paths are read from the table's folder (where the table's files
    usually lie), or, when the file is only found from the working folder, from there."""
    path = Path(value).expanduser()
    if path.is_absolute() or (not (table_folder / path).exists() and path.exists()):
        return str(path)
    return str(table_folder / path)


MEDIA_SUFFIXES = (*IMAGE_SUFFIXES, *AUDIO_SUFFIXES)


def paths_from_table_folder(split: Dataset, column: str, table: Path) -> Dataset:
    """``split`` with the relative file paths of ``column`` read from the table's folder, as :func:`table_relative`
    says, when it is a column of image or audio file names (each of its first rows ends in such a suffix); any
    other column (texts, even texts such as ``google.com``) is left as it is."""
    first = split[:20][column]
    if not first or not all(isinstance(v, str) and v.lower().endswith(MEDIA_SUFFIXES) for v in first):
        return split
    folder = Path(table).parent
    return split.map(lambda batch: {column: [table_relative(v, folder) if isinstance(v, str) and v else v
                                             for v in batch[column]]}, batched=True,
                     desc=f"{column}: paths read from {folder}")


def not_utf8(path: Path) -> str:
    """The message for a text file that is not UTF-8."""
    return f"{path}: not UTF-8 text (a binary file, or another encoding); give a UTF-8 text file or save it as UTF-8"


def require_utf8(path: Path) -> None:
    """A DataError naming ``path`` when a text table (CSV, TSV, JSON, JSON Lines) is not UTF-8: a Latin-1 export,
    or the UTF-16 that Excel's "Unicode text" writes, would otherwise fail deep inside the parser."""
    if path.suffix.lower() not in (*DELIMITERS, ".json", ".jsonl"):
        return
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as handle:  # the first 8 MB; past them, the parser's own decode error is recognised
            for _ in range(8):
                if not (chunk := handle.read(1 << 20)):
                    decoder.decode(b"", final=True)
                    break
                decoder.decode(chunk)
    except UnicodeDecodeError:
        raise DataError(not_utf8(path)) from None


def check_table_layout(path: Path) -> None:
    """A DataError, before parsing, for the common ways a CSV/TSV file is not a table mtl can read: a header with
    no rows, or a header split by another delimiter than its suffix says (e.g. semicolons in a .csv)."""
    if path.suffix.lower() not in DELIMITERS:
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = [line for _, line in zip(range(3), (line for line in handle if line.strip()))]
    except OSError:
        return
    if len(lines) == 1:
        raise DataError(f"{path} has a header but no rows; add the examples below the header")
    wanted, header = DELIMITERS[path.suffix.lower()], lines[0] if lines else ""
    others = {d: header.count(d) for d in (",", ";", "\t", "|") if d != wanted and header.count(d)}
    if others and wanted not in header:
        found = max(others, key=others.get)
        names = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "bars"}
        rename = " or rename it to .tsv" if found == "\t" else ""
        raise DataError(f"{path}: its header is separated by {names[found]}, but a {path.suffix.lower()} file is read "
                        f"with {names[wanted]}; save it with {names[wanted]} (e.g. pandas.read_csv(path, "
                        f"sep={found!r}).to_csv(new_path, index=False)){rename}")
    names = [name.strip().strip('"') for name in header.rstrip("\r\n").split(wanted)]
    if _looks_like_data(names):
        raise DataError(f"{path}: its first line ({header.strip()[:80]!r}) looks like an example, not a header of "
                        f"column names; add a header line first (e.g. text{'<TAB>' if wanted == chr(9) else wanted}"
                        "label, with the file's columns)")
    check_row_widths(path)


def _looks_like_data(names: Sequence[str]) -> bool:
    """Whether a table's first line is an example rather than a header: a cell that is a number (a label such as
    0 or 1) beside a cell of words (a sentence; a header names its columns with words, not numbers)."""
    numbers = [bool(re.fullmatch(r"-?\d+(\.\d+)?", name)) for name in names]
    return any(numbers) and any(not number and re.search(r"[^\W\d]", name) for number, name in zip(numbers, names))


def check_row_widths(path: Path) -> None:
    """A DataError naming the rows of a CSV/TSV file that hold more fields than its header. pandas reads a file
    whose every row has one field more with the first field as an index, without a word: an unquoted comma
    inside each text (``a gorgeous, moving film``) would cut every text's start off."""
    delimiter = DELIMITERS.get(path.suffix.lower())
    if delimiter is None:
        return
    wide: list[str] = []
    trailing = True  # every extra field empty: each row ends with one delimiter too many
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents: pandas reads fields of any length
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL  # as the file is read for training
        rows = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        try:
            header = next((row for row in rows if row), None)
            if header is None:
                return
            for number, row in enumerate((row for row in rows if row), start=1):
                if len(row) > len(header):
                    wide.append(f"row {number} (line {rows.line_num}) has {len(row)}")
                    trailing = trailing and not any(field.strip() for field in row[len(header):])
        except csv.Error:  # what pandas then reads, or refuses with its own message naming the line
            return
    if wide:
        names = {",": "comma", "\t": "tab"}
        rows_word = "row holds" if len(wide) == 1 else f"{len(wide)} rows hold"
        fix = (f"each ends with an extra {names[delimiter]}: remove the trailing {names[delimiter]}s" if trailing else
               "a text holding a comma must be quoted (\"a gorgeous, moving film\"), as pandas' to_csv and "
               "spreadsheet programs write it: quote those fields or remove the extra ones" if delimiter == "," else
               "a TSV file is read GLUE-style, quotes taken literally, so a text cannot hold a tab: replace the tabs "
               "inside texts by spaces, or save the table as CSV")
        raise DataError(f"{path}: {rows_word} more fields than the header's {len(header)} ({delimiter.join(header)}): "
                        f"{first_few(wide, limit=3)} fields; {fix}")


def read_source(source: str, config: str | None = None) -> DatasetDict:
    """A built-in dataset, a local file or folder of split files, or a Hub dataset id."""
    builtin = load_builtin(source)
    if builtin is not None:
        return builtin
    path = Path(source).expanduser()
    if path.is_file():
        return _split_by_column(read_files({"train": path}), path)
    if path.is_dir():
        found = {p.stem.lower(): p for p in sorted(path.iterdir()) if p.suffix.lower() in _READERS}
        files = {stem: found[stem] for stem in SPLIT_FILE_STEMS if stem in found}
        if files:
            return read_files(files)
        outputs = mtl_output_folders(path)  # a model's plots and clips are not data
        if idx_pairs(path):
            return read_idx_folder(path)  # MNIST's IDX files
        if holds_media(path, IMAGE_SUFFIXES, outputs):
            refuse_mtl_outputs(path, outputs)
            warn_empty_label_folders(path, IMAGE_SUFFIXES, "images")
            warn_left_out_files(path, IMAGE_SUFFIXES, "images", outputs)
            return read_image_folder(path)
        if holds_media(path, AUDIO_SUFFIXES, outputs):
            refuse_mtl_outputs(path, outputs)
            warn_empty_label_folders(path, AUDIO_SUFFIXES, "audio files")
            warn_left_out_files(path, AUDIO_SUFFIXES, "audio files", outputs)
            return read_audio_folder(path)  # <split>/<label>/x.wav or <label>/x.wav, audio kept as paths
        refuse_mtl_outputs(path, [output for output in outputs if output == path])
        return read_files(tables_named_by_split(path, list(found.values()), list(_READERS)))
    if source.startswith((".", "/", "~")) or Path(source).suffix.lower() in _READERS:
        relative = "" if path.is_absolute() or source.startswith("~") else \
            f"; a relative path is read from the working directory ({Path.cwd()}), not from the recipe's folder"
        raise DataError(f"data.source: {source} does not exist (looked in {path.resolve().parent}){relative}; check "
                        "the path")
    return _read_hub(source, config)


def _split_by_column(tables: DatasetDict, path: Path) -> DatasetDict:
    """One table with a ``split`` column of train / validation / test (dev, val, testing ...) values becomes those
    splits, so that the rows its author held out for the test are never trained on. Other values: a warning, and
    the column is left as data."""
    table = tables["train"]
    column = next((name for name in table.column_names if name.strip().lower() == "split"), None)
    if column is None or len(tables) != 1:
        return tables
    values = table[column]
    named = {value: SPLIT_WORDS.get(str(value).strip().lower()) for value in set(values)}
    if None in named.values():
        odd = sorted(str(value) for value, split in named.items() if split is None)
        logger.warning("%s: column %r holds values other than train, validation and test (%s), so mtl does not "
                       "split by it and holds out its own splits", path.name, column, first_few(odd, 3))
        return tables
    rows: dict[str, list[int]] = {}
    for row, value in enumerate(values):
        rows.setdefault(named[value], []).append(row)
    splits = DatasetDict({split: table.select(indices).remove_columns(column) for split, indices in rows.items()})
    SOURCE_FILES.update({split._fingerprint: str(path) for split in splits.values()})
    logger.info("%s: split by its column %r: %s (rows are counted within each split)", path.name, column,
                ", ".join(f"{split} {len(indices):,}" for split, indices in rows.items()))
    return splits


def _from_columns(columns: dict[Any, Any], what: str) -> Dataset:
    """``Dataset.from_dict``, with a column whose rows hold different kinds of values (text and numbers, a
    grey and a colour image array, mono and stereo audio) named by its first row that differs."""
    try:
        return Dataset.from_dict(columns)
    except (pa.ArrowException, TypeError, ValueError) as error:
        mixed_images = {name: values for name, values in columns.items() if _mixed_images_column(values)}
        if mixed_images:  # images become RGB later anyway: PIL images of their own mode make one column
            return _from_columns({**columns, **{name: [_image_of(value, f"{what}: column {name!r}, row {row}")
                                                       for row, value in enumerate(values, 1)]
                                                for name, values in mixed_images.items()}}, what)
        for name, values in columns.items():
            kinds = [(row, _value_kind(value)) for row, value in enumerate(values, 1) if value is not None]
            other = next(((row, kind) for row, kind in kinds if kind != kinds[0][1]), None) if kinds else None
            if other:
                raise DataError(f"{what}: column {name!r} mixes kinds of values: row {kinds[0][0]} holds "
                                f"{kinds[0][1]}, row {other[0]} {other[1]}; give every row of a column the same kind "
                                "(labels all text or all numbers; images all PIL images or all arrays; audio all "
                                "mono or all stereo)") from None
        raise DataError(f"{what}: cannot make a table of it ({describe(error)}); give each column one kind of "
                        "value: text, numbers, file paths, images or audio") from None


def _mixed_images_column(values: Any) -> bool:
    """Whether a column mixes kinds of images: grey (H, W) and colour (H, W, 1|3|4) arrays, or arrays and PIL
    images. Audio arrays are 1-D (mono) or 2-D (stereo), never 3-D, so a column of 2-D arrays stays as it is."""
    items = [value for value in values if value is not None]
    arrays = [value for value in items if isinstance(value, np.ndarray)]
    if not arrays or not all(isinstance(value, (np.ndarray, Image.Image)) for value in items):
        return False
    if not all(value.ndim == 2 or (value.ndim == 3 and value.shape[-1] in (1, 3, 4)) for value in arrays):
        return False
    return len(arrays) < len(items) or {value.ndim for value in arrays} == {2, 3}


def _image_of(value: np.ndarray | Image.Image | None, where: str) -> Image.Image | None:
    if value is None or isinstance(value, Image.Image):
        return value
    return image_from_array(value, where)


def _value_kind(value: Any) -> str:
    """How a value is described when a column mixes kinds: numbers are one kind, arrays go by dimensions."""
    if isinstance(value, bool):
        return "a true/false value"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-D array"
    if isinstance(value, Mapping):
        return "a dict of " + ", ".join(f"{key}: {_value_kind(item)}" for key, item in value.items())
    return f"a {type(value).__name__}"


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
    if isinstance(data, (str, Path)) and Path(data).expanduser().is_dir():  # a <label>/ file folder, as recipes read
        splits = read_source(str(Path(data).expanduser()))
        if len(splits) > 1:
            raise DataError(f"{what}: folder {data} holds the splits {sorted(splits)}; pass one of them (e.g. "
                            f"{Path(data) / sorted(splits)[-1]}), or use a recipe with data.source={data}")
        return next(iter(splits.values()))
    if isinstance(data, (str, Path)):
        if not Path(data).expanduser().is_file():
            raise DataError(f"{what}: file {data} does not exist; check the path")
        return read_files({"train": data})["train"]
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            try:
                return Dataset.from_pandas(data, preserve_index=False)
            except (pa.ArrowException, TypeError, ValueError):  # in-memory images or arrays: column by column
                return _from_columns(data.to_dict("list"), what)
    except ImportError:  # pandas is optional for this path
        pass
    if isinstance(data, Mapping):
        lengths = {str(name): len(values) for name, values in data.items() if hasattr(values, "__len__")}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{name}: {count}" for name, count in lengths.items())
            raise DataError(f"{what}: its columns have different lengths ({shown}); give every column one value per "
                            "example")
        return _from_columns(dict(data), what)
    if isinstance(data, (list, tuple)) and not data:
        raise DataError(f"{what}: got an empty {type(data).__name__}; pass at least one example")
    if isinstance(data, (list, tuple)) and isinstance(data[0], Mapping):
        names = list(dict.fromkeys(name for row in data if isinstance(row, Mapping) for name in row))
        return _from_columns({name: [row.get(name) if isinstance(row, Mapping) else None for row in data]
                              for name in names}, what)
    if isinstance(data, (list, tuple)):  # the inputs alone, as predict() takes them
        raise DataError(f"{what}: a {type(data).__name__} of {len(data)} inputs holds no labels; pass the inputs and "
                        "their labels as a dict of columns, e.g. {'text': texts, 'label': labels} (or 'image' / "
                        "'audio'), or a list of row dicts")
    raise DataError(f"{what}: cannot use a {type(data).__name__}; pass a datasets.Dataset, a pandas DataFrame, "
                    "a dict of columns, a list of row dicts or a file path")
