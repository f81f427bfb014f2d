"""--overwrite never destroys what mtl did not write, nor the output it replaces before the new one is complete;
a failed run leaves nothing that needs a flag."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import make_sentences, run_cli
from mtl.errors import MtlError, OutputExistsError
from mtl.publish.output_dir import (MARKER_FILE, PreparedOutput, clean_failed_run, finish_output, prepare_output_dir,
                                   note_written, previous_output)


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.docx").write_text("years of work")
    (path / "photos").mkdir()
    (path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    return path


def test_overwrite_refuses_a_folder_mtl_did_not_write(tmp_path):
    folder = user_folder(tmp_path / "mine")
    with pytest.raises(OutputExistsError, match="mtl did not write it"):
        prepare_output_dir(folder, overwrite=True, resume=False)
    assert (folder / "thesis.docx").read_text() == "years of work" and (folder / "photos" / "cat.jpg").is_file()


@pytest.mark.parametrize("which", ["cwd", "parent", "home", "root"])
def test_overwrite_refuses_cwd_its_parents_home_and_root_even_when_marked(tmp_path, monkeypatch, which):
    work = tmp_path / "project" / "work"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("keep me")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "project"))
    target = {"cwd": work, "parent": tmp_path, "home": tmp_path / "project", "root": Path("/")}[which]
    if which != "root":
        (target / MARKER_FILE).write_text("{}")  # even a (forged) marker does not make these replaceable
    with pytest.raises(OutputExistsError, match="refusing to replace"):
        prepare_output_dir(target, overwrite=True, resume=False)
    assert (work / "notes.txt").read_text() == "keep me"


def test_overwrite_refuses_a_folder_holding_the_runs_own_data(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER_FILE).write_text("{}")
    data = out / "reviews.csv"
    data.write_text("text,label\n")
    with pytest.raises(OutputExistsError, match="an input of this run"):
        prepare_output_dir(out, overwrite=True, resume=False, protected=[data])
    assert data.is_file()


def test_overwrite_replaces_a_folder_mtl_wrote_once_the_new_output_is_complete(tmp_path):
    out = tmp_path / "out"
    assert prepare_output_dir(out, overwrite=False, resume=False).created
    (out / "model.safetensors").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        prepare_output_dir(out, overwrite=False, resume=False)
    prepared = prepare_output_dir(out, overwrite=True, resume=False)
    assert sorted(p.name for p in out.iterdir()) == [MARKER_FILE]
    assert prepared.previous == tmp_path / "out.previous" and (prepared.previous / "model.safetensors").read_bytes() == b"old"
    finish_output(prepared)
    assert not prepared.previous.exists() and out.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_a_failed_overwrite_puts_the_replaced_output_back_or_keeps_both(tmp_path):
    out = tmp_path / "out"
    prepare_output_dir(out, overwrite=False, resume=False)
    (out / "model.safetensors").write_bytes(b"old")
    clean_failed_run(out, prepare_output_dir(out, overwrite=True, resume=False))  # failed before any checkpoint
    assert (out / "model.safetensors").read_bytes() == b"old" and not previous_output(out).exists()
    prepared = prepare_output_dir(out, overwrite=True, resume=False)
    (out / "checkpoints" / "epoch-0").mkdir(parents=True)
    clean_failed_run(out, prepared)  # failed after a checkpoint: both stay, the new run can be resumed
    assert (out / "checkpoints" / "epoch-0").is_dir()
    assert (previous_output(out) / "model.safetensors").read_bytes() == b"old"
    with pytest.raises(OutputExistsError, match=r"out.previous already holds an output .* --resume finishes that run "
                                                r"\(and then deletes out.previous\), or move or delete"):
        prepare_output_dir(out, overwrite=True, resume=False)
    assert (out / "checkpoints" / "epoch-0").is_dir() and (previous_output(out) / "model.safetensors").is_file()
    resumed = prepare_output_dir(out, overwrite=False, resume=True)  # --resume, and the resumed run finishes:
    assert resumed.previous == previous_output(out)
    finish_output(resumed)  # what the interrupted --overwrite set aside goes too
    assert not previous_output(out).exists() and (out / "checkpoints" / "epoch-0").is_dir()


def test_a_run_stopped_after_its_output_was_complete_keeps_it(tmp_path):
    from mtl.publish.output_dir import record_contents

    out = tmp_path / "out"
    prepare_output_dir(out, overwrite=False, resume=False)
    (out / "model.safetensors").write_bytes(b"old")
    record_contents(out)
    prepared = prepare_output_dir(out, overwrite=True, resume=False)
    (out / "model.safetensors").write_bytes(b"new")  # the new output, swapped in whole, then Ctrl-C
    record_contents(out)
    clean_failed_run(out, prepared)
    assert (out / "model.safetensors").read_bytes() == b"new" and not previous_output(out).exists()


def test_the_output_an_overwrite_run_set_aside_is_not_replaced_by_another_run(tmp_path):
    from mtl.publish.output_dir import record_contents

    out = tmp_path / "out"
    prepare_output_dir(out, overwrite=False, resume=False)
    (out / "model.safetensors").write_bytes(b"old")
    record_contents(out)
    prepare_output_dir(out, overwrite=True, resume=False)  # the old output waits in out.previous
    with pytest.raises(OutputExistsError, match=r"out.previous is the output that a --overwrite run of .*out set aside"):
        prepare_output_dir(previous_output(out), overwrite=True, resume=False)
    assert (previous_output(out) / "model.safetensors").read_bytes() == b"old"


def test_resume_of_a_finished_run_says_it_finished(tmp_path):
    out = tmp_path / "out"
    prepare_output_dir(out, overwrite=False, resume=False)
    (out / "metrics.json").write_text("{}")
    with pytest.raises(MtlError, match="already finished .* pass --overwrite"):
        prepare_output_dir(out, overwrite=False, resume=True)


def test_a_run_killed_before_its_first_checkpoint_runs_again_without_a_flag(tmp_path):
    out = tmp_path / "out"  # SIGKILL leaves what the run wrote first: marker, recipe, the data's signature
    prepare_output_dir(out, overwrite=False, resume=False)
    (out / "recipe.yaml").write_text("task: text-sentiment\n")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "data.json").write_text("{}")
    prepare_output_dir(out, overwrite=False, resume=False)
    assert not (out / "checkpoints").exists()
    (out / "checkpoints" / "step-3").mkdir(parents=True)  # with a checkpoint it is a run to resume
    with pytest.raises(OutputExistsError, match="--resume to continue its run"):
        prepare_output_dir(out, overwrite=False, resume=False)


def test_of_two_runs_started_into_one_new_folder_only_the_first_writes(tmp_path, monkeypatch):
    import mtl.publish.output_dir as output_dir

    target = tmp_path / "out"
    first = prepare_output_dir(target, overwrite=False, resume=False)
    assert first.created and (target / MARKER_FILE).is_file()
    monkeypatch.setattr(output_dir, "check_output_dir", lambda *args, **kwargs: False)  # checked before the first
    with pytest.raises(OutputExistsError, match="another run started writing there a moment ago"):
        prepare_output_dir(target, overwrite=False, resume=False)
    assert json.loads((target / MARKER_FILE).read_text())["written_by"] == "mtl"


def test_a_folder_another_live_run_is_writing_is_refused_even_with_overwrite_or_resume(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    prepare_output_dir(out, overwrite=False, resume=False)
    (out / "checkpoints" / "epoch-1").mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        marker = json.loads((out / MARKER_FILE).read_text())
        (out / MARKER_FILE).write_text(json.dumps({**marker, "pid": other.pid}))  # as the other run wrote it
        for flags in ({"overwrite": True, "resume": False}, {"overwrite": False, "resume": True}):
            with pytest.raises(OutputExistsError, match=rf"a run \(pid {other.pid}\) is writing there now; wait"):
                prepare_output_dir(out, **flags)
        shutil.rmtree(out / "checkpoints")  # just started (marker only): not replaced without a flag either
        with pytest.raises(OutputExistsError, match="is writing there now"):
            prepare_output_dir(out, overwrite=False, resume=False)
        (out / "config.json").write_text("{}")
        (out / MARKER_FILE).write_text(json.dumps({**marker, "pid": other.pid, "contents": ["config.json"]}))
        assert prepare_output_dir(out, overwrite=True, resume=False).previous is not None  # finished: replaceable
    finally:
        other.kill()
        other.wait()


def test_failed_run_cleanup_removes_only_what_the_run_created(tmp_path):
    created = tmp_path / "new"
    clean_failed_run(created, prepare_output_dir(created, overwrite=False, resume=False))
    assert not created.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    prepared = prepare_output_dir(empty, overwrite=False, resume=False)
    assert not prepared.created
    clean_failed_run(empty, prepared)
    assert empty.is_dir() and not any(empty.iterdir())
    resumable = tmp_path / "resumable"
    prepare_output_dir(resumable, overwrite=False, resume=False)
    (resumable / "checkpoints" / "epoch-0").mkdir(parents=True)
    clean_failed_run(resumable, PreparedOutput(created=True))
    assert (resumable / "checkpoints" / "epoch-0").is_dir()


@pytest.fixture
def recipe_file(tmp_path, tiny_bert):
    data = tmp_path / "reviews.csv"
    pd.DataFrame(make_sentences(120)).to_csv(data, index=False)

    def write(**model):
        raw = {"task": "text-sentiment", "model": {"checkpoint": str(tiny_bert), **model},
               "data": {"source": str(data)}, "preprocess": {"max_length": 32},
               "train": {"epochs": 1, "batch_size": 16}, "output": {"dir": str(tmp_path / "out")}}
        path = tmp_path / "recipe.yaml"
        path.write_text("# python -m mtl.run recipe.yaml\n" + yaml.safe_dump(raw))
        return path

    return write


def test_cli_overwrite_of_a_user_folder_exits_2_and_touches_nothing(recipe_file, tmp_path):
    folder = user_folder(tmp_path / "out")
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    done = run_cli(str(recipe_file()), "--overwrite")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "mtl did not write it" in done.stderr
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before


def test_cli_failed_run_leaves_nothing_so_the_rerun_needs_no_flag(recipe_file, tmp_path):
    failed = run_cli(str(recipe_file(freeze={"patterns": ["no.such.layer.*"]})))
    assert failed.returncode == 2 and "matches no parameter" in failed.stderr, failed.stderr
    assert not (tmp_path / "out").exists()
    rerun = run_cli(str(recipe_file(freeze="none")))
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "out" / MARKER_FILE).is_file() and (tmp_path / "out" / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_overwrite_that_fails_leaves_the_finished_run_as_it_was(recipe_file, tmp_path):
    first = run_cli(str(recipe_file(freeze="none")))
    assert first.returncode == 0, first.stderr
    before = folder_bytes(tmp_path / "out")
    failed = run_cli(str(recipe_file(freeze={"patterns": ["no.such.layer.*"]})), "--overwrite")
    assert failed.returncode == 2 and "matches no parameter" in failed.stderr, failed.stderr
    assert folder_bytes(tmp_path / "out") == before and not previous_output(tmp_path / "out").exists()
    replaced = run_cli(str(recipe_file(freeze="none")), "train.seed=7", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert folder_bytes(tmp_path / "out") != before and not previous_output(tmp_path / "out").exists()


@pytest.mark.parametrize("moment", ["fit", "write_model"])
def test_overwrite_interrupted_never_loses_the_finished_run(recipe_file, tmp_path, monkeypatch, moment):
    """Ctrl-C in an --overwrite run: during training (no checkpoint yet) the earlier output is put back; during the
    final save (the new run's checkpoints exist, --resume can finish it) the earlier output waits whole in
    ``out.previous``."""
    from mtl.recipe import load_recipe
    from mtl.runner.run import run_recipe
    from mtl.tasks import TextSentiment

    recipe = recipe_file(freeze="none")
    assert run_cli(str(recipe)).returncode == 0
    out = tmp_path / "out"
    before = folder_bytes(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(TextSentiment, moment, interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load_recipe(recipe), overwrite=True)
    if moment == "fit":
        assert folder_bytes(out) == before and not previous_output(out).exists()
    else:
        assert folder_bytes(previous_output(out)) == before and (out / "checkpoints").is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_sigterm_during_an_overwrite_run_exits_143_and_puts_the_finished_run_back(recipe_file, tmp_path,
                                                                                   monkeypatch, capsys):
    """kill / timeout / a scheduler send SIGTERM: the run cleans up as on Ctrl-C."""
    import os
    import signal

    from mtl.run import main
    from mtl.tasks import TextSentiment

    recipe = recipe_file(freeze="none")
    assert run_cli(str(recipe)).returncode == 0
    out = tmp_path / "out"
    before = folder_bytes(out)
    monkeypatch.setattr(TextSentiment, "fit", lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGTERM))
    assert main([str(recipe), "--overwrite"]) == 143
    assert "terminated (SIGTERM)" in capsys.readouterr().err
    assert folder_bytes(out) == before and not previous_output(out).exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler lives only as long as the command


def test_python_save_overwrite_refuses_a_user_folder_and_replaces_its_own(tiny_bert, tmp_path):
    from mtl.tasks import TextSentiment

    task = TextSentiment(tiny_bert, max_length=16)
    task.fit(make_sentences(40), max_steps=1, batch_size=8)
    folder = user_folder(tmp_path / "mine")
    with pytest.raises(OutputExistsError, match="mtl did not write it"):
        task.save(folder, overwrite=True)
    assert (folder / "thesis.docx").is_file() and not (folder / "config.json").exists()
    saved = task.save(tmp_path / "model")
    (saved / "notes.txt").write_text("my notes")  # the user's own file in mtl's folder: replacing would delete it
    with pytest.raises(OutputExistsError, match=r"it holds notes.txt, which mtl did not write; .* Move it out"):
        task.save(saved, overwrite=True)
    (saved / "notes.txt").unlink()
    (saved / "onnx").mkdir()  # what a later mtl command adds (mtl.export) is part of the output
    note_written(saved, "onnx")
    task.save(saved, overwrite=True)
    assert (saved / "config.json").is_file() and not (saved / "onnx").exists()
    (saved / MARKER_FILE).write_text('{"written_by": "mtl"}\n')  # a folder saved before mtl kept its contents
    (saved / "stale.bin").write_bytes(b"from an older save")
    task.save(saved, overwrite=True)
    assert not (saved / "stale.bin").exists()


def test_a_moved_run_folder_resumes_from_its_new_place(recipe_file, tmp_path):
    recipe = recipe_file(freeze="none")
    first = run_cli(str(recipe), "output.keep_checkpoints=true", "train.epochs=2")
    assert first.returncode == 0, first.stderr
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    (tmp_path / "out").rename(moved)
    saved = yaml.safe_load((moved / "recipe.yaml").read_text())  # as mtl wrote it before these keys became optional
    saved["model"]["head"] = {"type": "linear", "hidden": [1024], "activation": "relu", "dropout": 0.0}
    saved["train"]["time_budget"] = 10.0
    (moved / "recipe.yaml").write_text(yaml.safe_dump(saved))
    resumed = run_cli(str(recipe), "output.keep_checkpoints=true", "train.epochs=2", f"output.dir={moved}", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((moved / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 2 and len(metrics["history"]) == 2
    assert not (tmp_path / "out").exists()
