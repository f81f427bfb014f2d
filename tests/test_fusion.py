"""Inference copies of convolutional networks: batch norms folded, 'same' padding static, the same answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mtl.modeling.fusion import inference_copy
from mtl.tasks import ImageClassification

from test_image_classification import TIMM_PREPROCESSING, colour_images


def _module_types(model: nn.Module) -> set[str]:
    return {type(module).__name__ for module in model.modules()}


def _randomise_norms(model: nn.Module) -> None:
    """Running statistics far from (0, 1), so a batch norm is not an identity a wrong fold could hide behind."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) * 3 + 0.2)
            module.weight.data.copy_(torch.randn(module.num_features, generator=generator))
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator))


def _same_padded_efficientnet() -> nn.Module:
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    torch.manual_seed(0)
    model = TimmWrapperForImageClassification(TimmWrapperConfig(architecture="test_efficientnet", num_labels=3,
                                                                model_args={"pad_type": "same"},
                                                                pretrained_cfg=TIMM_PREPROCESSING))
    _randomise_norms(model)
    return model.eval()


@pytest.mark.parametrize("size", [32, 33, 47])
def test_a_same_padded_efficientnet_folds_every_norm_and_predicts_alike_at_any_size(size):
    model = _same_padded_efficientnet()
    assert {"BatchNormAct2d", "Conv2dSame"} <= _module_types(model)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    probe = torch.randn(4, 3, 32, 32)
    fast = inference_copy(model, {"pixel_values": probe})

    assert fast is not model
    assert not {"BatchNormAct2d", "BatchNorm2d", "Conv2dSame"} & _module_types(fast)
    x = torch.randn(5, 3, size, size)  # TensorFlow's padding depends on the input size
    with torch.no_grad():
        torch.testing.assert_close(fast(pixel_values=x).logits, model(pixel_values=x).logits, atol=1e-5, rtol=1e-5)
    after = model.state_dict()  # the original, which training and saving use, is untouched
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert {"BatchNormAct2d", "Conv2dSame"} <= _module_types(model)


