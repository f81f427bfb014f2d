"""Turn plain mappings (parsed YAML) into typed dataclasses, collecting every problem at once.

Unknown keys are errors with a did-you-mean, wrong types name the expected type, and nested
dataclasses, ``Optional``, ``Literal``, ``list[...]``, ``dict[str, ...]`` and unions are understood.

Example::

    problems: list[str] = []
    config = build(TrainConfig, {"epoch": 3}, "train", problems)
    # problems == ["train.epoch: unknown key; did you mean 'epochs'?"]
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Callable, Literal, Union

from ..errors import MtlError, did_you_mean

# PyYAML (YAML 1.1) reads 1e-4 and 1.0e4 as strings: such text is a number; other text ("3", "0.5") is not one
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

_TYPE_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}


def build(cls: type, raw: Any, path: str, problems: list[str],
          unknown: Callable[[str, str], str] | None = None) -> Any:
    """Build dataclass ``cls`` from ``raw``; append ``"path.key: message"`` lines to ``problems``.

    ``unknown(key, did_you_mean_suffix)`` phrases the problem for a key the dataclass lacks.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{path or 'recipe'}: expected a mapping of keys, got {_show(raw)}")
        return None
    before = len(problems)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            hint = _section_holding(str(key), fields, hints) or did_you_mean(str(key), list(fields))
            if unknown is not None:
                problems.append(unknown(str(key), hint or f" (valid: {', '.join(fields)})"))
            else:
                problems.append(f"{where}: unknown key{hint}" if hint else
                                f"{where}: unknown key; valid keys: {', '.join(fields)}")
            continue
        values[key] = convert(hints[key], value, where, problems)
    for name, field in fields.items():
        if name not in raw and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            if dataclasses.is_dataclass(hints[name]):
                values[name] = build(hints[name], {}, f"{path}.{name}" if path else name, problems)
            else:
                problems.append(f"{path + '.' if path else ''}{name}: required key is missing")
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:  # __post_init__ checks
        if len(problems) == before or not isinstance(error, TypeError):
            problems.append(f"{path or 'recipe'}: {error}")
        return None


def convert(hint: Any, value: Any, where: str, problems: list[str]) -> Any:
    """Check and convert one value against a type hint; on failure record a problem and return None."""
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where, problems)
    result = _convert(hint, value, where)
    if isinstance(result, _Problem):
        problems.append(result.message)
        return None
    return result


class _Problem:
    def __init__(self, message: str):
        self.message = message


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            result = _convert(option, value, where)
            if not isinstance(result, _Problem):
                return result
        if len(options) == 1:  # X | None: X's own problem says more (which list item is wrong, and why)
            return result
        shaped = [option for option in options if _same_shape(option, value)]
        if len(shaped) == 1:  # a mapping given where a mapping is one option: say which entry is wrong
            return _convert(shaped[0], value, where)
        return _Problem(f"{where}: expected {' or '.join(_describe(o) for o in options)}, got {_show(value)}")
    if origin is Literal:
        if value in args:
            return value
        return _Problem(f"{where}: must be one of {', '.join(repr(a) for a in args)}, got {_show(value)}"
                        f"{did_you_mean(str(value), [str(a) for a in args])}")
    if origin in (list, tuple):
        items = value if isinstance(value, (list, tuple)) else None
        if items is None:
            return _Problem(f"{where}: expected a list, got {_show(value)}")
        out = [_convert(args[0] if args else Any, item, f"{where}[{i}]") for i, item in enumerate(items)]
        bad = [o for o in out if isinstance(o, _Problem)]
        return bad[0] if bad else (tuple(out) if origin is tuple else out)
    if origin is dict:
        if not isinstance(value, dict):
            return _Problem(f"{where}: expected a mapping, got {_show(value)}")
        out = {str(k): _convert(args[1] if args else Any, v, f"{where}.{k}") for k, v in value.items()}
        bad = [o for o in out.values() if isinstance(o, _Problem)]
        return bad[0] if bad else out
    if dataclasses.is_dataclass(hint):  # inside a union, list or dict: report the first problem
        nested: list[str] = []
        built = build(hint, value, where, nested)
        return _Problem(nested[0]) if nested else built
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()) and \
            math.isfinite(float(value)):  # 1e400 is infinite: named below, as inf is
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint is int and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()) \
            and float(value).is_integer():  # 1e3: YAML 1.1 reads it as text (it wants 1.0e3)
        return int(float(value))
    if isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    hint_text = ""
    if hint in (int, float) and isinstance(value, str) and _is_number(value):
        number = float(value)
        hint_text = ("; give a finite number" if not math.isfinite(number) else "; give a whole number"
                     if hint is int and not number.is_integer() else "; write the number without quotes")
    return _Problem(f"{where}: expected {_describe(hint)}, got {_show(value)}{hint_text}")


def _section_holding(key: str, fields: dict[str, Any], hints: dict[str, Any]) -> str:
    """``"; did you mean 'train.epochs'?"`` when ``key`` is not a section of the recipe but a key of one of them
    (``epochs=2`` on the command line), else an empty string."""
    for name in fields:
        section = hints.get(name)
        if dataclasses.is_dataclass(section) and key in {f.name for f in dataclasses.fields(section) if f.init}:
            return f"; did you mean '{name}.{key}'?"
    return ""


def _same_shape(hint: Any, value: Any) -> bool:
    """Whether ``value`` is a mapping or a list and ``hint`` asks for that kind of value."""
    origin = typing.get_origin(hint)
    if isinstance(value, dict):
        return origin is dict or dataclasses.is_dataclass(hint)
    return isinstance(value, (list, tuple)) and origin in (list, tuple)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(hint: Any) -> str:
    if hint in _TYPE_NAMES:
        return _TYPE_NAMES[hint]
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(hint):
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"



def validated(cls: type, values: dict[str, Any], where: str, unknown: Callable[[str, str], str]) -> Any:
    """Keyword arguments checked like a recipe section: unknown names get a did-you-mean, types are checked;
    every problem in one :class:`~mtl.errors.MtlError`."""
    problems: list[str] = []
    built = build(cls, values, where, problems, unknown)
    if problems:
        raise MtlError("; ".join(problems))
    return built


def flat_keys(section: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"train.epochs": 3, ...}`` (an empty mapping kept as a value)."""
    if not isinstance(section, dict):
        return {prefix: section}
    flat: dict[str, Any] = {}
    for key, value in section.items():
        flat.update(flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) and value else
                    {f"{prefix}{key}": value})
    return flat


def changed_keys(before: dict[str, Any], now: dict[str, Any], may_change: tuple[str, ...] = ()) -> str:
    """The flat keys (:func:`flat_keys`) whose values differ, as ``"train.epochs: 2 -> 3; ..."`` (five at most),
    leaving out keys that start with one of ``may_change``; an empty string when none differ."""
    changed = [f"{key}: {_shown(before.get(key))} -> {_shown(now.get(key))}" for key in sorted(set(before) | set(now))
               if before.get(key) != now.get(key) and not key.startswith(may_change)]
    return "; ".join(changed[:5]) + ("; ..." if len(changed) > 5 else "")


def _shown(value: Any) -> str:
    """A value as written in a recipe: whole-number floats without their point (train.epochs: 2 -> 3)."""
    return f"{value:g}" if isinstance(value, float) and value.is_integer() else repr(value)
