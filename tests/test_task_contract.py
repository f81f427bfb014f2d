"""The behaviour contract every registered task meets, through the hooks it provides (a tiny checkpoint built from
a config, synthetic examples, sample inputs): fit lowers the loss, evaluate, predict, save, load, plain
``transformers.pipeline`` in a fresh interpreter without mtl, the card's usage code run as written, ONNX parity.

A fourth task written in a throwaway package outside ``mtl/`` and ``tasks/``, registered through the ``mtl.tasks``
entry-point group, passes the same contract with no other file changed.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtl.registry import get_task, known_tasks

from conftest import install_plugin

CONTRACT_SCRIPT = """
import pickle, sys
from pathlib import Path
from transformers import pipeline
tag, folder, inputs_file, usage_file = sys.argv[1:5]
classify = pipeline(tag, model=folder)
print("PIPELINE", pickle.dumps([classify(item, top_k=1)[0]["label"] for item in pickle.loads(Path(inputs_file).read_bytes())]).hex())
namespace = {}
exec(Path(usage_file).read_text(), namespace)   # the model card's usage code, as a user would paste it
print("USAGE", namespace["classifier"].task)
assert not any(m == "mtl" or m.startswith("mtl.") for m in sys.modules), "mtl was imported"
"""


def _write_like_a_user(value, folder: Path, stem: str) -> Path | None:
    """Save a raw sample input as the file the card's usage code opens (images as PNG/JPEG, audio as WAV)."""
    from PIL import Image

    if isinstance(value, Image.Image):
        value.convert("RGB").save(folder / f"{stem}.jpg")
        return folder / f"{stem}.jpg"
    if isinstance(value, np.ndarray):
        import soundfile

        soundfile.write(folder / f"{stem}.wav", value, 16_000)
        return folder / f"{stem}.wav"
    return None


def _split(examples: dict[str, list], parts: tuple[int, int, int]) -> list[dict[str, list]]:
    out, start = [], 0
    for size in parts:
        out.append({key: values[start:start + size] for key, values in examples.items()})
        start += size
    return out


def check_contract(cls: type, tmp_path: Path) -> None:
    """Every behaviour a task promises, on its own tiny checkpoint and synthetic data."""
    checkpoint = cls.tiny_checkpoint(tmp_path / "checkpoint")
    train, validation, test = _split(cls.synthetic_examples(176, seed=1), (128, 24, 24))
    task = cls(checkpoint)
    result = task.fit(train, validation, epochs=5, batch_size=16, learning_rate=2e-3, warmup_ratio=0.0, log_every=1,
                      seed=0)
    losses = [record["loss"] for record in result.train_losses]
    assert len(losses) == 40 and np.mean(losses[-8:]) < np.mean(losses[:8]), losses  # fit lowers the loss
    assert result.history[-1]["loss"] < result.history[0]["loss"] and result.best_metric > 0.7, result.history

    scores = task.evaluate(test)
    assert {"loss", "accuracy", "macro_f1", "per_class", "confusion_matrix"} <= set(scores)
    assert sum(map(sum, scores["confusion_matrix"])) == scores["num_examples"] == 24

    samples = task.sample_inputs(3)
    predicted = task.predict(samples)
    probabilities = task.predict_proba(samples)
    assert [p["label"] for p in predicted] == [task.label_names[i] for i in probabilities.argmax(-1)]
    assert np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert len(task.predict(samples[:1])) == 1

    folder = task.save(tmp_path / "model")
    loaded = cls.load(folder)
    assert loaded.label_names == task.label_names
    assert np.allclose(loaded.predict_proba(samples), probabilities, atol=1e-5)

    _check_card_and_pipeline(task, folder, samples, predicted, tmp_path)
    _check_onnx(loaded, folder)


def _check_card_and_pipeline(task, folder: Path, samples: list, predicted: list[dict], tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    from mtl.publish.card import write_task_card

    card_dir = tmp_path / "card"
    card_dir.mkdir()
    card = ModelCard.load(write_task_card(task, card_dir))
    assert card.data.pipeline_tag == task.spec.pipeline_tag and card.data.library_name == "transformers"
    usage = str(card).split("```python\n")[1].split("```")[0]
    usage = usage.replace("path/to/this/folder", str(folder))
    workdir = tmp_path / "user"
    workdir.mkdir()
    for value in samples[:1]:  # the file the usage code opens ("photo.jpg", "clip.wav"), made from a sample
        for stem in ("photo", "clip"):
            _write_like_a_user(value, workdir, stem)
    (workdir / "usage.py").write_text(usage)
    (workdir / "inputs.pkl").write_bytes(pickle.dumps(samples))
    done = subprocess.run([sys.executable, "-c", CONTRACT_SCRIPT, task.spec.pipeline_tag, str(folder),
                           str(workdir / "inputs.pkl"), str(workdir / "usage.py")],
                          cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("PIPELINE", "USAGE")))
    assert pickle.loads(bytes.fromhex(lines["PIPELINE"])) == [p["label"] for p in predicted]
    assert lines["USAGE"] == task.spec.pipeline_tag


