"""Frozen-backbone training on cached features: the backbone runs once per example, then only the head trains.

When exactly the parameters of the head (see :func:`mtl.modeling.classifier_head`) train, the inputs of
the head are recorded once for the train and validation sets (eval mode, no augmentation) and the head alone
trains on them, through the same :func:`mtl.training.fit_loop`. The head is the model's own modules, so the
trained weights are in the full model afterwards. A head of one module records that module's input; a head of
two linear layers applied to every frame and then averaged over time (Whisper's and wav2vec2's projector +
classifier) records the first layer's input averaged over time, which is exact because the first layer is affine
(the mean of ``W h + b`` is ``W mean(h) + b``); the caller checks the cached head against the full model.

Example::

    plan = cache_plan(model)                  # CachePlan(modules=("classifier",), ...), or None
    head_only = HeadOnly([model.get_submodule(name) for name in plan.modules])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..modeling.locate import classifier_head


@dataclass(frozen=True)
class CachePlan:
    """How the head trains on cached inputs: its ``modules`` applied in order to the recorded input of the first,
    averaged over the time axis when ``over_frames`` (projector + classifier heads)."""

    modules: tuple[str, ...]
    over_frames: bool = False


def cache_plan(model: nn.Module) -> CachePlan | None:
    """How to train ``model``'s head on cached inputs when exactly its parameters train; None when caching cannot
    apply (other parameters train too, or the head is split in a way not understood)."""
    head = classifier_head(model)
    named = [(name, parameter.requires_grad) for name, parameter in model.named_parameters()]
    trainable = {name for name, requires_grad in named if requires_grad}
    if trainable != head.parameter_names or len(trainable) == len(named):
        return None
    if head.name is not None:
        return CachePlan((head.name,))
    if len(head.parts) == 2 and all(isinstance(module, nn.Linear) for _, module in head.parts):
        return CachePlan(tuple(name for name, _ in head.parts), over_frames=True)
    return None


def head_module_name(model: nn.Module) -> str | None:
    """The one head module trained on cached inputs (see :func:`cache_plan`), or None."""
    plan = cache_plan(model)
    return plan.modules[0] if plan and not plan.over_frames else None


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
    """A classification head (its modules in order) trained on its cached inputs; returns what a transformers
    classifier returns."""

    def __init__(self, head: nn.Module | Sequence[nn.Module]):
        super().__init__()
        self.head = head if isinstance(head, nn.Module) else nn.Sequential(*head)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        logits = self.head(features)
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
