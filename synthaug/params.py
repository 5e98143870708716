"""Typed, validated view of ``params.yaml`` — the one place that knows its schema.

Every section is a frozen dataclass; :func:`load_params` converts the whole file before any stage
does work, rejecting wrong types, out-of-range values, missing keys and unknown keys (with a
"did you mean ..." suggestion). Values live in ``params.yaml`` only: fields have no defaults here,
so a value is never written twice. Bounds live in field metadata (``ge``/``gt``/``le``/``lt``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ParamsError(ValueError):
    """A params.yaml value that the user must fix; the message names the key."""


def bounded(**bounds: float) -> Any:
    """A required field with numeric bounds, e.g. ``bounded(ge=1)``."""
    return field(metadata=bounds)


# ---------------------------------------------------------------------------------------------
# Schema


@dataclass(frozen=True)
class DataParams:
    source: Literal["embedded", "folders"]
    image_size: int = bounded(ge=8, le=1024)
    channels: Literal[1, 3]
    det_image_size: int = bounded(ge=32, le=2048)


@dataclass(frozen=True)
class DetectionPrepareParams:
    train_images: int = bounded(ge=1)
    val_images: int = bounded(ge=1)
    test_images: int = bounded(ge=1)
    max_objects: int = bounded(ge=1, le=64)
    min_object_size: float = bounded(gt=0, le=1)
    max_object_size: float = bounded(gt=0, le=1)
    max_iou: float = bounded(ge=0, le=1)
    backgrounds: tuple[str, ...]

    def validate(self, where: str) -> None:
        if self.min_object_size > self.max_object_size:
            raise ParamsError(
                f"{where}.min_object_size: {self.min_object_size} is larger than "
                f"{where}.max_object_size ({self.max_object_size}); swap them"
            )


@dataclass(frozen=True)
class PrepareParams:
    pool_per_class: int = bounded(ge=0)
    shots_per_class: int = bounded(ge=1)
    val_per_class: int = bounded(ge=1)
    test_per_class: int = bounded(ge=1)
    det: DetectionPrepareParams


@dataclass(frozen=True)
class Params:
    seed: int = bounded(ge=0, lt=2**32)
    data: DataParams
    prepare: PrepareParams


# ---------------------------------------------------------------------------------------------
# Conversion


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_bounds(value: float, meta: typing.Mapping[str, float], where: str) -> None:
    checks = {
        "ge": (lambda v, b: v >= b, ">="),
        "gt": (lambda v, b: v > b, ">"),
        "le": (lambda v, b: v <= b, "<="),
        "lt": (lambda v, b: v < b, "<"),
    }
    for key, bound in meta.items():
        ok, symbol = checks[key]
        if not ok(value, bound):
            raise ParamsError(f"{where}: {value!r} is out of range; it must be {symbol} {bound}")


def convert(value: Any, tp: Any, where: str) -> Any:
    """Convert a parsed YAML value to ``tp`` or raise :class:`ParamsError` naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(value, tp, where)
    if origin is Literal:
        if value not in args or isinstance(value, bool) != isinstance(args[0], bool):
            raise ParamsError(
                f"{where}: {value!r} is not one of {', '.join(map(repr, args))}"
                + _suggest(str(value), map(str, args))
            )
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return convert(value, inner, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return tuple(convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        return {str(k): convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp in (int, bool, str):
        if type(value) is not tp:
            raise ParamsError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported schema type {_type_name(tp)} at {where}")  # a bug in this module


def _convert_dataclass(value: Any, cls: type, where: str) -> Any:
    prefix = f"{where}." if where else ""
    if not isinstance(value, dict):
        raise ParamsError(f"{where or 'params'}: expected a mapping, got {type(value).__name__} {value!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in value:
        if key not in known:
            raise ParamsError(f"{prefix}{key}: unknown key" + _suggest(str(key), known))
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in value:
            raise ParamsError(f"{prefix}{f.name}: missing key (expected {_type_name(hints[f.name])})")
        kwargs[f.name] = convert(value[f.name], hints[f.name], prefix + f.name)
        if f.metadata and kwargs[f.name] is not None:
            _check_bounds(kwargs[f.name], f.metadata, prefix + f.name)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):  # cross-field rules a single field's bounds cannot state
        obj.validate(where)
    return obj


def parse_params(raw: Any) -> Params:
    """Validate an already-parsed params mapping (as from ``yaml.safe_load``)."""
    return _convert_dataclass(raw, Params, "")


def load_params(path: Path) -> Params:
    """Read and validate ``params.yaml``; every error message starts with the file name."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"{path}: cannot read params ({exc})") from None
    try:
        return parse_params(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