def _check_onnx(task, folder: Path) -> None:
    pytest.importorskip("onnxruntime")
    from mtl.publish.onnx import export_onnx

    result = export_onnx(task, folder)
    assert result.inputs_kind == "synthetic inputs" and result.max_abs_diff <= 1e-4
    assert (folder / "onnx" / "model.onnx").is_file() and (folder / "onnx" / "config.json").is_file()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine extra threads thrash."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", known_tasks())
def test_every_registered_task_meets_the_contract(name, tmp_path):
    check_contract(get_task(name), tmp_path)


INTENT_TASK = '''
"""A fourth task outside mtl: intents of short commands, on a DistilBERT-style encoder."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from transformers import DataCollatorWithPadding

from mtl.task import Task, TaskSpec

WORDS = {"lights": ["lamp", "light", "bright", "dim"], "music": ["song", "play", "tune", "album"]}
FILLER = ["please", "now", "the", "in", "kitchen", "turn", "some", "on", "up", "a"]


@dataclass
class IntentOptions:
    max_length: int = 16


class IntentClassification(Task):
    spec = TaskSpec(modality="text", model_class="AutoModelForSequenceClassification", processor_class="AutoTokenizer",
                    default_checkpoint="distilbert-base-uncased", input_column="utterance",
                    input_candidates=("utterance", "command"), pipeline_tag="text-classification",
                    file_suffixes=(".txt",), intended_use="spoken-style commands to a home assistant")
    Options = IntentOptions

    def preprocess(self, batch):
        return self.processor(batch["utterance"], truncation=True, max_length=self.options.max_length)

    def collate(self, features):
        return DataCollatorWithPadding(self.processor)(features)

    def lengths(self, dataset):
        return [len(ids) for ids in dataset["input_ids"]]

    def input_from_argument(self, argument):
        return argument

    def sample_inputs(self, count=4, seed=0):
        return [" ".join(["please", words[i % 4], "now"]) for i, words in enumerate(list(WORDS.values()) * count)][:count]

    def usage_input(self):
        return '"play a song in the kitchen"'

    @classmethod
    def tiny_checkpoint(cls, folder: Path) -> Path:
        import torch
        from transformers import BertTokenizerFast, DistilBertConfig, DistilBertModel

        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *FILLER, *[w for ws in WORDS.values() for w in ws]]
        tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))}, do_lower_case=True)
        torch.manual_seed(0)
        DistilBertModel(DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                         max_position_embeddings=32)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    @classmethod
    def synthetic_examples(cls, count, seed=0):
        rng = random.Random(seed)
        labels = [list(WORDS)[i % 2] for i in range(count)]
        texts = [" ".join(rng.sample(FILLER, 3) + [rng.choice(WORDS[label])]) for label in labels]
        return {"utterance": texts, "label": labels}
'''


@pytest.fixture
def plugin_task(tmp_path, monkeypatch):
    """A package outside mtl/ and tasks/, installed the way pip installs one: a module plus dist-info metadata
    whose entry_points.txt names the task in the ``mtl.tasks`` group."""
    import mtl.registry as registry
    from mtl.task.spec import REGISTERED

    install_plugin(tmp_path / "site", "intent_task", INTENT_TASK, "mtl.tasks",
                   "intent = intent_task:IntentClassification", monkeypatch)
    monkeypatch.setattr(registry, "_discovered", False)
    yield
    REGISTERED.pop("intent", None)
    registry._discovered = False


def test_a_fourth_task_from_a_plugin_package_passes_the_whole_contract(plugin_task, tmp_path):
    assert "intent" in known_tasks()
    cls = get_task("intent")
    assert cls.__module__ == "intent_task" and cls.name == "intent"
    check_contract(cls, tmp_path)
    from mtl.registry import load_saved_task

    assert type(load_saved_task(tmp_path / "model")) is cls  # a saved folder names its task; mtl finds it again
