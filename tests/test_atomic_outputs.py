"""A kill never leaves a mix: a folder written through mtl.fs holds one whole save or the one before it.

The subprocess test SIGKILLs processes that save two different models in turn over one folder; before each kill
it also freezes the process (SIGSTOP) at random moments, which leaves on disk exactly what a kill there would.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtl import fs
from mtl.fs import STAGING_PREFIX, atomic_folder, clean_orphans

from conftest import REPO

SAVER = r"""
import itertools, sys
sys.path.insert(0, sys.argv[3])
from conftest import make_sentences
from mtl.tasks import TextSentiment

folder, checkpoint, tests, ref_a, ref_b = sys.argv[1:6]
tasks = []
for names in (("negative", "positive"), ("bad", "good", "meh")):
    rows = [{"text": r["sentence"], "label": names[i % len(names)]} for i, r in enumerate(make_sentences(24))]
    task = TextSentiment(checkpoint, max_length=16)
    task.fit(rows, rows, max_steps=1, batch_size=8)
    tasks.append(task)
tasks[0].save(ref_a)
tasks[1].save(ref_b)
tasks[0].save(folder, overwrite=True)
print("ready", flush=True)
for i in itertools.count(1):
    tasks[i % 2].save(folder, overwrite=True)
"""

MARKER = ".mtl-output"  # holds the writer's pid, so it differs between two saves of one model
SAVERS, PROBES = 3, 6


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != MARKER}


def one_whole_save(folder: Path, references: list[dict[str, bytes]]) -> tuple[str, ...]:
    """Assert ``folder`` holds exactly one of the reference saves; return its label names."""
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else None
    whole = names is not None and MARKER in names and any(contents(folder) == ref for ref in references)
    assert whole, f"{folder} holds no whole save (files: {names})"
    from safetensors import safe_open

    config = json.loads((folder / "config.json").read_text())
    labels = tuple(config["id2label"][str(i)] for i in range(len(config["id2label"])))
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert weights.get_slice("classifier.weight").get_shape()[0] == len(labels)
    return labels


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(STAGING_PREFIX))


def stop(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGSTOP)
    _, status = os.waitpid(process.pid, os.WUNTRACED)  # returns once the process is really stopped
    assert os.WIFSTOPPED(status)


def test_a_killed_save_leaves_the_new_model_or_the_old_one_never_a_mix(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    rng = random.Random(1234)
    savers = []
    for k in range(SAVERS):  # side by side: the start-up (imports, two tiny fits) is most of the time
        folder = tmp_path / f"saver-{k}" / "model"
        refs = [tmp_path / f"saver-{k}" / name for name in ("ref-a", "ref-b")]
        log = open(tmp_path / f"saver-{k}.log", "w")
        process = subprocess.Popen([sys.executable, "-c", SAVER, str(folder), str(tiny_bert), str(REPO / "tests"),
                                    *map(str, refs)], stdout=subprocess.PIPE, stderr=log, text=True, cwd=tmp_path,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})  # three processes on few cores
        savers.append((process, folder, refs, log))
    seen = set()
    try:
        for process, folder, refs, log in savers:
            assert "ready\n" in iter(process.stdout.readline, ""), Path(log.name).read_text()[-3000:]
            references = [contents(ref) for ref in refs]
            for _ in range(PROBES):
                time.sleep(rng.uniform(0.0, 0.15))
                stop(process)
                seen.add(one_whole_save(folder, references))
                os.kill(process.pid, signal.SIGCONT)
            time.sleep(rng.uniform(0.0, 0.15))
            process.kill()
            process.wait()
            labels = one_whole_save(folder, references)  # before any clean-up: never missing, never a mix
            seen.add(labels)
            clean_orphans(folder)
            assert leftovers(folder) == []
            assert one_whole_save(folder, references) == labels
            model = AutoModelForSequenceClassification.from_pretrained(folder)
            assert tuple(model.config.id2label[i] for i in range(model.config.num_labels)) == labels
    finally:
        for process, _, _, log in savers:
            process.kill()
            process.wait()
            process.stdout.close()
            log.close()
    assert seen == {("negative", "positive"), ("bad", "good", "meh")}  # the folder really changed under the probes


# ---- mtl.fs, fast ------------------------------------------------------------------------------------------------

def dead_pid() -> int:
    """The id of a process that has exited and been reaped (so no process has it now)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def fill(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_atomic_folder_replaces_the_folder_whole(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(fs, "_exchange", lambda a, b: False)  # systems without renameat2
    target = fill(tmp_path / "out", **{"stale.txt": "old", "sub/stale.bin": "old"})
    with atomic_folder(target) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(f"{STAGING_PREFIX}out-{os.getpid()}-")
        assert tree(target) == {"stale.txt": "old", "sub/stale.bin": "old"}  # nothing visible before the end
        fill(staging, **{"new.txt": "new"})
    assert tree(target) == {"new.txt": "new"}
    assert leftovers(target) == []


def test_atomic_folder_leaves_the_target_untouched_when_the_block_fails(tmp_path):
    target = fill(tmp_path / "out", **{"kept.txt": "old"})
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_folder(target) as staging:
            fill(staging, **{"half.txt": "new"})
            raise RuntimeError("disk full")
    assert tree(target) == {"kept.txt": "old"}
    assert leftovers(target) == []


def test_clean_orphans_puts_back_a_folder_whose_swap_was_cut_between_the_two_renames(tmp_path):
    target, pid = tmp_path / "out", dead_pid()  # swap_in renamed out aside, then the process died
    aside = fill(tmp_path / f"{STAGING_PREFIX}out-{pid}-abc123-old", **{"model.bin": "old"})
    staged = fill(tmp_path / f"{STAGING_PREFIX}out-{pid}-abc123", **{"model.bin": "new, never swapped in"})
    assert not target.exists()
    clean_orphans(target)
    assert tree(target) == {"model.bin": "old"}
    assert not aside.exists() and not staged.exists() and leftovers(target) == []


def test_clean_orphans_removes_what_dead_processes_left_and_keeps_what_live_ones_use(tmp_path):
    target = fill(tmp_path / "out", **{"model.bin": "current"})
    dead_folder = fill(tmp_path / f"{STAGING_PREFIX}out-{dead_pid()}-x1y2z3", **{"model.bin": "half"})
    dead_file = tmp_path / f"{STAGING_PREFIX}out-{dead_pid()}-q9w8e7"
    dead_file.write_text("half a file")
    live = fill(tmp_path / f"{STAGING_PREFIX}out-{os.getpid()}-k4l5m6", **{"model.bin": "being written"})
    other = fill(tmp_path / f"{STAGING_PREFIX}other-{dead_pid()}-r1t2y3", **{"x": "another target's"})
    removed = clean_orphans(target)
    assert sorted(removed) == sorted([dead_folder, dead_file])
    assert leftovers(target) == sorted([live.name, other.name])
    assert tree(target) == {"model.bin": "current"}
