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
    assert kept == ["best-model.safetensors", "step-12"], kept
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
