"""Decode once: images and audio files are opened by the first run only; its second epoch, and a second run over
unchanged files, open none (counted with an audit hook on "open" events: nothing is mocked). A changed file
decodes again."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile as sf
import torch

from mtl.config import DataConfig
from mtl.data import load_labelled
from mtl.tasks import ImageClassification, KeywordSpotting

import test_image_classification as images
import test_keyword_spotting as audio

_SUFFIXES = (".png", ".wav")
_opened: list[Counter] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if path.endswith(_SUFFIXES):
            _opened[-1][path] += 1


sys.addaudithook(_audit)  # audit hooks cannot be removed: it counts only inside counting_opens()


@contextmanager
def counting_opens():
    _opened.append(Counter())
    try:
        yield _opened[-1]
    finally:
        _opened.pop()


def one_run(task_class, model, folder):
    """Load and check the folder, train two epochs, evaluate: what a recipe run does."""
    task = task_class(model, **({"random_resized_crop": True} if task_class is ImageClassification else {}))
    data = load_labelled(DataConfig(source=str(folder), validation_size=0.25, test_size=0.25),
                         input_name=task.spec.input_column, input_candidates=task.spec.input_candidates,
                         check=task.check_inputs)
    task.fit(data.splits["train"], data.splits["validation"], epochs=2, batch_size=8, learning_rate=1e-3)
    return task.evaluate(data.splits["test"])["accuracy"]


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_the_second_epoch_and_a_second_run_open_no_file(kind, tmp_path, isolated_cache):
    torch.set_num_threads(1)
    if kind == "image":
        images.write_folder(tmp_path / "data", [""])
        task_class, model = ImageClassification, images.build_model("resnet", tmp_path / "model")
    else:
        audio.write_folder(tmp_path / "data", 4, 0)
        task_class, model = KeywordSpotting, audio.build_model("wav2vec2", tmp_path / "model")
    files = sorted(str(p) for p in (tmp_path / "data").rglob("*") if p.suffix in _SUFFIXES)

    with counting_opens() as first:
        one_run(task_class, model, tmp_path / "data")
    assert set(first) == set(files)
    assert max(first.values()) <= 2, first  # checked, then decoded once: two epochs and evaluation add nothing

    with counting_opens() as second:
        one_run(task_class, model, tmp_path / "data")
    assert not second, second  # a second run (new task, same files) opens none
    assert (isolated_cache / "decoded").is_dir()

    changed = files[0]
    time.sleep(0.01)
    if kind == "image":
        images.colour_images(1, 7)["image"][0].save(changed)
    else:
        sf.write(changed, audio.tone("high", np.random.default_rng(9)), audio.RATE)
    with counting_opens() as third:
        one_run(task_class, model, tmp_path / "data")
    assert third[changed] >= 1  # a changed file is decoded again


def test_the_features_fingerprint_does_not_pickle_the_model(tmp_path):
    """datasets fingerprints an on-the-fly transform by pickling it, and the transform is bound to the task: the
    task pickles without its model, so the fingerprint costs nothing and a task's weights never reach it."""
    import pickle

    images.write_folder(tmp_path / "data", [""])
    task = ImageClassification(images.build_model("resnet", tmp_path / "model"))
    data = load_labelled(DataConfig(source=str(tmp_path / "data"), validation_size=0.25, test_size=0.25),
                         input_name=task.spec.input_column, input_candidates=task.spec.input_candidates)
    task.fit(data.splits["train"], data.splits["validation"], epochs=1, batch_size=8, learning_rate=1e-3)
    copy = pickle.loads(pickle.dumps(task))
    assert task.model is not None and copy.model is None and copy.label_names == task.label_names
    assert copy.processor is not None and copy.options == task.options  # what transform needs
    before = task.features(data.splits["test"])._fingerprint
    with torch.no_grad():
        for parameter in task.model.parameters():
            parameter.add_(1.0)  # other weights: the same features, the same fingerprint
    assert task.features(data.splits["test"])._fingerprint == before
