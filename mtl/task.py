"""The Task base class: the Python API every built-in task shares (fit, evaluate, predict, save).

A task module in ``tasks/`` only declares its :class:`TaskSpec`, its preprocessing options and how to
turn raw inputs into model features; training, evaluation, saving and checkpoints live here.

Example::

    from mtl.tasks import TextSentiment
    task = TextSentiment()                       # sentence-transformers/all-MiniLM-L6-v2
    task.fit(train_df, freeze="backbone", epochs=1)
    task.evaluate(test_df)["accuracy"]
    task.predict(["what a film"])                # [{'label': 'positive', 'score': 0.97}]
    task.save("out/")
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
import transformers
from accelerate.utils import set_seed
from datasets import Dataset
from datasets.fingerprint import Hasher

from .adapters import build_classifier
from .batching import eval_loader
from .data.labelled import hold_out, labelled_split
from .errors import MtlError
from .feature_cache import CachedInputs, HeadOnly, collate_cached, head_module_name
from .freezing import FreezeSpec, apply_freezing, parse_freeze
from .heads import HeadConfig, attach_mlp_head
from .model_folder import load_task, push_task, save_task, write_model_folder
from .metrics import scores_from_logits
from .recipe import TrainConfig
from . import schema
from .sources import ResolvedCheckpoint, resolve_checkpoint
from .train import FitResult, Predictions, fit_loop, make_accelerator, predict_loader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its modality, transformers Auto classes, checkpoints and input columns."""

    modality: str  # "text" | "image" | "audio"
    model_class: str  # a transformers Auto class name, e.g. "AutoModelForSequenceClassification"
    processor_class: str  # e.g. "AutoTokenizer"
    default_checkpoint: str
    input_column: str  # canonical input column name after loading, e.g. "text"
    input_candidates: tuple[str, ...]  # column names auto-detected as the input
    pipeline_tag: str  # the transformers pipeline that loads the saved folder
    checkpoints: tuple[str, ...] = ()  # other known-good checkpoints
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")


@dataclass
class NoOptions:
    """A task without preprocessing options."""


