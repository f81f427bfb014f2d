"""The task registry: task names to Task classes, with built-in tasks discovered and third-party tasks plugged in.

Built-in tasks are the modules of ``mtl.tasks`` (the repository's ``tasks/`` folder); a separately installed
package adds its own through the ``mtl.tasks`` entry-point group, with no change to mtl::

    # pyproject.toml of my-task
    [project.entry-points."mtl.tasks"]
    token-tagging = "my_task.module:TokenTagging"

Example::

    get_task("text-sentiment")   # -> TextSentiment
    get_task("text-sentimnt")    # MtlError: unknown task ...; did you mean 'text-sentiment'?
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path

from .errors import MtlError, did_you_mean
from .task import Task
from .task.spec import REGISTERED, register_task

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mtl.tasks"
BUILTIN_PACKAGE = "mtl.tasks"
_discovered = False


def discover_tasks() -> None:
    """Import every built-in task module and load every ``mtl.tasks`` entry point (once per process)."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module(BUILTIN_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__, f"{BUILTIN_PACKAGE}."):
        importlib.import_module(module.name)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
        except Exception as error:  # a broken plug-in must not take the built-in tasks down with it
            logger.warning("task plug-in %s (%s) cannot be loaded: %s", entry.name, entry.value, error)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            logger.warning("task plug-in %s (%s) is not a Task subclass; ignored", entry.name, entry.value)
            continue
        if REGISTERED.get(entry.name) is not cls:
            register_task(entry.name)(cls)
    _discovered = True


def known_tasks() -> list[str]:
    """Names of all registered tasks: built-in, plug-in and any registered in this process."""
    discover_tasks()
    return sorted(REGISTERED)


def get_task(name: str) -> type[Task]:
    """The Task class registered under ``name``; an unknown name lists the known ones."""
    discover_tasks()
    if name not in REGISTERED:
        names = sorted(REGISTERED)
        raise MtlError(f"unknown task {name!r}{did_you_mean(name, names)} Known tasks: {', '.join(names)}. A task "
                       f"from another package is known once that package is installed (it registers under the "
                       f"{ENTRY_POINT_GROUP!r} entry points)")
    return REGISTERED[name]


def _unfinished_run(folder: Path) -> str:
    """What a folder holding a run's checkpoints but no model yet is, and what to do about it."""
    from .publish.output_dir import MARKER_FILE, previous_output
    from .training.state import checkpoint_folders

    try:
        pid = json.loads((folder / MARKER_FILE).read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        pid = None
    if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
        return f"{folder} is still being written by a training run (process {pid}); wait until it saves its model"
    previous = previous_output(folder.absolute())
    kept = f"; the model it replaces is kept in {previous} until then" if (previous / "config.json").is_file() else ""
    if not checkpoint_folders(folder / "checkpoints"):
        return (f"{folder} holds a run that stopped before its first checkpoint, so there is no model and nothing to "
                f"resume; run it again: python -m mtl.run {folder / 'recipe.yaml'} --overwrite{kept}")
    return (f"{folder} holds a run that stopped before saving its model (checkpoints/ only): finish it with "
            f"python -m mtl.run {folder / 'recipe.yaml'} --resume{kept}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def load_saved_task(folder: str | Path) -> Task:
    """The Task that saved ``folder`` (its config names the task), loaded with the fine-tuned model."""
    folder = Path(folder).expanduser()
    config = folder / "config.json"
    if not folder.exists():
        raise MtlError(f"{folder} does not exist; give the output.dir of a run")
    if not config.is_file() and (folder / "checkpoints").is_dir():
        raise MtlError(_unfinished_run(folder))
    if not config.is_file():
        raise MtlError(f"{folder} is not a model folder (no config.json); give the output.dir of a run")
    try:
        name = json.loads(config.read_text()).get("mtl_task")
    except (json.JSONDecodeError, AttributeError):
        raise MtlError(f"{config} is not valid JSON; the folder is damaged, save or train the model again") from None
    if not name:
        raise MtlError(f"{config} does not say which mtl task made it (no mtl_task); use a folder written by mtl")
    return get_task(name).load(folder)
