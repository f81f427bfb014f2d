"""LoRA (``model.freeze: {lora: ...}``): adapters beside the chosen layers train with the head, the rest stays
exactly as pretrained, the adapters are merged so the saved folder is a plain transformers model, and a target that
matches nothing is a named error. Default targets exist for every registered task's architecture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
from safetensors.torch import load_file

from mtl.config import parse_freeze
from mtl.errors import MtlError
from mtl.modeling.classifier import build_classifier
from mtl.modeling.lora import add_lora
from mtl.registry import get_task, known_tasks
from mtl.tasks import TextSentiment

from conftest import make_sentences, pipeline_top1

pytest.importorskip("peft")


def test_lora_trains_adapters_and_head_only_and_saves_a_plain_model(tiny_bert, tmp_path):
    task = TextSentiment(tiny_bert, max_length=32)
    frame = pd.DataFrame(make_sentences(120, seed=2))
    task.fit(frame[:96], frame[96:], freeze={"lora": {"r": 4, "alpha": 8}}, epochs=2, batch_size=16,
             learning_rate=2e-2, warmup_ratio=0.0)
    assert "lora (r=4" in str(task.freeze_report) and task.freeze_report.trainable < task.freeze_report.total / 4
    assert not [name for name, _ in task.model.named_parameters() if "lora" in name]  # merged, adapters gone
    folder = task.save(tmp_path / "out")
    saved = load_file(folder / "model.safetensors")
    pretrained = {f"bert.{key}": value for key, value in load_file(tiny_bert / "model.safetensors").items()}  # a BertModel
    shared = [key for key in saved if key in pretrained and not key.startswith("classifier")]
    changed = {key for key in shared if not torch.equal(saved[key], pretrained[key])}
    adapted = (".attention.self.query.", ".attention.self.key.", ".attention.self.value.", ".dense.")
    assert changed and all(any(name in key for name in adapted) for key in changed), \
        changed  # only the adapted layers moved (their LoRA update merged in); everything else is as pretrained
    assert not any("embeddings" in key or "LayerNorm" in key for key in changed)
    assert {key.split(".")[-1] for key in changed} == {"weight"}  # LoRA leaves biases alone
    texts = [row["sentence"] for row in make_sentences(6, seed=5)]
    assert [p["label"] for p in pipeline_top1("text-classification", folder, texts)] == \
        [p["label"] for p in task.predict(texts)]


def test_a_lora_target_that_matches_nothing_names_the_layers_that_exist(tiny_bert):
    model = build_classifier(transformers.AutoModelForSequenceClassification, tiny_bert, ["a", "b"])
    with pytest.raises(MtlError, match=r"target_modules: \['qkv'\] match no .* layers are named \[.*'query'.*\]"):
        add_lora(model, parse_freeze({"lora": {"target_modules": ["qkv"]}}))


@pytest.mark.parametrize("name", known_tasks())
def test_every_task_architecture_has_default_lora_targets_and_merges_back(name, tmp_path):
    cls = get_task(name)
    checkpoint = cls.tiny_checkpoint(tmp_path / "checkpoint")
    model = build_classifier(getattr(transformers, cls.spec.model_class), checkpoint, ["a", "b", "c"])
    adapters = add_lora(model, parse_freeze({"lora": {"r": 2}}))
    assert adapters.targets and adapters.report.trainable > 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith(("classifier", "projector", "score", "head", "timm_model.classifier")) for n in trainable), trainable
    merged = adapters.merge()
    assert type(merged).__name__ == cls.spec.model_class.replace("AutoModelFor", "") or merged.config.num_labels == 3
    assert not [n for n, _ in merged.named_parameters() if "lora" in n]


def test_an_unset_rank_is_the_family_default_and_alpha_twice_it(tiny_bert):
    pytest.importorskip("timm")
    convolutional = transformers.TimmWrapperForImageClassification(  # timm's own 0.1 M-parameter EfficientNet
        transformers.TimmWrapperConfig(architecture="test_efficientnet", num_labels=2))
    attention = build_classifier(transformers.AutoModelForSequenceClassification, tiny_bert, ["a", "b"])
    for model, rank in ((convolutional, 4), (attention, 8)):  # pointwise convolutions: most of a CNN's weights
        adapters = add_lora(model, parse_freeze({"lora": {}}))
        assert (adapters.settings.r, adapters.settings.alpha) == (rank, 2.0 * rank)
        assert {p.shape[0] for n, p in model.named_parameters() if n.endswith("lora_A.default.weight")} == {rank}
        assert f"lora (r={rank}, alpha={2 * rank}" in str(adapters.report)
    assert "r=default, alpha=2r" in parse_freeze({"lora": {}}).describe()
    assert add_lora(transformers.TimmWrapperForImageClassification(convolutional.config),
                    parse_freeze({"lora": {"r": 8}})).settings.alpha == 16  # a rank the recipe sets is kept


def test_save_adapter_keeps_a_peft_folder_that_reproduces_the_merged_model(tiny_bert, tmp_path):
    import peft

    task = TextSentiment(tiny_bert, max_length=32)
    frame = pd.DataFrame(make_sentences(80, seed=4))
    task.fit(frame[:64], frame[64:], freeze={"lora": {"r": 4, "alpha": 8, "save_adapter": True}}, epochs=1,
             batch_size=16, learning_rate=2e-2, warmup_ratio=0.0)
    folder = task.save(tmp_path / "out")
    assert (folder / "config.json").is_file() and (folder / "adapter" / "adapter_config.json").is_file()
    base = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    adapted = peft.PeftModel.from_pretrained(base, folder / "adapter").eval()
    merged = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    batch = transformers.AutoTokenizer.from_pretrained(folder)(["a fine film", "dull and slow"], padding=True,
                                                               return_tensors="pt")
    with torch.no_grad():
        expected, got = merged(**batch).logits, adapted(**batch).logits
    assert torch.allclose(got, expected, atol=1e-5), (got, expected)  # the base's own head is random: the saved one


def test_a_mean_pooled_runs_adapter_applies_to_a_base_built_with_that_pooling(tiny_bert, tmp_path):
    """The README's recipe for the adapter of a mean-pooled run: the base from ``build_model(..., pooling="mean")``."""
    import peft

    task = TextSentiment(tiny_bert, max_length=32)
    frame = pd.DataFrame(make_sentences(80, seed=4))
    task.fit(frame[:64], frame[64:], freeze={"lora": {"r": 4, "alpha": 8, "save_adapter": True}}, pooling="mean",
             epochs=1, batch_size=16, learning_rate=2e-2, warmup_ratio=0.0)
    folder = task.save(tmp_path / "out")
    base = TextSentiment(tiny_bert, max_length=32).build_model(task.label_names, pooling="mean")
    adapted = peft.PeftModel.from_pretrained(base, folder / "adapter").eval()
    texts = ["a fine film", "dull and slow"]
    batch = transformers.AutoTokenizer.from_pretrained(tiny_bert)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = torch.softmax(adapted(**batch).logits, -1).numpy()
    assert np.allclose(got, task.predict_proba(texts), atol=1e-5)


