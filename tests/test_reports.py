"""One tiny run through the CLI with compare and --push-to-hub: the reports, the model card, transfer versus
scratch, what reaches the (stand-in) Hub, then predict and ONNX export on the output folder."""

from __future__ import annotations

import base64
import contextlib
import io
import json

import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import make_sentences
from hub_stand_in import GOOD_TOKEN, StandInHub


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_bert):
    """(output folder, stdout, stand-in hub) of ``python -m mtl.run recipe --push-to-hub team/tiny-sentiment``."""
    from mtl.run import main

    folder = tmp_path_factory.mktemp("run")
    pd.DataFrame(make_sentences(100)).to_csv(folder / "reviews.csv", index=False)
    raw = {"task": "text-sentiment", "model": {"checkpoint": str(tiny_bert)}, "data": {"source": str(folder / "reviews.csv")},
           "preprocess": {"max_length": 16}, "train": {"epochs": 2, "batch_size": 32, "learning_rate": 1e-3},
           "compare": {"scratch": True, "label_fractions": [0.5, 1.0], "scratch_max_epochs": 5, "scratch_patience": 2},
           "output": {"dir": str(folder / "out")}}
    (folder / "recipe.yaml").write_text("# python -m mtl.run recipe.yaml\n" + yaml.safe_dump(raw))
    stdout = io.StringIO()
    with StandInHub() as hub, pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", hub.url)
        patch.setenv("HF_TOKEN", GOOD_TOKEN)
        with contextlib.redirect_stdout(stdout):
            code = main([str(folder / "recipe.yaml"), "--quiet", "--push-to-hub", "team/tiny-sentiment"])
    assert code == 0
    return folder / "out", stdout.getvalue(), hub


