"""The output folder of a run: guarded against overwriting, written atomically.

Holds the transformers model files, ``metrics.json``, ``recipe.yaml`` (the resolved recipe),
``train_log.jsonl`` and, while training, ``checkpoints/``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import MtlError, OutputExistsError, first_few
from ..fs import MARKER_FILE, remove_folder, write_text_atomic
from ..training.state import checkpoint_folders

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"
PREVIOUS_SUFFIX = ".previous"  # --overwrite keeps the replaced output beside the new one until the new run is done

logger = logging.getLogger(__name__)


WRITE_PROBE = ".mtl-write-check-"  # prefix of the folder made and removed to test that output.dir is writable


def check_output_dir(directory: Path, *, overwrite: bool, resume: bool, protected: Sequence[str | Path] = ()) -> bool:
    """Everything :func:`prepare_output_dir` checks, writing nothing; returns whether an old folder will be replaced.

    A non-empty folder is refused unless ``resume`` (kept) or ``overwrite``, and ``overwrite`` replaces only a
    folder that mtl itself wrote (its marker file), never ``/``, the home folder, the working directory or one
    of its parents, nor a folder that holds one of the ``protected`` paths (the data, the checkpoint). A folder
    left by a run that died before finishing anything (marker and recipe only) is replaced without a flag.
    """
    if overwrite and resume:
        raise MtlError("--overwrite and --resume contradict each other; give one")
    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"output.dir {directory} is a file; choose a folder path")
    _require_writable(directory)
    if running := running_in(directory):
        raise OutputExistsError(f"output.dir {directory}: a run ({running}) is writing there now; wait for it to "
                                "finish (or stop it), or set output.dir=another/folder")
    if resume:
        if not checkpoint_folders(directory / "checkpoints"):
            if (directory / METRICS_FILE).is_file():
                raise MtlError(f"--resume: the run in {directory} already finished (its {METRICS_FILE} is written); "
                               "to train again, pass --overwrite or set output.dir=another/folder")
            if not directory.exists():
                raise MtlError(f"--resume: {directory} does not exist; set output.dir to the folder of the run to "
                               "resume")
            if not (directory / MARKER_FILE).is_file():
                raise MtlError(f"--resume: {directory} is not a run folder of mtl (no checkpoints/ and no "
                               f"{MARKER_FILE}); set output.dir to the folder of the run to resume")
            raise MtlError(f"--resume: {directory} has no checkpoints/ to resume from (the run stopped before its "
                           "first one); run again without --resume")
        return False
    existed = directory.is_dir() and bool(_entries(directory))
    if existed and not (overwrite or _unfinished(directory)):
        raise OutputExistsError(f"output.dir {directory} is not empty; pass --overwrite to replace it, "
                                f"--resume to continue its run, or set output.dir=another/folder")
    if existed:
        refuse_to_replace(directory, protected)
        owner = directory.with_name(directory.name.removesuffix(PREVIOUS_SUFFIX))
        if owner != directory and (_read_marker(owner) or {}).get("replacing") == directory.name:
            raise OutputExistsError(f"output.dir {directory} is the output that a --overwrite run of {owner} set "
                                    f"aside (it comes back if that run fails); set output.dir=another/folder")
        previous = previous_output(directory)
        if not _unfinished(directory) and previous.exists():
            raise OutputExistsError(f"output.dir {directory}: {previous} already holds an output that an interrupted "
                                    f"--overwrite run set aside; --resume finishes that run (and then deletes "
                                    f"{previous.name}), or move or delete {previous} to start afresh with --overwrite")
    return existed


def previous_output(directory: Path) -> Path:
    """Where ``--overwrite`` keeps the output it replaces while the new run trains: ``<folder>.previous``."""
    return directory.with_name(directory.name + PREVIOUS_SUFFIX)


@dataclass
class PreparedOutput:
    """What :func:`prepare_output_dir` did: whether it created the folder, and where the output it replaces is
    kept until the run finishes (None: nothing replaced)."""

    created: bool
    previous: Path | None = None


def prepare_output_dir(directory: Path, *, overwrite: bool, resume: bool,
                       protected: Sequence[str | Path] = ()) -> PreparedOutput:
    """Create ``directory`` for a run (after :func:`check_output_dir`) and mark it as mtl's. An output being
    replaced (``overwrite``) is renamed to ``<folder>.previous``, not deleted: :func:`finish_output` removes it
    once the new output is complete, :func:`clean_failed_run` puts it back when the run fails."""
    directory = Path(directory).expanduser()
    previous = None
    if check_output_dir(directory, overwrite=overwrite, resume=resume, protected=protected):
        if _unfinished(directory):  # marker and recipe only: nothing to keep
            remove_folder(directory)
        else:
            previous = previous_output(directory)
            os.replace(directory, previous)
            logger.info("the output being replaced is kept in %s until this run finishes", previous)
    elif previous_output(directory).exists() and not resume:
        logger.warning("%s holds an output that an interrupted --overwrite run set aside; it is left as it is",
                       previous_output(directory))
    if resume:
        if (marker := _read_marker(directory)) is not None:  # the resumed run writes here now
            write_text_atomic(directory / MARKER_FILE, json.dumps({**marker, **_this_process()}) + "\n")
        return PreparedOutput(False, _replacing(directory))
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        mark_as_output(directory, previous, claim=True)
    except OSError as error:
        raise OutputExistsError(f"output.dir {directory}: cannot write there ({error.strerror}); choose a folder "
                                "you can write to") from None
    return PreparedOutput(created, previous)


def finish_output(prepared: PreparedOutput) -> None:
    """The run's output is complete: delete the output it replaced."""
    if prepared.previous is not None and prepared.previous.exists():
        remove_folder(prepared.previous)


