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
