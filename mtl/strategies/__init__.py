"""Freezing strategies added as one file: which of a model's parameters train, under a name a recipe uses as
``model.freeze: NAME`` or ``model.freeze: {NAME: {settings}}``.

mtl's own strategies that need more than choosing parameters (``none``, ``backbone``, ``top_k``, ``patterns``,
LoRA, gradual unfreezing) are built into :mod:`mtl.config.freeze` and :mod:`mtl.modeling`. Every other one is a
:class:`FreezeStrategy` subclass registered with :func:`register_freeze_strategy`: a module in this package
(found by itself, like ``bitfit.py``), or a module of another package listed in the ``mtl.freeze_strategies``
entry-point group::

    # pyproject.toml of my-strategy
    [project.entry-points."mtl.freeze_strategies"]
    norms = "my_strategy:NormsOnly"

The head always trains (mtl checks it), and so does whatever the strategy names; the feature cache, LP-FT's
head-first stage, ``--resume`` and the reports work unchanged.

Example::

    @register_freeze_strategy
    class NormsOnly(FreezeStrategy):
        name = "norms"

        def trainable(self, model, head, settings):
            return head | {n for n, _ in model.named_parameters() if "norm" in n.lower()}
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from importlib.metadata import entry_points
from typing import Any, ClassVar

from torch import nn

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mtl.freeze_strategies"
_REGISTERED: dict[str, "FreezeStrategy"] = {}
_discovered = False


class FreezeStrategy:
    """A named choice of the parameters that train; subclasses set :attr:`name` and :meth:`trainable`."""

    name: ClassVar[str] = ""

    def settings(self, value: Any) -> dict[str, Any]:
        """The strategy's settings from what follows its name in the recipe (None for the bare name); a
        ValueError says what is accepted. This default takes no settings."""
        if value not in (None, {}):
            raise ValueError(f"{self.name} takes no settings, got {value!r}; write model.freeze: {self.name}")
        return {}

    def trainable(self, model: nn.Module, head: set[str], settings: dict[str, Any]) -> set[str]:
        """The names of the parameters of ``model`` that train (``head``: the classification head's)."""
        raise NotImplementedError

    def describe(self, settings: dict[str, Any]) -> str:
        """How the strategy appears in logs, reports and the card."""
        return self.name + (f" {settings}" if settings else "")


def register_freeze_strategy(cls: type[FreezeStrategy]) -> type[FreezeStrategy]:
    """Class decorator: make ``cls`` available as ``model.freeze: cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, FreezeStrategy) and cls.name):
        raise TypeError(f"{cls!r}: a freezing strategy subclasses FreezeStrategy and sets a name")
    _REGISTERED[cls.name] = cls()
    return cls


def freeze_strategies() -> dict[str, FreezeStrategy]:
    """Every registered strategy by name: this package's modules and the ``mtl.freeze_strategies`` entry points
    (loaded once per process; a plug-in that fails to load is logged and skipped)."""
    global _discovered
    if not _discovered:
        _discovered = True
        for module in pkgutil.iter_modules(__path__, f"{__name__}."):
            importlib.import_module(module.name)
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                cls = entry.load()
                if cls.name != entry.name:
                    raise TypeError(f"its name is {cls.name!r}, not the entry point's {entry.name!r}")
                if _REGISTERED.get(cls.name).__class__ is not cls:
                    register_freeze_strategy(cls)
            except Exception as error:  # a broken plug-in must not take the built-in strategies down with it
                logger.warning("freezing strategy plug-in %s (%s) cannot be loaded: %s", entry.name, entry.value, error)
    return dict(_REGISTERED)
