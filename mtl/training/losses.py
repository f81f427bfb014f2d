"""The training loss when the recipe asks for more than the model's own cross-entropy: class weights
(``train.class_weights``) and label smoothing (``train.label_smoothing``). Evaluation keeps the plain loss.

Example::

    weights = class_weight_vector("auto", ["neg", "pos"], [0, 0, 0, 1])   # [0.667, 2.0]
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..errors import MtlError


def class_weight_vector(setting: str | Mapping[str, float] | None, label_names: Sequence[str],
                        labels: Sequence[int]) -> list[float] | None:
    """Per-label loss weights: ``"auto"`` gives each label ``n / (labels x count)`` (scikit-learn's "balanced"),
    a mapping gives the named labels its weights and the others 1; None gives None."""
    if setting is None:
        return None
    if setting == "auto":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(np.asarray(labels))
        balanced = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=np.asarray(labels))))
        return [float(balanced.get(i, 1.0)) for i in range(len(label_names))]
    unknown = sorted(set(setting) - set(label_names))
    if unknown:
        raise MtlError(f"train.class_weights names {unknown}, which are not labels of this data; the labels are "
                       f"{list(label_names)}")
    return [float(setting.get(name, 1.0)) for name in label_names]


def training_loss(class_weights: Sequence[float] | None, label_smoothing: float
                  ) -> Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor]:
    """``loss(model, batch)``: the model's own loss, or cross-entropy on its logits with the weights and smoothing."""
    if class_weights is None and not label_smoothing:
        return lambda model, batch: model(**batch).loss
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None

    def weighted(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        labels = batch["labels"]
        logits = model(**{key: value for key, value in batch.items() if key != "labels"}).logits
        on_device = weight.to(logits.device) if weight is not None else None
        return torch.nn.functional.cross_entropy(logits.float(), labels, weight=on_device,
                                                 label_smoothing=label_smoothing)

    return weighted
