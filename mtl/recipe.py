"""Recipes: YAML files (plus ``key.sub=value`` overrides) validated into typed dataclasses.

Every recipe opens with a comment holding the command that runs it::

    # python -m mtl.run recipes/sentiment.yaml
    task: text-sentiment
    model: {checkpoint: sentence-transformers/all-MiniLM-L6-v2, freeze: none}
    data: {source: vader-movie-snippets}
    train: {epochs: 3, batch_size: 32, learning_rate: 5.0e-5}
    output: {dir: outputs/sentiment}

All problems are collected into one :class:`~mtl.errors.RecipeError`; unknown keys get a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from . import schema
from .errors import MtlError, RecipeError
from .freezing import FreezeSpec, parse_freeze
from .heads import HeadConfig
from .registry import get_task


class _RecipeLoader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false; yes/no/on/off stay words (they are Speech Commands keywords)."""


_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def parse_yaml(text: str) -> Any:
    """Parse recipe YAML (``yaml.safe_load`` with YAML 1.2 booleans)."""
    return yaml.load(text, Loader=_RecipeLoader)


@dataclass
class ModelConfig:
    """Which pretrained checkpoint to start from and what to keep frozen."""

    checkpoint: str | None = None  # Hub id or local folder; None = the task's default checkpoint
    freeze: str | dict[str, Any] = "none"  # none | backbone | {top_k: N} | {patterns: [glob, ...]}
    head: HeadConfig = field(default_factory=HeadConfig)  # {type: linear} or {type: mlp, hidden: [1024], ...}
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
        problems = [f"{name} must be a fraction between 0 and 1, got {value}"
                    for name, value in (("validation_size", self.validation_size), ("test_size", self.test_size))
                    if isinstance(value, float) and not 0 < value < 1]
        if isinstance(self.limit_per_class, int) and self.limit_per_class < 1:
            problems.append(f"limit_per_class must be at least 1, got {self.limit_per_class}")
        _raise_all(problems)


@dataclass
class TrainConfig:
    """The optimisation loop."""

    epochs: float = 3
    max_steps: int | None = None  # stops after this many optimizer steps (overrides epochs)
    batch_size: int = 32
    eval_batch_size: int | None = None  # default: 2 x batch_size
    learning_rate: float = 5e-5
    head_learning_rate: float | None = None  # default: learning_rate
    weight_decay: float = 0.01
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = 0.06
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: int = 42
    metric_for_best: str = "accuracy"
    early_stopping_patience: int | None = None  # epochs without improvement before stopping
    log_every: int = 20  # optimizer steps between loss lines in the JSONL log
    group_by_length: bool = True  # batch examples of similar length together (less padding)
    cpu: bool = False  # train on the CPU even when an accelerator is present
    feature_cache: bool = True  # when only the head trains: run the frozen backbone once, train the head on its outputs
    head_first_epochs: int = 0  # first train only the head for this many epochs (frozen features), then as `freeze` says

    def __post_init__(self) -> None:
        problems = [f"{name} must be at least 1, got {getattr(self, name)}"
                    for name in ("batch_size", "gradient_accumulation_steps", "log_every")
                    if isinstance(getattr(self, name), int) and getattr(self, name) < 1]
        if isinstance(self.epochs, float) and self.epochs <= 0 and not self.max_steps:
            problems.append(f"epochs must be positive, got {self.epochs}")
        if isinstance(self.warmup_ratio, float) and not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _raise_all(problems)


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


@dataclass
class CompareConfig:
    """Transfer versus scratch: the same architecture from random weights and from pretrained ones."""

    scratch: bool = False  # also train the architecture from random initialisation
    label_fractions: list[float] = field(default_factory=list)  # fractions of the training labels, each in (0, 1]

    def __post_init__(self) -> None:
        bad = [f for f in self.label_fractions or [] if isinstance(f, float) and not 0 < f <= 1]
        _raise_all([f"label_fractions must be fractions in (0, 1], got {bad}"] if bad else [])

    @property
    def enabled(self) -> bool:
        return bool(self.scratch or self.label_fractions)


@dataclass
class Recipe:
    """A whole run: task, model, data, task-specific preprocessing, training, metrics and outputs."""

    task: str
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: dict[str, Any] = field(default_factory=dict)  # validated by the task's Options
    train: TrainConfig = field(default_factory=TrainConfig)
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "macro_f1"])
    output: OutputConfig = field(default_factory=OutputConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def freeze_spec(self) -> FreezeSpec:
        return parse_freeze(self.model.freeze)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe file; raise one RecipeError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise MtlError(f"cannot read recipe {path}: {error.strerror}. Pass the path of a YAML recipe.") from None
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError([f"not valid YAML{where}: {getattr(error, 'problem', error)}"], str(path)) from None
    return recipe_from_dict(raw, overrides, source=str(path))


def recipe_from_dict(raw: Any, overrides: list[str] | tuple[str, ...] = (), source: str | None = None) -> Recipe:
    """Validate a recipe given as a mapping (what the YAML holds)."""
    problems: list[str] = []
    raw = dict(raw or {}) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        raise RecipeError([f"a recipe is a mapping of sections, got {type(raw).__name__}"], source)
    for override in overrides:
        _apply_override(raw, override, problems)
    recipe = schema.build(Recipe, raw, "", problems)
    if recipe is not None:
        _check_cross_fields(recipe, problems)
    if problems:
        raise RecipeError(problems, source)
    return recipe


def _apply_override(raw: dict[str, Any], override: str, problems: list[str]) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        problems.append(f"override {override!r}: write it as key.sub=value, e.g. train.epochs=1")
        return
    try:
        parsed = parse_yaml(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            problems.append(f"override {override!r}: {part} is not a section")
            return
        else:
            child = node[part] = dict(child)
        node = child
    node[parts[-1]] = parsed


def _check_cross_fields(recipe: Recipe, problems: list[str]) -> None:
    """Checks that span sections; a section that failed its own checks is None and skipped here."""
    task_cls = None
    if isinstance(recipe.task, str):
        try:
            task_cls = get_task(recipe.task)
        except MtlError as error:
            problems.append(f"task: {error}")
    if task_cls is not None and recipe.preprocess is not None:
        options = schema.build(task_cls.Options, recipe.preprocess, "preprocess", problems)
        if options is not None:
            recipe.preprocess = dataclasses.asdict(options)
    if recipe.model is not None:
        try:
            parse_freeze(recipe.model.freeze)
        except ValueError as error:
            problems.append(f"model.freeze: {error}")
    if recipe.train is not None and recipe.metrics is not None and \
            recipe.train.metric_for_best not in {*recipe.metrics, "loss"}:
        problems.append(f"train.metric_for_best: {recipe.train.metric_for_best!r} is not computed; choose one of "
                        f"{', '.join([*recipe.metrics, 'loss'])} or add it to metrics")
    hub = recipe.hub
    if hub is not None and hub.push and not hub.repo_id:
        problems.append("hub.repo_id: hub.push is true but no repo_id is given; set hub.repo_id=owner/name "
                        "(or pass --push-to-hub owner/name)")
    elif hub is not None and hub.repo_id:
        from .hub import repo_id_problem

        if problem := repo_id_problem(hub.repo_id):
            problems.append(f"hub.repo_id: {problem}")
    data = recipe.data
    if data is not None and data.source is None and not data.files:
        problems.append("data: give `source` (a built-in dataset, Hub id, file or folder) or `files` "
                        "(split: path); neither is set")
    if data is not None and data.source is not None and data.files:
        problems.append("data: give either `source` or `files`, not both")
