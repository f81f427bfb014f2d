"""The checkpoint ranking of ``mtl.select`` as files: a CSV of every score and cost, and a bar chart PNG.

Example::

    write_ranking(Path("outputs/sentiment-selection"), [row.to_dict() for row in rows], "linear_probe")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..fs import atomic_file
from .reports import pyplot

RANKING_CSV = "ranking.csv"
RANKING_PNG = "ranking.png"
COLUMNS = ["rank", "checkpoint", "score", "linear_probe", "knn", "logme", "seconds", "cpu_seconds", "peak_memory_mb",
           "feature_dim", "train_examples", "validation_examples", "source"]


def ranking_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows (best first) as a table with a 1-based rank column."""
    frame = pd.DataFrame(list(rows))
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame[[c for c in COLUMNS if c in frame.columns]]


def format_ranking(rows: Sequence[dict[str, Any]], score: str) -> str:
    """A plain-text table for the terminal, best first, ranked by ``score``."""
    frame = ranking_frame(rows)[["rank", "checkpoint", "linear_probe", "knn", "logme", "seconds", "peak_memory_mb"]]
    frame = frame.rename(columns={"peak_memory_mb": "peak MB", "seconds": "time s", "linear_probe": "linear probe",
                                  "knn": "k-NN", "logme": "LogME"})
    text = frame.to_string(index=False, float_format=lambda v: f"{v:.4f}" if abs(v) < 100 else f"{v:.0f}")
    return f"ranked by {score} (validation accuracy for linear_probe and knn; evidence per example for logme):\n{text}"


def write_ranking(folder: Path, rows: Sequence[dict[str, Any]], score: str) -> list[str]:
    """Write ``ranking.csv`` and ``ranking.png`` (each atomically) into ``folder``; return their names."""
    folder = Path(folder)
    frame = ranking_frame(rows)
    with atomic_file(folder / RANKING_CSV) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 0.6 * len(frame) + 1.8))
    names = frame["checkpoint"].str.split("/").str[-1][::-1]
    axes[0].barh(names, frame["score"][::-1], color="tab:blue")
    axes[0].set_xlabel(score)
    axes[0].set_title("score (higher is better)")
    axes[1].barh(names, frame["seconds"][::-1], color="tab:gray")
    axes[1].set_xlabel("seconds (features of the sample + scores)")
    axes[1].set_yticks([])
    axes[1].set_title("cost")
    figure.tight_layout()
    with atomic_file(folder / RANKING_PNG) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    return [RANKING_CSV, RANKING_PNG]
