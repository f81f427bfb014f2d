"""Freezing plans and head replacement on a tiny BERT built from a config."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from mtl.modeling.classifier import attach_mlp_head, build_classifier, scratch_model
from mtl.training.optim import parameter_groups
from mtl.errors import MtlError
from mtl.config import HeadConfig, parse_freeze
from mtl.config.freeze import FreezeSpec
from mtl.modeling.freezing import apply_freezing, backbone_blocks
from mtl.modeling.locate import classifier_head, head_parameter_names, output_layer_name

from conftest import build_tiny_bert


@pytest.fixture
def model(tiny_bert):
    return build_classifier(AutoModelForSequenceClassification, tiny_bert, ["neg", "pos"])


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_none_trains_everything(model):
    report = apply_freezing(model, "none")
    assert report.trainable == report.total == sum(p.numel() for p in model.parameters())


def test_backbone_trains_only_the_new_head(model):
    report = apply_freezing(model, "backbone")
    assert trainable(model) == {"classifier.weight", "classifier.bias"}
    assert report.trainable == 32 * 2 + 2
    assert "trainable" in str(report) and f"{report.total:,}" in str(report)


def test_top_k_trains_last_blocks_what_follows_and_the_head(model):
    container, blocks = backbone_blocks(model)
    assert container == "bert.encoder.layer" and len(blocks) == 2
    apply_freezing(model, {"top_k": 1})
    names = trainable(model)
    assert any(n.startswith("bert.encoder.layer.1.") for n in names)
    assert not any(n.startswith(("bert.encoder.layer.0.", "bert.embeddings.")) for n in names)
    assert {"bert.pooler.dense.weight", "classifier.weight"} <= names


def test_top_k_larger_than_the_backbone_is_an_error(model):
    with pytest.raises(MtlError, match="has only 2 blocks"):
        apply_freezing(model, {"top_k": 5})


def test_patterns_freeze_matching_parameters_and_unmatched_pattern_is_an_error(model):
    apply_freezing(model, {"patterns": ["bert.embeddings.*"]})
    names = trainable(model)
    assert not any(n.startswith("bert.embeddings.") for n in names) and "bert.encoder.layer.0.output.dense.weight" in names
    with pytest.raises(MtlError, match="matches no parameter"):
        apply_freezing(model, {"patterns": ["encoder.nothing.*"]})


@pytest.mark.parametrize("bad, message", [
    ("bacbone", "unknown freezing spec 'bacbone'; use 'none', 'backbone'"),
    ({"top_k": 0}, "top_k must be a positive integer, got 0"),
    ({"top_k": "2"}, "top_k must be a positive integer, got '2'"),
    ({"patterns": []}, "patterns must be a non-empty list of glob strings"),
    ({"other": 1}, "cannot read freezing spec {'other': 1}; use 'none'"),
    (3, "cannot read freezing spec 3; use 'none'"),
    (FreezeSpec(mode="prefix"), "FreezeSpec mode 'prefix' is not a freezing spec; use 'none'"),  # not full training
])
def test_bad_specs_say_what_is_accepted(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_freeze(bad)


@pytest.mark.parametrize("name", ["lora", "gradual"])
def test_a_bare_strategy_name_means_its_defaults(name):
    assert parse_freeze(name) == parse_freeze({name: {}}) and parse_freeze(name).mode == name


def test_head_of_another_size_is_replaced_with_label_names(tmp_path):
    folder = build_tiny_bert(tmp_path / "three-labels", num_labels=3)
    model = build_classifier(AutoModelForSequenceClassification, folder, ["bad", "good"])
    assert model.classifier.out_features == 2
    assert model.config.id2label == {0: "bad", 1: "good"} and model.config.label2id == {"bad": 0, "good": 1}
    assert head_parameter_names(model) == {"classifier.weight", "classifier.bias"}


def test_parameter_groups_skip_decay_on_bias_and_norms_and_give_head_its_rate(model):
    apply_freezing(model, "none")
    groups = parameter_groups(model, learning_rate=1e-4, weight_decay=0.1, head_learning_rate=1e-2)
    by_id = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_id[id(named["classifier.weight"])]["lr"] == 1e-2
    assert by_id[id(named["bert.encoder.layer.0.attention.output.LayerNorm.weight"])]["weight_decay"] == 0.0
    assert by_id[id(named["bert.encoder.layer.0.output.dense.bias"])]["weight_decay"] == 0.0
    assert by_id[id(named["bert.encoder.layer.0.output.dense.weight"])]["weight_decay"] == 0.1
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_classifier_head_is_the_one_answer_for_head_parameters_output_layer_and_mlp_heads(model):
    head = classifier_head(model)
    assert (head.name, [name for name, _ in head.parts]) == ("classifier", ["classifier"])
    assert head.module is model.classifier and head_parameter_names(model) == head.parameter_names
    assert output_layer_name(model) == "classifier"
    assert attach_mlp_head(model, HeadConfig(type="mlp", hidden=[8])) == "classifier"
    head = classifier_head(model)
    assert head.name == "classifier.layers"  # the smallest module holding every head parameter
    assert head.parameter_names == {n for n, _ in model.named_parameters() if n.startswith("classifier.")}
    assert output_layer_name(model) == "classifier.layers.3"


def test_a_head_split_over_two_modules_has_no_single_module():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32, num_labels=16)
    model = DistilBertForSequenceClassification(config)
    head = classifier_head(model)
    assert [name for name, _ in head.parts] == ["pre_classifier", "classifier"]
    assert head.name is None and head.module is None
    assert head.parameter_names == {f"{m}.{p}" for m in ("pre_classifier", "classifier") for p in ("weight", "bias")}
    assert output_layer_name(model) == "classifier"  # pre_classifier has 16 outputs too, but comes first
    apply_freezing(model, "backbone")
    assert trainable(model) == head.parameter_names


def test_no_head_found_is_an_error():
    from torch import nn

    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 2)
            self.config = type("Config", (), {"num_labels": 2})()

    assert classifier_head(Bare()).parts == () and classifier_head(Bare()).name is None
    with pytest.raises(MtlError, match="found no classification head in Bare"):
        apply_freezing(Bare(), "backbone")
    with pytest.raises(ValueError, match="Bare has no linear layer with 2 outputs in its head"):
        output_layer_name(Bare())


def test_lr_decay_gives_each_block_down_the_rate_of_the_one_above_times_the_decay(model, caplog):
    apply_freezing(model, "none")
    with caplog.at_level(logging.INFO, logger="mtl"):
        groups = parameter_groups(model, learning_rate=1e-3, weight_decay=0.0, head_learning_rate=1e-2, lr_decay=0.5)
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    layers = model.config.num_hidden_layers
    assert by_id[id(named["classifier.weight"])] == 1e-2
    assert by_id[id(named[f"bert.encoder.layer.{layers - 1}.output.dense.weight"])] == 1e-3  # the top block
    assert by_id[id(named["bert.pooler.dense.weight"])] == 1e-3  # after the blocks: the top block's rate
    for index in range(layers):
        assert by_id[id(named[f"bert.encoder.layer.{index}.output.dense.weight"])] == pytest.approx(
            1e-3 * 0.5 ** (layers - 1 - index))
    assert by_id[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1e-3 * 0.5 ** layers)
    assert sum(len(g["params"]) for g in groups) == len(named)
    assert any("parameter groups: head: lr 0.01" in r.getMessage() for r in caplog.records)


def test_lr_decay_on_a_model_without_blocks_is_a_named_error():

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(4, 4)
            self.classifier = torch.nn.Linear(4, 2)

    with pytest.raises(MtlError, match="train.lr_decay: Flat has no list of repeated blocks"):
        parameter_groups(Flat(), learning_rate=1e-3, weight_decay=0.0, lr_decay=0.5)


def test_the_trainable_share_is_shown_with_its_digits_when_under_a_hundredth_of_a_percent():
    from mtl.modeling.freezing import FreezeReport

    assert str(FreezeReport(parse_freeze("backbone"), 770, 22_566_146)).endswith("parameters (0.0034%)")
    assert str(FreezeReport(parse_freeze("backbone"), 12_810, 3_383_818)).endswith("parameters (0.38%)")
    assert str(FreezeReport(parse_freeze("none"), 5, 5)).endswith("parameters (100.00%)")
    assert str(FreezeReport(parse_freeze("backbone"), 1, 10_000_000)).endswith("parameters (0.00001%)")


def test_a_half_precision_checkpoint_trains_on_float32_weights(tmp_path):
    """Hub checkpoints saved in fp16 or bf16 are loaded as float32 master weights, head and backbone alike."""
    from transformers import BertModel

    folder = build_tiny_bert(tmp_path / "half")
    BertModel.from_pretrained(folder).to(torch.bfloat16).save_pretrained(folder)
    model = build_classifier(AutoModelForSequenceClassification, folder, ["neg", "pos"])
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    scratch = scratch_model(AutoModelForSequenceClassification, folder, ["neg", "pos"], seed=0)
    assert {p.dtype for p in scratch.parameters()} == {torch.float32}  # compare's scratch side too
    reference = BertModel.from_pretrained(folder, dtype=torch.bfloat16)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight,
                       reference.embeddings.word_embeddings.weight.float())
