"""The command line: exit code 2 and one clear message on bad input, dry runs, output protection."""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_sentences, run_cli


@pytest.fixture
def recipe(tmp_path, tiny_bert):
    data = tmp_path / "reviews.csv"
    pd.DataFrame(make_sentences(160)).to_csv(data, index=False)
    raw = {"task": "text-sentiment", "model": {"checkpoint": str(tiny_bert), "freeze": "none"},
           "data": {"source": str(data)}, "preprocess": {"max_length": 32},
           "train": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3}, "output": {"dir": str(tmp_path / "out")}}
    path = tmp_path / "recipe.yaml"
    path.write_text("# python -m mtl.run recipe.yaml\n" + yaml.safe_dump(raw))
    return path


def assert_clean_failure(done, *fragments):
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr


def test_misspelled_key_exits_2_with_one_line(recipe):
    done = run_cli(str(recipe), "train.epoch=1")
    assert_clean_failure(done, "train.epoch: unknown key; did you mean 'epochs'?")
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_recipe_bad_data_and_bad_checkpoint_exit_2(recipe, tmp_path, capsys):
    from mtl.run import main  # in-process (a fresh interpreter each costs seconds): the subprocess path is tested above

    for argv, message in [((tmp_path / "nope.yaml",), "cannot read recipe"),
                          ((recipe, f"data.source={tmp_path / 'missing.csv'}"), "does not exist"),
                          ((recipe, "data.input_column=words"), "data.input_column: train has no column 'words'"),
                          ((recipe, f"model.checkpoint={tmp_path / 'no-model'}"), "does not exist"),
                          ((recipe, "model.freeze={top_k: 9}"), "has only 2 blocks")]:
        assert_one_error(main([str(a) for a in argv]), capsys.readouterr().err, message)


def test_dry_run_prints_the_resolved_recipe(recipe, tmp_path):
    done = run_cli(str(recipe), "--dry-run", "train.epochs=5")
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["train"]["epochs"] == 5 and resolved["train"]["batch_size"] == 16
    assert resolved["preprocess"] == {"max_length": 32}
    assert "# checked: data (2 labels" in done.stdout and "local folder" in done.stdout
    assert "freezing (" in done.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override, message", [
    ("data.source=missing.csv", "does not exist"),
    ("model.checkpoint=/no/such/model", "does not exist"),
    ("metrics=[accuracy, macro_f11]", "did you mean 'macro_f1'"),
    ("output.dir=reviews.csv/out", "cannot write"),
    ("preprocess.max_length=100", "more than the 64 tokens"),
    ("model.freeze={top_k: 100}", "has only 2 blocks"),
    ("model.freeze={patterns: ['zzz*']}", "freeze pattern 'zzz*' matches no parameter"),
    ("model.freeze={patterns: ['classifier*']}", "freeze the new classification head (classifier.bias"),
    ("model.freeze={lora: {target_modules: [nonexistent_mod]}}", "['nonexistent_mod'] match no linear"),
    ("train.class_weights={negative: 1, positve: 2}", "train.class_weights names ['positve']"),
])
def test_dry_run_checks_data_checkpoint_metrics_and_output_before_training(recipe, override, message, capsys,
                                                                           monkeypatch):
    from mtl.run import main

    monkeypatch.chdir(recipe.parent)
    assert main([str(recipe), "--dry-run", override]) == 2  # in-process: the subprocess path is tested above
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not (recipe.parent / "out").exists()


