"""Frozen dataclasses that share their methods and compile their ``__init__`` on first use
(docs/performance.md, "Start-up").

sasim's configs, layers, plans and results are frozen dataclasses. For each one,
:func:`dataclasses.dataclass` compiles six methods from generated source when its module is
imported (``__init__``, ``__eq__``, ``__hash__``, ``__repr__`` and the frozen
``__setattr__``/``__delattr__``); with about seventy of them on a run's import path that
was 70 ms of a 0.35 s start-up. :func:`record` keeps the dataclass (its fields,
:func:`dataclasses.fields`, :func:`dataclasses.replace`) but compiles none of them when the
class is made:

- ``__eq__``, ``__hash__``, ``__repr__``, ``__setattr__`` and ``__delattr__`` are functions
  shared by every record; they behave as the generated ones do (fields with
  ``compare=False`` or ``repr=False`` are left out, a record equals only a record of its own
  class, assigning or deleting any attribute raises :class:`dataclasses.FrozenInstanceError`);
- ``__init__`` is compiled the first time the class is instantiated, as the dataclass's own
  would be (the fields in order, defaults, ``default_factory``, ``init=False`` fields, then
  ``__post_init__``), so a class a run never builds costs nothing.

A class that defines one of these methods itself keeps it. ``InitVar`` pseudo-fields and
``kw_only`` fields are not supported (refused when the class is made).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar


__all__ = ["record"]

_T = TypeVar("_T")

#: Per class: names of the fields compared and hashed, and of the fields shown by repr.
_NAMES: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}
#: The parameter default of a field made by its ``default_factory``.
_FACTORY = object()
#: Every class :func:`record` made.
_RECORDS: set[type] = set()


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


def _setattr(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _compile_init(cls: type) -> Any:
    """The ``__init__`` :func:`dataclasses.dataclass` would generate for the frozen ``cls``:
    the ``init`` fields as parameters in order (a default, or a ``default_factory`` called
    when the argument is left out), the other fields set from their default or factory,
    then ``__post_init__`` if the class has one."""
    # Names no field can shadow (a field is a parameter of the same name).
    names: dict[str, Any] = {"__record_set__": object.__setattr__,
                             "__record_factory__": _FACTORY}
    params, body = ["self"], []
    for f in dataclasses.fields(cls):
        default, factory = f.default, f.default_factory
        if factory is not dataclasses.MISSING:
            names[f"__record_factory_{f.name}__"] = factory
        if f.init:
            if factory is not dataclasses.MISSING:
                params.append(f"{f.name}=__record_factory__")
                value = (f"__record_factory_{f.name}__() if {f.name} is __record_factory__ "
                         f"else {f.name}")
            else:
                if default is not dataclasses.MISSING:
                    names[f"__record_default_{f.name}__"] = default
                    params.append(f"{f.name}=__record_default_{f.name}__")
                else:
                    params.append(f.name)
                value = f.name
        elif factory is not dataclasses.MISSING:
            value = f"__record_factory_{f.name}__()"
        elif default is not dataclasses.MISSING:
            names[f"__record_default_{f.name}__"] = default
            value = f"__record_default_{f.name}__"
        else:
            continue  # set by __post_init__, if at all
        body.append(f"    __record_set__(self, {f.name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__({', '.join(params)}):\n" + "\n".join(body or ["    pass"])
    exec(source, names)  # noqa: S102 - generated from the class's own field names
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def _lazy_init(cls: type) -> Any:
    """An ``__init__`` that compiles the class's own on its first call and replaces itself."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _compile_init(cls)
        type.__setattr__(cls, "__init__", init)
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _frozen(cls: type) -> bool:
    params = cls.__dict__.get("__dataclass_params__")
    return bool(params is not None and params.frozen)


def record(cls: type[_T]) -> type[_T]:
    """``@dataclasses.dataclass(frozen=True)`` with shared ``__eq__``, ``__hash__``,
    ``__repr__``, ``__setattr__`` and ``__delattr__``, and an ``__init__`` compiled on first
    use (a class that defines one of them keeps its own)."""
    methods = {"__eq__": _eq, "__hash__": _hash, "__repr__": _repr, "__setattr__": _setattr,
               "__delattr__": _delattr, "__init__": None}
    own = {name for name in methods if name in cls.__dict__}
    # Made as a plain dataclass (compiling nothing), then marked frozen, so that a frozen
    # dataclass may derive from it (a plug-in's options from PEOptions). dataclasses refuse
    # a plain class deriving from a frozen one: record bases are unmarked for the moment,
    # and a record deriving from another frozen dataclass is made frozen.
    frozen_bases = [base for base in cls.__mro__[1:] if _frozen(base)]
    ours = all(base in _RECORDS for base in frozen_bases)
    for base in frozen_bases if ours else ():
        base.__dataclass_params__.frozen = False  # type: ignore[attr-defined]
    try:
        cls = dataclasses.dataclass(init=False, eq=False, repr=False,
                                    frozen=bool(frozen_bases) and not ours)(cls)
    finally:
        for base in frozen_bases if ours else ():
            base.__dataclass_params__.frozen = True  # type: ignore[attr-defined]
    cls.__dataclass_params__.frozen = True  # type: ignore[attr-defined]
    _RECORDS.add(cls)
    pseudo = set(cls.__dataclass_fields__) - {f.name for f in dataclasses.fields(cls)}
    for name in pseudo:
        if isinstance(cls.__dataclass_fields__[name].type, dataclasses.InitVar) or \
                "InitVar" in str(cls.__dataclass_fields__[name].type):
            raise TypeError(f"record {cls.__qualname__}: InitVar field {name!r} is not "
                            f"supported")
    if any(f.kw_only for f in dataclasses.fields(cls)):
        raise TypeError(f"record {cls.__qualname__}: kw_only fields are not supported")
    for name, method in methods.items():
        if name not in own:
            type.__setattr__(cls, name, _lazy_init(cls) if method is None else method)
    return cls