def _tiny(kind: str):
    """(model, inputs, the layer names every block's default adapters must cover) for a small config."""
    T = transformers
    if kind == "vit":
        config = T.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             image_size=32, patch_size=8, num_labels=2)
        return T.ViTForImageClassification(config), {"pixel_values": torch.randn(2, 3, 32, 32)}, \
            {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"}
    if kind == "albert":
        config = T.AlbertConfig(vocab_size=40, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64, num_labels=2)
        return T.AlbertForSequenceClassification(config), {"input_ids": torch.randint(5, 40, (2, 7))}, \
            {"query", "key", "value", "dense", "ffn", "ffn_output"}
    if kind == "deberta":
        config = T.DebertaV2Config(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=64, num_labels=2)
        return T.DebertaV2ForSequenceClassification(config), {"input_ids": torch.randint(5, 40, (2, 7))}, \
            {"query_proj", "key_proj", "value_proj", "dense"}
    if kind == "convnext":
        config = T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=2)
        return T.ConvNextForImageClassification(config), {"pixel_values": torch.randn(2, 3, 32, 32)}, \
            {"pwconv1", "pwconv2"}
    config = T.WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                           conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
                           num_conv_pos_embedding_groups=2, num_labels=2)
    return T.WavLMForSequenceClassification(config), {"input_values": torch.randn(2, 4000)}, \
        {"intermediate_dense", "output_dense"}


@pytest.mark.parametrize("kind", ["vit", "albert", "deberta", "convnext", "wavlm"])
def test_default_targets_cover_each_blocks_layers_and_every_adapter_trains(kind):
    """Every default adapter sits on a layer the forward pass calls: after one backward pass each lora_B has a
    gradient (WavLM's attention reads its projections' weights without calling them, so they are left out)."""
    model, inputs, expected = _tiny(kind)
    adapters = add_lora(model, parse_freeze({"lora": {"r": 2}}))
    assert {target.rsplit(".", 1)[-1] for target in adapters.targets} == expected
    model(**inputs, labels=torch.tensor([0, 1])).loss.backward()
    dead = [n for n, p in model.named_parameters() if ".lora_B." in n and (p.grad is None or not p.grad.any())]
    assert not dead, dead


def test_naming_a_layer_the_model_never_calls_is_refused():
    model, _, _ = _tiny("wavlm")
    with pytest.raises(MtlError, match=r"target_modules: WavLMForSequenceClassification never calls \['q_proj'\]"):
        add_lora(model, parse_freeze({"lora": {"target_modules": ["q_proj", "fc1"]}}))
