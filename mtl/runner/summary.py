"""A finished run as data (``metrics.json``) and as the short table printed at its end.

Example::

    print(format_summary(summary))
"""

from __future__ import annotations

import dataclasses
import os
import platform
from typing import Any, Sequence

import numpy as np
import torch

from .. import __version__


def build_summary(recipe: Any, task: Any, data: Any, fit: Any, test: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What ``metrics.json`` holds: task, checkpoint and its source, data sizes, freezing, results and environment."""
    device = task._accelerator.device
    return {
        "task": recipe.task,
        "checkpoint": task.checkpoint,
        "checkpoint_source": task.source.source,
        "labels": task.label_names,
        "data": {name: len(split) for name, split in data.splits.items()},
        "freeze": str(task.freeze_report),
        "strategy": dataclasses.asdict(task.strategy_choice) if task.strategy_choice else None,
        "trainable_parameters": task.freeze_report.trainable,
        "total_parameters": task.freeze_report.total,
        "test": test,
        "validation_best": {"epoch": fit.best_epoch, recipe.train.metric_for_best: fit.best_metric},
        "history": fit.history,
        "train_seconds": round(fit.train_seconds, 1),
        "total_seconds": round(seconds, 1),
        "stopped_early": fit.stopped_early,
        "stopped_by_time": fit.stopped_by_time,  # train.max_seconds ran out before the schedule's end
        "resumed_from_epoch": fit.resumed_from_epoch,
        "resumed_from_step": fit.resumed_from_step,
        "warnings": quality_warnings(test, task.label_names, task.freeze_report.spec.mode == "backbone"),
        "environment": {"mtl": __version__, "torch": torch.__version__, "python": platform.python_version(),
                        "device": str(device), "hardware": _hardware(device),
                        "mixed_precision": task._accelerator.mixed_precision,  # auto resolved
                        "processes": task._accelerator.num_processes},
    }


SMALL_TEST = 100  # fewer test examples than this: the accuracy's 95% interval is wider than about +-10 points


def quality_warnings(test: dict[str, Any], label_names: Sequence[str], backbone_frozen: bool = False) -> list[str]:
    """Why the test results say the model learned nothing useful (no better than always answering the commonest
    label, or nearly every prediction on one label) or too little to tell (a test split of under
    :data:`SMALL_TEST` examples). Empty when the model beats that baseline on enough examples."""
    matrix = np.asarray(test.get("confusion_matrix") or [[0]])
    total = matrix.sum()
    if total == 0 or len(label_names) < 2:
        return []
    truth, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    majority, share = label_names[int(truth.argmax())], truth.max() / total
    accuracy = np.trace(matrix) / total
    warnings = []
    if accuracy <= share + 0.01:
        warnings.append(f"The model is no better than always answering the commonest label {majority!r} ({share:.1%} of the "
                        f"test split): test accuracy {accuracy:.1%}, macro-F1 {test.get('macro_f1', float('nan')):.3f}. "
                        + ("Train longer or at a higher learning rate, or balance the labels." if backbone_frozen else
                           "Train longer, freeze the backbone, or balance the labels."))
    if total < SMALL_TEST:
        from scipy.stats import binomtest

        interval = binomtest(int(np.trace(matrix)), int(total)).proportion_ci(method="wilson")
        warnings.append(f"The test split holds only {total} examples: test accuracy {accuracy:.1%} is known only to "
                        f"within {interval.low:.0%}-{interval.high:.0%} (95% interval); hold out more examples "
                        "(data.test_size) for a number to trust.")
    if predicted.max() >= 0.95 * total and truth.max() < 0.95 * total:
        top = label_names[int(predicted.argmax())]
        warnings.append(f"{predicted.max() / total:.0%} of the test predictions are {top!r}: the model collapsed "
                        "onto one label.")
    return warnings


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
    rows += [("WARNING", warning) for warning in summary.get("warnings") or []]
    width = max(len(name) for name, _ in rows)
    text = "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
    if summary.get("compare"):
        import pandas as pd

        from ..publish.compare import format_compare

        text += "\n\ntransfer versus scratch:\n" + format_compare(pd.DataFrame(summary["compare"]))
    return text


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
