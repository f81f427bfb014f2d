"""Transfer versus scratch: the pretrained checkpoint and the same architecture from random weights, trained
with the same recipe on fractions of the training labels. One table (CSV) and one plot (PNG).

Recipe section::

    compare: {scratch: true, label_fractions: [0.1, 1.0]}

Each start gets the budget that suits it: the pretrained model trains as the recipe says; a scratch model (every
parameter trains, ``freeze: none``: a frozen random backbone would measure nothing) trains until validation stops
improving (``compare.scratch_patience`` epochs), for at most ``compare.scratch_time_multiple`` times the pretrained
run's training time on the same labels or ``compare.scratch_max_epochs`` epochs. The table states both budgets and
what stopped each run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import transformers

from ..config.sections import Recipe
from ..data.splits import hold_out
from ..errors import MtlError
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
                budget = None if init == "pretrained" else \
                    recipe.compare.scratch_time_multiple * next(r for r in rows if r["init"] == "pretrained"
                                                                and r["label_fraction"] == fraction)["train_seconds"]
                logger.info("compare: training %s weights on %.0f%% of the training labels%s", init, 100 * fraction,
                            f" (up to {budget:.0f} s)" if budget else "")
                row, curves[key] = train_variant(recipe, task_cls, data, init=init, fraction=fraction,
                                                 max_seconds=budget)
            rows.append(row)
    return pd.DataFrame(rows), curves


def check_label_fractions(recipe: Recipe, data: Any) -> None:
    """Every ``compare.label_fractions`` entry must leave an example of each label to train on: checked before the
    main run trains (and by ``--dry-run``), on the same seeded split the comparison makes; a fraction given twice
    is said once (it trains once)."""
    given = list(recipe.compare.label_fractions or [])
    repeated = sorted({fraction for fraction in given if given.count(fraction) > 1})
    if repeated:
        logger.warning("compare.label_fractions lists %s more than once; each fraction trains once",
                       ", ".join(f"{fraction:g}" for fraction in repeated))
    train = data.splits["train"]
    rarest = min(Counter(train["label"]).values())
    for fraction in sorted(set(given)):
        if fraction >= 1.0:
            continue
        kept, _ = hold_out(train, 1.0 - fraction, recipe.data.split_seed)
        missing = sorted(set(range(len(data.label_names))) - set(kept["label"]))
        if missing:
            names = ", ".join(repr(data.label_names[i]) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise MtlError(f"compare.label_fractions: {fraction:g} of the {len(train):,} training examples keeps "
                           f"{len(kept):,}, with no example of {names}; a model cannot learn a label it never sees. "
                           f"Use fractions of at least {min(1.0, 2 / rarest):.2g} (the rarest label has {rarest} "
                           "training examples) or remove this one")


FEW_SCRATCH_EPOCHS = 3  # a scratch run its time budget stopped before this many epochs measured little


def budget_warnings(table: pd.DataFrame) -> list[str]:
    """What the comparison's reader must know: scratch runs their time budget stopped after a few epochs (their
    accuracy says more about the budget than about training from scratch)."""
    short = table[(table["init"] == "scratch") & (table["ended_by"] == "time budget")
                  & (table["epochs"] < FEW_SCRATCH_EPOCHS)]
    return [f"compare: the scratch run on {row.label_fraction:.0%} of the labels trained only {row.epochs} epoch"
            f"{'s' if row.epochs != 1 else ''} in its budget ({row.train_seconds:.1f} s, the pretrained run's time "
            "times compare.scratch_time_multiple): its score understates training from scratch; raise "
            "compare.scratch_time_multiple for a fairer comparison" for row in short.itertuples()]


def write_compare(out: Path, table: pd.DataFrame, curves: dict[tuple[str, float], Curve], metric: str) -> list[str]:
    """``compare.csv`` and ``compare.png`` in ``out``; returns their names."""
    table.to_csv(out / COMPARE_CSV, index=False, float_format="%.4f")
    plot_compare(table, curves, metric, out / COMPARE_PNG)
    return [COMPARE_CSV, COMPARE_PNG]


def train_variant(recipe: Recipe, task_cls: type, data: Any, *, init: str, fraction: float,
                  max_seconds: float | None = None) -> tuple[dict[str, Any], Curve]:
    """Fit one model (``init`` "pretrained" or "scratch") on ``fraction`` of the training split; test it.
    Scratch trains with early stopping, for at most ``max_seconds`` (see the module's docstring)."""
    task = task_cls(recipe.model.checkpoint, revision=recipe.model.revision, options=recipe.preprocess)
    task.prepare()
    train = data.splits["train"]
    if fraction < 1.0:
        train, _ = hold_out(train, 1.0 - fraction, recipe.data.split_seed)
    freeze, config = recipe.model.freeze, recipe.train
    if init == "scratch":
        # every parameter trains from random weights: no transfer strategy to choose (train.strategy auto would race
        # probes on random features), no head-first stage
        config = dataclasses.replace(config, epochs=recipe.compare.scratch_max_epochs, max_steps=None,
                                     early_stopping_patience=recipe.compare.scratch_patience,
                                     max_seconds=max_seconds, head_first_epochs=0, strategy="explicit",
                                     time_budget=None)
        auto_class = getattr(transformers, task.spec.model_class)
        task.model = scratch_model(auto_class, task.source.path, data.label_names, recipe.train.seed, recipe.model.head,
                                   recipe.model.pooling)
        freeze = "none"
    fit = task.fit(train, data.splits["validation"], freeze=freeze, head=recipe.model.head,
                   pooling=recipe.model.pooling, metrics=recipe.metrics, config=config)
    test = task.evaluate(data.splits["test"], batch_size=recipe.train.eval_batch, metrics=recipe.metrics)
    return variant_row(recipe, init, fraction, len(train), freeze, test, fit, task.strategy_choice)


def variant_row(recipe: Recipe, init: str, fraction: float, examples: int, freeze: Any, test: dict[str, Any],
                fit: Any, choice: Any = None) -> tuple[dict[str, Any], Curve]:
    """One table row (with the run's budget and what ended it) and the validation curve of a finished run;
    ``choice``: what ``train.strategy auto`` chose for it, when it did."""
    metric = compare_metric(recipe)
    history = fit.history
    if init == "pretrained" and choice is not None:
        budget = f"strategy auto: {choice.name}, up to {choice.settings.get('epochs')} epochs"
        freeze = choice.freeze
    elif init == "pretrained":
        budget = f"the recipe: {recipe.train.max_steps} steps" if recipe.train.max_steps else \
            f"the recipe: {recipe.train.epochs:g} epochs"
    else:
        budget = (f"early stopping (patience {recipe.compare.scratch_patience}), at most "
                  f"{recipe.compare.scratch_time_multiple:g}x the pretrained time or "
                  f"{recipe.compare.scratch_max_epochs} epochs")
    ended = "time budget" if getattr(fit, "stopped_by_time", False) else \
        "early stopping" if fit.stopped_early else "last epoch"
    row = {"init": init, "label_fraction": fraction, "train_examples": examples, "freeze": str(freeze),
           f"test_{metric}": test[metric], "test_loss": test["loss"], "train_seconds": round(fit.train_seconds, 3),
           "epochs": len(history), "budget": budget, "ended_by": ended}
    return row, [(record["seconds"], record[metric]) for record in history]


def format_compare(table: pd.DataFrame) -> str:
    """The comparison table as aligned text for the end of a run."""
    return table.drop(columns=["test_loss"], errors="ignore").to_string(index=False, float_format=lambda v: f"{v:.4f}")


def plot_compare(table: pd.DataFrame, curves: dict[tuple[str, float], Curve], metric: str, path: Path) -> None:
    """Left: test metric versus the number of training labels; right: validation metric versus wall time."""
    plt = pyplot()
    colours = {"pretrained": "tab:blue", "scratch": "tab:orange"}  # one colour per start, in both panels
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for init, rows in table.groupby("init", sort=False):
        rows = rows.sort_values("train_examples")
        left.plot(rows["train_examples"], rows[f"test_{metric}"], "o-", color=colours.get(init), label=init)
    if table["train_examples"].max() > 10 * table["train_examples"].min():
        left.set_xscale("log")
    left.set(xlabel="training labels", ylabel=f"test {metric}", title=f"Test {metric} versus labels")
    styles = {fraction: style for fraction, style in zip(sorted({f for _, f in curves}, reverse=True),
                                                           ["-", "--", ":", "-."] * 4)}
    for (init, fraction), curve in curves.items():
        if curve:
            right.plot(*zip(*curve), styles[fraction], marker="o", color=colours.get(init),
                       label=f"{init}, {fraction:.0%} of labels")
    right.set(xlabel="training time (s)", ylabel=f"validation {metric}", title=f"Validation {metric} versus wall time")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
