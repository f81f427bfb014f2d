"""Text sentiment (and any short-text classification): a pretrained text encoder with a new head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datasets import Dataset
from transformers import DataCollatorWithPadding

from mtl.registry import register_task
from mtl.task import Task, TaskSpec


@dataclass
class TextOptions:
    """Preprocessing options of text tasks (recipe section ``preprocess``)."""

    max_length: int = 128  # tokens kept per text; longer texts are truncated

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length}")


@register_task("text-sentiment")
class TextSentiment(Task):
    """Classify short texts (reviews, sentences, messages) by sentiment or any other label set."""

    spec = TaskSpec(
        modality="text",
        model_class="AutoModelForSequenceClassification",
        processor_class="AutoTokenizer",
        default_checkpoint="sentence-transformers/all-MiniLM-L6-v2",
        checkpoints=("distilbert-base-uncased", "bert-base-uncased", "roberta-base"),
        input_column="text",
        input_candidates=("text", "sentence", "sentence1", "review", "content", "document", "utterance", "tweet"),
        pipeline_tag="text-classification",
    )
    Options = TextOptions

    def preprocess(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        texts = ["" if t is None else str(t) for t in batch["text"]]
        return self.processor(texts, truncation=True, max_length=self.options.max_length)

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not hasattr(self, "_collator"):
            self._collator = DataCollatorWithPadding(self.processor)
        return self._collator(features)

    def lengths(self, dataset: Dataset) -> list[int]:
        return [len(ids) for ids in dataset["input_ids"]]
