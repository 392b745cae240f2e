"""Strict loading of params.yaml sections into frozen dataclasses.

Every stage declares its section as a frozen dataclass. `parse_section` checks the
YAML mapping against it: unknown keys, missing keys, wrong types and values outside
the range declared in a field's metadata (`min`, `max`, `choices`) are all collected
and raised once, each line naming the dotted key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from stages.errors import ParamsError

T = TypeVar("T")

SECTIONS = ("extract", "anonymize", "synthesize", "train", "evaluate")


def bounded(*, min: float | None = None, max: float | None = None, choices: tuple = ()) -> Any:
    """A dataclass field whose value the loader range-checks."""
    return dataclasses.field(metadata={"min": min, "max": max, "choices": choices})


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Read params.yaml, refusing top-level keys that are not a stage section or `seed`."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} does not exist; run from the project root or pass --params.")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping of stage sections, got {type(data).__name__}.")
    unknown = sorted(set(data) - set(SECTIONS) - {"seed"})
    if unknown:
        raise ParamsError(
            f"{path}: unknown top-level key(s) {unknown}; allowed are 'seed' and {list(SECTIONS)}."
        )
    return data


def load_seed(data: Mapping[str, Any]) -> int:
    """The global seed, a non-negative int."""
    return parse_value(data.get("seed"), int, "seed", required=True, meta={"min": 0})


def load_section(path: str | Path, section: str, cls: type[T]) -> tuple[T, int]:
    """Load one stage section and the global seed from a params file."""
    data = read_params_file(path)
    if section not in data:
        raise ParamsError(f"{path} has no '{section}' section; add it (see the project's params.yaml).")
    return parse_section(data[section], cls, section), load_seed(data)


def parse_section(raw: Any, cls: type[T], prefix: str) -> T:
    """Build `cls` from a mapping, strictly; raise one ParamsError listing every problem."""
    problems: list[str] = []
    value = _build(raw, cls, prefix, problems)
    if problems:
        raise ParamsError("invalid params:\n  " + "\n  ".join(problems))
    return value


def parse_value(raw: Any, tp: Any, key: str, *, required: bool = True, meta: Mapping | None = None) -> Any:
    """Check a single value against a type and range; raise ParamsError on failure."""
    problems: list[str] = []
    if raw is None and required:
        raise ParamsError(f"{key}: missing; it is required.")
    value = _coerce(raw, tp, key, problems, meta or {})
    if problems:
        raise ParamsError("invalid params:\n  " + "\n  ".join(problems))
    return value


def _build(raw: Any, cls: type, prefix: str, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        problems.append(f"{prefix}: expected a mapping, got {raw!r}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in sorted(set(raw) - set(fields)):
        problems.append(f"{prefix}.{key}: unknown key; allowed keys are {sorted(fields)}")
    kwargs = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}"
        if name not in raw:
            problems.append(f"{key}: missing; add it to params.yaml")
            continue
        kwargs[name] = _coerce(raw[name], hints[name], key, problems, field.metadata)
    if len(kwargs) != len(fields) or problems:
        return None
    try:
        return cls(**kwargs)
    except ParamsError as exc:
        # __post_init__ checks start with the field they concern ("train: ..."), or with
        # nothing when they concern the whole section.
        text = str(exc)
        problems.append(f"{prefix}.{text}" if text.split(":", 1)[0] in fields else f"{prefix}: {text}")
        return None


def _coerce(raw: Any, tp: Any, key: str, problems: list[str], meta: Mapping) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(raw, inner[0], key, problems, meta)
    if dataclasses.is_dataclass(tp):
        return _build(raw, tp, key, problems)
    if origin is tuple:
        if not isinstance(raw, list):
            problems.append(f"{key}: expected a list, got {raw!r}")
            return None
        return tuple(_coerce(item, args[0], f"{key}[{i}]", problems, meta) for i, item in enumerate(raw))
    if origin is typing.Literal:
        if raw not in args:
            problems.append(f"{key}: {raw!r} is not allowed; choose one of {list(args)}")
        return raw
    if not _is_instance(raw, tp):
        problems.append(f"{key}: expected {getattr(tp, '__name__', tp)}, got {raw!r} ({type(raw).__name__})")
        return None
    value = float(raw) if tp is float else raw
    _check_range(value, key, problems, meta)
    return value


def _is_instance(raw: Any, tp: Any) -> bool:
    if tp is bool:
        return isinstance(raw, bool)
    if tp is int:
        return isinstance(raw, int) and not isinstance(raw, bool)
    if tp is float:
        return isinstance(raw, (int, float)) and not isinstance(raw, bool)
    return isinstance(raw, tp)


def _check_range(value: Any, key: str, problems: list[str], meta: Mapping) -> None:
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices") or ()
    if choices and value not in choices:
        problems.append(f"{key}: {value!r} is not allowed; choose one of {list(choices)}")
    if lo is not None and value < lo:
        problems.append(f"{key}: {value!r} is below the minimum {lo}")
    if hi is not None and value > hi:
        problems.append(f"{key}: {value!r} is above the maximum {hi}")


def as_flat_dict(params: Any, prefix: str) -> dict[str, Any]:
    """Flatten a params dataclass into dotted keys, for tracking."""
    flat: dict[str, Any] = {}
    for name, value in dataclasses.asdict(params).items():
        _flatten(value, f"{prefix}.{name}", flat)
    return flat


def _flatten(value: Any, key: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for name, inner in value.items():
            _flatten(inner, f"{key}.{name}", out)
    else:
        out[key] = list(value) if isinstance(value, tuple) else value
