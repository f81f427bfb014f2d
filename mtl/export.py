"""ONNX export with a parity check: ``python -m mtl.export OUT --onnx [--opset N] [--overwrite]``.

Writes ``OUT/onnx/model.onnx`` with the config and processor beside it, after onnxruntime and PyTorch agree
on the run's test inputs (synthetic ones when none can be read; the output says which). A thin shell over
:mod:`mtl.publish.onnx`. Needs ``pip install "mtl[onnx]"``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .cli import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mtl.export", description="Export a saved mtl model.",
                                     epilog="example: python -m mtl.export outputs/sentiment --onnx")
    parser.add_argument("model", help="an output folder of mtl")
    parser.add_argument("--onnx", action="store_true", help="export to OUT/onnx/model.onnx with a parity check")
    parser.add_argument("--opset", type=int, help="ONNX opset, 18 or later (default: the exporter's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT/onnx")
    return parser


def _export(args: argparse.Namespace) -> int:
    from .publish.onnx import TOLERANCE
    from .runner.inference import export_folder

    result = export_folder(args.model, opset=args.opset, overwrite=args.overwrite)
    print(f"wrote {result.path} (inputs: {', '.join(result.input_names)})")
    print(f"parity: max |onnx - torch| = {result.max_abs_diff:.2e} on {result.num_inputs} {result.inputs_kind} "
          f"(tolerance {TOLERANCE:.0e})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, _ = parser.parse_known_args(argv)
    if not args.onnx:
        parser.error("choose a format: --onnx")
    return run_command(parser, _export, argv, progress_bars=False)


if __name__ == "__main__":
    sys.exit(main())
