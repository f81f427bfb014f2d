"""The Accelerator of a run, with precision, accumulation and device chosen explicitly from the config.

Example::

    accelerator = make_accelerator(TrainConfig(mixed_precision="bf16"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ..config.sections import TrainConfig
from ..errors import MtlError


TRACKING_FOLDER = "runs"  # under the run's output folder


def make_accelerator(config: TrainConfig, run_dir: Path | None = None) -> Accelerator:
    """An Accelerator with precision, accumulation and device chosen explicitly from the config; with a run folder,
    also the trackers of ``config.report_to`` (logs under ``run_dir/runs``)."""
    options: dict[str, Any] = dict(mixed_precision=config.mixed_precision, cpu=on_cpu(config),
                                   gradient_accumulation_steps=config.gradient_accumulation_steps)
    if config.report_to and run_dir is not None:
        require_trackers(config.report_to)
        options.update(log_with=list(config.report_to), project_dir=str(run_dir / TRACKING_FOLDER))
    try:
        return Accelerator(**options)
    except ValueError:
        # accelerate keeps one process-wide state; in a single process (a notebook fitting twice with
        # another precision) it is safe to start it afresh. Distributed runs keep the launcher's settings.
        from accelerate.state import AcceleratorState, PartialState

        if PartialState().num_processes > 1:
            raise
        AcceleratorState._reset_state()
        return Accelerator(**options)


def on_cpu(config: TrainConfig) -> bool:
    """Train on the CPU when asked or when there is no accelerator. Said explicitly, so that processes started by
    ``torchrun`` on CPUs join one gloo process group (accelerate's default leaves each on its own)."""
    import torch

    return config.cpu or not (torch.cuda.is_available() or _mps_available())


def process_state(config: TrainConfig) -> Any:
    """accelerate's process-wide state (one process, or every process of a torchrun / accelerate launch)."""
    from accelerate import PartialState

    return PartialState(cpu=on_cpu(config))


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def require_trackers(names: list[str]) -> None:
    """Every tracker named in ``train.report_to`` must be installed: accelerate would drop it with a warning only."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    missing = [name for name in names if name in LOGGER_TYPE_TO_CLASS and not _tracker_available(name)]
    if missing:
        hint = "pip install tensorboardX" if missing == ["tensorboard"] else f"pip install {' '.join(missing)}"
        raise MtlError(f"train.report_to: {', '.join(missing)} is not installed; {hint}, or remove it from "
                       "train.report_to")


def _tracker_available(name: str) -> bool:
    from accelerate import utils

    check = getattr(utils, f"is_{name}_available", None)
    return bool(check()) if callable(check) else True
