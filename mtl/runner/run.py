"""Run a validated recipe through the Python API: data, task, fit, test evaluation, then every output at once.

Everything that can be checked is checked before training (push target, task, data, checkpoint, output
folder). The finished output (model, metrics, reports, card) is staged beside the output folder and swapped
in whole, so a kill at any moment leaves either the run's folder with its checkpoints (``--resume``) or the
complete result.

Example::

    recipe = load_recipe("recipes/sentiment.yaml", ["train.epochs=1"])
    summary = run_recipe(recipe)
    summary["test"]["accuracy"]
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config.schema import changed_keys, flat_keys
from ..config.sections import Recipe
from ..data import load_labelled
from ..errors import MtlError
from ..fs import atomic_folder, clean_orphans, write_json, write_text_atomic
from ..publish.card import base_license, write_card
from ..modeling.heads import needs_remote_code
from ..publish.compare import (budget_warnings, check_label_fractions, compare_metric, run_compare, variant_row,
                               write_compare)
from ..publish.hub import check_push_target, push_folder
from ..metrics import require_metrics
from ..publish.output_dir import (MARKER_FILE, METRICS_FILE, RECIPE_FILE, PreparedOutput, check_output_dir,
                                  record_contents,
                                  clean_failed_run, finish_output, prepare_output_dir)
from ..publish.ranking import write_ranking
from ..recipe import recipe_from_dict
from ..publish.reports import predictions_table, readable_inputs, write_reports
from ..registry import get_task
from ..training.losses import class_weight_vector
from ..training.accelerator import TRACKING_FOLDER, launch_warning, process_state, require_trackers
from ..task.fitting import check_freezing
from ..task.ranking import check_candidates
from .selection import AUTO, check_report_dir, report_dir, select_checkpoint
from .summary import build_summary

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"


@dataclass
class PreparedRun:
    """Everything a run needs, resolved and checked before any training: what ``--dry-run`` verifies."""

    task_cls: type
    task: Any
    data: Any
    out: Path
    repo_id: str | None
    auto: bool = False  # model.checkpoint: auto (the checkpoint is chosen by ranking, see select_checkpoint)
    selection: Any = None  # the Selection, once made


def prepare_run(recipe: Recipe, *, overwrite: bool = False, resume: bool = False,
                token: str | None = None, select: bool = False) -> PreparedRun:
    """Resolve and check the Hub target, task, metrics, output folder, data and checkpoint; write nothing but,
    with ``select`` and ``model.checkpoint: auto``, the ranking report of the selection made now."""
    _report_processes(process_state(recipe.train))
    out = Path(recipe.output.dir).expanduser()
    # cheap checks first: no hour of training (or of reading data) lost to a typo
    repo_id = check_push_target(recipe.hub.repo_id, token) if recipe.hub.push else None
    task_cls = get_task(recipe.task)
    require_metrics(recipe.metrics)
    require_trackers(recipe.train.report_to)
    if overwrite and resume:
        raise MtlError("--overwrite and --resume contradict each other; give one")
    _check_resumed_recipe(out, recipe, resume)
    check_output_dir(out, overwrite=overwrite, resume=resume, protected=recipe_inputs(recipe))
    auto = recipe.model.checkpoint == AUTO
    if auto:
        check_report_dir(report_dir(recipe), overwrite=overwrite or resume, output_dir=out)
    task = task_cls(None if auto else recipe.model.checkpoint, revision=recipe.model.revision,
                    options=recipe.preprocess)
    task.check_training_options()
    _warn_unused_settings(recipe, auto)
    if auto and recipe.select.candidates:
        check_candidates(task_cls, recipe.select.candidates)  # a wrong one is named before the data is read
    data = load_labelled(recipe.data, input_name=task_cls.spec.input_column,
                         input_candidates=task_cls.spec.input_candidates, check=task.check_inputs)
    if recipe.train.class_weights not in (None, "auto"):  # labels it names are checked before any training
        class_weight_vector(recipe.train.class_weights, data.label_names, [])
    if recipe.compare.enabled:  # a fraction too small to train on fails now, not after the main run trained
        check_label_fractions(recipe, data)
    selection = None
    if auto and select:
        selection = select_checkpoint(recipe, data=data, overwrite=overwrite or resume)  # resume: its own ranking
        task = task_cls(selection.winner, options=recipe.preprocess)
    task.prepare()
    return PreparedRun(task_cls, task, data, out, repo_id, auto, selection)


def _warn_unused_settings(recipe: Recipe, auto: bool) -> None:
    """Settings given that this run does not use: said once, not ignored silently."""
    if recipe.hub.repo_id and not recipe.hub.push:
        logger.warning("hub.repo_id %s is set but hub.push is false: nothing is pushed; pass --push-to-hub (or "
                       "hub.push=true) to push, or push the saved folder later", recipe.hub.repo_id)
    if recipe.select.candidates and not auto:
        logger.warning("select.candidates are ranked only with model.checkpoint: auto (or python -m mtl.select); this "
                       "run fine-tunes %s as given", recipe.model.checkpoint or "the task's default checkpoint")


def check_model(run: PreparedRun, recipe: Recipe) -> None:
    """Build the classifier for the data's labels and check the recipe's freezing against it, training nothing
    (``--dry-run``; ``model.checkpoint: auto`` has no model before its ranking)."""
    if not run.auto:
        model = run.task.build_model(run.data.label_names, head=recipe.model.head, pooling=recipe.model.pooling)
        check_freezing(model, recipe.freeze_spec)


def _report_processes(state: Any) -> None:
    """Log how many processes joined the run, and what went wrong when the launcher asked for more."""
    if state.num_processes > 1:
        logger.info("distributed run: %d processes (%s); this is process %d", state.num_processes,
                    state.distributed_type, state.process_index)
    else:
        logger.info("one process (%s)", state.device)
    warning = launch_warning(state)
    if warning:
        logger.warning(warning)


def run_recipe(recipe: Recipe, *, overwrite: bool = False, resume: bool = False,
               token: str | None = None) -> dict[str, Any]:
    """Train and evaluate as the recipe says; write the model folder, reports and card; push; return the metrics."""
    started = time.perf_counter()
    state = process_state(recipe.train)  # one process, or every process of a torchrun / accelerate launch
    run = prepare_run(recipe, overwrite=overwrite, resume=resume, token=token, select=True)
    state.wait_for_everyone()  # every process checked the output folder before the main process creates it
    prepared = PreparedOutput(created=False)
    if state.is_main_process:
        clean_orphans(run.out)
        prepared = prepare_output_dir(run.out, overwrite=overwrite, resume=resume, protected=recipe_inputs(recipe))
    state.wait_for_everyone()
    try:
        summary = _train_and_write(recipe, run, resume, started)
    except BaseException:  # an error or Ctrl-C: what the run replaced comes back
        if state.is_main_process:
            clean_failed_run(run.out, prepared)
        raise
    if state.is_main_process:
        finish_output(prepared)
    if run.repo_id and run.task._accelerator.is_main_process:
        summary["pushed"] = push_folder(run.out, run.repo_id, private=recipe.hub.private, token=token,
                                        include_private=recipe.hub.include_private)
    return summary


def recipe_inputs(recipe: Recipe) -> list[Path]:
    """The local files and folders a recipe reads (data, checkpoint, noise): an output folder never holds them."""
    candidates = [recipe.data.source, recipe.data.test_source, *(recipe.data.files or {}).values(),
                  recipe.model.checkpoint, getattr(recipe.preprocess, "background_noise", None)]
    return [Path(c).expanduser() for c in candidates if isinstance(c, str) and Path(c).expanduser().exists()]


def _train_and_write(recipe: Recipe, run: PreparedRun, resume: bool, started: float) -> dict[str, Any]:
    task, task_cls, data, out, repo_id = run.task, run.task_cls, run.data, run.out, run.repo_id
    write_text_atomic(out / RECIPE_FILE, recipe.to_yaml())
    fit = task.fit(data.splits["train"], data.splits["validation"], freeze=recipe.freeze_spec, head=recipe.model.head,
                   pooling=recipe.model.pooling, metrics=recipe.metrics, output_dir=out, resume=resume,
                   config=recipe.train)
    metrics, split, logits = task.evaluate_with_logits(data.splits["test"], batch_size=recipe.train.eval_batch,
                                                       metrics=recipe.metrics, what="test data")
    predictions = predictions_table(readable_inputs(split, task.spec.input_column), np.asarray(split["label"]),
                                    logits, task.label_names)
    summary = build_summary(recipe, task, data, fit, metrics, time.perf_counter() - started)
    if run.selection is not None:
        summary["selection"] = run.selection.to_summary()
    for warning in summary["warnings"]:
        logger.warning("%s", warning)
    compared = None
    if recipe.compare.enabled:
        main_run = variant_row(recipe, "pretrained", 1.0, len(data.splits["train"]), recipe.model.freeze, metrics, fit,
                               task.strategy_choice)
        compared = run_compare(recipe, task_cls, data, {("pretrained", 1.0): main_run})
        summary["compare"] = compared[0].to_dict("records")
        for warning in budget_warnings(compared[0]):
            logger.warning("%s", warning)
            summary["warnings"].append(warning)
    if not task._accelerator.is_main_process:  # outputs, card and push once, from the main process
        return summary
    with atomic_folder(out) as staging:
        _carry_over(out, staging, recipe.output.keep_checkpoints)
        task.write_model(staging)
        write_json(staging / METRICS_FILE, summary)
        summary["reports"] = write_reports(staging, summary, predictions, fit.train_losses)
        if run.selection is not None:
            summary["reports"] += write_ranking(staging, run.selection.rows, run.selection.score)
        if compared is not None:
            summary["reports"] += write_compare(staging, *compared, compare_metric(recipe))
        write_card(staging, summary, recipe.to_dict(), task_cls.spec, task.usage_code(repo_id or "path/to/this/folder",
                   needs_remote_code(task.model.config)), repo_id=repo_id,
                   license=recipe.hub.license or base_license(task.source.path, task.checkpoint))
        record_contents(staging)  # what the run wrote: --overwrite refuses anything added to it later
    return summary


def _carry_over(out: Path, staging: Path, keep_checkpoints: bool) -> None:
    """Bring the run's marker, recipe, log and tracker logs (and checkpoints, hard-linked, when kept) into the
    staged output."""
    for name in (MARKER_FILE, RECIPE_FILE, LOG_FILE):
        if (out / name).is_file():
            shutil.copy2(out / name, staging / name)
    if (out / TRACKING_FOLDER).is_dir():  # tracker logs (train.report_to)
        shutil.copytree(out / TRACKING_FOLDER, staging / TRACKING_FOLDER)
    if keep_checkpoints and (out / "checkpoints").is_dir():
        shutil.copytree(out / "checkpoints", staging / "checkpoints", copy_function=os.link)


def _check_resumed_recipe(out: Path, recipe: Recipe, resume: bool) -> None:
    saved = out / RECIPE_FILE
    if not resume or not saved.is_file():
        return
    before, now = flat_keys(_as_validated(yaml.safe_load(saved.read_text()))), flat_keys(recipe.to_dict())
    if changed := changed_keys(before, now, RESUMABLE_CHANGES):
        raise MtlError(f"--resume: the recipe differs from the one this run started with ({changed}); resume with "
                       "the same recipe and overrides, or start afresh with --overwrite")


# keys a resumed run may change: where the folder is, how batches are read and logged, what is kept and pushed,
# and the transfer-versus-scratch comparison (it trains other models after the main one)
RESUMABLE_CHANGES = ("output.dir", "output.keep_checkpoints", "train.num_workers", "train.log_every",
                     "train.report_to", "hub.", "compare.")


def _as_validated(saved: Any) -> Any:
    """A saved recipe as this version of mtl writes it (defaults filled in the same way), or as saved when this
    version cannot read it (the comparison then names every key that differs)."""
    try:
        return recipe_from_dict(saved).to_dict()
    except MtlError:
        return saved
