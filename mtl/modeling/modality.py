"""Which kind of data a checkpoint reads, from its ``config.json``: a text task given an image model is named as
such before its processor fails with a message about tokenizer files.

Example::

    refuse_other_modality(Path("converted/efficientnet"), "text", "timm/tf_efficientnet_lite0.in1k", "...")
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers.models.auto import modeling_auto

from ..errors import CheckpointError

MODALITY_MODELS = {  # transformers' own lists of the architectures that classify each kind of input
    "text": modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    "image": modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    "audio": modeling_auto.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
}


CLASSIFIER_SUFFIXES = {"text": "ForSequenceClassification", "image": "ForImageClassification",
                       "audio": "ForAudioClassification"}


def checkpoint_modalities(folder: Path) -> tuple[str | None, list[str]]:
    """The ``model_type`` in ``folder/config.json`` and the kinds of input transformers classifies with it, or
    that its classifier class names (an mtl output's own ``mtl-bert``); empty when neither tells."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
        model_type = config.get("model_type")
        classes = [*(config.get("architectures") or []), *(config.get("auto_map") or {}).values()]
    except (OSError, ValueError, AttributeError, TypeError):
        return None, []
    kinds = [kind for kind, models in MODALITY_MODELS.items() if model_type in models]
    return model_type, kinds or [kind for kind, suffix in CLASSIFIER_SUFFIXES.items()
                                 if any(str(name).endswith(suffix) for name in classes)]


def refuse_other_modality(folder: Path, modality: str, checkpoint: str, suggestion: str) -> None:
    """A CheckpointError when the checkpoint in ``folder`` classifies other kinds of input than ``modality`` only."""
    model_type, kinds = checkpoint_modalities(folder)
    if kinds and modality not in kinds:
        kind = " and ".join(kinds)
        raise CheckpointError(f"model.checkpoint {checkpoint} is {_a(kind)} {kind} model ({model_type}); this task "
                              f"classifies {modality} inputs, so it needs {_a(modality)} {modality} checkpoint such "
                              f"as {suggestion} (python -m mtl.run RECIPE --list-checkpoints lists those mtl serves)")


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