def test_dry_run_names_a_wrong_candidate_before_ranking_and_warns_of_unused_settings(recipe, tmp_path, capsys, caplog):
    from mtl.run import main
    from mtl.tasks import ImageClassification

    text = yaml.safe_load(recipe.read_text())["model"]["checkpoint"]
    image = ImageClassification.tiny_checkpoint(tmp_path / "tiny-image")
    assert main([str(recipe), "--dry-run", "model.checkpoint=auto", f"select.candidates=[{text}, {image}]"]) == 2
    err = capsys.readouterr().err
    assert f"select: candidate {image} is a vit checkpoint, which AutoModelForSequenceClassification cannot use" in err
    out = yaml.safe_load(recipe.read_text())["output"]["dir"]
    for inside in (out, f"{out}/ranking"):  # the run makes output.dir whole: a ranking in it would block the run
        assert main([str(recipe), "--dry-run", "model.checkpoint=auto", f"select.report_dir={inside}"]) == 2
        assert f"select.report_dir {inside} lies in output.dir {out}" in capsys.readouterr().err
    with caplog.at_level("WARNING", logger="mtl"):
        assert main([str(recipe), "--dry-run", "hub.repo_id=me/model", f"select.candidates=[{image}]"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith("hub.repo_id me/model is set but hub.push is false: nothing is pushed") for m in warnings)
    assert any(m.startswith("select.candidates are ranked only with model.checkpoint: auto") for m in warnings)


def test_run_writes_a_complete_folder_and_refuses_to_overwrite_it(recipe, tmp_path, capsys):
    from mtl.run import main

    done = run_cli(str(recipe))
    assert done.returncode == 0, done.stderr
    assert "test accuracy:" in done.stdout
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "recipe.yaml",
            "train_log.jsonl"} <= names
    assert not any(n.startswith(".tmp") for n in names) and "checkpoints" not in names
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"accuracy", "macro_f1", "loss", "per_class", "confusion_matrix"}
    assert metrics["checkpoint_source"] == "local folder"
    assert yaml.safe_load((out / "recipe.yaml").read_text())["train"]["epochs"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    before = (out / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()  # the second and third runs in-process: a fresh interpreter each costs seconds
    assert_one_error(main([str(recipe)]), capsys.readouterr().err, "is not empty; pass --overwrite")
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    assert main([str(recipe), "--overwrite", "train.epochs=1"]) == 0, capsys.readouterr().err
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 1


def test_readme_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:3]]
    assert blocks[0] == "pip install -e . && python -m mtl.run recipes/sentiment.yaml"
    assert blocks[1] in (REPO / ".ci" / "run").read_text().splitlines()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, tiny_bert):
    """A saved tiny text model and a saved tiny image model (one training step each)."""
    from mtl.tasks import ImageClassification, TextSentiment

    root = tmp_path_factory.mktemp("saved")
    text = TextSentiment(tiny_bert, max_length=16)
    text.fit(make_sentences(40), max_steps=1, batch_size=8)
    image = ImageClassification(str(ImageClassification.tiny_checkpoint(root / "tiny-vit")))
    image.fit(ImageClassification.synthetic_examples(16), max_steps=1, batch_size=8)
    return text.save(root / "text"), image.save(root / "image")


def predict(capsys, *argv):
    """``python -m mtl.predict argv`` in-process: (exit code, stdout, stderr)."""
    from mtl.predict import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code, err, *fragments):
    assert code == 2 and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_predict_never_replaces_an_output_file_without_overwrite(saved_models, tmp_path, capsys):
    output = tmp_path / "o.json"
    output.write_text("my earlier predictions")
    code, _, err = predict(capsys, saved_models[0], "a good film", "--output", output)
    assert_one_error(code, err, f"--output {output} already exists", "pass --overwrite")
    assert output.read_text() == "my earlier predictions"
    assert predict(capsys, saved_models[0], "a good film", "--output", output, "--overwrite")[0] == 0
    assert [row["input"] for row in json.loads(output.read_text())] == ["a good film"]


