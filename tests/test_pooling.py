"""Pooling of text encoders (``model.pooling``): the mean over real tokens (padding left out) or the first token
feeds the head, ``auto`` follows a sentence-transformers checkpoint's ``1_Pooling/config.json``, the saved folder
loads in plain transformers with ``trust_remote_code=True`` and agrees with ``predict``, and the frozen-feature
cache trains the head on the pooled vectors."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from mtl.errors import MtlError
from mtl.modeling.classifier import build_classifier
from mtl.modeling.pooling import apply_pooling
from mtl.registry import get_task
from mtl.task.ranking import check_candidate
from mtl.tasks import TextSentiment

from conftest import make_sentences, pipeline_top1


def _classifier_inputs(model, batch):
    seen = []
    handle = model.classifier.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    try:
        model.eval()(**batch)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("mode", ["mean", "cls"])
def test_the_head_reads_the_mean_of_real_tokens_or_the_first_token(tiny_bert, mode):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    model = build_classifier(transformers.AutoModelForSequenceClassification, tiny_bert, ["neg", "pos"])
    assert apply_pooling(model, mode, tiny_bert) == mode
    batch = tokenizer(["good film", "a long and rather boring film with bad acting"], padding=True, return_tensors="pt")
    states = model.bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = (states * mask).sum(1) / mask.sum(1) if mode == "mean" else states[:, 0]
    assert torch.allclose(_classifier_inputs(model, batch), expected, atol=1e-6)
    alone = _classifier_inputs(model, tokenizer(["good film"], return_tensors="pt"))
    assert torch.allclose(alone[0], expected[0], atol=1e-5)  # padding in the batch changes nothing


def test_auto_follows_the_checkpoints_sentence_transformers_pooling(tiny_bert, tmp_path):
    plain = build_classifier(transformers.AutoModelForSequenceClassification, tiny_bert, ["a", "b"])
    assert apply_pooling(plain, "auto", tiny_bert) == "pooler"  # no 1_Pooling: the checkpoint's own pooler
    sentence_model = shutil.copytree(tiny_bert, tmp_path / "st")
    (sentence_model / "1_Pooling").mkdir()
    (sentence_model / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True,
                                                                          "pooling_mode_cls_token": False}))
    model = build_classifier(transformers.AutoModelForSequenceClassification, sentence_model, ["a", "b"])
    assert apply_pooling(model, "auto", sentence_model) == "mean" and model.config.mtl_pooling == "mean"


@pytest.fixture(scope="module")
def tiny_mpnet(tiny_bert, tmp_path_factory):
    """A 2-layer MPNet trained (as all-mpnet-base-v2 was) to be read as the mean of its token states: the tiny BERT's
    word vocabulary without token types, and a sentence-transformers ``1_Pooling/config.json``."""
    folder = tmp_path_factory.mktemp("tiny-mpnet")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert, model_input_names=["input_ids", "attention_mask"])
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    transformers.MPNetModel(transformers.MPNetConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id)).save_pretrained(folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True,
                                                                  "pooling_mode_cls_token": False}))
    return folder


@pytest.mark.parametrize("mode", ["auto", "cls"])
def test_a_head_reading_the_first_token_gets_the_pooled_vector_instead(tiny_mpnet, mode):
    """all-mpnet-base-v2 and its kind: no pooler in the encoder; MPNet's head reads the first token itself."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_mpnet)
    model = build_classifier(transformers.AutoModelForSequenceClassification, tiny_mpnet, ["neg", "pos"])
    assert apply_pooling(model, mode, tiny_mpnet) == ("mean" if mode == "auto" else "cls")
    batch = tokenizer(["good film", "a long and rather boring film with bad acting"], padding=True, return_tensors="pt")
    states = model.mpnet(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = (states * mask).sum(1) / mask.sum(1) if mode == "auto" else states[:, 0]
    seen = []
    handle = model.classifier.dense.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    try:
        logits = model.eval()(**batch).logits
        alone = model(**tokenizer(["good film"], return_tensors="pt")).logits
    finally:
        handle.remove()
    assert torch.allclose(seen[0], expected, atol=1e-6)
    assert torch.allclose(alone[0], logits[0], atol=1e-5)  # padding in the batch changes nothing


@pytest.mark.parametrize("family", ["Roberta", "Electra", "DebertaV2", "XLMRoberta"])
def test_every_first_token_head_family_reads_the_mean_of_real_tokens(family):
    config = getattr(transformers, f"{family}Config")(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                                      num_attention_heads=2, intermediate_size=32, num_labels=2,
                                                      embedding_size=16, pooler_hidden_size=16)
    model = getattr(transformers, f"{family}ForSequenceClassification")(config).eval()
    assert apply_pooling(model, "mean", None) == "mean"
    reader = model.pooler if family.startswith("Deberta") else model.classifier
    seen = []
    reader.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))  # after the pooling's hook
    input_ids = torch.tensor([[0, 5, 6, 7, 8, 2], [0, 9, 2, 1, 1, 1]])
    attention_mask = (torch.arange(6) < torch.tensor([[6], [3]])).long()
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    states = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    mask = attention_mask.unsqueeze(-1).float()
    assert torch.allclose(seen[0][:, 0], (states * mask).sum(1) / mask.sum(1), atol=1e-5)
    alone = model(input_ids=input_ids[1:, :3], attention_mask=attention_mask[1:, :3]).logits
    assert torch.allclose(alone[0], logits[1], atol=1e-5)


