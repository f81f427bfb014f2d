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
from accelerate import PartialState

from .recipe import Recipe
from .report import pyplot

logger = logging.getLogger(__name__)

COMPARE_CSV = "compare.csv"
COMPARE_PNG = "compare.png"
Curve = list[tuple[float, float]]  # (seconds of training, validation metric) after each epoch


def compare_metric(recipe: Recipe) -> str:
    """The metric the comparison reports: accuracy when computed, else the first metric."""
    return "accuracy" if "accuracy" in recipe.metrics else recipe.metrics[0]


def run_compare(recipe: Recipe, task_cls: type, data: Any, out: Path,
                done: dict[tuple[str, float], tuple[dict[str, Any], Curve]] | None = None) -> pd.DataFrame:
    """Train every (initialisation, label fraction) pair the recipe's ``compare`` asks for; write table and plot.

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
    table = pd.DataFrame(rows)
    if PartialState().is_main_process:
        table.to_csv(out / COMPARE_CSV, index=False, float_format="%.4f")
        plot_compare(table, curves, compare_metric(recipe), out / COMPARE_PNG)
    return table


def train_variant(recipe: Recipe, task_cls: type, data: Any, *, init: str, fraction: float) -> tuple[dict[str, Any], Curve]:
    """Fit one model (``init`` "pretrained" or "scratch") on ``fraction`` of the training split; test it."""
    from .data.labelled import hold_out

    task = task_cls(recipe.model.checkpoint, revision=recipe.model.revision, **recipe.preprocess)
    task.prepare()
    train = data.splits["train"]
    if fraction < 1.0:
        train, _ = hold_out(train, 1.0 - fraction, recipe.data.split_seed)
    freeze = recipe.model.freeze
    if init == "scratch":
        task.model, freeze = scratch_model(task, data.label_names, recipe.train.seed, recipe.model.head), "none"
    fit = task.fit(train, data.splits["validation"], freeze=freeze, head=recipe.model.head, metrics=recipe.metrics,
                   config=recipe.train)
    test = task.evaluate(data.splits["test"], batch_size=recipe.train.eval_batch_size or 2 * recipe.train.batch_size,
                         metrics=recipe.metrics)
    return variant_row(recipe, init, fraction, len(train), freeze, test, fit.train_seconds, fit.history)


def variant_row(recipe: Recipe, init: str, fraction: float, examples: int, freeze: Any, test: dict[str, Any],
                seconds: float, history: list[dict[str, Any]]) -> tuple[dict[str, Any], Curve]:
    """One table row and the validation curve of a finished run."""
    metric = compare_metric(recipe)
    row = {"init": init, "label_fraction": fraction, "train_examples": examples, "freeze": str(freeze),
           f"test_{metric}": test[metric], "test_loss": test["loss"], "train_seconds": round(seconds, 3),
           "epochs": len(history)}
    return row, [(record["seconds"], record[metric]) for record in history]


def scratch_model(task: Any, label_names: list[str], seed: int, head: Any = None):
    """The task's architecture with random weights (config of the checkpoint, labels of the data, the recipe's head)."""
    import torch
    import transformers

    from .adapters import label_config

    config = transformers.AutoConfig.from_pretrained(str(task.source.path), **label_config(label_names))
    if hasattr(config, "label_names"):  # timm-wrapper configs
        config.label_names = list(label_names)
    torch.manual_seed(seed)
    model = getattr(transformers, task.spec.model_class).from_config(config)
    if head is not None and head.type == "mlp":  # the same head as the pretrained run, so fit keeps this model
        from .heads import attach_mlp_head

        attach_mlp_head(model, head)
    return model


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
