"""``train.strategy: auto``: choose how much of the pretrained network to train, for the user's data and time.

A race on the frozen-feature cache comes first: the backbone runs once over the training and validation
examples, and the head trains on its outputs at a few learning rates (seconds). That gives the best linear
probe and its rate, and the time one pass of the backbone takes. Then, from the number of examples in the
smallest class and how many epochs of each strategy the rest of ``train.time_budget`` (minutes) pays for:

* too few examples per class (< 4), or no time for two epochs of anything else: the **linear probe**, trained on
  at its best rate;
* time for at least two full epochs: **LP-FT** (the recipe's head-first stage, or where it sets none the race's
  best probe, its epochs at its rate; then everything at the recipe's rates, the head's included (a recipe
  that freezes the backbone set its rate for a head: the backbone then trains at 5e-5). On sentiment the
  race's probe, 10 epochs at 0.01, ended 1.4 points under the recipe's 3 epochs at 1e-3: 84.96% against 86.4%; it
  matches or beats full fine-tuning from a random head, Kumar et al. 2022), for the recipe's epochs or at least
  :data:`MIN_STEPS` optimizer steps where the budget allows and validation has :data:`JUDGED_VALIDATION`
  examples to stop early on (a small set's epochs are a few steps each), stopping early only after
  :data:`PATIENCE_STEPS` steps without improvement;
* time for two LoRA epochs but not two full ones: **LoRA** (the family's default rank), the probe first as in
  LP-FT (on the sentiment recipe 84.9% against 84.4% from a random head).

The choice, its reasons and the race are logged, kept in ``strategy.json`` beside the run's checkpoints (a
resumed run keeps the same choice) and written in the summary and the model card.

Example::

    choice = choose_strategy(task, train_set, validation_set, config, ["accuracy"], run_dir)
    choice.name, choice.reasons      # "LP-FT", ["...", ...]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset

from ..config.freeze import FreezeSpec, parse_freeze
from ..config.sections import FINE_TUNING_RATE, TrainConfig
from ..fs import write_json
from ..metrics import is_better
from ..modeling.freezing import apply_freezing
from ..training import fit_loop, make_accelerator
from ..training.feature_cache import HeadOnly, cache_plan, collate_cached
from .fitting import cache_head_inputs_once

logger = logging.getLogger(__name__)

STRATEGY_FILE = "strategy.json"
RACE_RATES = (3e-4, 1e-3, 3e-3, 1e-2)
FEW_PER_CLASS = 4  # below this, validation cannot tell a fine-tuned epoch from noise: the probe alone
BACKWARD_COST = 3.0  # a training pass costs about three forward passes (forward + backward)
LORA_COST = 2.3  # LoRA skips the weight gradients of the frozen layers
MIN_STEPS = 300  # fine-tuning takes at least this many optimizer steps when the budget allows (a small set's
# epochs are a few steps each: the digits recipe's two epochs on 10% of its labels were 14 steps and 78.2%) ...
JUDGED_VALIDATION = 100  # ... and when validation is large enough for early stopping to judge an epoch (on the
# 24 validation clips of the v0.01-mini keywords it stopped at the first perfect epoch: 91.5% against 96.6%)
PATIENCE_STEPS = 100  # early stopping waits at least this many optimizer steps without improvement (2 epochs at
# least): on 10% of the digits (13 steps an epoch) a patience of 2 epochs stopped at 88.4% test accuracy on a
# validation curve that dipped mid-schedule; run to the end of its schedule the same run reached 97.2%


@dataclass
class StrategyChoice:
    """What ``strategy: auto`` chose: a name, the freezing spec and training settings it runs, and why."""

    name: str
    freeze: str | dict[str, Any]
    settings: dict[str, Any]
    reasons: list[str]
    race: dict[str, float] = field(default_factory=dict)  # probe learning rate -> best validation metric

    def apply(self, config: TrainConfig, given: FreezeSpec | None = None) -> tuple[FreezeSpec, TrainConfig]:
        """The freezing spec and training config to run. What they replace is logged: the training settings,
        and, as a warning, a freezing spec ``given`` other than ``none`` (auto decides the freezing itself)."""
        spec, chosen = parse_freeze(self.freeze), dataclasses.replace(config, strategy="explicit", **self.settings)
        changed = [f"train.{key}: {_shown(getattr(config, key))} -> {_shown(value)}"
                   for key, value in self.settings.items() if key != "max_seconds" and getattr(config, key) != value]
        if changed:
            logger.info("strategy auto set %s", "; ".join(changed))
        if given is not None and given.mode != "none" and given != spec:
            logger.warning("strategy auto replaced model.freeze %s by %s (%s); to train with model.freeze as given, "
                           "set train.strategy=explicit", given.describe(), spec.describe(), self.name)
        return spec, chosen


def choose_strategy(task: Any, train_set: Dataset, validation_set: Dataset, config: TrainConfig,
                    metrics: list[str], run_dir: Path | None, given: FreezeSpec | None = None) -> StrategyChoice:
    """Race linear probes on the frozen-feature cache, then choose a strategy that fits ``config.budget_minutes``
    (``train.time_budget``). ``given``: the recipe's freezing; with ``backbone`` its learning rate is a head's,
    so a strategy that trains the backbone trains it at :data:`FINE_TUNING_RATE` and the head at that rate."""
    saved = run_dir / STRATEGY_FILE if run_dir else None
    if saved and saved.is_file():
        choice = StrategyChoice(**json.loads(saved.read_text()))
        logger.info("strategy auto: %s, as chosen before this run was resumed", choice.name)
        return choice
    started = time.perf_counter()
    budget = config.budget_minutes * 60
    per_class = min(Counter(train_set["label"]).values())
    race, rate, epochs, feature_seconds = _probe_race(task, train_set, validation_set, config, metrics)
    train_share = len(train_set) / (len(train_set) + len(validation_set))
    backbone_pass = feature_seconds * train_share
    # one more backbone pass kept in reserve, as before the features were reused (so the choice is unchanged)
    left = budget - (time.perf_counter() - started) - feature_seconds
    if race:
        full_epochs, lora_epochs = (math.floor(left / max(cost * backbone_pass, 1e-9))
                                    for cost in (BACKWARD_COST, LORA_COST))
        reasons = [f"{per_class} examples in the smallest class", f"one pass of the backbone over the training "
                   f"examples takes {backbone_pass:.0f} s; " +
                   (f"{left / 60:.1f} of {config.budget_minutes:g} minutes left after the race" if left > 0
                    else f"the race used all of the {config.budget_minutes:g} minutes"),
                   f"best linear probe: learning rate {rate:g}, validation {config.metric_for_best} "
                   f"{race[f'{rate:g}']:.4f} after {epochs} epochs"]
        room = f"time for {full_epochs} full epochs"
    else:  # nothing cached, nothing timed: the budget bounds the fine-tuning through max_seconds
        full_epochs = lora_epochs = max(math.ceil(config.epochs), 2)
        reasons = [f"{per_class} examples in the smallest class",
                   f"no probe race: {type(task.model).__name__}'s head cannot be trained on cached features, so "
                   f"no backbone pass was timed; the head-first stage uses learning rate {rate:g}"]
        room = f"training stops when the {config.budget_minutes:g}-minute budget is spent"
    probe_settings = dict(learning_rate=rate, head_learning_rate=None, epochs=max(3 * epochs, 5),
                          early_stopping_patience=5, head_first_epochs=0)
    wanted_epochs = max(math.ceil(config.epochs), 2)
    patience = max(2, _epochs_for(PATIENCE_STEPS, len(train_set), config, task._accelerator.num_processes))
    if len(validation_set) >= JUDGED_VALIDATION:
        wanted_epochs = max(wanted_epochs, _epochs_for(MIN_STEPS, len(train_set), config,
                                                       task._accelerator.num_processes))
    # the head-first stage: the recipe's, when it sets one; else the race's best probe (its epochs at its rate)
    head_first = {} if config.head_first_epochs else dict(head_first_epochs=max(epochs, 1),
                                                          head_first_learning_rate=rate)
    probe_first = (f"the recipe's head-first stage ({config.head_first_epochs} epochs)" if config.head_first_epochs
                   else "the probe first")
    full_rate, rates = config.learning_rate, {}
    if given is not None and given.mode == "backbone":  # a probe recipe: its rate is the head's, far too high for
        full_rate = FINE_TUNING_RATE  # pretrained weights (MiniLM at 1e-3 forgets what it knew)
        rates = dict(learning_rate=full_rate, head_learning_rate=config.head_learning_rate or config.learning_rate)
    if per_class < FEW_PER_CLASS:
        choice = StrategyChoice("linear probe", "backbone", probe_settings,
                                reasons + [f"fewer than {FEW_PER_CLASS} examples per class: too few to move the "
                                           "backbone's weights"], race)
    elif full_epochs >= 2:
        settings = dict(**head_first, **rates, epochs=min(wanted_epochs, full_epochs),
                        early_stopping_patience=patience, max_seconds=max(left, 1.0))
        probe_rate = (f" (the recipe's {config.learning_rate:g} is a linear probe's; the head trains at "
                      f"{rates['head_learning_rate']:g})" if rates else "")
        choice = StrategyChoice("LP-FT", "none", settings,
                                reasons + [f"{room}: {probe_first}, then everything "
                                           f"for up to {settings['epochs']} epochs at learning rate "
                                           f"{full_rate:g}{probe_rate}, stopping after {patience} epochs without "
                                           "improvement"], race)
    elif lora_epochs >= 2:
        settings = {**head_first, **rates, "learning_rate": lora_learning_rate(full_rate),
                    "epochs": min(wanted_epochs, lora_epochs), "early_stopping_patience": patience,
                    "max_seconds": max(left, 1.0)}
        choice = StrategyChoice("LoRA", {"lora": {}}, settings,
                                reasons + [f"time for {lora_epochs} LoRA epochs but only {full_epochs} full ones"],
                                race)
    else:
        choice = StrategyChoice("linear probe", "backbone", probe_settings,
                                reasons + [f"no time for two epochs of fine-tuning (time for {max(full_epochs, 0)} "
                                           f"full and {max(lora_epochs, 0)} LoRA epochs in the budget)"], race)
    if task._accelerator.num_processes > 1:  # timings differ between processes: the main process decides
        from accelerate.utils import broadcast_object_list

        choice = broadcast_object_list([choice])[0]
    logger.info("strategy auto chose %s: %s", choice.name, "; ".join(choice.reasons))
    if saved and task._accelerator.is_main_process:
        saved.parent.mkdir(parents=True, exist_ok=True)
        write_json(saved, dataclasses.asdict(choice))
    return choice


def _shown(value: Any) -> str:
    """A setting as a recipe writes it: 30 epochs, not 30.0."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _epochs_for(steps: int, examples: int, config: TrainConfig, processes: int = 1) -> int:
    """Epochs that make ``steps`` optimizer steps of ``config``'s batches (on each of ``processes``) over
    ``examples`` training examples."""
    per_epoch = max(math.ceil(examples / (config.batch_size * config.gradient_accumulation_steps * processes)), 1)
    return math.ceil(steps / per_epoch)


