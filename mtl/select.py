"""Command line: ``python -m mtl.select RECIPE.yaml [key.sub=value ...] [--candidates ID ...] [--score S]``.

Ranks candidate checkpoints for the recipe's data without fine-tuning (frozen features of a capped sample:
linear-probe and k-NN validation accuracy, LogME evidence), prints the table and writes ``ranking.csv`` and
``ranking.png`` (to ``select.report_dir``, default ``<output.dir>-selection``). A thin shell over
:func:`mtl.runner.select_checkpoint`; bad input exits with code 2 and one clear message.
"""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="override recipe values")
    parser.add_argument("--candidates", nargs="+", metavar="ID", help="checkpoint ids or folders to rank "
                        "(default: select.candidates, else every checkpoint of the task within reach)")
    parser.add_argument("--score", choices=["linear_probe", "knn", "logme"], help="what ranks them "
                        "(default: select.score, linear_probe)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the table")
    return parser


def _select(args: argparse.Namespace) -> int:
    from .recipe import load_recipe
    from .runner import select_checkpoint

    score = [f"select.score={args.score}"] if args.score else []
    recipe = load_recipe(args.recipe, [*args.overrides, *score])
    selection = select_checkpoint(recipe, candidates=args.candidates)
    print(selection.table())
    print(f"best: {selection.winner} ({selection.seconds:.0f} s in all); "
          f"wrote {', '.join(str(selection.report_dir / name) for name in selection.files)}")
    print(f"fine-tune it: python -m mtl.run {args.recipe} {' '.join(args.overrides)} "
          f"model.checkpoint={selection.winner}".replace("  ", " "))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _select, argv)


if __name__ == "__main__":
    sys.exit(main())
