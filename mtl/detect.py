"""Keyword detection in long recordings: ``python -m mtl.detect MODEL_DIR recording.wav [--threshold T] [--hop S] [--json]``.

A trained keyword classifier slides over the recording; windows whose best label is a keyword scoring at
least the threshold become events, and overlapping windows of the same keyword merge into one event.
Bad input exits with code 2 and one clear message.

Example::

    $ python -m mtl.detect outputs/keywords meeting.wav --threshold 0.8
    yes     1.25 s - 2.50 s  0.97
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .errors import MtlError


class Detection(NamedTuple):
    """A keyword found in a recording, between ``start_s`` and ``end_s`` seconds, with its best window score."""

    keyword: str
    start_s: float
    end_s: float
    score: float


def window_starts(total: int, window: int, hop: int) -> list[int]:
    """Start samples of windows ``hop`` apart covering ``total`` samples (the last one ends at the end)."""
    if total <= window:
        return [0]
    starts = list(range(0, total - window + 1, hop))
    if starts[-1] + window < total:
        starts.append(total - window)
    return starts


def merge_windows(starts_s: Sequence[float], window_s: float, probabilities: np.ndarray, label_names: Sequence[str],
                  *, threshold: float, ignore: Sequence[str] = ()) -> list[Detection]:
    """Events from per-window class probabilities: each window's best label, kept when it is not ignored and
    scores at least ``threshold``; windows of the same keyword that overlap or touch merge (score: the max)."""
    events: list[Detection] = []
    for start, row in zip(starts_s, probabilities):
        best = int(np.argmax(row))
        keyword, score = label_names[best], float(row[best])
        if keyword in ignore or score < threshold:
            continue
        end = start + window_s
        last = events[-1] if events else None
        if last and last.keyword == keyword and start <= last.end_s + 1e-9:
            events[-1] = Detection(keyword, last.start_s, max(last.end_s, end), max(last.score, score))
        else:
            events.append(Detection(keyword, float(start), float(end), score))
    return [Detection(e.keyword, round(e.start_s, 3), round(e.end_s, 3), e.score) for e in events]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mtl.detect",
                                     description="Find keywords in a long recording with a trained keyword classifier.")
    parser.add_argument("model_dir", help="folder written by a keyword-spotting run (output.dir)")
    parser.add_argument("recording", help="audio file (WAV, FLAC or OGG; any rate, mono or stereo)")
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum window score of an event (default 0.5)")
    parser.add_argument("--hop", type=float, default=0.25, help="seconds between windows (default 0.25)")
    parser.add_argument("--json", action="store_true", help="print the events as a JSON list")
    return parser


def detect_file(model_dir: str | Path, recording: str | Path, *, threshold: float, hop: float) -> list[Detection]:
    """Load the classifier in ``model_dir`` and detect keywords in ``recording``; MtlError on bad input."""
    from .data.audio import AUDIO_SUFFIXES
    from .registry import get_task

    folder, recording = Path(model_dir), Path(recording)
    if not (folder / "config.json").is_file():
        raise MtlError(f"{folder} is not a model folder (no config.json); pass the output.dir of a keyword-spotting run")
    if not recording.is_file():
        raise MtlError(f"recording {recording} does not exist; check the path")
    if recording.suffix.lower() not in AUDIO_SUFFIXES:
        raise MtlError(f"recording {recording}: expected one of {', '.join(AUDIO_SUFFIXES)}")
    if not 0 < threshold <= 1 or hop <= 0:
        raise MtlError(f"--threshold must be in (0, 1] and --hop positive seconds, got {threshold} and {hop}")
    task_name = json.loads((folder / "config.json").read_text()).get("mtl_task", "keyword-spotting")
    task_cls = get_task(task_name)
    if not hasattr(task_cls, "detect"):
        raise MtlError(f"{folder} holds a {task_name} model; detection needs a keyword-spotting model")
    return task_cls.load(folder).detect(str(recording), threshold=threshold, hop=hop)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import logging

    import transformers

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # stderr carries one line: the error, if any
    try:
        events = detect_file(args.model_dir, args.recording, threshold=args.threshold, hop=args.hop)
    except MtlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([event._asdict() for event in events]))
    else:
        width = max((len(e.keyword) for e in events), default=0)
        for e in events:
            print(f"{e.keyword.ljust(width)}  {e.start_s:7.2f} s - {e.end_s:7.2f} s  {e.score:.3f}")
        if not events:
            print("no keywords found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
