"""Checkpoints inside an epoch (``train.save_every_steps``): a run stopped between two of them, for every
registered task and with its random augmentation on, resumes from the newest and ends with exactly the weights,
losses and metrics of the run that was never stopped.

The stop is an exception raised from a forward hook in the middle of an epoch, in this process; the SIGKILL
test in ``test_training.py`` kills a real run at random moments.
"""

from __future__ import annotations

import json

import pytest
import torch

from mtl.registry import get_task, known_tasks

OPTIONS = dict(freeze="none", epochs=2, batch_size=8, learning_rate=2e-3, warmup_ratio=0.0, log_every=5, seed=3,
               save_every_steps=3)


class Stop(Exception):
    """Stands in for the process being killed."""


def _stop_at_training_step(count: int):
    """Raise :class:`Stop` from the ``count``-th training forward pass of a whole model (one with a loss)."""
    calls = {"n": 0}

    def hook(module, args, output):
        if module.training and getattr(output, "loss", None) is not None:
            calls["n"] += 1
            if calls["n"] == count:
                raise Stop

    return torch.nn.modules.module.register_module_forward_hook(hook)


@pytest.mark.parametrize("name", known_tasks())
def test_a_run_stopped_inside_an_epoch_resumes_to_the_same_weights(name, tmp_path):
    cls = get_task(name)
    checkpoint = cls.tiny_checkpoint(tmp_path / "checkpoint")
    examples = cls.synthetic_examples(80, seed=4)
    train = {key: values[:64] for key, values in examples.items()}  # 8 batches an epoch
    validation = {key: values[64:] for key, values in examples.items()}

    reference = cls(checkpoint)
    expected = reference.fit(train, validation, **{**OPTIONS, "save_every_steps": None})

    handle = _stop_at_training_step(8 + 5)  # batch 5 of epoch 2: after the step-12 checkpoint
    try:
        with pytest.raises(Stop):
            cls(checkpoint).fit(train, validation, output_dir=tmp_path / "run", **OPTIONS)
    finally:
        handle.remove()
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name[0] != ".")
    assert kept == ["best-model.safetensors", "data.json", "settings.json", "step-12"], kept  # what resume must get
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-12" / "trainer_state.json").read_text())
    assert state["in_epoch"]["epoch"] == 1 and state["in_epoch"]["batches"] == 4

    resumed_task = cls(checkpoint)
    resumed = resumed_task.fit(train, validation, output_dir=tmp_path / "run", resume=True, **OPTIONS)
    assert resumed.resumed_from_step == 12 and resumed.resumed_from_epoch == 1
    assert resumed.train_losses == expected.train_losses
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history] == \
        [{k: v for k, v in h.items() if k != "seconds"} for h in expected.history]
    got, want = resumed_task.model.state_dict(), reference.model.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[key], want[key]) for key in want), [k for k in want if not torch.equal(got[k], want[k])]


def test_gradual_unfreezing_follows_its_schedule_and_resumes_mid_schedule_to_the_same_weights(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    from mtl.tasks import TextSentiment
    from conftest import make_sentences

    rows = make_sentences(80, seed=6)
    train, validation = rows[:64], rows[64:]
    options = dict(freeze={"gradual": {"every": 1}}, epochs=4, batch_size=16, learning_rate=5e-3, warmup_ratio=0.0,
                   seed=2)
    pretrained = {f"bert.{k}": v for k, v in load_file(tiny_bert / "model.safetensors").items()}

    first_epoch = TextSentiment(tiny_bert, max_length=32)
    first_epoch.fit(train, validation, **{**options, "epochs": 1})
    moved = {k for k, v in first_epoch.model.state_dict().items() if k in pretrained and not torch.equal(v, pretrained[k])}
    assert not moved, moved  # the first stage trains the head alone
    head_only = sum(p.numel() for n, p in first_epoch.model.named_parameters() if n.startswith("classifier."))
    assert first_epoch.freeze_report.trainable == head_only  # what trained, not what the schedule could train

    whole = TextSentiment(tiny_bert, max_length=32)
    whole.fit(train, validation, output_dir=tmp_path / "whole", **options)
    log = (tmp_path / "whole" / "train_log.jsonl").read_text()
    stages = [json.loads(line) for line in log.splitlines() if '"type": "stage"' in line]
    assert [stage["epoch"] for stage in stages] == [1, 2, 3, 4]
    assert "the head trains" in stages[0]["stage"] and "the top 1 block train" in stages[1]["stage"]
    assert "everything trains" in stages[-1]["stage"]  # embeddings too, at last

    handle = _stop_at_training_step(4 * 2 + 2)  # inside epoch 3 (4 batches an epoch): the top block training
    try:
        with pytest.raises(Stop):
            TextSentiment(tiny_bert, max_length=32).fit(train, validation, output_dir=tmp_path / "run", **options)
    finally:
        handle.remove()
    resumed = TextSentiment(tiny_bert, max_length=32)
    result = resumed.fit(train, validation, output_dir=tmp_path / "run", resume=True, **options)
    assert result.resumed_from_epoch == 2
    got, want = resumed.model.state_dict(), whole.model.state_dict()
    assert all(torch.allclose(got[key], want[key], atol=1e-6) for key in want)


def test_dataloader_workers_read_the_same_augmented_batches(tmp_path):
    cls = get_task("keyword-spotting")  # random time shift, gain, noise and SpecAugment on every training batch
    checkpoint = cls.tiny_checkpoint(tmp_path / "checkpoint")
    examples = cls.synthetic_examples(48, seed=5)
    train = {key: values[:32] for key, values in examples.items()}
    validation = {key: values[32:] for key, values in examples.items()}
    options = {**OPTIONS, "epochs": 1, "save_every_steps": None}
    alone, workers = cls(checkpoint), cls(checkpoint)
    expected = alone.fit(train, validation, **options)
    got = workers.fit(train, validation, num_workers=2, **options)
    assert got.train_losses == expected.train_losses
    assert all(torch.equal(a, b) for a, b in zip(alone.model.state_dict().values(), workers.model.state_dict().values()))


def test_a_run_resumed_on_other_data_is_refused_and_says_how_they_differ(tiny_bert, tmp_path):
    from mtl.errors import MtlError
    from mtl.tasks import TextSentiment
    from conftest import make_sentences

    rows = make_sentences(48, seed=7)
    train, validation = rows[:40], rows[40:]
    options = dict(epochs=1, batch_size=8, learning_rate=1e-3, output_dir=tmp_path / "run")
    TextSentiment(tiny_bert, max_length=32).fit(train, validation, **options)  # leaves its epoch checkpoint
    flipped = [{**row, "sentiment": "negative" if row["sentiment"] == "positive" else "positive"} for row in train]
    reworded = [{**row, "sentence": row["sentence"] + " film"} for row in train]
    for changed, message in ((train[:30], "train: 40 examples then, 30 now"),
                             (flipped[:-1] + train[-1:], "train: label counts"),
                             (reworded, "train: the same number of examples and labels, but other inputs")):
        with pytest.raises(MtlError, match="resume: the data differ from those the run started with") as error:
            TextSentiment(tiny_bert, max_length=32).fit(changed, validation, resume=True, **options)
        assert message in str(error.value) and "in Python, fit in another output_dir" in str(error.value)
    resumed = TextSentiment(tiny_bert, max_length=32).fit(train, validation, resume=True, **options)
    assert resumed.resumed_from_epoch == 1  # the same data: resumed (here: already at its end)
