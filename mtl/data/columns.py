"""What a column's ``datasets`` feature holds, for checks that must not depend on how a file was read."""

from __future__ import annotations

from typing import Any

TEXT_TYPES = ("string", "large_string")  # datasets reads CSV text as large_string, Python strings as string


def holds_text(feature: Any) -> bool:
    """Whether a ``datasets`` feature is a column of strings (``Value("string")`` or ``Value("large_string")``).

    Example::

        holds_text(dataset.features["label"])   # True for labels read from a CSV, False for a ClassLabel
    """
    return getattr(feature, "dtype", None) in TEXT_TYPES
