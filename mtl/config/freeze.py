"""Freezing specs: which parameters of a pretrained classifier train (recipe ``model.freeze``).

* ``"none"``: everything trains (full fine-tuning);
* ``"backbone"``: only the classification head trains;
* ``{"top_k": N}``: the last N blocks of the backbone, what follows them, and the head train;
* ``{"patterns": ["bert.embeddings.*", ...]}``: parameters whose names match a glob are frozen;
* ``{"lora": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": null, "save_adapter": false}}`` (every key
  optional; unset ``r`` is the family's default, 8, or 4 for convolutional backbones, unset alpha ``2r``): the
  backbone stays frozen and low-rank adapters (LoRA, through ``peft``) train beside the chosen layers, with the
  head; merged into the weights when training ends (``save_adapter``: also kept alone as a PEFT folder);
* ``{"gradual": {"every": N}}``: gradual unfreezing (ULMFiT): the head alone trains first, then every N epochs
  one more block from the top, until everything trains.

Only the spec's form is checked here; :mod:`mtl.modeling.freezing` applies it to a model.

Example::

    parse_freeze({"top_k": 2})   # FreezeSpec(mode='top_k', top_k=2, patterns=())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..strategies import freeze_strategies


@dataclass(frozen=True)
class LoraSettings:
    """LoRA's rank, scaling numerator (``alpha / r`` scales the update), dropout, and the layers it adapts
    (module names or name suffixes; None: the default for the architecture family). A rank of None is the
    family's default (8; 4 for convolutional backbones), an alpha of None twice the rank."""

    r: int | None = None
    alpha: float | None = None
    dropout: float = 0.1
    target_modules: tuple[str, ...] | None = None
    save_adapter: bool = False  # also write the adapters and the head alone as a PEFT folder (``adapter/``)


FREEZE_MODES = ("none", "backbone", "top_k", "patterns", "lora", "gradual")


@dataclass(frozen=True)
class FreezeSpec:
    """A parsed freezing spec."""

    mode: str = "none"  # one of FREEZE_MODES, or a strategy registered in mtl.strategies
    top_k: int = 0
    patterns: tuple[str, ...] = ()
    lora: LoraSettings | None = None
    every: int = 1  # gradual: epochs between unfreezing steps
    options: dict[str, Any] = field(default_factory=dict)  # a registered strategy's settings

    def describe(self) -> str:
        strategy = freeze_strategies().get(self.mode) if self.mode not in FREEZE_MODES else None
        if strategy is not None:
            return strategy.describe(self.options)
        if self.mode == "lora" and self.lora:
            targets = list(self.lora.target_modules) if self.lora.target_modules else "default"
            rank = self.lora.r if self.lora.r is not None else "default"
            alpha = f"{self.lora.alpha:g}" if self.lora.alpha is not None else "2r"
            return f"lora (r={rank}, alpha={alpha}, targets {targets}; backbone frozen, head trains)"
        if self.mode == "gradual":
            return f"gradual (the head, then one more block from the top every {self.every} epochs)"
        if self.mode == "top_k":
            return f"top_k={self.top_k} (last {self.top_k} blocks and the head train)"
        if self.mode == "patterns":
            return f"patterns={list(self.patterns)} frozen"
        return {"none": "none (full fine-tuning)", "backbone": "backbone (only the head trains)"}[self.mode]


def parse_freeze(value: str | dict[str, Any] | FreezeSpec | None) -> FreezeSpec:
    """Parse a freezing spec; raise ValueError saying what is accepted."""
    strategies = freeze_strategies()
    accepted = ("use 'none', 'backbone', {top_k: N}, {patterns: [glob, ...]}, {lora: {r: 8, alpha: 16}}, "
                "{gradual: {every: N}}" + "".join(f", {name!r}" for name in sorted(strategies)))
    if value is None:
        return FreezeSpec()
    if isinstance(value, FreezeSpec):
        if value.mode not in FREEZE_MODES and value.mode not in strategies:
            raise ValueError(f"FreezeSpec mode {value.mode!r} is not a freezing spec; {accepted}")
        return value
    if isinstance(value, str):
        if value in ("none", "backbone"):
            return FreezeSpec(mode=value)
        if value in strategies:
            return FreezeSpec(mode=value, options=strategies[value].settings(None))
        if value in ("lora", "gradual"):  # every key of theirs has a default: the bare name means {name: {}}
            return parse_freeze({value: {}})
        raise ValueError(f"unknown freezing spec {value!r}; {accepted}")
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key in strategies:
            return FreezeSpec(mode=key, options=strategies[key].settings(arg))
        if key == "top_k":
            if isinstance(arg, bool) or not isinstance(arg, int) or arg < 1:
                raise ValueError(f"top_k must be a positive integer, got {arg!r}")
            return FreezeSpec(mode="top_k", top_k=arg)
        if key == "patterns":
            patterns = [arg] if isinstance(arg, str) else arg
            if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
                raise ValueError(f"patterns must be a non-empty list of glob strings, got {arg!r}")
            return FreezeSpec(mode="patterns", patterns=tuple(patterns))
        if key == "lora":
            return FreezeSpec(mode="lora", lora=_parse_lora(arg))
        if key == "gradual":
            every = (arg or {}).get("every", 1) if isinstance(arg, dict) or arg is None else arg
            if isinstance(arg, dict) and set(arg) - {"every"}:
                raise ValueError(f"gradual has no setting {sorted(set(arg) - {'every'})}; use every")
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ValueError(f"gradual every (epochs between unfreezing steps) must be a positive integer, "
                                 f"got {every!r}")
            return FreezeSpec(mode="gradual", every=every)
    raise ValueError(f"cannot read freezing spec {value!r}; {accepted}")


def _parse_lora(value: Any) -> LoraSettings:
    """``{r, alpha, dropout, target_modules}`` (all optional) as :class:`LoraSettings`; ValueError on bad values."""
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ValueError(f"lora takes a mapping such as {{r: 8, alpha: 16, dropout: 0.1}}, got {value!r}")
    unknown = sorted(set(value) - {"r", "alpha", "dropout", "target_modules", "save_adapter"})
    if unknown:
        raise ValueError(f"lora has no setting {unknown}; use r, alpha, dropout, target_modules and save_adapter")
    save_adapter = value.get("save_adapter", False)
    if not isinstance(save_adapter, bool):
        raise ValueError(f"lora save_adapter must be true or false, got {save_adapter!r}")
    r, alpha, dropout = value.get("r"), value.get("alpha"), value.get("dropout", 0.1)
    targets = value.get("target_modules")
    if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 1):
        raise ValueError(f"lora r (the rank) must be a positive integer, got {r!r}")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0):
        raise ValueError(f"lora alpha must be a number above 0, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"lora dropout must be in [0, 1), got {dropout!r}")
    if targets is not None:
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError(f"lora target_modules must be a list of module names (or null), got {targets!r}")
        targets = tuple(targets)
    return LoraSettings(r=r, alpha=None if alpha is None else float(alpha), dropout=float(dropout),
                        target_modules=targets, save_adapter=save_adapter)
