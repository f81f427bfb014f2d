"""Keyword detection in long recordings: ``python -m mtl.detect MODEL_DIR recording.wav [--threshold T |
--false_alarms_per_hour N] [--hop S] [--smooth W] [--refractory S] [--json] [--output F.csv] [--timeline F.png]``,
and ``python -m mtl.detect MODEL_DIR --calibrate`` once to calibrate thresholds on the run's validation split.

The model's task slides its classifier over the recording, averages its probabilities over ``--smooth``
windows, and keeps one detection per word event (see ``KeywordSpotting.detect``). A thin shell over
:mod:`mtl.runner.inference`; bad input exits with code 2 and one clear message.

Example::

    $ python -m mtl.detect outputs/keywords --calibrate
    $ python -m mtl.detect outputs/keywords meeting.wav --false_alarms_per_hour 10 --timeline meeting.png
    yes     1.25 s - 2.25 s  0.97
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

from .cli import run_command


CALIBRATION_MINUTES = 60.0  # of stitched validation audio, by default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mtl.detect",
                                     description="Find keywords in a long recording with a trained keyword classifier.")
    parser.add_argument("model_dir", help="folder written by a keyword-spotting run (output.dir)")
    parser.add_argument("recording", nargs="?", help="audio file (WAV, FLAC, OGG or MP3; any rate, mono or stereo)")
    level = parser.add_mutually_exclusive_group()
    level.add_argument("--threshold", type=float, help="minimum smoothed window score of a detection (default 0.5)")
    level.add_argument("--false_alarms_per_hour", type=float, metavar="N",
                       help="use the threshold calibrated for at most N false alarms per hour (needs --calibrate once)")
    parser.add_argument("--hop", type=float, default=0.25, help="seconds between windows (default 0.25)")
    parser.add_argument("--smooth", type=int, default=3, help="windows the probabilities are averaged over (default 3)")
    parser.add_argument("--refractory", type=float, default=1.0,
                        help="seconds: no two detections, whatever their labels, closer than this (default 1.0)")
    parser.add_argument("--json", action="store_true", help="print the detections as a JSON list")
    parser.add_argument("--output", help="also write the detections to this .csv or .json file")
    parser.add_argument("--timeline", help="draw the waveform with the detections to this .png file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing --output / --timeline files, or an earlier calibration (--calibrate)")
    parser.add_argument("--calibrate", action="store_true",
                        help="calibrate thresholds on the run's validation split and store them in MODEL_DIR")
    parser.add_argument("--data", help="with --calibrate: the run's data folder, when it moved since the run")
    parser.add_argument("--noise", help="with --calibrate: a folder of noise recordings (default: the _silence_ clips)")
    parser.add_argument("--minutes", type=float, help="with --calibrate: minutes of audio to stitch (default 60)")
    return parser


def _detect(args: argparse.Namespace) -> int:
    from .errors import MtlError
    from .runner.inference import calibrate_folder, detect_file, event_rows
    from .tasks.keyword_detection import DetectorSettings

    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise MtlError(f"--threshold must be in (0, 1], got {args.threshold}")
    if args.false_alarms_per_hour is not None and not (math.isfinite(args.false_alarms_per_hour)
                                                       and args.false_alarms_per_hour >= 0):
        raise MtlError(f"--false_alarms_per_hour must be zero or more, got {args.false_alarms_per_hour}")
    ignored = [flag for flag in ("data", "noise", "minutes") if getattr(args, flag) is not None]
    if ignored and not args.calibrate:
        raise MtlError(f"{', '.join('--' + flag for flag in ignored)} apply to --calibrate only; add --calibrate to "
                       "calibrate the model (then search the recording), or remove them")
    args.minutes = CALIBRATION_MINUTES if args.minutes is None else args.minutes
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise MtlError(f"--minutes must be positive, got {args.minutes}")
    settings = dict(hop=args.hop, smooth=args.smooth, refractory=args.refractory)
    DetectorSettings(**settings)  # checked before any model loads
    if args.calibrate:
        table = calibrate_folder(args.model_dir, data=args.data, noise=args.noise, minutes=args.minutes,
                                 overwrite=args.overwrite, **settings)
        for target in (1, 10, 100):
            rows = [(t, recall) for t, rate, recall in zip(table["thresholds"], table["false_alarms_per_hour"],
                                                          table["recall"]) if rate <= target]
            found = f"threshold {rows[0][0]} (recall {rows[0][1]:.1%})" if rows and rows[0][1] > 0 else \
                "no usable threshold (recall 0)" if rows else "threshold none"
            print(f"{target:>4} false alarms/hour: {found}")
        print(f"calibrated on {table['hours'] * 60:.1f} minutes of validation audio; saved in {args.model_dir}")
        if args.recording is None:
            return 0
    if args.recording is None:
        raise MtlError("give a recording to search (or --calibrate)")
    events = detect_file(args.model_dir, args.recording, output=args.output, timeline=args.timeline,
                         overwrite=args.overwrite, threshold=args.threshold,
                         false_alarms_per_hour=args.false_alarms_per_hour, **settings)
    if args.json:
        print(json.dumps(event_rows(events)))
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
