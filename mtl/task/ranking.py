"""Ranking candidate checkpoints for the user's data from frozen features, without fine-tuning.

For each candidate: a task of the same class (same options) on that checkpoint, a new head for the user's
labels, the backbone frozen, and the head's inputs recorded once over a capped, stratified sample of train
and validation through the frozen-feature cache (:func:`mtl.task.fitting.cached_head_inputs`), the very
features a frozen-backbone fit trains on. Then :func:`mtl.transferability.transferability_scores`, with the
wall time and peak memory of each candidate.

Example::

    rows = rank_checkpoints(TextSentiment, train, validation, ["sentence-transformers/all-MiniLM-L6-v2", ...])
    rows[0].checkpoint   # the best by rows[0].score
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import transformers
from datasets import Dataset

from ..errors import CheckpointError, MtlError
from ..modeling.classifier import plain_config
from ..modeling.freezing import apply_freezing
from ..sources import resolve_checkpoint
from ..training.feature_cache import cache_plan
from ..transferability import SCORES, transferability_scores
from .fitting import cached_head_inputs

logger = logging.getLogger(__name__)


@dataclass
class CandidateScore:
    """One candidate's scores on the sample, and what computing them cost."""

    checkpoint: str
    source: str
    linear_probe: float
    knn: float
    logme: float
    feature_dim: int
    train_examples: int
    validation_examples: int
    seconds: float
    cpu_seconds: float  # CPU time of the process (all threads): comparable when other jobs share the machine
    peak_memory_mb: float
    score: float = float("nan")  # the ranking score's value (one of the three above)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def capped(split: Dataset, cap: int, seed: int) -> Dataset:
    """At most ``cap`` examples of ``split``, stratified by label and seeded (the whole split when smaller)."""
    if len(split) <= cap:
        return split
    try:
        return split.train_test_split(train_size=cap, stratify_by_column="label", seed=seed)["train"]
    except ValueError:  # a class too small to stratify (one example): a random sample could miss it altogether
        return split.select(every_class_first(split["label"], cap, seed))


def every_class_first(labels: Sequence[int], cap: int, seed: int) -> list[int]:
    """``cap`` row indices, seeded: one example of every label first (as far as ``cap`` allows), then the rest at
    random, so that a rare label is never left out of a sample.

    >>> every_class_first([0, 0, 0, 0, 1], 2, seed=0)[-1]   # the one example of label 1 is always kept
    4
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    first: dict[int, int] = {}
    for index in order:
        first.setdefault(labels[index], int(index))
    chosen = list(first.values())[:cap]
    taken = set(chosen)
    chosen += [int(index) for index in order if index not in taken][:cap - len(chosen)]
    return sorted(chosen)


def rank_checkpoints(task_cls: type, train: Dataset, validation: Dataset, candidates: Sequence[str], *,
                     options: Any = None, score: str = "linear_probe", sample: int = 300,
                     validation_sample: int = 150, batch_size: int = 64, seed: int = 42,
                     skip_unavailable: bool = False) -> list[CandidateScore]:
    """Score every candidate on capped samples of ``train`` and ``validation`` (standardised, label-encoded
    splits); return the rows best first by ``score``. A candidate that cannot be resolved, or that is not a
    checkpoint of this task's kind, is an :class:`MtlError` naming it; with ``skip_unavailable`` (the task's own
    list, where Hub-only ids cannot be reached offline) one that cannot be found is skipped with a warning."""
    if score not in SCORES:
        raise MtlError(f"select.score: unknown score {score!r}; choose one of {', '.join(SCORES)}")
    if not candidates:
        raise MtlError("select.candidates: no candidate checkpoints to rank; list at least one")
    train_sample, val_sample = capped(train, sample, seed), capped(validation, validation_sample, seed)
    label_names = train.features["label"].names
    rows = []
    for checkpoint in check_candidates(task_cls, candidates, skip_unavailable=skip_unavailable):
        row = _score_candidate(task_cls, checkpoint, options, train_sample, val_sample, label_names, batch_size)
        row.score = getattr(row, score)
        logger.info("select: %s  linear probe %.4f  k-NN %.4f  LogME %.4f  (%.0f s, peak %.0f MB)", checkpoint,
                    row.linear_probe, row.knn, row.logme, row.seconds, row.peak_memory_mb)
        rows.append(row)
    if not rows:
        raise MtlError("select: none of the candidates could be found; name reachable ones with --candidates")
    return sorted(rows, key=lambda r: -r.score)


def check_candidates(task_cls: type, candidates: Sequence[str], *, skip_unavailable: bool = False) -> list[str]:
    """The distinct ``candidates``, each resolved (downloaded once where a mirror serves it) and checked to be a
    checkpoint of the task's kind before any is scored: a wrong one is named before minutes of ranking. With
    ``skip_unavailable``, one that cannot be found is left out with a warning."""
    usable, problems = [], []
    for checkpoint in dict.fromkeys(candidates):
        try:
            folder = resolve_checkpoint(checkpoint, suggest=task_cls.spec.candidates).path
        except CheckpointError as error:
            if not skip_unavailable:
                problems.append(error)
            else:
                logger.warning("select: skipped %s: %s", checkpoint, str(error).split(". ")[0])
            continue
        try:
            check_candidate(task_cls, checkpoint, folder)
        except MtlError as error:
            problems.append(error)
            continue
        usable.append(checkpoint)
    if len(problems) == 1:
        raise problems[0]
    if problems:  # every wrong candidate in one message
        raise MtlError(f"{len(problems)} candidates cannot be ranked: " + " | ".join(str(p) for p in problems))
    return usable


def check_candidate(task_cls: type, checkpoint: str, folder: Path) -> None:
    """Refuse a checkpoint the task's Auto class cannot build (another modality), before loading its weights."""
    auto_class = getattr(transformers, task_cls.spec.model_class)
    try:
        config = plain_config(folder) or transformers.AutoConfig.from_pretrained(folder)  # mtl's own folders too
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"select: candidate {checkpoint}: cannot read its config.json ({error})") from None
    if type(config) not in auto_class._model_mapping:
        raise MtlError(f"select: candidate {checkpoint} is a {config.model_type} checkpoint, which "
                       f"{task_cls.spec.model_class} cannot use; task {task_cls.name} needs "
                       f"{task_cls.spec.modality} checkpoints (e.g. {task_cls.spec.default_checkpoint})")


