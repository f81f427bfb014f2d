"""How a task fits: an optional head-first stage on frozen features (LP-FT), then the stage its freezing plan
says, each through :func:`mtl.training.fit_loop`; when only the head trains, the backbone runs once (cached).

Example::

    result = fit_stages(task, train_set, validation_set, parse_freeze("none"), config, ["accuracy"], None, False)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import PartialState
from datasets import Dataset

from ..config.freeze import FreezeSpec
from ..config.sections import TrainConfig
from ..errors import MtlError
from ..modeling.freezing import apply_freezing, gradual_stages, trainable_names
from ..modeling.fusion import weights_key
from ..modeling.heads import first_token_reader
from ..modeling.lora import add_lora, lora_targets
from ..training import FitResult, fit_loop, make_accelerator
from ..training.feature_cache import CachePlan, CachedInputs, HeadOnly, cache_plan, collate_cached
from ..training.losses import class_weight_vector
from ..training.data_signature import check_resumed_data
from ..training.state import has_checkpoint

logger = logging.getLogger(__name__)


def fit_stages(task: Any, train_set: Dataset, validation_set: Dataset, spec: FreezeSpec, config: TrainConfig,
               metrics: list[str], run_dir: Path | None, resume: bool) -> FitResult:
    """Train ``task.model``: head first (unless resuming past it), then as ``spec`` says; return the main result."""
    head_first_seconds = 0.0
    check_freezing(task.model, spec)  # a spec that does not fit the model is named before any stage trains
    resuming = resume and run_dir is not None and has_checkpoint(run_dir / "checkpoints")
    if run_dir is not None:  # the examples are kept beside the checkpoints: a resumed run must be given the same
        check_resumed_data(run_dir / "checkpoints", {"train": train_set, "validation": validation_set},
                           resuming=resuming, write=PartialState().is_main_process)
    if config.head_first_epochs and spec.mode != "backbone" and not resuming:
        started = time.perf_counter()
        apply_freezing(task.model, "backbone")
        probe = dataclasses.replace(config, epochs=config.head_first_epochs, max_steps=None, warmup_ratio=0.0,
                                    learning_rate=(config.head_first_learning_rate or config.head_learning_rate
                                                   or config.learning_rate), head_learning_rate=None,
                                    early_stopping_patience=None, report_to=[])
        first = fit_stage(task, train_set, validation_set, probe, metrics, make_accelerator(probe), None, False)
        logger.info("head first: %d epochs on frozen features, best validation %s %.4f; now training %s",
                    config.head_first_epochs, config.metric_for_best, first.best_metric, spec.describe())
        head_first_seconds = time.perf_counter() - started  # the main stage's clock starts here
        task._head_inputs = None  # the backbone trains from here: its cached outputs are of no more use
    adapters = add_lora(task.model, spec) if spec.mode == "lora" else None
    task.freeze_report = adapters.report if adapters else apply_freezing(task.model, spec)
    task._accelerator = make_accelerator(config, run_dir)
    epoch_start = _gradual_unfreezing(task.model, spec, task._accelerator) if spec.mode == "gradual" else None
    result = fit_stage(task, train_set, validation_set, config, metrics, task._accelerator, run_dir, resume,
                       seconds_before=head_first_seconds, epoch_start=epoch_start)
    if epoch_start is not None:  # the stages are nested: what trains at the last stage reached is all that trained
        reached = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
        task.freeze_report = dataclasses.replace(task.freeze_report, trainable=reached)
        logger.info("gradual unfreezing: %s of %s parameters trained by the end", f"{reached:,}",
                    f"{task.freeze_report.total:,}")
    if adapters:
        task.lora_adapter = adapters.snapshot(task.checkpoint) if adapters.settings.save_adapter else None
        task.model = adapters.merge()  # a plain transformers model again: saved, loaded and served as any other
        logger.info("LoRA adapters merged into the weights")
    return result


def _class_weights(task: Any, train_set: Dataset, config: TrainConfig) -> list[float] | None:
    weights = class_weight_vector(config.class_weights, task.label_names, train_set["label"])
    if weights is not None:
        logger.info("class weights in the training loss: %s",
                    ", ".join(f"{name} {weight:.3g}" for name, weight in zip(task.label_names, weights)))
    return weights


def _gradual_unfreezing(model: torch.nn.Module, spec: FreezeSpec, accelerator: Any) -> Callable[[int], str | None]:
    """What trains in each epoch under gradual unfreezing: stage ``epoch // every`` of :func:`gradual_stages`.
    A function of the epoch alone, so a resumed run trains what the uninterrupted one did."""
    if accelerator.num_processes > 1:
        raise MtlError("model.freeze gradual: unfreezing during training is not supported on several processes "
                       "(DDP fixes the trained parameters when it starts); use {top_k: N} or one process")
    stages = gradual_stages(model)
    named = list(model.named_parameters())
    current: list[int] = []

    def at_epoch(epoch: int) -> str | None:
        stage = min(epoch // spec.every, len(stages) - 1)
        for name, parameter in named:
            parameter.requires_grad_(name in stages[stage])
        if current == [stage]:
            return None
        current[:] = [stage]
        trainable = sum(p.numel() for name, p in named if name in stages[stage])
        blocks = f"{stage} block{'s' if stage > 1 else ''}"
        last = stage == len(stages) - 1 and len(stages[stage]) == len(named)
        what = "the head trains" if stage == 0 else "everything trains" if last else f"the head and the top {blocks} train"
        return f"gradual unfreezing: from epoch {epoch + 1} {what} ({trainable:,} parameters)"

    return at_epoch


def check_freezing(model: torch.nn.Module, spec: FreezeSpec) -> None:
    """Raise the error that applying ``spec`` to ``model`` would raise (LoRA targets, blocks, patterns), changing
    nothing: before the head-first stage trains, and by ``--dry-run``."""
    if spec.mode == "lora":
        lora_targets(model, spec)
    else:
        trainable_names(model, spec)


def fit_stage(task: Any, train_set: Dataset, validation_set: Dataset, config: TrainConfig, metrics: list[str],
              accelerator: Any, run_dir: Path | None, resume: bool, seconds_before: float = 0.0,
              epoch_start: Callable[[int], str | None] | None = None) -> FitResult:
    """One :func:`fit_loop` over the model as frozen now; only the head trains: the backbone runs once (cached)."""
    plan = cache_plan(task.model) if config.feature_cache else None
    caching = time.perf_counter()
    cached = cache_head_inputs_once(task, train_set, validation_set, plan, config.eval_batch) if plan else None
    if cached is not None:  # the backbone's pass is part of what training the head costs (timings, budgets)
        seconds_before += time.perf_counter() - caching
        trained = HeadOnly([task.model.get_submodule(name) for name in plan.modules])
        train_features, val_features = cached
        collate, train_lengths, eval_lengths = collate_cached, None, None
    else:
        trained = task.model
        train_features = task.features(train_set, train=True)
        val_features = task.features(validation_set)
        collate, train_lengths, eval_lengths = task.collate, task.lengths(train_features), task.lengths(val_features)
    result = fit_loop(trained, train_features, val_features, collate=collate, config=config, metrics=metrics,
                      accelerator=accelerator, train_lengths=train_lengths, eval_lengths=eval_lengths,
                      run_dir=run_dir, resume=resume, seconds_before=seconds_before,
                      class_weights=_class_weights(task, train_set, config), epoch_start=epoch_start)
    if cached is None:
        task.model = accelerator.unwrap_model(task.model, keep_fp32_wrapper=False)
    return result


def cache_head_inputs_once(task: Any, train_set: Dataset, validation_set: Dataset, plan: CachePlan,
                           batch_size: int) -> tuple[CachedInputs, CachedInputs] | None:
    """:func:`cache_head_inputs`, reused while the same splits meet the same frozen backbone again in one ``fit``
    (``strategy: auto``'s probe race, then the chosen probe or LP-FT's head-first stage, once), so the backbone runs
    over them once. Any change to the backbone's weights or buffers, the splits, the head's place or the precision
    computes them anew."""
    memo, task._head_inputs = getattr(task, "_head_inputs", None), None  # used once: its memory is freed after
    if memo is not None and memo[0] == _head_inputs_key(task, train_set, validation_set, plan):
        logger.info("feature cache: the frozen backbone's outputs for these splits are reused (unchanged since they "
                    "were computed)")
        return memo[1]
    cached = cache_head_inputs(task, train_set, validation_set, plan, batch_size)
    if cached is not None:  # keyed after the run: computing them moves the model to its device and layout
        task._head_inputs = (_head_inputs_key(task, train_set, validation_set, plan), cached)
    return cached


def _head_inputs_key(task: Any, train_set: Dataset, validation_set: Dataset, plan: CachePlan) -> tuple[Any, ...]:
    """What the head's cached inputs depend on: a backbone that trained since (optimizer steps, loaded weights,
    batch-norm statistics) gives another key."""
    return (id(task.model), train_set._fingerprint, validation_set._fingerprint, plan,
            task._accelerator.mixed_precision, weights_key(task.model, leave_out=plan.modules))


class _NotTheExpectedShape(Exception):
    pass


def _input_of_rank(rank: int) -> Callable[[torch.nn.Module, tuple[Any, ...]], None]:
    def check(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        shape = tuple(args[0].shape)
        if len(shape) != rank and not (len(shape) == rank + 1 and shape[1] == 1):  # [batch, 1 token, hidden] is one
            raise _NotTheExpectedShape(shape)

    return check


def cache_head_inputs(task: Any, train_set: Dataset, validation_set: Dataset, plan: CachePlan,
                      batch_size: int) -> tuple[CachedInputs, CachedInputs] | None:
    """The head's inputs over both splits, or None when caching cannot stand in for the head: a one-module head
    that reads more than one vector per example (the first batch tells; a head that reads only the first token,
    RoBERTa's, is cached as that token), or a cached head whose logits differ from the whole model's."""
    first = plan.modules[0]
    guard = None if _reads_first_token(task.model, plan) else \
        task.model.get_submodule(first).register_forward_pre_hook(_input_of_rank(3 if plan.over_frames else 2))
    try:
        cached = tuple(cached_head_inputs(task, split, plan, batch_size, what)
                       for split, what in ((train_set, "train"), (validation_set, "validation")))
    except _NotTheExpectedShape as error:
        logger.info("feature cache: the head (%s) reads inputs shaped %s, which cached vectors cannot stand in for; "
                    "the frozen backbone runs every epoch", first, "x".join(map(str, error.args[0])))
        return None
    finally:
        if guard is not None:
            guard.remove()
    inputs, logits = zip(*cached)
    head = HeadOnly([task.model.get_submodule(name) for name in plan.modules]).eval()
    accelerator = task._accelerator
    tolerance = 1e-4 if accelerator.mixed_precision == "no" else 5e-2  # bf16 / fp16 heads round differently
    with torch.no_grad(), accelerator.autocast():
        again = head(inputs[1].features[:32].to(accelerator.device)).logits.float().cpu()
    agree = torch.allclose(again, logits[1][:32], atol=tolerance, rtol=tolerance)
    if not agree:
        logger.info("feature cache: the head (%s) on cached inputs does not reproduce the model's outputs; the frozen "
                    "backbone runs every epoch", " + ".join(plan.modules))
        return None
    return inputs  # type: ignore[return-value]


def _mean_over_frames(inputs: torch.Tensor, output: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return inputs.mean(dim=1)


def _one_vector(inputs: torch.Tensor, output: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A head input of one vector per example; token pooling in front of a first-token head gives [batch, 1, hidden],
    which that head also takes as [batch, hidden]."""
    return inputs[:, 0] if inputs.dim() == 3 and inputs.shape[1] == 1 else inputs


def _first_token_only(inputs: torch.Tensor, output: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The first token's state as a sequence of one ([batch, 1, hidden]): all that a first-token head reads."""
    return inputs[:, :1] if inputs.dim() == 3 else inputs


def _reads_first_token(model: torch.nn.Module, plan: CachePlan) -> bool:
    """Whether ``plan``'s head is one module that reads the first of the token states it is given (RoBERTa's,
    ELECTRA's, XLM-R's classification head) at the checkpoint's own pooling."""
    return not plan.over_frames and len(plan.modules) == 1 and not getattr(model.config, "mtl_pooling", None) and \
        model.get_submodule(plan.modules[0]) is first_token_reader(model)


def cached_head_inputs(task: Any, split: Dataset, plan: CachePlan, batch_size: int,
                       what: str) -> tuple[CachedInputs, torch.Tensor]:
    """Run the frozen backbone once over ``split`` (no augmentation); keep what enters the head (of a first-token
    head, only the first token), and the logits."""
    started = time.perf_counter()
    pool = _mean_over_frames if plan.over_frames else \
        _first_token_only if _reads_first_token(task.model, plan) else _one_vector
    predicted = task.run_model(task.features(split), batch_size, capture=task.model.get_submodule(plan.modules[0]),
                               pool=pool)
    logger.info("feature cache: the frozen backbone ran once over %d %s examples (%.0f s); the head (%s) trains "
                "on its %s inputs%s without train-time augmentation", len(split), what,
                time.perf_counter() - started, " + ".join(plan.modules),
                "x".join(map(str, predicted.captured.shape[1:])), " averaged over time" if plan.over_frames else "")
    return CachedInputs(predicted.captured, torch.as_tensor(predicted.labels)), torch.as_tensor(predicted.logits)
