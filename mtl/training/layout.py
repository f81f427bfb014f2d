"""The memory layout and inference batch size that suit a model on its device.

Convolutional networks run faster with their 4-D weights in channels-last layout: oneDNN (CPU) and cuDNN (GPU)
pick their fast kernels for it. On 2 CPU cores EfficientNet-Lite0 at 224 px trains 1.47x faster (fp32, batch 32;
1.48x under bf16 autocast) and predicts 2.2x faster. On the CPU the same network also predicts faster in batches
of about 400,000 pixels, whose activations stay small (with its batch norms folded, images/s by batch size)::

    96 px:  batch 8: 840, 16: 1183, 32: 1474    (64 is the cap)
    160 px: batch 8: 505, 16:  583, 32:  351
    224 px: batch 4: 260,  8:  296, 16:  221, 32: 142

Example::

    model = fast_layout(model)                                  # channels-last when it has 2-D convolutions
    batch = inference_batch_size(model, "cpu", pixels=224 * 224)  # 7 for such a model on the CPU, else 64
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

DEFAULT_INFERENCE_BATCH = 64
CONVOLUTIONAL_CPU_INFERENCE_BATCH = 8  # when the input size is not known
CPU_PIXELS_PER_BATCH = 400_000  # a convolutional network's inference batch on the CPU: about 8 images of 224 px


def has_2d_convolutions(model: nn.Module) -> bool:
    """Whether ``model`` has any ``nn.Conv2d`` layer (a timm CNN, a ViT's patch embedding)."""
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def fast_layout(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D weights in channels-last layout when it has 2-D convolutions (in place; the same
    parameter objects, so an optimizer made before or after still holds them). Saved files are unchanged:
    transformers, accelerate and safetensors write contiguous copies."""
    if has_2d_convolutions(model):
        model.to(memory_format=torch.channels_last)
    return model


def inference_batch_size(model: nn.Module, device: torch.device | str, requested: int | None = None,
                         pixels: int | None = None) -> int:
    """``requested``, or when it is None the batch that runs fastest for ``model`` on ``device``: for convolutional
    networks on the CPU about :data:`CPU_PIXELS_PER_BATCH` pixels (``pixels`` per example; 8 examples when it is not
    known), at most 64; 64 otherwise."""
    if requested is not None:
        return requested
    if torch.device(device).type != "cpu" or not has_2d_convolutions(model):
        return DEFAULT_INFERENCE_BATCH
    if not pixels:
        return CONVOLUTIONAL_CPU_INFERENCE_BATCH
    return max(1, min(CPU_PIXELS_PER_BATCH // pixels, DEFAULT_INFERENCE_BATCH))


def pixels_per_example(example: Mapping[str, Any]) -> int | None:
    """Height x width of an example's ``pixel_values`` (channels first), or None when it has none."""
    values = example.get("pixel_values")
    shape = getattr(values, "shape", None) or (np.shape(values) if values is not None else None)
    return int(shape[-1] * shape[-2]) if shape is not None and len(shape) >= 3 else None