class Task:
    """Base class of all tasks. Subclasses set ``spec``, ``Options`` and implement ``preprocess`` and ``collate``."""

    name: ClassVar[str] = ""
    spec: ClassVar[TaskSpec]
    Options: ClassVar[type] = NoOptions
    transforms_on_the_fly: ClassVar[bool] = False  # True: features come from transform() when examples are read

    def __init__(self, checkpoint: str | os.PathLike | None = None, *, revision: str | None = None, **options: Any):
        self.checkpoint = str(checkpoint or self.spec.default_checkpoint)
        self.revision = revision
        self.options = _build_options(self.Options, options)
        self.model: torch.nn.Module | None = None
        self.processor: Any = None
        self.label_names: list[str] | None = None
        self.source: ResolvedCheckpoint | None = None
        self.fit_result: FitResult | None = None
        self.freeze_report = None
        self._accelerator = None

    # ---- hooks for task modules -------------------------------------------------------------------
    def load_processor(self, folder: Path) -> Any:
        """The tokenizer / image processor / feature extractor of a checkpoint folder."""
        return getattr(transformers, self.spec.processor_class).from_pretrained(str(folder))

    def preprocess(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Batched features for the model from a batch of the input column (datasets.map signature)."""
        raise NotImplementedError

    def transform(self, batch: dict[str, list[Any]], *, train: bool) -> dict[str, Any]:
        """Features computed when examples are read (images, audio), augmented when ``train``; used instead of
        the cached :meth:`preprocess` by tasks that set ``transforms_on_the_fly``."""
        raise NotImplementedError

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """A padded batch of tensors from preprocessed examples."""
        raise NotImplementedError

    def lengths(self, dataset: Dataset) -> list[int] | None:
        """Per-example lengths for length-grouped batching (None: inputs have a fixed size)."""
        return None

    def inputs_to_dataset(self, inputs: Sequence[Any]) -> Dataset:
        """A one-column Dataset from raw inputs given to :meth:`predict`."""
        return Dataset.from_dict({self.spec.input_column: list(inputs)})

    # ---- public API ---------------------------------------------------------------------------------
    def fit(self, train: Any, validation: Any = None, *, freeze: str | dict | FreezeSpec = "none",
            head: str | dict | HeadConfig = "linear", metrics: Sequence[str] | None = None,
            output_dir: str | os.PathLike | None = None, resume: bool = False, config: TrainConfig | None = None,
            **train_options: Any) -> FitResult:
        """Fine-tune on ``train`` (evaluated on ``validation`` every epoch) and keep the best weights.

        ``head`` is ``"linear"``, ``"mlp"`` or a :class:`~mtl.heads.HeadConfig` mapping such as
        ``{"type": "mlp", "hidden": [1024], "dropout": 0.2}``. ``train_options`` are
        :class:`~mtl.recipe.TrainConfig` fields (epochs, batch_size, learning_rate, mixed_precision, ...);
        ``output_dir`` receives the JSONL log and per-epoch checkpoints.
        """
        config = _train_config(config, train_options)
        head = _head_config(head)
        metrics = list(metrics or self.spec.metrics)
        if config.metric_for_best not in {*metrics, "loss"}:
            raise MtlError(f"metric_for_best {config.metric_for_best!r} is not among the metrics {metrics}")
        train_set, validation_set = self._labelled_pair(train, validation)
        set_seed(config.seed)  # before the new head is initialised, so runs are reproducible
        self._ensure_model(self.label_names, head)
        spec = parse_freeze(freeze)
        started, head_first_seconds = time.perf_counter(), 0.0
        if config.head_first_epochs and spec.mode != "backbone":  # linear probe first, then fine-tune (LP-FT)
            apply_freezing(self.model, "backbone")
            probe = dataclasses.replace(config, epochs=config.head_first_epochs, max_steps=None, warmup_ratio=0.0,
                                        learning_rate=config.head_learning_rate or config.learning_rate,
                                        early_stopping_patience=None)
            first = self._fit_stage(train_set, validation_set, probe, metrics, make_accelerator(probe), None, False)
            logger.info("head first: %d epochs on frozen features, best validation %s %.4f; now training %s",
                        config.head_first_epochs, config.metric_for_best, first.best_metric, spec.describe())
            head_first_seconds = time.perf_counter() - started
        self.freeze_report = apply_freezing(self.model, spec)
        accelerator = self._accelerator = make_accelerator(config)
        self.fit_result = self._fit_stage(train_set, validation_set, config, metrics, accelerator,
                                          Path(output_dir) if output_dir else None, resume)
        if head_first_seconds:  # timings count the head-first stage (its feature extraction included)
            self.fit_result.train_seconds += head_first_seconds
            for record in self.fit_result.history:
                record["seconds"] = round(record["seconds"] + head_first_seconds, 1)
        return self.fit_result

    def _fit_stage(self, train_set: Dataset, validation_set: Dataset, config: TrainConfig, metrics: list[str],
                   accelerator: Any, run_dir: Path | None, resume: bool) -> FitResult:
        """One fit_loop over the model as frozen now; only the head trains: the backbone runs once (cached)."""
        head_name = head_module_name(self.model) if config.feature_cache else None
        if head_name is not None:
            batch_size = config.eval_batch_size or 2 * config.batch_size
            trained = HeadOnly(self.model.get_submodule(head_name))
            train_features, val_features = (self._cached_head_inputs(split, head_name, batch_size, what)
                                            for split, what in ((train_set, "train"), (validation_set, "validation")))
            collate, train_lengths, eval_lengths = collate_cached, None, None
        else:
            trained = self.model
            train_features, val_features = self._features(train_set, train=True), self._features(validation_set)
            collate, train_lengths, eval_lengths = self.collate, self.lengths(train_features), self.lengths(val_features)
        result = fit_loop(trained, train_features, val_features, collate=collate, config=config, metrics=metrics,
                          accelerator=accelerator, train_lengths=train_lengths, eval_lengths=eval_lengths,
                          run_dir=run_dir, resume=resume)
        if head_name is None:
            self.model = accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)
        return result

    def evaluate(self, data: Any, *, batch_size: int = 64, metrics: Sequence[str] | None = None) -> dict[str, Any]:
        """Loss, metrics, per-class report and confusion matrix on labelled ``data``."""
        return self.evaluate_with_logits(data, batch_size=batch_size, metrics=metrics)[0]

    def evaluate_with_logits(self, data: Any, *, batch_size: int = 64, metrics: Sequence[str] | None = None,
                             what: str = "evaluate data") -> tuple[dict[str, Any], Dataset, np.ndarray]:
        """What :meth:`evaluate` returns, plus the labelled split and its logits (one inference pass)."""
        from .metrics import classification_details

        self._require_model("evaluate")
        split, _ = labelled_split(data, input_name=self.spec.input_column, input_candidates=self.spec.input_candidates,
                                  label_names=self.label_names, what=what)
        logits, labels = self._logits(self._features(split), batch_size)
        scores = scores_from_logits(logits, labels, list(metrics or self.spec.metrics))
        return ({**scores, **classification_details(labels, logits.argmax(-1), self.label_names),
                 "num_examples": len(labels)}, split, logits)

    def predict(self, inputs: Sequence[Any], *, batch_size: int = 64) -> list[dict[str, Any]]:
        """The most likely label and its probability for each raw input."""
        probabilities = self.predict_proba(inputs, batch_size=batch_size)
        best = probabilities.argmax(-1)
        return [{"label": self.label_names[i], "score": float(p[i])} for i, p in zip(best, probabilities)]

    def predict_proba(self, inputs: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape (len(inputs), num_labels), columns in ``label_names`` order."""
        self._require_model("predict")
        logits, _ = self._logits(self._features(self.inputs_to_dataset(inputs)), batch_size)
        return torch.softmax(torch.from_numpy(logits), -1).numpy()

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a plain transformers folder (weights, config with label names, processor)."""
        self._require_model("save")
        return save_task(self, directory, overwrite)

    def push_to_hub(self, repo_id: str, *, private: bool = True, token: str | None = None) -> str:
        """Push the model and its card to the Hub as one commit (token: argument, HF_TOKEN or login); return its URL."""
        self._require_model("push")
        return push_task(self, repo_id, private, token)

    def write_model(self, directory: Path) -> Path:
        """Save model and processor into ``directory`` atomically (temporary folder, then renames)."""
        return write_model_folder(self, directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, **options: Any) -> "Task":
        """A task holding a fine-tuned model saved by :meth:`save` (or any classifier folder)."""
        return load_task(cls, directory, options)

    # ---- internals ----------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Resolve the checkpoint (log which source served it) and load its processor; no model yet."""
        if self.source is None:
            self.source = resolve_checkpoint(self.checkpoint, self.revision)
        if self.processor is None:
            self.processor = self.load_processor(self.source.path)
            self._processor_digest = _folder_digest(self.source.path)  # part of every preprocessing cache key

    def _ensure_model(self, label_names: Sequence[str], head: HeadConfig | None = None) -> None:
        self.prepare()
        head = head or HeadConfig()
        current = self.model and [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        current_head = getattr(self.model, "config", None) and getattr(self.model.config, "mtl_head", None)
        wanted_head = {"hidden": list(head.hidden), "activation": head.activation, "dropout": head.dropout} \
            if head.type == "mlp" else None
        if current_head:
            current_head = {key: current_head[key] for key in ("hidden", "activation", "dropout")}
        if self.model is None or current != list(label_names) or current_head != wanted_head:
            auto_class = getattr(transformers, self.spec.model_class)
            self.model = build_classifier(auto_class, self.source.path, label_names)
            if head.type == "mlp":
                logger.info("head: MLP %s -> %d labels (%s, dropout %.2f) replaces %s", head.hidden,
                            len(label_names), head.activation, head.dropout, attach_mlp_head(self.model, head))

    def _labelled_pair(self, train: Any, validation: Any) -> tuple[Dataset, Dataset]:
        kwargs = dict(input_name=self.spec.input_column, input_candidates=self.spec.input_candidates)
        train_set, names = labelled_split(train, label_names=None, what="train data", **kwargs)
        if validation is None:
            train_set, validation_set = hold_out(train_set, 0.1, seed=42)
        else:
            validation_set, _ = labelled_split(validation, label_names=names, what="validation data", **kwargs)
        self.label_names = list(names)
        return train_set, validation_set

    def _logits(self, features: Dataset, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (and labels, when present) for preprocessed examples, in their order."""
        predicted = self._predict(features, batch_size)
        return predicted.logits, predicted.labels

    def _predict(self, features: Dataset, batch_size: int, capture: torch.nn.Module | None = None) -> Predictions:
        accelerator = self._inference_accelerator()
        loader = accelerator.prepare(eval_loader(features, self.collate, batch_size, self.lengths(features)))
        with accelerator.autocast():
            return predict_loader(self.model.to(accelerator.device), loader, accelerator, capture)

    def _cached_head_inputs(self, split: Dataset, head_name: str, batch_size: int, what: str) -> CachedInputs:
        """Run the frozen backbone once over ``split`` (no augmentation) and keep what enters the head."""
        started = time.perf_counter()
        predicted = self._predict(self._features(split), batch_size, capture=self.model.get_submodule(head_name))
        logger.info("feature cache: the frozen backbone ran once over %d %s examples (%.0f s); the head (%s) trains "
                    "on its %s outputs without train-time augmentation", len(split), what,
                    time.perf_counter() - started, head_name, "x".join(map(str, predicted.captured.shape[1:])))
        return CachedInputs(predicted.captured, torch.as_tensor(predicted.labels))

    def _features(self, dataset: Dataset, *, train: bool = False) -> Dataset:
        """Preprocess once; ``datasets`` reuses the cached result when data and preprocessing are unchanged."""
        self.prepare()
        if self.transforms_on_the_fly:
            return dataset.with_transform(functools.partial(self.transform, train=train))
        column = self.spec.input_column
        fingerprint = Hasher.hash([getattr(dataset, "_fingerprint", None), self._preprocess_key()])
        processed = {"rows": 0}

        def run(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            processed["rows"] += len(batch[column])
            return self.preprocess(batch)

        features = dataset.map(run, batched=True, remove_columns=[column], new_fingerprint=fingerprint,
                               desc=f"preprocessing ({self.spec.processor_class})")
        if len(dataset) and dataset.cache_files:
            logger.info("preprocessing: %s", f"{processed['rows']:,} examples processed" if processed["rows"]
                        else f"reused the datasets cache for {len(dataset):,} examples")
        self.last_preprocessed_rows = processed["rows"]
        return features

    def _preprocess_key(self) -> list[Any]:
        return [type(self).__name__, dataclasses.asdict(self.options), self._processor_digest]

    def _inference_accelerator(self):
        if self._accelerator is None:
            self._accelerator = make_accelerator(TrainConfig())
        return self._accelerator

    def _require_model(self, action: str) -> None:
        if self.model is None or self.label_names is None:
            raise MtlError(f"cannot {action}: no trained model yet; call fit() first or use {type(self).__name__}.load(folder)")


def _folder_digest(folder: Path) -> str:
    """A digest of a checkpoint's small processor files (tokenizer, preprocessor config), not its weights."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in {".json", ".txt", ".model"} and path.stat().st_size < 20_000_000 \
                and path.name != "config.json":
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _head_config(head: str | dict | HeadConfig) -> HeadConfig:
    if isinstance(head, HeadConfig):
        return head
    return schema.validated(HeadConfig, {"type": head} if isinstance(head, str) else dict(head), "head",
                            lambda key, hint: f"head: unknown key {key!r}{hint}")


def _build_options(options_class: type, options: dict[str, Any]) -> Any:
    return schema.validated(options_class, options, "option", lambda key, hint: f"unknown option {key!r}{hint}")


def _train_config(config: TrainConfig | None, options: dict[str, Any]) -> TrainConfig:
    base = dataclasses.asdict(config) if config is not None else {}
    return schema.validated(TrainConfig, {**base, **options}, "fit()",
                            lambda key, hint: f"fit(): unknown training option {key!r}{hint}")
