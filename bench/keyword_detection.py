"""Keyword detection in long recordings: recall, precision, false alarms per minute and per hour, detection-time
error and speed of one or more keyword models, on recordings stitched from their run's held-out test split.

The test clips are the ones the run recorded in ``test_predictions.csv`` (speakers never seen in training).
Their words (keywords and other words) are cut to their voiced part and stitched in a seeded random order with
random gaps over background noise (the split's ``_silence_`` clips, or ``--noise``) at 10, 20 and 30 dB SNR;
each recording's ground truth is written beside it as CSV. Every model is swept over thresholds and read at
the threshold its validation calibration picks for ``--target`` false alarms per hour
(``python -m mtl.detect MODEL --calibrate`` first). Prints the table and writes ``curve.png`` (recall against
false alarms per hour), ``timeline.png`` (the first recording with the first model's detections) and
``results.json`` into ``--out``.

    python bench/keyword_detection.py /tmp/kw /tmp/kw-streaming --out /tmp/kw-bench
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from mtl.errors import MtlError
from mtl.fs import atomic_file, write_json, write_text_atomic
from mtl.publish.reports import pyplot
from mtl.registry import load_saved_task
from mtl.tasks.keyword_detection import CALIBRATION_FILE, DetectorSettings, calibrated_threshold, match, sweep
from mtl.tasks.keyword_stitching import stitch_rows

SHOWN = (0.5, 0.8, 0.9, 0.95, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="keyword model folders written by mtl.run (same data and split)")
    parser.add_argument("--out", required=True, help="new or empty folder for recordings, truth, PNGs and results")
    parser.add_argument("--noise", help="folder of noise recordings (_background_noise_); default: _silence_ clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=0.0, help="stitch the test clips again until this long")
    parser.add_argument("--recordings", type=int, help="use only the first N recordings (a quick look)")
    parser.add_argument("--gap", type=float, nargs=2, default=(0.5, 3.0), metavar=("MIN", "MAX"),
                        help="seconds of noise before each word, drawn uniformly (default 0.5 3.0)")
    parser.add_argument("--target", type=float, default=10.0, help="false alarms per hour to calibrate for")
    parser.add_argument("--hop", type=float, default=0.25)
    parser.add_argument("--smooth", type=int, default=3)
    parser.add_argument("--refractory", type=float, default=1.0)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"error: --out {out} is not empty; give a new folder")
    settings = DetectorSettings(args.hop, args.smooth, args.refractory)

    tasks = [load_saved_task(model) for model in args.models]
    rows = test_rows(args.models)
    recordings = stitch_rows(rows, tasks[0].sampling_rate, noise=args.noise, seed=args.seed, minutes=args.minutes,
                             gap=tuple(args.gap))
    recordings = recordings[:args.recordings] if args.recordings else recordings
    write_recordings(recordings, out / "recordings")
    seconds = sum(r.seconds for r in recordings)
    keywords = sum(w["label"] not in ("_unknown_", "_silence_") for r in recordings for w in r.words)
    print(f"{len(recordings)} recordings, {seconds / 60:.1f} min, {keywords} keywords and "
          f"{sum(len(r.words) for r in recordings) - keywords} other words from {len(rows)} test clips "
          f"(seed {args.seed}); {settings}")

    results, figure_rows = {}, {}
    for model, task in zip(args.models, tasks):
        cpu = time.process_time()
        events, took = task.detect_recordings(recordings, settings)
        cpu = time.process_time() - cpu  # CPU seconds of all threads: less sensitive to other jobs than wall time
        load = os.getloadavg()[0]  # other jobs on the machine slow detection down: say how busy it was
        table = sweep(events, [r.words for r in recordings], seconds / 3600, task.keywords)
        file = Path(model) / CALIBRATION_FILE  # read now: a calibration may finish while earlier models run
        calibration = json.loads(file.read_text()) if file.is_file() else None
        try:
            chosen = calibrated_threshold(calibration, args.target, settings, model)
        except MtlError as error:
            print(f"  {model}: {error}")
            chosen = None
        summary = {"real_time_factor": seconds / took, "detect_seconds": took, "load_average": load,
                   "audio_seconds_per_cpu_second": seconds / cpu,
                   "threads": torch.get_num_threads(), "calibrated_threshold": chosen,
                   "at_calibrated": _row(table, chosen) if chosen is not None else None,
                   "best_within_target": max((r for r in table if r["false_alarms_per_hour"] <= args.target),
                                             key=lambda r: r["recall"], default=None),
                   "per_snr": _per_snr(recordings, events, task.keywords, chosen) if chosen is not None else None,
                   "false_alarms_on": _alarm_kinds(recordings, events, task.keywords, chosen or 0.5),
                   "recall_by_spacing": _recall_by_spacing(recordings, events, task.keywords, chosen or 0.5)}
        results[model] = {"summary": summary, "sweep": table}
        figure_rows[model] = (table, summary["at_calibrated"])
        _print(model, table, summary, args.target)
        _write_detections(events, out / f"detections-{len(results)}-{Path(model).name}")
        if model == args.models[0]:
            first = recordings[0]
            task.plot_detections(first.audio, [e for e in events[0] if e.score >= (chosen or 0.5)],
                                 out / "timeline.png", sampling_rate=first.rate)
    _plot_curves(figure_rows, args.target, out / "curve.png")
    write_json(out / "results.json", {"recordings": len(recordings), "minutes": seconds / 60, "keywords": keywords,
                                      "settings": vars(args), "models": results})
    print(f"wrote {out}/recordings, curve.png, timeline.png, results.json")


def test_rows(models: list[str]) -> list[tuple[str, str]]:
    """The test clips each run recorded (``input``, ``label`` of test_predictions.csv), the same for all runs."""
    tables = []
    for model in models:
        file = Path(model) / "test_predictions.csv"
        if not file.is_file():
            sys.exit(f"error: {file} does not exist; give folders written by `python -m mtl.run`")
        tables.append(pd.read_csv(file))
    if any(sorted(t["input"]) != sorted(tables[0]["input"]) for t in tables[1:]):
        sys.exit("error: the runs held out different test clips; compare runs of the same data and split_seed")
    return list(zip(tables[0]["input"], tables[0]["label"]))


def write_recordings(recordings: list, folder: Path) -> None:
    """``rec_NNN.wav`` and its ground truth ``rec_NNN.csv`` (label, word, start, end, source, snr_db)."""
    folder.mkdir(parents=True)
    for i, recording in enumerate(recordings):
        with atomic_file(folder / f"rec_{i:03d}.wav") as tmp:
            sf.write(tmp, recording.audio, recording.rate, format="WAV", subtype="PCM_16")
        truth = pd.DataFrame(recording.words).assign(snr_db=recording.snr_db)
        write_text_atomic(folder / f"rec_{i:03d}.csv", truth.to_csv(index=False))


def _row(table: list[dict], threshold: float) -> dict:
    return next(r for r in table if abs(r["threshold"] - threshold) < 1e-9)


def _per_snr(recordings: list, events: list, keywords: list[str], threshold: float) -> dict[str, dict]:
    result = {}
    for snr in sorted({r.snr_db for r in recordings}):
        chosen = [i for i, r in enumerate(recordings) if r.snr_db == snr]
        hours = sum(recordings[i].seconds for i in chosen) / 3600
        row = sweep([events[i] for i in chosen], [recordings[i].words for i in chosen], hours, keywords, [threshold])
        result[f"{snr:g} dB"] = {k: row[0][k] for k in ("recall", "false_alarms_per_hour", "median_time_error_s")}
    return result


def _write_detections(events: list, folder: Path) -> None:
    """Each recording's detections (threshold 0.05: filter by score) as ``rec_NNN.csv`` (label, start, end, score)."""
    folder.mkdir()
    for i, found in enumerate(events):
        table = pd.DataFrame(found, columns=["label", "start", "end", "score"])
        write_text_atomic(folder / f"rec_{i:03d}.csv", table.to_csv(index=False))


