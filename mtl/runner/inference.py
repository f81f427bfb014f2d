"""What ``mtl.predict``, ``mtl.detect`` and ``mtl.export`` do with a saved model, on the Python API.

Inputs are files (each task says which suffixes it reads and what a file stands for), folders searched
recursively for those suffixes, tables (CSV, TSV, JSON Lines, JSON, Parquet: input column found by name or
given; relative paths read from the table's folder), and, where the task accepts them, plain command-line
arguments (texts).

Example::

    task = load_saved_task("outputs/sentiment")
    rows = predict_items(task, collect_inputs(task, ["reviews.csv", "what a film"]))
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from ..data.folders import warn_broken_links
from ..data.labelled import column_named
from ..data.tables import check_row_widths, not_utf8
from ..errors import DataError, MtlError, OutputExistsError, first_few
from ..fs import walk_paths, write_text_atomic
from ..registry import get_task, known_tasks, load_saved_task

logger = logging.getLogger(__name__)

TABLES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")  # files read as tables of inputs (a row each)
ROWS_SUFFIXES = (".csv", ".json")  # what mtl.predict --output writes
PATH_COLUMNS = ("path", "filepath", "file_path", "file", "filename", "file_name")  # of tables listing input files
__all__ = ["Input", "calibrate_folder", "check_rows_output", "collect_inputs", "detect_file", "event_rows",
           "export_folder", "load_saved_task", "predict_items", "write_events", "write_rows"]


class Input(NamedTuple):
    """One input of ``mtl.predict``: its name in the output, the model input, and where it came from (for errors)."""

    shown: str
    value: Any
    where: str


def collect_inputs(task: Any, arguments: Sequence[str], column: str | None = None) -> list[Input]:
    """The inputs in files, folders, tables and arguments the task accepts as inputs, in the order given."""
    suffixes = task.spec.file_suffixes
    items: list[Input] = []
    for position, argument in enumerate(arguments, 1):
        if not str(argument).strip():  # Path("") is the working folder: never predict it by accident
            raise DataError(f"input {position}: an empty argument (an unset shell variable?); give a text, a file "
                            "or a folder, e.g. . for the working folder")
        path = user_path(argument)
        kind = _kind(path)
        if kind == "folder":
            paths = list(walk_paths(path))
            warn_broken_links(path, paths, "input")
            files = [p for p in paths if p.is_file() and not p.name.startswith(".")]
            found = sorted(p for p in files if p.suffix.lower() in suffixes)
            if not found:
                raise DataError(f"{path}: no input files ({', '.join(suffixes)}) in this folder")
            if skipped := sorted(p.name for p in files if p.suffix.lower() not in suffixes):
                logger.warning("%s: %d files left out, not %s files (%s); give a table of inputs by its own name",
                               path, len(skipped), "/".join(suffixes), first_few(skipped, 3))
            for file in found:
                items += _from_file(task, file)
        elif kind == "file" and path.suffix.lower() in TABLES:
            items += _from_table(task, path, column)
        elif kind == "file":
            _check_modality(task, path)
            items += _from_file(task, path)
        elif (value := task.input_from_argument(argument)) is not None and not _looks_like_a_path(argument):
            items.append(Input(argument, value, f"input {argument!r}"))
        else:
            raise DataError(f"input {argument}: no such file or folder; give files, folders or a CSV")
    if not items:
        raise DataError("no inputs: the files given hold nothing to predict")
    files = [item.value for item in items if isinstance(item.value, str) and item.value == item.where]
    if len(files) > 1:  # every bad file named at once, not one per run (one file: named as it is read)
        task.check_files(files, "predict inputs")
    return items


def user_path(argument: str | Path) -> Path:
    """``argument`` as a path with ``~`` expanded where it names a home folder (text such as "~great film" stays
    as it is, where ``Path.expanduser`` would raise)."""
    return Path(os.path.expanduser(str(argument)))


def _kind(path: Path) -> str | None:
    """"folder", "file" or None (nothing there, or text too long or odd to be a file name at all)."""
    try:
        return "folder" if path.is_dir() else "file" if path.is_file() else None
    except (OSError, ValueError):
        return None


def predict_items(task: Any, items: Sequence[Input], batch_size: int | None = None,
                  chunk_size: int = 1024) -> list[dict[str, Any]]:
    """Label and score for each input: ``chunk_size`` inputs at a time through :meth:`Task.predict` (sorted by
    length and run ``batch_size`` at a time inside each chunk; None: the fastest for the model), with a progress
    bar on stderr. A task's error about ``input N`` of a chunk names where that input came from."""
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    chunk_size = max(chunk_size, batch_size or 0)
    with tqdm(total=len(items), desc="predicting", unit="input", file=sys.stderr, disable=None) as progress:
        for start in range(0, len(items), chunk_size):
            chunk = items[start:start + chunk_size]
            try:
                results = task.predict([item[1] for item in chunk], batch_size=batch_size)
            except DataError as error:
                raise DataError(_name_input(str(error), chunk, start)) from None
            for item, result in zip(chunk, results):
                rows.append({"input": item[0], "label": result["label"], "score": round(result["score"], 6)})
            progress.update(len(chunk))
    return rows