def lora_learning_rate(full_rate: float) -> float:
    """The adapters' learning rate for a recipe that fine-tunes everything at ``full_rate``: ten times it, at least
    5e-4 (LoRA's low-rank updates need larger steps; the LoRA paper trains RoBERTa at 4e-4 to 5e-4)."""
    return max(full_rate * 10, 5e-4)


def _probe_race(task: Any, train_set: Dataset, validation_set: Dataset, config: TrainConfig,
                metrics: list[str]) -> tuple[dict[str, float], float, int, float]:
    """Linear probes at :data:`RACE_RATES` on cached features: ({rate: best metric}, best rate, its best epoch,
    seconds the backbone took over both splits). The head is left as it was."""
    apply_freezing(task.model, "backbone")
    plan = cache_plan(task.model)
    probe = dataclasses.replace(config, epochs=20, max_steps=None, warmup_ratio=0.0, head_learning_rate=None,
                                lr_decay=None, early_stopping_patience=3, report_to=[], save_every_steps=None,
                                max_seconds=None, head_first_epochs=0, strategy="explicit",
                                time_budget=None)
    task._accelerator = make_accelerator(probe)
    started = time.perf_counter()
    cached = cache_head_inputs_once(task, train_set, validation_set, plan, config.eval_batch) if plan else None
    feature_seconds = time.perf_counter() - started
    if cached is None:  # the cache cannot stand in for this head: no race, the recipe's head rate
        rate = config.head_learning_rate or config.learning_rate
        return {}, rate, 1, feature_seconds
    head = HeadOnly([task.model.get_submodule(name) for name in plan.modules])
    initial = {key: value.detach().clone() for key, value in head.state_dict().items()}
    race: dict[str, float] = {}
    best: tuple[float, float, int] | None = None
    for rate in RACE_RATES:
        head.load_state_dict(initial)
        result = fit_loop(head, *cached, collate=collate_cached, config=dataclasses.replace(probe, learning_rate=rate),
                          metrics=metrics, accelerator=task._accelerator)
        race[f"{rate:g}"] = result.best_metric
        if best is None or is_better(config.metric_for_best, result.best_metric, best[0]):
            best = (result.best_metric, rate, result.best_epoch or 1)
    head.load_state_dict(initial)
    return race, best[1], best[2], feature_seconds
