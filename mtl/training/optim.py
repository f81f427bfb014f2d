"""Optimizer parameter groups: no weight decay on biases and norms; the head may get its own learning rate, and
with ``lr_decay`` each backbone block gets the rate of the block above it times the decay (discriminative
fine-tuning, ULMFiT / layer-wise learning-rate decay). The groups are logged.

Example::

    torch.optim.AdamW(parameter_groups(model, 5e-5, 0.01, head_learning_rate=1e-3, lr_decay=0.8))
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ..errors import MtlError
from ..modeling.freezing import backbone_blocks
from ..modeling.locate import head_parameter_names

logger = logging.getLogger(__name__)


def parameter_groups(model: nn.Module, learning_rate: float, weight_decay: float,
                     head_learning_rate: float | None = None, lr_decay: float | None = None) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases and norm weights; the head may get its own learning rate; below the head,
    parameters ``d`` blocks down from the top block get ``learning_rate * lr_decay ** d``."""
    head = head_parameter_names(model)
    no_decay = _no_decay_names(model)
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    depths = _block_depths(model, head) if lr_decay and lr_decay < 1 and any(n not in head for n, _ in trainable) \
        else {}
    groups: dict[tuple[bool, int, bool], list[tuple[str, torch.nn.Parameter]]] = {}
    for name, parameter in trainable:
        key = (name in head, depths.get(name, 0), name in no_decay)
        groups.setdefault(key, []).append((name, parameter))
    result = []
    for (is_head, depth, skip_decay), members in sorted(groups.items(), key=lambda item: (not item[0][0], item[0][1:])):
        lr = head_learning_rate if (is_head and head_learning_rate) else learning_rate * (lr_decay or 1.0) ** depth
        result.append({"params": [p for _, p in members], "lr": lr, "weight_decay": 0.0 if skip_decay else weight_decay,
                       "name": "head" if is_head else (f"backbone, {depth} blocks below the top" if depth else "backbone")})
    _log_groups(result)
    return result


def _block_depths(model: nn.Module, head: set[str]) -> dict[str, int]:
    """How many blocks below the top block each backbone parameter sits: 0 for the top block and what follows it,
    ``n`` for what comes before the first of ``n`` blocks (embeddings)."""
    try:
        _, blocks = backbone_blocks(model)
    except MtlError:
        raise MtlError(f"train.lr_decay: {type(model).__name__} has no list of repeated blocks to decay the learning "
                       "rate over; remove train.lr_decay") from None
    depths, seen_block = {}, False
    for name, _ in model.named_parameters():
        if name in head:
            continue
        index = next((i for i, block in enumerate(blocks) if name.startswith(block + ".")), None)
        if index is not None:
            seen_block = True
            depths[name] = len(blocks) - 1 - index
        else:
            depths[name] = 0 if seen_block else len(blocks)
    return depths


def _log_groups(groups: list[dict[str, Any]]) -> None:
    by_name: dict[tuple[str, float], list[int]] = {}
    for group in groups:
        counts = by_name.setdefault((group["name"], group["lr"]), [0, 0])
        counts[0] += sum(p.numel() for p in group["params"])
        counts[1] += len(group["params"])
    logger.info("parameter groups: %s", "; ".join(f"{name}: lr {lr:.3g}, {numel:,} parameters in {tensors} tensors"
                                                   for (name, lr), (numel, tensors) in by_name.items()))


def _no_decay_names(model: nn.Module) -> set[str]:
    norms = (nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param_name.endswith("bias") or isinstance(module, norms) or "norm" in type(module).__name__.lower():
                names.add(full)
    return names
