"""Windowed keyword detection in long recordings: window positions, posterior smoothing, one detection per
word event (non-maximum suppression in time across all labels, with a refractory distance), scoring
detections against ground truth, and a threshold calibrated for a target false-alarm rate.

Used by :meth:`mtl.tasks.KeywordSpotting.detect` and ``calibrate``; registers no task.

Example::

    starts = window_starts(len(audio), 16_000, 4_000)
    events = pick_events([s / 16_000 for s in starts], 1.0, probabilities, labels, threshold=0.8)
    table = sweep(events, truth, hours=0.5, thresholds=THRESHOLDS)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from mtl.errors import MtlError

CALIBRATION_FILE = "detection_calibration.json"
THRESHOLDS = tuple(float(t) for t in np.round(np.concatenate([np.arange(0.05, 0.9, 0.05),
                                                              1 - np.logspace(-1, -3, 17)]), 4))


class Detection(NamedTuple):
    """A keyword found in a recording: the window ``start_s``..``end_s`` (seconds) where its smoothed score
    peaks, and that score."""

    keyword: str
    start_s: float
    end_s: float
    score: float


MIN_HOP = 0.01  # seconds between windows: finer only multiplies the work (100 windows a second already)


@dataclass(frozen=True)
class DetectorSettings:
    """How window scores become detections; a calibration holds only for the settings it was made with."""

    hop: float = 0.25  # seconds between windows
    smooth: int = 3  # class probabilities averaged over this many consecutive windows (1: no smoothing)
    refractory: float = 1.0  # seconds: no two detections (any labels) have window centres closer than this

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.hop) and self.hop >= MIN_HOP):
            problems.append(f"hop (--hop) must be at least {MIN_HOP} seconds, got {self.hop}")
        if isinstance(self.smooth, bool) or not isinstance(self.smooth, int) or self.smooth < 1:
            problems.append(f"smooth (--smooth) must be a whole number of windows >= 1, got {self.smooth}")
        if not (math.isfinite(self.refractory) and self.refractory >= 0):
            problems.append(f"refractory (--refractory) must be zero or more seconds, got {self.refractory}")
        if problems:
            raise MtlError("detector: " + "; ".join(problems))


def window_starts(total: int, window: int, hop: int) -> list[int]:
    """Start samples of windows ``hop`` apart covering ``total`` samples (the last one ends at the end)."""
    if total <= window:
        return [0]
    starts = list(range(0, total - window + 1, hop))
    if starts[-1] + window < total:
        starts.append(total - window)
    return starts


def smooth_posteriors(probabilities: np.ndarray, windows: int) -> np.ndarray:
    """Each window's class probabilities averaged with its neighbours (``windows`` in all, centred)."""
    if windows <= 1 or len(probabilities) < 2:
        return probabilities
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(probabilities, size=windows, axis=0, mode="nearest")


def pick_events(starts_s: Sequence[float], window_s: float, probabilities: np.ndarray, label_names: Sequence[str],
                *, threshold: float, ignore: Sequence[str] = (), refractory: float = 1.0,
                duration: float | None = None) -> list[Detection]:
    """Detections from (smoothed) per-window probabilities, in time order.

    A window's candidate is its best label that is not ignored; candidates scoring at least ``threshold`` are
    taken best first, and each suppresses every other candidate, of any label, whose window centre is within
    ``refractory`` seconds of its own (greedy non-maximum suppression). Raising the threshold only removes
    detections, so one run at a low threshold serves a whole threshold sweep. With ``duration`` (seconds), no
    detection ends after the recording does (a recording shorter than one window is padded to it).
    """
    keep = np.array([name not in ignore for name in label_names])
    if not keep.any() or not len(probabilities):
        return []
    scores = np.where(keep, probabilities, -1.0)
    best = scores.argmax(axis=1)
    best_score = scores[np.arange(len(scores)), best]
    centres = np.asarray(starts_s, dtype=float) + window_s / 2
    alive, taken = best_score >= threshold, []
    for i in np.argsort(-best_score, kind="stable"):
        if best_score[i] < threshold:
            break
        if alive[i]:
            taken.append(int(i))
            if refractory > 0:
                alive &= np.abs(centres - centres[i]) >= refractory - 1e-9
    last = math.inf if duration is None else duration
    return [Detection(label_names[best[i]], round(float(starts_s[i]), 3),
                      round(float(min(starts_s[i] + window_s, last)), 3), float(best_score[i])) for i in sorted(taken)]


