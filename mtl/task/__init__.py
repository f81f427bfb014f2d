"""The Task API shared by every task: :class:`Task` (fit, evaluate, predict, save), :class:`TaskSpec` and
:func:`register_task`. Task modules (``mtl.tasks`` and third-party packages) import from here.

Example::

    from mtl.task import Task, TaskSpec, register_task
"""

from .base import NoOptions, Task
from .spec import TaskSpec, register_task

__all__ = ["NoOptions", "Task", "TaskSpec", "register_task"]
