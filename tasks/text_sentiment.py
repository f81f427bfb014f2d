"""Text sentiment (and any short-text classification): a pretrained text encoder with a new head."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from datasets import Dataset
from transformers import DataCollatorWithPadding

from mtl.data.audio import AUDIO_SUFFIXES
from mtl.data.images import IMAGE_SUFFIXES
from mtl.errors import CheckpointError, DataError, first_few
from mtl.task import Task, TaskSpec, register_task

DEFAULT_MAX_LENGTH = 128
SAMPLE_TEXTS = ["a gorgeous, moving film", "dull and far too long", "what a film", "the plot was fine",
                "I would not watch it again", "superb acting and a clever, warm story"]
_POSITIVE = ["good", "great", "wonderful", "superb", "lovely", "brilliant"]
_NEGATIVE = ["bad", "awful", "boring", "dull", "terrible", "weak"]
_FILLER = ["the", "film", "was", "a", "plot", "actors", "story", "movie", "really", "quite", "and", "with"]


def _names_a_file(text: str) -> bool:
    """A single word ending in a data file's suffix (``reviews.csv``, ``data/test.jsonl``): a path given where a
    text was expected, whether or not the file exists."""
    return not any(c.isspace() for c in text.strip()) and \
        Path(text.strip()).suffix.lower() in (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")


def _is_blank(text: Any) -> bool:
    """An empty or whitespace-only text, or a missing one (None, or NaN where pandas read an empty cell)."""
    return text is None or (isinstance(text, float) and text != text) or (isinstance(text, str) and not text.strip())


def _position_limit(folder: Path, tokenizer: Any) -> int | None:
    """The most tokens the checkpoint reads: the tokenizer's limit (for a folder mtl saved, the limit its checkpoint
    had), else the config's position embeddings."""
    import json

    config = json.loads((Path(folder) / "config.json").read_text())
    saved = config.get("mtl_token_limit")  # a folder mtl saved: its tokenizer's limit is the length trained with
    limit = saved if isinstance(saved, int) else getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    positions = config.get("max_position_embeddings")
    return positions if isinstance(positions, int) and positions > 0 else None


@dataclass
class TextOptions:
    """Preprocessing options of text tasks (recipe section ``preprocess``)."""

    max_length: int | None = None  # tokens kept per text (longer texts are truncated); default 128, or fewer
    # when the checkpoint reads fewer

    def __post_init__(self) -> None:
        if self.max_length is not None and self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length}")


MEDIA = {"image": (IMAGE_SUFFIXES, "images", "an image task (ImageClassification, recipes/flowers.yaml)"),
         "audio": (AUDIO_SUFFIXES, "audio clips", "the keyword-spotting task (KeywordSpotting, recipes/keywords.yaml)")}


def _refuse_non_texts(texts: Sequence[Any], where: str) -> None:
    """A DataError when the input column holds images or audio (decoded, or nine in ten of its first 1,000 values
    file paths ending like them), objects or lists rather than texts: a model trained on file names or on an
    object's printed form learns nothing it can use."""
    sample = texts[:1000]
    for kind, (suffixes, plural, task) in MEDIA.items():
        files = [text for text in sample if isinstance(text, str) and text.strip().lower().endswith(suffixes)]
        decoded = [text for text in sample if isinstance(text, dict) and ("bytes" in text or "array" in text)]
        if sample and (len(files) >= 0.9 * len(sample) or (decoded and kind == "image" and "bytes" in decoded[0])
                       or (decoded and kind == "audio" and "array" in decoded[0])):
            example = files[0] if files else (decoded[0].get("path") or f"a decoded {kind}")
            raise DataError(f"{where}: the input column holds {plural} ({example}, ...), not texts; text-sentiment "
                            f"classifies text: for {plural} use {task}, or set data.input_column to the text column")
    nested = next(((row, text) for row, text in enumerate(sample, 1) if isinstance(text, (dict, list))), None)
    if nested is not None:
        kind = "an object" if isinstance(nested[1], dict) else "a list"
        raise DataError(f"{where} row {nested[0]}: the input is {kind} ({str(nested[1])[:60]}), not a text; put the "
                        "text itself in the input column (a nested field: flatten it first, e.g. pandas.json_normalize)")