def test_mean_pooled_mpnet_trains_on_cached_features_and_serves_in_plain_transformers(tiny_mpnet, tmp_path, caplog):
    frame = pd.DataFrame(make_sentences(160, seed=3))
    task = TextSentiment(tiny_mpnet, max_length=32)
    with caplog.at_level(logging.INFO, logger="mtl"):
        task.fit(frame[:128], frame[128:], freeze="backbone", epochs=3, batch_size=16, learning_rate=1e-2,
                 warmup_ratio=0.0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("feature cache: the frozen backbone ran once" in m and "32 inputs" in m for m in messages), messages
    assert task.model.config.mtl_pooling == "mean"
    assert_served_and_reloaded_alike(task, tmp_path / "model")


def assert_served_and_reloaded_alike(task, folder):
    """The saved pooled model: plain ``pipeline()`` and ``TextSentiment.load`` give what ``task`` predicts."""
    task.save(folder)
    texts = [row["sentence"] for row in make_sentences(6, seed=11)]
    ours = task.predict_proba(texts)
    served = pipeline_top1("text-classification", folder, texts, trust_remote_code=True)
    assert [p["label"] for p in served] == [task.label_names[i] for i in ours.argmax(-1)]
    assert np.allclose([p["score"] for p in served], ours.max(-1), atol=1e-5)
    assert np.allclose(TextSentiment.load(folder).predict_proba(texts), ours, atol=1e-6)


def test_auto_warns_when_a_mean_trained_encoder_has_no_pooling_to_change(tmp_path, caplog):
    """An encoder whose pooler is fed one token's state (ALBERT's) cannot be re-pooled: a checkpoint trained to be
    read as the mean keeps its pooler, with a warning."""
    config = transformers.AlbertConfig(vocab_size=64, embedding_size=16, hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32, num_labels=2)
    model = transformers.AlbertForSequenceClassification(config)
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    with caplog.at_level(logging.WARNING, logger="mtl"):
        assert apply_pooling(model, "auto", tmp_path) == "pooler"
    assert "trained to be read as the mean of its token states" in caplog.text
    assert "AlbertForSequenceClassification" in caplog.text
    with pytest.raises(MtlError, match="model.pooling: AlbertForSequenceClassification reads its encoder's output "
                                       "in a way mtl cannot change"):
        apply_pooling(model, "mean", tmp_path)


def build_tiny_distilbert(folder, mean_trained: bool = True):
    """A 2-layer DistilBERT with the test words as vocabulary, marked as trained for mean pooling."""
    from conftest import FILLER, NEGATIVE, POSITIVE

    vocab = dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER])
    torch.manual_seed(0)
    transformers.DistilBertModel(transformers.DistilBertConfig(
        vocab_size=len(vocab), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64)
    ).save_pretrained(folder)
    transformers.DistilBertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    if mean_trained:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


