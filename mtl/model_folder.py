"""A task's model as a plain transformers folder: written atomically, read back, pushed to the Hub.

The folder holds the weights, the config (label names; ``mtl_task``/``mtl_options``, which plain transformers
ignores and :func:`load_task` reads back) and the processor; an MLP head adds ``mtl_head.py`` (see
:mod:`mtl.heads`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import transformers

from .errors import OutputExistsError
from .heads import remote_code_map, with_mlp_head
from .outputs import mark_as_output, readable, refuse_to_replace, remove_folder

if TYPE_CHECKING:
    from .task import Task

logger = logging.getLogger(__name__)


def write_model_folder(task: Task, directory: Path) -> Path:
    """Save model and processor into ``directory`` atomically (temporary folder, then renames)."""
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-model-", dir=directory))
    config = task.model.config
    config.mtl_task = task.name
    config.mtl_options = dataclasses.asdict(task.options)
    if getattr(config, "mtl_head", None):  # an MLP head loads with trust_remote_code=True
        config.auto_map = remote_code_map(task.model, task.spec.model_class)
    try:
        task.model.save_pretrained(staging, safe_serialization=True)
        task.processor.save_pretrained(staging)
        if getattr(config, "mtl_head", None):
            shutil.copyfile(Path(__file__).with_name("heads.py"), staging / "mtl_head.py")
        for item in staging.iterdir():
            if item.is_file():
                readable(item)
            target = directory / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("saved model to %s", directory)
    return directory


def save_task(task: Task, directory: str | os.PathLike, overwrite: bool) -> Path:
    """:func:`write_model_folder`, refusing a non-empty folder unless ``overwrite`` (and then only one mtl wrote)."""
    directory = Path(directory).expanduser()
    if directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{directory} is not empty; choose another folder or pass overwrite=True")
        refuse_to_replace(directory, [task.source.path] if task.source else [])
        remove_folder(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mark_as_output(directory)
    return task.write_model(directory)


def load_task(cls: type[Task], directory: str | os.PathLike, options: dict[str, Any]) -> Task:
    """A ``cls`` task holding the fine-tuned model in ``directory``, with its saved preprocessing options."""
    config_file = Path(directory) / "config.json"
    saved = json.loads(config_file.read_text()) if config_file.is_file() else {}
    task = cls(directory, **{**saved.get("mtl_options", {}), **options})
    task.prepare()
    mlp_head = saved.get("mtl_head")
    model_class = with_mlp_head(getattr(transformers, mlp_head["base_class"])) if mlp_head else \
        getattr(transformers, cls.spec.model_class)
    task.model = model_class.from_pretrained(str(task.source.path))
    task.label_names = [task.model.config.id2label[i] for i in range(task.model.config.num_labels)]
    return task


def push_task(task: Task, repo_id: str, private: bool, token: str | None) -> str:
    """Write the model and its card into a temporary folder and push it as one commit; return its URL."""
    from .hub import check_push_target, push_folder
    from .model_card import write_task_card

    repo_id = check_push_target(repo_id, token)
    with tempfile.TemporaryDirectory() as folder:
        write_task_card(task, task.write_model(Path(folder)), repo_id=repo_id)
        return push_folder(folder, repo_id, private=private, token=token)
