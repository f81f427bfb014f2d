"""Transfer versus scratch: the pretrained checkpoint and the same architecture from random weights, trained
with the same recipe on fractions of the training labels. One table (CSV) and one plot (PNG).

Recipe section::

    compare: {scratch: true, label_fractions: [0.1, 1.0]}

Scratch models train every parameter (``freeze: none``): a frozen random backbone would measure nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import transformers

from ..config.sections import Recipe
from ..data.splits import hold_out
from ..modeling.classifier import scratch_model
from .reports import pyplot

logger = logging.getLogger(__name__)

COMPARE_CSV = "compare.csv"
COMPARE_PNG = "compare.png"
Curve = list[tuple[float, float]]  # (seconds of training, validation metric) after each epoch


def compare_metric(recipe: Recipe) -> str:
    """The metric the comparison reports: accuracy when computed, else the first metric."""
    return "accuracy" if "accuracy" in recipe.metrics else recipe.metrics[0]


def run_compare(recipe: Recipe, task_cls: type, data: Any,
                done: dict[tuple[str, float], tuple[dict[str, Any], Curve]] | None = None
                ) -> tuple[pd.DataFrame, dict[tuple[str, float], Curve]]:
    """Train every (initialisation, label fraction) pair the recipe's ``compare`` asks for: the table and curves.

    ``done`` holds runs already made (the main run is ``("pretrained", 1.0)``), reused rather than retrained.
    """
    fractions = sorted(set(recipe.compare.label_fractions or [1.0]))
    inits = ["pretrained", "scratch"] if recipe.compare.scratch else ["pretrained"]
    rows, curves = [], {}
    for init in inits:
        for fraction in fractions:
            key = (init, fraction)
            if done and key in done:
                row, curves[key] = done[key]
            else:
                logger.info("compare: training %s weights on %.0f%% of the training labels", init, 100 * fraction)
                row, curves[key] = train_variant(recipe, task_cls, data, init=init, fraction=fraction)
            rows.append(row)
    return pd.DataFrame(rows), curves


def write_compare(out: Path, table: pd.DataFrame, curves: dict[tuple[str, float], Curve], metric: str) -> list[str]:
    """``compare.csv`` and ``compare.png`` in ``out``; returns their names."""
    table.to_csv(out / COMPARE_CSV, index=False, float_format="%.4f")
    plot_compare(table, curves, metric, out / COMPARE_PNG)
    return [COMPARE_CSV, COMPARE_PNG]


def train_variant(recipe: Recipe, task_cls: type, data: Any, *, init: str, fraction: float) -> tuple[dict[str, Any], Curve]:
    """Fit one model (``init`` "pretrained" or "scratch") on ``fraction`` of the training split; test it."""
    task = task_cls(recipe.model.checkpoint, revision=recipe.model.revision, options=recipe.preprocess)
    task.prepare()
    train = data.splits["train"]
    if fraction < 1.0:
        train, _ = hold_out(train, 1.0 - fraction, recipe.data.split_seed)
    freeze = recipe.model.freeze
    if init == "scratch":
        auto_class = getattr(transformers, task.spec.model_class)
        task.model = scratch_model(auto_class, task.source.path, data.label_names, recipe.train.seed, recipe.model.head,
                                   recipe.model.pooling)
        freeze = "none"
    fit = task.fit(train, data.splits["validation"], freeze=freeze, head=recipe.model.head,
                   pooling=recipe.model.pooling, metrics=recipe.metrics, config=recipe.train)
    test = task.evaluate(data.splits["test"], batch_size=recipe.train.eval_batch, metrics=recipe.metrics)
    return variant_row(recipe, init, fraction, len(train), freeze, test, fit.train_seconds, fit.history)


def variant_row(recipe: Recipe, init: str, fraction: float, examples: int, freeze: Any, test: dict[str, Any],
                seconds: float, history: list[dict[str, Any]]) -> tuple[dict[str, Any], Curve]:
    """One table row and the validation curve of a finished run."""
    metric = compare_metric(recipe)
    row = {"init": init, "label_fraction": fraction, "train_examples": examples, "freeze": str(freeze),
           f"test_{metric}": test[metric], "test_loss": test["loss"], "train_seconds": round(seconds, 3),
           "epochs": len(history)}
    return row, [(record["seconds"], record[metric]) for record in history]


def format_compare(table: pd.DataFrame) -> str:
    """The comparison table as aligned text for the end of a run."""
    return table.drop(columns=["test_loss"], errors="ignore").to_string(index=False, float_format=lambda v: f"{v:.4f}")


def plot_compare(table: pd.DataFrame, curves: dict[tuple[str, float], Curve], metric: str, path: Path) -> None:
    """Left: test metric versus the number of training labels; right: validation metric versus wall time."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for init, rows in table.groupby("init", sort=False):
        rows = rows.sort_values("train_examples")
        left.plot(rows["train_examples"], rows[f"test_{metric}"], "o-", label=init)
    if table["train_examples"].max() > 10 * table["train_examples"].min():
        left.set_xscale("log")
    left.set(xlabel="training labels", ylabel=f"test {metric}", title=f"Test {metric} versus labels")
    for (init, fraction), curve in curves.items():
        if curve:
            style = "-" if init == "pretrained" else "--"
            right.plot(*zip(*curve), style, marker="o", label=f"{init}, {fraction:.0%} of labels")
    right.set(xlabel="training time (s)", ylabel=f"validation {metric}", title=f"Validation {metric} versus wall time")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
