"""MNIST's IDX format: ``*-images-idx3-ubyte[.gz]`` with ``*-labels-idx1-ubyte[.gz]`` beside it.

A folder holding such pairs reads as a DatasetDict: the ``t10k`` prefix becomes ``test``, ``train``
stays ``train``. Images are greyscale PIL images, labels integers.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image as ImageFeature
from PIL import Image

from ..errors import DataError

_IMAGES, _LABELS = 0x00000803, 0x00000801


def idx_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """``{split: (images, labels)}`` for the IDX pairs in ``folder``."""
    pairs = {}
    for images in sorted(folder.glob("*-images-idx3-ubyte*")):
        prefix = images.name.split("-images-")[0]
        labels = next(iter(sorted(folder.glob(f"{prefix}-labels-idx1-ubyte*"))), None)
        if labels is None:
            raise DataError(f"{images}: no {prefix}-labels-idx1-ubyte file beside it")
        pairs["test" if prefix == "t10k" else prefix] = (images, labels)
    return pairs


def read_idx_folder(folder: Path) -> DatasetDict:
    """Every IDX image/label pair in ``folder`` as a split."""
    return DatasetDict({split: read_idx_pair(*paths) for split, paths in idx_pairs(folder).items()})


def read_idx_pair(images_path: Path, labels_path: Path) -> Dataset:
    """One split from an IDX image file and its label file."""
    images = _read(images_path, _IMAGES, 3)
    labels = _read(labels_path, _LABELS, 1)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=[str(i) for i in range(int(labels.max()) + 1)])})
    return Dataset.from_dict({"image": [Image.fromarray(a, mode="L") for a in images], "label": labels.tolist()},
                             features=features)


def _read(path: Path, magic: int, rank: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 + 4 * rank or struct.unpack(">I", raw[:4])[0] != magic:
        raise DataError(f"{path}: not an IDX file of rank {rank} (wrong magic number)")
    dims = struct.unpack(f">{rank}I", raw[4:4 + 4 * rank])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: expected {int(np.prod(dims))} bytes of data for shape {dims}, found {body.size}")
    return body.reshape(dims)
