"""Optimizer parameter groups: no weight decay on biases and norms; the head may get its own learning rate.

Example::

    torch.optim.AdamW(parameter_groups(model, 5e-5, 0.01, head_learning_rate=1e-3))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..modeling.locate import head_parameter_names


def parameter_groups(model: nn.Module, learning_rate: float, weight_decay: float,
                     head_learning_rate: float | None = None) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases and norm weights; the head may get its own learning rate."""
    head = head_parameter_names(model)
    no_decay = _no_decay_names(model)
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups.setdefault((name in head, name in no_decay), []).append(parameter)
    result = []
    for (is_head, skip_decay), params in sorted(groups.items()):
        lr = head_learning_rate if (is_head and head_learning_rate) else learning_rate
        result.append({"params": params, "lr": lr, "weight_decay": 0.0 if skip_decay else weight_decay})
    return result


def _no_decay_names(model: nn.Module) -> set[str]:
    norms = (nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param_name.endswith("bias") or isinstance(module, norms) or "norm" in type(module).__name__.lower():
                names.add(full)
    return names
