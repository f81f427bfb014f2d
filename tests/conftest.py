"""Shared fixtures: tiny models built from configs (no weights downloaded) and small labelled datasets."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

POSITIVE = ["good", "great", "wonderful", "superb", "lovely", "brilliant"]
NEGATIVE = ["bad", "awful", "boring", "dull", "terrible", "weak"]
FILLER = ["the", "film", "was", "a", "plot", "actors", "story", "movie", "really", "quite", "and", "with"]


def make_sentences(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Short sentences whose label is given by the sentiment word they contain."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(FILLER, rng.randint(2, 9)) + [rng.choice(POSITIVE if label == "positive" else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"sentence": " ".join(words), "sentiment": label})
    return rows


def build_tiny_bert(folder: Path, num_labels: int | None = None) -> Path:
    """A 2-layer BERT with a word-level vocabulary of the test words, saved as a transformers folder."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER, "what", "film", "fine"]
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(dict.fromkeys(vocab))}, do_lower_case=True)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    if num_labels:
        config.num_labels = num_labels
        model = BertForSequenceClassification(config)
    else:
        model = BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def sentences_csv(tmp_path_factory) -> Path:
    """A CSV file (sentence, sentiment) of 240 rows."""
    import pandas as pd

    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    pd.DataFrame(make_sentences(240)).to_csv(path, index=False)
    return path


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A private mtl cache folder for one test."""
    monkeypatch.setenv("MTL_CACHE", str(tmp_path / "mtl-cache"))
    return tmp_path / "mtl-cache"


def install_plugin(site: Path, package: str, source: str, group: str, entry: str, monkeypatch) -> None:
    """Install ``source`` as the package ``package`` into ``site`` the way pip installs one (a module plus
    dist-info whose entry_points.txt has ``entry`` in ``group``), on this process's path and on PYTHONPATH."""
    import textwrap

    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # fresh interpreters (CLI runs, the contract) find it too


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run ``python -m mtl.run ...`` in a subprocess and return the CompletedProcess."""
    import os
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mtl.run", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=full_env, timeout=timeout)


def requires_shared_data(*parts: str) -> Path:
    """The path of a folder in ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not present (developer/CI data)")
    return path


PIPELINE_SCRIPT = """
import json, sys
import numpy as np
from transformers import pipeline
classify = pipeline(sys.argv[1], model=sys.argv[2], trust_remote_code=sys.argv[3:] == ["trust_remote_code"])
def raw(item):  # audio given as {"raw": [floats], "sampling_rate": n} becomes the numpy array pipelines take
    return {**item, "raw": np.asarray(item["raw"], dtype=np.float32)} if isinstance(item, dict) else item
print(json.dumps([classify(raw(item), top_k=1)[0] for item in json.load(sys.stdin)]))
assert not any(m == "mtl" or m.startswith("mtl.") for m in sys.modules), "mtl was imported"
"""


def pipeline_top1(pipeline_tag: str, folder: Path, inputs: list, trust_remote_code: bool = False) -> list[dict]:
    """Top-1 predictions of plain ``transformers.pipeline`` on a saved folder, in a fresh interpreter without mtl.

    Audio inputs are ``{"raw": list_of_floats, "sampling_rate": n}`` dicts (JSON carries no arrays).
    """
    import json
    import subprocess

    flags = ["trust_remote_code"] if trust_remote_code else []
    done = subprocess.run([sys.executable, "-c", PIPELINE_SCRIPT, pipeline_tag, str(folder), *flags], input=json.dumps(inputs),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
