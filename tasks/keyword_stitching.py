"""Long recordings stitched from one-second word clips, with their ground truth: for benchmarking detection
and calibrating its threshold.

Each word is cut to its voiced part (frame energy; :func:`word_extent`), scaled so that it stands at the
recording's SNR over a bed of background noise (clips of noise joined end to end), and placed after a
random gap. Everything is drawn from one seeded generator, so the same clips and seed give the same audio.

Example::

    recordings = stitch(words, noise, rate=16_000, seed=0)   # (samples, label, word, source) for each word
    recordings[0].audio, recordings[0].words[0]              # float32 array; {"label", "start", "end", ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mtl.data.audio import SILENCE, UNKNOWN, load_clip
from mtl.errors import MtlError

from .keyword_augment import load_noise, word_extent

SNRS_DB = (10.0, 20.0, 30.0)  # recordings cycle through these signal-to-noise ratios
_SPEECH_RMS = 0.05  # every word's voiced part is scaled to this RMS; the noise bed sits SNR dB below it
_FADE_S = 0.01


@dataclass
class Recording:
    """Stitched audio at ``rate`` Hz, its words (``label``, ``start``, ``end`` in seconds, ``word``, ``source``)
    and the SNR of its words over the noise."""

    audio: np.ndarray
    rate: int
    snr_db: float
    words: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Length of the recording in seconds."""
        return len(self.audio) / self.rate


def noise_bed(noise: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of noise clips drawn at random and joined end to end (white noise when there are
    none), scaled to unit RMS."""
    if not noise:
        bed = rng.standard_normal(length)
    else:
        parts, total = [], 0
        while total < length:
            clip = noise[int(rng.integers(len(noise)))]
            clip = clip / max(float(np.sqrt(np.mean(clip.astype(np.float64) ** 2))), 1e-6)
            parts.append(clip)
            total += len(clip)
        bed = np.concatenate(parts)[:length]
    return (bed / max(float(np.sqrt(np.mean(bed ** 2))), 1e-9)).astype(np.float32)


def stitch(words: Sequence[tuple[np.ndarray, str, str, str]], noise: Sequence[np.ndarray], *, rate: int, seed: int = 0,
           seconds: float = 60.0, snrs_db: Sequence[float] = SNRS_DB, gap: tuple[float, float] = (0.5, 3.0),
           margin: float = 0.1) -> list[Recording]:
    """Recordings of about ``seconds`` each holding every word of ``words`` once, in a seeded random order.

    ``words`` are ``(samples at rate, label, word said, source file)``; each is cut to its voiced part plus
    ``margin`` seconds, faded in and out, and follows a gap drawn uniformly from ``gap`` seconds. Recording ``i``
    has SNR ``snrs_db[i % len(snrs_db)]``: every word's voiced RMS stands that many dB over the noise bed.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(words))
    recordings: list[Recording] = []
    pieces: list[tuple] = []  # cut clip, voiced start/end, label, word, source, gap before it
    length = 0
    for position, index in enumerate(order):
        samples, label, word, source = words[int(index)]
        start, end = word_extent(samples, rate)
        pad = int(margin * rate)
        cut_start, cut_end = max(0, start - pad), min(len(samples), end + pad)
        cut = samples[cut_start:cut_end].astype(np.float64)
        voiced = samples[start:end].astype(np.float64)
        cut = cut * (_SPEECH_RMS / max(float(np.sqrt(np.mean(voiced ** 2))), 1e-6))
        gap_samples = int(rng.uniform(*gap) * rate)
        pieces.append((_faded(cut, rate), start - cut_start, end - cut_start, label, word, source, gap_samples))
        length += gap_samples + len(cut)
        if length >= seconds * rate or position == len(order) - 1:
            snr = float(snrs_db[len(recordings) % len(snrs_db)])
            recordings.append(_assemble(pieces, noise, rate, snr, int(rng.uniform(*gap) * rate), rng))
            pieces, length = [], 0
    return recordings


def _assemble(pieces: list[tuple], noise: Sequence[np.ndarray], rate: int,
              snr_db: float, tail: int, rng: np.random.Generator) -> Recording:
    total = sum(gap + len(cut) for cut, *_, gap in pieces) + tail
    audio = noise_bed(noise, total, rng).astype(np.float64) * _SPEECH_RMS * 10 ** (-snr_db / 20)
    recording = Recording(np.zeros(0, np.float32), rate, snr_db)
    at = 0
    for cut, start, end, label, word, source, gap in pieces:
        at += gap
        audio[at:at + len(cut)] += cut
        recording.words.append({"label": label, "start": round((at + start) / rate, 3),
                                "end": round((at + end) / rate, 3), "word": word, "source": source})
        at += len(cut)
    recording.audio = np.clip(audio, -1, 1).astype(np.float32)
    return recording


def _faded(cut: np.ndarray, rate: int) -> np.ndarray:
    fade = min(int(_FADE_S * rate), len(cut) // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        cut[:fade] *= ramp
        cut[len(cut) - fade:] *= ramp[::-1]
    return cut


def stitch_rows(rows: Sequence[tuple[Any, str]], rate: int, *, noise: str | None = None, seed: int = 0,
                minutes: float = 60.0, seconds: float = 60.0, gap: tuple[float, float] = (0.5, 3.0)) -> list[Recording]:
    """Recordings of about ``seconds`` each from labelled clips (``(audio, label)`` rows), ``minutes`` in all:
    the clips are stitched again with the next seed until there is that much. ``_silence_`` clips are the
    noise, unless ``noise`` (a folder of noise recordings, or one file) is given; neither: white noise."""
    words, bed = [], []
    for i, (source, label) in enumerate(rows):
        clip = load_clip(source, rate, None, where=f"clip {i + 1}")
        if label == SILENCE:
            bed.append(clip)
        else:
            words.append((clip, label, word_said(source, label), source if isinstance(source, str) else ""))
    if noise is not None:
        bed = noise_clips(noise, rate)
    if not words:
        raise MtlError("stitching: the clips hold no words (only _silence_); give labelled keyword clips")
    recordings: list[Recording] = []
    while not recordings or sum(r.seconds for r in recordings) < minutes * 60:
        recordings += stitch(words, bed, rate=rate, seed=seed + len(recordings), seconds=seconds, gap=gap)
    return recordings


def labelled_rows(split: Any, column: str) -> list[tuple[Any, str]]:
    """``(audio, label name)`` rows of a labelled split (a ClassLabel or string ``label`` column)."""
    names = getattr(split.features["label"], "names", None)
    return [(audio, names[label] if names else label) for audio, label in zip(split[column], split["label"])]


def noise_clips(noise: str, rate: int, seconds: float = 1.0) -> list[np.ndarray]:
    """The recordings of a noise folder (or one file) cut into ``seconds``-long clips."""
    size = int(seconds * rate)
    return [audio[i:i + size] for audio in load_noise(noise, rate, "noise")
            for i in range(0, max(1, len(audio) - size + 1), size)]


def word_said(source: Any, label: str) -> str:
    """The word of a clip: its label, or for ``_unknown_`` the first token of a Speech Commands-style file name
    (``bed_0c540988_nohash_0.wav``), else ``_unknown_``."""
    if label != UNKNOWN or not isinstance(source, str):
        return label
    head = Path(source.split("#t=")[0]).name.split("_nohash_")[0]  # bed_0c540988
    return head.rsplit("_", 1)[0] if "_" in head else label
