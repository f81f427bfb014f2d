"""Data: from a recipe's data section or Python objects to a DatasetDict with a ClassLabel column, split and checked.

Example::

    from mtl.data import load_labelled
    data = load_labelled(DataConfig(source="vader-movie-snippets"), input_name="text", input_candidates=("text",))
"""

from .labelled import LabelledData, labelled_split, load_labelled
from .splits import hold_out
from .tables import to_dataset

__all__ = ["LabelledData", "hold_out", "labelled_split", "load_labelled", "to_dataset"]
