"""Command line inference: ``python -m mtl.predict OUT inputs... [--output FILE.csv|FILE.json] [--batch-size N]``.

Inputs are files (images, audio clips, ``.txt`` files with one text per line), folders (searched recursively
for the task's file types), or CSV/TSV tables (the input column found by name or given with ``--column``;
relative paths in it are read from the table's folder). Text tasks also take texts as arguments.
Writes one row per input: ``input, label, score``; to stdout as CSV without ``--output``.

Example::

    python -m mtl.predict outputs/sentiment reviews.csv --output predictions.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import DataError, MtlError

TABLES = {".csv": ",", ".tsv": "\t"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus"}


def load_task(folder: str | Path) -> Any:
    """The Task that saved ``folder`` (its config names the task), loaded with the fine-tuned model."""
    from .registry import get_task

    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise MtlError(f"{folder} is not a model folder (no config.json); give the output.dir of a run")
    name = json.loads(config.read_text()).get("mtl_task")
    if not name:
        raise MtlError(f"{config} does not say which mtl task made it (no mtl_task); use a folder written by mtl")
    return get_task(name).load(folder)


def collect_inputs(task: Any, arguments: Sequence[str], column: str | None = None) -> list[tuple[str, Any]]:
    """(shown name, model input) pairs from files, folders, tables and (text tasks) literal texts."""
    modality = task.spec.modality
    items: list[tuple[str, Any]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _suffixes(modality))
            if not found:
                raise DataError(f"{path}: no {modality} files ({', '.join(sorted(_suffixes(modality)))}) in this folder")
            items += [(str(p), str(p)) for p in found]
        elif path.is_file() and path.suffix.lower() in TABLES:
            items += _from_table(task, path, column)
        elif path.is_file() and modality == "text":
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            items += [(line, line) for line in lines]
        elif path.is_file():
            items.append((str(path), str(path)))
        elif modality == "text" and not (path.suffix.lower() in {*TABLES, ".txt", ".json"} or "/" in argument):
            items.append((argument, argument))
        else:
            raise DataError(f"input {argument}: no such file or folder; give files, folders or a CSV")
    return items


def predict_items(task: Any, items: list[tuple[str, Any]], batch_size: int = 32) -> list[dict[str, Any]]:
    """Label and score for each input, ``batch_size`` at a time, with a progress bar on stderr."""
    from tqdm.auto import tqdm

    rows: list[dict[str, Any]] = []
    with tqdm(total=len(items), desc="predicting", unit="input", file=sys.stderr, disable=None) as progress:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            for (shown, _), result in zip(chunk, task.predict([value for _, value in chunk], batch_size=batch_size)):
                rows.append({"input": shown, "label": result["label"], "score": round(result["score"], 6)})
            progress.update(len(chunk))
    return rows


def write_rows(rows: list[dict[str, Any]], output: str | None) -> None:
    """CSV or JSON by the output file's suffix; CSV on stdout without a file."""
    import pandas as pd

    table = pd.DataFrame(rows, columns=["input", "label", "score"])
    if output is None:
        table.to_csv(sys.stdout, index=False)
    elif output.endswith(".json"):
        Path(output).write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    elif output.endswith(".csv"):
        table.to_csv(output, index=False)
    else:
        raise MtlError(f"--output {output}: write to a .csv or .json file")


def _from_table(task: Any, path: Path, column: str | None) -> list[tuple[str, Any]]:
    import pandas as pd

    table = pd.read_csv(path, sep=TABLES[path.suffix.lower()], dtype=str, keep_default_na=False)
    candidates = [column] if column else list(task.spec.input_candidates)
    found = next((c for c in candidates if c in table.columns), None)
    if found is None:
        raise DataError(f"{path}: no input column {'named ' + repr(column) if column else '(' + ', '.join(candidates) + ')'}; "
                        f"its columns are {', '.join(table.columns)}; choose one with --column")
    values = table[found].tolist()
    if task.spec.modality == "text":
        return [(v, v) for v in values]
    resolved = [str(v if Path(v).is_absolute() else path.parent / v) for v in values]
    return list(zip(values, resolved))


def _suffixes(modality: str) -> set[str]:
    if modality == "image":
        from PIL import Image

        return {s.lower() for s in Image.registered_extensions()}
    return AUDIO_SUFFIXES if modality == "audio" else {".txt"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl.predict", description="Predict labels with a saved mtl model.",
                                     epilog="example: python -m mtl.predict outputs/sentiment reviews.csv --output p.json")
    parser.add_argument("model", help="an output folder of mtl (model, config, processor)")
    parser.add_argument("inputs", nargs="+", help="files, folders, CSV/TSV tables (or texts, for text tasks)")
    parser.add_argument("--output", "-o", help="a .csv or .json file (default: CSV on stdout)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--column", help="the input column of CSV/TSV inputs (default: found by name)")
    args = parser.parse_args(argv)
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()  # one progress bar: predictions
        task = load_task(args.model)
        write_rows(predict_items(task, collect_inputs(task, args.inputs, args.column), args.batch_size), args.output)
    except MtlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
