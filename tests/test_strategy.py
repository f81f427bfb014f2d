"""``train.strategy: auto``: linear probes race on the frozen-feature cache, then a strategy that fits the time
budget is chosen, logged, kept for --resume, and written in metrics.json and the model card."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from mtl.task.strategy import JUDGED_VALIDATION, MIN_STEPS, PATIENCE_STEPS
from mtl.tasks import TextSentiment

from conftest import make_sentences, run_cli


def test_auto_with_few_examples_per_class_chooses_the_linear_probe(tiny_bert, tmp_path):
    rows = make_sentences(18, seed=2)  # 6 train examples: 3 per class
    task = TextSentiment(tiny_bert, max_length=32)
    task.build_model(["negative", "positive"])
    seen = []  # examples through the backbone: the race's features serve the chosen probe too
    task.model.bert.embeddings.register_forward_hook(lambda module, args, output: seen.append(len(output)))
    result = task.fit(rows[:6], rows[6:], strategy="auto", time_budget=5, batch_size=8, output_dir=tmp_path / "run")
    assert sum(seen) == 18, seen
    choice = task.strategy_choice
    assert choice.name == "linear probe" and "fewer than 4 examples per class" in choice.reasons[-1]
    assert set(choice.race) == {"0.0003", "0.001", "0.003", "0.01"}
    assert "backbone (only the head trains)" in str(task.freeze_report) and result.best_metric is not None
    assert json.loads((tmp_path / "run" / "strategy.json").read_text())["name"] == "linear probe"


def test_auto_computes_an_image_backbones_features_once_though_it_changes_their_layout(tmp_path):
    from mtl.tasks import ImageClassification

    task = ImageClassification(str(ImageClassification.tiny_checkpoint(tmp_path / "tiny-vit")))
    examples = ImageClassification.synthetic_examples(6)  # 3 a class: the linear probe
    task.build_model(sorted(set(examples["label"])))
    seen = []  # examples through the backbone; the first pass moves the convolutions to channels-last
    task.model.vit.embeddings.register_forward_hook(lambda module, args, output: seen.append(len(output)))
    task.fit(examples, ImageClassification.synthetic_examples(12, seed=1), strategy="auto", time_budget=5,
             batch_size=8)
    assert task.strategy_choice.name == "linear probe" and sum(seen) == 18, seen


def test_auto_says_when_it_replaces_the_freezing_the_user_gave(tiny_bert, caplog):
    rows = make_sentences(18, seed=2)
    task = TextSentiment(tiny_bert, max_length=32)
    with caplog.at_level("INFO", logger="mtl"):
        task.fit(rows[:6], rows[6:], freeze={"top_k": 1}, strategy="auto", time_budget=5, batch_size=8)
    assert task.strategy_choice.name == "linear probe"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("replaced model.freeze top_k=1" in m and "train.strategy=explicit" in m for m in warnings), warnings
    assert any(r.getMessage().startswith("strategy auto set") and "train.learning_rate: " in r.getMessage()
               for r in caplog.records)
    assert not any("time_budget" in m for m in warnings)


def test_a_time_budget_without_strategy_auto_is_not_silently_ignored(tiny_bert, caplog):
    rows = make_sentences(18, seed=2)
    with caplog.at_level("WARNING", logger="mtl"):
        TextSentiment(tiny_bert, max_length=32).fit(rows[:6], rows[6:], time_budget=5, epochs=1, batch_size=8,
                                                    head_first_learning_rate=1e-2)
    assert any(r.getMessage().startswith("train.time_budget (5 minutes) applies to train.strategy auto only")
               for r in caplog.records), caplog.records
    assert any(r.getMessage().startswith("train.head_first_learning_rate applies to the head-first stage only")
               for r in caplog.records), caplog.records


@pytest.mark.parametrize("minutes, expected", [(30, "LP-FT"), (0.001, "linear probe")])
def test_auto_fits_the_strategy_to_the_time_budget(tiny_bert, tmp_path, minutes, expected, caplog):
    rows = make_sentences(216, seed=3)
    task = TextSentiment(tiny_bert, max_length=32)
    with caplog.at_level("INFO", logger="mtl"):
        task.fit(rows[:96], rows[96:], strategy="auto", time_budget=minutes, batch_size=16, epochs=2,
                 learning_rate=1e-4, head_learning_rate=2e-4)
    assert task.strategy_choice.name == expected, task.strategy_choice.reasons
    if expected == "LP-FT":
        assert "none (full fine-tuning)" in str(task.freeze_report)
        # the head first at the race's best rate, then everything at the rates given, the head's included
        groups = [r.getMessage() for r in caplog.records if r.getMessage().startswith("parameter groups")]
        raced = task.strategy_choice.settings["head_first_learning_rate"]
        assert f"{raced:g}" in task.strategy_choice.race and len(groups) == 6, groups  # 4 race probes, 2 stages
        assert f"head: lr {raced:.3g}," in groups[-2] and "backbone" not in groups[-2], groups[-2]
        assert "head: lr 0.0002," in groups[-1] and "backbone: lr 0.0001," in groups[-1], groups[-1]
        # 96 examples in batches of 16 are 6 steps an epoch: with 120 validation examples to stop early on, the
        # recipe's 2 epochs become the 50 that make MIN_STEPS (300) optimizer steps, which 30 minutes pay for
        assert (MIN_STEPS, JUDGED_VALIDATION) == (300, 100) and task.strategy_choice.settings["epochs"] == 50
        # and early stopping waits PATIENCE_STEPS (100) steps without improvement: 17 epochs of 6 steps
        assert PATIENCE_STEPS == 100 and task.strategy_choice.settings["early_stopping_patience"] == 17
        small = TextSentiment(tiny_bert, max_length=32)
        small.fit(rows[:96], rows[96:120], strategy="auto", time_budget=minutes, batch_size=16, epochs=2,
                  head_first_epochs=2)
        assert small.strategy_choice.settings["epochs"] == 2  # 24 validation examples: the recipe's epochs
        # a head-first stage the recipe sets is kept as set (its rate too): the race's probe replaces none
        assert "head_first_epochs" not in small.strategy_choice.settings
        assert "head_first_learning_rate" not in small.strategy_choice.settings
        assert "the recipe's head-first stage (2 epochs), then everything" in small.strategy_choice.reasons[-1]
        # a probe recipe's rate (freeze: backbone, 1e-3) is a head's: the backbone fine-tunes at 5e-5, the head at it
        probe = TextSentiment(tiny_bert, max_length=32)
        probe.fit(rows[:96], rows[96:120], strategy="auto", time_budget=minutes, batch_size=16, epochs=2,
                  freeze="backbone", learning_rate=1e-3)
        chosen = probe.strategy_choice
        assert chosen.name == "LP-FT" and (chosen.settings["learning_rate"], chosen.settings["head_learning_rate"]) == \
            (5e-5, 1e-3)
        assert "at learning rate 5e-05 (the recipe's 0.001 is a linear probe's; the head trains at 0.001)" in chosen.reasons[-1]


def test_the_choice_is_in_metrics_and_the_card(tiny_bert, tmp_path):
    pd.DataFrame(make_sentences(120, seed=4)).to_csv(tmp_path / "reviews.csv", index=False)
    recipe = {"task": "text-sentiment", "model": {"checkpoint": str(tiny_bert)},
              "data": {"source": str(tmp_path / "reviews.csv")}, "preprocess": {"max_length": 32},
              "train": {"strategy": "auto", "time_budget": 20, "epochs": 2, "batch_size": 16},
              "output": {"dir": str(tmp_path / "out")}}
    (tmp_path / "recipe.yaml").write_text("# python -m mtl.run recipe.yaml\n" + yaml.safe_dump(recipe))
    done = run_cli(str(tmp_path / "recipe.yaml"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "strategy auto chose" in done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["strategy"]["name"] in ("linear probe", "LP-FT", "LoRA") and metrics["strategy"]["reasons"]
    assert f"`train.strategy: auto` chose {metrics['strategy']['name']}" in (tmp_path / "out" / "README.md").read_text()


def test_auto_without_cacheable_features_says_so_and_writes_no_nan(tiny_bert, tmp_path):
    """DeBERTa's head (a context pooler, then the classifier) cannot be trained on cached features: there is no race
    to report (before, a race of one NaN, which strict JSON readers refuse, and a "best linear probe" that never
    ran)."""
    import shutil

    from transformers import DebertaV2Config, DebertaV2Model

    folder = tmp_path / "deberta"
    DebertaV2Model(DebertaV2Config(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64)).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (tiny_bert / name).exists():
            shutil.copy(tiny_bert / name, folder / name)
    rows = make_sentences(120, seed=5)
    task = TextSentiment(folder, max_length=32)
    task.fit(rows[:90], rows[90:], strategy="auto", time_budget=5, epochs=1, batch_size=16,
             output_dir=tmp_path / "run")
    choice = task.strategy_choice
    assert choice.race == {} and "no probe race" in " ".join(choice.reasons)
    assert not any("best linear probe" in reason for reason in choice.reasons)

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    saved = json.loads((tmp_path / "run" / "strategy.json").read_text(), parse_constant=refuse)
    assert saved["name"] == choice.name
