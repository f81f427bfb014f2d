"""Image columns: every image is checked to open before training starts, and a bad one is named by row and file;
16-bit and float images are scaled to 8 bits (:func:`eight_bit`) before they become RGB."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from datasets import Dataset, Image as ImageFeature
from PIL import Image

from ..errors import DataError, first_few
from .columns import holds_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MIN_SIDE = 8  # pixels: smaller images (1x1 placeholders, broken thumbnails) are errors, not inputs
SIXTEEN_BIT_MAX = 65535  # integer-mode (I;16*, I) pixels are 16-bit: 0..65535 maps to 0..255 (divided by 257)


def verify_images(split: Dataset, column: str, where: str) -> None:
    """Raise :class:`DataError` naming the rows (and files, when known) whose image cannot be decoded or is too
    small: the first few, with each one's reason, then a count."""
    feature = split.features.get(column)
    if isinstance(feature, ImageFeature):
        encoded = split.cast_column(column, ImageFeature(decode=False))[column]
    elif holds_text(feature):  # paths read from a table
        encoded = [{"path": path, "bytes": None} for path in split[column]]
    else:
        return
    bad = [(row, item, problem) for row, item in enumerate(encoded, start=1) if (problem := _problem(item))]
    if bad:
        named = first_few([f"row {row}{_file_of(item)} {problem}" for row, item, problem in bad], separator="; ")
        raise DataError(f"{where} {named}: replace or remove {'it' if len(bad) == 1 else 'them'}")


def _file_of(item: dict[str, Any] | None) -> str:
    return f" ({item['path']})" if item and item.get("path") else ""


def _problem(item: dict[str, Any] | None) -> str | None:
    """Why an encoded image cannot be used (None: it can): no file, undecodable, or under MIN_SIDE pixels."""
    if not item or not (item.get("bytes") or item.get("path")):
        return "has no image"
    try:
        source = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
        with Image.open(source) as image:
            image.draft("RGB", (64, 64))  # JPEGs decode at a reduced scale: every byte is still read
            image.load()  # decodes the pixels: verify() misses truncated data
            if min(image.size) < MIN_SIDE:
                return f"is {image.size[0]}x{image.size[1]} pixels (images need at least {MIN_SIDE}x{MIN_SIDE})"
            return None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return unreadable(error)


def unreadable(error: BaseException) -> str:
    """Why an image file could not be opened, as the end of a sentence naming it (training and predict alike)."""
    if isinstance(error, FileNotFoundError):
        return "does not exist; check the path"
    if isinstance(error, PermissionError):
        return "cannot be read (permission denied); check the file's permissions"
    if isinstance(error, Image.DecompressionBombError):
        return f"is too large to decode safely ({error}); resize it"
    return "cannot be decoded (corrupt or not an image)"


def eight_bit(image: Image.Image, where: str = "image") -> Image.Image:
    """``image`` with integer (``I;16*``, ``I``) or float (``F``) pixels scaled to an 8-bit ``L`` image; other
    modes are returned as they are. PIL's ``convert("RGB")`` clips these modes (16-bit PNGs turn white, float
    TIFFs black), so every image mtl decodes, for training and for predict, passes here first.

    Rules: integer pixels are 16-bit data, 0..65535 divided by 257 (a 32-bit ``I`` image with values outside
    0..65535 is a :class:`DataError`); float pixels all within 0..1 are multiplied by 255, within 0..255 kept
    (as float arrays given to ``to_rgb`` are); other ranges and NaN or infinite values are DataErrors naming
    ``where``. ``transformers.pipeline("image-classification")`` loads files itself with a plain
    ``convert("RGB")``: a saved model given such files through the pipeline sees clipped pixels.
    """
    if image.mode.startswith("I"):
        return Image.fromarray(_integer_pixels(np.asarray(image), where), mode="L")
    if image.mode == "F":
        return Image.fromarray(_float_pixels(np.asarray(image), where), mode="L")
    return image


def eight_bit_array(values: np.ndarray, where: str = "image") -> np.ndarray:
    """A numpy image as uint8 by the rules of :func:`eight_bit`: uint8 as it is; booleans 0 or 255; uint16 divided
    by 257; other integer arrays (e.g. from Python lists) kept when within 0..255, else read as 16-bit; floats in
    0..1 times 255, in 0..255 kept. Other values are a :class:`DataError` naming ``where``."""
    if values.dtype == np.uint8:
        return values
    if values.dtype.kind == "b":  # a mask: False black, True white, as PIL reads a 1-bit image
        return values.astype(np.uint8) * 255
    if values.dtype.kind in "iu":
        if values.dtype != np.uint16 and values.size and values.min() >= 0 and values.max() <= 255:
            return values.astype(np.uint8)
        return _integer_pixels(values, where)
    return _float_pixels(values.astype(np.float64), where)


def image_from_array(values: np.ndarray, where: str = "image") -> Image.Image:
    """A PIL image from an HxW or HxWxC numpy image, its pixels scaled to 8 bits by :func:`eight_bit_array` (a
    single channel becomes a grey image)."""
    pixels = eight_bit_array(values, where)
    return Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels)


def _integer_pixels(values: np.ndarray, where: str) -> np.ndarray:
    if values.size and (values.min() < 0 or values.max() > SIXTEEN_BIT_MAX):
        raise DataError(f"{where}: the image holds 32-bit integer pixels ({values.min()}..{values.max()}); only "
                        f"8-bit and 16-bit (0..{SIXTEEN_BIT_MAX}) images are read: save it as an 8- or 16-bit PNG")
    return np.round(values.astype(np.float32) / 257).astype(np.uint8)


def _float_pixels(values: np.ndarray, where: str) -> np.ndarray:
    if not np.isfinite(values).all():
        raise DataError(f"{where}: the float image holds NaN or infinite pixels; fix it or save it as an 8-bit PNG")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low < 0 or high > 255:
        raise DataError(f"{where}: the float image holds values {low:g}..{high:g}; float pixels must lie in 0..1 "
                        "(or 0..255): rescale the image or save it as an 8-bit PNG")
    return np.round(values * (255.0 if high <= 1.0 else 1.0)).astype(np.uint8)
