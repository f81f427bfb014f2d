"""Classification heads: the checkpoint's own linear layer, or the seeds' MLP (pooled features -> Dense -> classes).

This file imports nothing from mtl: a model saved with an MLP head carries a verbatim copy of it as
``mtl_head.py`` and its config names it in ``auto_map``, so plain transformers loads the folder with
``trust_remote_code=True`` (the head's shape is in ``config.mtl_head``)::

    pipeline("image-classification", model="outputs/digits-mlp", trust_remote_code=True)

Which layer the head replaces is decided outside this file (:func:`mtl.modeling.classifier.attach_mlp_head`).

Example::

    head = build_mlp_head({"in_features": 384, "hidden": [1024], "activation": "relu", "dropout": 0.2}, num_labels=2)
"""

from __future__ import annotations

import functools
from typing import Any

import transformers
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}
CLASS_PREFIX = "MlpHead"


class MlpHead(nn.Module):
    """Linear -> activation -> dropout for each hidden width, then a linear layer to the classes."""

    def __init__(self, in_features: int, hidden: list[int], num_labels: int, activation: str = "relu",
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            in_features = width
        layers.append(nn.Linear(in_features, num_labels))
        self.layers = nn.Sequential(*layers)

    def forward(self, features):
        return self.layers(features)


def remote_code_map(model: nn.Module, auto_class: str) -> dict[str, str]:
    """The ``auto_map`` entry that lets ``auto_class.from_pretrained(..., trust_remote_code=True)`` load the MLP head."""
    return {auto_class: f"mtl_head.{CLASS_PREFIX}{model.config.mtl_head['base_class']}"}


@functools.cache
def with_mlp_head(base: type) -> type:
    """A subclass of a transformers model class whose output layer is the MLP described by ``config.mtl_head``."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, config, *args, **kwargs)
        self.set_submodule(config.mtl_head["path"], build_mlp_head(config.mtl_head, config.num_labels))

    name = CLASS_PREFIX + base.__name__
    return type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})


def build_mlp_head(spec: dict[str, Any], num_labels: int) -> MlpHead:
    """The :class:`MlpHead` that ``spec`` (``config.mtl_head``) describes, with ``num_labels`` outputs."""
    return MlpHead(spec["in_features"], list(spec["hidden"]), num_labels, spec["activation"], spec["dropout"])


def __getattr__(name: str) -> type:
    """``MlpHead<TransformersClass>``, resolved when transformers looks the class up in this module."""
    if name.startswith(CLASS_PREFIX) and hasattr(transformers, name[len(CLASS_PREFIX):]):
        return with_mlp_head(getattr(transformers, name[len(CLASS_PREFIX):]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
