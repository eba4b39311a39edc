"""simulator.records.record behaves as dataclasses.dataclass(frozen=True) does."""

from __future__ import annotations

import dataclasses

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
