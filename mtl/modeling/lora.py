"""LoRA through ``peft``: low-rank adapters beside chosen layers of a frozen backbone, the head trained in full,
merged into the weights afterwards so that the saved model stays a plain transformers folder.

Default layers per architecture family: every linear layer of the blocks (attention projections and feed-forward;
adapting all of them is what lets LoRA match full fine-tuning, QLoRA, Dettmers et al. 2023; on the sentiment recipe
82.9% with ``query``/``value`` alone, 84.4% with all, full fine-tuning 85.4%): BERT-like ``query``/``key``/``value``/
``dense``, DistilBERT ``q_lin``/.../``lin2``, MPNet ``q``/``k``/``v``/``o``/``dense``, Whisper and wav2vec2
``q_proj``/``k_proj``/``v_proj``/``out_proj`` and ``fc1``/``fc2`` or ``intermediate_dense``/``output_dense``, and
for convolutional timm backbones their pointwise (1x1) convolutions ``conv_pw``/``conv_pwl``. A family applies when
its first name is there. Depthwise convolutions are never adapted (peft's Conv2d LoRA needs ``groups == 1``).
Unless the recipe sets ``r``, the rank is 8, and 4 when the adapted layers are convolutions, whose pointwise
convolutions are most of a convolutional backbone's weights (EfficientNet-Lite0 on the digits: rank 4 trains 2.8%
of the parameters and reached 99.4%, rank 8 5.1% and 97.6%); ``alpha`` defaults to twice the rank.

Example::

    adapters = add_lora(model, parse_freeze({"lora": {"r": 8}}))
    ...train model...
    adapter = adapters.snapshot("sentence-transformers/all-MiniLM-L6-v2")   # with save_adapter: before merging
    model = adapters.merge()        # the plain transformers model with the updates folded in
    adapter.save(Path("out/adapter"))   # PeftModel.from_pretrained(base classifier, "out/adapter") loads it
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config.freeze import FreezeSpec, LoraSettings
from ..errors import MtlError
from .freezing import FreezeReport
from .locate import head_parameter_names

logger = logging.getLogger(__name__)

DEFAULT_TARGETS = (("query", "key", "value", "dense", "ffn", "ffn_output"),  # BERT-like (ALBERT: ffn, ffn_output)
                   ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense", "o_proj", "fc1",
                    "fc2"),  # Whisper, wav2vec2, HuBERT, WavLM; ViT and Swin name their output o_proj
                   ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"),  # DistilBERT
                   ("query_proj", "key_proj", "value_proj", "dense"),  # DeBERTa-v2
                   ("q", "k", "v", "o", "dense"),
                   ("conv_pw", "conv_pwl"),  # timm's EfficientNets
                   ("pwconv1", "pwconv2"))  # ConvNeXt's pointwise convolutions (linear layers)
# layers whose weights a model's forward reads without calling them, so an adapter on them would never run:
# WavLM's attention passes q_proj.weight etc. to F.multi_head_attention_forward
NOT_CALLED = {"wavlm": ("q_proj", "k_proj", "v_proj", "out_proj")}
DEFAULT_RANK = 8
CONVOLUTION_RANK = 4  # when every adapted layer is a convolution


@dataclass
class AdapterSnapshot:
    """The trained adapters and head as a PEFT adapter: its ``LoraConfig`` and tensors named as ``PeftModel`` saves
    them (``base_model.model.<layer>.lora_A.weight``; the head as a module to save)."""

    config: Any
    tensors: dict[str, torch.Tensor]

    def save(self, directory: Path) -> Path:
        """Write ``adapter_config.json`` and ``adapter_model.safetensors`` into ``directory``."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(str(directory))
        save_file(self.tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
        return directory


@dataclass
class LoraAdapters:
    """Adapters added to a model in place: what trains now, and :meth:`merge` to fold them in when done."""

    tuner: Any
    report: FreezeReport
    targets: list[str]
    settings: LoraSettings

    def merge(self) -> nn.Module:
        """The model with every adapter's update added to its layer, adapters removed (peft ``merge_and_unload``)."""
        return self.tuner.merge_and_unload()

    def snapshot(self, base_checkpoint: str) -> AdapterSnapshot:
        """The adapters and the head as they are now (call before :meth:`merge`), for the PEFT folder of a model
        built from ``base_checkpoint``."""
        model = self.tuner.model
        head = head_parameter_names(model)
        head_modules = sorted({name.rsplit(".", 1)[0] for name in head})
        tensors = {f"base_model.model.{name.replace('.default.', '.')}": value.detach().cpu().clone().contiguous()
                   for name, value in model.state_dict().items() if ".lora_" in name or name in head}
        config = _require_peft().LoraConfig(
            r=self.settings.r, lora_alpha=self.settings.alpha, lora_dropout=self.settings.dropout,
            target_modules=self.tuner.peft_config["default"].target_modules, modules_to_save=head_modules,
            base_model_name_or_path=base_checkpoint, inference_mode=True)
        return AdapterSnapshot(config, tensors)


def add_lora(model: nn.Module, spec: FreezeSpec) -> LoraAdapters:
    """Add LoRA adapters to ``model`` in place as ``spec.lora`` says; freeze all but the adapters and the head."""
    settings = spec.lora or LoraSettings()
    peft = _require_peft()
    head = head_parameter_names(model)
    targets = lora_targets(model, spec)
    settings = _with_rank(settings, [model.get_submodule(target) for target in targets])
    config = peft.LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                             target_modules="^(" + "|".join(map(re.escape, targets)) + ")$")
    tuner = peft.LoraModel(model, config, "default")  # injects into ``model`` itself; names outside targets keep
    named = list(model.named_parameters())
    for name, parameter in named:
        parameter.requires_grad_(".lora_" in name or name in head)
    report = FreezeReport(replace(spec, lora=settings), sum(p.numel() for _, p in named if p.requires_grad),
                          sum(p.numel() for _, p in named))
    logger.info("%s; adapters on %d layers (%s)", report, len(targets), ", ".join(sorted({t.rsplit('.', 1)[-1]
                                                                                         for t in targets})))
    return LoraAdapters(tuner, report, targets, settings)


