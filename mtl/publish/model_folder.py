"""A task's model as a plain transformers folder: written whole or not at all, read back, pushed to the Hub.

The folder holds the weights, the config (label names; ``mtl_task``/``mtl_options``, which plain transformers
ignores and :func:`read_task_folder` reads back) and the processor; an MLP head adds ``mtl_head.py`` (see
:mod:`mtl.modeling.heads`); a LoRA run with ``save_adapter`` adds ``adapter/``, the adapters and head alone as a PEFT
folder. ``task`` below is a fitted :class:`~mtl.task.Task`.

Example::

    save_task(task, "out/model", overwrite=False)    # staged beside out/model, then swapped in by rename
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import transformers

from ..errors import CheckpointError, MtlError, OutputExistsError, describe
from ..fs import atomic_folder, readable, write_json
from ..modeling import heads
from ..modeling.classifier import saved_config, saved_model_class
from .output_dir import mark_as_output, record_contents, refuse_to_replace

logger = logging.getLogger(__name__)

ADAPTER_FOLDER = "adapter"


def write_model_files(task: Any, directory: Path) -> Path:
    """Write model, config and processor of ``task`` into ``directory`` (a staging folder: not atomic by itself)."""
    config = task.model.config
    config.mtl_task = task.name
    config.mtl_options = dataclasses.asdict(task.options)
    if heads.needs_remote_code(config):  # an MLP head or token pooling loads with trust_remote_code=True
        config.auto_map = heads.remote_code_map(task.model, task.spec.model_class)
    task.model.save_pretrained(directory, safe_serialization=True)
    task.processor.save_pretrained(directory)
    if heads.needs_remote_code(config):
        shutil.copyfile(heads.__file__, directory / "mtl_head.py")
        saved = json.loads((directory / "config.json").read_text())  # mtl-bert: stock loading stops loudly
        saved["model_type"] = heads.remote_model_type(saved["model_type"])
        if isinstance(task.processor, transformers.image_processing_utils.BaseImageProcessor):
            saved.setdefault("image_processor_type", type(task.processor).__name__)  # found by model_type before
        write_json(directory / "config.json", saved)
    if getattr(task, "lora_adapter", None):  # lora save_adapter: the adapters and head alone, as PEFT loads them
        task.lora_adapter.save(directory / ADAPTER_FOLDER)
    for item in directory.rglob("*"):
        if item.is_file():
            readable(item)
    return directory


def save_task(task: Any, directory: str | os.PathLike, overwrite: bool) -> Path:
    """Save ``task``'s model as a marked mtl folder, swapped in whole; a non-empty ``directory`` is refused unless
    ``overwrite`` (and then only one that mtl wrote)."""
    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"{directory} is a file; save the model to a folder (a new or empty one)")
    if directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{directory} is not empty; choose another folder or pass overwrite=True")
        refuse_to_replace(directory, [task.source.path] if task.source else [])
    with atomic_folder(directory) as staging:
        mark_as_output(staging)
        task.write_model(staging)
        record_contents(staging)
    logger.info("saved model to %s", directory)
    return directory


def read_task_folder(cls: type, directory: str | os.PathLike, options: dict[str, Any]) -> Any:
    """A ``cls`` task holding the fine-tuned model in ``directory``, with its saved preprocessing options."""
    saved = saved_config(directory)
    made_by = saved.get("mtl_task")
    if made_by and made_by != cls.name:
        raise MtlError(f"{directory} holds a model for task {made_by}, not {cls.name}; load it with that task's class "
                       "(or mtl.registry.load_saved_task, which reads the task from the folder)")
    task = cls(directory, **{**saved.get("mtl_options", {}), **options})
    task.prepare()
    model_class = saved_model_class(saved) or getattr(transformers, cls.spec.model_class)
    task.model = _load_weights(model_class, Path(task.source.path))
    task.label_names = [task.model.config.id2label[i] for i in range(task.model.config.num_labels)]
    return task


def push_task(task: Any, repo_id: str, private: bool, token: str | None) -> str:
    """Write the model and its card into a temporary folder and push it as one commit; return its URL."""
    from .card import write_task_card
    from .hub import check_push_target, push_folder

    repo_id = check_push_target(repo_id, token, setting="push_to_hub(repo_id)")
    with tempfile.TemporaryDirectory() as folder:
        write_task_card(task, task.write_model(Path(folder)), repo_id=repo_id)
        return push_folder(folder, repo_id, private=private, token=token)


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def _load_weights(model_class: Any, folder: Path) -> Any:
    """The saved model; a folder without weights, or with a damaged weight file, is one CheckpointError."""
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(f"{folder}: holds no model weights ({WEIGHT_FILES[0]}); the folder is incomplete: copy "
                              "the whole output folder of the run, or train again")
    try:  # as training loads: fp32 weights
        model, info = model_class.from_pretrained(str(folder), dtype=torch.float32, output_loading_info=True)
    except Exception as error:  # safetensors and torch errors of a truncated or damaged weight file
        raise CheckpointError(f"{folder}: cannot load its weights ({describe(error)}); the weight file is damaged or "
                              "truncated: copy it again from where the run saved it, or train again") from None
    prefix = f"{model.base_model_prefix}."
    untrained = [key for key in info.get("missing_keys") or () if not key.startswith(prefix)]
    if untrained:  # a pretrained backbone's folder: its classifier would be random numbers
        raise CheckpointError(f"{folder}: holds no trained classification head ({', '.join(sorted(untrained)[:4])} "
                              "missing): it is a pretrained checkpoint, not a fine-tuned model. Fine-tune it first "
                              "(task = Task(folder); task.fit(data); task.save(out)) and load that output")
    return model
