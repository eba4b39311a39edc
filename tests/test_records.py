"""simulator.records.record behaves as dataclasses.dataclass(frozen=True) does."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.records import record


def _pair():
    body = {"__annotations__": {"a": "int", "b": "str", "c": "tuple", "hidden": "int"},
            "c": (), "hidden": dataclasses.field(default=0, compare=False, repr=False)}
    mine = record(type("Point", (), dict(body)))
    theirs = dataclasses.dataclass(frozen=True)(type("Point", (), dict(body)))
    return mine, theirs


MINE, THEIRS = _pair()
values = st.tuples(st.integers(-3, 3), st.sampled_from(["x", "y"]),
                   st.tuples(st.integers(0, 2)), st.integers(0, 2))


@given(values, values)
def test_eq_hash_repr_as_dataclasses(u, v):
    m1, m2, t1, t2 = MINE(*u), MINE(*v), THEIRS(*u), THEIRS(*v)
    assert (m1 == m2) == (t1 == t2)
    assert (hash(m1) == hash(m2)) == (hash(t1) == hash(t2)) or not (t1 == t2)
    assert hash(m1) == hash(t1)
    assert repr(m1) == repr(t1)
    assert m1 != t1  # another class, as dataclasses compare


def test_frozen_replace_and_own_methods():
    m = MINE(1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.a = 2
    assert dataclasses.replace(m, a=2) == MINE(2, "x")

    @record
    class Own:
        x: int

        def __repr__(self) -> str:
            return "own"

    assert repr(Own(1)) == "own" and Own(1) == Own(1) and hash(Own(1)) == hash(Own(1))


def _twins(body: dict, bases: tuple = ()):
    """The same class body as a record and as dataclasses' frozen dataclass."""
    return (record(type("Thing", bases, dict(body))),
            dataclasses.dataclass(frozen=True)(type("Thing", bases, dict(body))))


def test_init_as_dataclasses_with_defaults_factories_and_post_init():
    def post(self):
        object.__setattr__(self, "derived", self.a * 2)

    body = {"__annotations__": {"a": "int", "b": "int", "c": "list", "d": "int",
                                "e": "dict", "derived": "int"},
            "b": 5, "c": dataclasses.field(default_factory=lambda: [1]),
            "d": dataclasses.field(init=False, default=9),
            "e": dataclasses.field(init=False, default_factory=dict),
            "derived": dataclasses.field(init=False), "__post_init__": post}
    mine, theirs = _twins(body)
    for args, kwargs in [((1,), {}), ((1, 2), {}), ((1,), {"c": [3]}), ((), {"a": 4, "b": 0})]:
        m, t = mine(*args, **kwargs), theirs(*args, **kwargs)
        assert repr(m) == repr(t)
        assert (m.d, m.e, m.derived) == (t.d, t.e, t.derived)
    assert mine(1).c is not mine(1).c  # a fresh list from the factory each time
    for bad_args, bad_kwargs in [((), {}), ((1, 2, [3], 4), {}), ((1,), {"d": 2})]:
        with pytest.raises(TypeError) as mine_error:
            mine(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError) as their_error:
            theirs(*bad_args, **bad_kwargs)
        assert str(mine_error.value) == str(their_error.value)


@record
class Base:
    a: int = 1


@dataclasses.dataclass(frozen=True)
class Plugin(Base):  # a plug-in's options deriving from PEOptions
    b: int = 2


@record
class Again(Base):
    c: int = 3


def test_frozen_dataclasses_derive_from_records_and_records_from_records():
    assert repr(Plugin(5)) == "Plugin(a=5, b=2)" and repr(Again()) == "Again(a=1, c=3)"
    for obj in (Base(), Plugin(), Again()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.a = 0
        with pytest.raises(dataclasses.FrozenInstanceError):
            del obj.a
        assert pickle.loads(pickle.dumps(obj)) == obj
    with pytest.raises(TypeError, match="non-frozen"):
        dataclasses.dataclass(type("Mutable", (Base,), {}))


def test_unsupported_fields_are_refused():
    with pytest.raises(TypeError, match="kw_only"):
        record(type("K", (), {"__annotations__": {"a": "int"},
                              "a": dataclasses.field(kw_only=True)}))
    with pytest.raises(TypeError, match="InitVar"):
        record(type("I", (), {"__annotations__": {"a": dataclasses.InitVar[int]}}))


def test_fields_named_like_the_generated_code_s_helpers():
    """A field may be called anything a dataclass field may (the generated ``__init__``'s
    own names cannot be shadowed)."""
    body = {"__annotations__": {"_set": "int", "_FACTORY": "list", "names": "int"},
            "_FACTORY": dataclasses.field(default_factory=list), "names": 3}
    mine, theirs = _twins(body)
    assert repr(mine(1)) == repr(theirs(1)) and repr(mine(1, [2], 4)) == repr(theirs(1, [2], 4))
