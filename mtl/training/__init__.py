"""Training: one explicit loop on ``accelerate`` (batching, feature cache, checkpoints) and inference over loaders.

Example::

    from mtl.training import fit_loop, make_accelerator
    result = fit_loop(model, train, validation, collate=collate, config=config, metrics=["accuracy"],
                      accelerator=make_accelerator(config))
"""

from .accelerator import make_accelerator
from .inference import Predictions, evaluate_loader, predict_loader
from .loop import FitResult, fit_loop

__all__ = ["FitResult", "Predictions", "evaluate_loader", "fit_loop", "make_accelerator", "predict_loader"]
