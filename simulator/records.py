"""Frozen dataclasses that share their comparison, hash and repr (docs/performance.md).

sasim's configs, layers, plans and results are frozen dataclasses. For each one,
:func:`dataclasses.dataclass` compiles six methods from generated source when its module is
imported; with about seventy of them on a run's import path that was 70 ms of a 0.35 s
start-up. :func:`record` is ``dataclasses.dataclass(frozen=True)`` whose ``__eq__``,
``__hash__`` and ``__repr__`` are three functions shared by every record instead of three
compiled per class; they behave as the generated ones do (fields with ``compare=False`` or
``repr=False`` are left out, a record equals only a record of its own class). ``__init__``
and the frozen ``__setattr__``/``__delattr__`` are still the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar


__all__ = ["record"]

_T = TypeVar("_T")

#: Per class: names of the fields compared and hashed, and of the fields shown by repr.
_NAMES: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _names(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names = _NAMES.get(cls)
    if names is None:
        fields = dataclasses.fields(cls)
        names = _NAMES[cls] = (tuple(f.name for f in fields if f.compare),
                               tuple(f.name for f in fields if f.repr))
    return names


def _values(self: Any) -> tuple:
    return tuple([getattr(self, name) for name in _names(type(self))[0]])


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _names(type(self))[1])
    return f"{type(self).__qualname__}({shown})"


def record(cls: type[_T]) -> type[_T]:
    """``@dataclasses.dataclass(frozen=True)`` with the shared ``__eq__``, ``__hash__`` and
    ``__repr__`` (a class that defines its own keeps it)."""
    own = {name: name in cls.__dict__ for name in ("__eq__", "__hash__", "__repr__")}
    cls = dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
    for name, method in (("__eq__", _eq), ("__hash__", _hash), ("__repr__", _repr)):
        if not own[name]:
            setattr(cls, name, method)
    return cls