def _score_candidate(task_cls: type, checkpoint: str, options: Any, train: Dataset, validation: Dataset,
                     label_names: list[str], batch_size: int) -> CandidateScore:
    with _PeakMemory() as memory:
        started, started_cpu = time.perf_counter(), time.process_time()
        task = task_cls(checkpoint, options=options)  # checked by check_candidates
        task.prepare()
        task.label_names = list(label_names)
        task._ensure_model(label_names)
        apply_freezing(task.model, "backbone")
        (train_x, train_y), (val_x, val_y) = [frozen_features(task, split, batch_size, what, checkpoint)
                                              for split, what in ((train, "train"), (validation, "validation"))]
        if train_x.ndim != 2:
            raise MtlError(f"select: candidate {checkpoint}: its head reads {train_x.ndim - 1}-d inputs, not one "
                           "vector per example; it cannot be scored from frozen features")
        scores = transferability_scores(train_x, train_y, val_x, val_y)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    return CandidateScore(checkpoint, task.source.source, feature_dim=train_x.shape[1], train_examples=len(train_y),
                          validation_examples=len(val_y), seconds=seconds, cpu_seconds=cpu_seconds,
                          peak_memory_mb=memory.peak_mb, **scores)


def frozen_features(task: Any, split: Dataset, batch_size: int, what: str, checkpoint: str) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` of ``split`` from the frozen backbone: the head's inputs through the feature cache;
    token states averaged over the attention mask for tasks that set ``rank_on_mean_tokens``; the input of a
    split head's first layer (Whisper's or wav2vec2's projector) averaged over time."""
    plan = None if task.rank_on_mean_tokens else cache_plan(task.model)
    if plan is not None:  # the frozen-feature cache's own plan: one head module, or projector + classifier
        cached, _ = cached_head_inputs(task, split, plan, batch_size, f"sample {what}")
        return cached.features.float().numpy(), cached.labels.numpy()
    if not task.rank_on_mean_tokens:
        raise MtlError(f"select: candidate {checkpoint}: its classification head could not be found, so its "
                       "frozen features cannot be read")
    module, pool, kind = task.model.base_model, _mean_tokens, "mean token states"
    started = time.perf_counter()
    predicted = task.run_model(task.features(split), batch_size, capture=module, pool=pool)
    logger.info("select: %s ran once over %d sample %s examples (%.0f s); features: %s", checkpoint, len(split),
                what, time.perf_counter() - started, kind)
    return predicted.captured.numpy(), predicted.labels


def _mean_tokens(inputs: Any, output: Any, batch: dict[str, Any]) -> torch.Tensor:
    states = output[0]  # last_hidden_state of a transformers base model
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1)


class _PeakMemory:
    """The process's peak resident memory (MB) while the block runs, sampled every 50 ms from /proc."""

    def __enter__(self) -> "_PeakMemory":
        self.peak_mb, self._stop = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # not Linux: the lifetime peak instead
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
