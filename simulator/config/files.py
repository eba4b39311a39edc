"""Reading YAML files and applying ``--set key=value`` overrides, with errors that name the file."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import ConfigError, SasimError

__all__ = ["read_yaml_mapping", "parse_override", "apply_override"]


def read_yaml_mapping(path: str | Path, error: type[SasimError] = ConfigError) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping.

    Raises ``error`` (a :class:`SasimError` subclass) with the file name and, for a syntax
    error, the line and column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise error(f"{path}: malformed YAML: {where}{exc.problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """Split ``"array.rows=32"`` into its key path and its YAML-parsed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. array.rows=32")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return tuple(key.split(".")), value


def apply_override(data: Mapping[str, Any], path: Iterable[str], value: Any) -> dict[str, Any]:
    """Return a deep copy of ``data`` with ``value`` placed at ``path`` (creating mappings)."""
    out = copy.deepcopy(dict(data))
    node = out
    path = tuple(path)
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(path)}: '{'.'.join(path[: i + 1])}' is not a mapping")
        node = child
    node[path[-1]] = value
    return out
