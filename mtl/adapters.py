"""Adapters: a pretrained checkpoint becomes a classifier for the user's labels.

The checkpoint's own classifier (if any) is detached and a new head sized to the labels is attached,
with ``id2label``/``label2id`` in the config so the saved folder names its classes. Optimizer parameter
groups separate decayed weights from biases and norms, and the head may get its own learning rate.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .errors import CheckpointError
from .freezing import head_parameter_names

logger = logging.getLogger(__name__)


def label_config(label_names: Sequence[str]) -> dict[str, Any]:
    """``num_labels``, ``id2label`` and ``label2id`` for a config."""
    names = list(label_names)
    return {"num_labels": len(names), "id2label": dict(enumerate(names)),
            "label2id": {name: i for i, name in enumerate(names)}}


def build_classifier(auto_class: Any, checkpoint: str | Path, label_names: Sequence[str], **config_overrides: Any) -> nn.Module:
    """Load ``checkpoint`` with a fresh head for ``label_names`` (the old head is dropped if its size differs).

    Example::

        model = build_classifier(AutoModelForSequenceClassification, folder, ["negative", "positive"])
    """
    try:
        model, info = auto_class.from_pretrained(
            str(checkpoint), **label_config(label_names), **config_overrides,
            ignore_mismatched_sizes=True, output_loading_info=True,
        )
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"cannot load {checkpoint} as {auto_class.__name__}: {str(error).splitlines()[0]}") from None
    if hasattr(model.config, "label_names"):  # timm-wrapper configs save labels here, not as id2label
        model.config.label_names = list(label_names)
    fresh = sorted(set(info.get("missing_keys", [])) | {k[0] if isinstance(k, tuple) else k
                                                        for k in info.get("mismatched_keys", [])})
    if fresh:
        logger.info("new head: %d tensors initialised for %d labels (%s%s)", len(fresh), len(label_names),
                    ", ".join(fresh[:4]), ", ..." if len(fresh) > 4 else "")
    head = head_parameter_names(model)
    stray = [k for k in fresh if k not in head and not k.endswith(("position_ids", "num_batches_tracked"))]
    if stray:
        logger.warning("%d backbone tensors were not in the checkpoint and start random: %s", len(stray),
                       ", ".join(stray[:6]))
    return model


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
