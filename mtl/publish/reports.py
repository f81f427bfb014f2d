"""Reports written into every output folder: per-class table, confusion matrix and learning curves as PNG,
test-split predictions as CSV.

Example::

    write_reports(Path("outputs/run"), summary, predictions)   # after metrics.json is written
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

PER_CLASS_FILE = "per_class.csv"
CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "learning_curves.png"
PREDICTIONS_FILE = "test_predictions.csv"


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, never a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_reports(out: Path, summary: dict[str, Any], predictions: pd.DataFrame | None = None,
                  train_losses: Sequence[dict[str, Any]] = ()) -> list[str]:
    """Write the per-class CSV, confusion-matrix and learning-curve PNGs and the predictions CSV; return file names.

    ``train_losses`` are the run's logged training losses (``FitResult.train_losses``)."""
    test = summary["test"]
    written = [PER_CLASS_FILE, CONFUSION_FILE]
    per_class_table(test["per_class"]).to_csv(out / PER_CLASS_FILE, index_label="label", float_format="%.4f")
    plot_confusion_matrix(test["confusion_matrix"], test.get("labels") or summary["labels"], out / CONFUSION_FILE)
    metric = next((k for k in summary["validation_best"] if k != "epoch"), None)
    if summary.get("history"):
        plot_learning_curves(summary["history"], mean_loss_per_epoch(train_losses), metric, out / CURVES_FILE)
        written.append(CURVES_FILE)
    if predictions is not None:
        predictions.to_csv(out / PREDICTIONS_FILE, index=False, float_format="%.6f")
        written.append(PREDICTIONS_FILE)
    logger.info("reports: %s", ", ".join(written))
    return written


def per_class_table(per_class: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Precision, recall, F1 and support per label (rows in label order)."""
    table = pd.DataFrame.from_dict(per_class, orient="index")
    if "support" in table:
        table["support"] = table["support"].astype(int)
    return table


def predictions_table(inputs: Sequence[Any] | None, labels: np.ndarray | None, logits: np.ndarray,
                      label_names: Sequence[str]) -> pd.DataFrame:
    """One row per example: input (text or file path, when there is one), true label, predicted label and score."""
    import torch

    probabilities = torch.softmax(torch.from_numpy(logits).float(), -1).numpy()
    best = probabilities.argmax(-1)
    table = pd.DataFrame({"index": np.arange(len(best))})
    if inputs is not None:
        table["input"] = list(inputs)
    if labels is not None:
        table["label"] = [label_names[i] for i in labels]
    table["predicted"] = [label_names[i] for i in best]
    table["score"] = probabilities[np.arange(len(best)), best]
    if labels is not None:
        table["correct"] = table["label"] == table["predicted"]
    return table


def readable_inputs(split: Any, column: str) -> list[Any] | None:
    """The input column as text or file paths (images and audio: their path, when they came from files)."""
    feature = split.features.get(column)
    if feature is None:
        return None
    if getattr(feature, "decode", None) is not None and hasattr(feature, "cast_storage"):  # Image / Audio
        values = split.cast_column(column, type(feature)(decode=False))[column]
        paths = [v.get("path") if isinstance(v, dict) else None for v in values]
        return paths if any(paths) else None
    values = split[column]
    if values and isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
        return [str(value) for value in values]  # texts a CSV reader took for numbers ("000" read as 0)
    return values if values and isinstance(values[0], str) else None


def mean_loss_per_epoch(train_losses: Sequence[dict[str, Any]]) -> dict[int, float]:
    """Mean logged training loss per epoch, from ``FitResult.train_losses`` records (``epoch``, ``loss``)."""
    per_epoch: dict[int, list[float]] = {}
    for record in train_losses:
        per_epoch.setdefault(record["epoch"], []).append(record["loss"])
    return {epoch: float(np.mean(values)) for epoch, values in sorted(per_epoch.items())}


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], label_names: Sequence[str], path: Path) -> None:
    """The confusion matrix (rows true, columns predicted) as a PNG."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    size = min(4 + 0.45 * len(label_names), 20)
    figure, axes = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(label_names)).plot(
        ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45 if len(label_names) > 4 else "horizontal")
    axes.set_title("Confusion matrix (test split)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_learning_curves(history: list[dict[str, Any]], train_loss: dict[int, float], metric: str | None,
                         path: Path) -> None:
    """Loss per epoch (train: mean of the logged steps; validation) and the validation metric per epoch."""
    plt = pyplot()
    epochs = [record["epoch"] for record in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if train_loss:
        left.plot(list(train_loss), list(train_loss.values()), "o-", label="train loss (mean over the epoch)")
    left.plot(epochs, [record["loss"] for record in history], "s-", label="validation loss")
    left.set(xlabel="epoch", ylabel="loss", title="Loss")
    left.legend()
    shown = metric if metric and metric != "loss" and metric in history[0] else "accuracy"
    if shown in history[0]:
        right.plot(epochs, [record[shown] for record in history], "s-", color="tab:green",
                   label=f"validation {shown} (not computed on train)")
        right.legend()
    right.set(xlabel="epoch", ylabel=shown, title=f"Validation {shown}")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
