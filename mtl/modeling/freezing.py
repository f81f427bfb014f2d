"""Freezing plans applied to a model: which parameters train and which stay fixed (specs: :mod:`mtl.config.freeze`).

A spec that matches nothing is an error, like PEFT's ``NoMatchingPeftModuleError``.

Example::

    report = apply_freezing(model, parse_freeze("backbone"))   # logs trainable / total parameters
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from ..config.freeze import FREEZE_MODES, FreezeSpec, parse_freeze
from ..errors import MtlError
from ..strategies import freeze_strategies
from .locate import head_parameter_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FreezeReport:
    """What a freezing plan did to a model."""

    spec: FreezeSpec
    trainable: int
    total: int

    def __str__(self) -> str:
        share = 100.0 * self.trainable / max(self.total, 1)
        shown = f"{share:.2f}" if share >= 0.01 or share == 0 else \
            np.format_float_positional(share, precision=2, unique=False, fractional=False, trim="-")  # not 0.00%
        return f"freeze {self.spec.describe()}: {self.trainable:,} trainable / {self.total:,} parameters ({shown}%)"


def backbone_blocks(model: nn.Module) -> tuple[str, list[str]]:
    """The repeated blocks of the backbone: (container name, block names), the largest container wins."""
    head = head_parameter_names(model)
    best: tuple[int, str, list[str]] = (0, "", [])
    for name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or len(module) < 2:
            continue
        names = [n for n, _ in module.named_parameters(prefix=name)]
        if not names or all(n in head for n in names):
            continue
        size = sum(p.numel() for p in module.parameters())
        if size > best[0]:
            best = (size, name, [f"{name}.{child}" for child, _ in module.named_children()])
    if not best[1]:
        raise MtlError(f"freeze top_k: {type(model).__name__} has no list of repeated blocks to count from; "
                       "use 'backbone', 'none' or {patterns: [...]}")
    return best[1], best[2]


def apply_freezing(model: nn.Module, spec: FreezeSpec | str | dict[str, Any]) -> FreezeReport:
    """Set ``requires_grad`` per the spec and log trainable/total parameter counts."""
    spec = parse_freeze(spec) if not isinstance(spec, FreezeSpec) else spec
    trainable = trainable_names(model, spec)
    named = list(model.named_parameters())
    for name, parameter in named:
        parameter.requires_grad_(name in trainable)
    report = FreezeReport(spec, sum(p.numel() for _, p in named if p.requires_grad), sum(p.numel() for _, p in named))
    logger.info("%s", report)
    return report


def trainable_names(model: nn.Module, spec: FreezeSpec) -> set[str]:
    """The names of the parameters ``spec`` (not LoRA) leaves trainable; a spec that does not fit ``model`` (too
    many blocks, a pattern matching nothing, nothing left to train) is an :class:`MtlError`. Changes nothing."""
    named = list(model.named_parameters())
    trainable = {name for name, _ in named}
    if spec.mode == "backbone":
        head = head_parameter_names(model)
        if not head:
            raise MtlError(f"freeze 'backbone': found no classification head in {type(model).__name__}")
        trainable = head
    elif spec.mode == "top_k":
        container, blocks = backbone_blocks(model)
        if spec.top_k > len(blocks):
            raise MtlError(f"freeze top_k={spec.top_k}: {container} has only {len(blocks)} blocks; "
                           f"choose 1..{len(blocks)} or 'none'")
        first_trainable = blocks[len(blocks) - spec.top_k]
        order = [name for name, _ in named]
        start = next(i for i, n in enumerate(order) if n.startswith(first_trainable + "."))
        trainable = set(order[start:]) | head_parameter_names(model)
    elif spec.mode == "gradual":  # everything the schedule will train; gradual_stages() says what trains when
        backbone_blocks(model)
    elif spec.mode == "patterns":
        for pattern in spec.patterns:
            matched = {n for n, _ in named if fnmatch.fnmatchcase(n, pattern)}
            if not matched:
                examples = ", ".join(n for n, _ in named[:3])
                raise MtlError(f"freeze pattern {pattern!r} matches no parameter of {type(model).__name__} "
                               f"(names look like: {examples}, ...)")
            trainable -= matched
        frozen_head = sorted(head_parameter_names(model) - trainable)
        if frozen_head:
            raise MtlError(f"freeze patterns {list(spec.patterns)} freeze the new classification head "
                           f"({', '.join(frozen_head[:4])}), which starts random and must train; narrow the patterns "
                           "to the backbone")
    elif spec.mode not in FREEZE_MODES:
        trainable = _registered_strategy(model, spec, {name for name, _ in named})
    if not trainable:
        raise MtlError(f"freeze {spec.describe()} leaves nothing of {type(model).__name__} to train; freeze fewer "
                       "parameters (the head must train)")
    return trainable


def _registered_strategy(model: nn.Module, spec: FreezeSpec, names: set[str]) -> set[str]:
    """What a strategy registered in :mod:`mtl.strategies` trains, checked: parameters that exist, the head."""
    strategy = freeze_strategies().get(spec.mode)
    if strategy is None:
        raise MtlError(f"freeze {spec.mode!r}: no such freezing strategy is registered")
    head = head_parameter_names(model)
    trainable = set(strategy.trainable(model, set(head), dict(spec.options)))
    unknown = sorted(trainable - names)
    if unknown:
        raise MtlError(f"freeze {spec.mode!r}: the strategy names parameters {type(model).__name__} does not have "
                       f"({', '.join(unknown[:4])})")
    frozen_head = sorted(head - trainable)
    if frozen_head:
        raise MtlError(f"freeze {spec.mode!r} leaves the new classification head ({', '.join(frozen_head[:4])}) "
                       "frozen; it starts random and must train")
    return trainable


def gradual_stages(model: nn.Module) -> list[set[str]]:
    """Gradual unfreezing's stages, each the parameter names that train: the head; then with what follows the
    blocks (pooler, final norm) the top block; one more block each stage; last, everything (embeddings too)."""
    head = head_parameter_names(model)
    _, blocks = backbone_blocks(model)
    order = [name for name, _ in model.named_parameters()]
    first_block = next(i for i, n in enumerate(order) if n.startswith(blocks[0] + "."))
    stages = [set(head)]
    for k in range(1, len(blocks) + 1):
        start = next(i for i, n in enumerate(order) if n.startswith(blocks[len(blocks) - k] + "."))
        stages.append(set(order[start:]) | head)
    if first_block > 0:
        stages.append(set(order))
    return stages


def train_mode(model: nn.Module) -> None:
    """``model.train()``, but normalisation layers whose parameters are all frozen keep their running stats."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()
