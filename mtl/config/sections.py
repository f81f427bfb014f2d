"""The typed sections of a recipe, one dataclass each; every field has a default and a comment saying what it does.

This module is a leaf: it imports nothing of mtl but the config package. Values are checked in
``__post_init__`` (ranges) and by :mod:`mtl.config.schema` (types, unknown keys); checks that need a task
(``preprocess``) or span sections live in :mod:`mtl.recipe`.

Example::

    TrainConfig(epochs=3, batch_size=32).eval_batch   # 64
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from .freeze import FreezeSpec, parse_freeze


@dataclass
class HeadConfig:
    """The classification head (recipe ``model.head``): ``linear`` (default) or ``mlp``."""

    type: Literal["linear", "mlp"] = "linear"
    # the MLP's settings; given with type linear they are an error (a forgotten `type: mlp`), not ignored
    hidden: list[int] | None = None  # widths of the MLP's hidden layers (mlp default: [1024])
    activation: Literal["relu", "gelu", "tanh", "silu"] | None = None  # mlp default: relu
    dropout: float | None = None  # dropout after each hidden layer, training only (mlp default: 0.0)

    def __post_init__(self) -> None:
        if self.type == "linear":
            for name, default in MLP_SETTINGS.items():  # recipes saved before these became optional wrote the
                if getattr(self, name) == default:  # MLP's defaults into every linear head: the same as unset
                    setattr(self, name, None)
            given = [name for name in MLP_SETTINGS if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to an MLP head "
                                 "only; add type: mlp (model.head.type=mlp) or remove "
                                 f"{'it' if len(given) == 1 else 'them'}")
            return
        for name, default in MLP_SETTINGS.items():
            if getattr(self, name) is None:
                setattr(self, name, list(default) if isinstance(default, list) else default)
        if isinstance(self.dropout, float) and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.hidden, list) and (not self.hidden or any(w < 1 for w in self.hidden)):
            raise ValueError(f"hidden must list one or more positive widths, got {self.hidden}")


DEFAULT_TIME_BUDGET = 10.0  # minutes, for train.strategy auto
MLP_SETTINGS: dict[str, Any] = {"hidden": [1024], "activation": "relu", "dropout": 0.0}  # an MLP head's defaults


@dataclass
class ModelConfig:
    """Which pretrained checkpoint to start from and what to keep frozen."""

    checkpoint: str | None = None  # Hub id or local folder; None = the task's default; auto = rank (select) first
    freeze: str | dict[str, Any] = "none"  # none | backbone | {top_k: N} | {patterns: [glob, ...]}
    head: HeadConfig = field(default_factory=HeadConfig)  # {type: linear} or {type: mlp, hidden: [1024], ...}
    pooling: Literal["auto", "pooler", "cls", "mean"] = "auto"  # text encoders: how token states become one vector;
    # auto: what the checkpoint was trained for (sentence-transformers: 1_Pooling/config.json, else its pooler);
    # cls and mean (also when auto picks them) save a folder that loads with trust_remote_code=True
    revision: str | None = None  # Hub revision (branch, tag or commit)


@dataclass
class DataConfig:
    """Where the labelled examples come from and how they are split."""

    source: str | None = None  # built-in dataset name, Hub dataset id, local file or folder
    config: str | None = None  # Hub dataset configuration name
    files: dict[str, str] | None = None  # split name -> local file, instead of `source`
    test_source: str | None = None  # evaluate on this source's test split (or its only split) instead
    keywords: list[str] | None = None  # audio: labels not listed become _unknown_ (_silence_ stays)
    train_split: str = "train"
    validation_split: str | None = None  # None: auto-detect validation/valid/dev, else carve from train
    test_split: str | None = None  # None: auto-detect test, else carve from train
    input_column: str | None = None  # None: auto-detect (text, sentence, ...)
    label_column: str | None = None  # None: auto-detect (label, labels, ...)
    label_names: list[str] | None = None  # names for integer labels 0..n-1 (default: the integers as text)
    validation_size: float = 0.1  # fraction of train held out when there is no validation split
    test_size: float = 0.1  # fraction of train held out when there is no test split
    limit_per_class: int | None = None  # few-shot: keep at most N training examples per class
    split_seed: int = 42

    def __post_init__(self) -> None:
        problems = [f"{name} must be a fraction between 0 and 1, got {value}" + (
                        "; every run needs a validation split (to pick the best epoch) and a test split (to report "
                        "on); give your own with data.files: {train: ..., validation: ..., test: ...} and every "
                        "training row stays in train" if value == 0 else "")
                    for name, value in (("validation_size", self.validation_size), ("test_size", self.test_size))
                    if isinstance(value, float) and not 0 < value < 1]
        if isinstance(self.limit_per_class, int) and self.limit_per_class < 1:
            problems.append(f"limit_per_class must be at least 1, got {self.limit_per_class}")
        for name in ("label_names", "keywords"):
            values = getattr(self, name)
            listed = values if isinstance(values, list) else []
            repeated = sorted({value for value in listed if listed.count(value) > 1})
            if repeated:
                problems.append(f"{name} names {', '.join(map(repr, repeated))} more than once; each "
                                f"{'label' if name == 'label_names' else 'keyword'} must be named once")
        _raise_all(problems)


FINE_TUNING_RATE = 5e-5  # train.learning_rate when pretrained weights train and none is given
HEAD_ONLY_RATE = 1e-3  # ... and when only the head trains (freeze: backbone): a linear probe from a random head


@dataclass
class TrainConfig:
    """The optimisation loop."""

    epochs: float = 3
    max_steps: int | None = None  # stops after this many optimizer steps (overrides epochs)
    batch_size: int = 32
    eval_batch_size: int | None = None  # default: 2 x batch_size
    learning_rate: float | None = None  # default: 5e-5 when the backbone trains, 1e-3 when only the head does
    head_learning_rate: float | None = None  # default: learning_rate
    lr_decay: float | None = None  # layer-wise: each block down from the top gets the rate of the one above x this
    class_weights: Literal["auto"] | dict[str, float] | None = None  # loss weight per label; auto: inverse frequency
    label_smoothing: float = 0.0  # share of each target spread over all labels in the training loss
    weight_decay: float = 0.01
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = 0.06
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: Literal["no", "bf16", "fp16", "auto"] = "no"  # auto: bf16 where the device multiplies bf16
    # natively (CUDA GPUs that support it, CPUs with AVX512-BF16 or AMX), else no
    seed: int = 42
    metric_for_best: str = "accuracy"
    early_stopping_patience: int | None = None  # epochs without improvement before stopping
    log_every: int = 20  # optimizer steps between loss lines in the JSONL log
    max_seconds: float | None = None  # stop after this much training time (the epoch in progress is evaluated)
    strategy: Literal["explicit", "auto"] = "explicit"  # auto: race linear probes on cached features, then choose
    # linear probe, LP-FT or LoRA and their rates to fit time_budget (model.freeze and the rates are then chosen)
    time_budget: float | None = None  # minutes, for strategy auto only (unset: 10); a warning with strategy explicit
    save_every_steps: int | None = None  # also checkpoint every N optimizer steps inside an epoch (long epochs);
    # a run killed between them resumes from the newest and ends as if never stopped
    group_by_length: bool = True  # batch examples of similar length together (less padding)
    num_workers: int = 0  # DataLoader worker processes that read, decode and augment batches beside training (GPU
    # machines: 4-8; the batches and their augmentation are the same for any number)
    cpu: bool = False  # train on the CPU even when an accelerator is present
    compile: bool | Literal["inductor", "aot_eager", "eager", "cudagraphs"] = False  # torch.compile the training
    # forward and backward (true: inductor) with dynamic shapes; evaluation and the saved model stay eager
    feature_cache: bool = True  # when only the head trains: run the frozen backbone once, train the head on its outputs
    head_first_epochs: int = 0  # first train only the head for this many epochs (frozen features), then as `freeze` says
    head_first_learning_rate: float | None = None  # the head-first stage's rate (default: head_learning_rate, else
    # learning_rate); strategy auto sets it to its probe race's best rate
    report_to: list[Tracker] = field(default_factory=list)  # accelerate trackers for losses, metrics, learning rates
    # and throughput, written by the main process (tensorboard: OUT/runs/); off by default

    @property
    def budget_minutes(self) -> float:
        """The minutes ``strategy: auto`` fits its choice into: ``time_budget``, else 10."""
        return DEFAULT_TIME_BUDGET if self.time_budget is None else self.time_budget

    @property
    def eval_batch(self) -> int:
        """The evaluation batch size: ``eval_batch_size``, else twice ``batch_size`` (no gradients to keep)."""
        return self.eval_batch_size or 2 * self.batch_size

    def __post_init__(self) -> None:
        if self.time_budget == DEFAULT_TIME_BUDGET:  # recipes saved before time_budget became optional wrote 10.0
            self.time_budget = None
        problems = [f"{name} must be at least 1, got {getattr(self, name)}"
                    for name in ("batch_size", "gradient_accumulation_steps", "log_every")
                    if isinstance(getattr(self, name), int) and getattr(self, name) < 1]
        if isinstance(self.epochs, float) and not (math.isfinite(self.epochs) and self.epochs > 0) and not self.max_steps:
            problems.append(f"epochs must be a positive number, got {self.epochs}")
        for name in ("max_steps", "save_every_steps"):
            if isinstance(getattr(self, name), int) and getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1 (or null), got {getattr(self, name)}")
        for name in ("learning_rate", "head_learning_rate", "head_first_learning_rate", "max_grad_norm", "max_seconds",
                     "time_budget"):
            value = getattr(self, name)
            if isinstance(value, float) and not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a finite number above 0, got {value}")
        if isinstance(self.weight_decay, float) and not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be a finite number of at least 0, got {self.weight_decay}")
        if isinstance(self.lr_decay, float) and not (math.isfinite(self.lr_decay) and 0 < self.lr_decay <= 1):
            problems.append(f"lr_decay must be in (0, 1] (or null), got {self.lr_decay}")
        if isinstance(self.label_smoothing, float) and not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if isinstance(self.class_weights, dict):
            bad = {label: weight for label, weight in self.class_weights.items()
                   if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0)}
            if bad or not self.class_weights:
                problems.append(f"class_weights must map labels to finite weights above 0, got {bad or '{}'}")
        if isinstance(self.warmup_ratio, float) and not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if isinstance(self.early_stopping_patience, int) and self.early_stopping_patience < 1:
            problems.append(f"early_stopping_patience must be at least 1 (or null), got {self.early_stopping_patience}")
        if isinstance(self.num_workers, int) and self.num_workers < 0:
            problems.append(f"num_workers must not be negative, got {self.num_workers}")
        if isinstance(self.head_first_epochs, int) and self.head_first_epochs < 0:
            problems.append(f"head_first_epochs must not be negative, got {self.head_first_epochs}")
        _raise_all(problems)


Tracker = Literal["tensorboard", "wandb", "comet_ml", "aim", "mlflow", "clearml", "dvclive", "swanlab", "trackio"]


def _raise_all(problems: list[str]) -> None:
    if problems:
        raise ValueError("; ".join(problems))


@dataclass
class OutputConfig:
    """Where results go."""

    dir: str = "outputs/run"
    keep_checkpoints: bool = False  # keep the per-epoch training checkpoints after a successful run


@dataclass
class HubConfig:
    """Publishing the output folder on the Hugging Face Hub after a successful run."""

    push: bool = False  # push the output folder (model, card, reports) as one commit at the end of the run
    repo_id: str | None = None  # owner/name, or name alone for the token's own namespace
    private: bool = True  # create the repository private
    license: str | None = None  # license in the model card; None: the base model's, else "other"
    include_private: bool = False  # also push test_predictions.csv (test inputs), log/recipe/metrics with local paths


@dataclass
class CompareConfig:
    """Transfer versus scratch: the same architecture from random weights and from pretrained ones."""

    scratch: bool = False  # also train the architecture from random initialisation
    label_fractions: list[float] = field(default_factory=list)  # fractions of the training labels, each in (0, 1]
    scratch_time_multiple: float = 4.0  # scratch trains until validation stops improving, for at most this many
    scratch_max_epochs: int = 100  # times the pretrained run's training time on the same labels, or these epochs
    scratch_patience: int = 3  # epochs without validation improvement before a scratch run stops

    def __post_init__(self) -> None:
        bad = [f for f in self.label_fractions or [] if isinstance(f, float) and not 0 < f <= 1]
        problems = [f"label_fractions must be fractions in (0, 1], got {bad}"] if bad else []
        if isinstance(self.scratch_time_multiple, float) and not (math.isfinite(self.scratch_time_multiple)
                                                                  and self.scratch_time_multiple > 0):
            problems.append(f"scratch_time_multiple must be a number above 0, got {self.scratch_time_multiple}")
        problems += [f"{name} must be at least 1, got {getattr(self, name)}" for name in
                     ("scratch_max_epochs", "scratch_patience") if getattr(self, name) < 1]
        _raise_all(problems)

    @property
    def enabled(self) -> bool:
        return bool(self.scratch or self.label_fractions)


@dataclass
class SelectConfig:
    """Ranking candidate checkpoints on frozen features (``python -m mtl.select``, and ``model.checkpoint: auto``)."""

    candidates: list[str] | None = None  # checkpoint ids or folders; None: the task's list (those within reach)
    score: Literal["linear_probe", "knn", "logme"] = "linear_probe"  # what ranks them
    sample: int = 300  # training examples whose features are computed (stratified sample)
    validation_sample: int = 150  # validation examples scored
    report_dir: str | None = None  # ranking.csv and ranking.png; None: <output.dir>-selection

    def __post_init__(self) -> None:
        problems = [f"{name} must be at least 10, got {value}" for name, value in
                    (("sample", self.sample), ("validation_sample", self.validation_sample))
                    if isinstance(value, int) and value < 10]
        if isinstance(self.candidates, list) and not self.candidates:
            problems.append("candidates is empty; list checkpoint ids, or leave it out for the task's list")
        _raise_all(problems)


@dataclass
class Recipe:
    """A whole run: task, model, data, task-specific preprocessing, training, metrics and outputs."""

    task: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: dict[str, Any] = field(default_factory=dict)  # the task's Options once validated by mtl.recipe
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "macro_f1"])
    output: OutputConfig = field(default_factory=OutputConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    select: SelectConfig = field(default_factory=SelectConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def freeze_spec(self) -> FreezeSpec:
        return parse_freeze(self.model.freeze)
