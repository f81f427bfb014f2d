"""Recipes: YAML files (plus ``key.sub=value`` overrides) validated into a typed :class:`~mtl.config.sections.Recipe`.

Every recipe opens with a comment holding the command that runs it::

    # python -m mtl.run recipes/sentiment.yaml
    task: text-sentiment
    model: {checkpoint: sentence-transformers/all-MiniLM-L6-v2, freeze: none}
    data: {source: vader-movie-snippets}
    train: {epochs: 3, batch_size: 32, learning_rate: 5.0e-5}
    output: {dir: outputs/sentiment}

All problems are collected into one :class:`~mtl.errors.RecipeError`; unknown keys get a did-you-mean. The
task's own ``preprocess`` options and the checks that span sections are made here, where the registry is known.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .config import schema
from .config.freeze import parse_freeze
from .config.sections import Recipe
from .config.yaml_text import parse_yaml
from .errors import MtlError, RecipeError
from .registry import get_task


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe file; raise one RecipeError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise MtlError(f"cannot read recipe {path}: {error.strerror}. Pass the path of a YAML recipe.") from None
    except UnicodeDecodeError:
        raise MtlError(f"recipe {path}: not UTF-8 text (another encoding, such as UTF-16 or Latin-1, or not a text "
                       "file at all); a recipe is a YAML file: save it as UTF-8") from None
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError([f"not valid YAML{where}: {getattr(error, 'problem', error)}"], str(path)) from None
    if raw is None and not overrides:
        raise RecipeError(["the file is empty (nothing but comments); a recipe needs at least `task` and "
                           "`data.source`: start from one of the shipped recipes (recipes/*.yaml)"], str(path))
    return recipe_from_dict(raw, overrides, source=str(path))


def check_overrides(overrides: list[str] | tuple[str, ...], source: str | None = None) -> None:
    """A key overridden twice on one command line is a RecipeError (the YAML loader refuses a key given twice in
    a section, too). Programs adding their own overrides after the user's may still override a user's key."""
    keys = [override.partition("=")[0].strip() for override in overrides if "=" in override]
    twice = [f"override {key}: given {keys.count(key)} times; keep one" for key in dict.fromkeys(keys)
             if keys.count(key) > 1]
    if twice:
        raise RecipeError(twice, source)


def recipe_from_dict(raw: Any, overrides: list[str] | tuple[str, ...] = (), source: str | None = None) -> Recipe:
    """Validate a recipe given as a mapping (what the YAML holds)."""
    problems: list[str] = []
    raw = {} if raw is None else dict(raw) if isinstance(raw, dict) else raw  # None: an empty or all-comment file
    if not isinstance(raw, dict):
        raise RecipeError([f"a recipe is a mapping of sections, got {type(raw).__name__}"], source)
    for override in overrides:
        _apply_override(raw, override, problems)
    recipe = schema.build(Recipe, raw, "", problems)
    if recipe is not None:
        _check_cross_fields(recipe, problems)
    if problems:
        raise RecipeError([_blame_override(problem, overrides) for problem in problems], source)
    return recipe


def _blame_override(problem: str, overrides: list[str] | tuple[str, ...]) -> str:
    """``problem`` with the command-line override it comes from named, when it is about an overridden key; in a
    section's list of problems ("train: a; b"), each one with its own."""
    section, sep, listed = problem.partition(": ")
    if sep and "." not in section and " " not in section and "; " in listed:
        return f"{section}: " + "; ".join(_blame_part(section, part, overrides) for part in listed.split("; "))
    path, _, said = problem.partition(":")
    below = []  # overrides of keys inside the section the problem names (model.head.dropout for model.head)
    for override in reversed(overrides):
        key = override.partition("=")[0].strip()
        section, _, sub = key.partition(".")
        written = (f"{key}:", f"{key}.", f"{key}[") + ((f"{section}: {sub} ", f"{section}: {sub}:") if sub else ())
        if key and problem.startswith(written):
            return f"{problem} (from the command line: {override})"
        if key and "." in path and key.startswith(f"{path}."):
            below.append((key.rpartition(".")[2] in said.split(";")[0].replace(",", " ").split(), override))
    if below:  # the one whose key the message names, else the last
        return f"{problem} (from the command line: {max(below, key=lambda pair: pair[0])[1]})"
    return problem


def _blame_part(section: str, part: str, overrides: list[str] | tuple[str, ...]) -> str:
    """One problem of a section's list, with the override of the key it starts with named, if any."""
    for override in reversed(overrides):
        key = override.partition("=")[0].strip()
        leaf = key.removeprefix(f"{section}.")
        if key.startswith(f"{section}.") and part.startswith((f"{leaf} ", f"{leaf}:")):
            return f"{part} (from the command line: {override})"
    return part


def _apply_override(raw: dict[str, Any], override: str, problems: list[str]) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        problems.append(f"override {override!r}: write it as key.sub=value, e.g. train.epochs=1")
        return
    try:
        parsed = parse_yaml(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    if _colon_in_a_key(parsed):  # {gradual:{every:1}}: YAML reads "every:1" as one key
        spaced = re.sub(r":(?=\S)", ": ", value.strip())
        problems.append(f"override {override!r}: YAML needs a space after each colon of a mapping; write "
                        f"'{key.strip()}={spaced}' (quoted in the shell)")
        return
    node = raw
    parts = key.strip().split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            setting, nested = ".".join(parts[:depth + 1]), value.strip()
            for part in reversed(parts[depth + 1:]):
                nested = f"{{{part}: {nested}}}"
            problems.append(f"override {override!r}: {setting} is a value ({child!r}), not a section of keys; give "
                            f"the whole value instead, e.g. {setting}={nested}")
            return
        else:
            child = node[part] = dict(child)
        node = child
    node[parts[-1]] = parsed


def _colon_in_a_key(value: Any) -> bool:
    """Whether a parsed override holds a mapping key with a colon in it (a colon written without its space)."""
    if isinstance(value, dict):
        return any((isinstance(key, str) and ":" in key) or _colon_in_a_key(item) for key, item in value.items())
    return isinstance(value, list) and any(_colon_in_a_key(item) for item in value)


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
            recipe.preprocess = options  # the task's typed Options from here on
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
        from .publish.hub import repo_id_problem

        if problem := repo_id_problem(hub.repo_id):
            problems.append(f"hub.repo_id: {problem}")
    data = recipe.data
    if data is not None and data.source is None and not data.files:
        problems.append("data: give `source` (a built-in dataset, Hub id, file or folder) or `files` "
                        "(split: path); neither is set")
    if data is not None and data.source is not None and data.files:
        problems.append("data: give either `source` or `files`, not both")
