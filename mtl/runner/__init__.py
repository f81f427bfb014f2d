"""Runner: what the commands do, on the Python API: run a recipe; rank checkpoints; predict, detect or export with a saved model.

Example::

    from mtl.runner import run_recipe
    summary = run_recipe(load_recipe("recipes/sentiment.yaml"))
"""

from .run import PreparedRun, prepare_run, recipe_inputs, run_recipe
from .selection import AUTO, Selection, checkpoint_table, select_checkpoint
from .summary import format_summary

__all__ = ["AUTO", "PreparedRun", "Selection", "checkpoint_table", "format_summary", "prepare_run", "recipe_inputs",
           "run_recipe", "select_checkpoint"]
