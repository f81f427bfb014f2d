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
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from datasets import Dataset

from mtl.data.audio import (AUDIO_SUFFIXES, SILENCE, UNKNOWN, check_readable, crop_clip, fit_length,
                            from_pcm16, load_clip, named_source, to_pcm16)
from mtl.data.labelled import labelled_split
from mtl.errors import DataError, MtlError, OutputExistsError
from mtl.fs import write_json
from mtl.modeling.classifier import saved_config
from mtl.sources import ResolvedCheckpoint, resolve_checkpoint
from mtl.sources.cache import cache_root
from mtl.task import Task, TaskSpec, register_task
from mtl.task.decoding import decoded_inputs, is_decoded

from .keyword_detection import (CALIBRATION_FILE, MIN_HOP, THRESHOLDS, Detection, DetectorSettings,
                                calibrated_threshold, calibration_record, calibration_warnings, pick_events, plot_timeline,
                                read_calibration, smooth_posteriors, sweep, window_starts)
from .keyword_augment import (AudioOptions, augment_wave, load_noise, mask_spectrogram, noise_files,
                              streaming_negatives)
from .keyword_stitching import Recording, labelled_rows, stitch_rows

logger = logging.getLogger(__name__)


@register_task("keyword-spotting")
class KeywordSpotting(Task):
    """Classify one-second speech clips into keywords (plus ``_unknown_`` and ``_silence_``); find them in
    long recordings with :meth:`detect`."""

    spec = TaskSpec(
        modality="audio",
        model_class="AutoModelForAudioClassification",
        processor_class="AutoFeatureExtractor",
        default_checkpoint="openai/whisper-tiny.en",
        checkpoints=("openai/whisper-base", "facebook/wav2vec2-base", "facebook/hubert-base-ls960",
                     "microsoft/wavlm-base-plus", "MIT/ast-finetuned-speech-commands-v2"),
        input_column="audio",
        input_candidates=("audio", "path", "file", "filename", "file_path", "wav", "speech", "clip"),
        pipeline_tag="audio-classification",
        file_suffixes=AUDIO_SUFFIXES,
        intended_use="short audio clips recorded like the training clips (same sampling rate, microphones, noise)",
    )
    Options = AudioOptions
    transforms_on_the_fly = True
    calibration_file = CALIBRATION_FILE  # detection thresholds by false-alarm rate, beside the model
    decoded_columns = ("clip", "clip_dtype")  # raw sample bytes at the extractor's rate, "int16" or "float32"

    def __init__(self, checkpoint: str | Path | None = None, *, revision: str | None = None, **options: Any):
        super().__init__(checkpoint, revision=revision, **options)
        self._noise: list[np.ndarray] | None = None  # background-noise recordings, loaded once
        self.calibration: dict[str, Any] | None = None  # detection thresholds by false-alarm rate (calibrate)
        self._calibration_damage: MtlError | None = None  # a damaged calibration file, raised when it is needed

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

    def write_model(self, directory: Path) -> Path:
        """The plain transformers folder, plus the detection calibration when there is one."""
        super().write_model(directory)
        if self.calibration is not None:
            write_json(directory / CALIBRATION_FILE, self.calibration)
        return directory

    @classmethod
    def load(cls, directory: str | Path, **options: Any) -> "KeywordSpotting":
        """The saved model, with its detection calibration when the folder holds one."""
        task = super().load(directory, **options)
        try:  # a damaged calibration stops only what needs it: predict and --calibrate --overwrite still work
            task.calibration = read_calibration(Path(directory).expanduser() / CALIBRATION_FILE)
        except MtlError as error:
            task._calibration_damage = error
        return task

    # ---- features ---------------------------------------------------------------------------------------
    def decode(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Whole recordings at the extractor's rate: int16 when read from files (lossless for 16-bit PCM),
        float32 when given as arrays (kept exact)."""
        rate = self.sampling_rate
        waves = [load_clip(source, rate, None, where=named_source(source)) for source in batch["audio"]]
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
        waves = _waves(batch["clip"], batch["clip_dtype"])
        clips = [crop_clip(wave, samples, rng) for wave in waves]
        labels = batch.get("label")
        if augment and labels is not None and self.options.streaming_negatives:
            clips, labels = streaming_negatives(clips, list(labels), self.label_names, self.options.streaming_negatives,
                                                rng, rate)
        if augment:
            clips = [augment_wave(clip, self.options, rate, rng, self._noise_bank()) for clip in clips]
        extracted = self.processor(clips, sampling_rate=rate, return_tensors="pt")
        key = self.processor.model_input_names[0]
        features = {key: extracted[key]}
        if "attention_mask" in extracted and getattr(self.processor, "return_attention_mask", False):
            features["attention_mask"] = extracted["attention_mask"]
        if augment and features[key].ndim == 3:
            features[key] = self._mask_spectrogram(features[key], mel_axis=1 if key == "input_features" else 2)
        if labels is not None:
            features["labels"] = torch.as_tensor(labels)
        return features

    def inputs_to_dataset(self, inputs: Sequence[Any]) -> Dataset:
        """Paths, arrays (at the extractor's rate) or ``{"array", "sampling_rate"}`` dicts, decoded to clips; arrays
        hold float samples in [-1, 1] or integer PCM (int16 etc., scaled by its range, as files are read)."""
        rate, samples = self.sampling_rate, self._clip_samples()
        waves = [load_clip(item, rate, None, where=f"input {i + 1}") for i, item in enumerate(inputs)]
        if long := sum(len(wave) > 1.1 * samples for wave in waves):
            logger.warning("predict: %d of %d inputs are longer than the model's %g s window; each was cut to its "
                           "middle %g s: to find keywords in longer recordings use detect (python -m mtl.detect)",
                           long, len(waves), self.options.clip_seconds, self.options.clip_seconds)
        return Dataset.from_dict({"audio": [fit_length(wave, samples) for wave in waves]})

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
        self._warn_long_clips(decoded_inputs(self, split, column), split[column], where)  # from the cache: no file

    def check_files(self, paths: list[str], where: str) -> None:
        check_readable(Dataset.from_dict({"audio": paths}), "audio", where)

    def _warn_long_clips(self, decoded: Dataset, sources: Sequence[Any], where: str) -> None:
        """One warning when clips run well past the model's window: training reads one window of each, so a word
        elsewhere in the clip is trained as if that window held it."""
        import pyarrow.compute as pc

        table = decoded.with_format("arrow")[:]
        widths = np.where(np.asarray(table["clip_dtype"].to_pylist()) == "int16", 2, 4)
        seconds = np.asarray(pc.binary_length(table["clip"]).to_numpy()) / widths / self.sampling_rate
        window = self.options.clip_seconds
        long = np.flatnonzero(seconds > 1.5 * window)
        if len(long):
            longest = long[np.argmax(seconds[long])]
            source = sources[int(longest)]
            name = source.get("path") if isinstance(source, dict) else source if isinstance(source, str) else None
            logger.warning("%s: %d of %d clips are longer than %g s (the longest %.1f s, %s); training reads %g s "
                           "of each (its middle; a random window when augmenting), so a word outside that window is "
                           "trained as if it were there: cut clips to their word (python -m mtl.detect finds "
                           "keywords in long recordings)", where, len(long), len(seconds), 1.5 * window,
                           seconds[longest], f"row {longest + 1}, {name}" if name else f"row {longest + 1}", window)

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
    def detect(self, recording: Any, *, sampling_rate: int | None = None, threshold: float | None = None,
               false_alarms_per_hour: float | None = None, hop: float = 0.25, smooth: int = 3,
               refractory: float = 1.0, ignore: Sequence[str] = (SILENCE, UNKNOWN),
               batch_size: int = 32) -> list[Detection]:
        """Keywords in ``recording`` (a path or an array): the classifier slides over it every ``hop`` seconds,
        its probabilities are averaged over ``smooth`` windows, and each word event gives one detection (the
        best window; no two within ``refractory`` seconds, whatever their labels) scoring at least
        ``threshold``, or the threshold calibrated for ``false_alarms_per_hour`` (see :meth:`calibrate`)."""
        self._require_model("detect")
        settings = DetectorSettings(hop, smooth, refractory)
        if false_alarms_per_hour is not None:
            if threshold is not None:
                raise DataError("detect: give threshold or false_alarms_per_hour, not both")
            saved = self.source is not None and "mtl_task" in saved_config(self.source.path)
            if self._calibration_damage is not None:
                raise self._calibration_damage
            threshold = calibrated_threshold(self.calibration, false_alarms_per_hour, settings,
                                             str(self.source.path) if saved else None)
            logger.info("detect: threshold %g, the lowest calibrated for at most %g false alarms per hour", threshold,
                        false_alarms_per_hour)
        threshold = 0.5 if threshold is None else threshold
        if not 0 < threshold <= 1:
            raise DataError(f"detect: threshold must be in (0, 1], got {threshold}")
        self._check_hop(hop)
        audio = self._recording(recording, sampling_rate)
        starts, probabilities = self._window_probabilities(audio, hop, batch_size)
        return pick_events(starts, self.options.clip_seconds, smooth_posteriors(probabilities, smooth),
                           self.label_names, threshold=threshold, ignore=ignore, refractory=refractory,
                           duration=len(audio) / self.sampling_rate)

    def plot_detections(self, recording: Any, detections: Sequence[Detection], path: str | Path, *,
                        sampling_rate: int | None = None) -> None:
        """A PNG of the recording's waveform with ``detections`` marked on it."""
        audio = self._recording(recording, sampling_rate)
        title = f"{Path(recording).name}: " if isinstance(recording, (str, Path)) else ""
        plot_timeline(audio, self.sampling_rate, detections, Path(path), f"{title}{len(detections)} detections")

    def window_probabilities(self, recording: Any, *, sampling_rate: int | None = None, hop: float = 0.25,
                             batch_size: int = 32) -> tuple[list[float], np.ndarray]:
        """Window start times (seconds) and class probabilities of windows ``hop`` seconds apart."""
        self._require_model("detect")
        self._check_hop(hop)
        return self._window_probabilities(self._recording(recording, sampling_rate), hop, batch_size)

    def _check_hop(self, hop: float) -> None:
        DetectorSettings(hop=hop)  # a finite hop of at least MIN_HOP
        if hop > self.options.clip_seconds:
            raise MtlError(f"detector: hop (--hop) must be from {MIN_HOP} s to the model's window of "
                           f"{self.options.clip_seconds:g} s (a longer hop skips the audio between windows), got {hop}")

    def _recording(self, recording: Any, sampling_rate: int | None) -> np.ndarray:
        """A recording (a path, or an array at ``sampling_rate``) decoded once, mono, at the model's rate."""
        source = {"array": recording, "sampling_rate": sampling_rate} if sampling_rate else recording
        where = f"recording {recording}" if isinstance(recording, (str, Path)) else "recording"
        return load_clip(source, self.sampling_rate, None, where=where)

    def _window_probabilities(self, audio: np.ndarray, hop: float, batch_size: int) -> tuple[list[float], np.ndarray]:
        rate, samples = self.sampling_rate, self._clip_samples()
        starts = window_starts(len(audio), samples, max(1, round(hop * rate)))
        model = self.model.eval()
        device = next(model.parameters()).device
        probabilities = []
        with torch.no_grad():
            for i in range(0, len(starts), batch_size):
                windows = [fit_length(audio[s:s + samples], samples) for s in starts[i:i + batch_size]]
                features = {k: v.to(device) for k, v in self.transform({"audio": windows}, train=False).items()}
                probabilities.append(torch.softmax(model(**features).logits.float(), -1).cpu().numpy())
        return [s / rate for s in starts], np.concatenate(probabilities)

    def calibrate(self, data: Any, *, noise: str | None = None, minutes: float = 60.0, seed: int = 0,
                  hop: float = 0.25, smooth: int = 3, refractory: float = 1.0) -> dict[str, Any]:
        """Stitch ``data`` (labelled clips the model never trained on: the validation split) into about
        ``minutes`` of noisy recordings, detect, and keep the false-alarm rate and recall of every threshold
        (:attr:`calibration`, saved with the model), so ``detect(false_alarms_per_hour=N)`` can pick one."""
        settings = DetectorSettings(hop, smooth, refractory)
        split, _ = labelled_split(data, input_name=self.spec.input_column, input_candidates=self.spec.input_candidates,
                                  label_names=self.label_names, what="calibration data", check=self.check_inputs)
        rows = labelled_rows(split, self.spec.input_column)
        recordings = stitch_rows(rows, self.sampling_rate, noise=noise, seed=seed, minutes=minutes)
        hours = sum(r.seconds for r in recordings) / 3600
        if hours * 60 > 1.2 * minutes:
            logger.info("calibration: %.1f minutes of audio stitched, more than the %g asked for: every clip is used "
                        "at least once", hours * 60, minutes)
        table = sweep(self.detect_recordings(recordings, settings)[0], [r.words for r in recordings], hours,
                      self.keywords)
        self._calibration_damage = None
        self.calibration = calibration_record(table, settings, hours, f"{len(rows)} labelled clips stitched into "
                                              f"{len(recordings)} recordings (SNR 10-30 dB), seed {seed}")
        keyword_clips = sum(label in self.keywords for _, label in rows)
        for warning in calibration_warnings(self.calibration, keyword_clips):
            logger.warning("%s", warning)
        return self.calibration

    def detect_recordings(self, recordings: Sequence[Recording], settings: DetectorSettings,
                          threshold: float = min(THRESHOLDS)) -> tuple[list[list[Detection]], float]:
        """Detections at ``threshold`` in each stitched recording, and the seconds detection took."""
        started, events = time.perf_counter(), []
        for recording in recordings:
            starts, probabilities = self.window_probabilities(recording.audio, sampling_rate=recording.rate,
                                                              hop=settings.hop)
            events.append(pick_events(starts, self.options.clip_seconds,
                                      smooth_posteriors(probabilities, settings.smooth), self.label_names,
                                      threshold=threshold, ignore=(SILENCE, UNKNOWN), refractory=settings.refractory,
                                      duration=len(recording.audio) / recording.rate))
        return events, time.perf_counter() - started

    @property
    def keywords(self) -> list[str]:
        """The labels detection reports (all but ``_silence_`` and ``_unknown_``)."""
        self._require_model("list keywords")
        return [name for name in self.label_names if name not in (SILENCE, UNKNOWN)]

    # ---- augmentation ----------------------------------------------------------------------------------
    def _clip_samples(self) -> int:
        return int(round(self.options.clip_seconds * self.sampling_rate))

    def _mask_spectrogram(self, spectrogram: torch.Tensor, mel_axis: int) -> torch.Tensor:
        return mask_spectrogram(spectrogram, mel_axis, self.options.freq_mask, self.options.time_mask)

    def _noise_bank(self) -> list[np.ndarray] | None:
        if self.options.background_noise not in (None, SILENCE) and self._noise is None:
            self._noise = load_noise(self.options.background_noise, self.sampling_rate, "background_noise")
        return self._noise  # background_noise _silence_: set by fit from the training split (white noise until then)

    def check_training_options(self) -> None:
        """A ``background_noise`` folder or file without audio is an error before any data is read."""
        if self.options.background_noise not in (None, SILENCE):
            noise_files(self.options.background_noise, "preprocess.background_noise")

    def prepare_training(self, train_set: Dataset) -> None:
        """With ``background_noise: _silence_`` the noise bank is the training split's own ``_silence_`` clips
        (read from the decoded cache; validation and test clips never enter it)."""
        if self.options.background_noise == SILENCE:
            self._noise = self._silence_clips(train_set)

    def _silence_clips(self, train_set: Dataset) -> list[np.ndarray] | None:
        label = self.label_names.index(SILENCE) if SILENCE in self.label_names else None
        rows = [] if label is None else [i for i, value in enumerate(train_set["label"]) if value == label]
        if not rows:
            logger.warning("background_noise: the training split has no %s clips to mix in as noise; white noise "
                           "instead (add a %s or _background_noise_ folder, or give a folder of noise recordings)",
                           SILENCE, SILENCE)
            return None
        decoded = decoded_inputs(self, train_set.select(rows), self.spec.input_column)
        clips = _waves(decoded["clip"], decoded["clip_dtype"])
        logger.info("background noise: the %d %s clips of the training split", len(clips), SILENCE)
        return clips


def _waves(clips: Sequence[bytes], dtypes: Sequence[str]) -> list[np.ndarray]:
    """Decoded clips (the ``clip`` and ``clip_dtype`` columns) as float32 waves."""
    return [from_pcm16(np.frombuffer(clip, np.int16)) if dtype == "int16" else np.frombuffer(clip, np.float32).copy()
            for clip, dtype in zip(clips, dtypes)]


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
