"""Reading YAML and JSON input files, and ``KEY=VALUE`` overrides, with errors that name the
file.

Every YAML file sasim reads goes through :func:`read_yaml_mapping` and every ``KEY=VALUE``
option through :func:`parse_override`. The loader refuses, before building any Python
object (docs/config-reference.md, "Input limits"):

- files over :data:`MAX_FILE_BYTES`;
- nesting deeper than :data:`MAX_DEPTH` and documents whose nodes, with every alias expanded,
  number more than :data:`MAX_NODES` (an "alias bomb" is a few hundred bytes);
- duplicate keys in a mapping (YAML says keys are unique; PyYAML would keep the last one);
- integer literals longer than :data:`MAX_INT_DIGITS` characters, and integers that do not fit
  in a signed 64-bit word (named by their key path).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from simulator.errors import ConfigError, SasimError, shorten

__all__ = ["read_text", "open_input", "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_NODES",
           "MAX_INT_DIGITS", "INT64_MAX", "read_yaml_mapping", "load_yaml_text", "load_json_text", "check_numbers",
           "parse_override", "apply_override", "apply_overrides"]

#: Largest YAML file read (bytes).
MAX_FILE_BYTES = 64 << 20
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 64
#: Most nodes of one document, counting every alias as a copy of what it refers to.
MAX_NODES = 2_000_000
#: Longest integer literal (characters, sign and underscores included).
MAX_INT_DIGITS = 40
INT64_MAX = (1 << 63) - 1

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: A YAML 1.1 octal integer: 0 then octal digits (010, -0_17); 0 itself is decimal.
_OCTAL_1_1 = re.compile(r"[-+]?0[0-7_]+$")


class _LongInteger:
    """Stands for an integer literal too long to convert; :func:`check_numbers` reports it
    with its key path."""

    def __init__(self, chars: int) -> None:
        self.chars = chars


class _Refused(yaml.MarkedYAMLError):
    """A document the loader refuses (reported like a syntax error, with its position)."""


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader, refusing duplicate keys and over-long integer literals."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: the base class reports it
                if first is not None:
                    raise _Refused(None, None, f"duplicate key {shorten(key)} (first at line "
                                               f"{first.line + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        text = str(node.value)
        if ":" in text:  # YAML 1.1's base 60 (2:4 is 124): read as written, a string
            return self.construct_scalar(node)  # type: ignore[return-value]
        if _OCTAL_1_1.match(text):  # YAML 1.1 reads 010 as 8, which nobody writing 010 means
            raise _Refused(None, None, f"{shorten(text)}: an integer with a leading zero "
                                       f"(YAML 1.1 would read it as octal); write it without "
                                       f"the leading zero", node.start_mark)
        if len(text) > MAX_INT_DIGITS:
            return _LongInteger(len(text))  # type: ignore[return-value]
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: Any) -> float:
        if ":" in str(node.value):  # base 60 again (1:30.5)
            return self.construct_scalar(node)  # type: ignore[return-value]
        return super().construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)


def _check_events(text: str) -> None:
    """Walk the parser's events (no objects built) and refuse deep or alias-bombed documents."""
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, depth below it)
    stack: list[list[Any]] = []  # per open collection: [anchor, nodes, max depth below]
    total = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.AliasEvent):
            if any(entry[0] == event.anchor for entry in stack):
                raise _Refused(None, None, f"alias *{shorten(event.anchor, 40)[1:-1]} refers to "
                                           f"a value that contains it (a recursive value)",
                               event.start_mark)
            nodes, depth = sizes.get(event.anchor, (1, 0))
        elif isinstance(event, yaml.ScalarEvent):
            nodes, depth = 1, 0
            if event.anchor:
                sizes[event.anchor] = (1, 0)
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1, 0])
            if len(stack) > MAX_DEPTH:
                raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep",
                               event.start_mark)
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes, depth = stack.pop()
            depth += 1
            if anchor:
                sizes[anchor] = (nodes, depth)
        else:
            continue
        if stack:
            stack[-1][1] += nodes
            stack[-1][2] = max(stack[-1][2], depth)
            if len(stack) + depth > MAX_DEPTH + 1:
                raise _Refused(None, None, f"nested more than {MAX_DEPTH} levels deep "
                                           f"(through aliases)", event.start_mark)
            if stack[-1][1] > MAX_NODES:
                raise _Refused(None, None, f"more than {MAX_NODES:,} values with aliases "
                                           f"expanded (an alias bomb?)", event.start_mark)
        else:
            total += nodes
            if total > MAX_NODES:
                raise _Refused(None, None, f"more than {MAX_NODES:,} values with aliases "
                                           f"expanded (an alias bomb?)", event.start_mark)


