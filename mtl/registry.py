"""The task registry: a task name maps to one Task class, registered with :func:`register_task`.

Example::

    @register_task("text-sentiment")
    class TextSentiment(Task):
        spec = TaskSpec(...)

    get_task("text-sentiment")   # -> TextSentiment
    get_task("text-sentimnt")    # MtlError: unknown task ...; did you mean 'text-sentiment'?
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Callable, TypeVar

from .errors import MtlError

if TYPE_CHECKING:
    from .task import Task

T = TypeVar("T", bound="type[Task]")

_TASKS: dict[str, type] = {}


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator that registers a Task subclass under ``name``; duplicate names are errors."""

    def decorate(cls: T) -> T:
        if name in _TASKS and _TASKS[name] is not cls:
            raise ValueError(f"task name {name!r} is already registered by {_TASKS[name].__qualname__}")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return decorate


def _load_builtin_tasks() -> None:
    importlib.import_module("mtl.tasks")


def known_tasks() -> list[str]:
    """Names of all registered tasks, built-in ones included."""
    _load_builtin_tasks()
    return sorted(_TASKS)


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """A ``"; did you mean 'x'?"`` suffix for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def get_task(name: str) -> type[Task]:
    """The Task class registered under ``name``; an unknown name lists the known ones."""
    _load_builtin_tasks()
    if name not in _TASKS:
        names = sorted(_TASKS)
        raise MtlError(f"unknown task {name!r}{did_you_mean(name, names)} Known tasks: {', '.join(names)}.")
    return _TASKS[name]
