"""The Task base class: the Python API every task shares (fit, evaluate, predict, save, load, push).

A task module in ``tasks/`` declares its :class:`~mtl.task.spec.TaskSpec`, its preprocessing options and the
hooks of :class:`~mtl.task.hooks.TaskHooks`; training, evaluation, saving and checkpoints live in ``mtl``.

Example::

    from mtl.tasks import TextSentiment
    task = TextSentiment()                       # sentence-transformers/all-MiniLM-L6-v2
    task.fit(train_df, freeze="backbone", epochs=1)
    task.evaluate(test_df)["accuracy"]
    task.predict(["what a film"])                # [{'label': 'positive', 'score': 0.97}]
    task.save("out/")
"""

from __future__ import annotations

import collections.abc
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
import transformers
from accelerate import PartialState
from accelerate.utils import set_seed
from datasets import Dataset, DatasetDict

from ..config import schema
from ..config.freeze import FreezeSpec, parse_freeze
from ..config.sections import FINE_TUNING_RATE, HEAD_ONLY_RATE, HeadConfig, TrainConfig
from ..data.labelled import column_named, labelled_split, require_trainable_labels
from ..data.splits import STANDARDISED, hold_out, warn_shared_inputs
from ..errors import CheckpointError, MtlError, OutputExistsError, describe, first_few
from ..metrics import classification_details, require_metrics, scores_from_logits
from ..modeling import attach_mlp_head, build_classifier
from ..modeling.modality import refuse_other_modality
from ..modeling.fusion import has_inference_rewrites, inference_copy, weights_key
from ..modeling.pooling import apply_pooling, current_pooling, resolve_pooling
from .strategy import choose_strategy
from ..fs import MARKER_FILE, STAGING_PREFIX
from ..publish.output_dir import RECIPE_FILE, mark_as_output, record_contents
from ..publish.model_folder import read_task_folder, push_task, save_task, write_model_files
from ..sources import ResolvedCheckpoint, resolve_checkpoint
from ..training import FitResult, Predictions, make_accelerator, predict_loader
from ..training.batching import INDEX_KEY, eval_loader
from ..training.data_signature import check_resumed_settings
from ..training.state import has_checkpoint, refuse_earlier_checkpoints
from ..training.layout import fast_layout, has_2d_convolutions, inference_batch_size, pixels_per_example
from .features import task_features
from .fitting import fit_stages
from .hooks import TaskHooks
from .ranking import CandidateScore, rank_checkpoints
from .spec import TaskSpec

logger = logging.getLogger(__name__)


@dataclass
class NoOptions:
    """A task without preprocessing options."""


