"""A small schema system on frozen dataclasses.

The dataclasses are the schema and hold the only defaults. :func:`build` walks their type
hints to turn a YAML mapping into instances, and every error names the file and the full key
path (``arch.array.rows: expected a positive integer, got 'sixteen'``). Unknown keys are errors
with a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, get_args, get_origin

from simulator.errors import ConfigError, shorten
from simulator.records import record

__all__ = [
    "option",
    "positive",
    "model_name",
    "non_negative",
    "build",
    "dump",
    "describe_fields",
    "FieldDoc",
    "did_you_mean",
    "in_range",
    "at_least",
    "MAX_EXACT_INT",
]

#: Largest integer a float may stand for where an integer goes (``1.0e+20`` is refused).
MAX_EXACT_INT = 1 << 53

Check = Callable[[Any], str | None]

#: Type hints of a schema class, resolved once per class (a sweep validates many designs).
_type_hints = functools.cache(typing.get_type_hints)


#: The least bandwidth in bytes per cycle (a DRAM channel, the interconnect): a slower
#: channel would make a layer's cycles overflow 64-bit integers.
MIN_BANDWIDTH = 1e-3


def positive(value: Any) -> str | None:
    """Check that a number is > 0."""
    return None if value > 0 else "a positive number"


def model_name(value: Any) -> str | None:
    """Check a model name: ``digits`` (the shipped model) or ``path/to/file.py:factory``."""
    path, sep, attr = str(value).rpartition(":")
    if value == "digits" or (sep and path.endswith(".py") and attr.isidentifier()):
        return None
    return "digits or path/to/file.py:factory"


def non_negative(value: Any) -> str | None:
    """Check that a number is >= 0."""
    return None if value >= 0 else "a non-negative number"


def at_least(low: float) -> Check:
    """Check that a number is at least ``low``."""
    def check(value: Any) -> str | None:
        return None if value >= low else f"a number of at least {low:g}"
    return check


def in_range(low: float, high: float) -> Check:
    """Check that a number lies in [low, high] (sizes are bounded: docs/config-reference.md)."""
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"a number from {low:,} to {high:,}"
    return check


def option(default: Any = dataclasses.MISSING, *, doc: str, check: Check | None = None,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """Declare a schema field with its documentation and an optional value check."""
    meta = {"doc": doc, "check": check}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or a list of valid keys."""
    choices = sorted(choices)
    if len(word) > 100:
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (valid keys: {', '.join(choices)})" if choices else ""


def _describe_type(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(a) for a in get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"a list of {_plural(get_args(tp)[0])}"
    if origin in (dict, Mapping):
        return f"a mapping of names to {_plural(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _plural(tp: Any) -> str:
    """What many values of ``tp`` are: "integers", "mappings of names to numbers", "values
    (one of ...)"."""
    one = _describe_type(tp)
    for article in ("a ", "an "):
        if one.startswith(article):
            noun, _, rest = one[len(article):].partition(" ")
            return f"{noun}s {rest}".rstrip()
    return f"values ({one})"


#: the words YAML 1.1 (PyYAML) reads as booleans
_YAML_BOOLEANS = frozenset({"yes", "no", "true", "false", "on", "off"})


def _quote_hint(value: Any, choices: tuple[Any, ...] | None = None) -> str:
    """For a boolean where a string goes: YAML read a word such as ``off`` as a boolean."""
    if not isinstance(value, bool):
        return ""
    if choices is None:
        return " (YAML reads on, off, yes and no as booleans: quote the word, e.g. 'off')"
    words = [c for c in choices if isinstance(c, str) and c.lower() in _YAML_BOOLEANS]
    return f" (YAML reads {words[0]} as a boolean: quote it, '{words[0]}')" if words else ""


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert one YAML value to the hinted type, or raise ConfigError naming ``where``."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ConfigError as exc:
                errors.append(exc)
                if dataclasses.is_dataclass(arg) and isinstance(value, Mapping):
                    raise  # a mapping meant for the schema: its own message is the clearer
        raise ConfigError(f"{where}: expected {_describe_type(tp)}, got {shorten(value)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {shorten(value)}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_EXACT_INT:
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {shorten(value)}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {shorten(value)}")
        if isinstance(value, int | float):
            out = float(value)
        elif isinstance(value, str):
            # PyYAML reads 1e9 (no dot) as a string; accept plain numeric strings.
            try:
                out = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {shorten(value)}") from None
        else:
            raise ConfigError(f"{where}: expected a number, got {shorten(value)}")
        if not math.isfinite(out):
            raise ConfigError(f"{where}: expected a finite number, got {shorten(value)}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {shorten(value)}"
                              f"{_quote_hint(value)}")
        return value
    if origin is Literal:
        if value in get_args(tp) and type(value) is type(get_args(tp)[0]):
            return value
        choices = get_args(tp)
        hint = (did_you_mean(str(value), [str(c) for c in choices]) if isinstance(value, str)
                else _quote_hint(value, choices))
        raise ConfigError(f"{where}: expected {_describe_type(tp)}, got {shorten(value)}{hint}")
    if origin is tuple:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected {_describe_type(tp)}, got {shorten(value)}")
        (item,) = get_args(tp)[:1]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected {_describe_type(tp)}, got {shorten(value)}")
        key_tp, val_tp = get_args(tp)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: keys must be strings, got {shorten(k)}")
            out[k] = _convert(val_tp, v, f"{where}.{k}")
        return types.MappingProxyType(out)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    raise TypeError(f"unsupported schema type {tp!r} at {where}")  # a bug in the schema


def build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key.

    Parameters
    ----------
    cls : dataclass type
        The schema.
    data : mapping or None
        The raw YAML data (``None`` means "all defaults").
    where : str
        The key path of ``data`` used in messages, e.g. ``"arch.array"``; prefix it with
        the file name for errors that point into a file.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {shorten(key)}{did_you_mean(str(key), fields)}")
    kwargs = {}
    for name, f in fields.items():
        key_where = f"{where}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key_where}: required key is missing")
            continue
        value = _convert(hints[name], data[name], key_where)
        check = f.metadata.get("check")
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{key_where}: expected {problem}, got {shorten(data[name])}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as exc:  # cross-field checks in __post_init__
        raise ConfigError(f"{where}: {exc}") from None


#: Field names of each dataclass :func:`dump` met (None: not a dataclass); a sweep dumps
#: every design, so the per-type lookups are kept.
_DUMPED: dict[type, tuple[str, ...] | None] = {}
_PLAIN = frozenset((int, float, str, bool, type(None)))


def dump(obj: Any) -> Any:
    """Turn a schema instance back into plain YAML/JSON-able data."""
    cls = type(obj)
    if cls in _PLAIN:
        return obj
    if cls not in _DUMPED:
        _DUMPED[cls] = (tuple(f.name for f in dataclasses.fields(cls))
                        if dataclasses.is_dataclass(cls) else None)
    names = _DUMPED[cls]
    if names is not None:
        return {name: dump(getattr(obj, name)) for name in names}
    if isinstance(obj, Mapping):
        return {k: dump(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [dump(v) for v in obj]
    return obj


@record
class FieldDoc:
    """One documented key of a schema, for the generated config reference."""

    key: str
    type: str
    default: str
    doc: str


def describe_fields(cls: type, prefix: str) -> Iterator[FieldDoc]:
    """Yield every leaf key of schema ``cls`` with its type, default and documentation."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(tp):
            yield from describe_fields(tp, key)
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(dump(f.default_factory()))
        else:
            default = "(required)"
        yield FieldDoc(key, _describe_type(tp), default, f.metadata.get("doc", ""))
