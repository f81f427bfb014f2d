"""Command line: ``python -m mtl.run RECIPE.yaml [key.sub=value ...] [--dry-run] [--overwrite] [--resume]
[--push-to-hub REPO]``.

A thin shell over :func:`mtl.runner.run_recipe`. Bad input exits with code 2 and one clear message.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .errors import MtlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mtl.run",
        description="Fine-tune a pretrained checkpoint as a recipe says, evaluate it and save a transformers folder.",
        epilog="example: python -m mtl.run recipes/sentiment.yaml train.epochs=1 output.dir=outputs/quick",
    )
    parser.add_argument("recipe", help="path of a YAML recipe")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="override recipe values")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the resolved recipe, then stop")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last epoch checkpoint")
    parser.add_argument("--push-to-hub", metavar="REPO", help="push the output folder to this Hub repo (owner/name); "
                        "the token comes from HF_TOKEN or `hf auth login`")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the final summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    _configure_logging(args.quiet)
    from .recipe import load_recipe

    try:
        overrides = [*args.overrides, *(["hub.push=true", f"hub.repo_id={args.push_to_hub}"] if args.push_to_hub else [])]
        recipe = load_recipe(args.recipe, overrides)
        if args.dry_run:
            print(recipe.to_yaml(), end="")
            return 0
        from .runner import format_summary, run_recipe

        summary = run_recipe(recipe, overwrite=args.overwrite, resume=args.resume)
    except MtlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    print(format_summary(summary))
    print(f"test accuracy: {summary['test'].get('accuracy', float('nan')):.4f}")
    print(f"model saved to {recipe.output.dir}")
    if summary.get("pushed"):
        print(f"pushed to the Hub: {summary['pushed']}")
    return 0


def _configure_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mtl").setLevel(logging.WARNING if quiet else logging.INFO)
    import transformers

    transformers.logging.set_verbosity_error()


if __name__ == "__main__":
    sys.exit(main())