def lora_targets(model: nn.Module, spec: FreezeSpec) -> list[str]:
    """The full names of the layers ``spec.lora`` adapts in ``model`` (its ``target_modules``, else the family's
    defaults); targets that match nothing are an :class:`MtlError` naming the layers there are, and so is a missing
    ``peft``. Changes nothing."""
    _require_peft()
    settings = spec.lora or LoraSettings()
    layers = _adaptable_layers(model, head_parameter_names(model))
    skipped = NOT_CALLED.get(getattr(getattr(model, "config", None), "model_type", ""), ())
    named = [target for target in settings.target_modules or () if target in skipped]
    if named:
        raise MtlError(f"model.freeze.lora.target_modules: {type(model).__name__} never calls {named} (its attention "
                       "reads their weights directly), so adapters there would never train; leave them out")
    if skipped:
        logger.info("lora: %s's attention reads %s's weights without calling them; adapting its other layers",
                    type(model).__name__, "/".join(skipped))
    layers = [layer for layer in layers if layer.rsplit(".", 1)[-1] not in skipped]
    return _chosen(layers, settings.target_modules, type(model).__name__, skipped)


def _with_rank(settings: LoraSettings, layers: list[nn.Module]) -> LoraSettings:
    """``settings`` with the rank and alpha filled in where unset: rank 4 when every adapted layer is a
    convolution, else 8; alpha twice the rank."""
    rank = settings.r
    if rank is None:
        rank = CONVOLUTION_RANK if all(isinstance(layer, nn.Conv2d) for layer in layers) else DEFAULT_RANK
    alpha = settings.alpha if settings.alpha is not None else 2.0 * rank
    return replace(settings, r=rank, alpha=alpha)


def _adaptable_layers(model: nn.Module, head: set[str]) -> list[str]:
    """Full names of the linear and non-grouped convolutional layers outside the head."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1):
            if not any(f"{name}.{p}" in head for p, _ in module.named_parameters(recurse=False)):
                found.append(name)
    return found


def _chosen(layers: list[str], wanted: tuple[str, ...] | None, model_name: str,
            skipped: tuple[str, ...] = ()) -> list[str]:
    """The layers named by ``wanted`` (names or name suffixes), or by the first default family whose first name
    (``skipped`` names left out) matches."""
    def matching(target: str) -> list[str]:
        return [layer for layer in layers if layer == target or layer.endswith("." + target)]

    if wanted:
        missing = [target for target in wanted if not matching(target)]
        if missing:
            known = sorted({layer.rsplit(".", 1)[-1] for layer in layers})
            raise MtlError(f"model.freeze.lora.target_modules: {missing} match no linear or convolutional layer of "
                           f"{model_name} outside its head; its layers are named {known}")
        return sorted({layer for target in wanted for layer in matching(target)})
    for family in DEFAULT_TARGETS:
        family = tuple(target for target in family if target not in skipped)
        if family and matching(family[0]):
            return sorted({layer for target in family for layer in matching(target)})
    known = sorted({layer.rsplit(".", 1)[-1] for layer in layers})
    raise MtlError(f"model.freeze.lora: no default layers to adapt in {model_name}; set target_modules to some of "
                   f"{known}")


def _require_peft() -> Any:
    try:
        import peft
    except ImportError:
        raise MtlError('model.freeze.lora needs peft: pip install "mtl[lora]" (or pip install peft)') from None
    return peft
