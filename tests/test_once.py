"""Work done once per run: inputs checked once, the head-first stage not repeated on --resume."""

from __future__ import annotations

import logging

import pytest

import mtl.data.images as images
from mtl.config import DataConfig
from mtl.data import load_labelled
from mtl.errors import OutputExistsError
from mtl.tasks import ImageClassification

from test_image_classification import build_model, colour_images, write_folder


def test_each_split_is_checked_once_through_load_fit_and_evaluate(tmp_path, monkeypatch):
    write_folder(tmp_path / "photos", ["train"])
    checked: list[tuple[str, int]] = []
    real = images.verify_images

    def counting(split, column, where):
        checked.append((where, len(split)))
        real(split, column, where)

    monkeypatch.setattr(images, "verify_images", counting)
    monkeypatch.setattr("mtl.tasks.image_classification.verify_images", counting)
    task = ImageClassification(build_model("resnet", tmp_path / "resnet"))
    data = load_labelled(DataConfig(source=str(tmp_path / "photos"), validation_size=0.25, test_size=0.25),
                         input_name="image", input_candidates=task.spec.input_candidates, check=task.check_inputs)
    assert [where for where, _ in checked] == ["train"]  # one split on disk, opened once; the others are cut from it
    task.fit(data.splits["train"], data.splits["validation"], epochs=1, batch_size=8)
    task.evaluate(data.splits["test"])
    assert len(checked) == 1, checked  # fit and evaluate reuse the checked splits
    task.evaluate(colour_images(6, 9))  # new data from Python is checked
    assert len(checked) == 2


def test_resume_does_not_repeat_the_head_first_stage(tmp_path, caplog):
    train, validation = colour_images(48, 0), colour_images(16, 1)
    options = dict(freeze="none", epochs=2, head_first_epochs=2, batch_size=16, learning_rate=1e-2, warmup_ratio=0.0)
    first = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    with caplog.at_level(logging.INFO, logger="mtl"):
        done = first.fit(train, validation, output_dir=tmp_path / "run", **options)
    assert sum("head first:" in r.getMessage() for r in caplog.records) == 1
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir()] == ["epoch-2"]  # as logged
    caplog.clear()
    again = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    with caplog.at_level(logging.INFO, logger="mtl"):
        resumed = again.fit(train, validation, output_dir=tmp_path / "run", resume=True, **options)
    assert not any("head first:" in r.getMessage() for r in caplog.records)
    assert resumed.resumed_from_epoch == 2 and resumed.history == done.history
    assert resumed.train_seconds == done.train_seconds  # the head-first time was kept in the checkpoint


def test_a_new_fit_never_writes_over_an_earlier_runs_checkpoints(tmp_path):
    train, validation = colour_images(32, 0), colour_images(16, 1)
    options = dict(epochs=1, batch_size=16, learning_rate=1e-2, warmup_ratio=0.0)
    first = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    first.fit(train, validation, output_dir=tmp_path / "run", **options)
    kept = (tmp_path / "run" / "checkpoints" / "epoch-1")
    before = {p.name: p.stat().st_mtime_ns for p in kept.rglob("*")}
    again = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    with pytest.raises(OutputExistsError, match=r"holds an earlier run's checkpoints \(epoch-1\).*resume=True"):
        again.fit(train, validation, output_dir=tmp_path / "run", **options)
    assert {p.name: p.stat().st_mtime_ns for p in kept.rglob("*")} == before  # untouched
    again.fit(train, validation, output_dir=tmp_path / "other", **options)  # another folder is fine


def test_a_run_folder_fit_created_can_take_the_saved_model_with_overwrite(tmp_path):
    train, validation = colour_images(32, 0), colour_images(16, 1)
    task = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    task.fit(train, validation, output_dir=tmp_path / "run", epochs=1, batch_size=16)
    with pytest.raises(OutputExistsError, match="is not empty; choose another folder or pass overwrite=True"):
        task.save(tmp_path / "run")
    task.save(tmp_path / "run", overwrite=True)  # the folder fit made is mtl's: replaced as the message says
    assert (tmp_path / "run" / "config.json").is_file() and not (tmp_path / "run" / "checkpoints").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")  # a folder holding the user's files is not a run folder
    (mine / "train_log.jsonl").write_text("{}\n")
    with pytest.raises(OutputExistsError, match=r"output_dir .*mine already holds files \(notes.txt, "
                                                r"train_log.jsonl\); give a new or empty folder"):
        task.fit(train, validation, output_dir=mine, epochs=1, batch_size=16)
    assert (mine / "train_log.jsonl").read_text() == "{}\n" and not (mine / "checkpoints").exists()


def test_resume_without_a_run_folder_and_an_empty_table_are_named(tmp_path):
    import pandas as pd
    from mtl.errors import DataError, MtlError

    task = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    with pytest.raises(MtlError, match="resume=True needs output_dir"):
        task.fit(colour_images(16, 0), resume=True)
    with pytest.raises(DataError, match=r"train: the data holds no examples \(0 rows\)"):
        task.fit(pd.DataFrame({"image": [], "label": []}))


def test_a_resumed_fit_given_other_settings_names_them(tmp_path):
    from mtl.errors import MtlError

    train, validation = colour_images(32, 0), colour_images(16, 1)
    options = dict(epochs=2, batch_size=16, learning_rate=1e-2, warmup_ratio=0.0, max_steps=2)
    first = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    first.fit(train, validation, output_dir=tmp_path / "run", **options)
    again = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    with pytest.raises(MtlError, match=r"resume: the settings differ .*train.learning_rate: 0.01 -> 0.001; "
                                       r"train.max_steps: 2 -> 4\)"):
        again.fit(train, validation, output_dir=tmp_path / "run", resume=True,
                  **{**options, "max_steps": 4, "learning_rate": 1e-3})
    other = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=True)
    with pytest.raises(MtlError, match=r"preprocess.random_resized_crop: False -> True"):
        other.fit(train, validation, output_dir=tmp_path / "run", resume=True, **options)
    resumed = again.fit(train, validation, output_dir=tmp_path / "run", resume=True, **{**options, "log_every": 1})
    assert resumed.global_step == 2  # the same settings (how often it logs may change) resume


def test_predicting_or_saving_after_a_fit_that_stopped_says_the_weights_are_half_trained(tmp_path, caplog):
    from test_step_checkpoints import Stop, _stop_at_training_step

    task = ImageClassification(build_model("resnet", tmp_path / "resnet"), random_resized_crop=False)
    handle = _stop_at_training_step(2)
    try:
        with pytest.raises(Stop):
            task.fit(colour_images(32, 0), colour_images(16, 1), epochs=1, batch_size=8)
    finally:
        handle.remove()
    with caplog.at_level("WARNING", logger="mtl"):
        task.predict(colour_images(2, 3)["image"])
    assert any("predict: the last fit stopped before it finished (Stop)" in r.getMessage() for r in caplog.records)
    caplog.clear()
    task.fit(colour_images(32, 0), colour_images(16, 1), epochs=1, batch_size=8)
    with caplog.at_level("WARNING", logger="mtl"):
        task.predict(colour_images(2, 3)["image"])
    assert not any("half-trained" in r.getMessage() for r in caplog.records)
