"""CTranslate2 Whisper variables (see :mod:`.ct2_reader`) to a transformers ``WhisperConfig`` and state dict.

Every variable is mapped or checked (decoder flags, alignment scalars, the tied projection alias); anything
left over is an error. CTranslate2 fuses q/k/v (and the cross-attention k/v) into one linear layer, keeps q
unscaled (like HF, which scales inside attention) and stores a zero key bias, which HF's k_proj does not have.

Example::

    config, state_dict = convert_variables(*read_ct2_model(Path("model.bin")))
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...errors import CheckpointError

if TYPE_CHECKING:
    from transformers import WhisperConfig

logger = logging.getLogger(__name__)

# Decoder flags CTranslate2 stores as scalars, with the only values HF Whisper can represent
# (activation 3 = exact GELU in CTranslate2's ActivationType).
_EXPECTED_FLAGS = {"decoder/activation": 3, "decoder/alibi": 0, "decoder/pre_norm": 1,
                   "decoder/scale_embeddings": 0, "decoder/start_from_zero_embedding": 0}
# Used by CTranslate2 only for word alignment; HF keeps alignment heads in generation_config.json.
_UNUSED_SCALARS = ("decoder/alignment_layer", "decoder/alignment_heads")
_TIED = ("decoder/projection/weight", "decoder/embeddings/weight")


class _Mapper:
    """Takes each CTranslate2 variable at most once and writes the HF tensors made from it into ``sd``."""

    def __init__(self, variables: dict[str, np.ndarray]):
        self.remaining = dict(variables)
        self.sd: dict[str, torch.Tensor] = {}

    def take(self, name: str) -> np.ndarray:
        """Remove and return variable ``name``; a missing or already used one is an error."""
        if name not in self.remaining:
            raise CheckpointError(f"CTranslate2 variable {name!r} is missing (or used twice)")
        return self.remaining.pop(name)

    def tensor(self, name: str) -> torch.Tensor:
        """:meth:`take` as a float32 tensor."""
        return torch.from_numpy(np.array(self.take(name), dtype=np.float32))  # always a writable copy

    def linear(self, dst: str, src: str) -> None:
        """A linear layer's weight and bias."""
        self.sd[f"{dst}.weight"], self.sd[f"{dst}.bias"] = self.tensor(f"{src}/weight"), self.tensor(f"{src}/bias")

    def norm(self, dst: str, src: str) -> None:
        """A layer norm: CTranslate2's gamma/beta to weight/bias."""
        self.sd[f"{dst}.weight"], self.sd[f"{dst}.bias"] = self.tensor(f"{src}/gamma"), self.tensor(f"{src}/beta")

    def fused(self, dst: str, src: str, parts: tuple[str, ...]) -> None:
        """Split a fused projection into HF's ``{part}_proj`` layers (the key keeps no bias)."""
        weight, bias = self.tensor(f"{src}/weight"), self.tensor(f"{src}/bias")
        if weight.shape[0] % len(parts):
            raise CheckpointError(f"{src}: {weight.shape[0]} rows do not split into {'/'.join(parts)}")
        for part, w, b in zip(parts, weight.chunk(len(parts)), bias.chunk(len(parts))):
            self.sd[f"{dst}.{part}_proj.weight"] = w.clone()
            if part == "k":  # HF Whisper's k_proj has no bias; CTranslate2 stores zeros
                if b.any():
                    raise CheckpointError(f"{src}: the key bias is not zero; cannot map to HF Whisper")
            else:
                self.sd[f"{dst}.{part}_proj.bias"] = b.clone()

    def layer_count(self, side: str) -> int:
        """How many ``{side}/layer_N`` blocks there are; they must be numbered 0..n-1."""
        found = {int(m.group(1)) for name in self.remaining if (m := re.match(rf"{side}/layer_(\d+)/", name))}
        if found != set(range(len(found))) or not found:
            raise CheckpointError(f"CTranslate2 {side} layers are {sorted(found)}; expected 0..n-1")
        return len(found)


def convert_variables(variables: dict[str, np.ndarray],
                      aliases: dict[str, str]) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """Map CTranslate2 Whisper variables to ``(WhisperConfig, HF state dict of float32 tensors)``.

    Every variable is mapped or checked (flags, alignment scalars, the tied projection alias); anything
    left over raises CheckpointError. ``proj_out.weight`` is the same tensor as the token embeddings.
    """
    config, sd, stats = map_variables(variables, aliases)
    logger.info("mapped %d CTranslate2 tensors (%d variables in all: %s)", stats["tensors_mapped"],
                stats["variables"], stats)
    return config, sd