class Task(TaskHooks):
    """Base class of all tasks. Subclasses set ``spec`` and ``Options`` and fill in the hooks."""

    name: ClassVar[str] = ""
    spec: ClassVar[TaskSpec]
    Options: ClassVar[type] = NoOptions

    def __init__(self, checkpoint: str | os.PathLike | None = None, *, revision: str | None = None,
                 options: Any = None, **option_values: Any):
        """``options`` is an ``Options`` instance, or give its fields as keywords (``max_length=64``)."""
        self.checkpoint = str(checkpoint or self.spec.default_checkpoint)
        self.revision = revision
        if options is not None and not isinstance(options, self.Options):
            raise MtlError(f"options: expected a {self.Options.__name__}, got {type(options).__name__}")
        self.options = options if options is not None and not option_values else _build_options(
            self.Options, {**(dataclasses.asdict(options) if options is not None else {}), **option_values})
        self.model: torch.nn.Module | None = None
        self.processor: Any = None
        self.label_names: list[str] | None = None
        self.source: ResolvedCheckpoint | None = None
        self.fit_result: FitResult | None = None
        self.freeze_report = None
        self.last_preprocessed_rows = 0
        self._accelerator = None
        self.strategy_choice = None  # what train.strategy auto chose, when it did
        self.lora_adapter = None  # the LoRA adapters and head alone (lora save_adapter), written as adapter/ on save
        self._folded: tuple[tuple, torch.nn.Module] | None = None  # (weights_key, inference copy) of the model
        self._stopped_fit: str | None = None  # why the last fit stopped before it finished (its weights half-trained)

    _RUNTIME_STATE: ClassVar[tuple[str, ...]] = ("model", "_accelerator", "fit_result", "lora_adapter", "_folded",
                                                   "_head_inputs")

    def __getstate__(self) -> dict[str, Any]:
        """A pickled (or deep-copied) task carries its settings, labels and processor but not the model or training
        state: what a DataLoader worker needs to run ``transform``, and what ``datasets`` hashes to fingerprint a
        transform and copies with a dataset (with the model that took seconds per split). Save a trained task with
        :meth:`save` and :meth:`load` it back."""
        state = self.__dict__.copy()
        state.update(dict.fromkeys(self._RUNTIME_STATE))
        return state

    # ---- public API ---------------------------------------------------------------------------------
    def fit(self, train: Any, validation: Any = None, *, freeze: str | dict | FreezeSpec = "none",
            head: str | dict | HeadConfig = "linear", pooling: str = "auto", metrics: Sequence[str] | None = None,
            output_dir: str | os.PathLike | None = None, resume: bool = False, config: TrainConfig | None = None,
            **train_options: Any) -> FitResult:
        """Fine-tune on ``train`` (evaluated on ``validation`` every epoch) and keep the best weights.

        ``head`` is ``"linear"``, ``"mlp"`` or a :class:`~mtl.config.sections.HeadConfig` mapping such as
        ``{"type": "mlp", "hidden": [1024], "dropout": 0.2}``. ``pooling`` (text encoders): ``"auto"`` (default: what
        the checkpoint was trained for), ``"pooler"`` (its own pooler), ``"cls"`` or ``"mean"``. ``train_options`` are
        :class:`~mtl.config.sections.TrainConfig` fields (epochs, batch_size, learning_rate, mixed_precision,
        ...); ``output_dir`` receives the JSONL log and per-epoch checkpoints.
        """
        config = _train_config(config, train_options)
        run_dir = Path(output_dir).expanduser() if output_dir else None
        if resume and run_dir is None:
            raise MtlError("fit: resume=True needs output_dir, the folder of the run to continue")
        if run_dir is not None and not resume:
            refuse_earlier_checkpoints(run_dir)
            if PartialState().is_main_process:  # the other processes of a launch may be writing there already
                _refuse_used_folder(run_dir)
        fresh = run_dir is not None and not (run_dir.exists() and any(run_dir.iterdir()))
        head = _head_config(head)
        metrics = list(metrics or self.spec.metrics)
        require_metrics(metrics)  # a misspelt metric is named as such, before metric_for_best is matched to it
        if config.metric_for_best not in {*metrics, "loss"}:
            raise MtlError(f"metric_for_best {config.metric_for_best!r} is not among the metrics {metrics}")
        try:
            spec = parse_freeze(freeze)
        except ValueError as error:
            raise MtlError(f"freeze: {error}") from None
        config = with_learning_rate(config, spec)
        if config.time_budget is not None and config.strategy != "auto":
            logger.warning("train.time_budget (%g minutes) applies to train.strategy auto only; this run trains for "
                           "train.epochs as given (train.max_seconds caps its training time)", config.time_budget)
        if config.head_first_learning_rate is not None and not config.head_first_epochs and config.strategy != "auto":
            logger.warning("train.head_first_learning_rate applies to the head-first stage only; set "
                           "train.head_first_epochs to train the head first")
        if config.lr_decay is not None and spec.mode == "backbone":
            logger.warning("train.lr_decay has no effect with model.freeze backbone: only the head trains")
        train_set, validation_set = self._labelled_pair(train, validation)
        self.prepare_training(train_set)
        set_seed(config.seed)  # before the new head is initialised, so runs are reproducible
        self._ensure_model(self.label_names, head, pooling)
        self.strategy_choice = None
        self.lora_adapter = None
        self._head_inputs = None  # the frozen backbone's outputs, shared by this fit's stages (see fitting.py)
        self._stopped_fit = None
        marked = fresh and _mark_run_folder(run_dir)
        if run_dir is not None:  # what a resumed fit must be given again (the command line compares its recipe)
            settings = {"train": config, "freeze": spec, "head": head, "pooling": pooling, "metrics": metrics,
                        "preprocess": self.options}
            check_resumed_settings(run_dir / "checkpoints", settings,
                                   resuming=resume and has_checkpoint(run_dir / "checkpoints"),
                                   write=PartialState().is_main_process)
        try:
            if config.strategy == "auto":
                self.strategy_choice = choose_strategy(self, train_set, validation_set, config, metrics,
                                                       run_dir, given=spec)
                spec, config = self.strategy_choice.apply(config, given=spec)
            self.fit_result = fit_stages(self, train_set, validation_set, spec, config, metrics,
                                         run_dir, resume)
        except BaseException as error:  # Ctrl-C or an error in training: the model holds half-trained weights
            self._stopped_fit = type(error).__name__
            raise
        finally:
            self._head_inputs = None
            if marked:  # done with it (or stopped): no longer a run writing there; save(..., overwrite=True) may
                record_contents(run_dir)  # replace it, as a folder mtl wrote
        return self.fit_result

    def evaluate(self, data: Any, *, batch_size: int | None = None,
                 metrics: Sequence[str] | None = None) -> dict[str, Any]:
        """Loss, metrics, per-class report and confusion matrix on labelled ``data`` (``batch_size``: None for the
        batch that runs fastest for the model on its device, see :func:`~mtl.training.layout.inference_batch_size`)."""
        return self.evaluate_with_logits(data, batch_size=batch_size, metrics=metrics)[0]

    def evaluate_with_logits(self, data: Any, *, batch_size: int | None = None, metrics: Sequence[str] | None = None,
                             what: str = "evaluate data") -> tuple[dict[str, Any], Dataset, np.ndarray]:
        """What :meth:`evaluate` returns, plus the labelled split and its logits (one inference pass)."""
        self._require_model("evaluate")
        split, _ = labelled_split(data, input_name=self.spec.input_column, input_candidates=self.spec.input_candidates,
                                  label_names=self.label_names, what=what, check=self.check_inputs)
        predicted = self.run_model(self.features(split), batch_size)
        logits, labels = predicted.logits, predicted.labels
        scores = scores_from_logits(logits, labels, list(metrics or self.spec.metrics))
        return ({**scores, **classification_details(labels, logits.argmax(-1), self.label_names),
                 "num_examples": len(labels)}, split, logits)

    def predict(self, inputs: Sequence[Any] | Any, *, batch_size: int | None = None) -> list[dict[str, Any]]:
        """The most likely label and its probability for each raw input (a single input, such as one text or
        one path, counts as a list of one); ``batch_size`` None: the fastest for the model on its device."""
        probabilities = self.predict_proba(inputs, batch_size=batch_size)
        best = probabilities.argmax(-1)
        return [{"label": self.label_names[i], "score": float(p[i])} for i, p in zip(best, probabilities)]

    def predict_proba(self, inputs: Sequence[Any] | Any, *, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities, shape (len(inputs), num_labels), columns in ``label_names`` order."""
        self._require_model("predict")
        whole = isinstance(batch_size, int) and not isinstance(batch_size, bool)
        if batch_size is not None and not (whole and batch_size >= 1):
            raise MtlError(f"predict: batch_size must be a whole number of at least 1 (or None), got {batch_size!r}")
        inputs = as_input_list(self._column_of_table(inputs), several_arrays=self.spec.modality == "audio")
        logits = self.run_model(self.features(self.inputs_to_dataset(inputs)), batch_size).logits
        return torch.softmax(torch.from_numpy(logits), -1).numpy()

    def rank_checkpoints(self, train: Any, validation: Any = None, candidates: Sequence[str] | None = None, *,
                         score: str = "linear_probe", sample: int = 300, validation_sample: int = 150,
                         batch_size: int = 64, seed: int = 42) -> list[CandidateScore]:
        """Rank candidate checkpoints (default: the task's list, ``spec.candidates``, skipping those out of reach)
        for ``train`` by frozen-feature scores on capped samples (drawn with ``seed``), best first (see
        :mod:`mtl.task.ranking`)."""
        if isinstance(candidates, (str, os.PathLike)):  # one id or folder, not its characters
            candidates = [str(candidates)]
        if candidates is not None and not list(candidates):
            raise MtlError("rank_checkpoints: candidates is empty; name at least one checkpoint, or leave it out "
                           "(None) to rank the task's own list")
        train_set, validation_set = self._labelled_pair(train, validation)
        return rank_checkpoints(type(self), train_set, validation_set, list(candidates or self.spec.candidates),
                                options=self.options, score=score, sample=sample,
                                validation_sample=validation_sample, batch_size=batch_size, seed=seed,
                                skip_unavailable=candidates is None)

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a plain transformers folder (weights, config with label names, processor), swapped in whole."""
        self._require_model("save")
        return save_task(self, directory, overwrite)

    def push_to_hub(self, repo_id: str, *, private: bool = True, token: str | None = None) -> str:
        """Push the model and its card to the Hub as one commit (token: argument, HF_TOKEN or login); return its URL."""
        self._require_model("push")
        return push_task(self, repo_id, private, token)

    def write_model(self, directory: Path) -> Path:
        """Write model and processor into ``directory`` (a staging folder; :meth:`save` makes it atomic)."""
        return write_model_files(self, directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, **options: Any) -> "Task":
        """A task holding a fine-tuned model saved by :meth:`save` (or any classifier folder; a pretrained backbone
        without its classification head is refused: its head would be random)."""
        return read_task_folder(cls, directory, options)

    def prepare(self) -> None:
        """Resolve the checkpoint (log which source served it) and load its processor; no model yet."""
        if self.source is None:
            self.source = resolve_checkpoint(self.checkpoint, self.revision, suggest=self.spec.candidates)
        if self.processor is None:
            refuse_other_modality(self.source.path, self.spec.modality, str(self.checkpoint),
                                  self.spec.default_checkpoint)
            try:
                self.processor = self.load_processor(self.source.path)
            except MtlError:
                raise
            except (OSError, ValueError, TypeError, KeyError) as error:  # damaged or foreign checkpoint files
                raise CheckpointError(f"checkpoint {self.checkpoint}: cannot load its "
                                      f"{self.spec.processor_class.removeprefix('Auto')} ({describe(error)}); "
                                      "check config.json and the processor files, or point model.checkpoint at "
                                      "another folder") from None

    def features(self, dataset: Dataset, *, train: bool = False) -> Dataset:
        """``dataset`` as model features: preprocessed once (cached by ``datasets``) or transformed when read."""
        self.prepare()
        return task_features(self, dataset, train=train)

    def run_model(self, features: Dataset, batch_size: int | None, capture: torch.nn.Module | None = None,
                  pool: Any = None) -> Predictions:
        """Logits (and labels, and ``capture``'s inputs, or ``pool(capture's output, batch)``) for preprocessed
        examples, in their order (``batch_size`` None: the fastest for the model on its device)."""
        accelerator = self._accelerator or make_accelerator(TrainConfig())
        self._accelerator = accelerator
        model = fast_layout(self.model.to(accelerator.device))
        convolutional = batch_size is None and len(features) and has_2d_convolutions(model)
        pixels = pixels_per_example(features[0]) if convolutional else None  # one example's transform, only here
        batch_size = inference_batch_size(model, accelerator.device, batch_size, pixels)
        loader = eval_loader(features, self.collate, batch_size, self.lengths(features))
        fast = self._inference_copy(model, loader, accelerator.device)
        if capture is not None and not any(module is capture for module in fast.modules()):
            fast = model  # the copy replaced the module whose inputs are wanted
        return predict_loader(fast, accelerator.prepare(loader), accelerator, capture, pool=pool)

    def _inference_copy(self, model: torch.nn.Module, loader: Any, device: torch.device) -> torch.nn.Module:
        """``model``'s inference copy (:func:`~mtl.modeling.fusion.inference_copy`: batch norms folded, attention
        fused), checked on two examples of the loader's first batch; made again only after the weights change."""
        if not has_inference_rewrites(model) or len(loader) == 0:
            return model
        key = weights_key(model)
        if self._folded is not None and self._folded[0] == key:
            return self._folded[1]
        probe = {name: value.to(device) for name, value in next(iter(loader)).items()
                 if name not in (INDEX_KEY, "labels") and isinstance(value, torch.Tensor)}
        self._folded = (key, fast_layout(inference_copy(model, probe)))
        return self._folded[1]

    def build_model(self, label_names: Sequence[str], head: HeadConfig | None = None,
                    pooling: str = "auto") -> torch.nn.Module:
        """The pretrained classifier for ``label_names`` (loaded once; ``fit`` builds it too), e.g. to check a
        freezing spec against it before training (``--dry-run``)."""
        self._ensure_model(label_names, head, pooling)
        return self.model

    # ---- internals ----------------------------------------------------------------------------------
    def _ensure_model(self, label_names: Sequence[str], head: HeadConfig | None = None,
                      pooling: str = "auto") -> None:
        self.prepare()
        head = head or HeadConfig()
        current = self.model and [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        current_head = getattr(self.model, "config", None) and getattr(self.model.config, "mtl_head", None)
        wanted_head = {"hidden": list(head.hidden), "activation": head.activation, "dropout": head.dropout} \
            if head.type == "mlp" else None
        if current_head:
            current_head = {key: current_head[key] for key in ("hidden", "activation", "dropout")}
        if self.model is None or current != list(label_names) or current_head != wanted_head or \
                current_pooling(self.model) != resolve_pooling(self.model, pooling, self.source.path):
            auto_class = getattr(transformers, self.spec.model_class)
            try:
                self.model = build_classifier(auto_class, self.source.path, label_names)
            except MtlError:
                raise
            except Exception as error:  # safetensors and torch errors of a damaged weight file
                raise CheckpointError(f"checkpoint {self.checkpoint}: cannot load its weights ({describe(error)}); "
                                      "the weight file is damaged or truncated: download or save it again") from None
            apply_pooling(self.model, pooling, self.source.path)
            self.check_model()
            if head.type == "mlp":
                logger.info("head: MLP %s -> %d labels (%s, dropout %.2f) replaces %s", head.hidden,
                            len(label_names), head.activation, head.dropout, attach_mlp_head(self.model, head))

    def _labelled_pair(self, train: Any, validation: Any) -> tuple[Dataset, Dataset]:
        kwargs = dict(input_name=self.spec.input_column, input_candidates=self.spec.input_candidates,
                      check=self.check_inputs)
        warned = all(isinstance(split, Dataset) and split._fingerprint in STANDARDISED  # by load_labelled already
                     for split in (train, validation) if split is not None)
        train_set, names = labelled_split(train, label_names=None, what="train data", **kwargs)
        require_trainable_labels(train_set, names)
        if validation is None:
            train_set, validation_set = hold_out(train_set, 0.1, seed=42)
        else:
            validation_set, _ = labelled_split(validation, label_names=names, what="validation data",
                                               known_as="the training labels", **kwargs)
        if not warned:
            warn_shared_inputs(DatasetDict({"train": train_set, "validation": validation_set}),
                               self.spec.input_column, self.spec.input_column)
        self.label_names = list(names)
        return train_set, validation_set

    def _column_of_table(self, inputs: Any) -> Any:
        """A pandas DataFrame or a datasets Dataset given to predict: its input column, found by name as training
        finds it (iterating a DataFrame would give its column names, predicted as texts)."""
        if not (isinstance(inputs, Dataset) or type(inputs).__name__ == "DataFrame"):
            return inputs
        columns = list(inputs.column_names if isinstance(inputs, Dataset) else inputs.columns)
        found = column_named(columns, self.spec.input_candidates) or (columns[0] if len(columns) == 1 else None)
        if found is None:
            raise MtlError(f"predict: cannot tell which column of the table holds the inputs (columns: "
                           f"{', '.join(map(str, columns))}; looked for {', '.join(self.spec.input_candidates)}); pass "
                           "that column, e.g. task.predict(df['YOUR_COLUMN'])")
        return list(inputs[found]) if isinstance(inputs, Dataset) else inputs[found]

    def _require_model(self, action: str) -> None:
        if self.model is None or self.label_names is None:
            raise MtlError(f"cannot {action}: no trained model yet; call fit() first or use {type(self).__name__}.load(folder)")
        if self._stopped_fit:
            logger.warning("%s: the last fit stopped before it finished (%s), so the model holds its half-trained "
                           "weights; fit again (resume=True continues a run given an output_dir)", action,
                           self._stopped_fit)


def _refuse_used_folder(run_dir: Path) -> None:
    """A new fit writes its log and checkpoints into a new or empty folder (or one a recipe run just prepared:
    marker and recipe), never among other files: a user's, or another run's model and log."""
    passing = (".mtl-", STAGING_PREFIX)  # a write probe; a file another process of the launch is writing
    held = sorted(p.name for p in run_dir.iterdir() if p.name not in {MARKER_FILE, RECIPE_FILE, "checkpoints"}
                  and not p.name.startswith(passing)) if run_dir.is_dir() else []
    if held:
        raise OutputExistsError(f"fit: output_dir {run_dir} already holds files ({first_few(held, 3)}); give a new or "
                                "empty folder (resume=True continues a run kept there)")


def _mark_run_folder(run_dir: Path) -> bool:
    """Mark ``run_dir``, which this fit creates (or found empty), as mtl's, on the main process; whether it did. A
    folder that held anything else is left unmarked, so that ``overwrite`` never replaces a user's files."""
    if not PartialState().is_main_process:
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    mark_as_output(run_dir)
    return True


def as_input_list(inputs: Any, *, several_arrays: bool = False) -> list[Any]:
    """``inputs`` as a list: one text, path, mapping, array or image is one input, not a sequence of them.
    ``several_arrays`` (audio): a 2-D array could be several clips or one clip of several channels, so it is
    refused with the two ways to say which."""
    if inputs is None:
        raise MtlError("predict: got None; pass one input or a list of inputs")
    if several_arrays and isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 2:
        rows, columns = inputs.shape
        raise MtlError(f"predict: got one {rows} x {columns} array: several clips, or one clip of several channels? "
                       "Pass a list: list(array) predicts each row as a clip, [array] predicts one multi-channel clip")
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "US":  # an array of texts or paths
        inputs = inputs.reshape(-1).tolist()
    elif isinstance(inputs, collections.abc.Iterator):  # a generator of inputs
        inputs = list(inputs)
    single = isinstance(inputs, (str, bytes, os.PathLike, dict, np.ndarray, torch.Tensor)) or \
        not (hasattr(inputs, "__len__") and hasattr(inputs, "__iter__"))
    items = [inputs] if single else list(inputs)
    if not items:
        raise MtlError("predict: got an empty list; pass at least one input")
    return items


def _head_config(head: str | dict | HeadConfig) -> HeadConfig:
    if isinstance(head, HeadConfig):
        return head
    return schema.validated(HeadConfig, {"type": head} if isinstance(head, str) else dict(head), "head",
                            lambda key, hint: f"head: unknown key {key!r}{hint}")


def _build_options(options_class: type, options: dict[str, Any]) -> Any:
    return schema.validated(options_class, options, "option", lambda key, hint: f"unknown option {key!r}{hint}")


def with_learning_rate(config: TrainConfig, spec: FreezeSpec) -> TrainConfig:
    """``config`` with ``learning_rate`` filled in when it was not given: 1e-3 when only the head trains (``freeze:
    backbone``: a linear probe from a random head), else 5e-5 (the backbone trains)."""
    if config.learning_rate is not None:
        return config
    rate = HEAD_ONLY_RATE if spec.mode == "backbone" else FINE_TUNING_RATE
    logger.info("train.learning_rate not given: %g (%s)", rate, "only the head trains" if spec.mode == "backbone"
                else "the backbone trains")
    return dataclasses.replace(config, learning_rate=rate)


def _train_config(config: TrainConfig | None, options: dict[str, Any]) -> TrainConfig:
    if config is not None and not options:
        return config
    base = dataclasses.asdict(config) if config is not None else {}
    return schema.validated(TrainConfig, {**base, **options}, "fit()",
                            lambda key, hint: f"fit(): unknown training option {key!r}{hint}")
