"""The keyword task's options (clip length, augmentation) and train-time augmentation of keyword clips: time
shift, gain, background noise at a random SNR, SpecAugment masks, and the partial-word and background windows
of streaming training (``streaming_negatives``).

Used by :class:`mtl.tasks.KeywordSpotting` while training; evaluation never augments; registers no task.

Example::

    wave = augment_wave(clip, options, 16_000, rng, noise_bank)          # options: AudioOptions
    clips, labels = streaming_negatives(clips, labels, names, 0.25, rng, 16_000)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mtl.data.audio import SILENCE, UNKNOWN, audio_files, fit_length, load_clip
from mtl.errors import DataError


@dataclass
class AudioOptions:
    """Clip length and train-time augmentation (recipe section ``preprocess``); evaluation never augments."""

    clip_seconds: float = 1.0  # every clip is padded or cropped to this length
    augment: bool = True  # master switch for all augmentation below
    time_shift: float = 0.1  # shift by up to this many seconds either way (zeros fill the gap)
    gain_db: float = 6.0  # random gain within +-gain_db decibels
    noise_probability: float = 0.5  # share of training clips mixed with background noise
    noise_snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0])  # SNR drawn uniformly from this range
    background_noise: str | None = None  # folder or file of noise recordings; "_silence_": the training split's
    # _silence_ clips (Speech Commands cuts them from background-noise recordings); None: white noise
    freq_mask: int = 10  # SpecAugment: mask up to this many mel bins (spectrogram models only; 0: off)
    time_mask: int = 10  # SpecAugment: mask up to this many frames (spectrogram models only; 0: off)
    streaming_negatives: float = 0.0  # share of keyword clips turned into partial words (_unknown_) or background

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.clip_seconds <= 30:
            problems.append(f"clip_seconds must be in (0, 30], got {self.clip_seconds}")
        problems += [f"{name} must be between 0 and 1, got {getattr(self, name)}"
                     for name in ("noise_probability", "streaming_negatives") if not 0 <= getattr(self, name) <= 1]
        if len(self.noise_snr_db) != 2 or self.noise_snr_db[0] > self.noise_snr_db[1]:
            problems.append(f"noise_snr_db must be [low, high] decibels, got {self.noise_snr_db}")
        problems += [f"{name} must not be negative, got {getattr(self, name)}"
                     for name in ("time_shift", "gain_db", "freq_mask", "time_mask") if getattr(self, name) < 0]
        if problems:
            raise ValueError("; ".join(problems))


def noise_files(noise: str, where: str) -> list[Path]:
    """The audio files of a noise folder (or the one file); a DataError names ``where`` when there are none."""
    folder = Path(noise).expanduser()
    files = audio_files(folder) if folder.is_dir() else [folder] if folder.is_file() else []
    if not files:
        raise DataError(f"{where}: no audio files at {folder}; give a folder of noise recordings "
                        "(e.g. _background_noise_) or one file")
    return files


def load_noise(noise: str, rate: int, where: str) -> list[np.ndarray]:
    """The recordings of a noise folder (or one file) at ``rate``; a DataError names ``where`` when there are none."""
    return [load_clip(str(f), rate, None, where=where) for f in noise_files(noise, where)]


def augment_wave(clip: np.ndarray, options: Any, rate: int, rng: np.random.Generator,
                 noise_bank: Sequence[np.ndarray] | None) -> np.ndarray:
    """Shift, gain and (sometimes) noise from ``noise_bank`` (white noise when None), as ``options`` say."""
    import torchaudio.functional as F

    wave = torch.from_numpy(clip)
    shift = int(rng.uniform(-options.time_shift, options.time_shift) * rate)
    if shift:  # move the clip; the samples rolled in from the other end become silence
        wave = torch.roll(wave, shift)
        (wave[:shift] if shift > 0 else wave[shift:]).zero_()
    if options.gain_db:
        wave = F.gain(wave, float(rng.uniform(-options.gain_db, options.gain_db)))
    if rng.random() < options.noise_probability:
        noise = torch.from_numpy(_noise(noise_bank, len(clip), rng))
        snr = torch.tensor([rng.uniform(*options.noise_snr_db)], dtype=torch.float32)
        if wave.pow(2).mean() > 1e-8 and noise.pow(2).mean() > 1e-12:
            wave = F.add_noise(wave[None], noise[None], snr)[0]
        else:  # a silent clip has no signal power to measure the SNR against: add quiet noise
            wave = wave + noise / noise.abs().max().clamp_min(1e-6) * float(rng.uniform(0.001, 0.05))
    return wave.clamp(-1, 1).numpy()


def _noise(bank: Sequence[np.ndarray] | None, length: int, rng: np.random.Generator) -> np.ndarray:
    if bank is None:
        return rng.standard_normal(length).astype(np.float32)
    recording = bank[int(rng.integers(len(bank)))]
    if len(recording) <= length:
        return fit_length(recording, length)
    start = int(rng.integers(0, len(recording) - length))
    return recording[start:start + length]


def mask_spectrogram(spectrogram: torch.Tensor, mel_axis: int, freq_mask: int, time_mask: int) -> torch.Tensor:
    """SpecAugment on the whole batch: torchaudio draws one frequency and one time mask per item
    (``iid_masks``); masked cells take the item's mean."""
    from torchaudio.transforms import FrequencyMasking, TimeMasking

    batch = spectrogram if mel_axis == 1 else spectrogram.transpose(1, 2)  # (batch, mel, time)
    size, mels, frames = batch.shape
    # torchaudio fills with a number, not a per-item mean: masks are drawn on ones (a channel axis added),
    # one band of mel bins and one of frames per item, then filled with the item's mean here
    rows = torch.zeros(size, mels, 1, dtype=torch.bool, device=batch.device)
    columns = torch.zeros(size, 1, frames, dtype=torch.bool, device=batch.device)
    if freq_mask:
        masking = FrequencyMasking(min(freq_mask, mels), iid_masks=True)
        rows = masking(torch.ones(size, 1, mels, 1, device=batch.device), 0.0)[:, 0] == 0
    if time_mask:
        masking = TimeMasking(min(time_mask, frames), iid_masks=True)
        columns = masking(torch.ones(size, 1, 1, frames, device=batch.device), 0.0)[:, 0] == 0
    batch = torch.where(rows | columns, batch.mean(dim=(1, 2), keepdim=True), batch)
    return batch if mel_axis == 1 else batch.transpose(1, 2).contiguous()


