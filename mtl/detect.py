"""Keyword detection in long recordings: ``python -m mtl.detect MODEL_DIR recording.wav [--threshold T] [--hop S]
[--json]``.

The model's task slides its classifier over the recording (see ``KeywordSpotting.detect``); windows whose best
label is a keyword scoring at least the threshold become events. A thin shell over
:func:`mtl.runner.inference.detect_file`; bad input exits with code 2 and one clear message.

Example::

    $ python -m mtl.detect outputs/keywords meeting.wav --threshold 0.8
    yes     1.25 s - 2.50 s  0.97
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .cli import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mtl.detect",
                                     description="Find keywords in a long recording with a trained keyword classifier.")
    parser.add_argument("model_dir", help="folder written by a keyword-spotting run (output.dir)")
    parser.add_argument("recording", help="audio file (WAV, FLAC, OGG or MP3; any rate, mono or stereo)")
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum window score of an event (default 0.5)")
    parser.add_argument("--hop", type=float, default=0.25, help="seconds between windows (default 0.25)")
    parser.add_argument("--json", action="store_true", help="print the events as a JSON list")
    return parser


def _detect(args: argparse.Namespace) -> int:
    from .errors import MtlError
    from .runner.inference import detect_file

    if not 0 < args.threshold <= 1 or args.hop <= 0:
        raise MtlError(f"--threshold must be in (0, 1] and --hop positive seconds, got {args.threshold} and {args.hop}")
    events = detect_file(args.model_dir, args.recording, threshold=args.threshold, hop=args.hop)
    if args.json:
        print(json.dumps([event._asdict() for event in events]))
        return 0
    width = max((len(e.keyword) for e in events), default=0)
    for e in events:
        print(f"{e.keyword.ljust(width)}  {e.start_s:7.2f} s - {e.end_s:7.2f} s  {e.score:.3f}")
    if not events:
        print("no keywords found")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), _detect, argv, progress_bars=False)


if __name__ == "__main__":
    sys.exit(main())
