"""Where mtl keeps what it downloads or converts (mirror packages, built-in datasets)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The mtl cache folder: ``$MTL_CACHE`` if set, else ``$XDG_CACHE_HOME/mtl`` or ``~/.cache/mtl``."""
    explicit = os.environ.get("MTL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mtl"
