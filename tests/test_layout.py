"""Channels-last layout and the inference batch for convolutional models: faster kernels, the same answers."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from mtl.tasks import ImageClassification
from mtl.training.layout import fast_layout, inference_batch_size

from test_image_classification import build_model, colour_images


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def test_fast_layout_moves_convolutions_to_channels_last_and_leaves_other_models_alone(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    x = torch.randn(2, 3, 8, 8)
    expected = conv(x)
    parameters = list(conv.parameters())
    assert fast_layout(conv) is conv
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last) and not conv[0].weight.is_contiguous()
    assert all(a is b for a, b in zip(parameters, conv.parameters()))  # an optimizer made before still holds them
    torch.testing.assert_close(conv(x), expected)

    bert = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    before = {name: p.stride() for name, p in bert.named_parameters()}
    fast_layout(bert)
    assert {name: p.stride() for name, p in bert.named_parameters()} == before


def test_inference_batch_is_small_for_convolutions_on_the_cpu_and_a_request_wins(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    conv = torch.nn.Conv2d(3, 4, 3)
    bert = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    assert inference_batch_size(conv, "cpu") == 8  # the input size unknown
    assert inference_batch_size(conv, "cpu", pixels=224 * 224) == 7  # about 400,000 pixels a batch
    assert inference_batch_size(conv, "cpu", pixels=96 * 96) == 43
    assert inference_batch_size(conv, "cpu", pixels=32 * 32) == 64  # at most 64
    assert inference_batch_size(conv, "cpu", pixels=1024 * 1024) == 1
    assert inference_batch_size(bert, "cpu", pixels=224 * 224) == 64
    assert inference_batch_size(bert, "cpu") == 64
    assert inference_batch_size(conv, torch.device("cuda", 0)) == 64
    assert inference_batch_size(conv, "cpu", requested=32) == 32


def test_a_trained_image_model_predicts_alike_in_any_batch_and_saves_contiguous_weights(tmp_path):
    task = ImageClassification(build_model("resnet", tmp_path / "resnet"))
    task.fit(colour_images(48, 0), colour_images(16, 1), epochs=1, batch_size=16, warmup_ratio=0.0)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in _conv_weights(task.model))
    images = colour_images(12, 3)["image"]
    default = task.predict_proba(images)  # the CPU's small convolutional batch
    one_by_one = task.predict_proba(images, batch_size=1)
    np.testing.assert_allclose(default, one_by_one, atol=1e-5)

    folder = task.save(tmp_path / "saved")
    saved = load_file(str(folder / "model.safetensors"))
    assert all(tensor.is_contiguous() for tensor in saved.values())
    reloaded = ImageClassification.load(folder)
    np.testing.assert_allclose(reloaded.predict_proba(images), default, atol=1e-5)