def _recall_by_spacing(recordings: list, events: list, keywords: list[str], threshold: float) -> dict[str, str]:
    """Recall of keywords whose nearest neighbouring word is less than 1 s away (edge to edge), and of the rest."""
    found = {"close": [0, 0], "apart": [0, 0]}
    for recording, detected in zip(recordings, events):
        missed = {id(w) for w in match([e for e in detected if e.score >= threshold], recording.words,
                                       keywords)["missed"]}
        words = recording.words
        for i, word in enumerate(words):
            if word["label"] not in keywords:
                continue
            gaps = [word["start"] - words[i - 1]["end"]] if i else []
            gaps += [words[i + 1]["start"] - word["end"]] if i + 1 < len(words) else []
            kind = "close" if min(gaps, default=9.0) < 1.0 else "apart"
            found[kind][0] += id(word) not in missed
            found[kind][1] += 1
    return {kind: f"{hit}/{total} ({hit / max(total, 1):.1%})" for kind, (hit, total) in found.items()}


def _alarm_kinds(recordings: list, events: list, keywords: list[str], threshold: float) -> dict[str, int]:
    """What lies under each false alarm: a keyword (another label, or a second detection), another word, or noise."""
    kinds = {"keyword": 0, "other word": 0, "noise": 0}
    for recording, found in zip(recordings, events):
        result = match([e for e in found if e.score >= threshold], recording.words, keywords)
        for event in result["false_alarm_events"]:
            under = [w for w in recording.words if w["start"] < event.end_s and w["end"] > event.start_s]
            kinds["noise" if not under else "keyword" if any(w["label"] in keywords for w in under)
                  else "other word"] += 1
    return kinds