def word_extent(clip: np.ndarray, rate: int, floor_db: float = 25.0) -> tuple[int, int]:
    """``(start, end)`` samples of the voiced part of ``clip``: frames (25 ms, 10 ms apart) louder than both
    ``floor_db`` below the loudest frame and 6 dB above the quietest tenth; the whole clip when it is flat."""
    frame, hop = max(1, int(0.025 * rate)), max(1, int(0.010 * rate))
    if len(clip) < frame:
        return 0, len(clip)
    frames = np.lib.stride_tricks.sliding_window_view(clip.astype(np.float64), frame)[::hop]
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level >= max(level.max() - floor_db, np.percentile(level, 10) + 6.0))
    if not len(loud) or level.max() - np.percentile(level, 10) < 6.0:
        return 0, len(clip)
    return int(loud[0] * hop), int(min(len(clip), loud[-1] * hop + frame))


def streaming_negatives(clips: list[np.ndarray], labels: list[int], label_names: Sequence[str], share: float,
                        rng: np.random.Generator, rate: int, *, unknown: str = UNKNOWN,
                        silence: str = SILENCE) -> tuple[list[np.ndarray], list[int]]:
    """Turn about ``share`` of the keyword clips into the windows a sliding detector sees between words.

    Three in four become a shifted word cut to its first or last 20-50% (labelled ``unknown``), the rest
    the clip's background with the word cut out (``silence``); a label the model lacks is not used.
    """
    names = list(label_names)
    targets = {kind: names.index(kind) for kind in (unknown, silence) if kind in names}
    if not targets:
        return clips, labels
    clips, labels = list(clips), list(labels)
    for i, (clip, label) in enumerate(zip(clips, labels)):
        if names[label] in (unknown, silence) or rng.random() >= share:
            continue
        start, end = word_extent(clip, rate)
        if end - start >= len(clip) - 1:  # no quieter background: the word's extent is unknown
            continue
        if silence in targets and (unknown not in targets or rng.random() < 0.25):
            clips[i], labels[i] = _without(clip, start, end), targets[silence]
            continue
        kept = int(rng.uniform(0.2, 0.5) * (end - start))
        shift = len(clip) - (start + kept) if rng.random() < 0.5 else -(end - kept)  # head at the end, or tail first
        clips[i], labels[i] = _shifted(clip, shift), targets[unknown]
    return clips, labels


def _shifted(clip: np.ndarray, shift: int) -> np.ndarray:
    out = np.zeros_like(clip)
    if shift >= 0:
        out[shift:] = clip[:len(clip) - shift]
    else:
        out[:shift] = clip[-shift:]
    return out


def _without(clip: np.ndarray, start: int, end: int) -> np.ndarray:
    background = np.concatenate([clip[:start], clip[end:]])
    return np.resize(background, len(clip)) if len(background) else np.zeros_like(clip)
