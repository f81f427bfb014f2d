"""Image columns: every image is checked to open before training starts, and a bad one is named by row and file."""

from __future__ import annotations

import io
from typing import Any

from datasets import Dataset, Image as ImageFeature
from PIL import Image

from ..errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MIN_SIDE = 8  # pixels: smaller images (1x1 placeholders, broken thumbnails) are errors, not inputs


def verify_images(split: Dataset, column: str, where: str) -> None:
    """Raise :class:`DataError` naming the first row whose image cannot be decoded (file path when known)."""
    if not isinstance(split.features.get(column), ImageFeature):
        return
    encoded = split.cast_column(column, ImageFeature(decode=False))[column]
    bad = [(row, item) for row, item in enumerate(encoded, start=1) if not _opens(item)]
    if bad:
        row, item = bad[0]
        name = f" ({item['path']})" if item.get("path") else ""
        more = f"; {len(bad) - 1} more unreadable images" if len(bad) > 1 else ""
        raise DataError(f"{where} row {row}{name}: the image cannot be decoded (corrupt, not an image, or smaller "
                        f"than {MIN_SIDE}x{MIN_SIDE} pixels); replace or remove it{more}")


def _opens(item: dict[str, Any] | None) -> bool:
    if not item or not (item.get("bytes") or item.get("path")):
        return False
    try:
        source = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
        with Image.open(source) as image:
            image.draft("RGB", (64, 64))  # JPEGs decode at a reduced scale: every byte is still read
            image.load()  # decodes the pixels: verify() misses truncated data
            return min(image.size) >= MIN_SIDE
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
