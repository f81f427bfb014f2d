"""Which module the feature cache trains: exactly the trainable parameters, and only when the rest is frozen."""

from __future__ import annotations

import pytest

from mtl.training.feature_cache import head_module_name
from mtl.modeling.freezing import apply_freezing
from mtl.config import HeadConfig
from mtl.modeling import attach_mlp_head

from conftest import build_tiny_bert, make_sentences
from test_image_classification import build_model


@pytest.mark.parametrize("kind, head", [("resnet", "classifier.1"), ("timm", "timm_model.classifier"),
                                        ("vit", "classifier")])
def test_cache_applies_only_when_just_the_head_trains(kind, head, tmp_path):
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(build_model(kind, tmp_path / kind))
    apply_freezing(model, "none")
    assert head_module_name(model) is None  # a wrapper holding every parameter is not a head (timm_model)
    apply_freezing(model, "backbone")
    assert head_module_name(model) == head
    apply_freezing(model, {"top_k": 1})
    assert head_module_name(model) is None  # trainable blocks inside a frozen backbone: nothing to cache


def test_an_mlp_head_is_cached_whole(tmp_path):
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(build_model("resnet", tmp_path / "resnet"))
    attach_mlp_head(model, HeadConfig(type="mlp", hidden=[8]))
    apply_freezing(model, "backbone")
    name = head_module_name(model)
    assert name.startswith("classifier.1") and type(model.get_submodule(name)).__name__ in ("MlpHead", "Sequential")


def test_cache_is_the_heads_business_not_any_trainable_module(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    from mtl.modeling.classifier import build_classifier

    model = build_classifier(AutoModelForSequenceClassification, tiny_bert, ["neg", "pos"])
    apply_freezing(model, "backbone")
    assert head_module_name(model) == "classifier"
    frozen_but_pooler = [n for n, _ in model.named_parameters() if not n.startswith("bert.pooler.")]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name not in frozen_but_pooler)
    assert head_module_name(model) is None  # only the pooler trains: caching its inputs would not train the head


def test_a_first_token_head_trains_on_the_cached_first_token_like_the_whole_model(tmp_path, caplog):
    """RoBERTa's head reads the first of the token states itself: the backbone runs once, its first token is cached,
    and (without dropout) the head ends as it ends when the backbone runs every epoch."""
    import logging

    import numpy as np
    import pandas as pd
    from transformers import RobertaConfig, RobertaModel

    from mtl.tasks import TextSentiment

    folder = build_tiny_bert(tmp_path / "roberta")  # the test vocabulary's tokenizer, then a RoBERTa body over it
    RobertaModel(RobertaConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=80, pad_token_id=0, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0, classifier_dropout=0.0)).save_pretrained(folder)
    frame = pd.DataFrame(make_sentences(48, seed=2))
    options = dict(freeze="backbone", epochs=2, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0, seed=5)
    cached, direct = TextSentiment(folder, max_length=32), TextSentiment(folder, max_length=32)
    with caplog.at_level(logging.INFO, logger="mtl.task.fitting"):
        result = cached.fit(frame[:40], frame[40:], **options)
    assert "the head (classifier) trains on its 1x32 inputs" in caplog.text and "runs every epoch" not in caplog.text
    assert result.global_step == 10
    direct.fit(frame[:40], frame[40:], feature_cache=False, **options)
    for name in ("classifier.dense.weight", "classifier.out_proj.weight"):
        assert np.allclose(cached.model.get_parameter(name).detach(), direct.model.get_parameter(name).detach(),
                           atol=1e-5), name


def test_a_head_the_cache_cannot_stand_in_for_trains_without_it(tmp_path, caplog):
    """DistilBERT's head (pre_classifier, an activation inside the model's forward, classifier) is not one module
    nor an affine projector over frames: the backbone runs every epoch and says so."""
    import logging

    import pandas as pd
    from transformers import DistilBertConfig, DistilBertModel

    from mtl.tasks import TextSentiment

    folder = build_tiny_bert(tmp_path / "distilbert")
    DistilBertModel(DistilBertConfig(vocab_size=40, dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                                     max_position_embeddings=80)).save_pretrained(folder)
    frame = pd.DataFrame(make_sentences(48, seed=2))
    task = TextSentiment(folder, max_length=32)
    with caplog.at_level(logging.INFO, logger="mtl.task.fitting"):
        result = task.fit(frame[:40], frame[40:], freeze="backbone", epochs=1, batch_size=8)
    assert "which cached vectors cannot stand in for; the frozen backbone runs every epoch" in caplog.text
    assert result.global_step == 5 and len(result.history) == 1


def test_a_projector_and_classifier_head_trains_on_cached_frames_like_the_whole_model(tmp_path, caplog):
    """A speech head (projector per frame, mean over time, classifier: wav2vec2's and Whisper's) trains on the
    projector's input averaged over time: exact, since the projector is affine; the same run without the cache
    (and without train-time randomness in the backbone) ends with the same head."""
    import json
    import logging

    import numpy as np

    from mtl.registry import get_task

    cls = get_task("keyword-spotting")
    checkpoint = cls.tiny_checkpoint(tmp_path / "speech")
    config_file = checkpoint / "config.json"  # no train-time randomness in the backbone: the two runs must agree
    config = json.loads(config_file.read_text())
    config.update({key: 0.0 for key, value in config.items() if isinstance(value, float) and
                   ("dropout" in key or "layerdrop" in key or key.startswith("mask_"))})
    config_file.write_text(json.dumps(config))
    examples = cls.synthetic_examples(48, seed=3)
    train = {key: values[:32] for key, values in examples.items()}
    validation = {key: values[32:] for key, values in examples.items()}
    options = dict(freeze="backbone", epochs=2, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0,
                   group_by_length=False, seed=5)
    cached, direct = cls(checkpoint, augment=False), cls(checkpoint, augment=False)
    with caplog.at_level(logging.INFO, logger="mtl"):
        cached.fit(train, validation, **options)
    assert "the head (projector + classifier) trains on its" in caplog.text and "averaged over time" in caplog.text
    direct.fit(train, validation, feature_cache=False, **options)
    for name in ("projector.weight", "classifier.weight"):
        assert np.allclose(cached.model.get_parameter(name).detach(), direct.model.get_parameter(name).detach(),
                           atol=1e-5), name
    pretrained = cls(checkpoint, augment=False)
    pretrained._ensure_model(cached.label_names)
    assert not np.allclose(pretrained.model.get_parameter("classifier.weight").detach(),
                           cached.model.get_parameter("classifier.weight").detach())  # it did train