def _require_writable(directory: Path) -> None:
    """The folder, or the nearest folder above it that exists, must let this user create files."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputExistsError(f"output.dir {directory}: cannot write in {existing} (permission denied or not a "
                                "folder); choose a folder you can write to")
    try:  # os.access says yes to root everywhere: a read-only file system (or /sys, /proc) refuses only a real write
        os.rmdir(tempfile.mkdtemp(prefix=WRITE_PROBE, dir=existing))
    except OSError as error:
        raise OutputExistsError(f"output.dir {directory}: cannot write in {existing} ({error.strerror}); choose a "
                                "folder you can write to") from None


def clean_failed_run(directory: Path, prepared: PreparedOutput) -> None:
    """Remove what a failed or interrupted run wrote, so that the next attempt needs no flag, and put back the
    output it was replacing; a run that wrote a checkpoint (after an epoch, or ``train.save_every_steps``) keeps
    its folder for ``--resume``, and then the replaced output stays in ``<folder>.previous``."""
    directory = Path(directory).expanduser()
    marker = _read_marker(directory) if directory.is_dir() else None
    if marker is not None and "contents" in marker:  # stopped after the finished output was swapped in: keep it
        finish_output(prepared)
        logger.warning("the run stopped after its output was complete: %s holds it%s", directory,
                       f" ({prepared.previous} it replaced is removed)" if prepared.previous else "")
        return
    resumable = directory.is_dir() and bool(checkpoint_folders(directory / "checkpoints"))
    if directory.is_dir() and not resumable:
        if prepared.created:
            remove_folder(directory)
        else:
            for item in directory.iterdir():  # the folder was there (empty) before the run: keep it, empty again
                shutil.rmtree(item) if item.is_dir() else item.unlink()
    previous = prepared.previous if prepared.previous is not None and prepared.previous.exists() else None
    if resumable:
        kept = f"; the output it was replacing is kept in {previous} until the resumed run finishes" if previous else ""
        logger.warning("the run stopped: %s holds its checkpoints, --resume continues it%s", directory, kept)
    elif previous is not None:
        os.replace(previous, directory)
        logger.warning("the run stopped before its first checkpoint: %s is back as it was before --overwrite",
                       directory)


def mark_as_output(directory: Path, previous: Path | None = None, claim: bool = False) -> None:
    """Write mtl's marker into ``directory``: from now on ``--overwrite`` may replace it. ``previous``: the output
    this run replaces (set aside by --overwrite), so that a resumed run that finishes deletes it too. ``claim``:
    the marker must be new (created exclusively), so that of two runs started into one folder only one writes."""
    marker = {"written_by": "mtl", **_this_process(), **({"replacing": previous.name} if previous else {})}
    try:
        with open(directory / MARKER_FILE, "x" if claim else "w") as handle:
            handle.write(json.dumps(marker) + "\n")
    except FileExistsError:
        raise OutputExistsError(f"output.dir {directory}: another run started writing there a moment ago (its "
                                "marker appeared after this run checked the folder); let it finish, or set "
                                "output.dir to another folder") from None


def record_contents(directory: Path) -> None:
    """Keep the names now in ``directory`` (a finished output) in its marker: ``--overwrite`` later refuses the
    folder when it holds anything else, a file the user put there that replacing the output would delete."""
    _update_marker(directory, lambda marker: sorted(name for name in _entries(directory) if name != MARKER_FILE))


def note_written(directory: Path, *names: str) -> None:
    """Add ``names``, written into a finished output by a later mtl command (an export, a calibration), to the
    contents its marker keeps."""
    _update_marker(directory, lambda marker: sorted({*marker["contents"], *names}) if "contents" in marker else None)


def output_owning(path: Path) -> Path | None:
    """The mtl output folder ``path`` lies in among the files mtl wrote there (a model file, a report, a
    calibration, a checkpoint, the marker itself), or None: such files are never replaced by another command's
    ``--output``, even with ``--overwrite``. Files a user added to the folder later are not mtl's; in a folder
    whose marker lists no contents (a run still training, or an output older than the list) every file is."""
    path = Path(path).absolute()
    for folder in path.parents:
        if (folder / MARKER_FILE).is_file():
            top = path.relative_to(folder).parts[0]  # the entry of the output folder the path lies in
            kept = (_read_marker(folder) or {}).get("contents")
            return folder if top == MARKER_FILE or not isinstance(kept, list) or top in kept else None
    return None


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def running_in(directory: Path) -> str | None:
    """The process (``pid N``) of a run on this machine that is writing ``directory`` now, or None: the folder's
    marker names a process that is alive and a python program, and the output is not finished (a finished one
    lists its contents)."""
    marker = _read_marker(directory) if directory.is_dir() else None
    if not marker or "contents" in marker or marker.get("host", socket.gethostname()) != socket.gethostname():
        return None
    pid = marker.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    except OSError:
        return None
    try:  # a reused process id: another program now
        if b"python" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    except OSError:
        pass
    return f"pid {pid}"


def _read_marker(directory: Path) -> dict[str, Any] | None:
    """``directory``'s marker as a dict; None when there is none or it is unreadable."""
    try:
        marker = json.loads((directory / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _update_marker(directory: Path, contents: Callable[[dict[str, Any]], list[str] | None]) -> None:
    marker = _read_marker(directory)
    if marker is not None and (listed := contents(marker)) is not None:
        write_text_atomic(directory / MARKER_FILE, json.dumps({**marker, "contents": listed}) + "\n")


def _not_written_by_mtl(directory: Path) -> list[str]:
    """What ``directory`` holds beyond the contents its marker keeps (none kept, as before mtl kept them: [])."""
    kept = (_read_marker(directory) or {}).get("contents")
    if not isinstance(kept, list):
        return []
    return sorted(name for name in _entries(directory) if name != MARKER_FILE and name not in kept)


def _replacing(directory: Path) -> Path | None:
    """The output an interrupted --overwrite run in ``directory`` set aside, when its marker names it and it is
    still there."""
    name = (_read_marker(directory) or {}).get("replacing")
    previous = directory.with_name(name) if isinstance(name, str) and name else None
    return previous if previous is not None and previous == previous_output(directory) and previous.is_dir() else None


def refuse_to_replace(directory: Path, protected: Sequence[str | Path] = ()) -> None:
    """Raise :class:`OutputExistsError` unless ``directory`` is a folder mtl wrote that holds nothing precious."""
    target = directory.expanduser().resolve()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if target == Path(target.anchor) or target == home or cwd == target or target in cwd.parents:
        raise OutputExistsError(f"refusing to replace {directory}: it is the root, the home folder, the working "
                                "directory or one of its parents; set output.dir to a folder of its own")
    for path in protected:
        held = Path(path).expanduser().resolve()
        if held == target or target in held.parents:
            raise OutputExistsError(f"refusing to replace {directory}: it holds {path}, an input of this run; "
                                    "set output.dir to a folder of its own")
    if not (target / MARKER_FILE).is_file():
        raise OutputExistsError(f"refusing to replace {directory}: mtl did not write it (no {MARKER_FILE} file); "
                                "delete it yourself if you are sure, or set output.dir=another/folder")
    foreign = _not_written_by_mtl(target)
    if foreign:
        one = len(foreign) == 1
        raise OutputExistsError(f"refusing to replace {directory}: it holds {first_few(foreign)}, which mtl did not "
                                f"write; replacing the output would delete {'it' if one else 'them'}. Move "
                                f"{'it' if one else 'them'} out of the folder, or set output.dir=another/folder")


def _entries(directory: Path) -> list[str]:
    """The names in ``directory``, less the write probes of :func:`_require_writable` (the other processes of a
    launch check the same folder at the same time)."""
    return [p.name for p in directory.iterdir() if not p.name.startswith(WRITE_PROBE)]


def _unfinished(directory: Path) -> bool:
    """A folder mtl marked whose run died before any epoch or result was written (marker and recipe only, and a
    checkpoints/ folder with no checkpoint in it yet)."""
    names = set(_entries(directory))
    return (MARKER_FILE in names and names <= {MARKER_FILE, RECIPE_FILE, "checkpoints"}
            and not checkpoint_folders(directory / "checkpoints"))


