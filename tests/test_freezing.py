"""Freezing plans and head replacement on a tiny BERT built from a config."""

from __future__ import annotations

import pytest
from transformers import AutoModelForSequenceClassification

from mtl.modeling.classifier import build_classifier
from mtl.training.optim import parameter_groups
from mtl.errors import MtlError
from mtl.config import parse_freeze
from mtl.modeling.freezing import apply_freezing, backbone_blocks, head_parameter_names

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


@pytest.mark.parametrize("bad", ["bacbone", {"top_k": 0}, {"top_k": "2"}, {"patterns": []}, {"other": 1}, 3])
def test_bad_specs_say_what_is_accepted(bad):
    with pytest.raises(ValueError):
        parse_freeze(bad)


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
