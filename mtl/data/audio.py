"""Audio: decode with ``soundfile``, mix down to mono, resample with torchaudio, pad or crop to a clip.

``datasets``' own Audio decoding needs torchcodec and FFmpeg; here audio is stored as file paths (a
string column) or float arrays and decoded when examples are read. A path may end in a media-fragment
``#t=START,END`` (seconds) to name a segment of a longer file, as cut from background-noise recordings.

Example::

    clip = load_clip("yes/0a7c2a8d_nohash_0.wav", rate=16_000, samples=16_000)   # float32, shape (16000,)
    data = read_audio_folder(Path("speech_commands"))   # DatasetDict: audio (path), label (folder name)
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from datasets import Audio, Dataset, DatasetDict, Value

from ..errors import DataError, did_you_mean
from ..fs import walk_paths
from .columns import holds_text

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")  # what soundfile (libsndfile) decodes
NOISE_FOLDER = "_background_noise_"  # Speech Commands: long noise recordings, not a label
SILENCE, UNKNOWN = "_silence_", "_unknown_"
SPLIT_FOLDERS = ("train", "validation", "valid", "dev", "val", "test")
_FRAGMENT = re.compile(r"^(?P<path>.+)#t=(?P<start>[0-9.]+),(?P<end>[0-9.]+)$")


def audio_files(folder: Path) -> list[Path]:
    """The audio files under ``folder``, sorted."""
    return sorted(p for p in walk_paths(folder) if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def read_audio_folder(folder: Path) -> DatasetDict:
    """``<label>/*.wav`` or ``<split>/<label>/*.wav`` as splits with an ``audio`` path and a ``label`` column.

    A ``_background_noise_`` folder is not a label: when no ``_silence_`` folder exists, one-second
    ``_silence_`` examples are cut from its recordings (as many as the median class has).
    """
    folder = Path(folder)
    children = [p for p in sorted(folder.iterdir()) if p.is_dir()]
    splits = [p for p in children if p.name.lower() in SPLIT_FOLDERS]
    if splits:
        return DatasetDict({p.name.lower(): _label_folders(p) for p in splits})
    return DatasetDict({"train": _label_folders(folder)})


def _label_folders(folder: Path) -> Dataset:
    rows: dict[str, list[str]] = {"audio": [], "label": []}
    counts: list[int] = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != NOISE_FOLDER):
        files = audio_files(label_dir)
        rows["audio"] += [str(f) for f in files]
        rows["label"] += [label_dir.name] * len(files)
        counts.append(len(files))
    noise = folder / NOISE_FOLDER
    if noise.is_dir() and not (folder / SILENCE).is_dir() and counts:
        cut = silence_segments(audio_files(noise), int(np.median(counts)))
        rows["audio"] += cut
        rows["label"] += [SILENCE] * len(cut)
    if not rows["audio"]:
        raise DataError(f"data.source: folder {folder} has no <label>/ subfolders with {', '.join(AUDIO_SUFFIXES)} "
                        "files; lay it out as <label>/clip.wav or <split>/<label>/clip.wav")
    return Dataset.from_dict(rows)


def silence_segments(noise_files: Sequence[Path], count: int, seconds: float = 1.0, seed: int = 0) -> list[str]:
    """``count`` random ``path#t=start,end`` segments of ``seconds`` cut from background-noise recordings."""
    import soundfile

    durations = {str(p): soundfile.info(str(p)).duration for p in noise_files}
    usable = [p for p, d in durations.items() if d >= seconds]
    if not usable:
        return []
    rng = np.random.default_rng(seed)
    segments = []
    for i in range(count):
        path = usable[i % len(usable)]
        start = round(float(rng.uniform(0, durations[path] - seconds)), 3)
        segments.append(f"{path}#t={start},{start + seconds:.3f}")
    return segments


def check_keywords(splits: DatasetDict, keywords: Sequence[str], column: str = "label") -> None:
    """Warn about ``data.keywords`` that no clip is labelled with, with the closest label of the data (a typo turns
    that label's clips into ``_unknown_``; a keyword without clips is one the model will not know)."""
    present: set[str] = set()
    for split in splits.values():
        names = getattr(split.features[column], "names", None)
        if names is None and not holds_text(split.features[column]):
            return  # numbers, not label names: relabel_keywords says so
        present.update(names if names is not None else map(str, split.unique(column)))
    words = sorted(present - {SILENCE, UNKNOWN})
    if words and not set(keywords) & present:
        shown = ", ".join(words[:10]) + (f" and {len(words) - 10} more" if len(words) > 10 else "")
        raise DataError(f"data.keywords: none of the keywords ({', '.join(keywords)}) is a label of the data (its "
                        f"labels: {shown}); every clip would be _unknown_. Set data.keywords to the words to "
                        f"recognise (e.g. data.keywords=[{','.join(words[:3])}]), or to null to keep every label")
    for keyword in (keyword for keyword in keywords if keyword not in present):
        logger.warning("data.keywords: no clips are labelled %r%s (the data's labels: %s); the model will not know "
                       "it: fix its spelling (a misspelt keyword turns its clips into _unknown_), add its clips, or "
                       "remove it", keyword, did_you_mean(keyword, words), ", ".join(words))


def relabel_keywords(dataset: Dataset, keywords: Sequence[str], column: str = "label") -> Dataset:
    """Every label that is not a keyword (nor ``_silence_``) becomes ``_unknown_``; string labels only."""
    keep = {*keywords, SILENCE, UNKNOWN}
    if not holds_text(dataset.features[column]):
        names = getattr(dataset.features[column], "names", None)
        if names is None:
            raise DataError(f"data.keywords: the {column} column holds numbers; keywords need label names")
        features = dataset.features.copy()
        features[column] = Value("string")
        dataset = dataset.map(lambda b: {column: [names[i] for i in b[column]]}, batched=True, features=features)
    return dataset.map(lambda b: {column: [v if v in keep else UNKNOWN for v in b[column]]}, batched=True,
                       desc="keywords: other words become _unknown_")


# ---- decoding -------------------------------------------------------------------------------------------------
def decode(source: Any, where: str = "audio") -> tuple[np.ndarray, int | None]:
    """``(mono float32 samples, sampling rate)`` from a path, bytes, a ``{"array"|"raw", "sampling_rate"}``
    or ``{"bytes", "path"}`` dict, or a numpy array / list (rate None: the caller's rate is assumed). Float
    samples are kept; integer PCM arrays (int8/16/32, uint8) are scaled to [-1, 1) as files are."""
    import soundfile

    start = end = None
    if isinstance(source, dict):
        if source.get("array") is not None or source.get("raw") is not None:
            array = source.get("array") if source.get("array") is not None else source["raw"]
            rate = source.get("sampling_rate")
            if "sampling_rate" not in source:
                raise DataError(f"{where}: an audio dict needs 'sampling_rate' (Hz) beside its samples")
            if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer)) or not rate > 0:
                raise DataError(f"{where}: an audio dict's 'sampling_rate' must be a number of Hz above 0, got "
                                f"{rate!r} ({type(rate).__name__})")
            return _mono(_float_array(array, where), where), int(source["sampling_rate"])
        source = source.get("bytes") or source.get("path")
    if isinstance(source, (str, Path)):
        match = _FRAGMENT.match(str(source))
        if match and not Path(source).exists():
            source, start, end = match["path"], float(match["start"]), float(match["end"])
    elif isinstance(source, (np.ndarray, list, tuple, torch.Tensor)):
        return _mono(_float_array(source, where), where), None
    if not isinstance(source, (str, Path, bytes)):
        raise DataError(f"{where}: expected an audio file path, bytes, a numpy array or a dict with 'array' and "
                        f"'sampling_rate', got {type(source).__name__}")
    named = where if isinstance(source, bytes) else f"{where} ({source})"
    try:
        # a Python file object, not a path: libsndfile's own open is invisible to audit hooks (tests count opens)
        handle = io.BytesIO(source) if isinstance(source, bytes) else open(str(source), "rb")
        with handle:
            _warn_if_cut_short(handle, named)
            audio = soundfile.SoundFile(handle)
            with audio:
                rate = audio.samplerate
                if start is not None:
                    audio.seek(min(int(start * rate), audio.frames))
                frames = -1 if end is None else int((end - start) * rate)
                samples = audio.read(frames, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise DataError(f"{named}: no such file; check the path") from None
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        reason = (getattr(error, "error_string", None) or getattr(error, "strerror", None) or str(error)).rstrip(".")
        raise DataError(f"{named}: cannot be decoded ({reason}); replace or remove the file") from None
    if not len(samples):  # as check_readable says before training; a mean over no frames would be NaN
        raise DataError(f"{named}: no audio frames; replace or remove the file")
    return _mono(samples.mean(axis=1), where), rate  # soundfile gives (frames, channels)


STREAMED_LENGTH = 0x7FFFF000  # a WAV data length this large (2 GiB) is a streaming placeholder, not a size


def _warn_if_cut_short(handle: Any, where: str) -> None:
    """Warn when a WAV file ends before its header says (a copy or download cut short): libsndfile reads what is
    there without a word, so the clip would silently be shorter. Leaves ``handle`` at its start."""
    header = handle.read(12)
    size = handle.seek(0, io.SEEK_END)
    position = 12
    if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
        while position + 8 <= size:  # chunks: 4-byte id, 4-byte little-endian length, data (padded to even)
            handle.seek(position)
            chunk = handle.read(8)
            length = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                # recorders streaming to a pipe write a placeholder length (0xFFFFFFFF, 0x7FFFFFFF): unknown, not cut
                if length < STREAMED_LENGTH and position + 8 + length > size:
                    logger.warning("%s: the WAV file holds %d of the %d bytes of audio its header declares (%.0f%%): "
                                   "it was cut short, and only what it holds is used; copy it again if that is "
                                   "wrong", where, size - position - 8, length, 100 * (size - position - 8) / length)
                break
            position += 8 + length + (length & 1)
    handle.seek(0)


PCM_SCALES = {"int8": (0, 128.0), "int16": (0, 32768.0), "int32": (0, 2147483648.0), "uint8": (128, 128.0)}


def _float_array(values: Any, where: str) -> np.ndarray:
    """Samples as float32: integer PCM scaled to [-1, 1) by its dtype's full range (uint8 centred at 128), as
    soundfile reads such files; floats as they are. Other integer types (int64: Python ints) have no such scale."""
    try:
        array = np.asarray(values)
        if array.dtype.kind not in "iu":
            return array.astype(np.float32, copy=False)
    except (TypeError, ValueError):
        raise DataError(f"{where}: audio samples must be numbers (a 1-D or 2-D array), got {type(values).__name__}") from None
    if array.dtype.name not in PCM_SCALES:
        raise DataError(f"{where}: audio samples of type {array.dtype.name} have no standard scale; give float "
                        f"samples in [-1, 1] or {', '.join(PCM_SCALES)} PCM samples")
    centre, scale = PCM_SCALES[array.dtype.name]
    return ((array.astype(np.float64) - centre) / scale).astype(np.float32)


def _mono(samples: np.ndarray, where: str) -> np.ndarray:
    if samples.ndim == 2:  # (frames, channels) from soundfile; a (channels, frames) array has few rows
        samples = samples.mean(axis=0 if samples.shape[0] < samples.shape[1] and samples.shape[0] <= 8 else 1)
    if samples.ndim != 1:
        raise DataError(f"{where}: expected mono or multi-channel audio, got an array of shape {samples.shape}")
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``target`` Hz (torchaudio's sinc resampler, as transformers' pipelines use)."""
    if rate == target:
        return samples
    import torchaudio.functional as F

    return F.resample(torch.from_numpy(samples), rate, target).numpy()


def fit_length(samples: np.ndarray, length: int, offset: int | None = None) -> np.ndarray:
    """Pad with zeros at the end, or crop to ``length`` samples (centred unless ``offset`` is given)."""
    if len(samples) < length:
        return np.pad(samples, (0, length - len(samples)))
    start = (len(samples) - length) // 2 if offset is None else min(max(offset, 0), len(samples) - length)
    return samples[start:start + length]


def named_source(source: Any, where: str = "audio") -> str:
    """``where`` with the file an audio source comes from (a path, or a ``{"path"}`` dict), for its messages."""
    path = source.get("path") if isinstance(source, dict) else source if isinstance(source, str) else None
    return f"{where} ({path})" if path else where


def load_clip(source: Any, rate: int, samples: int | None, where: str = "audio",
              rng: np.random.Generator | None = None) -> np.ndarray:
    """Decode, mono, resample to ``rate`` and pad/crop to ``samples`` (a random crop when ``rng`` is given)."""
    audio, source_rate = decode(source, where)
    if not len(audio):
        raise DataError(f"{where}: the audio has no samples; give a clip of at least a few milliseconds")
    if not np.isfinite(audio).all():
        raise DataError(f"{where}: the audio holds NaN or infinite samples; fix the recording or array")
    if source_rate is not None and source_rate < 1:
        raise DataError(f"{where}: sampling_rate must be a positive number of Hz, got {source_rate}")
    if source_rate is not None and source_rate < MIN_SPEECH_RATE <= rate:
        _warn_low_rate(where, source_rate, rate)
    audio = resample(audio, source_rate or rate, rate)
    return audio if samples is None else crop_clip(audio, samples, rng)


MIN_SPEECH_RATE = 8_000  # Hz: telephone speech; below it words lose the consonants that tell them apart
_low_rate_named = False


def _warn_low_rate(where: str, source_rate: float, rate: int) -> None:
    """Warn once a process that audio sampled under 8 kHz gives unreliable results (resampling adds no detail)."""
    global _low_rate_named
    if not _low_rate_named:
        _low_rate_named = True
        logger.warning("%s: sampled at %g Hz, under the %d Hz speech needs; resampled to %d Hz it gains no detail, "
                       "so results on it are unreliable (other such audio is not named again)", where, source_rate,
                       MIN_SPEECH_RATE, rate)


def crop_clip(audio: np.ndarray, samples: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad or crop to ``samples`` (a random crop drawn from ``rng`` when given and the audio is longer)."""
    offset = int(rng.integers(0, len(audio) - samples + 1)) if rng is not None and len(audio) > samples else None
    return fit_length(audio, samples, offset)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16 (x 32768, as libsndfile reads 16-bit PCM: lossless for such files)."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def from_pcm16(samples: np.ndarray) -> np.ndarray:
    """int16 samples back to float32 in [-1, 1)."""
    return samples.astype(np.float32) / 32768.0


def find_unreadable(sources: Iterable[Any], limit: int = 10) -> list[str]:
    """``"path (reason)"`` for audio paths that soundfile cannot open (header check only; fast)."""
    import soundfile

    bad = []
    for source in sources:
        if not isinstance(source, str):
            continue
        match = _FRAGMENT.match(source)
        path = match["path"] if match and not Path(source).exists() else source
        try:
            with open(path, "rb") as handle:
                info = soundfile.info(handle)
            if info.frames == 0:
                raise RuntimeError("no audio frames")
        except Exception as error:  # libsndfile errors, missing files, empty files
            bad.append(f"{path} ({str(error).splitlines()[0][:120]})")
            if len(bad) >= limit:
                break
    return bad


def check_readable(dataset: Dataset, column: str, where: str) -> None:
    """Raise one DataError naming the unreadable audio files of ``column`` (before any training starts)."""
    if not holds_text(dataset.features[column]):
        return  # arrays or undecoded Audio bytes: decoding errors name the row when it is read
    bad = find_unreadable(dataset[column])
    if bad:
        raise DataError(f"{where}: {len(bad)}{'+' if len(bad) >= 10 else ''} audio files cannot be read: "
                        f"{'; '.join(bad)}. Replace or remove them.")


def without_audio_decoding(dataset: Dataset | DatasetDict) -> Dataset | DatasetDict:
    """Columns of ``datasets.Audio`` type keep their bytes/path undecoded (decoding needs torchcodec)."""
    splits = dataset.values() if isinstance(dataset, DatasetDict) else [dataset]
    columns = {name for split in splits for name, f in split.features.items() if isinstance(f, Audio) and f.decode}
    for name in columns:
        dataset = dataset.cast_column(name, Audio(decode=False))
    return dataset
