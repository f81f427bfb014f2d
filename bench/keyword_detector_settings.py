"""Detector settings compared on recordings written by ``bench/keyword_detection.py``: window probabilities are
computed once per recording, then smoothing and refractory time vary; prints recall, false alarms and median time
error at thresholds 0.5, 0.8 and 0.9 for each pair.

    python bench/keyword_detector_settings.py /tmp/kwd/base /tmp/kwd/bench-final/recordings --recordings 6
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import soundfile as sf

from mtl.registry import load_saved_task
from mtl.tasks.keyword_detection import pick_events, smooth_posteriors, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("recordings", help="the recordings folder of a bench/keyword_detection.py run")
    parser.add_argument("--recordings", dest="count", type=int, default=6)
    parser.add_argument("--hop", type=float, default=0.25)
    args = parser.parse_args()
    task = load_saved_task(args.model)
    recordings = []
    for wav in sorted(Path(args.recordings).glob("rec_*.wav"))[:args.count]:
        audio, rate = sf.read(wav, dtype="float32")
        truth = pd.read_csv(wav.with_suffix(".csv")).to_dict("records")
        recordings.append((len(audio) / rate, truth, *task.window_probabilities(audio, sampling_rate=rate,
                                                                                 hop=args.hop)))
    hours = sum(seconds for seconds, *_ in recordings) / 3600
    print(f"{len(recordings)} recordings, {hours * 60:.1f} min; (threshold, recall, false alarms, median error s)")
    for smooth in (1, 2, 3, 5):
        for refractory in (0.5, 0.75, 1.0):
            events = [pick_events(starts, task.options.clip_seconds, smooth_posteriors(probabilities, smooth),
                                  task.label_names, threshold=0.05, ignore=("_silence_", "_unknown_"),
                                  refractory=refractory) for _, _, starts, probabilities in recordings]
            rows = sweep(events, [truth for _, truth, *_ in recordings], hours, task.keywords, [0.5, 0.8, 0.9])
            print(f"smooth {smooth} refractory {refractory}:", [(r["threshold"], round(r["recall"], 3),
                  r["false_alarms"], round(r["median_time_error_s"], 3)) for r in rows])


if __name__ == "__main__":
    main()
