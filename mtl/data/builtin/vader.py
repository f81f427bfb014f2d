"""``vader-movie-snippets``: 10,605 movie-review sentences with mean human sentiment ratings.

Source: Hutto & Gilbert (ICWSM 2014), ``movieReviewSnippets_GroundTruth.txt`` inside
``additional_resources/hutto_ICWSM_2014.tar.gz`` of the ``vaderSentiment==3.3.2`` sdist on PyPI (MIT).
Label = sign of the mean rating (-4..4); the 37 neutral (0.0) sentences are dropped. The split into
train/validation/test (80/10/10, stratified, seed 0) is fixed, so results are comparable across runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from pathlib import Path

from datasets import ClassLabel, DatasetDict, Features, Value, load_dataset
from sklearn.model_selection import train_test_split

from ...errors import DataError
from ...sources.artifacts import Artifact, fetch_artifact
from ...sources.cache import cache_root

NAME = "vader-movie-snippets"
ARTIFACT = Artifact(
    package="vaderSentiment",
    version="3.3.2",
    member="additional_resources/hutto_ICWSM_2014.tar.gz",
    sha256="d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa",
    archive_sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    sdist=True,
)
_SNIPPETS = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
_SNIPPETS_SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"
LABEL_NAMES = ["negative", "positive"]
_FEATURES = Features({"id": Value("int64"), "text": Value("string"), "rating": Value("float64"),
                      "label": ClassLabel(names=LABEL_NAMES)})


def read_snippets(archive: Path) -> list[tuple[int, float, str]]:
    """(id, mean rating, sentence) rows from the ICWSM 2014 archive."""
    with tarfile.open(archive) as tar:
        raw = tar.extractfile(_SNIPPETS).read()
    rows = []
    for number, line in enumerate(io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"), start=1):
        line = line.rstrip("\r\n")
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(f"{_SNIPPETS} line {number}: expected 3 tab-separated fields, got {len(parts)}")
        rows.append((int(parts[0]), float(parts[1]), parts[2].strip()))
    return rows


def load_vader_movie_snippets() -> DatasetDict:
    """The fixed train/validation/test DatasetDict (columns id, text, rating, label)."""
    folder = cache_root() / "datasets" / NAME / "v1"
    files = {split: folder / f"{split}.csv" for split in ("train", "validation", "test")}
    if not all(path.is_file() for path in files.values()):
        _prepare(folder)
    return load_dataset("csv", data_files={k: str(v) for k, v in files.items()}, features=_FEATURES)


def _prepare(folder: Path) -> None:
    archive = fetch_artifact(ARTIFACT)
    with tarfile.open(archive) as tar:
        inner = tar.extractfile(_SNIPPETS).read()
    if hashlib.sha256(inner).hexdigest() != _SNIPPETS_SHA256:
        raise DataError(f"{archive}: {_SNIPPETS} does not match its pinned sha256; delete {archive.parent} and retry")
    rows = [(i, r, s) for i, r, s in read_snippets(archive) if r != 0.0]
    labels = [int(r > 0) for _, r, _ in rows]
    train, rest = train_test_split(rows, test_size=0.2, stratify=labels, random_state=0)
    rest_labels = [int(r > 0) for _, r, _ in rest]
    validation, test = train_test_split(rest, test_size=0.5, stratify=rest_labels, random_state=0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", train), ("validation", validation), ("test", test)):
        tmp = folder / f".{split}.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text", "rating", "label"])
            for i, rating, sentence in sorted(part):
                writer.writerow([i, sentence, rating, int(rating > 0)])
        tmp.replace(folder / f"{split}.csv")

