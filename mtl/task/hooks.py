"""The hooks a task module fills in: how raw inputs become features, and everything its modality needs.

Shared code (training, prediction, export, cards, the contract tests) calls only these hooks, so it never asks
"is this text, image or audio?". Defaults suit inputs given as file paths; a text task overrides the input hooks.

Example::

    class TextSentiment(Task):
        def preprocess(self, batch): return self.processor(batch["text"], truncation=True)
        def input_from_argument(self, argument): return argument     # texts on the command line
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from datasets import Dataset

from ..data.tables import table_relative
from ..modeling.classifier import plain_config
from .spec import TaskSpec


class TaskHooks:
    """Defaults of every task hook; :class:`~mtl.task.Task` adds the API that uses them."""

    spec: TaskSpec
    processor: Any
    transforms_on_the_fly: bool = False  # True: features come from transform() when examples are read
    # True: checkpoints are ranked (mtl.select) on the backbone's token states averaged over the attention mask
    # (how sentence encoders are trained to be read), not on the head's input ([CLS] through a pooler)
    rank_on_mean_tokens: bool = False
    decoded_columns: tuple[str, ...] = ()  # what decode() turns the input column into (cached once); () = no decoding

    # ---- features ----------------------------------------------------------------------------------------------
    def load_processor(self, folder: Path) -> Any:
        """The tokenizer / image processor / feature extractor of a checkpoint folder (one mtl saved with its own
        head or pooling code is read through its base config: no remote code, no prompt)."""
        import transformers

        config = plain_config(folder) if self.spec.processor_class.startswith("Auto") else None
        extra = {} if config is None else {"config": config}
        return getattr(transformers, self.spec.processor_class).from_pretrained(str(folder), **extra)

    def preprocess(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Batched features for the model from a batch of the input column (datasets.map signature), cached."""
        raise NotImplementedError

    def transform(self, batch: dict[str, list[Any]], *, train: bool) -> dict[str, Any]:
        """Features computed when examples are read (images, audio), augmented when ``train``; used instead of
        the cached :meth:`preprocess` by tasks that set ``transforms_on_the_fly``."""
        raise NotImplementedError

    def decode(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The input column decoded into compact arrays (``decoded_columns``: uint8 pixels, int16 samples), run
        once per input and cached (:mod:`mtl.task.decoding`); :meth:`transform` augments them on the fly."""
        raise NotImplementedError

    def check_training_options(self) -> None:
        """Raise a :class:`~mtl.errors.DataError` for a task option that cannot work (a file it names is missing);
        called before a run reads its data, and by ``--dry-run``. Nothing to check by default."""

    def check_files(self, paths: list[str], where: str) -> None:
        """Raise one :class:`~mtl.errors.DataError` naming every input file in ``paths`` that cannot be read (as
        training checks its data), before ``python -m mtl.predict`` predicts any. Nothing by default."""

    def check_model(self) -> None:
        """Raise a :class:`~mtl.errors.RecipeError` when the model just built cannot take the task's options (an
        image size a ViT's position embeddings do not cover); called once per model built. Nothing by default."""

    def prepare_training(self, train_set: Dataset) -> None:
        """Called by ``fit`` with the labelled training split (labels encoded) before training starts: a task
        takes from it what its augmentation needs (the keyword task: background noise). Nothing by default."""

    def decode_settings(self) -> Any:
        """What :meth:`decode`'s output depends on besides the inputs (a sampling rate, a size cap): part of the
        decode cache's key."""
        return None

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """A batch of tensors from preprocessed examples (fixed-size features: ``default_collate``)."""
        from torch.utils.data import default_collate

        return default_collate(features)

    def lengths(self, dataset: Dataset) -> list[int] | None:
        """Per-example lengths for length-grouped batching (None: inputs have a fixed size)."""
        return None

    # ---- inputs --------------------------------------------------------------------------------------------------
    def inputs_to_dataset(self, inputs: Sequence[Any]) -> Dataset:
        """A one-column Dataset from raw inputs given to ``predict``."""
        return Dataset.from_dict({self.spec.input_column: list(inputs)})

    def check_inputs(self, split: Dataset, column: str, where: str) -> None:
        """Raise a :class:`~mtl.errors.DataError` naming the first unusable input of a split, before training."""

    def inputs_from_file(self, path: Path) -> list[tuple[str, Any]]:
        """``(shown name, model input)`` pairs that one file given to ``mtl.predict`` stands for."""
        return [(str(path), str(path))]

    def input_from_argument(self, argument: str) -> Any | None:
        """The model input a command-line argument that is no file stands for, or None (not an input)."""
        return None

    def input_from_table(self, value: str, table_folder: Path) -> Any:
        """The model input for one cell of a CSV given to ``mtl.predict`` (a path relative to the table's folder)."""
        return table_relative(value, table_folder)

    def sample_inputs(self, count: int = 4, seed: int = 0) -> list[Any]:
        """``count`` synthetic raw inputs of varied size (ONNX parity when no real inputs are known)."""
        raise NotImplementedError

    # ---- outputs -------------------------------------------------------------------------------------------------
    def onnx_dynamic_axes(self, name: str, tensor: torch.Tensor) -> list[int]:
        """The axes of model input ``name`` that vary between calls: the batch axis here; a task whose inputs vary
        in length overrides it (text: batch and sequence). The ONNX export checks the graph on a second input of
        another length and names this method when an axis it fixed varies."""
        return [0]

    def usage_code(self, model: str, trust_remote_code: bool = False) -> list[str]:
        """Lines of Python for the model card: plain transformers running the saved folder on one input."""
        remote = ", trust_remote_code=True)  # its head or pooling code (mtl_head.py) ships in the folder" \
            if trust_remote_code else ")"
        return ["from transformers import pipeline", "",
                f'classifier = pipeline("{self.spec.pipeline_tag}", model="{model}"{remote}',
                f"classifier({self.usage_input()})"]

    def usage_input(self) -> str:
        """The Python expression the card's usage code classifies: the first sample input when it is a string
        (a text), else a placeholder for one input; tasks whose inputs are files name an example file."""
        try:
            sample = self.sample_inputs(1)[0]
        except NotImplementedError:
            sample = None
        return repr(sample) if isinstance(sample, str) else f"YOUR_{self.spec.input_column.upper()}"

    # ---- contract-test fixtures ----------------------------------------------------------------------------------
    @classmethod
    def tiny_checkpoint(cls, folder: Path) -> Path:
        """Save a tiny random checkpoint of this task's model family (built from a config) into ``folder``."""
        raise NotImplementedError

    @classmethod
    def synthetic_examples(cls, count: int, seed: int = 0) -> dict[str, list[Any]]:
        """``count`` learnable labelled examples: ``{input_column: [...], "label": [...]}`` with two or more labels."""
        raise NotImplementedError