def test_predict_overwrite_never_replaces_an_input_or_a_model_file_and_texts_are_never_paths(saved_models, tmp_path,
                                                                                              capsys):
    table = tmp_path / "reviews.csv"
    table.write_text("text\na good film\n")
    model_files = {name: (saved_models[0] / name).read_bytes() for name in ("config.json", "tokenizer.json")}
    for output, message in [(table, "is also an input of this command"),
                            (saved_models[0] / "config.json", "lies in the mtl output folder"),
                            (saved_models[0] / "tokenizer.json", "lies in the mtl output folder"),
                            (tmp_path, "is a folder; give a file path")]:
        for overwrite in ("--overwrite", None):  # the same refusal without the flag: not "pass --overwrite"
            code, _, err = predict(capsys, saved_models[0], table, "--output", output, *filter(None, [overwrite]))
            assert_one_error(code, err, f"--output {output}", message)
    assert table.read_text() == "text\na good film\n"
    assert all((saved_models[0] / name).read_bytes() == data for name, data in model_files.items())
    long_text, tilde = "a long and winding film " * 20, "~great film, really"  # not paths: no stat errors
    code, out, err = predict(capsys, saved_models[0], long_text, tilde)
    assert code == 0, err
    assert list(pd.read_csv(io.StringIO(out))["input"]) == [long_text, tilde]


def test_predict_names_a_file_of_another_modality(saved_models, tmp_path, capsys):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes.txt").write_text("a good film\n")
    code, _, err = predict(capsys, saved_models[0], tmp_path / "photo.png")
    assert_one_error(code, err, "photo.png: .png files are read by image-classification models; this model is for "
                     "text-sentiment and reads .txt files")
    code, _, err = predict(capsys, saved_models[1], tmp_path / "notes.txt")
    assert_one_error(code, err, "notes.txt: .txt files are read by text-sentiment models; this model is for "
                     "image-classification")