def check_rows_output(output: str | None, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> Path | None:
    """The path of ``mtl.predict --output`` (None: stdout), refused before any work when it is a folder or no .csv
    or .json file, its folder is missing, or it exists and ``overwrite`` is false; even with ``overwrite`` it never
    replaces one of the ``inputs`` or a file of an mtl output folder (the model's own files)."""
    if output is None:
        return None
    path = user_path(output)
    _check_new_file(path, "--output", ROWS_SUFFIXES, overwrite, inputs)
    return path


def write_rows(rows: list[dict[str, Any]], output: str | None, overwrite: bool = False) -> None:
    """CSV or JSON by the output file's suffix (written atomically, never over an existing file unless
    ``overwrite``); CSV on stdout without a file."""
    import pandas as pd

    table = pd.DataFrame(rows, columns=["input", "label", "score"])
    path = check_rows_output(output, overwrite)
    if path is None:
        table.to_csv(sys.stdout, index=False)
        return
    as_json = path.suffix.lower() == ".json"
    text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n" if as_json else table.to_csv(index=False)
    write_text_atomic(path, text)


def detect_file(model_dir: str | Path, recording: str | Path, *, output: str | Path | None = None,
                timeline: str | Path | None = None, overwrite: bool = False, **options: Any) -> list[Any]:
    """Load the model in ``model_dir`` and find its labels in ``recording`` (tasks that can detect: keywords);
    write the events to ``output`` (.csv or .json) and a picture of them on the waveform to ``timeline`` (.png)."""
    recording = user_path(recording)
    if recording.is_dir():
        raise MtlError(f"recording {recording} is a folder; give one recording file (for a folder: "
                       f"for f in {recording}/*.wav; do python -m mtl.detect MODEL \"$f\"; done)")
    if not recording.is_file():
        raise MtlError(f"recording {recording} does not exist; check the path")
    targets = {"--output": (output, (".csv", ".json")), "--timeline": (timeline, (".png",))}
    for flag, (path, suffixes) in targets.items():
        if path is not None:
            _check_new_file(user_path(path), flag, suffixes, overwrite)
    task = _detecting_task(model_dir)
    if task.spec.file_suffixes and recording.suffix.lower() not in task.spec.file_suffixes:
        raise MtlError(f"recording {recording}: expected one of {', '.join(task.spec.file_suffixes)}")
    events = task.detect(str(recording), **options)
    if output is not None:
        write_events(events, user_path(output))
    if timeline is not None:
        task.plot_detections(str(recording), events, user_path(timeline))
    return events


def calibrate_folder(model_dir: str | Path, *, data: str | None = None, noise: str | None = None,
                     minutes: float = 60.0, overwrite: bool = False, **settings: Any) -> dict[str, Any]:
    """Calibrate the detection threshold of the model in ``model_dir`` on its run's validation split (the run's
    recipe split again, from ``data`` when the clips moved) and store it in the folder; an earlier calibration
    there is replaced only with ``overwrite``."""
    from ..data import load_labelled
    from ..fs import write_json
    from ..publish.output_dir import RECIPE_FILE, note_written
    from ..publish.reports import PREDICTIONS_FILE
    from ..recipe import load_recipe

    folder = user_path(model_dir)
    task = _detecting_task(folder)
    earlier = folder / task.calibration_file
    if earlier.is_file() and not overwrite:
        raise OutputExistsError(f"{earlier}: {folder} is calibrated already; add --overwrite to calibrate it again "
                                "(the new calibration replaces that file)")
    if not (folder / RECIPE_FILE).is_file():
        raise MtlError(f"{folder}: no {RECIPE_FILE}, so its validation split is unknown; calibrate in Python with "
                       "task.calibrate(held_out_clips) and task.save(folder)")
    recipe = load_recipe(folder / RECIPE_FILE, [f"data.source={data}"] if data else [])
    try:
        split = load_labelled(recipe.data, input_name=task.spec.input_column,
                              input_candidates=task.spec.input_candidates).splits
    except DataError as error:
        raise DataError(f"{error}; calibration splits the run's data again: give --data the run's data folder") \
            from None
    if (folder / PREDICTIONS_FILE).is_file():  # the split made again must be the run's: same test files
        import pandas as pd

        tested = pd.read_csv(folder / PREDICTIONS_FILE)["input"].map(_last_two).tolist()
        if sorted(tested) != sorted(map(_last_two, split["test"][task.spec.input_column])):
            raise MtlError(f"{recipe.data.source}: these clips do not split as in the run that made {folder} (its "
                           f"test files differ); give --data the run's data folder")
    calibration = task.calibrate(split["validation"], noise=noise, minutes=minutes, **settings)
    write_json(folder / task.calibration_file, calibration)
    note_written(folder, task.calibration_file)
    return calibration


def event_rows(events: Sequence[Any]) -> list[dict[str, Any]]:
    """Detections ``(label, start, end, score)`` as dicts with those keys, for JSON and CSV."""
    return [{"label": e[0], "start": e[1], "end": e[2], "score": round(float(e[3]), 6)} for e in events]


def write_events(events: Sequence[Any], path: Path) -> None:
    """Detections as CSV or JSON (``label``, ``start``, ``end``, ``score``), written atomically."""
    import pandas as pd

    rows = event_rows(events)
    text = json.dumps(rows, indent=2) + "\n" if path.suffix == ".json" else \
        pd.DataFrame(rows, columns=["label", "start", "end", "score"]).to_csv(index=False)
    write_text_atomic(path, text)


def _detecting_task(model_dir: str | Path) -> Any:
    task = load_saved_task(model_dir)
    if not callable(getattr(task, "detect", None)):
        raise MtlError(f"{model_dir} holds a model for {task.name}, which cannot detect events in long recordings; "
                       "use a keyword-spotting model")
    return task


def _last_two(path: str) -> str:
    return "/".join(Path(str(path)).parts[-2:])


def _check_new_file(path: Path, flag: str, suffixes: Sequence[str], overwrite: bool,
                    inputs: Sequence[str | Path] = ()) -> None:
    from ..publish.output_dir import output_owning

    if path.is_dir():
        raise MtlError(f"{flag} {path} is a folder; give a file path, e.g. {path / ('results' + suffixes[0])}")
    if path.suffix.lower() not in suffixes:
        raise MtlError(f"{flag} {path}: write to a {' or '.join(suffixes)} file")
    if not path.parent.is_dir():
        raise MtlError(f"{flag} {path}: folder {path.parent} does not exist; create it or choose another path")
    if not path.exists():
        return
    for source in inputs:
        source = user_path(source)
        if _kind(source) == "file" and path.samefile(source):
            raise MtlError(f"{flag} {path} is also an input of this command; writing there would replace what it "
                           "reads: write the results to another file")
    if (owner := output_owning(path)) is not None:
        raise MtlError(f"{flag} {path} lies in the mtl output folder {owner}, among the files mtl wrote there (the "
                       "model, its reports, checkpoints or calibration), which no other command replaces, even with "
                       "--overwrite: write the results to another file")
    if not overwrite:
        raise MtlError(f"{flag} {path} already exists; choose another name or pass --overwrite")


def export_folder(model_dir: str | Path, *, opset: int | None = None, overwrite: bool = False) -> Any:
    """Export the model in ``model_dir`` to ONNX with a parity check (:func:`mtl.publish.onnx.export_onnx`); an
    earlier export there is replaced only with ``overwrite``."""
    from ..publish.onnx import export_onnx

    earlier = user_path(model_dir) / "onnx"
    if earlier.exists() and not overwrite:
        raise MtlError(f"{earlier} already holds an export; pass --overwrite to replace it")
    return export_onnx(load_saved_task(model_dir), model_dir, opset=opset)


def _check_modality(task: Any, path: Path) -> None:
    """Refuse a file whose kind another task reads and this one does not (a photo given to a text model)."""
    suffix = path.suffix.lower()
    if not task.spec.file_suffixes or suffix in task.spec.file_suffixes:  # a task that names none reads any file
        return
    readers = [name for name in known_tasks() if suffix in get_task(name).spec.file_suffixes]
    if readers:
        raise DataError(f"{path}: {suffix} files are read by {' or '.join(readers)} models; this model is for "
                        f"{task.name} and reads {', '.join(task.spec.file_suffixes)} files (or a table of them)")


def _from_file(task: Any, path: Path) -> list[Input]:
    """The inputs one file stands for, each named by the file (and its place in it when it holds several)."""
    try:
        pairs = task.inputs_from_file(path)
    except UnicodeDecodeError:
        raise DataError(not_utf8(path)) from None
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error}); check the file") from None
    if len(pairs) == 1:
        return [Input(*pairs[0], str(path))]
    return [Input(shown, value, f"{path} input {i + 1}") for i, (shown, value) in enumerate(pairs)]


