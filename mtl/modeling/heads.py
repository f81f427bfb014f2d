"""Classification heads: the checkpoint's own linear layer, or the seeds' MLP (pooled features -> Dense -> classes);
and token pooling for text encoders (the first token's state, or the mean over real tokens): in place of the
pretrained pooler of BERT-like encoders, fed to a head that reads the first token itself (MPNet, RoBERTa,
ELECTRA ``*ClassificationHead``, DeBERTa's ``ContextPooler``), or put in the first token's place for a model whose
own forward reads it (DistilBERT).

This file imports nothing from mtl: a model saved with an MLP head or token pooling carries a verbatim copy of
it as ``mtl_head.py`` and its config names it in ``auto_map``, so plain transformers loads the folder with
``trust_remote_code=True`` (the head's shape is in ``config.mtl_head``, the pooling in ``config.mtl_pooling``)::

    pipeline("image-classification", model="outputs/digits-mlp", trust_remote_code=True)

Such a folder's ``model_type`` is the base one with ``mtl-`` in front (``mtl-bert``): loaded without
``trust_remote_code=True`` transformers stops with its "contains custom code ... pass trust_remote_code=True"
error, rather than quietly building the stock class with a random pooler or classifier in place of the trained one.

Which layer the head replaces is decided outside this file (:func:`mtl.modeling.classifier.attach_mlp_head`).

Example::

    head = build_mlp_head({"in_features": 384, "hidden": [1024], "activation": "relu", "dropout": 0.2}, num_labels=2)
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import transformers
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}
CLASS_PREFIX = "MlpHead"  # also serves token pooling; the name stays for folders saved before pooling existed
TOKEN_POOLINGS = ("cls", "mean")


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


class TokenPooler(nn.Module):
    """A BERT-like pooler without weights: the first token's state (``cls``) or the mean of the states of the real
    tokens (``mean``, padding left out through the attention mask the encoder was called with)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.mask = None  # set by install_token_pooling's hook on every encoder call

    def forward(self, hidden_states):
        if self.mode == "cls":
            return hidden_states[:, 0]
        mask = self.mask
        if mask is None or tuple(mask.shape) != tuple(hidden_states.shape[:2]):
            mask = hidden_states.new_ones(hidden_states.shape[:2])
        weights = mask.unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


FIRST_TOKEN_READERS = ("ClassificationHead", "ContextPooler")  # class-name endings of heads reading states[:, 0]


def first_token_reader(model: nn.Module) -> nn.Module | None:
    """The head module that reads the first token of the encoder's token states itself, when the encoder has no
    pooler (MPNet, RoBERTa, ELECTRA: ``classifier``; DeBERTa: ``pooler`` beside the encoder); else None."""
    for name in ("pooler", "classifier"):
        module = getattr(model, name, None)
        if isinstance(module, nn.Module) and type(module).__name__.endswith(FIRST_TOKEN_READERS):
            return module
    return None


def token_states_pooler(encoder: nn.Module | None) -> nn.Module | None:
    """``encoder``'s pooler when it is fed the token states (BERT's); None when there is none, or when it is a bare
    linear layer fed one token's state (ALBERT's), which no pooling can stand in for."""
    pooler = getattr(encoder, "pooler", None)
    return pooler if isinstance(pooler, nn.Module) and not isinstance(pooler, nn.Linear) else None


FIRST_TOKEN_IN_FORWARD = ("distilbert",)  # model types whose own forward takes the encoder's states[:, 0]


def reads_first_token_in_forward(model: nn.Module) -> bool:
    """Whether ``model``'s own forward takes the first of its encoder's token states (DistilBERT), with no head
    module to put a pooled vector in front of."""
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    return model_type.removeprefix(MODEL_TYPE_PREFIX) in FIRST_TOKEN_IN_FORWARD and first_token_reader(model) is None


def can_pool_tokens(model: nn.Module) -> bool:
    """Whether :func:`install_token_pooling` can change how ``model``'s head reads the token states."""
    encoder = getattr(model, getattr(model, "base_model_prefix", ""), None)
    return token_states_pooler(encoder) is not None or first_token_reader(model) is not None or \
        reads_first_token_in_forward(model)


