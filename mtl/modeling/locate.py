"""Where a classifier's head is: the one answer that freezing, optimizer groups, MLP heads and the feature cache share.

The head is everything outside the pretrained backbone (the child named by ``base_model_prefix``): the
checkpoint's ``classifier``, ``score``, DistilBERT's ``pre_classifier`` + ``classifier``, wav2vec2's
``projector`` + ``classifier``; a timm backbone keeps its classifier inside (``get_classifier()``). A model
without a backbone child (a bare head, Whisper's audio classifier) counts the children named in
:data:`HEAD_MODULE_NAMES`.

Example::

    head = classifier_head(model)
    head.name, head.parameter_names      # "classifier", {"classifier.weight", "classifier.bias"}
    output_layer_name(model)             # "classifier": the layer an MLP head replaces
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

HEAD_MODULE_NAMES = ("classifier", "score", "pre_classifier", "projector", "head", "fc", "mlp_head")


@dataclass(frozen=True, eq=False)
class ClassifierHead:
    """Where a model's classification head is.

    ``parts`` are the head's modules by full name, in model order (one for most models, two for DistilBERT or
    wav2vec2); ``parameter_names`` are all their parameters; ``name``/``module`` is the smallest module that holds
    every head parameter and no other one, or None when the head is split over several modules (or absent).
    """

    parts: tuple[tuple[str, nn.Module], ...]
    parameter_names: frozenset[str]
    name: str | None
    module: nn.Module | None


def classifier_head(model: nn.Module) -> ClassifierHead:
    """Locate the classification head of ``model`` (the parts, their parameters and the module holding them all)."""
    parts = tuple((name, module) for name, module in _head_parts(model) if any(True for _ in module.parameters()))
    parameter_names = frozenset(p for name, module in parts for p, _ in module.named_parameters(prefix=name))
    name = module = None
    if len(parts) == 1:  # the innermost module whose parameters are exactly the head's (pre-order: deepest last)
        part_name, part = parts[0]
        for inner_name, inner in part.named_modules(prefix=part_name):
            if {p for p, _ in inner.named_parameters(prefix=inner_name)} == parameter_names:
                name, module = inner_name, inner
    return ClassifierHead(parts, parameter_names, name, module)


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the classification-head parameters: everything outside the pretrained backbone."""
    return set(classifier_head(model).parameter_names)


def output_layer_name(model: nn.Module) -> str:
    """The last linear layer inside the head that produces one logit per label (the one an MLP head replaces)."""
    num_labels = model.config.num_labels
    found = [name for part_name, part in classifier_head(model).parts
             for name, module in part.named_modules(prefix=part_name)
             if isinstance(module, nn.Linear) and module.out_features == num_labels]
    if not found:
        raise ValueError(f"{type(model).__name__} has no linear layer with {num_labels} outputs in its head to replace")
    return found[-1]


def _head_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    backbone_name = _backbone_name(model)
    parts = []
    for child_name, child in model.named_children():
        if child_name == backbone_name:
            get_classifier = getattr(child, "get_classifier", None)  # timm models keep their head inside
            if callable(get_classifier):
                head = get_classifier()
                prefix = {id(m): n for n, m in child.named_modules()}.get(id(head))
                if prefix:
                    parts.append((f"{child_name}.{prefix}", head))
        elif backbone_name is not None or child_name in HEAD_MODULE_NAMES:
            parts.append((child_name, child))
    return parts


def _backbone_name(model: nn.Module) -> str | None:
    prefix = getattr(model, "base_model_prefix", None)
    if prefix and isinstance(getattr(model, prefix, None), nn.Module) and getattr(model, prefix) is not model:
        return prefix
    return None
