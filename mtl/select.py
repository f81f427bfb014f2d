"""Command line: ``python -m mtl.select RECIPE.yaml [key.sub=value ...] [--candidates ID ...] [--score S]
[--overwrite]``.

Ranks candidate checkpoints for the recipe's data without fine-tuning (frozen features of a capped sample:
linear-probe and k-NN validation accuracy, LogME evidence), prints the table and writes ``ranking.csv`` and
``ranking.png`` (to ``select.report_dir``, default ``<output.dir>-selection``; an earlier ranking there is kept
unless ``--overwrite``). Overrides may also follow ``--candidates``. A thin shell over
:func:`mtl.runner.select_checkpoint`; bad input exits with code 2 and one clear message.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import Sequence

from .cli import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mtl.select",
        description="Rank candidate checkpoints for a recipe's data from frozen features, in minutes.",
        epilog="example: python -m mtl.select recipes/flowers.yaml data.source=../shared/data/flowers17 "
               "--candidates timm/tf_efficientnet_lite0.in1k timm/mobilenetv2_100.ra_in1k",
    )
    parser.add_argument("recipe", help="path of a YAML recipe (its task, data, preprocess and select sections)")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value", help="override recipe values")
    parser.add_argument("--candidates", nargs="+", metavar="ID", help="checkpoint ids or folders to rank "
                        "(default: select.candidates, else every checkpoint of the task within reach)")
    parser.add_argument("--score", choices=["linear_probe", "knn", "logme"], help="what ranks them "
                        "(default: select.score, linear_probe)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace ranking.csv and ranking.png of an earlier selection in select.report_dir")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the table")
    return parser


OVERRIDE = re.compile(r"[A-Za-z_]\w*(\.\w+)*=")  # key.sub=value: a recipe override (ids hold no "=")


def _split_candidates(args: argparse.Namespace) -> None:
    """Move ``key.sub=value`` overrides that ``--candidates`` swallowed (it takes every word after it) back to
    the overrides, keeping their order; an existing folder of that name stays a candidate."""
    if args.candidates is None:
        return
    moved = [c for c in args.candidates if OVERRIDE.match(c) and not Path(c).exists()]
    args.candidates = [c for c in args.candidates if c not in moved]
    args.overrides = [*args.overrides, *moved]
    if not args.candidates:
        from .errors import MtlError

        raise MtlError("--candidates: give at least one checkpoint id or folder before the overrides "
                       f"({' '.join(moved)})")


def _select(args: argparse.Namespace) -> int:
    from .recipe import check_overrides, load_recipe
    from .runner import select_checkpoint

    _split_candidates(args)
    score = [f"select.score={args.score}"] if args.score else []
    check_overrides(args.overrides, args.recipe)
    recipe = load_recipe(args.recipe, [*args.overrides, *score])
    selection = select_checkpoint(recipe, candidates=args.candidates, overwrite=args.overwrite,
                                  log_table=False)  # printed below, once
    print(selection.table())
    print(f"best: {selection.winner} ({selection.seconds:.0f} s in all); "
          f"wrote {', '.join(str(selection.report_dir / name) for name in selection.files)}")
    command = ["python", "-m", "mtl.run", args.recipe, *args.overrides, f"model.checkpoint={selection.winner}"]
    print(f"fine-tune it: {shlex.join(command)}")  # quoted: overrides such as {a: 1} paste into a shell as given
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _select, argv)


if __name__ == "__main__":
    sys.exit(main())
