"""Windowed keyword detection in long recordings: window positions and merging window scores into events.

Used by :meth:`mtl.tasks.KeywordSpotting.detect`; registers no task.

Example::

    starts = window_starts(len(audio), 16_000, 4_000)
    events = merge_windows([s / 16_000 for s in starts], 1.0, probabilities, labels, threshold=0.8)
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np


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
