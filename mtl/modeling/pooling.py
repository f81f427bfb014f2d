"""How a text encoder's token states become one vector for the head (recipe ``model.pooling``).

``pooler``: the checkpoint's own pooler (BERT: dense + tanh over the first token, trained for next-sentence
prediction); ``cls``: the first token's state as it is; ``mean``: the mean over the real tokens. ``auto`` takes
what the checkpoint was trained for: a sentence-transformers checkpoint says so in ``1_Pooling/config.json``
(all-MiniLM-L6-v2 and all-mpnet-base-v2: mean), any other keeps its pooler. Text encoders with a pooler module
(BERT-like) have it replaced; those whose head reads the first token itself (MPNet, RoBERTa, ELECTRA, DeBERTa) get
the pooled vector in its place, so for them ``cls`` is what ``pooler`` already does (plus the head's own layers).
Audio and image classifiers already average over frames or pool spatially.

Example::

    mode = apply_pooling(model, "auto", Path("checkpoint/folder"))   # "mean" for a sentence-transformers MiniLM
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from torch import nn

from ..errors import MtlError
from .heads import TOKEN_POOLINGS, can_pool_tokens, install_token_pooling

logger = logging.getLogger(__name__)

POOLINGS = ("auto", "pooler", *TOKEN_POOLINGS)


def trained_pooling(folder: Path) -> str | None:
    """The pooling a sentence-transformers checkpoint was trained with (``cls`` or ``mean``), or None."""
    config_file = Path(folder) / "1_Pooling" / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    return None


def resolve_pooling(model: nn.Module, requested: str, checkpoint_folder: Path | None) -> str:
    """The pooling ``requested`` (one of :data:`POOLINGS`) means for ``model``: ``pooler``, ``cls`` or ``mean``."""
    if requested not in POOLINGS:
        raise MtlError(f"model.pooling: {requested!r} is not a pooling; use one of {list(POOLINGS)}")
    poolable = can_pool_tokens(model)
    if requested == "auto":  # a model mtl saved with token pooling keeps it; a sentence-transformers one its own
        trained = getattr(model.config, "mtl_pooling", None) or \
            (trained_pooling(checkpoint_folder) if checkpoint_folder else None)
        if trained == "mean" and not poolable:
            logger.warning("pooling: %s was trained to be read as the mean of its token states, but %s's head reads "
                           "pooled features mtl cannot change. Fine-tuning the encoder (model.freeze=none) adapts "
                           "it; a frozen encoder reads it poorly",
                           checkpoint_folder.name if checkpoint_folder else "the checkpoint", type(model).__name__)
        return trained if trained and poolable else "pooler"
    if requested != "pooler" and not poolable:
        raise MtlError(f"model.pooling: {type(model).__name__} reads its encoder's output in a way mtl cannot "
                       "change (mtl pools where a pooler is fed the token states, as in BERT, or where the head "
                       "reads the first token itself, as in RoBERTa, ELECTRA, DeBERTa, MPNet and DistilBERT; not "
                       "ALBERT's, nor image or audio models); remove model.pooling or set it to auto")
    return requested


def current_pooling(model: nn.Module) -> str:
    """The pooling ``model`` uses now."""
    return getattr(model.config, "mtl_pooling", None) or "pooler"


def apply_pooling(model: nn.Module, requested: str, checkpoint_folder: Path | None) -> str:
    """Set ``model``'s pooling as ``requested`` (one of :data:`POOLINGS`); return the pooling in use."""
    mode = resolve_pooling(model, requested, checkpoint_folder)
    if mode != current_pooling(model):
        install_token_pooling(model, mode)
        logger.info("pooling: %s of the token states feeds the head%s", "the mean" if mode == "mean" else "the first",
                    " (as the checkpoint was trained)" if requested == "auto" else "")
    return mode
