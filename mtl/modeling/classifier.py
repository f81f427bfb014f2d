"""A pretrained checkpoint becomes a classifier for the user's labels (or the same architecture from scratch).

The checkpoint's own classifier (if any) is detached and a new head sized to the labels is attached,
with ``id2label``/``label2id`` in the config so the saved folder names its classes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import CheckpointError
from . import heads
from .heads import build_mlp_head
from .locate import head_parameter_names, output_layer_name
from .pooling import apply_pooling

logger = logging.getLogger(__name__)


def label_config(label_names: Sequence[str]) -> dict[str, Any]:
    """``num_labels``, ``id2label`` and ``label2id`` for a config."""
    names = list(label_names)
    return {"num_labels": len(names), "id2label": dict(enumerate(names)),
            "label2id": {name: i for i, name in enumerate(names)}}


def saved_model_class(saved: dict[str, Any]) -> type | None:
    """The class of a model mtl saved with an MLP head or token pooling (``saved``: its ``config.json``), from
    :mod:`mtl.modeling.heads` itself, so no ``trust_remote_code`` is needed; None for any other model."""
    if not (saved.get("mtl_head") or saved.get("mtl_pooling")):
        return None
    import transformers

    base = (saved.get("mtl_head") or {}).get("base_class") or \
        saved["architectures"][0].removeprefix(heads.CLASS_PREFIX)
    return heads.with_mlp_head(getattr(transformers, base))


def saved_config(checkpoint: str | Path) -> dict[str, Any]:
    """A checkpoint folder's ``config.json`` as a dict; empty when there is none (a Hub id) or it is unreadable."""
    try:
        return json.loads((Path(checkpoint) / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def plain_config(checkpoint: str | Path, **overrides: Any) -> Any | None:
    """The base transformers config of a folder mtl saved with its own head or pooling code (``model_type``
    ``mtl-bert``: a ``BertConfig`` holding the folder's values), so that its config and processor load without
    ``trust_remote_code`` and without transformers' prompt; None for any other checkpoint."""
    saved = saved_config(checkpoint)
    model_type = saved.get("model_type", "")
    if not isinstance(model_type, str) or not model_type.startswith(heads.MODEL_TYPE_PREFIX):
        return None
    import transformers

    values = {key: value for key, value in saved.items() if key not in ("model_type", "auto_map", "transformers_version")}
    return transformers.AutoConfig.for_model(model_type.removeprefix(heads.MODEL_TYPE_PREFIX), **{**values, **overrides})


def build_classifier(auto_class: Any, checkpoint: str | Path, label_names: Sequence[str], **config_overrides: Any) -> nn.Module:
    """Load ``checkpoint`` with a fresh head for ``label_names`` (the old head is dropped if its size differs).

    The weights are loaded in float32 whatever dtype the checkpoint was saved in (many Hub checkpoints are fp16
    or bf16, which transformers 5 would otherwise keep): they are the master weights that training updates, and
    mixed precision casts them per operation.

    Example::

        model = build_classifier(AutoModelForSequenceClassification, folder, ["negative", "positive"])
    """
    import transformers

    auto_class = saved_model_class(saved_config(checkpoint)) or auto_class  # a model mtl saved with its own code
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its load report lists the dropped head; mtl logs what it means
    try:
        model, info = auto_class.from_pretrained(
            str(checkpoint), **label_config(label_names), **config_overrides, dtype=torch.float32,
            ignore_mismatched_sizes=True, output_loading_info=True,
        )
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"cannot load {checkpoint} as {auto_class.__name__}: {str(error).splitlines()[0]}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
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


def attach_mlp_head(model: nn.Module, head: Any) -> str:
    """Replace ``model``'s output layer (:func:`~mtl.modeling.locate.output_layer_name`) by an MLP head shaped as
    ``head`` (a :class:`~mtl.config.sections.HeadConfig`); record its shape in the config; return the layer's name.

    Example::

        attach_mlp_head(model, HeadConfig(type="mlp", hidden=[1024], activation="relu", dropout=0.2))
    """
    name = output_layer_name(model)
    linear = model.get_submodule(name)
    spec = {"path": name, "in_features": linear.in_features, "hidden": list(head.hidden),
            "activation": head.activation, "dropout": head.dropout, "base_class": type(model).__name__}
    model.set_submodule(name, build_mlp_head(spec, model.config.num_labels))
    model.config.mtl_head = spec
    return name


def scratch_model(auto_class: Any, checkpoint: str | Path, label_names: Sequence[str], seed: int,
                  head: Any = None, pooling: str = "auto") -> nn.Module:
    """``checkpoint``'s architecture with random weights (its config, the data's labels, the recipe's head and
    pooling)."""
    import transformers

    config = plain_config(checkpoint, **label_config(label_names)) or \
        transformers.AutoConfig.from_pretrained(str(checkpoint), **label_config(label_names))
    if hasattr(config, "label_names"):  # timm-wrapper configs
        config.label_names = list(label_names)
    torch.manual_seed(seed)
    model = auto_class.from_config(config, dtype=torch.float32)  # float32 master weights, as build_classifier
    if head is not None and head.type == "mlp":  # the same head as the pretrained run, so fit keeps this model
        attach_mlp_head(model, head)
    apply_pooling(model, pooling, Path(checkpoint))
    return model
