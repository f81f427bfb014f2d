"""Freezing strategies written as one file (``mtl.strategies``): BitFit built in, a plug-in package's strategy
found through the ``mtl.freeze_strategies`` entry points, both usable as ``model.freeze`` in a recipe and in
Python; what a strategy may not do (freeze the head, name parameters that do not exist) is a clear error."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

import mtl.strategies as strategies
from mtl.config.freeze import parse_freeze
from mtl.errors import MtlError
from mtl.tasks import TextSentiment

from conftest import install_plugin, make_sentences, run_cli

NORMS_ONLY = '''
from mtl.strategies import FreezeStrategy


class NormsOnly(FreezeStrategy):
    """The layer norms and the head train; {keep_head: false} is a broken strategy, for the test."""

    name = "norms"

    def settings(self, value):
        value = value or {}
        if set(value) - {"keep_head"}:
            raise ValueError(f"norms has no setting {sorted(set(value) - {'keep_head'})}; use keep_head")
        return {"keep_head": value.get("keep_head", True)}

    def trainable(self, model, head, settings):
        norms = {n for n, _ in model.named_parameters() if "LayerNorm" in n}
        return norms | head if settings["keep_head"] else norms
'''


@pytest.fixture
def norms_plugin(tmp_path, monkeypatch):
    """A package outside mtl, installed as pip installs one: a module and dist-info whose entry_points.txt names the
    strategy in the ``mtl.freeze_strategies`` group."""
    install_plugin(tmp_path / "site", "norms_strategy", NORMS_ONLY, "mtl.freeze_strategies",
                   "norms = norms_strategy:NormsOnly", monkeypatch)
    monkeypatch.setattr(strategies, "_discovered", False)
    yield
    strategies._REGISTERED.pop("norms", None)
    strategies._discovered = False


def _trainable(task):
    return {name for name, parameter in task.model.named_parameters() if parameter.requires_grad}


def test_bitfit_trains_the_biases_and_the_head(tiny_bert):
    frame = pd.DataFrame(make_sentences(64, seed=2))
    task = TextSentiment(tiny_bert, max_length=32)
    task.fit(frame[:48], frame[48:], freeze="bitfit", epochs=1, batch_size=16, learning_rate=1e-3)
    trainable = _trainable(task)
    assert {"classifier.weight", "classifier.bias"} <= trainable
    assert all(name.endswith(".bias") or name.startswith("classifier.") for name in trainable)
    assert any(name.startswith("bert.encoder.") for name in trainable)
    assert str(task.freeze_report).startswith("freeze bitfit (the backbone's biases and the head train)")
    with pytest.raises(ValueError, match="unknown freezing spec 'bitfitt'; .*'bitfit'"):
        parse_freeze("bitfitt")


def test_a_plugin_packages_strategy_runs_from_a_recipe(norms_plugin, tiny_bert, sentences_csv, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "task": "text-sentiment", "model": {"checkpoint": str(tiny_bert), "freeze": "norms"},
        "data": {"source": str(sentences_csv)}, "preprocess": {"max_length": 32},
        "train": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3}, "output": {"dir": str(tmp_path / "out")}}))
    done = run_cli(str(recipe))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "freeze norms" in done.stderr and "trainable" in done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["freeze"].startswith("freeze norms {'keep_head': True}") and 0 < metrics["trainable_parameters"]
    assert metrics["trainable_parameters"] < 0.05 * metrics["total_parameters"] and "accuracy" in metrics["test"]
    done = run_cli(str(recipe), "model.freeze={norms: {keep_head: false}}", "--overwrite")
    assert done.returncode == 2 and "leaves the new classification head" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli(str(recipe), "model.freeze={norms: {keep: 1}}", "--dry-run")
    assert done.returncode == 2 and "norms has no setting ['keep']; use keep_head" in done.stderr


def test_a_strategy_naming_parameters_the_model_lacks_is_an_error(tiny_bert, monkeypatch):
    class Imaginary(strategies.FreezeStrategy):
        name = "imaginary"

        def trainable(self, model, head, settings):
            return head | {"bert.no_such.weight"}

    monkeypatch.setitem(strategies._REGISTERED, "imaginary", Imaginary())
    task = TextSentiment(tiny_bert, max_length=32)
    with pytest.raises(MtlError, match=r"freeze 'imaginary': the strategy names parameters .* \(bert.no_such.weight\)"):
        task.fit(make_sentences(32, seed=1), epochs=1, freeze="imaginary")
