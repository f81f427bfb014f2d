"""Keyword detection in long recordings without a model: smoothing, one detection per event, scoring against
ground truth, threshold calibration, stitched recordings and the partial-word negatives of streaming training.
(Detection with trained tiny models and the ``mtl.detect`` command are tested in test_keyword_spotting.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from mtl.errors import MtlError
from mtl.tasks.keyword_detection import (Detection, DetectorSettings, calibrated_threshold, calibration_record,
                                         calibration_warnings, match, pick_events, smooth_posteriors, sweep, window_starts)
from mtl.tasks.keyword_augment import streaming_negatives, word_extent
from mtl.tasks.keyword_stitching import stitch

NAMES = ["_silence_", "_unknown_", "down", "go"]
RATE = 16_000


def word(rng: np.random.Generator, pitch: float, voiced: float = 0.5) -> np.ndarray:
    """One second: a tone of ``voiced`` seconds in the middle of faint noise (a word in its clip)."""
    clip = 0.001 * rng.standard_normal(RATE)
    start, length = int((1 - voiced) / 2 * RATE), int(voiced * RATE)
    clip[start:start + length] += 0.3 * np.sin(2 * np.pi * pitch * np.arange(length) / RATE)
    return clip.astype(np.float32)


def test_windows_cover_the_recording():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7] and window_starts(3, 4, 3) == [0]


def test_one_detection_per_event_across_labels_and_thresholds_only_remove():
    # "go" peaks at 1.0 s; a window half over it says "down" (the false alarm of the issue); "down" at 4 s
    starts = [0.0, 0.5, 1.0, 1.5, 2.0, 3.5, 4.0, 4.5]
    rows = np.array([[.9, .1, 0, 0], [.1, .1, .1, .7], [0, 0, 0, 1], [.1, 0, .85, .05], [.8, .2, 0, 0],
                     [.5, 0, .5, 0], [0, 0, .95, .05], [.3, 0, .7, 0]])
    events = pick_events(starts, 1.0, rows, NAMES, threshold=0.6, ignore=NAMES[:2], refractory=1.0)
    assert events == [Detection("go", 1.0, 2.0, 1.0), Detection("down", 4.0, 5.0, 0.95)]
    plain = pick_events(starts, 1.0, rows, NAMES, threshold=0.6, ignore=NAMES[:2], refractory=0)
    assert [e.keyword for e in plain] == ["go", "go", "down", "down", "down"]  # no suppression: every window
    for threshold in (0.2, 0.7, 0.9, 0.97):
        higher = pick_events(starts, 1.0, rows, NAMES, threshold=threshold, ignore=NAMES[:2])
        assert higher == [e for e in pick_events(starts, 1.0, rows, NAMES, threshold=0.1, ignore=NAMES[:2])
                          if e.score >= threshold]


def test_a_detection_in_a_recording_shorter_than_a_window_ends_with_it():
    rows = np.array([[0, 0, 0.1, 0.9]])
    assert pick_events([0.0], 1.0, rows, NAMES, threshold=0.5, duration=0.5) == [Detection("go", 0.0, 0.5, 0.9)]
    assert pick_events([0.0], 1.0, rows, NAMES, threshold=0.5, duration=3.0) == [Detection("go", 0.0, 1.0, 0.9)]


def test_smoothing_averages_neighbouring_windows():
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    smoothed = smooth_posteriors(rows, 3)
    assert smoothed[1] == pytest.approx([2 / 3, 1 / 3]) and smoothed[0] == pytest.approx([2 / 3, 1 / 3])
    assert smoothed.sum(axis=1) == pytest.approx(1.0) and smooth_posteriors(rows, 1) is rows


def test_matching_counts_hits_false_alarms_and_time_error():
    truth = [{"label": "go", "start": 1.2, "end": 1.6}, {"label": "_unknown_", "start": 3.0, "end": 3.5},
             {"label": "down", "start": 5.0, "end": 5.4}]
    events = [Detection("go", 1.0, 2.0, 0.9), Detection("go", 2.5, 3.5, 0.8),  # second: a word that is not go
              Detection("down", 8.0, 9.0, 0.7)]
    result = match(events, truth, ["go", "down"])
    assert (result["keywords"], result["hits"], result["false_alarms"]) == (2, 1, 2)
    assert result["errors"] == pytest.approx([0.1])
    rows = sweep([events], [truth], hours=0.5, keywords=["go", "down"], thresholds=[0.5, 0.75, 0.95])
    assert [(r["recall"], r["false_alarms_per_hour"]) for r in rows] == [(0.5, 4.0), (0.5, 2.0), (0.0, 0.0)]
    assert rows[0]["precision"] == pytest.approx(1 / 3) and rows[2]["precision"] == 1.0


def test_calibrated_threshold_is_the_lowest_within_the_rate():
    settings = DetectorSettings()
    table = [{"threshold": t, "false_alarms_per_hour": fa, "recall": r}
             for t, fa, r in [(0.5, 40.0, 0.99), (0.8, 12.0, 0.97), (0.9, 6.0, 0.95), (0.99, 1.0, 0.8)]]
    calibration = calibration_record(table, settings, 1.0, "test")
    assert calibrated_threshold(calibration, 10, settings, "m") == 0.9
    assert calibrated_threshold(calibration, 12, settings, "m") == 0.8
    with pytest.raises(MtlError, match="no calibrated threshold is that strict"):
        calibrated_threshold(calibration, 0.5, settings, "m")
    with pytest.raises(MtlError, match=r"no detection calibration .*python -m mtl.detect m --calibrate"):
        calibrated_threshold(None, 10, settings, "m")
    with pytest.raises(MtlError, match=r"^detect: this model has no detection calibration; call task.calibrate"):
        calibrated_threshold(None, 10, settings, None)  # in Python, a model not saved yet: no folder, no flags
    with pytest.raises(MtlError, match="was made with detector settings"):
        calibrated_threshold(calibration, 10, DetectorSettings(smooth=5), "m")
    with pytest.raises(MtlError, match=r"smooth \(--smooth\) must be a whole number"):
        DetectorSettings(smooth=0)
    for bad in (dict(hop=float("nan")), dict(hop=1e-6), dict(hop=float("inf")), dict(refractory=float("nan")),
                dict(smooth=2.5)):
        with pytest.raises(MtlError, match="detector: "):
            DetectorSettings(**bad)


def test_a_calibration_that_found_no_keyword_gives_no_threshold():
    """A collapsed model: no detections at all, so every threshold has 0 false alarms and 0 recall."""
    settings = DetectorSettings()
    table = [{"threshold": t, "false_alarms_per_hour": 0.0, "recall": 0.0} for t in (0.1, 0.5, 0.9)]
    with pytest.raises(MtlError, match=r"found no keyword .*recall 0.*give --threshold"):
        calibrated_threshold(calibration_record(table, settings, 1.0, "test"), 10, settings, "m")


def test_calibration_warns_about_short_audio_few_words_and_zero_recall():
    def record(hours, recalls):
        table = [{"threshold": t, "false_alarms_per_hour": fa, "recall": r}
                 for (t, fa), r in zip([(0.5, 40.0), (0.8, 12.0), (0.9, 6.0), (0.99, 1.0)], recalls)]
        return calibration_record(table, DetectorSettings(), hours, "test")
    assert calibration_warnings(record(1.2, [0.99, 0.97, 0.95, 0.8]), keyword_clips=300) == []
    short, few, blind = calibration_warnings(record(2.1 / 60, [0.5, 0.2, 0.0, 0.0]), keyword_clips=5)
    assert "2 minutes of audio cannot resolve rates under 29 false alarms per hour" in short
    assert "only 5 keyword clips" in few and "recall 0" in blind


def test_stitching_is_seeded_and_the_truth_marks_the_words():
    rng = np.random.default_rng(0)
    words = [(word(rng, 300 + 100 * i), "go" if i % 2 else "_unknown_", f"w{i}", f"w{i}.wav") for i in range(12)]
    noise = [rng.standard_normal(RATE).astype(np.float32) for _ in range(3)]
    recordings = stitch(words, noise, rate=RATE, seed=5, seconds=10.0, snrs_db=(10.0, 30.0))
    again = stitch(words, noise, rate=RATE, seed=5, seconds=10.0, snrs_db=(10.0, 30.0))
    assert all(np.array_equal(a.audio, b.audio) and a.words == b.words for a, b in zip(recordings, again))
    assert not np.array_equal(recordings[0].audio[:RATE], stitch(words, noise, rate=RATE, seed=6)[0].audio[:RATE])
    assert sorted(w["word"] for r in recordings for w in r.words) == sorted(f"w{i}" for i in range(12))
    for recording in recordings:
        audio, gaps = recording.audio, np.ones(len(recording.audio), bool)
        for w in recording.words:
            assert w["end"] - w["start"] == pytest.approx(0.5, abs=0.04)  # the tone, not the clip around it
            gaps[int((w["start"] - 0.1) * RATE):int((w["end"] + 0.1) * RATE)] = False
        voiced = np.concatenate([audio[int(w["start"] * RATE):int(w["end"] * RATE)] for w in recording.words])
        snr = 10 * np.log10(np.mean(voiced ** 2) / np.mean(audio[gaps] ** 2))
        assert snr == pytest.approx(recording.snr_db, abs=1.0)
    assert [r.snr_db for r in recordings][:2] == [10.0, 30.0]


def test_streaming_negatives_cut_words_and_relabel_them():
    rng = np.random.default_rng(1)
    clips = [word(rng, 500) for _ in range(40)]
    labels = [2] * 39 + [1]
    out, relabelled = streaming_negatives(clips, labels, NAMES, 1.0, np.random.default_rng(0), RATE)
    assert relabelled[-1] == 1 and out[-1] is clips[-1]  # _unknown_ clips stay as they are
    kinds = {0: 0, 1: 0}
    for clip, label in zip(out[:-1], relabelled[:-1]):
        kinds[label] += 1
        start, end = word_extent(clip, RATE)
        if label == 1:  # a partial word at one edge of the window: 20-50% of its 0.5 s
            assert 0.09 <= (end - start) / RATE <= 0.27 and (start == 0 or end >= RATE - 400)
        else:  # the background alone
            assert np.abs(clip).max() < 0.01
    assert kinds[1] > kinds[0] > 0
    same, kept = streaming_negatives(clips, labels, NAMES, 0.0, rng, RATE)
    assert kept == labels and all(a is b for a, b in zip(same, clips))
    assert word_extent(np.full(RATE, 0.1, np.float32), RATE) == (0, RATE)  # flat: no word found
