"""The Accelerator of a run, with precision, accumulation and device chosen explicitly from the config.

Example::

    accelerator = make_accelerator(TrainConfig(mixed_precision="bf16"))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ..config.sections import TrainConfig
from ..errors import MtlError


TRACKING_FOLDER = "runs"  # under the run's output folder


def make_accelerator(config: TrainConfig, run_dir: Path | None = None) -> Accelerator:
    """An Accelerator with precision, accumulation and device chosen explicitly from the config; with a run folder,
    also the trackers of ``config.report_to`` (logs under ``run_dir/runs``)."""
    options: dict[str, Any] = dict(mixed_precision=resolved_precision(config), cpu=on_cpu(config),
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


def resolved_precision(config: TrainConfig) -> str:
    """``train.mixed_precision`` with ``auto`` resolved: ``bf16`` where the training device multiplies bf16
    natively (a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX, where a MiniLM step runs 2.2x faster than
    in fp32), else ``no`` (on other CPUs bf16 is emulated and slower)."""
    if config.mixed_precision != "auto":
        return config.mixed_precision
    import torch

    if on_cpu(config):
        return "bf16" if _cpu_multiplies_bf16() else "no"
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _cpu_multiplies_bf16() -> bool:
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def process_state(config: TrainConfig) -> Any:
    """accelerate's process-wide state (one process, or every process of a torchrun / accelerate launch)."""
    from accelerate import PartialState

    return PartialState(cpu=on_cpu(config))


_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launch_warning(state: Any) -> str | None:
    """What went wrong between the launcher and the processes that joined, or None.

    Raises :class:`MtlError` when the launcher started several processes that each ended up alone (each would
    train the whole run and write the same folder). Returns a warning when ``accelerate launch`` was asked for
    several processes but started this one only: its MULTI_CPU type needs mpirun to start more.
    """
    asked = max((int(os.environ[name]) for name in _WORLD_SIZE_VARIABLES if os.environ.get(name, "").isdigit()),
                default=None)
    if asked and asked > 1 and state.num_processes == 1:
        raise MtlError(f"this process was launched as one of {asked} (WORLD_SIZE / PMI_SIZE say so) but joined no "
                       "process group, so each would train alone and write the same output; launch with torchrun or "
                       "accelerate launch and a config from recipes/accelerate/, and leave train.cpu and the "
                       "launcher's device settings in agreement")
    if asked is None and state.num_processes == 1 and "ACCELERATE_USE_CPU" in os.environ and os.environ.get("MASTER_ADDR"):
        return ("accelerate launch was asked for several processes but started this one only: its MULTI_CPU type "
                "starts more only through mpirun (pip install mpich, and mpirun_hostfile in the config, as "
                "recipes/accelerate/cpu-2-processes.yaml does), or use torchrun --nproc_per_node N; "
                "training goes on in one process")
    return None


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
