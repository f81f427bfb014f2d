"""Run a validated recipe through the Python API: data, task, fit, test evaluation, outputs.

Example::

    recipe = load_recipe("recipes/sentiment.yaml", ["train.epochs=1"])
    summary = run_recipe(recipe)
    summary["test"]["accuracy"]
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from . import __version__, checkpoints
from .data import load_labelled
from .errors import MtlError
from .outputs import METRICS_FILE, RECIPE_FILE, prepare_output_dir, write_json, write_text_atomic
from .recipe import Recipe
from .registry import get_task

logger = logging.getLogger(__name__)


def run_recipe(recipe: Recipe, *, overwrite: bool = False, resume: bool = False) -> dict[str, Any]:
    """Train and evaluate as the recipe says; write the model folder and reports; return the metrics."""
    out = Path(recipe.output.dir)
    started = time.perf_counter()
    task_cls = get_task(recipe.task)
    # data and checkpoint problems surface before anything is written to the output folder
    data = load_labelled(recipe.data, input_name=task_cls.spec.input_column,
                         input_candidates=task_cls.spec.input_candidates)
    task = task_cls(recipe.model.checkpoint, revision=recipe.model.revision, **recipe.preprocess)
    task.prepare()
    prepare_output_dir(out, overwrite=overwrite, resume=resume)
    _check_resumed_recipe(out, recipe, resume)
    write_text_atomic(out / RECIPE_FILE, recipe.to_yaml())
    fit = task.fit(data.splits["train"], data.splits["validation"], freeze=recipe.model.freeze,
                   metrics=recipe.metrics, output_dir=out, resume=resume, config=recipe.train)
    test = task.evaluate(data.splits["test"], batch_size=recipe.train.eval_batch_size or 2 * recipe.train.batch_size,
                         metrics=recipe.metrics)
    task.write_model(out)
    summary = {
        "task": recipe.task,
        "checkpoint": task.checkpoint,
        "checkpoint_source": task.source.source,
        "labels": task.label_names,
        "data": {name: len(split) for name, split in data.splits.items()},
        "freeze": str(task.freeze_report),
        "trainable_parameters": task.freeze_report.trainable,
        "total_parameters": task.freeze_report.total,
        "test": test,
        "validation_best": {"epoch": fit.best_epoch, recipe.train.metric_for_best: fit.best_metric},
        "history": fit.history,
        "train_seconds": round(fit.train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "stopped_early": fit.stopped_early,
        "resumed_from_epoch": fit.resumed_from_epoch,
        "environment": {"mtl": __version__, "torch": torch.__version__, "python": platform.python_version(),
                        "device": str(task._accelerator.device), "mixed_precision": recipe.train.mixed_precision},
    }
    write_json(out / METRICS_FILE, summary)
    if not recipe.output.keep_checkpoints:
        checkpoints.remove_tree(out / "checkpoints")
    return summary


def _check_resumed_recipe(out: Path, recipe: Recipe, resume: bool) -> None:
    saved = out / RECIPE_FILE
    if not resume or not saved.is_file():
        return
    before = yaml.safe_load(saved.read_text())
    if before != recipe.to_dict():
        changed = sorted(f"{section}" for section in recipe.to_dict() if before.get(section) != recipe.to_dict()[section])
        raise MtlError(f"--resume: the recipe differs from the one this run started with (sections: "
                       f"{', '.join(changed)}); resume with the same recipe and overrides, or start afresh")


def format_summary(summary: dict[str, Any]) -> str:
    """A short table for the end of a run."""
    test = summary["test"]
    rows = [("task", summary["task"]), ("checkpoint", f"{summary['checkpoint']} ({summary['checkpoint_source']})"),
            ("freeze", summary["freeze"]), ("examples", ", ".join(f"{k} {v:,}" for k, v in summary["data"].items())),
            ("train time", f"{summary['train_seconds']:.0f} s"), ("best validation", str(summary["validation_best"]))]
    rows += [(f"test {name}", f"{value:.4f}") for name, value in test.items() if isinstance(value, float)]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
