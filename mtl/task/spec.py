"""What a task is (:class:`TaskSpec`) and how it is registered (:func:`register_task`).

Task modules decorate their class; :mod:`mtl.registry` finds them (built-ins in ``mtl.tasks``, third-party
tasks through the ``mtl.tasks`` entry-point group) and looks them up by name.

Example::

    @register_task("text-sentiment")
    class TextSentiment(Task):
        spec = TaskSpec(modality="text", ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T", bound=type)

REGISTERED: dict[str, type] = {}  # task name -> Task class, filled by @register_task


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its modality, transformers Auto classes, checkpoints, input columns and file types."""

    modality: str  # a word for people and cards ("text", "image", "audio"); shared code never branches on it
    model_class: str  # a transformers Auto class name, e.g. "AutoModelForSequenceClassification"
    processor_class: str  # e.g. "AutoTokenizer"
    default_checkpoint: str
    input_column: str  # canonical input column name after loading, e.g. "text"
    input_candidates: tuple[str, ...]  # column names auto-detected as the input
    pipeline_tag: str  # the transformers pipeline that loads the saved folder
    checkpoints: tuple[str, ...] = ()  # other checkpoints it can use (offline mirrors first, then Hub-only ids)
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    file_suffixes: tuple[str, ...] = ()  # input files `mtl.predict` collects from folders (lower case, with dot)
    intended_use: str = "inputs like those it was trained on"  # the model card's "made for ..."

    @property
    def candidates(self) -> tuple[str, ...]:
        """Every checkpoint the task lists: the default first, then ``checkpoints``."""
        return tuple(dict.fromkeys((self.default_checkpoint, *self.checkpoints)))


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator that registers a Task subclass under ``name``; a name taken by another class is an error
    (the same class registered again, as when its module is reloaded, replaces itself)."""

    def decorate(cls: T) -> T:
        known = REGISTERED.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"task name {name!r} is already registered by {known.__module__}.{known.__qualname__}")
        cls.name = name
        REGISTERED[name] = cls
        return cls

    return decorate