class _NormAndSkip(nn.Module):
    """A convolution whose output feeds its batch norm and a skip connection: folding would change the skip."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        y = self.conv(pixel_values)
        return (self.norm(y) + y).mean(dim=(2, 3))


def test_a_copy_whose_outputs_differ_is_not_used():
    model = _NormAndSkip()
    _randomise_norms(model)
    model.eval()
    assert inference_copy(model, {"pixel_values": torch.randn(2, 3, 8, 8)}) is model


class _StandardisedConv(nn.Conv2d):
    """Weight standardisation (BiT): the weights are renormalised on every call, so a fold would be undone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = (self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)) / (
            self.weight.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return self._conv_forward(x, weight, self.bias)


def test_a_convolution_that_rewrites_its_weights_is_not_folded():
    model = nn.Sequential(_StandardisedConv(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    _randomise_norms(model)
    model.eval()
    assert inference_copy(model, {"input": torch.randn(2, 3, 8, 8)}) is model


def test_a_plain_convolution_and_norm_fold_and_a_model_without_norms_is_returned_as_it_is():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    _randomise_norms(model)
    model.eval()
    x = torch.randn(3, 3, 8, 8)
    fast = inference_copy(model, {"input": x})
    assert isinstance(fast[1], nn.Identity)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), atol=1e-5, rtol=1e-5)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    assert inference_copy(plain, {"input": x}) is plain


def test_predictions_follow_the_weights_after_they_change(tmp_path):
    folder = tmp_path / "timm"
    model = _same_padded_efficientnet()
    model.save_pretrained(folder)
    task = ImageClassification(folder)
    task.fit(colour_images(32, 0), colour_images(16, 1), epochs=1, batch_size=16, warmup_ratio=0.0)
    images = colour_images(8, 3)["image"]
    first = task.predict_proba(images)
    np.testing.assert_allclose(task.predict_proba(images), first, atol=1e-6)

    seen = []  # a hook registered after the copy was made still fires: the copy shares the model's modules
    conv_head = task.model.timm_model.conv_head
    handle = conv_head.register_forward_hook(lambda module, args, output: seen.append(len(output)))
    np.testing.assert_allclose(task.predict_proba(images), first, atol=1e-6)
    handle.remove()
    assert sum(seen) == len(images)

    rare = int(first.mean(axis=0).argmin())
    assert not (first.argmax(axis=1) == rare).all()
    with torch.no_grad():  # the weights change in place, as an optimizer step changes them
        task.model.timm_model.classifier.bias[rare] += 50.0
    assert (task.predict_proba(images).argmax(axis=1) == rare).all()


def _speech_classifiers() -> dict[str, nn.Module]:
    """Tiny random Whisper (a 1-second encoder) and wav2vec2 classifiers; wav2vec2 reads an attention mask."""
    import transformers as t

    torch.manual_seed(0)
    whisper = t.WhisperForAudioClassification(t.WhisperConfig(
        num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
        max_source_positions=50, num_labels=3))
    wav2vec2 = t.Wav2Vec2ForSequenceClassification(t.Wav2Vec2Config(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=64, conv_dim=(16, 16, 16),
        conv_kernel=(10, 3, 3), conv_stride=(5, 4, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        classifier_proj_size=16, mask_time_prob=0.0, feat_extract_norm="layer", num_labels=3))
    return {"whisper": whisper.eval(), "wav2vec2": wav2vec2.eval()}


@pytest.mark.parametrize("kind", ["whisper", "wav2vec2"])
def test_speech_self_attention_is_fused_in_the_copy_with_the_same_logits(kind):
    from mtl.modeling.fused_attention import FusedSelfAttention

    model = _speech_classifiers()[kind]
    generator = torch.Generator().manual_seed(1)
    if kind == "whisper":
        probe = {"input_features": torch.randn(4, 16, 100, generator=generator)}
    else:  # a padded batch: the second clip's last 600 samples are padding, masked out
        mask = torch.ones(4, 1600, dtype=torch.long)
        mask[1, 1000:] = 0
        probe = {"input_values": torch.randn(4, 1600, generator=generator), "attention_mask": mask}
    fast = inference_copy(model, probe)
    fused = [module for module in fast.modules() if isinstance(module, FusedSelfAttention)]
    assert len(fused) == 2 and not any(isinstance(module, FusedSelfAttention) for module in model.modules())
    with torch.no_grad():
        expected, got = model(**probe).logits, fast(**probe).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert fused[0].out_proj is model.get_submodule(next(name for name, module in fast.named_modules()
                                                         if module is fused[0])).out_proj  # shared, not copied


def test_only_plain_bidirectional_self_attention_is_fused():
    from transformers.models.whisper.modeling_whisper import WhisperAttention

    from mtl.modeling.fused_attention import is_fusable_attention, plain_self_attention_call

    assert is_fusable_attention(WhisperAttention(32, 2))
    assert not is_fusable_attention(WhisperAttention(32, 2, is_decoder=True))  # causal, with a cache
    assert not is_fusable_attention(nn.MultiheadAttention(32, 2))
    hidden = torch.zeros(1, 5, 32)
    assert plain_self_attention_call((), {"hidden_states": hidden, "attention_mask": None, "use_cache": True})
    assert plain_self_attention_call((hidden,), {"attention_mask": torch.zeros(1, 1, 5, 5)})
    assert not plain_self_attention_call((), {"hidden_states": hidden, "output_attentions": True})
    assert not plain_self_attention_call((), {"hidden_states": hidden, "key_value_states": hidden})  # cross attention
    assert not plain_self_attention_call((), {"hidden_states": hidden, "attention_mask": torch.ones(1, 5)})


def test_a_fused_layer_passes_a_call_for_attention_weights_to_the_original():
    from mtl.modeling.fused_attention import FusedSelfAttention

    model = _speech_classifiers()["whisper"]
    model.config._attn_implementation = "eager"  # sdpa gives no attention weights
    probe = {"input_features": torch.randn(2, 16, 100, generator=torch.Generator().manual_seed(2))}
    fast = inference_copy(model, probe)
    with torch.no_grad():
        weights = fast(**probe, output_attentions=True).attentions
        plain = fast(**probe).logits
    assert any(isinstance(module, FusedSelfAttention) for module in fast.modules())
    assert len(weights) == 2 and weights[0].shape == (2, 2, 50, 50)  # computed by the original layers
    assert torch.allclose(plain, model(**probe).logits, atol=1e-5)