def test_reports_are_written_and_agree_with_metrics(run):
    out, stdout, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    per_class = pd.read_csv(out / "per_class.csv", index_col="label")
    assert list(per_class.index) == metrics["labels"] == ["negative", "positive"]
    assert per_class.loc["positive", "recall"] == pytest.approx(test["per_class"]["positive"]["recall"], abs=1e-4)
    predictions = pd.read_csv(out / "test_predictions.csv")
    assert len(predictions) == test["num_examples"] == metrics["data"]["test"]
    assert set(predictions.columns) >= {"input", "label", "predicted", "score"}
    assert predictions["correct"].mean() == pytest.approx(test["accuracy"])
    assert predictions["input"].str.len().min() > 0
    for name in ("confusion_matrix.png", "learning_curves.png", "compare.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 300
    assert "test accuracy" in stdout and "transfer versus scratch:" in stdout and "pushed to the Hub" in stdout


def test_compare_trains_scratch_and_pretrained_on_each_fraction(run):
    out, _, _ = run
    table = pd.read_csv(out / "compare.csv")
    assert sorted(zip(table["init"], table["label_fraction"])) == [("pretrained", 0.5), ("pretrained", 1.0),
                                                                    ("scratch", 0.5), ("scratch", 1.0)]
    half = table[table["label_fraction"] == 0.5]["train_examples"]
    full = table[table["label_fraction"] == 1.0]["train_examples"]
    assert (half < full.max()).all() and (full == json.loads((out / "metrics.json").read_text())["data"]["train"]).all()
    assert (table["train_seconds"] > 0).all() and "test_accuracy" in table
    assert len(json.loads((out / "metrics.json").read_text())["compare"]) == 4
    pretrained, scratch = (table[table["init"] == init] for init in ("pretrained", "scratch"))
    assert (pretrained["budget"] == "the recipe: 2 epochs").all() and (pretrained["epochs"] == 2).all()
    assert scratch["budget"].str.contains("early stopping \\(patience 2\\), at most 4x the pretrained time or 5").all()
    assert scratch["ended_by"].isin(["early stopping", "time budget", "last epoch"]).all()
    assert (scratch["epochs"] <= 5).all()
    card = (out / "README.md").read_text()
    assert "## Pretrained versus trained from scratch" in card and "at most 4x the pretrained time" in card
    assert "the recipe: 2 epochs" in card and "(compare.png)" in card


def test_model_card_metadata_round_trips_through_huggingface_hub(run):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    out, _, _ = run
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.pipeline_tag == "text-classification" and data.library_name == "transformers"
    assert data.license == "other" and {"mtl", "text", "transfer-learning"} <= set(data.tags)
    assert data.base_model is None  # the checkpoint is a local folder, not a Hub id
    name, results = model_index_to_eval_results(data.to_dict()["model-index"])
    assert name == "tiny-sentiment"
    accuracy = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
    assert {r.metric_type: r.metric_value for r in results}["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert all(r.task_type == "text-classification" and r.dataset_split == "test" for r in results)
    for section in ("## Task and labels", "## Training", "## Results on the test split", "confusion_matrix.png",
                    'pipeline("text-classification", model="team/tiny-sentiment")', "## Intended use and limits",
                    "## Recipe", "Hardware:", "Freezing:"):
        assert section in card.text
    assert yaml.safe_load(card.text.split("```yaml\n")[1].split("```")[0])["train"]["epochs"] == 2


def test_push_sends_the_folder_in_one_commit_and_never_leaks_the_token(run):
    out, stdout, hub = run
    calls = hub.paths()
    assert calls.index("GET /api/whoami-v2") < calls.index("POST /api/repos/create")
    assert all(r["authorized"] for r in hub.requests if r["path"] != "/api/agent-harnesses")
    created = json.loads(next(r["body"] for r in hub.requests if r["path"] == "/api/repos/create"))
    assert (created["name"], created["organization"], created["visibility"]) == ("tiny-sentiment", "team", "private")
    (commit,) = hub.commits()
    files = {line["value"]["path"]: line["value"] for line in commit if line["key"] == "file"}
    assert {"README.md", "config.json", "model.safetensors", "confusion_matrix.png", "compare.csv"} <= set(files)
    assert not {"test_predictions.csv", "metrics.json", "recipe.yaml"} & set(files)  # private unless include_private
    assert not any(path.startswith(("checkpoints/", ".")) for path in files)
    sent = base64.b64decode(files["config.json"]["content"])
    assert sent == (out / "config.json").read_bytes()
    assert GOOD_TOKEN not in stdout
    for path in out.rglob("*"):
        assert not path.is_file() or GOOD_TOKEN.encode() not in path.read_bytes(), path


def test_predict_cli_reads_csv_text_files_and_texts(run, tmp_path):
    from mtl.predict import main
    from mtl.tasks import TextSentiment

    out, _, _ = run
    pd.DataFrame({"review": ["a great film", "dull and boring"]}).to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "lines.txt").write_text("lovely story\n\nawful plot\n")
    assert main([str(out), str(tmp_path / "in.csv"), str(tmp_path / "lines.txt"), "what a film",
                 "--output", str(tmp_path / "p.json"), "--batch-size", "2"]) == 0
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [r["input"] for r in rows] == ["a great film", "dull and boring", "lovely story", "awful plot", "what a film"]
    expected = TextSentiment.load(out).predict([r["input"] for r in rows])
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert [r["score"] for r in rows] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    assert main([str(out), str(tmp_path / "in.csv"), "--output", str(tmp_path / "p.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == ["input", "label", "score"]


def test_predict_cli_reads_json_lines_json_and_parquet_as_tables(run, tmp_path, capsys):
    from mtl.predict import main

    out, _, _ = run
    table = pd.DataFrame({"text": ["a great film", "dull and boring"], "label": [1, 0]})
    table.to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    table.to_json(tmp_path / "in.json", orient="records")
    table.to_parquet(tmp_path / "in.parquet")
    table.to_json(tmp_path / "lines.json", orient="records", lines=True)  # what datasets' to_json writes
    (tmp_path / "bom.json").write_text("\ufeff" + table.to_json(orient="records"), encoding="utf-8")
    for name in ("in.jsonl", "in.json", "in.parquet", "lines.json", "bom.json"):
        assert main([str(out), str(tmp_path / name), "--output", str(tmp_path / f"{name}.json")]) == 0
        rows = json.loads((tmp_path / f"{name}.json").read_text())
        assert [r["input"] for r in rows] == ["a great film", "dull and boring"], name  # the column, not raw JSON
    (tmp_path / "odd.json").write_text('{"text": "one object, not a list"}')
    assert main([str(out), str(tmp_path / "odd.json")]) == 2
    assert "odd.json: cannot read the table (expected a list of JSON objects" in capsys.readouterr().err


def test_predict_cli_errors_are_one_clear_line(run, tmp_path, capsys):
    from mtl.predict import main

    out, _, _ = run
    pd.DataFrame({"words": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    assert main([str(out), str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv: no input column" in err and "--column" in err
    assert main([str(out), str(tmp_path / "missing.csv")]) == 2
    assert main([str(tmp_path), "text"]) == 2
    err = capsys.readouterr().err
    assert "missing.csv: no such file" in err and "is not a model folder" in err and "Traceback" not in err


def test_onnx_export_of_the_text_model_matches_pytorch(run, capsys):
    pytest.importorskip("onnxruntime")
    from mtl.export import main

    out, _, _ = run
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file() and p.name != ".mtl-output"}
    assert main([str(out), "--onnx"]) == 0
    printed = capsys.readouterr().out
    assert "parity: max |onnx - torch|" in printed
    difference = float(printed.split("max |onnx - torch| = ")[1].split()[0])
    assert difference <= 1e-4
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx" / "tokenizer.json").is_file()
    assert before == {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file() and p.name != ".mtl-output"}
    assert "onnx" in json.loads((out / ".mtl-output").read_text())["contents"]  # the marker lists the export
    exported = (out / "onnx" / "model.onnx").read_bytes()
    assert main([str(out), "--onnx"]) == 2  # an earlier export is replaced only on request
    assert "already holds an export; pass --overwrite" in capsys.readouterr().err
    assert (out / "onnx" / "model.onnx").read_bytes() == exported
    assert main([str(out), "--onnx", "--overwrite"]) == 0


@pytest.mark.parametrize("task_name, head", [("keyword-spotting", "linear"), ("image-classification", "mlp")])
def test_card_carries_the_tasks_usage_code_for_audio_and_mlp_heads(run, task_name, head):
    from mtl.publish.card import base_license, build_card
    from mtl.registry import get_task

    out, _, _ = run
    summary = json.loads((out / "metrics.json").read_text())
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    recipe["model"]["head"]["type"] = head
    task = get_task(task_name)()
    text = str(build_card(summary, recipe, task.spec, task.usage_code("path/to/this/folder", head == "mlp")))
    usage = text.split("```python\n")[1].split("```")[0]
    compile(usage, "usage", "exec")  # runs for real in the behaviour contract (test_task_contract.py)
    assert ("trust_remote_code=True" in usage) == (head == "mlp")
    assert ('"sampling_rate": rate' in usage) == (task_name == "keyword-spotting")
    assert base_license(None, "timm/tf_efficientnet_lite0.in1k") == "apache-2.0"  # from the mirror catalog


def test_a_label_fraction_too_small_to_train_on_is_refused_before_any_training(caplog):
    from types import SimpleNamespace

    from datasets import Dataset

    from mtl.errors import MtlError
    from mtl.publish.compare import check_label_fractions
    from mtl.recipe import recipe_from_dict

    labels = [0] * 40 + [1] * 40 + [2] * 5  # the rarest label has 5 examples
    data = SimpleNamespace(label_names=["a", "b", "c"],
                           splits={"train": Dataset.from_dict({"text": [f"t{i}" for i in range(85)], "label": labels})})
    raw = {"task": "text-sentiment", "data": {"source": "x.csv"}}
    fine = recipe_from_dict({**raw, "compare": {"label_fractions": [0.5, 0.5, 1.0]}})
    with caplog.at_level("WARNING", logger="mtl"):
        check_label_fractions(fine, data)  # half keeps 2 or 3 of the rarest label
    assert any("lists 0.5 more than once" in r.getMessage() for r in caplog.records)
    with pytest.raises(MtlError, match=r"compare.label_fractions: 0.05 of the 85 training examples keeps \d+, with no "
                                       r"example of 'c'.*at least 0.4 \(the rarest label has 5"):
        check_label_fractions(recipe_from_dict({**raw, "compare": {"label_fractions": [0.05, 1.0]}}), data)


def test_a_scratch_run_its_budget_cut_short_is_reported():
    from mtl.publish.compare import budget_warnings

    table = pd.DataFrame([
        {"init": "pretrained", "label_fraction": 1.0, "epochs": 3, "ended_by": "last epoch", "train_seconds": 2.0},
        {"init": "scratch", "label_fraction": 0.5, "epochs": 1, "ended_by": "time budget", "train_seconds": 8.1},
        {"init": "scratch", "label_fraction": 1.0, "epochs": 9, "ended_by": "time budget", "train_seconds": 8.0},
        {"init": "scratch", "label_fraction": 0.1, "epochs": 2, "ended_by": "early stopping", "train_seconds": 1.0}])
    warnings = budget_warnings(table)
    assert len(warnings) == 1 and "scratch run on 50% of the labels trained only 1 epoch in its budget" in warnings[0]
    assert "compare.scratch_time_multiple" in warnings[0]


def test_quality_warnings_name_a_baseline_model_and_a_test_split_too_small_to_trust():
    from mtl.runner.summary import quality_warnings

    labels = ["neg", "pos"]
    assert quality_warnings({"confusion_matrix": [[90, 10], [12, 88]], "macro_f1": 0.89}, labels) == []
    small = quality_warnings({"confusion_matrix": [[10, 0], [0, 10]], "macro_f1": 1.0}, labels)
    assert small == ["The test split holds only 20 examples: test accuracy 100.0% is known only to within 84%-100% "
                     "(95% interval); hold out more examples (data.test_size) for a number to trust."]
    majority = quality_warnings({"confusion_matrix": [[150, 0], [50, 0]], "macro_f1": 0.43}, labels)
    assert majority[0].startswith("The model is no better than always answering the commonest label 'neg' (75.0%")
    assert majority[1] == "100% of the test predictions are 'neg': the model collapsed onto one label."


def test_report_inputs_are_texts_or_paths_and_number_texts_are_shown_too():
    from datasets import Dataset

    from mtl.publish.reports import readable_inputs

    assert readable_inputs(Dataset.from_dict({"text": ["a film", "dull"]}), "text") == ["a film", "dull"]
    assert readable_inputs(Dataset.from_dict({"text": [7, 42]}), "text") == ["7", "42"]  # digits read as numbers
    assert readable_inputs(Dataset.from_dict({"audio": [[0.1, 0.2], [0.3]]}), "audio") is None  # bare arrays
