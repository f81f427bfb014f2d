"""Freezing specs: which parameters of a pretrained classifier train (recipe ``model.freeze``).

* ``"none"``: everything trains (full fine-tuning);
* ``"backbone"``: only the classification head trains;
* ``{"top_k": N}``: the last N blocks of the backbone, what follows them, and the head train;
* ``{"patterns": ["bert.embeddings.*", ...]}``: parameters whose names match a glob are frozen.

Only the spec's form is checked here; :mod:`mtl.modeling.freezing` applies it to a model.

Example::

    parse_freeze({"top_k": 2})   # FreezeSpec(mode='top_k', top_k=2, patterns=())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class FreezeSpec:
    """A parsed freezing spec."""

    mode: Literal["none", "backbone", "top_k", "patterns"] = "none"
    top_k: int = 0
    patterns: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.mode == "top_k":
            return f"top_k={self.top_k} (last {self.top_k} blocks and the head train)"
        if self.mode == "patterns":
            return f"patterns={list(self.patterns)} frozen"
        return {"none": "none (full fine-tuning)", "backbone": "backbone (only the head trains)"}[self.mode]


def parse_freeze(value: str | dict[str, Any] | FreezeSpec | None) -> FreezeSpec:
    """Parse a freezing spec; raise ValueError saying what is accepted."""
    accepted = "use 'none', 'backbone', {top_k: N} or {patterns: [glob, ...]}"
    if value is None:
        return FreezeSpec()
    if isinstance(value, FreezeSpec):
        return value
    if isinstance(value, str):
        if value in ("none", "backbone"):
            return FreezeSpec(mode=value)
        raise ValueError(f"unknown freezing spec {value!r}; {accepted}")
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "top_k":
            if isinstance(arg, bool) or not isinstance(arg, int) or arg < 1:
                raise ValueError(f"top_k must be a positive integer, got {arg!r}")
            return FreezeSpec(mode="top_k", top_k=arg)
        if key == "patterns":
            patterns = [arg] if isinstance(arg, str) else arg
            if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
                raise ValueError(f"patterns must be a non-empty list of glob strings, got {arg!r}")
            return FreezeSpec(mode="patterns", patterns=tuple(patterns))
    raise ValueError(f"cannot read freezing spec {value!r}; {accepted}")