def match(detections: Sequence[Detection], truth: Sequence[dict[str, Any]], keywords: Sequence[str],
          tolerance: float = 0.5) -> dict[str, Any]:
    """Hits, misses and false alarms of ``detections`` against ``truth`` words (``label``, ``start``, ``end``).

    A detection hits an unmatched keyword of its label when its window centre lies within the word's span
    widened by ``tolerance`` seconds; every other detection is a false alarm. ``errors`` are the hits'
    distances (seconds) from window centre to word centre; ``false_alarm_events`` the other detections and
    ``missed`` the keywords no detection hit.
    """
    targets = [w for w in truth if w["label"] in keywords]
    used = [False] * len(targets)
    hits, errors, alarms = 0, [], []
    for event in sorted(detections, key=lambda e: -e.score):
        centre = (event.start_s + event.end_s) / 2
        options = [(abs(centre - (w["start"] + w["end"]) / 2), k) for k, w in enumerate(targets)
                   if not used[k] and w["label"] == event.keyword
                   and w["start"] - tolerance <= centre <= w["end"] + tolerance]
        if options:
            distance, k = min(options)
            used[k] = True
            hits += 1
            errors.append(distance)
        else:
            alarms.append(event)
    return {"keywords": len(targets), "hits": hits, "detections": len(detections),
            "false_alarms": len(detections) - hits, "errors": errors, "false_alarm_events": alarms,
            "missed": [w for w, found in zip(targets, used) if not found]}


def sweep(detections: Sequence[Sequence[Detection]], truths: Sequence[Sequence[dict[str, Any]]], hours: float,
          keywords: Sequence[str], thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float]]:
    """Recall, precision, false alarms per hour and median time error at each threshold, from detections made
    at a threshold no higher than the lowest (one list per recording, with that recording's truth)."""
    rows = []
    for threshold in thresholds:
        counts = [match([e for e in events if e.score >= threshold], truth, keywords)
                  for events, truth in zip(detections, truths)]
        hits, targets = sum(c["hits"] for c in counts), sum(c["keywords"] for c in counts)
        found, alarms = sum(c["detections"] for c in counts), sum(c["false_alarms"] for c in counts)
        errors = [e for c in counts for e in c["errors"]]
        rows.append({"threshold": float(threshold), "recall": hits / max(targets, 1),
                     "precision": hits / found if found else 1.0, "false_alarms": alarms,
                     "false_alarms_per_hour": alarms / hours, "false_alarms_per_minute": alarms / hours / 60,
                     "median_time_error_s": float(np.median(errors)) if errors else float("nan"),
                     "p90_time_error_s": float(np.percentile(errors, 90)) if errors else float("nan")})
    return rows


def calibration_record(rows: list[dict[str, float]], settings: DetectorSettings, hours: float,
                       about: str) -> dict[str, Any]:
    """What a model folder keeps of a sweep on its validation audio: thresholds with their false-alarm rate and
    recall, the detector settings and how much audio was measured."""
    return {"detector": asdict(settings), "hours": round(hours, 4), "audio": about,
            "thresholds": [r["threshold"] for r in rows],
            "false_alarms_per_hour": [round(r["false_alarms_per_hour"], 3) for r in rows],
            "recall": [round(r["recall"], 4) for r in rows]}


def read_calibration(file: Path) -> dict[str, Any] | None:
    """The calibration a model folder keeps (None when it has none); a damaged file is one error saying how to
    make it again."""
    if not file.is_file():
        return None
    try:
        calibration = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        calibration, problem = None, f"not readable JSON: {error}"
    else:
        problem = _calibration_problem(calibration)
    if problem:
        raise MtlError(f"{file} is damaged ({problem}); calibrate again: python -m mtl.detect {file.parent} "
                       "--calibrate --overwrite")
    return calibration


def _calibration_problem(calibration: Any) -> str | None:
    if not isinstance(calibration, dict):
        return f"a JSON object was expected, it holds a {type(calibration).__name__}"
    if not isinstance(calibration.get("detector"), dict):
        return "no 'detector' settings"
    # recall is optional: calibrations made before it was kept have none
    columns = {key: calibration.get(key) for key in ("thresholds", "false_alarms_per_hour", "recall")
               if key != "recall" or "recall" in calibration}
    for key, values in columns.items():
        if not isinstance(values, list) or not values or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return f"'{key}' is not a list of numbers"
    if len({len(values) for values in columns.values()}) > 1:
        return f"{', '.join(map(repr, columns))} differ in length"
    return None


