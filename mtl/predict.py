"""Command line inference: ``python -m mtl.predict OUT inputs... [--output FILE.csv|FILE.json] [--overwrite]
[--batch-size N]``.

Inputs are files and folders of the task's file types, tables (CSV, TSV, JSON Lines, JSON, Parquet; the input
column found by name or given with ``--column``; relative paths in it are read from the table's folder), and,
for tasks that take them (text), plain arguments. Writes one row per input: ``input, label, score``; CSV on
stdout without ``--output``, which never replaces an existing file unless ``--overwrite``. A thin shell over
:mod:`mtl.runner.inference`.

Example::

    python -m mtl.predict outputs/sentiment reviews.csv --output predictions.json
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .cli import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mtl.predict", description="Predict labels with a saved mtl model.",
                                     epilog="example: python -m mtl.predict outputs/sentiment reviews.csv --output p.json")
    parser.add_argument("model", help="an output folder of mtl (model, config, processor)")
    parser.add_argument("inputs", nargs="+",
                        help="files, folders, tables: CSV, TSV, JSONL, JSON, Parquet (or texts, for text tasks)")
    parser.add_argument("--output", "-o", help="a .csv or .json file (default: CSV on stdout)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="inputs per forward pass (default: the fastest for the model on its device)")
    parser.add_argument("--column", help="the input column of table inputs (default: found by name)")
    return parser


def _predict(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size < 1:  # before the model is loaded
        from .errors import MtlError

        raise MtlError(f"--batch-size must be at least 1, got {args.batch_size}")
    from .runner.inference import check_rows_output, collect_inputs, load_saved_task, predict_items, write_rows

    check_rows_output(args.output, args.overwrite, args.inputs)  # before the model is loaded and the inputs are run
    task = load_saved_task(args.model)
    rows = predict_items(task, collect_inputs(task, args.inputs, args.column), args.batch_size)
    write_rows(rows, args.output, args.overwrite)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _predict, argv, progress_bars=False)


if __name__ == "__main__":
    sys.exit(main())
