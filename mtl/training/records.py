"""What a training run reports (:class:`FitResult`) and its JSONL log (:class:`JsonlLog`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FitResult:
    """What a training run did: per-epoch validation metrics, the best epoch and timings."""

    metric_name: str
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    global_step: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    stopped_by_time: bool = False  # train.max_seconds ran out
    resumed_from_epoch: int | None = None  # epochs already finished when a resumed run picked up
    resumed_from_step: int | None = None  # optimizer steps already done when a resumed run picked up
    train_losses: list[dict[str, Any]] = field(default_factory=list)  # {epoch, step, loss, lr} every log_every steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JsonlLog:
    """Appends one JSON object per line to ``path`` (no-op without a path or off the main process)."""

    def __init__(self, path: Path | None, enabled: bool = True):
        self.path = path if enabled else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record: Any) -> None:
        if self.path:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
