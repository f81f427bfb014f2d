"""Training on a tiny BERT built from a config: learning, the pipeline round trip, caching, resume."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import pytest
import yaml
from datasets import load_dataset

from mtl.errors import DataError, MtlError, OutputExistsError
from mtl.tasks import TextSentiment

from conftest import REPO, make_sentences, pipeline_top1

FAST = dict(epochs=6, batch_size=16, learning_rate=1e-3, warmup_ratio=0.0)


@pytest.fixture(scope="module")
def trained(tiny_bert):
    task = TextSentiment(tiny_bert, max_length=32)
    frame = pd.DataFrame(make_sentences(400, seed=1))
    result = task.fit(frame[:320], frame[320:], **FAST)
    return task, result


def test_fit_learns_and_keeps_the_best_epoch(trained):
    task, result = trained
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.best_metric == max(h["accuracy"] for h in result.history) >= 0.9
    assert task.label_names == ["negative", "positive"]
    scores = task.evaluate(pd.DataFrame(make_sentences(100, seed=7)))
    assert scores["accuracy"] >= 0.9 and len(scores["confusion_matrix"]) == 2
    assert sum(map(sum, scores["confusion_matrix"])) == scores["num_examples"] == 100


def test_predict_agrees_with_plain_transformers_pipeline(trained, tmp_path):
    task, _ = trained
    task.save(tmp_path / "model")
    texts = ["the film was wonderful", "awful boring plot", "what a superb story", "dull"]
    ours = task.predict(texts)
    theirs = pipeline_top1("text-classification", tmp_path / "model", texts)
    assert [o["label"] for o in ours] == [t["label"] for t in theirs]
    for o, t in zip(ours, theirs):
        assert o["score"] == pytest.approx(t["score"], abs=1e-4)
    with pytest.raises(OutputExistsError, match="is not empty; choose another folder or pass overwrite=True"):
        task.save(tmp_path / "model")
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):  # a file is never replaced by a model folder
        with pytest.raises(OutputExistsError, match="notes.txt is a file; save the model to a folder"):
            task.save(tmp_path / "notes.txt", overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_loaded_model_predicts_the_same(trained, tmp_path):
    task, _ = trained
    task.save(tmp_path / "again")
    loaded = TextSentiment.load(tmp_path / "again")
    texts = ["great actors", "terrible story really"]
    assert [p["label"] for p in loaded.predict(texts)] == [p["label"] for p in task.predict(texts)]
    assert [p["score"] for p in loaded.predict(texts)] == pytest.approx([p["score"] for p in task.predict(texts)], abs=1e-5)
    assert loaded.label_names == task.label_names
    assert loaded.options == task.options  # max_length travels in config.json


def test_unknown_fit_option_and_predict_before_fit_are_clear(tiny_bert):
    task = TextSentiment(tiny_bert)
    with pytest.raises(MtlError, match="cannot predict: no trained model yet"):
        task.predict(["x"])
    with pytest.raises(MtlError, match="unknown training option 'epoch'; did you mean 'epochs'"):
        task.fit(make_sentences(20), epoch=1)
    with pytest.raises(MtlError, match="unknown option 'max_len'"):
        TextSentiment(tiny_bert, max_len=3)


def test_second_run_on_unchanged_data_tokenizes_nothing(tiny_bert, tmp_path):
    data = tmp_path / "reviews.csv"  # a file no earlier session has cached: its fingerprint is new
    pd.DataFrame(make_sentences(120, seed=11)).to_csv(data, index=False)
    split = load_dataset("csv", data_files=str(data), cache_dir=str(tmp_path / "hf"))["train"]
    split = split.rename_column("sentence", "text")
    first = TextSentiment(tiny_bert, max_length=24)
    first.features(split)
    assert first.last_preprocessed_rows == len(split) == 120
    again = TextSentiment(tiny_bert, max_length=24)
    again.features(split)
    assert again.last_preprocessed_rows == 0
    changed = TextSentiment(tiny_bert, max_length=25)
    changed.features(split)
    assert changed.last_preprocessed_rows == len(split)


def test_mixed_precision_bf16_trains_in_bf16(tiny_bert):
    import torch

    seen: set[torch.dtype] = set()

    def record(module, args, output):
        if isinstance(module, torch.nn.Linear) and module.training:
            seen.add(output.dtype)

    task = TextSentiment(tiny_bert, max_length=32)
    frame = pd.DataFrame(make_sentences(400, seed=1))  # as `trained`: 200 rows sit on a plateau for 6 epochs in
    handle = torch.nn.modules.module.register_module_forward_hook(record)  # fp32 too (loss 0.692, 40 rows scored)
    try:
        result = task.fit(frame[:320], frame[320:], mixed_precision="bf16", **FAST)
    finally:
        handle.remove()
    assert task._accelerator.mixed_precision == "bf16"
    assert torch.bfloat16 in seen  # the training forward passes really ran their matmuls in bf16
    assert result.history[-1]["loss"] < 0.6 < result.history[0]["loss"]  # it learned, not a lucky score
    assert result.best_metric >= 0.9
    assert all(p.dtype == torch.float32 for p in task.model.parameters())  # master weights stay fp32


def write_recipe(folder, tiny_bert, data_csv, **train):
    recipe = {
        "task": "text-sentiment",
        "model": {"checkpoint": str(tiny_bert)},
        "data": {"source": str(data_csv)},
        "preprocess": {"max_length": 32},
        "train": {"epochs": 3, "batch_size": 4, "learning_rate": 1e-3, "log_every": 50, **train},
        "output": {"dir": str(folder / "out")},
    }
    path = folder / "recipe.yaml"
    path.write_text("# python -m mtl.run recipe.yaml\n" + yaml.safe_dump(recipe))
    return path


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "mtl.run", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600, **kwargs)


def without_seconds(history):
    return [{key: value for key, value in record.items() if key != "seconds"} for record in history]


def _newest_state(checkpoints):
    """The trainer state of the newest complete checkpoint (epoch-N or step-N), as --resume picks it."""
    states = [json.loads((folder / "trainer_state.json").read_text()) for folder in checkpoints.glob("[es][pt]*-*")
              if (folder / "trainer_state.json").is_file()]
    return max(states, key=lambda state: state["result"]["global_step"]) if states else None


def _train_records(log_file):
    return [{k: v for k, v in record.items() if k != "type"} for record in map(json.loads, log_file.read_text().splitlines())
            if record["type"] == "train"]


def _start_and_kill(recipe, checkpoints, after_step, rng, *args):
    """Start a run, wait for a checkpoint past ``after_step``, SIGKILL it a random moment later; the newest state."""
    process = subprocess.Popen([sys.executable, "-m", "mtl.run", str(recipe), *args], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and ((_newest_state(checkpoints) or {"result": {"global_step": -1}})
                                      ["result"]["global_step"] <= after_step):
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 1.5))  # anywhere: mid-step, mid-checkpoint, mid-evaluation
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return _newest_state(checkpoints)


def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(tiny_bert, tmp_path, capsys):
    """Killed twice at random moments (checkpoints every 40 steps and per epoch), resumed: the same run, bit for bit."""
    data = tmp_path / "big.csv"
    pd.DataFrame(make_sentences(1500, seed=5)).to_csv(data, index=False)
    reference = tmp_path / "reference"
    reference.mkdir()
    done = run(str(write_recipe(reference, tiny_bert, data)))  # no step checkpoints: they must change nothing
    assert done.returncode == 0, done.stderr
    expected = json.loads((reference / "out" / "metrics.json").read_text())
    expected_losses = _train_records(reference / "out" / "train_log.jsonl")

    killed = tmp_path / "killed"
    killed.mkdir()
    recipe = write_recipe(killed, tiny_bert, data, save_every_steps=40)
    checkpoints = killed / "out" / "checkpoints"
    seed = random.randrange(10**6)
    print(f"kill moments drawn with random.Random({seed})")
    rng, state, step = random.Random(seed), None, -1
    for attempt in range(2):
        state = _start_and_kill(recipe, checkpoints, step, rng, *(["--resume"] if attempt else []))
        assert not (killed / "out" / "metrics.json").exists(), "the run finished before it could be killed"
        assert state is not None and state["result"]["global_step"] > step
        step = state["result"]["global_step"]
        finished = state["epoch"] + 1  # whole epochs before the kill
        assert without_seconds(state["result"]["history"]) == without_seconds(expected["history"][:finished])
        assert state["result"]["train_losses"] == expected_losses[:len(state["result"]["train_losses"])]

    from mtl.run import main  # in-process: a fresh interpreter costs seconds, and the killed runs were real ones

    capsys.readouterr()
    assert main([str(recipe)]) == 2 and "--resume" in capsys.readouterr().err
    resumed = run(str(recipe), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    got = json.loads((killed / "out" / "metrics.json").read_text())
    assert got["resumed_from_step"] == step and got["resumed_from_epoch"] == state["epoch"] + 1
    assert got["history"][:finished] == state["result"]["history"]  # carried over from the checkpoint, not re-run
    assert [h["step"] for h in got["history"]] == [h["step"] for h in expected["history"]]  # counting went on
    assert without_seconds(got["history"]) == without_seconds(expected["history"])  # the same epochs, bit for bit
    log = [json.loads(line) for line in (killed / "out" / "train_log.jsonl").read_text().splitlines()]
    last_resume = max(i for i, record in enumerate(log) if record["type"] == "resume")
    assert log[last_resume]["step"] == step
    after = [{k: v for k, v in r.items() if k != "type"} for r in log[last_resume:] if r["type"] == "train"]
    assert after == [r for r in expected_losses if r["step"] > step]  # the losses logged after resuming, exactly
    assert got["test"] == expected["test"]
    weights = [(folder / "out" / "model.safetensors").read_bytes() for folder in (killed, reference)]
    assert weights[0] == weights[1]
    assert not checkpoints.exists()  # removed after a successful run
    assert [r["epoch"] for r in log if r["type"] == "eval"][-3:] == [1, 2, 3]


def test_report_to_tensorboard_logs_losses_metrics_rates_and_throughput(tiny_bert, tmp_path):
    pytest.importorskip("tensorboardX")
    task = TextSentiment(tiny_bert, max_length=32)
    frame = pd.DataFrame(make_sentences(96, seed=5))
    task.fit(frame[:80], frame[80:], epochs=2, batch_size=16, log_every=2, report_to=["tensorboard"],
             output_dir=tmp_path / "run")
    events = list((tmp_path / "run" / "runs").rglob("events.out.tfevents.*"))
    assert events, sorted(str(p) for p in (tmp_path / "run").rglob("*"))
    written = b"".join(path.read_bytes() for path in events)
    for tag in (b"train/loss", b"train/learning_rate", b"train/examples_per_second", b"validation/accuracy",
                b"validation/loss"):
        assert tag in written, tag


def test_report_to_names_a_tracker_that_is_not_installed(tiny_bert, monkeypatch, tmp_path):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    with pytest.raises(MtlError, match="train.report_to: wandb is not installed; pip install wandb"):
        TextSentiment(tiny_bert, max_length=32).fit(make_sentences(40), max_steps=1, report_to=["wandb"],
                                                   output_dir=tmp_path / "run")


def test_class_weights_and_label_smoothing_shape_what_the_model_learns(trained, tiny_bert):
    from mtl.training.losses import class_weight_vector

    assert class_weight_vector("auto", ["neg", "pos"], [0, 0, 0, 1]) == pytest.approx([4 / 6, 2.0])
    with pytest.raises(MtlError, match=r"names \['postive'\].*the labels are \['neg', 'pos'\]"):
        class_weight_vector({"postive": 2.0}, ["neg", "pos"], [0, 1])

    plain = trained[0]
    frame = pd.DataFrame(make_sentences(400, seed=1))  # what `trained` learned from, with FAST
    texts = [row["sentence"] for row in make_sentences(80, seed=9)]
    weighted = TextSentiment(tiny_bert, max_length=32)
    weighted.fit(frame[:320], frame[320:], class_weights={"negative": 1.0, "positive": 200.0}, **{**FAST, "epochs": 2})
    share = [sum(p["label"] == "positive" for p in task.predict(texts)) / len(texts) for task in (plain, weighted)]
    assert share[1] > 0.9 and share[1] > share[0], share  # a loss that counts positives 200x answers positive



def test_label_smoothing_spreads_each_target_over_all_labels_in_the_training_loss():
    from transformers.modeling_outputs import SequenceClassifierOutput

    from mtl.training.losses import training_loss

    class Fixed(torch.nn.Module):  # a classifier whose logits are given
        def forward(self, inputs):
            return SequenceClassifierOutput(logits=inputs)

    logits, labels = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]), torch.tensor([0, 2])
    log_p = logits.log_softmax(-1)
    smoothing, weights = 0.3, [1.0, 1.0, 4.0]
    targets = torch.full((2, 3), smoothing / 3) + (1 - smoothing) * torch.nn.functional.one_hot(labels, 3)
    expected = -(targets * log_p).sum(-1)
    loss = training_loss(None, smoothing)(Fixed(), {"inputs": logits, "labels": labels})
    assert loss.item() == pytest.approx(expected.mean().item(), rel=1e-6)
    per_example = -(targets * log_p * torch.tensor(weights)).sum(-1)
    weighted = training_loss(weights, smoothing)(Fixed(), {"inputs": logits, "labels": labels})
    assert weighted.item() == pytest.approx((per_example.sum() / torch.tensor(weights)[labels].sum()).item(), rel=1e-6)


def test_max_seconds_stops_training_after_the_epoch_in_progress(tiny_bert):
    frame = pd.DataFrame(make_sentences(96, seed=4))
    task = TextSentiment(tiny_bert, max_length=32)
    result = task.fit(frame[:64], frame[64:], epochs=20, batch_size=16, max_seconds=1e-3)
    assert result.stopped_by_time and len(result.history) == 1 and result.global_step == 1  # one step, evaluated
    assert result.best_epoch == 1
    one_epoch = task.fit(frame[:64], frame[64:], epochs=1, batch_size=16, max_seconds=1e-3)
    assert one_epoch.stopped_by_time and one_epoch.global_step == 1  # cut inside the last epoch: said so too


def test_compile_trains_like_eager_and_saves_a_plain_model(tiny_bert, tmp_path):
    """``train.compile`` runs the training steps through ``torch.compile`` (here its ``aot_eager`` backend, which
    traces and partitions forward and backward as inductor does, without generating kernels: seconds, not minutes);
    the weights end as eager training leaves them and the saved folder has no compile wrapper in it. Dropout is
    off: a compiled graph may draw its random masks from another stream than eager does (on CUDA it does, PyTorch
    issue 143431; the maintainers call that intended), and the steps' arithmetic is what this compares."""
    from safetensors.torch import load_file
    from torch._dynamo.utils import counters

    no_dropout = tmp_path / "tiny-bert-no-dropout"
    shutil.copytree(tiny_bert, no_dropout)
    config = json.loads((no_dropout / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (no_dropout / "config.json").write_text(json.dumps(config))
    frame = pd.DataFrame(make_sentences(48, seed=8))
    weights = {}
    for backend in (False, "aot_eager"):
        counters.clear()
        task = TextSentiment(no_dropout, max_length=16)
        task.fit(frame[:32], frame[32:], epochs=1, batch_size=16, learning_rate=1e-3, warmup_ratio=0.0,
                 compile=backend, seed=3)
        weights[backend] = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
        assert bool(counters["stats"]["unique_graphs"]) == bool(backend)  # dynamo traced the compiled run only
    pretrained = load_file(no_dropout / "model.safetensors")["encoder.layer.0.attention.self.query.weight"]
    assert not weights[False]["bert.encoder.layer.0.attention.self.query.weight"].equal(pretrained)  # it trained
    assert max((weights[False][k].float() - weights["aot_eager"][k].float()).abs().max().item()
               for k in weights[False]) < 1e-4
    saved = load_file(task.save(tmp_path / "out") / "model.safetensors")
    assert set(saved) <= set(weights[False]) and not any("_orig_mod" in key for key in saved)


def test_mixed_precision_auto_is_bf16_where_the_cpu_multiplies_it_and_is_recorded(tiny_bert, tmp_path):
    """``auto`` picks bf16 on a CPU with native bf16 (AVX512-BF16 or AMX; /proc/cpuinfo says which), else no;
    metrics.json records the precision the run used, not the word auto."""
    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    if not flags:
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    expected = "bf16" if {"avx512_bf16", "amx_tile"} & set(flags) else "no"
    frame = pd.DataFrame(make_sentences(60, seed=9))
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    recipe = write_recipe(tmp_path, tiny_bert, tmp_path / "reviews.csv", mixed_precision="auto", cpu=True, epochs=1)
    result = run(str(recipe))
    assert result.returncode == 0, result.stderr[-2000:]
    environment = json.loads((tmp_path / "out" / "metrics.json").read_text())["environment"]
    assert environment["mixed_precision"] == expected


@pytest.mark.parametrize("freeze, expected", [("backbone", "lr 0.001"), ("none", "lr 5e-05")])
def test_an_unset_learning_rate_suits_what_trains(tiny_bert, caplog, freeze, expected):
    """A linear probe from a random head needs a far larger rate than fine-tuning pretrained weights: at 5e-5 a
    probe stays at chance, so ``fit(freeze="backbone")`` without ``learning_rate`` trains the head at 1e-3."""
    frame = pd.DataFrame(make_sentences(48, seed=4))
    with caplog.at_level("INFO", logger="mtl"):
        TextSentiment(tiny_bert, max_length=32).fit(frame[:32], frame[32:], freeze=freeze, epochs=1, batch_size=16)
    groups = [r.getMessage() for r in caplog.records if r.getMessage().startswith("parameter groups:")]
    assert groups and all(expected in message for message in groups), groups
    assert any(r.getMessage().startswith("train.learning_rate not given") for r in caplog.records)
    caplog.clear()
    with caplog.at_level("INFO", logger="mtl"):  # a rate given is always the rate used
        TextSentiment(tiny_bert, max_length=32).fit(frame[:32], frame[32:], freeze=freeze, epochs=1, batch_size=16,
                                                    learning_rate=3e-4)
    assert all("lr 0.0003" in r.getMessage() for r in caplog.records if r.getMessage().startswith("parameter groups:"))


def test_a_subclass_can_name_its_own_input_column(tiny_bert):
    """A task built on TextSentiment for data whose texts sit in another column (as a plug-in task would)."""
    import dataclasses

    class QuestionTopic(TextSentiment):
        spec = dataclasses.replace(TextSentiment.spec, input_column="question", input_candidates=("question",))

    rows = [{"question": row["sentence"], "label": row["sentiment"]} for row in make_sentences(48, seed=5)]
    task = QuestionTopic(tiny_bert, max_length=32)
    task.fit(rows[:32], rows[32:], epochs=1, batch_size=16, learning_rate=1e-3)
    assert len(task.predict(["good film", "bad film"])) == 2
    with pytest.raises(MtlError, match=r"rename the column, e.g. df.rename\(columns=\{'YOUR_COLUMN': 'question'\}\)"):
        task.fit([{"text": "good film", "label": "positive"}] * 8)


def test_predict_takes_an_array_of_texts_and_a_generator_as_many_inputs(trained):
    import numpy as np

    task, _ = trained
    expected = task.predict(["a good film", "a bad film"])
    assert task.predict(np.array(["a good film", "a bad film"])) == expected
    assert task.predict(text for text in ["a good film", "a bad film"]) == expected


@pytest.mark.parametrize("given", ["reviews.csv", "/no/such/dir/test.JSONL", Path("notes.txt")])
def test_predict_refuses_a_file_name_given_as_a_text(trained, given):
    task, _ = trained
    with pytest.raises(DataError, match=r"predict: '.*' is a file name, not a text; predict takes the texts"):
        task.predict(given)
    assert len(task.predict(["see reviews.csv for more", "notes.txt"])) == 2  # texts in a list are texts


def test_a_folder_saved_in_half_precision_loads_as_float32(trained, tmp_path):
    """A saved folder whose weights were cast to bf16 (another tool, a smaller upload) loads with float32 weights,
    which predict and a second fit use."""
    import torch
    from safetensors.torch import load_file, save_file

    task, _ = trained
    folder = task.save(tmp_path / "half")
    weights = load_file(folder / "model.safetensors")
    save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))  # as save_pretrained writes it
    loaded = TextSentiment.load(folder)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    assert [p["label"] for p in loaded.predict(["great actors", "terrible story really"])] == ["positive", "negative"]