@register_task("text-sentiment")
class TextSentiment(Task):
    """Classify short texts (reviews, sentences, messages) by sentiment or any other label set."""

    spec = TaskSpec(
        modality="text",
        model_class="AutoModelForSequenceClassification",
        processor_class="AutoTokenizer",
        default_checkpoint="sentence-transformers/all-MiniLM-L6-v2",
        checkpoints=("sentence-transformers/paraphrase-MiniLM-L3-v2", "sentence-transformers/all-mpnet-base-v2",
                     "distilbert-base-uncased", "bert-base-uncased", "roberta-base"),
        input_column="text",
        input_candidates=("text", "sentence", "sentence1", "review", "content", "document", "utterance", "tweet"),
        pipeline_tag="text-classification",
        file_suffixes=(".txt",),
        intended_use="short texts in the language and style of the training data",
    )
    Options = TextOptions
    rank_on_mean_tokens = True

    def preprocess(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        texts = ["" if t is None else str(t) for t in batch[self.spec.input_column]]
        return self.processor(texts, truncation=True, max_length=self.max_length)

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not hasattr(self, "_collator"):
            self._collator = DataCollatorWithPadding(self.processor)
        return self._collator(features)

    def lengths(self, dataset: Dataset) -> list[int]:
        return [len(ids) for ids in dataset["input_ids"]]

    def inputs_to_dataset(self, inputs: list[Any]) -> Dataset:
        for i, text in enumerate(inputs):
            if not isinstance(text, str) or not text.strip():
                shown = "an empty text" if isinstance(text, str) else f"a {type(text).__name__}"
                raise DataError(f"input {i + 1}: expected a non-empty text, got {shown}")
        return super().inputs_to_dataset(inputs)

    def predict_proba(self, inputs: Sequence[Any] | Any, *, batch_size: int | None = None) -> np.ndarray:
        """As :meth:`Task.predict_proba`; one file name given in place of the texts (``predict("reviews.csv")``, a
        ``Path``) is an error, not a prediction on the name."""
        if isinstance(inputs, os.PathLike) or (isinstance(inputs, str) and _names_a_file(inputs)):
            raise DataError(f"predict: {str(inputs)!r} is a file name, not a text; predict takes the texts "
                            "themselves: read the file first (e.g. pandas.read_csv(path)['text'].tolist()), or run "
                            "python -m mtl.predict MODEL_DIR FILE, which reads tables and text files")
        return super().predict_proba(inputs, batch_size=batch_size)

    def check_inputs(self, split: Dataset, column: str, where: str) -> None:
        """Every text is non-empty, as :meth:`inputs_to_dataset` requires at predict time: empty, blank or
        missing texts are one DataError naming the first rows (counted from 1, as label errors count them)."""
        texts = split.with_format("arrow")[:][column].to_pylist()  # fast on 100k rows, unlike split[column]
        _refuse_non_texts(texts, where)
        blank = [row for row, text in enumerate(texts, start=1) if _is_blank(text)]
        if not blank:
            return
        if len(blank) == 1:
            raise DataError(f"{where} row {blank[0]}: the text is empty or missing; fill it in or remove the row "
                            "(predict refuses empty texts too)")
        raise DataError(f"{where} rows {first_few([str(row) for row in blank])}: the text is empty or missing "
                        f"({len(blank)} of {len(split)} rows); fill them in or remove those rows (predict refuses "
                        "empty texts too)")

    def write_model(self, directory: Path) -> Path:
        """The plain transformers folder, its tokenizer limited to the tokens mtl kept per text, so that
        ``pipeline(..., truncation=True)`` cuts long texts where :meth:`predict` does (the checkpoint's own limit is
        kept in the config, for training on from the folder)."""
        tokenizer, config = self.processor, self.model.config
        limit = getattr(config, "mtl_token_limit", None) or _position_limit(self.source.path, tokenizer)
        kept = tokenizer.model_max_length
        tokenizer.model_max_length, config.mtl_token_limit = self.max_length, limit
        try:
            return super().write_model(directory)
        finally:
            tokenizer.model_max_length = kept

    def load_processor(self, folder: Path) -> Any:
        """The tokenizer; ``max_length`` above the checkpoint's position limit is an error, not a crash later."""
        tokenizer = super().load_processor(folder)
        limit = _position_limit(folder, tokenizer)
        wanted = self.options.max_length
        if limit is not None and wanted is not None and wanted > limit:
            raise CheckpointError(f"preprocess.max_length {wanted} is more than the {limit} tokens "
                                  f"{self.checkpoint} can read; set preprocess.max_length to at most {limit}")
        self.max_length = wanted or min(DEFAULT_MAX_LENGTH, limit or DEFAULT_MAX_LENGTH)
        return tokenizer

    # ---- inputs and outputs of the command line, export and card ----------------------------------------
    def inputs_from_file(self, path: Path) -> list[tuple[str, Any]]:
        """A text file: one input per non-empty line."""
        return [(line, line) for line in path.read_text().splitlines() if line.strip()]

    def input_from_argument(self, argument: str) -> Any | None:
        return argument

    def input_from_table(self, value: str, table_folder: Path) -> Any:
        return value

    def sample_inputs(self, count: int = 4, seed: int = 0) -> list[Any]:
        return [SAMPLE_TEXTS[(seed + i) % len(SAMPLE_TEXTS)] for i in range(count)]

    def onnx_dynamic_axes(self, name: str, tensor: Any) -> list[int]:
        return list(range(tensor.dim()))  # batch and sequence

    def usage_input(self) -> str:
        return '"a gorgeous, moving film"'

    # ---- contract-test fixtures ---------------------------------------------------------------------------
    @classmethod
    def tiny_checkpoint(cls, folder: Path) -> Path:
        """A 2-layer BERT with a word-level vocabulary of the synthetic examples' words."""
        import torch
        from transformers import BertConfig, BertModel, BertTokenizerFast

        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_POSITIVE, *_NEGATIVE, *_FILLER]
        words = " ".join(SAMPLE_TEXTS).replace(",", " ").lower().split()
        tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(dict.fromkeys([*vocab, *words]))},
                                      do_lower_case=True)
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    @classmethod
    def synthetic_examples(cls, count: int, seed: int = 0) -> dict[str, list[Any]]:
        """Sentences whose label is given by the one sentiment word they contain."""
        rng = random.Random(seed)
        texts, labels = [], []
        for i in range(count):
            label = "positive" if i % 2 == 0 else "negative"
            words = rng.sample(_FILLER, rng.randint(2, 9)) + [rng.choice(_POSITIVE if i % 2 == 0 else _NEGATIVE)]
            rng.shuffle(words)
            texts.append(" ".join(words))
            labels.append(label)
        return {"text": texts, "label": labels}