def map_variables(variables: dict[str, np.ndarray],
                  aliases: dict[str, str]) -> tuple[WhisperConfig, dict[str, torch.Tensor], dict[str, int]]:
    """:func:`convert_variables` plus counts of what was mapped, checked or left unused (for the record)."""
    mapper = _Mapper(variables)
    flags, unused = _check_flags_and_aliases(mapper, variables, aliases)
    n_enc, n_dec = mapper.layer_count("encoder"), mapper.layer_count("decoder")
    heads = int(mapper.take("encoder/num_heads")), int(mapper.take("decoder/num_heads"))
    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            _map_layer(mapper, side, i)
        mapper.norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        mapper.sd[f"model.{side}.embed_positions.weight"] = mapper.tensor(f"{side}/position_encodings/encodings")
    mapper.linear("model.encoder.conv1", "encoder/conv1")
    mapper.linear("model.encoder.conv2", "encoder/conv2")
    embed = mapper.sd["model.decoder.embed_tokens.weight"] = mapper.tensor("decoder/embeddings/weight")
    mapper.sd["proj_out.weight"] = embed  # tied, as CTranslate2's alias says
    if mapper.remaining:
        raise CheckpointError(f"{len(mapper.remaining)} CTranslate2 variables have no HF counterpart: "
                              f"{sorted(mapper.remaining)[:8]} (quantized or unknown model?)")
    config = _whisper_config(mapper.sd, (n_enc, n_dec), heads)
    tensors = len(variables) - flags - unused - 2  # the two num_heads scalars
    stats = {"variables": len(variables), "tensors_mapped": tensors, "flags_checked": flags,
             "scalars_unused": unused, "num_heads_scalars": 2, "aliases_tied": len(aliases)}
    return config, mapper.sd, stats


def _check_flags_and_aliases(mapper: _Mapper, variables: dict[str, np.ndarray],
                             aliases: dict[str, str]) -> tuple[int, int]:
    """Take the decoder flags (each must hold the value HF Whisper implies) and the alignment scalars;
    check the only alias is the tied output projection. Returns (flags checked, scalars unused)."""
    for name, expected in _EXPECTED_FLAGS.items():
        if name in mapper.remaining and int(mapper.take(name)) != expected:
            raise CheckpointError(f"CTranslate2 flag {name} = {int(variables[name])}; only {expected} "
                                  "matches HF Whisper")
    flags = len(variables) - len(mapper.remaining)
    unused = [mapper.remaining.pop(name) for name in _UNUSED_SCALARS if name in mapper.remaining]
    for alias, target in aliases.items():
        if (alias, target) != _TIED:
            raise CheckpointError(f"unexpected CTranslate2 alias {alias!r} -> {target!r}")
    return flags, len(unused)


def _map_layer(mapper: _Mapper, side: str, i: int) -> None:
    """One encoder or decoder layer: self-attention, (decoder) cross-attention, feed-forward, their norms."""
    dst, src = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
    mapper.fused(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q", "k", "v"))
    mapper.linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
    mapper.norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
    if side == "decoder":
        mapper.linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        mapper.fused(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k", "v"))
        mapper.linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        mapper.norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
    mapper.linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
    mapper.linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
    mapper.norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")


def _whisper_config(sd: dict[str, torch.Tensor], layers: tuple[int, int], heads: tuple[int, int]) -> WhisperConfig:
    """The ``WhisperConfig`` the mapped tensors imply (sizes from their shapes, special ids from the vocabulary)."""
    from transformers import WhisperConfig

    vocab, d_model = sd["model.decoder.embed_tokens.weight"].shape
    # Whisper's vocabularies: <|endoftext|> follows the 50256 (english) or 50257 (multilingual) BPE tokens
    eot = 50256 + int(vocab >= 51865)
    ids = dict(pad_token_id=eot, eos_token_id=eot, bos_token_id=eot, decoder_start_token_id=eot + 1) \
        if vocab >= 51864 else dict(pad_token_id=None, eos_token_id=None, bos_token_id=None)
    return WhisperConfig(
        vocab_size=vocab, num_mel_bins=sd["model.encoder.conv1.weight"].shape[1], d_model=d_model,
        encoder_layers=layers[0], decoder_layers=layers[1], encoder_attention_heads=heads[0],
        decoder_attention_heads=heads[1], encoder_ffn_dim=sd["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=sd["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=sd["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=sd["model.decoder.embed_positions.weight"].shape[0],
        tie_word_embeddings=True, **ids,
    )
