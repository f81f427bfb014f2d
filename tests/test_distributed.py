"""Two processes on this machine's CPU (gloo), launched as users launch them (``torchrun`` and ``accelerate launch`` with the shipped config): the same run as one
process, each test example evaluated once, outputs written once, frozen backbones and the feature cache working."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    return subprocess.run([*launcher, "-m", "mtl.run", str(recipe), *overrides], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=ENV)


ENV = {**os.environ, "OMP_NUM_THREADS": "1",  # mpirun installed by pip sits beside this Python
       "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
CONFIGS = REPO / "recipes" / "accelerate"


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
    done = launch([*ACCELERATE, str(CONFIGS / "cpu-2-processes-torchrun.yaml")], recipe, f"output.dir={out}",
                  "model.freeze=backbone", "train.epochs=2",
                  "train.batch_size=8")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed run: 2 processes (DistributedType.MULTI_CPU)" in done.stderr
    assert "feature cache: the frozen backbone ran once" in done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainable_parameters"] < metrics["total_parameters"]
    assert metrics["test"]["num_examples"] == metrics["data"]["test"]


@pytest.mark.skipif(shutil.which("mpirun", path=ENV["PATH"]) is None, reason="mpirun not installed (pip install mpich)")
def test_accelerate_multi_cpu_config_starts_two_processes_through_mpirun(recipe):
    out = recipe.parent / "mpi"
    done = launch([*ACCELERATE, str(CONFIGS / "cpu-2-processes.yaml")], recipe, f"output.dir={out}",
                  "train.epochs=1", "train.batch_size=8")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed run: 2 processes (DistributedType.MULTI_CPU)" in done.stderr
    assert done.stdout.count("test accuracy:") == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == metrics["data"]["test"]


def test_a_launch_that_asked_for_two_processes_but_started_one_says_so(recipe, tmp_path):
    config = tmp_path / "multi-cpu-without-mpirun.yaml"  # accelerate's MULTI_CPU type, no mpirun hostfile
    config.write_text(yaml.safe_dump({"compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_CPU",
                                      "num_machines": 1, "machine_rank": 0, "num_processes": 2,
                                      "mixed_precision": "no", "use_cpu": True}))
    done = launch([*ACCELERATE, str(config)], recipe, f"output.dir={tmp_path / 'out'}", "--dry-run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "one process (cpu)" in done.stderr
    assert "accelerate launch was asked for several processes but started this one only" in done.stderr


def test_a_run_whose_process_was_killed_resumes_on_two_processes(recipe, tmp_path):
    """One of two processes SIGKILLed after a checkpoint; the relaunch with --resume ends like a run never stopped."""
    overrides = ("train.batch_size=8", "train.epochs=3", "train.save_every_steps=3", "train.log_every=1")
    reference = launch(TORCHRUN, recipe, f"output.dir={tmp_path / 'whole'}", *overrides)
    assert reference.returncode == 0, reference.stderr[-3000:]

    out = tmp_path / "killed"
    process = subprocess.Popen([*TORCHRUN, "-m", "mtl.run", str(recipe), f"output.dir={out}", *overrides], cwd=REPO,
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((out / "checkpoints").glob("step-*/trainer_state.json")):
        time.sleep(0.02)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert workers, "torchrun started no worker processes"
    os.kill(int(workers[-1]), signal.SIGKILL)  # one process dies; torchrun stops the other
    assert process.wait(timeout=120) != 0
    assert not (out / "metrics.json").exists() and list((out / "checkpoints").glob("*-*/trainer_state.json"))

    resumed = launch(TORCHRUN, recipe, f"output.dir={out}", *overrides, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    whole, got = (json.loads((folder / "metrics.json").read_text()) for folder in (tmp_path / "whole", out))
    assert got["resumed_from_step"] and got["test"] == whole["test"]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in got["history"]] == \
        [{k: v for k, v in h.items() if k != "seconds"} for h in whole["history"]]
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()