def test_distilbert_reads_the_mean_of_real_tokens_in_its_first_tokens_place(tmp_path):
    """DistilBERT's own forward takes states[:, 0]: the pooled vector is put there, padding left out."""
    folder = build_tiny_distilbert(tmp_path / "distilbert")
    model = build_classifier(transformers.AutoModelForSequenceClassification, folder, ["neg", "pos"]).eval()
    input_ids = torch.tensor([[2, 5, 6, 7, 8, 3], [2, 9, 3, 0, 0, 0]])
    attention_mask = (torch.arange(6) < torch.tensor([[6], [3]])).long()
    states = model.distilbert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    assert apply_pooling(model, "auto", folder) == "mean"  # as its 1_Pooling says
    seen = []
    model.pre_classifier.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    mask = attention_mask.unsqueeze(-1).float()
    assert torch.allclose(seen[0], (states * mask).sum(1) / mask.sum(1), atol=1e-5)
    alone = model(input_ids=input_ids[1:, :3], attention_mask=attention_mask[1:, :3]).logits
    assert torch.allclose(alone[0], logits[1], atol=1e-5)


def test_mean_pooled_distilbert_trains_saves_and_serves_in_plain_transformers(tmp_path):
    folder = build_tiny_distilbert(tmp_path / "distilbert")
    frame = pd.DataFrame(make_sentences(160, seed=3))
    task = TextSentiment(folder, max_length=32)
    task.fit(frame[:128], frame[128:], epochs=2, batch_size=16, learning_rate=1e-3, warmup_ratio=0.0)
    assert task.model.config.mtl_pooling == "mean"
    assert_served_and_reloaded_alike(task, tmp_path / "model")


def test_a_pooling_for_an_encoder_without_a_pooler_is_a_named_error(tmp_path):
    cls = get_task("image-classification")
    checkpoint = cls.tiny_checkpoint(tmp_path / "image")
    model = build_classifier(getattr(transformers, cls.spec.model_class), checkpoint, ["a", "b"])
    assert apply_pooling(model, "auto", checkpoint) == "pooler"
    with pytest.raises(MtlError, match="model.pooling: .* reads its encoder's output in a way mtl cannot change"):
        apply_pooling(model, "mean", checkpoint)


