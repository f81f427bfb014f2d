"""Run a validated recipe through the Python API: data, task, fit, test evaluation, outputs.

Example::

    recipe = load_recipe("recipes/sentiment.yaml", ["train.epochs=1"])
    summary = run_recipe(recipe)
    summary["test"]["accuracy"]
"""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from . import __version__, checkpoints
from .data import load_labelled
from .errors import MtlError
from .outputs import METRICS_FILE, RECIPE_FILE, clean_failed_run, prepare_output_dir, write_json, write_text_atomic
from .recipe import Recipe
from .registry import get_task
from .report import predictions_table, readable_inputs, write_reports

logger = logging.getLogger(__name__)


def run_recipe(recipe: Recipe, *, overwrite: bool = False, resume: bool = False,
               token: str | None = None) -> dict[str, Any]:
    """Train and evaluate as the recipe says; write the model folder, reports and card; push; return the metrics."""
    from .hub import check_push_target

    out = Path(recipe.output.dir).expanduser()
    started = time.perf_counter()
    # the token and repo id are checked before anything else: no hour of training lost to a typo
    repo_id = check_push_target(recipe.hub.repo_id, token) if recipe.hub.push else None
    task_cls = get_task(recipe.task)
    # data and checkpoint problems surface before anything is written to the output folder
    data = load_labelled(recipe.data, input_name=task_cls.spec.input_column,
                         input_candidates=task_cls.spec.input_candidates)
    task = task_cls(recipe.model.checkpoint, revision=recipe.model.revision, **recipe.preprocess)
    task.prepare()
    _check_resumed_recipe(out, recipe, resume)
    created = prepare_output_dir(out, overwrite=overwrite, resume=resume, protected=recipe_inputs(recipe))
    try:
        return _train_and_write(recipe, task, task_cls, data, out, repo_id, token, resume, started)
    except Exception:
        clean_failed_run(out, created)
        raise


def recipe_inputs(recipe: Recipe) -> list[Path]:
    """The local files and folders a recipe reads (data, checkpoint, noise): an output folder never holds them."""
    candidates = [recipe.data.source, recipe.data.test_source, *(recipe.data.files or {}).values(),
                  recipe.model.checkpoint, recipe.preprocess.get("background_noise")]
    return [Path(c).expanduser() for c in candidates if isinstance(c, str) and Path(c).expanduser().exists()]


def _train_and_write(recipe: Recipe, task: Any, task_cls: Any, data: Any, out: Path, repo_id: str | None,
                     token: str | None, resume: bool, started: float) -> dict[str, Any]:
    from .hub import push_folder
    from .model_card import base_license, write_card

    write_text_atomic(out / RECIPE_FILE, recipe.to_yaml())
    fit = task.fit(data.splits["train"], data.splits["validation"], freeze=recipe.model.freeze,
                   head=recipe.model.head, metrics=recipe.metrics, output_dir=out, resume=resume, config=recipe.train)
    test, predictions = _test_with_predictions(task, data.splits["test"], recipe)
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
                        "device": str(task._accelerator.device), "hardware": _hardware(task._accelerator.device),
                        "mixed_precision": recipe.train.mixed_precision},
    }
    if recipe.compare.enabled:
        from .compare import run_compare, variant_row

        main_run = variant_row(recipe, "pretrained", 1.0, len(data.splits["train"]), recipe.model.freeze, test,
                               fit.train_seconds, fit.history)
        table = run_compare(recipe, task_cls, data, out, {("pretrained", 1.0): main_run})
        summary["compare"] = table.to_dict("records")
    main_process = task._accelerator.is_main_process
    if main_process:  # reports, card and push once, from the main process of a multi-process run
        write_json(out / METRICS_FILE, summary)
        summary["reports"] = write_reports(out, summary, predictions)
        write_card(out, summary, recipe.to_dict(), task_cls.spec, repo_id=repo_id,
                   license=recipe.hub.license or base_license(task.source.path, task.checkpoint))
    if not recipe.output.keep_checkpoints:
        checkpoints.remove_tree(out / "checkpoints")
    if repo_id and main_process:
        summary["pushed"] = push_folder(out, repo_id, private=recipe.hub.private, token=token)
    return summary


def _test_with_predictions(task: Any, test: Any, recipe: Recipe) -> tuple[dict[str, Any], Any]:
    """Test metrics (as ``task.evaluate`` gives them) and the per-example predictions, from one inference pass."""
    metrics, split, logits = task.evaluate_with_logits(
        test, batch_size=recipe.train.eval_batch_size or 2 * recipe.train.batch_size, metrics=recipe.metrics,
        what="test data")
    inputs = readable_inputs(split, task.spec.input_column)
    return metrics, predictions_table(inputs, np.asarray(split["label"]), logits, task.label_names)


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"


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
    if summary.get("reports"):
        rows.append(("reports", ", ".join(summary["reports"]) + ", README.md"))
    if summary.get("pushed"):
        rows.append(("pushed", summary["pushed"]))
    width = max(len(name) for name, _ in rows)
    text = "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
    if summary.get("compare"):
        import pandas as pd

        from .compare import format_compare

        text += "\n\ntransfer versus scratch:\n" + format_compare(pd.DataFrame(summary["compare"]))
    return text
