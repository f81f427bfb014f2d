"""Keyword spotting: a pretrained speech encoder (Whisper, wav2vec2, HuBERT, WavLM, AST) classifies short clips.

Audio is decoded once (soundfile; mono; resampled with torchaudio to the feature extractor's rate; cached as
int16 for files, float32 for arrays), padded or cropped to ``clip_seconds`` when examples are read (a random crop
while training), augmented only while training (time shift, gain,
background noise at a random SNR, SpecAugment masks on spectrogram inputs), then turned into features
by the checkpoint's own feature extractor, so ``pipeline("audio-classification", model=OUT)`` agrees with
:meth:`KeywordSpotting.predict`. A Whisper checkpoint is cut to the clip length (50 encoder positions per
second) once and cached, so a one-second clip costs milliseconds instead of a 30-second window.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from datasets import Dataset

from mtl.data.audio import (AUDIO_SUFFIXES, SILENCE, UNKNOWN, audio_files, check_readable, crop_clip, fit_length,
                            from_pcm16, load_clip, to_pcm16)
from mtl.errors import DataError, MtlError, OutputExistsError
from mtl.sources import ResolvedCheckpoint, resolve_checkpoint
from mtl.sources.cache import cache_root
from mtl.task import Task, TaskSpec, register_task
from mtl.task.decoding import decoded_inputs, is_decoded

from .keyword_detection import Detection, merge_windows, window_starts


@dataclass
class AudioOptions:
    """Clip length and train-time augmentation (recipe section ``preprocess``); evaluation never augments."""

    clip_seconds: float = 1.0  # every clip is padded or cropped to this length
    augment: bool = True  # master switch for all augmentation below
    time_shift: float = 0.1  # shift by up to this many seconds either way (zeros fill the gap)
    gain_db: float = 6.0  # random gain within +-gain_db decibels
    noise_probability: float = 0.5  # share of training clips mixed with background noise
    noise_snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0])  # SNR drawn uniformly from this range
    background_noise: str | None = None  # folder or file of noise recordings; None: white noise
    freq_mask: int = 10  # SpecAugment: mask up to this many mel bins (spectrogram models only; 0: off)
    time_mask: int = 10  # SpecAugment: mask up to this many frames (spectrogram models only; 0: off)

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.clip_seconds <= 30:
            problems.append(f"clip_seconds must be in (0, 30], got {self.clip_seconds}")
        if not 0 <= self.noise_probability <= 1:
            problems.append(f"noise_probability must be between 0 and 1, got {self.noise_probability}")
        if len(self.noise_snr_db) != 2 or self.noise_snr_db[0] > self.noise_snr_db[1]:
            problems.append(f"noise_snr_db must be [low, high] decibels, got {self.noise_snr_db}")
        problems += [f"{name} must not be negative, got {getattr(self, name)}"
                     for name in ("time_shift", "gain_db", "freq_mask", "time_mask") if getattr(self, name) < 0]
        if problems:
            raise ValueError("; ".join(problems))


@register_task("keyword-spotting")
class KeywordSpotting(Task):
    """Classify one-second speech clips into keywords (plus ``_unknown_`` and ``_silence_``); find them in
    long recordings with :meth:`detect`."""

    spec = TaskSpec(
        modality="audio",
        model_class="AutoModelForAudioClassification",
        processor_class="AutoFeatureExtractor",
        default_checkpoint="openai/whisper-tiny.en",
        checkpoints=("facebook/wav2vec2-base", "facebook/hubert-base-ls960", "microsoft/wavlm-base-plus",
                     "MIT/ast-finetuned-speech-commands-v2"),
        input_column="audio",
        input_candidates=("audio", "path", "file", "filename", "file_path", "wav", "speech", "clip"),
        pipeline_tag="audio-classification",
        file_suffixes=AUDIO_SUFFIXES,
        intended_use="short audio clips recorded like the training clips (same sampling rate, microphones, noise)",
    )
    Options = AudioOptions
    transforms_on_the_fly = True
    decoded_columns = ("clip", "clip_dtype")  # raw sample bytes at the extractor's rate, "int16" or "float32"

    def __init__(self, checkpoint: str | Path | None = None, *, revision: str | None = None, **options: Any):
        super().__init__(checkpoint, revision=revision, **options)
        self._noise_bank: list[np.ndarray] | None = None  # background-noise recordings, loaded once

    # ---- checkpoint ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Resolve the checkpoint; a Whisper encoder longer than the clip is cut to it (once, cached)."""
        if self.source is None:
            self.source = _clip_sized(resolve_checkpoint(self.checkpoint, self.revision), self.options.clip_seconds)
        super().prepare()

    @property
    def sampling_rate(self) -> int:
        """The rate the feature extractor expects; every clip is resampled to it."""
        self.prepare()
        return int(self.processor.sampling_rate)

    # ---- features ---------------------------------------------------------------------------------------
    def decode(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Whole recordings at the extractor's rate: int16 when read from files (lossless for 16-bit PCM),
        float32 when given as arrays (kept exact)."""
        rate = self.sampling_rate
        waves = [load_clip(source, rate, None, where="audio") for source in batch["audio"]]
        files = all(isinstance(s, (str, bytes)) or (isinstance(s, dict) and s.get("array") is None
                                                    and s.get("raw") is None) for s in batch["audio"])
        clips = [to_pcm16(wave) if files else wave for wave in waves]
        return {"clip": [clip.tobytes() for clip in clips], "clip_dtype": [str(clip.dtype) for clip in clips]}

    def decode_settings(self) -> Any:
        return {"rate": self.sampling_rate, "clip": "pcm16-or-float32"}

    def transform(self, batch: dict[str, list[Any]], *, train: bool) -> dict[str, Any]:
        rate, samples = self.sampling_rate, self._clip_samples()
        augment = train and self.options.augment
        rng = np.random.default_rng(int(np.random.randint(2**31))) if augment else None
        if "clip" not in batch:  # raw inputs (a batch given directly)
            batch = {**batch, **self.decode(batch)}
        waves = [from_pcm16(np.frombuffer(clip, np.int16)) if dtype == "int16" else np.frombuffer(clip, np.float32).copy()
                 for clip, dtype in zip(batch["clip"], batch["clip_dtype"])]
        clips = [crop_clip(wave, samples, rng) for wave in waves]
        if augment:
            clips = [self._augment_wave(clip, rng) for clip in clips]
        extracted = self.processor(clips, sampling_rate=rate, return_tensors="pt")
        key = self.processor.model_input_names[0]
        features = {key: extracted[key]}
        if "attention_mask" in extracted and getattr(self.processor, "return_attention_mask", False):
            features["attention_mask"] = extracted["attention_mask"]
        if augment and features[key].ndim == 3:
            features[key] = self._mask_spectrogram(features[key], mel_axis=1 if key == "input_features" else 2)
        if "label" in batch:
            features["labels"] = torch.as_tensor(batch["label"])
        return features

    def inputs_to_dataset(self, inputs: Sequence[Any]) -> Dataset:
        """Paths, arrays (at the extractor's rate) or ``{"array", "sampling_rate"}`` dicts, decoded to clips."""
        rate, samples = self.sampling_rate, self._clip_samples()
        clips = [load_clip(item, rate, samples, where=f"input {i + 1}") for i, item in enumerate(inputs)]
        return Dataset.from_dict({"audio": clips})

    def check_inputs(self, split: Dataset, column: str, where: str) -> None:
        """Every file opens (the bad ones named); then decoded once, so a re-run opens no file again. Decoding needs
        the checkpoint's rate: when the checkpoint cannot be loaded, the files are checked and its error comes later."""
        try:
            self.prepare()
        except MtlError:
            check_readable(split, column, where)
            return
        if not is_decoded(self, split, column):
            check_readable(split, column, where)
            decoded_inputs(self, split, column)

    def sample_inputs(self, count: int = 4, seed: int = 0) -> list[Any]:
        """Tones of rising pitch over faint noise, one clip each, at the extractor's rate."""
        rng, rate = np.random.default_rng(seed), self.sampling_rate
        t = np.arange(self._clip_samples()) / rate
        return [(0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
                for i in range(count)]

    def onnx_dynamic_axes(self, name: str, tensor: torch.Tensor) -> list[int]:
        return [0, tensor.dim() - 1]  # batch and time

    def usage_code(self, model: str, trust_remote_code: bool = False) -> list[str]:
        *lines, call = super().usage_code(model, trust_remote_code)
        return ["import soundfile", 'samples, rate = soundfile.read("clip.wav", dtype="float32")', "", *lines,
                call + "  # a file path works too where ffmpeg is installed"]

    def usage_input(self) -> str:
        return '{"raw": samples, "sampling_rate": rate}'

    @classmethod
    def tiny_checkpoint(cls, folder: Path) -> Path:
        """A 2-layer wav2vec2 with a small convolutional front end and its feature extractor."""
        import transformers as t

        torch.manual_seed(0)
        t.Wav2Vec2Model(t.Wav2Vec2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
            conv_kernel=(10, 3, 3), conv_stride=(5, 4, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
            classifier_proj_size=16, mask_time_prob=0.0)).save_pretrained(folder)
        t.Wav2Vec2FeatureExtractor().save_pretrained(folder)
        return folder

    @classmethod
    def synthetic_examples(cls, count: int, seed: int = 0) -> dict[str, list[Any]]:
        """One-second 16 kHz clips: a high or a low tone at a random loudness over faint noise."""
        rng, rate = np.random.default_rng(seed), 16_000
        t = np.arange(rate) / rate
        clips, labels = [], []
        for i in range(count):
            label, pitch = ("high", 1500.0) if i % 2 else ("low", 500.0)
            loudness = 10 ** rng.uniform(-1.3, -0.2)
            wave = loudness * np.sin(2 * np.pi * pitch * t + rng.uniform(0, 6)) + 0.003 * rng.standard_normal(rate)
            clips.append({"array": wave.astype(np.float32), "sampling_rate": rate})
            labels.append(label)
        return {"audio": clips, "label": labels}

    # ---- detection in long recordings ------------------------------------------------------------------
    def detect(self, recording: Any, *, sampling_rate: int | None = None, threshold: float = 0.5,
               hop: float = 0.25, ignore: Sequence[str] = (SILENCE, UNKNOWN), batch_size: int = 32) -> list[Detection]:
        """Slide the classifier over ``recording`` (a path or an array) every ``hop`` seconds; return
        ``(keyword, start_s, end_s, score)`` events scoring at least ``threshold``, overlapping windows merged."""
        self._require_model("detect")
        if not 0 < threshold <= 1 or hop <= 0:
            raise DataError(f"detect: threshold must be in (0, 1] and hop positive, got {threshold} and {hop}")
        rate, samples = self.sampling_rate, self._clip_samples()
        source = {"array": recording, "sampling_rate": sampling_rate} if sampling_rate else recording
        audio = load_clip(source, rate, None, where="recording")
        starts = window_starts(len(audio), samples, max(1, round(hop * rate)))
        model = self.model.eval()
        device = next(model.parameters()).device
        probabilities = []
        with torch.no_grad():
            for i in range(0, len(starts), batch_size):
                windows = [fit_length(audio[s:s + samples], samples) for s in starts[i:i + batch_size]]
                features = {k: v.to(device) for k, v in self.transform({"audio": windows}, train=False).items()}
                probabilities.append(torch.softmax(model(**features).logits.float(), -1).cpu().numpy())
        return merge_windows([s / rate for s in starts], samples / rate, np.concatenate(probabilities),
                             self.label_names, threshold=threshold, ignore=ignore)

    # ---- augmentation ----------------------------------------------------------------------------------
    def _clip_samples(self) -> int:
        return int(round(self.options.clip_seconds * self.sampling_rate))

    def _augment_wave(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import torchaudio.functional as F

        options, wave = self.options, torch.from_numpy(clip)
        shift = int(rng.uniform(-options.time_shift, options.time_shift) * self.sampling_rate)
        if shift:  # move the clip; the samples rolled in from the other end become silence
            wave = torch.roll(wave, shift)
            (wave[:shift] if shift > 0 else wave[shift:]).zero_()
        if options.gain_db:
            wave = F.gain(wave, float(rng.uniform(-options.gain_db, options.gain_db)))
        if rng.random() < options.noise_probability:
            noise = torch.from_numpy(self._noise(len(clip), rng))
            snr = torch.tensor([rng.uniform(*options.noise_snr_db)], dtype=torch.float32)
            if wave.pow(2).mean() > 1e-8 and noise.pow(2).mean() > 1e-12:
                wave = F.add_noise(wave[None], noise[None], snr)[0]
            else:  # a silent clip has no signal power to measure the SNR against: add quiet noise
                wave = wave + noise / noise.abs().max().clamp_min(1e-6) * float(rng.uniform(0.001, 0.05))
        return wave.clamp(-1, 1).numpy()

    def _noise(self, length: int, rng: np.random.Generator) -> np.ndarray:
        if self.options.background_noise is None:
            return rng.standard_normal(length).astype(np.float32)
        bank = self._noise_bank
        if bank is None:
            folder = Path(self.options.background_noise).expanduser()
            files = audio_files(folder) if folder.is_dir() else [folder]
            bank = self._noise_bank = [load_clip(str(f), self.sampling_rate, None, where="background_noise")
                                       for f in files]
            if not bank:
                raise DataError(f"background_noise: no audio files in {folder}")
        recording = bank[int(rng.integers(len(bank)))]
        if len(recording) <= length:
            return fit_length(recording, length)
        start = int(rng.integers(0, len(recording) - length))
        return recording[start:start + length]

    def _mask_spectrogram(self, spectrogram: torch.Tensor, mel_axis: int) -> torch.Tensor:
        """SpecAugment on the whole batch: torchaudio draws one frequency and one time mask per item
        (``iid_masks``); masked cells take the item's mean."""
        from torchaudio.transforms import FrequencyMasking, TimeMasking

        batch = spectrogram if mel_axis == 1 else spectrogram.transpose(1, 2)  # (batch, mel, time)
        size, mels, frames = batch.shape
        # torchaudio fills with a number, not a per-item mean: masks are drawn on ones (a channel axis added),
        # one band of mel bins and one of frames per item, then filled with the item's mean here
        rows = torch.zeros(size, mels, 1, dtype=torch.bool, device=batch.device)
        columns = torch.zeros(size, 1, frames, dtype=torch.bool, device=batch.device)
        if self.options.freq_mask:
            masking = FrequencyMasking(min(self.options.freq_mask, mels), iid_masks=True)
            rows = masking(torch.ones(size, 1, mels, 1, device=batch.device), 0.0)[:, 0] == 0
        if self.options.time_mask:
            masking = TimeMasking(min(self.options.time_mask, frames), iid_masks=True)
            columns = masking(torch.ones(size, 1, 1, frames, device=batch.device), 0.0)[:, 0] == 0
        batch = torch.where(rows | columns, batch.mean(dim=(1, 2), keepdim=True), batch)
        return batch if mel_axis == 1 else batch.transpose(1, 2).contiguous()


def _clip_sized(resolved: ResolvedCheckpoint, clip_seconds: float) -> ResolvedCheckpoint:
    """A Whisper checkpoint whose encoder spans the clip instead of 30 s (cached); other checkpoints as they are."""
    from mtl.sources.converters.whisper_ct2 import shorten_for_clips

    config = json.loads((resolved.path / "config.json").read_text())
    seconds = max(1, math.ceil(clip_seconds))
    if config.get("model_type") != "whisper" or config.get("max_source_positions", 0) <= 50 * seconds:
        return resolved
    key = hashlib.sha256(f"v2|{resolved.path}|{(resolved.path / 'config.json').stat().st_mtime_ns}".encode())
    out = cache_root() / "whisper-clips" / f"{key.hexdigest()[:16]}-{seconds}s"
    if not (out / "config.json").is_file():
        try:
            shorten_for_clips(resolved.path, out, seconds)
        except OutputExistsError:
            if not (out / "config.json").is_file():
                raise
    return ResolvedCheckpoint(resolved.requested, out, f"{resolved.source}; encoder cut to {seconds}-s clips")
