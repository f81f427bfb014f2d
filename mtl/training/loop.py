"""One explicit training loop on ``accelerate``: prepare, backward, step, evaluate every epoch.

AdamW with a transformers schedule and warmup, gradient accumulation, mixed precision, early stopping
on a chosen metric, the best weights kept, a JSONL log, and an atomic checkpoint per epoch so that a
killed run resumes where it stopped. Losses stay on the device between log lines (no per-step syncs).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..config.sections import TrainConfig
from ..metrics import is_better, scores_from_logits
from ..modeling.freezing import train_mode
from . import state as checkpoints
from .batching import eval_loader, train_loader
from .inference import evaluate_loader
from .optim import parameter_groups

logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What a training run did: per-epoch validation metrics, the best epoch and timings."""

    metric_name: str
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    global_step: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    resumed_from_epoch: int | None = None  # epochs already finished when a resumed run picked up
    train_losses: list[dict[str, Any]] = field(default_factory=list)  # {epoch, step, loss, lr} every log_every steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JsonlLog:
    """Appends one JSON object per line to ``path`` (no-op without a path or off the main process)."""

    def __init__(self, path: Path | None, enabled: bool = True):
        self.path = path if enabled else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record: Any) -> None:
        if self.path:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")


def fit_loop(model: torch.nn.Module, train_set: Any, eval_set: Any, *, collate: Callable, config: TrainConfig,
             metrics: Sequence[str], accelerator: Accelerator, train_lengths: Sequence[int] | None = None,
             eval_lengths: Sequence[int] | None = None, run_dir: Path | None = None, resume: bool = False,
             seconds_before: float = 0.0) -> FitResult:
    """Train ``model`` on ``train_set``, evaluating on ``eval_set`` after every epoch; return a FitResult.

    ``seconds_before`` is training time already spent (a head-first stage): timings count on from it.
    """
    set_seed(config.seed)
    result = FitResult(metric_name=config.metric_for_best, train_seconds=seconds_before)
    loader = train_loader(train_set, collate, config.batch_size, config.seed,
                          train_lengths if config.group_by_length else None)
    val_loader = eval_loader(eval_set, collate, config.eval_batch_size or 2 * config.batch_size, eval_lengths)
    updates_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
    total_steps = config.max_steps or math.ceil(config.epochs * updates_per_epoch)
    num_epochs = math.ceil(total_steps / updates_per_epoch)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.learning_rate, config.weight_decay,
                                                   config.head_learning_rate))
    scheduler = get_scheduler("constant_with_warmup" if config.scheduler == "constant" else config.scheduler,
                              optimizer, num_warmup_steps=math.ceil(config.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model, optimizer, loader, val_loader, scheduler = accelerator.prepare(model, optimizer, loader, val_loader, scheduler)

    ckpt_dir = run_dir / "checkpoints" if run_dir else None
    log = JsonlLog(run_dir / "train_log.jsonl" if run_dir else None, accelerator.is_main_process)
    best_in_memory: dict[str, torch.Tensor] | None = None
    bad_epochs, start_epoch = 0, 0
    if resume and ckpt_dir and (found := checkpoints.latest_checkpoint(ckpt_dir)):
        folder, state = found
        accelerator.load_state(str(folder))
        start_epoch, bad_epochs = state["epoch"] + 1, state["bad_epochs"]
        result = FitResult(**{**state["result"], "resumed_from_epoch": state["epoch"] + 1})
        logger.info("resumed from %s (epoch %d finished, step %d)", folder, state["epoch"] + 1, result.global_step)

    progress = tqdm(total=total_steps, initial=result.global_step, desc="training", unit="step",
                    disable=not accelerator.is_local_main_process)
    started = time.perf_counter() - result.train_seconds
    for epoch in range(start_epoch, num_epochs):
        loader.set_epoch(epoch)
        train_mode(model)
        running, counted = torch.zeros((), device=accelerator.device), 0
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            running += loss.detach()
            counted += 1
            if accelerator.sync_gradients:
                result.global_step += 1
                progress.update(1)
                if result.global_step % config.log_every == 0:
                    mean_loss = accelerator.reduce(running, "mean").item() / counted
                    running.zero_()
                    counted = 0
                    progress.set_postfix(epoch=epoch + 1, loss=f"{mean_loss:.4f}")
                    record = {"epoch": epoch + 1, "step": result.global_step, "loss": mean_loss,
                              "lr": scheduler.get_last_lr()[0]}
                    result.train_losses.append(record)
                    log.write(type="train", **record)
                if result.global_step >= total_steps:
                    break
        if counted:
            record = {"epoch": epoch + 1, "step": result.global_step,
                      "loss": accelerator.reduce(running, "mean").item() / counted, "lr": scheduler.get_last_lr()[0]}
            result.train_losses.append(record)
            log.write(type="train", **record)
        scores = evaluate_loader(model, val_loader, accelerator, metrics)
        result.train_seconds = time.perf_counter() - started
        record = {"epoch": epoch + 1, "step": result.global_step, "seconds": round(result.train_seconds, 1), **scores}
        result.history.append(record)
        log.write(type="eval", split="validation", **record)
        current = scores[config.metric_for_best]
        improved = is_better(config.metric_for_best, current, result.best_metric)
        progress.write(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
                       + (" (best)" if improved else ""))
        if improved:
            result.best_epoch, result.best_metric, bad_epochs = epoch + 1, current, 0
            if ckpt_dir and accelerator.is_main_process:
                checkpoints.save_weights(accelerator.unwrap_model(model), ckpt_dir / checkpoints.BEST_WEIGHTS)
            elif not ckpt_dir:
                best_in_memory = {k: v.detach().cpu().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
        else:
            bad_epochs += 1
        stop = config.early_stopping_patience is not None and bad_epochs >= config.early_stopping_patience
        result.stopped_early = stop and epoch + 1 < num_epochs
        if ckpt_dir:
            state = {"epoch": epoch, "bad_epochs": bad_epochs, "result": result.to_dict()}
            checkpoints.save_epoch_checkpoint(accelerator, ckpt_dir, epoch, state)
        if stop or result.global_step >= total_steps:
            if result.stopped_early:
                progress.write(f"early stopping: no {config.metric_for_best} improvement for {bad_epochs} epochs")
            break
    progress.close()
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    if ckpt_dir and (ckpt_dir / checkpoints.BEST_WEIGHTS).is_file():
        checkpoints.load_weights(unwrapped, ckpt_dir / checkpoints.BEST_WEIGHTS)
    elif best_in_memory is not None:
        unwrapped.load_state_dict(best_in_memory)
    logger.info("best %s %.4f at epoch %s; %d steps in %.0f s", config.metric_for_best, result.best_metric or float("nan"),
                result.best_epoch, result.global_step, result.train_seconds)
    return result
