"""Built-in datasets that mtl can fetch on a fresh machine without the Hugging Face Hub.

Each one is registered by name and returns a DatasetDict backed by files in the mtl cache, so that
``datasets`` caches every later ``map`` (tokenization, label encoding) by fingerprint.
"""

from __future__ import annotations

from typing import Callable

from datasets import DatasetDict

_BUILTIN: dict[str, Callable[[], DatasetDict]] = {}


def builtin_dataset(name: str) -> Callable[[Callable[[], DatasetDict]], Callable[[], DatasetDict]]:
    """Decorator registering a zero-argument loader under ``name``."""

    def decorate(loader: Callable[[], DatasetDict]) -> Callable[[], DatasetDict]:
        if name in _BUILTIN:
            raise ValueError(f"built-in dataset {name!r} is registered twice")
        _BUILTIN[name] = loader
        return loader

    return decorate


def builtin_names() -> list[str]:
    _import_all()
    return sorted(_BUILTIN)


def load_builtin(name: str) -> DatasetDict | None:
    """The built-in dataset called ``name``, or None when there is none of that name."""
    _import_all()
    loader = _BUILTIN.get(name)
    return loader() if loader else None


def _import_all() -> None:
    from . import mnist5k, vader  # noqa: F401  (registering imports)
