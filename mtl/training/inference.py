"""Inference over a loader on every process: logits (and labels, and one module's inputs) back in dataset order.

Example::

    predicted = predict_loader(model, accelerator.prepare(eval_loader(...)), accelerator)
    predicted.logits.shape   # (examples, labels)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from ..metrics import scores_from_logits
from .batching import INDEX_KEY


@dataclass
class Predictions:
    """Logits (float32) and labels for every example in dataset order, and the recorded inputs of one module."""

    logits: np.ndarray
    labels: np.ndarray | None
    captured: torch.Tensor | None = None


def predict_loader(model: torch.nn.Module, loader: Any, accelerator: Accelerator,
                   capture: torch.nn.Module | None = None, desc: str = "predicting",
                   pool: Callable[[torch.Tensor, Any, dict[str, torch.Tensor]], torch.Tensor] | None = None) -> Predictions:
    """Run ``model`` over ``loader`` in inference mode; with ``capture``, also record that module's input for each
    example, or with ``pool``, ``pool(module input, module output, batch)`` (e.g. token states averaged over the
    attention mask); then under ``no_grad``: a head trains on those inputs later, and inference tensors cannot be
    saved for backward."""
    with torch.inference_mode() if capture is None else torch.no_grad():
        return _predict(model, loader, accelerator, capture, desc, pool)


def _predict(model: torch.nn.Module, loader: Any, accelerator: Accelerator, capture: torch.nn.Module | None,
             desc: str, pool: Callable[[torch.Tensor, Any, dict[str, torch.Tensor]], torch.Tensor] | None) -> Predictions:
    model.eval()
    seen: dict[str, Any] = {}
    # with_kwargs: heads that call their base model with keywords only (DistilBERT, ALBERT) pass no positional input
    hook = capture.register_forward_hook(lambda module, args, kwargs, output: seen.update(
        x=_first_input(args, kwargs), out=output), with_kwargs=True) if capture else None
    parts: dict[str, list[torch.Tensor]] = {"logits": [], "indices": [], "labels": [], "captured": []}
    try:
        for batch in tqdm(loader, desc=desc, unit="batch", leave=False,
                          disable=not accelerator.is_local_main_process or len(loader) < 4):
            step = {"indices": batch.pop(INDEX_KEY)}
            labels = batch.pop("labels", None)
            with accelerator.autocast():  # the model call only: reading the batch (audio features) stays fp32
                step["logits"] = model(**batch).logits.float()
            if labels is not None:
                step["labels"] = labels
            if capture is not None:
                recorded = pool(seen.pop("x"), seen.pop("out"), batch) if pool else seen.pop("x")
                step["captured"] = recorded.detach().float()
            for key, value in accelerator.gather_for_metrics(step).items():
                parts[key].append(value.cpu())
    finally:
        if hook is not None:
            hook.remove()
    order = torch.cat(parts["indices"]).argsort()
    joined = {key: torch.cat(values)[order] if values else None for key, values in parts.items()}
    return Predictions(joined["logits"].numpy(), None if joined["labels"] is None else joined["labels"].numpy(),
                       joined["captured"])


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A module call's first input: its first positional argument, else its first tensor keyword argument."""
    if args:
        return args[0]
    return next((value for value in kwargs.values() if isinstance(value, torch.Tensor)), None)


def evaluate_loader(model: torch.nn.Module, loader: Any, accelerator: Accelerator, metrics: Sequence[str]) -> dict[str, float]:
    """Loss and the named metrics over a labelled loader."""
    predicted = predict_loader(model, loader, accelerator, desc="evaluating")
    return scores_from_logits(predicted.logits, predicted.labels, metrics)