def _print(model: str, table: list[dict], summary: dict, target: float) -> None:
    print(f"\n{model}: {summary['real_time_factor']:.1f}x faster than real time ({summary['detect_seconds']:.0f} s "
          f"of detection, {summary['threads']} threads, load average {summary['load_average']:.1f}); "
          f"{summary['audio_seconds_per_cpu_second']:.1f} s of audio per CPU second")
    print(" threshold  recall  precision  FA/min  FA/hour  median err  p90 err")
    shown = [r for r in table if any(abs(r["threshold"] - t) < 1e-9 for t in SHOWN)]
    if summary["at_calibrated"]:
        shown = sorted({id(r): r for r in shown + [summary["at_calibrated"]]}.values(), key=lambda r: r["threshold"])
    for r in shown:
        mark = "  <- calibrated for <= %g FA/h on validation" % target if r is summary["at_calibrated"] else ""
        print(f"  {r['threshold']:8.4f}  {r['recall']:6.1%}  {r['precision']:9.1%}  {r['false_alarms_per_minute']:6.3f}"
              f"  {r['false_alarms_per_hour']:7.1f}  {1000 * r['median_time_error_s']:7.0f} ms"
              f"  {1000 * r['p90_time_error_s']:4.0f} ms{mark}")
    best = summary["best_within_target"]
    if best:
        print(f"  best recall with <= {target:g} FA/h on this test audio (oracle threshold {best['threshold']}): "
              f"{best['recall']:.1%}")
    print(f"  false alarms at the {'calibrated' if summary['at_calibrated'] else '0.5'} threshold lie on: "
          + ", ".join(f"{kind} {count}" for kind, count in summary["false_alarms_on"].items()))
    print("  recall of keywords with a word less than 1 s away: {close}; the others: {apart}".format(
        **summary["recall_by_spacing"]))
    if summary["per_snr"]:
        print("  at the calibrated threshold, by SNR: " + "; ".join(
            f"{snr}: recall {v['recall']:.1%}, {v['false_alarms_per_hour']:.1f} FA/h" for snr, v in
            summary["per_snr"].items()))


def _plot_curves(rows: dict, target: float, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for model, (table, chosen) in rows.items():
        rates = np.array([r["false_alarms_per_hour"] for r in table])
        line, = axes.plot(np.maximum(rates, 0.5), [r["recall"] for r in table], marker=".", label=Path(model).name)
        if chosen:
            axes.plot(max(chosen["false_alarms_per_hour"], 0.5), chosen["recall"], "o", ms=10, mfc="none",
                      color=line.get_color())
    axes.axvline(target, color="0.6", linestyle="--", linewidth=1)
    axes.set(xscale="log", xlabel="false alarms per hour (0 drawn at 0.5)", ylabel="recall",
             title="keyword detection on stitched held-out audio (circles: calibrated threshold)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