def check_numbers(data: Any, where: str, error: type[SasimError] = ConfigError) -> None:
    """Raise ``error`` naming the key path (``where.a.b[2]``) of an integer beyond 64 bits.

    ``data`` is a document that passed :func:`_check_events` (bounded size and depth).
    """
    stack = [(data, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, bool):
            continue
        if isinstance(node, _LongInteger):
            raise error(f"{at}: integer literal of {node.chars} characters does not fit in "
                        f"64 bits")
        if isinstance(node, int):
            if not -INT64_MAX - 1 <= node <= INT64_MAX:
                raise error(f"{at}: integer {shorten(node, 40)} does not fit in 64 bits")
        elif isinstance(node, dict):
            stack.extend((v, f"{at}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))


def load_yaml_text(text: str, where: str, error: type[SasimError] = ConfigError) -> Any:
    """Parse YAML ``text`` with the limits of this module; ``where`` prefixes messages."""
    if len(text) > MAX_FILE_BYTES:
        raise error(f"{where}: {len(text):,} characters of YAML, more than the "
                    f"{MAX_FILE_BYTES:,} sasim reads")
    try:
        _check_events(text)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a subclass of the safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        kind = "refused YAML" if isinstance(exc, _Refused) else "malformed YAML"
        raise error(f"{where}: {kind}: {at}{exc.problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{where}: malformed YAML: {exc}") from None
    except RecursionError:
        raise error(f"{where}: refused YAML: nested too deeply") from None
    check_numbers(data, where, error)
    return data


def open_input(path: str | Path) -> BinaryIO:
    """``path`` opened for reading in binary, without waiting for a writer: a named pipe
    (FIFO) that no process writes to reads as empty instead of blocking the open forever;
    one that has a writer is read as it comes (the descriptor blocks again once open)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: str | Path, what: str, error: type[SasimError] = ConfigError,
              limit: int = MAX_FILE_BYTES) -> str:
    """A text file's contents, read whole only when it holds at most ``limit`` bytes (also a
    device or a pipe, whose size ``stat`` does not tell); a bigger, missing, unreadable or
    non-UTF-8 file, or a named pipe no process writes to, raises ``error`` naming it and
    ``what`` it should be."""
    path = Path(path)
    try:
        with open_input(path) as fh:
            data = fh.read(limit + 1)
            if not data and stat.S_ISFIFO(os.fstat(fh.fileno()).st_mode):
                raise error(f"{path}: a named pipe that no process writes to, expected {what}")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path}: more than the {limit:,} bytes sasim reads from {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({what}): {exc.reason} at byte "
                    f"{exc.start:,}") from None


def read_yaml_mapping(path: str | Path, error: type[SasimError] = ConfigError) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping.

    Raises ``error`` (a :class:`SasimError` subclass) with the file name and, for a syntax
    error or a refused document, the line and column (an integer beyond 64 bits: its key path).
    """
    path = Path(path)
    text = read_text(path, "a YAML file", error)
    data = load_yaml_text(text, str(path), error)
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _json_int(text: str) -> Any:
    return _LongInteger(len(text)) if len(text) > MAX_INT_DIGITS else int(text)


def load_json_text(text: str, where: str, error: type[SasimError] = ConfigError) -> Any:
    """Parse JSON ``text`` (strict: no NaN or Infinity), refusing deep nesting, over-long
    integer literals and integers beyond 64 bits; ``where`` prefixes every message."""
    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:  # refused as YAML refuses it: the last would silently win
                raise ValueError(f"duplicate key {shorten(key)}")
            out[key] = value
        return out

    try:
        data = json.loads(text, parse_int=_json_int, parse_constant=constant,
                          object_pairs_hook=unique)
    except RecursionError:
        raise error(f"{where}: refused JSON: nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise error(f"{where}: not valid JSON ({shorten(str(exc))[1:-1]})") from None
    depth_check = [(data, 0)]
    while depth_check:
        node, depth = depth_check.pop()
        if depth > MAX_DEPTH:
            raise error(f"{where}: refused JSON: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            depth_check.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            depth_check.extend((v, depth + 1) for v in node)
    check_numbers(data, where, error)
    return data


def parse_override(text: str, flag: str = "--set", dotted: bool = True
                   ) -> tuple[tuple[str, ...], Any]:
    """Split ``"array.rows=32"`` into its key path and its value, read as YAML.

    The one ``KEY=VALUE`` parser of sasim (``--set``, ``--data``, sweep axes). The value is a
    YAML scalar or flow collection read with the limits of :func:`load_yaml_text`; text that is
    not valid YAML is taken as a plain string. ``flag`` names the option in messages;
    ``dotted=False`` keeps the key whole (one level).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes the locale did not decode (Python keeps surrogates)
        raise ConfigError(f"{flag} {shorten(text)}: not UTF-8 text") from None
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = tuple(key.split(".")) if dotted else (key,)
    if not sep or not key or any(not part for part in parts):
        example = "array.rows=32" if dotted else "seed=1"
        raise ConfigError(f"{flag} {shorten(text)}: expected KEY=VALUE, e.g. {example}")
    if not raw.strip():
        return parts, ""
    value = _override_value(raw, f"{flag} {key}")
    return parts, copy.deepcopy(value) if isinstance(value, list | dict) else value


@functools.lru_cache(maxsize=4096)
def _override_value(raw: str, where: str) -> Any:
    """The value of one override (cached: a sweep applies the same texts many times)."""
    try:
        _check_events(raw)
        value = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a subclass of the safe loader
    except _Refused as exc:
        raise ConfigError(f"{where}: refused value: {exc.problem}") from None
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"{where}: refused value: nested too deeply") from None
    check_numbers(value, where)
    return value


def apply_override(data: Mapping[str, Any], path: Iterable[str], value: Any,
                   flag: str = "--set") -> dict[str, Any]:
    """Return a copy of ``data`` with ``value`` placed at ``path`` (creating mappings).

    Only the mappings along ``path`` are copied; the rest is shared with ``data``.
    """
    path = tuple(path)
    out = dict(data)
    node = out
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{flag} {'.'.join(path)}: '{'.'.join(path[: i + 1])}' is "
                              f"{shorten(child, 60)}, not a mapping")
        node[part] = child = dict(child)
        node = child
    node[path[-1]] = value
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[tuple[tuple[str, ...], Any]],
                    flag: str = "--set") -> dict[str, Any]:
    """Apply every ``(key path, value)`` of ``overrides`` in order; validation is the caller's,
    once, on the result (overrides that must change together are never checked alone)."""
    out = dict(data)
    for path, value in overrides:
        out = apply_override(out, path, value, flag)
    return out
