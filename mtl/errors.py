"""Errors a user can fix: the CLI prints their message and exits with code 2, without a traceback.

Also :func:`did_you_mean`, the suggestion every "unknown name" message carries, and :func:`first_few`, how a
message lists many bad rows.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence


ALIASES = {"lr": "learning_rate", "num_train_epochs": "epochs", "num_epochs": "epochs", "bs": "batch_size",
           "per_device_train_batch_size": "batch_size", "per_device_eval_batch_size": "eval_batch_size",
           "lr_scheduler_type": "scheduler", "fp16": "mixed_precision",
           "bf16": "mixed_precision", "patience": "early_stopping_patience", "model_name_or_path": "checkpoint"}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix for the closest choice, or an empty string.

    Example::

        did_you_mean("epoch", ["epochs", "seed"])   # "; did you mean 'epochs'?"
    """
    choices = list(choices)
    if ALIASES.get(word) in choices:  # names other libraries use for the same setting
        return f"; did you mean {ALIASES[word]!r}?"
    by_case = {choice.lower(): choice for choice in choices}  # MEAN -> mean: case alone is the closest slip
    close = difflib.get_close_matches(word.lower(), list(by_case), n=1, cutoff=0.6)
    return f"; did you mean {by_case[close[0]]!r}?" if close else ""


def first_few(items: Sequence[str], limit: int = 5, separator: str = ", ") -> str:
    """The first ``limit`` items joined, then how many more: what a message names when many rows are bad.

    Example::

        first_few(["3", "5", "8", "10", "12", "14", "20"])   # "3, 5, 8, 10, 12 and 2 more"
    """
    shown = separator.join(items[:limit])
    joint = " and" if separator.strip() == "," else f"{separator.rstrip()} and"  # "a, b and 2 more"; "a; b; and 2 more"
    return shown + (f"{joint} {len(items) - limit} more" if len(items) > limit else "")


def describe(error: BaseException, limit: int = 300) -> str:
    """``"TypeName: first line of the message"`` of a library's exception, for a one-line error of ours."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__


class MtlError(Exception):
    """An error caused by the user's input (recipe, data, checkpoint, output folder).

    The message names the field, file or row and says how to fix it.
    """


class RecipeError(MtlError):
    """One or more problems in a recipe; the message lists all of them."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = f"recipe error: {where}{self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"recipe error: {where}{len(self.problems)} problems\n{lines}"
        super().__init__(message)


class DataError(MtlError):
    """The data cannot be used as given (missing column, unreadable row, unknown label...)."""


class CheckpointError(MtlError):
    """No source could serve a checkpoint, or it is not a usable model folder."""


class TrainingDivergedError(MtlError):
    """The training loss became NaN or infinite: the run stops, keeps its last good checkpoint and saves no model."""


class OutputExistsError(MtlError):
    """The output folder already holds results and neither --overwrite nor --resume was given."""
