"""Data: from a recipe's data section or Python objects to a DatasetDict with a ClassLabel column."""

from .labelled import LabelledData, load_labelled, to_dataset

__all__ = ["LabelledData", "load_labelled", "to_dataset"]