@pytest.mark.parametrize("mode", ["mean", "cls"])
def test_albert_whose_pooler_is_fed_one_token_is_refused_not_broken(tmp_path, mode):
    """ALBERT's pooler is a linear layer fed the first token's state: no pooling can take its place (before, the
    run stopped with a shape error in the first forward pass)."""
    from transformers import AlbertConfig, AlbertModel, AutoModelForSequenceClassification

    AlbertModel(AlbertConfig(vocab_size=40, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path / "albert")
    model = build_classifier(AutoModelForSequenceClassification, tmp_path / "albert", ["a", "b"])
    assert apply_pooling(model, "auto", tmp_path / "albert") == "pooler"
    with pytest.raises(MtlError, match="model.pooling: AlbertForSequenceClassification reads .* not ALBERT's"):
        apply_pooling(model, mode, tmp_path / "albert")
    logits = model(input_ids=torch.tensor([[2, 5, 6, 3]])).logits  # its own pooler still serves
    assert logits.shape == (1, 2)


def test_mean_pooled_model_saves_loads_and_serves_in_plain_transformers(tiny_bert, tmp_path, caplog, monkeypatch):
    frame = pd.DataFrame(make_sentences(160, seed=3))
    task = TextSentiment(tiny_bert, max_length=32)
    with caplog.at_level(logging.INFO, logger="mtl"):
        task.fit(frame[:128], frame[128:], freeze="backbone", pooling="mean", epochs=3, batch_size=16,
                 learning_rate=1e-2, warmup_ratio=0.0)
    assert any("feature cache: the frozen backbone ran once" in r.getMessage() for r in caplog.records)
    folder = task.save(tmp_path / "model")
    assert json.loads((folder / "config.json").read_text())["mtl_pooling"] == "mean"
    texts = [row["sentence"] for row in make_sentences(6, seed=11)]
    ours = task.predict_proba(texts)
    prompts = []
    with monkeypatch.context() as patched:  # mtl reads its own folder without transformers' custom-code prompt
        patched.setattr("builtins.input", lambda *args: prompts.append(args) or "n")
        again = TextSentiment.load(folder)
        check_candidate(TextSentiment, str(folder), folder)  # mtl.select --candidates FOLDER
    assert not prompts
    assert np.allclose(again.predict_proba(texts), ours, atol=1e-6)
    served = pipeline_top1("text-classification", folder, texts, trust_remote_code=True)
    assert [p["label"] for p in served] == [task.label_names[i] for i in ours.argmax(-1)]
    assert np.allclose([p["score"] for p in served], ours.max(-1), atol=1e-5)
    with pytest.raises(ValueError, match="trust_remote_code=True"):  # loud, never BERT's pooler with random weights
        transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    restarted = TextSentiment(folder, max_length=32)
    restarted.fit(frame[:64], frame[128:], epochs=1, batch_size=16)  # a new task starting from the saved folder
    assert restarted.model.config.mtl_pooling == "mean"
    assert not [name for name in restarted.model.state_dict() if "pooler.dense" in name]


def test_the_onnx_export_of_a_mean_pooled_model_has_a_plain_config(tiny_bert, tmp_path, monkeypatch):
    """The graph holds the pooling, so ``OUT/onnx`` loads with the stock BERT config: no custom code, no prompt."""
    pytest.importorskip("onnxruntime")
    from mtl.publish.onnx import export_onnx

    frame = pd.DataFrame(make_sentences(80, seed=3))
    task = TextSentiment(tiny_bert, max_length=32)
    task.fit(frame[:64], frame[64:], pooling="mean", epochs=1, batch_size=16)
    folder = task.save(tmp_path / "model")
    export_onnx(TextSentiment.load(folder), folder)
    monkeypatch.setattr("builtins.input", lambda *args: pytest.fail("transformers asked to run custom code"))
    config = transformers.AutoConfig.from_pretrained(folder / "onnx")
    assert config.model_type == "bert" and config.id2label == {0: "negative", 1: "positive"}
    assert not (folder / "onnx" / "mtl_head.py").exists()
    assert transformers.AutoTokenizer.from_pretrained(folder / "onnx")("good film")["input_ids"]


def test_an_onnx_graph_that_fixed_the_text_length_is_refused(tiny_bert, tmp_path):
    """A task (a plug-in, say) that leaves the sequence axis out of onnx_dynamic_axes: the export's second parity
    check uses an input of another length, and the graph that cannot take it is not written."""
    pytest.importorskip("onnxruntime")
    from mtl.publish.onnx import export_onnx

    class FixedLength(TextSentiment):
        def onnx_dynamic_axes(self, name, tensor):
            return [0]

    frame = pd.DataFrame(make_sentences(48, seed=3))
    task = FixedLength(tiny_bert, max_length=32)
    task.fit(frame[:32], frame[32:], epochs=1, batch_size=16)
    folder = task.save(tmp_path / "model")
    inputs = ["good", "a long and rather boring film with bad acting and a dull plot"]
    with pytest.raises(MtlError, match=r"graph rejects inputs shaped .*FixedLength.onnx_dynamic_axes\(\) must list"):
        export_onnx(task, folder, samples=inputs)
    assert not (folder / "onnx").exists()
    assert export_onnx(TextSentiment.load(folder), folder, samples=inputs).max_abs_diff < 1e-4
