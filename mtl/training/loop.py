"""One explicit training loop on ``accelerate``: prepare, backward, step, evaluate every epoch.

AdamW with a transformers schedule and warmup, gradient accumulation, mixed precision, early stopping
on a chosen metric, the best weights kept, a JSONL log, and an atomic checkpoint per epoch (and every
``train.save_every_steps`` steps inside one) so that a killed run resumes where it stopped and ends with
the weights it would have had. Losses stay on the device between log lines (no per-step syncs).

:func:`fit_loop` reads top to bottom: :func:`_prepare` (loaders, optimizer, schedule, ``accelerator.prepare``),
:func:`~mtl.training.resume.resume_run`, then per epoch :func:`_train_epoch` (forward, ``backward``, step) and :func:`_end_epoch`
(evaluation, best weights, checkpoint), and last :func:`_restore_best`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..config.sections import FINE_TUNING_RATE, TrainConfig
from ..errors import TrainingDivergedError
from ..metrics import is_better
from ..modeling.freezing import train_mode
from . import state as checkpoints
from .batching import eval_loader, train_loader
from .inference import evaluate_loader
from .layout import fast_layout
from .losses import training_loss
from .optim import parameter_groups
from .records import FitResult, JsonlLog
from .resume import resume_run, save_step_checkpoint, step_checkpoint_due

logger = logging.getLogger(__name__)


def fit_loop(model: torch.nn.Module, train_set: Any, eval_set: Any, *, collate: Callable, config: TrainConfig,
             metrics: Sequence[str], accelerator: Accelerator, train_lengths: Sequence[int] | None = None,
             eval_lengths: Sequence[int] | None = None, run_dir: Path | None = None, resume: bool = False,
             seconds_before: float = 0.0, class_weights: Sequence[float] | None = None,
             epoch_start: Callable[[int], str | None] | None = None) -> FitResult:
    """Train ``model`` on ``train_set``, evaluating on ``eval_set`` after every epoch; return a FitResult.

    ``seconds_before`` is training time already spent (a head-first stage): timings count on from it.
    ``class_weights`` (one per label) weight the training loss, with ``config.label_smoothing``.
    ``epoch_start(epoch)`` runs before each epoch (gradual unfreezing sets what trains); what it returns is logged.
    """
    set_seed(config.seed)
    run = _prepare(model, train_set, eval_set, collate, config, metrics, accelerator, train_lengths, eval_lengths,
                   run_dir, seconds_before)
    run.loss = training_loss(class_weights, config.label_smoothing)
    run.epoch_start = epoch_start
    if resume and run.ckpt_dir:
        resume_run(run, run.ckpt_dir)
    run.progress = tqdm(total=run.last_step, initial=run.result.global_step, desc="training", unit="step",
                        disable=not accelerator.is_local_main_process)
    run.started = time.perf_counter() - run.result.train_seconds
    if config.report_to:
        accelerator.init_trackers("mtl", config=_tracked_config(config))
    run.last_log = (time.perf_counter(), 0)
    try:
        for epoch in range(run.start_epoch, run.num_epochs):
            _train_epoch(run, epoch)
            if _end_epoch(run, epoch):
                break
    finally:
        run.progress.close()  # an error message starts on a line of its own
        if config.report_to:
            accelerator.end_training()
    _restore_best(run)
    return run.result


@dataclass
class _Run:
    """What one :func:`fit_loop` call holds between its steps: the prepared objects and the bookkeeping."""

    model: torch.nn.Module
    train_model: torch.nn.Module  # ``model``, or its torch.compile wrapper (same parameters) for training steps
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loader: Any
    val_loader: Any
    accelerator: Accelerator
    config: TrainConfig
    metrics: Sequence[str]
    total_steps: int
    num_epochs: int
    ckpt_dir: Path | None
    log: JsonlLog
    result: FitResult
    start_epoch: int = 0
    bad_epochs: int = 0
    best_in_memory: dict[str, torch.Tensor] | None = None
    progress: Any = None
    started: float = 0.0
    examples: int = 0  # training examples seen so far (this process)
    skip_batches: int = 0  # batches of the first epoch already trained before a mid-epoch resume
    carried_loss: tuple[float, int] = (0.0, 0)  # (sum, batches) of training losses not yet logged at that resume
    random_states: tuple[Any, ...] | None = None  # the checkpoint's random states, put back once its loader runs
    loss: Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor] = lambda model, batch: model(**batch).loss
    epoch_start: Callable[[int], str | None] | None = None
    last_log: tuple[float, int] = (0.0, 0)  # (time, examples) at the last loss record, for throughput

    @property
    def last_step(self) -> int:
        """The optimizer step this process ends on: ``total_steps`` counts one process's batches, and each of
        several processes takes its share of them."""
        per_epoch = math.ceil(len(self.loader) / self.config.gradient_accumulation_steps)
        return min(self.total_steps, self.num_epochs * per_epoch)


def _prepare(model: torch.nn.Module, train_set: Any, eval_set: Any, collate: Callable, config: TrainConfig,
             metrics: Sequence[str], accelerator: Accelerator, train_lengths: Sequence[int] | None,
             eval_lengths: Sequence[int] | None, run_dir: Path | None, seconds_before: float) -> _Run:
    """Loaders, AdamW and its schedule, all passed through ``accelerator.prepare``; the step and epoch counts.
    Convolutional models train in channels-last layout (:func:`~mtl.training.layout.fast_layout`)."""
    fast_layout(model)
    loader = train_loader(train_set, collate, config.batch_size, config.seed,
                          train_lengths if config.group_by_length else None, config.num_workers)
    val_loader = eval_loader(eval_set, collate, config.eval_batch, eval_lengths, config.num_workers)
    updates_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
    total_steps = config.max_steps or math.ceil(config.epochs * updates_per_epoch)
    num_epochs = math.ceil(total_steps / updates_per_epoch)
    rate = config.learning_rate if config.learning_rate is not None else FINE_TUNING_RATE
    optimizer = torch.optim.AdamW(parameter_groups(model, rate, config.weight_decay,
                                                   config.head_learning_rate, config.lr_decay), fused=_fused_adamw(model))
    scheduler = get_scheduler("constant_with_warmup" if config.scheduler == "constant" else config.scheduler,
                              optimizer, num_warmup_steps=math.ceil(config.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model, optimizer, loader, val_loader, scheduler = accelerator.prepare(model, optimizer, loader, val_loader, scheduler)
    return _Run(model, _compiled(model, config.compile), optimizer, scheduler, loader, val_loader, accelerator, config,
                metrics, total_steps, num_epochs,
                ckpt_dir=run_dir / "checkpoints" if run_dir else None,
                log=JsonlLog(run_dir / "train_log.jsonl" if run_dir else None, accelerator.is_main_process),
                result=FitResult(metric_name=config.metric_for_best, train_seconds=seconds_before))


def _compiled(model: torch.nn.Module, backend: bool | str) -> torch.nn.Module:
    """``model`` wrapped by ``torch.compile`` (``backend``: True for inductor, or a backend's name) with dynamic
    shapes, since length-grouped batches change their length every step; ``model`` itself when ``backend`` is
    False. The wrapper shares the parameters: evaluation, checkpoints and the saved folder use ``model``."""
    if not backend:
        return model
    backend = "inductor" if backend is True else backend
    logger.info("train.compile: torch.compile(backend=%r, dynamic=True); the first steps compile", backend)
    return torch.compile(model, backend=backend, dynamic=True)


def _fused_adamw(model: torch.nn.Module) -> bool:
    """Fused AdamW (one kernel for all parameters; the Trainer's default) where every trained parameter is a
    floating-point tensor on a device that has the kernel (CPU, CUDA)."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in model.parameters() if p.requires_grad)


def _train_epoch(run: _Run, epoch: int) -> None:
    """One pass over the training batches: forward, backward, clip, step; stops early at ``total_steps``."""
    accelerator, model, config, result = run.accelerator, run.model, run.config, run.result
    run.loader.set_epoch(epoch)
    said = run.epoch_start(epoch) if run.epoch_start else None
    if said:
        run.progress.write(said)
        run.log.write(type="stage", epoch=epoch + 1, step=result.global_step, stage=said)
    train_mode(model)
    skipped, run.skip_batches = run.skip_batches, 0
    batches = accelerator.skip_first_batches(run.loader, skipped) if skipped else run.loader
    running, counted = torch.tensor(run.carried_loss[0], device=accelerator.device), run.carried_loss[1]
    run.carried_loss = (0.0, 0)
    first_bad = torch.full((), -1, device=accelerator.device)  # first step with a NaN/inf loss, kept on the device
    for done, batch in enumerate(batches, start=skipped + 1):
        if run.random_states is not None:  # as they were when the checkpoint was written
            checkpoints.set_random_states(run.random_states)
            run.random_states = None
        with accelerator.accumulate(model):
            loss = run.loss(run.train_model, batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
        running += loss.detach()
        counted += 1
        run.examples += len(batch["labels"]) if "labels" in batch else 0
        first_bad = torch.where(~torch.isfinite(loss.detach()) & (first_bad < 0), result.global_step + 1, first_bad)
        if accelerator.sync_gradients:
            result.global_step += 1
            run.progress.update(1)
            if result.global_step % config.log_every == 0:
                _stop_if_diverged(run, epoch, first_bad)
                mean_loss = _log_train_loss(run, epoch, running, counted)
                running.zero_()
                counted = 0
                run.progress.set_postfix(epoch=epoch + 1, loss=f"{mean_loss:.4f}")
            if result.global_step >= run.total_steps or _out_of_time(run):
                break
            if step_checkpoint_due(run, done):
                _stop_if_diverged(run, epoch, first_bad)
                save_step_checkpoint(run, epoch, done, running, counted)
    _stop_if_diverged(run, epoch, first_bad)
    if counted:
        _log_train_loss(run, epoch, running, counted)


def _out_of_time(run: _Run) -> bool:
    """Whether ``train.max_seconds`` of training time are spent (the same answer on every process)."""
    if not run.config.max_seconds:
        return False
    spent = torch.tensor(float(time.perf_counter() - run.started >= run.config.max_seconds))
    return bool(run.accelerator.reduce(spent.to(run.accelerator.device), "max").item())


def _stop_if_diverged(run: _Run, epoch: int, first_bad: torch.Tensor) -> None:
    """Raise :class:`TrainingDivergedError` naming the first step whose loss was NaN or infinite (any process)."""
    step = int(run.accelerator.reduce(first_bad.clone(), "max").item())
    if step < 0:
        return
    kept = f"; the last good checkpoint stays in {run.ckpt_dir}" if run.ckpt_dir and \
        checkpoints.has_checkpoint(run.ckpt_dir) else ""
    raise TrainingDivergedError(f"training stopped: the loss became NaN or infinite at step {step} (epoch {epoch + 1}), "
                                f"so no model was saved{kept}. Lower train.learning_rate, keep train.max_grad_norm set, "
                                "or check the data for extreme values")


def _log_train_loss(run: _Run, epoch: int, running: torch.Tensor, counted: int) -> float:
    """Record the mean training loss of the last ``counted`` batches (one sync across processes); return it."""
    mean_loss = run.accelerator.reduce(running, "mean").item() / counted
    record = {"epoch": epoch + 1, "step": run.result.global_step, "loss": mean_loss,
              "lr": run.scheduler.get_last_lr()[0]}
    run.result.train_losses.append(record)
    run.log.write(type="train", **record)
    if run.config.report_to:
        now, seen = time.perf_counter(), run.examples * run.accelerator.num_processes
        speed = (seen - run.last_log[1]) / max(now - run.last_log[0], 1e-9)
        run.last_log = (now, seen)
        run.accelerator.log({"train/loss": mean_loss, "train/learning_rate": record["lr"],
                             "train/examples_per_second": speed}, step=run.result.global_step)
    return mean_loss


def _tracked_config(config: TrainConfig) -> dict[str, Any]:
    """The training settings trackers record as hyperparameters (numbers, words and switches only)."""
    return {key: value for key, value in asdict(config).items() if isinstance(value, (int, float, str, bool))}


def _end_epoch(run: _Run, epoch: int) -> bool:
    """Evaluate, keep the best weights, write the epoch checkpoint; return whether training stops here."""
    config, result, progress = run.config, run.result, run.progress
    scores = evaluate_loader(run.model, run.val_loader, run.accelerator, run.metrics)
    result.train_seconds = time.perf_counter() - run.started
    record = {"epoch": epoch + 1, "step": result.global_step, "seconds": round(result.train_seconds, 1), **scores}
    result.history.append(record)
    run.log.write(type="eval", split="validation", **record)
    if config.report_to:
        run.accelerator.log({f"validation/{name}": value for name, value in scores.items()}, step=result.global_step)
    current = scores[config.metric_for_best]
    improved = is_better(config.metric_for_best, current, result.best_metric)
    progress.write(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
                   + (" (best)" if improved else ""))
    if improved:
        result.best_epoch, result.best_metric, run.bad_epochs = epoch + 1, current, 0
        _keep_best(run)
    else:
        run.bad_epochs += 1
    stop = config.early_stopping_patience is not None and run.bad_epochs >= config.early_stopping_patience
    result.stopped_early = stop and epoch + 1 < run.num_epochs
    if not stop and result.global_step < run.last_step and _out_of_time(run):  # before the schedule's end
        stop = result.stopped_by_time = True
        progress.write(f"time budget: {config.max_seconds:.0f} s of training spent; stopped at step "
                       f"{result.global_step} of {run.last_step} (epoch {epoch + 1})")
    if run.ckpt_dir:
        state = {"epoch": epoch, "bad_epochs": run.bad_epochs, "result": result.to_dict()}
        checkpoints.save_checkpoint(run.accelerator, run.ckpt_dir, f"epoch-{epoch + 1}", state)  # as logged
    if stop or result.global_step >= run.total_steps:
        if result.stopped_early:
            progress.write(f"early stopping: no {config.metric_for_best} improvement for {run.bad_epochs} epochs")
        return True
    return False


def _keep_best(run: _Run) -> None:
    """Keep the current weights as the best: in the checkpoints folder if there is one, else in memory."""
    if run.ckpt_dir and run.accelerator.is_main_process:
        checkpoints.save_weights(run.accelerator.unwrap_model(run.model), run.ckpt_dir / checkpoints.BEST_WEIGHTS)
    elif not run.ckpt_dir:
        weights = run.accelerator.unwrap_model(run.model).state_dict()
        run.best_in_memory = {k: v.detach().cpu().clone() for k, v in weights.items()}


def _restore_best(run: _Run) -> None:
    """Put the best weights kept by :func:`_keep_best` back into the model."""
    config, result = run.config, run.result
    run.accelerator.wait_for_everyone()
    unwrapped = run.accelerator.unwrap_model(run.model)
    if run.ckpt_dir and (run.ckpt_dir / checkpoints.BEST_WEIGHTS).is_file():
        checkpoints.load_weights(unwrapped, run.ckpt_dir / checkpoints.BEST_WEIGHTS)
    elif run.best_in_memory is not None:
        unwrapped.load_state_dict(run.best_in_memory)
    logger.info("best %s %.4f at epoch %s; %d steps in %.0f s", config.metric_for_best, result.best_metric or float("nan"),
                result.best_epoch, result.global_step, result.train_seconds)