def calibration_warnings(calibration: dict[str, Any], keyword_clips: int) -> list[str]:
    """What makes a calibration untrustworthy: too little audio to resolve a rate of one false alarm per hour,
    too few keyword clips, or no keyword found at ten false alarms per hour."""
    warnings, hours = [], calibration["hours"]
    if hours < 1:
        length = f"{hours * 60:.0f} minutes" if hours * 60 >= 1 else f"{hours * 3600:.0f} seconds"
        warnings.append(f"calibration: {length} of audio cannot resolve rates under "
                        f"{1 / hours:.0f} false alarms per hour (one false alarm in them is that rate); give more "
                        "minutes (--minutes) and more validation clips")
    if keyword_clips < 50:
        warnings.append(f"calibration: only {keyword_clips} keyword clips were stitched (again and again to fill the "
                        "minutes), so the rates and recalls rest on few words; calibrate on more held-out clips")
    usable = [recall for rate, recall in zip(calibration["false_alarms_per_hour"], calibration["recall"]) if rate <= 10]
    if not usable or max(usable) == 0:
        warnings.append("calibration: at 10 false alarms per hour or fewer the model finds no keyword in this audio "
                        "(recall 0): its calibrated thresholds are not usable; train on more data or check the clips")
    return warnings


def calibrated_threshold(calibration: dict[str, Any] | None, false_alarms_per_hour: float,
                         settings: DetectorSettings, where: str | None) -> float:
    """The lowest calibrated threshold whose validation false-alarm rate is at most ``false_alarms_per_hour``;
    ``where``: the saved model folder (None: a model not saved yet, in Python)."""
    if calibration is None and where is None:
        raise MtlError("detect: this model has no detection calibration; call task.calibrate(validation_data) "
                       "first (task.save keeps it with the model), or give threshold=")
    if calibration is None:
        raise MtlError(f"{where}: no detection calibration ({CALIBRATION_FILE}); run `python -m mtl.detect {where} "
                       "--calibrate` (or task.calibrate(validation_data) and task.save), or give --threshold")
    where = where or "this model"
    if calibration.get("detector") != asdict(settings):
        raise MtlError(f"{where}: the calibration was made with detector settings {calibration.get('detector')}, "
                       f"not {asdict(settings)}; use those settings or calibrate again with these")
    if not (math.isfinite(false_alarms_per_hour) and false_alarms_per_hour >= 0):
        raise MtlError(f"--false_alarms_per_hour must be zero or more, got {false_alarms_per_hour}")
    recalls = calibration.get("recall") or [None] * len(calibration["thresholds"])
    for threshold, rate, recall in zip(calibration["thresholds"], calibration["false_alarms_per_hour"], recalls):
        if rate <= false_alarms_per_hour:
            if recall == 0:
                raise MtlError(f"--false_alarms_per_hour {false_alarms_per_hour:g}: at that rate the calibration "
                               f"found no keyword in the validation audio (recall 0 at every threshold from "
                               f"{threshold:g}), so no calibrated threshold is usable; the model does not tell "
                               "keywords apart there: train it on more data, or give --threshold")
            return float(threshold)
    raise MtlError(f"--false_alarms_per_hour {false_alarms_per_hour}: no calibrated threshold is that strict (the "
                   f"fewest on validation audio: {min(calibration['false_alarms_per_hour'])} per hour); allow more "
                   "false alarms or give --threshold")


def plot_timeline(audio: np.ndarray, rate: int, detections: Sequence[Detection], path: Path, title: str = "") -> None:
    """The recording's waveform (min/max envelope) with each detection shaded and labelled, as a PNG (atomic)."""
    from mtl.fs import atomic_file
    from mtl.publish.reports import pyplot

    plt = pyplot()
    seconds = len(audio) / rate
    columns = int(min(len(audio), 4000))
    usable = len(audio) // columns * columns
    blocks = audio[:usable].reshape(columns, -1)
    times = (np.arange(columns) + 0.5) * (usable / columns) / rate
    figure, axes = plt.subplots(figsize=(min(40.0, max(8.0, seconds / 4)), 3.2))
    axes.fill_between(times, blocks.min(axis=1), blocks.max(axis=1), color="0.55", linewidth=0)
    top = float(np.abs(audio).max()) or 1.0
    colours = plt.get_cmap("tab10")
    names = sorted({d.keyword for d in detections})
    for k, event in enumerate(detections):
        colour = colours(names.index(event.keyword) % 10)
        axes.axvspan(event.start_s, event.end_s, color=colour, alpha=0.25, linewidth=0)
        axes.text((event.start_s + event.end_s) / 2, top * (1.05 + 0.2 * (k % 2)), f"{event.keyword} {event.score:.2f}",
                  ha="center", va="bottom", fontsize=8, color=colour)  # labels of neighbours on two rows
    axes.set(xlim=(0, seconds), ylim=(-top * 1.1, top * 1.5), xlabel="seconds", yticks=[],
             title=title or f"{len(detections)} detections")
    figure.tight_layout()
    with atomic_file(Path(path)) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
