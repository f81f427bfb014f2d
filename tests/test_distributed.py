"""Two processes on this machine's CPU (gloo), launched as users launch them (``torchrun`` and ``accelerate launch`` with the shipped config): the same run as one
process, each test example evaluated once, outputs written once, frozen backbones and the feature cache working."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO, make_sentences, run_cli


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_bert):
    root = tmp_path_factory.mktemp("ddp")
    pd.DataFrame(make_sentences(240, seed=4)).to_csv(root / "reviews.csv", index=False)
    raw = {"task": "text-sentiment", "model": {"checkpoint": str(tiny_bert)}, "data": {"source": str(root / "reviews.csv")},
           "preprocess": {"max_length": 32}, "train": {"epochs": 6, "batch_size": 16, "learning_rate": 2e-3,
                                                        "warmup_ratio": 0.0, "cpu": True}}
    path = root / "recipe.yaml"
    path.write_text("# torchrun --nproc_per_node 2 -m mtl.run recipe.yaml\n" + yaml.safe_dump(raw))
    return path


def launch(launcher: list[str], recipe, *overrides: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([*launcher, "-m", "mtl.run", str(recipe), *overrides], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(REPO / "recipes" / "accelerate" / "cpu-2-processes.yaml")]


def test_two_processes_train_like_one(recipe):
    out = recipe.parent
    single = run_cli(str(recipe), f"output.dir={out / 'one'}")
    assert single.returncode == 0, single.stderr
    double = launch(TORCHRUN, recipe, f"output.dir={out / 'two'}", "train.batch_size=8")  # 2 x 8 = the same 16 per step
    assert double.returncode == 0, double.stderr[-3000:]
    assert "distributed run: 2 processes (DistributedType.MULTI_CPU)" in double.stderr
    assert double.stdout.count("test accuracy:") == 1  # the summary comes from the main process only
    one, two = (json.loads((out / name / "metrics.json").read_text()) for name in ("one", "two"))
    assert two["test"]["num_examples"] == one["test"]["num_examples"] == one["data"]["test"]  # each example once
    assert sum(map(sum, two["test"]["confusion_matrix"])) == one["data"]["test"]
    assert [h["step"] for h in two["history"]] == [h["step"] for h in one["history"]]  # same global batches
    assert one["test"]["accuracy"] >= 0.85 and abs(two["test"]["accuracy"] - one["test"]["accuracy"]) <= 0.1
    names = sorted(p.name for p in (out / "two").iterdir())
    assert names.count("model.safetensors") == 1 and not [n for n in names if n.startswith(".tmp")]
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-mtl-")]  # no process left a staging folder


def test_frozen_backbone_and_feature_cache_under_accelerate_launch(recipe):
    out = recipe.parent / "frozen"
    done = launch(ACCELERATE, recipe, f"output.dir={out}", "model.freeze=backbone", "train.epochs=2",
                  "train.batch_size=8")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed run: 2 processes (DistributedType.MULTI_CPU)" in done.stderr
    assert "feature cache: the frozen backbone ran once" in done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainable_parameters"] < metrics["total_parameters"]
    assert metrics["test"]["num_examples"] == metrics["data"]["test"]
