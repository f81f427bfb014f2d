"""Classification heads: the checkpoint's own linear layer, or the seeds' MLP (pooled features -> Dense -> classes).

This file imports nothing from mtl: a model saved with an MLP head carries a verbatim copy of it as
``mtl_head.py`` and its config names it in ``auto_map``, so plain transformers loads the folder with
``trust_remote_code=True`` (the head's shape is in ``config.mtl_head``)::

    pipeline("image-classification", model="outputs/digits-mlp", trust_remote_code=True)

Example::

    attach_mlp_head(model, HeadConfig(type="mlp", hidden=[1024], activation="relu", dropout=0.2))  # mtl.config
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


def output_layer_name(model: nn.Module) -> str:
    """The name of the last linear layer that produces one logit per label (the one an MLP head replaces)."""
    num_labels = model.config.num_labels
    found = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and module.out_features == num_labels]
    if not found:
        raise ValueError(f"{type(model).__name__} has no linear layer with {num_labels} outputs to replace")
    return found[-1]


def attach_mlp_head(model: nn.Module, head: Any) -> str:
    """Replace ``model``'s output layer by an :class:`MlpHead` shaped as ``head`` (a
    :class:`~mtl.config.sections.HeadConfig`); record its shape in the config; return the layer's name."""
    name = output_layer_name(model)
    linear = model.get_submodule(name)
    spec = {"path": name, "in_features": linear.in_features, "hidden": list(head.hidden),
            "activation": head.activation, "dropout": head.dropout, "base_class": type(model).__name__}
    model.set_submodule(name, _build(spec, model.config.num_labels))
    model.config.mtl_head = spec
    return name


def remote_code_map(model: nn.Module, auto_class: str) -> dict[str, str]:
    """The ``auto_map`` entry that lets ``auto_class.from_pretrained(..., trust_remote_code=True)`` load the MLP head."""
    return {auto_class: f"mtl_head.{CLASS_PREFIX}{model.config.mtl_head['base_class']}"}


@functools.cache
def with_mlp_head(base: type) -> type:
    """A subclass of a transformers model class whose output layer is the MLP described by ``config.mtl_head``."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, config, *args, **kwargs)
        self.set_submodule(config.mtl_head["path"], _build(config.mtl_head, config.num_labels))

    name = CLASS_PREFIX + base.__name__
    return type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})


def _build(spec: dict[str, Any], num_labels: int) -> MlpHead:
    return MlpHead(spec["in_features"], list(spec["hidden"]), num_labels, spec["activation"], spec["dropout"])


def __getattr__(name: str) -> type:
    """``MlpHead<TransformersClass>``, resolved when transformers looks the class up in this module."""
    if name.startswith(CLASS_PREFIX) and hasattr(transformers, name[len(CLASS_PREFIX):]):
        return with_mlp_head(getattr(transformers, name[len(CLASS_PREFIX):]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
