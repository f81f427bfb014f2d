"""``tasks/`` is importable as ``mtl.tasks`` from the editable install and from a built wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import mtl
import mtl.tasks

REPO = Path(__file__).resolve().parents[1]


def test_editable_install_maps_tasks_folder():
    assert Path(mtl.tasks.__file__).resolve() == REPO / "tasks" / "__init__.py"
    assert Path(mtl.__file__).resolve() == REPO / "mtl" / "__init__.py"


def test_wheel_ships_mtl_tasks_and_imports_from_it(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("mtl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "mtl/tasks/__init__.py" in names and "mtl/tasks/text_sentiment.py" in names
    assert "mtl/data/labelled.py" in names and not any(n.startswith(("tests/", "tasks/")) for n in names)
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    probe = ("import mtl.tasks, mtl.registry; from mtl.tasks import TextSentiment; "
             "print(mtl.tasks.__file__); print(mtl.registry.get_task('text-sentiment').__name__)")
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr
    where, name = done.stdout.split()
    assert Path(where).is_relative_to(target) and name == "TextSentiment"
