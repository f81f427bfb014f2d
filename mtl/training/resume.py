"""Resuming a killed run from its newest checkpoint, and the checkpoints written inside an epoch
(``train.save_every_steps``): what :func:`mtl.training.loop.fit_loop` needs to end as if never stopped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from . import state as checkpoints
from .records import FitResult

logger = logging.getLogger(__name__)


def resume_run(run: Any, ckpt_dir: Path) -> None:
    """Load the newest checkpoint, if any: model, optimizer, schedule and random states, and the bookkeeping.

    A checkpoint from inside an epoch also says how many of that epoch's batches were trained: they are
    skipped, and the random states are put back again once the loader has started (starting it draws one).
    """
    found = checkpoints.latest_checkpoint(ckpt_dir)
    if not found:
        return
    folder, state = found
    run.accelerator.load_state(str(folder))
    run.start_epoch, run.bad_epochs = state["epoch"] + 1, state["bad_epochs"]
    run.result = FitResult(**{**state["result"], "resumed_from_epoch": state["epoch"] + 1,
                              "resumed_from_step": state["result"]["global_step"]})
    inside = state.get("in_epoch")
    run.log.write(type="resume", step=run.result.global_step, epoch=run.start_epoch + 1, checkpoint=folder.name)
    if inside:
        run.skip_batches, run.carried_loss = inside["batches"], (inside["loss_sum"], inside["loss_batches"])
        run.random_states = checkpoints.random_states()
        logger.info("resumed from %s (epoch %d, after batch %d of %d, step %d)", folder, run.start_epoch + 1,
                    run.skip_batches, len(run.loader), run.result.global_step)
    else:
        logger.info("resumed from %s (epoch %d finished, step %d)", folder, run.start_epoch, run.result.global_step)


def step_checkpoint_due(run: Any, batches_done: int) -> bool:
    """Whether a ``save_every_steps`` checkpoint falls on this step (never on an epoch's last batch: the
    epoch checkpoint follows)."""
    every = run.config.save_every_steps
    return bool(every and run.ckpt_dir and run.result.global_step % every == 0 and batches_done < len(run.loader))


def save_step_checkpoint(run: Any, epoch: int, batches_done: int, running: torch.Tensor, counted: int) -> None:
    """Checkpoint inside ``epoch`` after ``batches_done`` batches, with the losses not yet logged."""
    run.result.train_seconds = time.perf_counter() - run.started
    loss_sum = run.accelerator.reduce(running.clone(), "mean").item()  # every process resumes with the mean
    inside = {"epoch": epoch, "batches": batches_done, "loss_sum": loss_sum, "loss_batches": counted}
    state = {"epoch": epoch - 1, "bad_epochs": run.bad_epochs, "result": run.result.to_dict(), "in_epoch": inside}
    checkpoints.save_checkpoint(run.accelerator, run.ckpt_dir, f"step-{run.result.global_step}", state)
