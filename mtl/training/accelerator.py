"""The Accelerator of a run, with precision, accumulation and device chosen explicitly from the config.

Example::

    accelerator = make_accelerator(TrainConfig(mixed_precision="bf16"))
"""

from __future__ import annotations

from accelerate import Accelerator

from ..config.sections import TrainConfig


def make_accelerator(config: TrainConfig) -> Accelerator:
    """An Accelerator with precision, accumulation and device chosen explicitly from the config."""
    options = dict(mixed_precision=config.mixed_precision, cpu=config.cpu,
                   gradient_accumulation_steps=config.gradient_accumulation_steps)
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
