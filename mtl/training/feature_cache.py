"""Frozen-backbone training on cached features: the backbone runs once per example, then only the head trains.

When exactly the parameters of the head (one module, see :func:`mtl.modeling.classifier_head`) train, the
inputs of that module are recorded once for the train and validation sets (eval mode, no augmentation)
and the head alone trains on them, through the same :func:`mtl.training.fit_loop`. The head is the model's
own module, so the trained weights are in the full model afterwards.

Example::

    name = head_module_name(model)            # "classifier", or None when caching cannot apply
    head_only = HeadOnly(model.get_submodule(name))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..modeling.locate import classifier_head


def head_module_name(model: nn.Module) -> str | None:
    """The head module (:func:`~mtl.modeling.locate.classifier_head`) when exactly its parameters train and the rest
    of the model is frozen; None when caching cannot apply (the head is split, or other parameters train too)."""
    head = classifier_head(model)
    named = [(name, parameter.requires_grad) for name, parameter in model.named_parameters()]
    trainable = {name for name, requires_grad in named if requires_grad}
    if head.name is None or trainable != head.parameter_names or len(trainable) == len(named):
        return None
    return head.name


class CachedInputs(torch.utils.data.Dataset):
    """Recorded head inputs (one vector per example) and their labels."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[index], "labels": self.labels[index]}


def collate_cached(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack cached rows into a batch."""
    return {key: torch.stack([torch.as_tensor(row[key]) for row in rows]) for key in rows[0]}


class HeadOnly(nn.Module):
    """A classification head trained on its cached inputs; returns what a transformers classifier returns."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        logits = self.head(features)
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