def test_predict_names_every_bad_image_of_a_folder_at_once(saved_models, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(folder / f"good{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    Image.new("RGB", (1, 300)).save(folder / "thin.png")
    code, _, err = predict(capsys, saved_models[1], folder)
    assert_one_error(code, err, "predict inputs row 1 (")
    assert "broken.jpg) cannot be decoded" in err and "thin.png) is 1x300 pixels" in err


def test_predict_on_a_folder_says_which_files_it_left_out(saved_models, tmp_path, capsys, caplog):
    (tmp_path / "a.txt").write_text("a good film\n")
    (tmp_path / "b.csv").write_text("text\nfine\n")
    (tmp_path / "c.txt").symlink_to(tmp_path / "deleted.txt")
    (tmp_path / "d.txt").symlink_to(tmp_path / "gone.txt")
    with caplog.at_level("WARNING", logger="mtl"):
        code, out, _ = predict(capsys, saved_models[0], tmp_path)
    assert code == 0 and out.count("\n") == 2  # the header and a.txt's line
    assert any("1 files left out, not .txt files (b.csv)" in r.getMessage() for r in caplog.records)
    assert any(f"input: 2 links in {tmp_path} lead nowhere and are left out (c.txt -> {tmp_path / 'deleted.txt'}, "
               f"d.txt -> {tmp_path / 'gone.txt'}); fix or remove them" in r.getMessage() for r in caplog.records)


def test_predict_names_inputs_that_are_not_utf8_text(saved_models, tmp_path, capsys):
    binary = tmp_path / "bin.dat"
    binary.write_bytes(bytes(range(128, 256)) * 16)
    (tmp_path / "latin.csv").write_bytes("text\ncafé good\n".encode("latin-1"))
    (tmp_path / "latin.json").write_bytes("café good\n".encode("latin-1"))
    for name in ("bin.dat", "latin.csv", "latin.json"):
        code, _, err = predict(capsys, saved_models[0], tmp_path / name)
        assert_one_error(code, err, f"{tmp_path / name}: not UTF-8 text")


def test_a_model_folder_without_weights_or_with_truncated_weights_is_one_message(saved_models, tmp_path, capsys):
    from mtl.export import main as export

    broken = tmp_path / "truncated"
    shutil.copytree(saved_models[0], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = predict(capsys, broken, "a good film")
    assert_one_error(code, err, f"{broken}: cannot load its weights (", "damaged or truncated")
    assert export([str(broken), "--onnx"]) == 2
    assert_one_error(2, capsys.readouterr().err, f"{broken}: cannot load its weights (")
    weights.unlink()
    code, _, err = predict(capsys, broken, "a good film")
    assert_one_error(code, err, f"{broken}: holds no model weights (model.safetensors); the folder is incomplete")


def test_a_run_folder_without_its_model_yet_says_how_to_finish_the_run(saved_models, tmp_path, capsys,
                                                                        monkeypatch):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-8").mkdir(parents=True)  # what a run killed after --overwrite leaves
    shutil.copytree(saved_models[0], tmp_path / "run.previous")
    code, _, err = predict(capsys, run, "a good film")
    assert_one_error(code, err, f"{run} holds a run that stopped before saving its model",
                     f"python -m mtl.run {run / 'recipe.yaml'} --resume", f"kept in {tmp_path / 'run.previous'}")
    (run / "checkpoints" / "step-8").rmdir()  # killed before its first checkpoint: nothing to resume
    monkeypatch.chdir(run)  # the folder given as "." too
    code, _, err = predict(capsys, ".", "a good film")
    assert_one_error(code, err, ". holds a run that stopped before its first checkpoint", "recipe.yaml --overwrite")


def test_loading_a_model_folder_with_another_tasks_class_names_both_tasks(saved_models):
    from mtl.errors import MtlError
    from mtl.tasks import TextSentiment

    with pytest.raises(MtlError, match=r"holds a model for task image-classification, not text-sentiment; load it with"):
        TextSentiment.load(saved_models[1])


def test_predict_reads_a_path_column_and_names_a_bad_row_by_file_and_row(saved_models, tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 0, 0)).save(tmp_path / "red.png")
    table = tmp_path / "images.csv"
    table.write_text("path\nred.png\n")
    code, out, err = predict(capsys, saved_models[1], table)
    assert code == 0, err
    assert pd.read_csv(io.StringIO(out))["input"].tolist() == ["red.png"]
    table.write_text("path\nred.png\nmissing.png\n")
    code, _, err = predict(capsys, saved_models[1], table)
    assert_one_error(code, err, f"{table} row 2 (line 3) ({tmp_path / 'missing.png'}): does not exist; check the path")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    code, _, err = predict(capsys, saved_models[1], tmp_path / "broken.png")  # the file is named once
    assert_one_error(code, err, f"{tmp_path / 'broken.png'}: cannot be decoded (corrupt or not an image)")
    assert err.count("broken.png") == 1, err


def test_a_freezing_that_does_not_fit_fails_before_the_head_first_stage_trains(recipe, capsys, caplog, monkeypatch):
    from mtl.run import main

    monkeypatch.chdir(recipe.parent)
    caplog.set_level("INFO")
    assert main([str(recipe), "train.head_first_epochs=2", "model.freeze={patterns: ['zzz*']}"]) == 2
    assert "matches no parameter" in capsys.readouterr().err
    assert "head first" not in caplog.text and not (recipe.parent / "out").exists()


def test_no_arguments_names_only_the_recipe_as_required(capsys):
    from mtl.run import main

    with pytest.raises(SystemExit) as stopped:
        main([])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().endswith("error: the following arguments are required: recipe")


def test_loading_a_pretrained_backbone_folder_is_refused_rather_than_predicting_with_a_random_head(tiny_bert):
    from mtl.errors import CheckpointError
    from mtl.tasks import TextSentiment

    with pytest.raises(CheckpointError, match=r"holds no trained classification head \(classifier.bias, "
                                              r"classifier.weight missing\): it is a pretrained checkpoint"):
        TextSentiment.load(tiny_bert)


def test_predict_finds_a_table_column_named_in_another_letter_case(saved_models, tmp_path, capsys):
    table = tmp_path / "reviews.jsonl"
    table.write_text('{"ID": 7, "Text": "a wonderful film"}\n{"ID": 8, "Text": "dull and bad"}\n')
    code, out, err = predict(capsys, saved_models[0], table)
    assert code == 0, err
    assert [line.split(",")[0] for line in out.splitlines()] == ["input", "a wonderful film", "dull and bad"]
