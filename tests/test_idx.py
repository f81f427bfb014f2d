"""MNIST IDX files: synthetic pairs written byte by byte, errors, and the real test set when present."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from mtl.data import load_labelled
from mtl.data.idx import read_idx_folder
from mtl.errors import DataError
from mtl.config import DataConfig

from conftest import requires_shared_data


def write_pair(folder, prefix, images, labels, compress=True):
    opener = gzip.open if compress else open
    suffix = ".gz" if compress else ""
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as out:
        out.write(struct.pack(">IIII", 0x803, *images.shape) + images.astype(np.uint8).tobytes())
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as out:
        out.write(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


def test_idx_pairs_read_as_splits(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 5, 7))
    write_pair(tmp_path, "train", images, np.arange(12) % 3)
    write_pair(tmp_path, "t10k", images[:6], np.arange(6) % 3, compress=False)
    splits = read_idx_folder(tmp_path)
    assert set(splits) == {"train", "test"}
    assert (np.asarray(splits["train"][4]["image"]) == images[4]).all()
    assert splits["test"]["label"] == [0, 1, 2, 0, 1, 2]
    data = load_labelled(DataConfig(source=str(tmp_path), validation_size=0.25),
                         input_name="image", input_candidates=("image",))
    assert len(data.splits["test"]) == 6 and len(data.splits["train"]) == 9


def test_wrong_magic_and_truncated_files_are_named(tmp_path):
    write_pair(tmp_path, "train", np.zeros((2, 3, 3)), np.array([0, 1]), compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(DataError, match="expected 18 bytes of data for shape \\(2, 3, 3\\), found 14"):
        read_idx_folder(tmp_path)
    path.write_bytes(struct.pack(">I", 0x999) + b"\0" * 30)
    with pytest.raises(DataError, match="wrong magic number"):
        read_idx_folder(tmp_path)


@pytest.mark.shared_data
def test_real_mnist_test_set():
    splits = read_idx_folder(requires_shared_data("mnist-test"))
    test = splits["test"]
    assert len(test) == 10000 and test[0]["label"] == 7
    assert np.bincount(test["label"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