def install_token_pooling(model: nn.Module, mode: str) -> None:
    """Pool ``model``'s token states as ``mode`` says (``config.mtl_pooling = mode``): a :class:`TokenPooler` in
    place of the encoder's pooler, or, for a head that reads the first token itself, in front of that head (its
    input becomes the pooled vector as a sequence of one token)."""
    encoder = getattr(model, model.base_model_prefix)
    pooler = TokenPooler(mode)
    if token_states_pooler(encoder) is not None:
        encoder.pooler = pooler
    elif reads_first_token_in_forward(model):

        def pool_into_first(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
            states = output[0]  # the model's forward reads states[:, 0] next: put the pooled vector there
            states = torch.cat([pooler(states).unsqueeze(1), states[:, 1:]], dim=1)
            if isinstance(output, tuple):
                return (states, *output[1:])
            output["last_hidden_state"] = states
            return output

        encoder.register_forward_hook(pool_into_first, with_kwargs=True)
    else:
        reader = first_token_reader(model)
        if reader is None:
            raise ValueError(f"{type(model).__name__}: neither a pooler nor a head reading the first token to pool for")

        def pool_first(module: nn.Module, args: tuple) -> tuple | None:
            states = args[0]
            if states.dim() == 2:  # one pooled vector per example already (the frozen-feature cache's inputs)
                return (states.unsqueeze(1), *args[1:])
            if states.dim() != 3 or states.shape[1] == 1:
                return None
            return (pooler(states).unsqueeze(1), *args[1:])

        reader.register_forward_pre_hook(pool_first)

    def keep_mask(module: nn.Module, args: tuple, kwargs: dict) -> None:
        pooler.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    encoder.register_forward_pre_hook(keep_mask, with_kwargs=True)
    model.config.mtl_pooling = mode


MODEL_TYPE_PREFIX = "mtl-"


def remote_code_map(model: nn.Module, auto_class: str) -> dict[str, str]:
    """The ``auto_map`` entries that let ``AutoConfig`` and ``auto_class`` load the MLP head or the token pooling
    with ``trust_remote_code=True``."""
    return {"AutoConfig": f"mtl_head.{CLASS_PREFIX}{type(model.config).__name__.removeprefix(CLASS_PREFIX)}",
            auto_class: f"mtl_head.{CLASS_PREFIX}{type(model).__name__.removeprefix(CLASS_PREFIX)}"}


def remote_model_type(base_model_type: str) -> str:
    """The ``model_type`` of a saved folder that needs this file: ``mtl-`` + the base one (``mtl-bert``)."""
    return base_model_type if base_model_type.startswith(MODEL_TYPE_PREFIX) else MODEL_TYPE_PREFIX + base_model_type


@functools.cache
def with_remote_model_type(base: type) -> type:
    """A subclass of a transformers config class whose ``model_type`` says the folder needs this file."""
    name = CLASS_PREFIX + base.__name__
    return type(name, (base,), {"model_type": remote_model_type(base.model_type), "__module__": __name__,
                                "__qualname__": name})


def needs_remote_code(config: Any) -> bool:
    """Whether a model with this config loads only through this file (an MLP head or token pooling)."""
    return bool(getattr(config, "mtl_head", None) or getattr(config, "mtl_pooling", None))


@functools.cache
def with_mlp_head(base: type) -> type:
    """A subclass of a transformers model class with the MLP head of ``config.mtl_head`` and the token pooling of
    ``config.mtl_pooling``, each when the config has it."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, config, *args, **kwargs)
        if getattr(config, "mtl_head", None):
            self.set_submodule(config.mtl_head["path"], build_mlp_head(config.mtl_head, config.num_labels))
        if getattr(config, "mtl_pooling", None):
            install_token_pooling(self, config.mtl_pooling)

    name = CLASS_PREFIX + base.__name__
    return type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name,
                                "config_class": with_remote_model_type(base.config_class)})


def build_mlp_head(spec: dict[str, Any], num_labels: int) -> MlpHead:
    """The :class:`MlpHead` that ``spec`` (``config.mtl_head``) describes, with ``num_labels`` outputs."""
    return MlpHead(spec["in_features"], list(spec["hidden"]), num_labels, spec["activation"], spec["dropout"])


def __getattr__(name: str) -> type:
    """``MlpHead<TransformersClass>`` (a model or its config), resolved when transformers looks the class up in this
    module."""
    base = getattr(transformers, name[len(CLASS_PREFIX):], None) if name.startswith(CLASS_PREFIX) else None
    if isinstance(base, type) and issubclass(base, transformers.PretrainedConfig):
        return with_remote_model_type(base)
    if base is not None:
        return with_mlp_head(base)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