def _from_table(task: Any, path: Path, column: str | None) -> list[Input]:
    """The inputs of a table's input column, each named by the table and its row (row 1: the first under the header)."""
    import pandas as pd

    try:
        table = _read_table(path)
    except UnicodeDecodeError:
        raise DataError(not_utf8(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, TypeError, OSError, ImportError) as error:
        raise DataError(f"{path}: cannot read the table ({str(error).splitlines()[0]}); check its format") from None
    candidates = _input_columns(task, column)
    found = column if column in table.columns else column_named(table.columns, candidates)
    if found is None:
        wanted = f"named {column!r}" if column else f"({', '.join(candidates)})"
        raise DataError(f"{path}: no input column {wanted}; its columns are {', '.join(table.columns)}; "
                        "choose one with --column")
    return [Input(value, task.input_from_table(value, path.parent), f"{path} row {i + 1} (line {i + 2})")
            for i, value in enumerate(table[found].tolist())]


def _read_table(path: Path) -> Any:
    """A CSV, TSV, JSON Lines, JSON (a list of records) or Parquet file as a DataFrame of strings ('' where empty)."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        check_row_widths(path)
        tsv = dict(sep="\t", quoting=csv.QUOTE_NONE) if suffix == ".tsv" else {}  # GLUE-style, as training reads it
        return pd.read_csv(path, dtype=str, keep_default_na=False, **tsv)
    if suffix == ".parquet":
        table = pd.read_parquet(path)
    else:
        with open(path, encoding="utf-8-sig") as stream:  # -sig: a byte-order mark, as some editors write, is skipped
            text = stream.read()
        try:
            rows = json.loads(text) if suffix == ".json" else None
        except json.JSONDecodeError:  # a .json of one object per line, as datasets' to_json writes
            rows = None
        if rows is None:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ValueError("expected " + ("one JSON object per line" if suffix == ".jsonl" else
                                            "a list of JSON objects, one per input"))
        table = pd.DataFrame(rows)
    return table.astype(object).where(table.notna(), "").astype(str)


def _input_columns(task: Any, column: str | None) -> list[str]:
    """The table columns that may hold the inputs, first found wins: ``--column``, else the task's input names
    and, for tasks whose inputs are files (they take no plain arguments), the usual names of a path column."""
    if column:
        return [column]
    reads_files = task.input_from_argument("") is None
    return list(dict.fromkeys([*task.spec.input_candidates, *(PATH_COLUMNS if reads_files else ())]))


def _name_input(message: str, chunk: Sequence[Input], start: int) -> str:
    """A task's message about ``input N`` of a chunk (1-based), naming where that input came from instead."""
    match = re.match(r"input (\d+)\b", message)
    if match is None or not 1 <= int(match[1]) <= len(chunk):
        return message
    item = chunk[int(match[1]) - 1]
    where = item.where if isinstance(item, Input) else f"input {start + int(match[1])}"
    rest = message[match.end():]
    return where + rest.removeprefix(f" ({where})")  # a task naming the file as well would repeat it


def _looks_like_a_path(argument: str) -> bool:
    return "/" in argument or Path(argument).suffix.lower() in {*TABLES, ".txt"}
