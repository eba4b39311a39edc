"""Slow, obviously-correct pure-Python twin of the narrow accumulators (docs/hardware-spec.md
§8, docs/accumulators.md).

Plain Python ints and :class:`fractions.Fraction`; it shares no code with the package. The
format is described by its set of representable magnitudes: a float rounds with Python's own
``round`` of a Fraction (ties to even) or ``math.floor``; an int register is a range.
Per-step partial sums come from the naive PE twins (tests/naive.py, tests/naive_sparq.py),
one step at a time, in the order of docs/reference-array.md.
"""

from __future__ import annotations

import math
from fractions import Fraction

from naive import _fits_4x8_exactly, _signed_trim
from naive_sparq import _product

__all__ = ["NaiveFormat", "naive_accumulate", "naive_step_partials"]

INF = math.inf


class NaiveFormat:
    """One accumulator format: ``("int", bits, overflow)`` or
    ``("float", e, m, bias, rounding, underflow, overflow)``."""

    def __init__(self, kind, *args):
        self.kind = kind
        if kind == "int":
            self.bits, self.overflow = args
        else:
            self.e, self.m, self.bias, self.rounding, self.underflow, self.overflow = args
            self.min_normal = Fraction(2) ** (1 - self.bias)
            top = (1 << self.e) - 2 - self.bias
            self.largest = (2 - Fraction(1, 2 ** self.m)) * Fraction(2) ** top

    def ulp(self, x):
        """Spacing of the representable values at magnitude |x| (float formats)."""
        x = abs(x)
        exp = 1 - self.bias
        if x >= self.min_normal:
            exp = 0
            while Fraction(2) ** (exp + 1) <= x:
                exp += 1
            while Fraction(2) ** exp > x:
                exp -= 1
        return Fraction(2) ** (exp - self.m)

    def quantise(self, x, events):
        """x (int, Fraction or +-inf, or None for NaN) in this format; events counted."""
        if x is None or x in (INF, -INF):
            return x
        if self.kind == "int":
            lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
            if lo <= x <= hi:
                return x
            events["overflow"] += 1
            if self.overflow == "wrap":
                return (x - lo) % (2 ** self.bits) + lo
            return max(lo, min(hi, x))
        if x == 0:
            return 0
        tiny = abs(x) < self.min_normal
        if tiny:
            if self.underflow == "flush":
                events["underflow"] += 1
                return 0
            step = Fraction(2) ** (1 - self.bias - self.m)
        else:
            step = self.ulp(x)
        units = Fraction(x) / step
        if self.rounding == "nearest_even":
            units = round(units)
        else:
            units = math.floor(units)
        y = units * step
        if tiny and y != x:  # an inexact subnormal
            events["underflow"] += 1
        if abs(y) > self.largest:
            events["overflow"] += 1
            if self.overflow == "inf":
                return INF if y > 0 else -INF
            y = self.largest if y > 0 else -self.largest
        return y

    def add(self, acc, p, events):
        """Q(acc + p), with swamping counted and IEEE rules for inf and NaN (None)."""
        if (self.kind == "float" and p not in (0, None, INF, -INF)
                and acc not in (0, None, INF, -INF) and abs(p) < self.ulp(acc) / 2):
            events["swamping"] += 1
        if acc is None or p is None:
            return None
        if acc in (INF, -INF) and p in (INF, -INF):
            return acc if acc == p else None
        if acc in (INF, -INF):
            return acc
        if p in (INF, -INF):
            return p
        return self.quantise(acc + p, events)


def naive_step_partials(rule, A, B, m, n, params):
    """The partial sum of each PE-step of output (m, n), in step order.

    ``rule``: ``dense`` (one product per K, in order), ``sysmt`` (params: sched as T lists,
    policy, rounding; the threads' products summed exactly), ``sparq`` (params: window bits,
    options, rounding; adjacent pairs (2s, 2s+1)).
    """
    kd = len(B)
    if rule == "dense":
        return [int(A[m][k]) * int(B[k][n]) for k in range(kd)]
    if rule == "sysmt":
        sched, policy, rounding = params
        out = []
        for s in range(len(sched[0])):
            pairs = [(int(A[m][k]), int(B[k][n])) if k >= 0 else (0, 0)
                     for k in (int(row[s]) for row in sched)]
            active = [(a, w) for a, w in pairs if a != 0 and w != 0]
            total = 0
            for a, w in active:
                if len(active) == 2:
                    if not (policy == "sparsity_aware" and _fits_4x8_exactly(a, w)):
                        a = _signed_trim(a, rounding)
                elif len(active) > 2:
                    a, w = _signed_trim(a, rounding), _signed_trim(w, rounding)
                total += a * w
            out.append(total)
        return out
    if rule == "sparq":
        window_bits, options, rounding = params
        out = []
        for s in range((kd + 1) // 2):
            ks = [k for k in (2 * s, 2 * s + 1) if k < kd]
            pair = [(int(A[m][k]), int(B[k][n])) for k in ks] + [(0, 0)] * (2 - len(ks))
            (a0, w0), (a1, w1) = pair
            total = 0
            for a, partner, w in ((a0, a1, w0), (a1, a0, w1)):
                total += _product(a, partner, (window_bits, options), rounding)[0] * w
            out.append(total)
        return out
    raise ValueError(rule)


def naive_accumulate(partials, product, running, outer, chunk):
    """One output: its step partial sums through the formats (``product`` None: products
    enter exactly; ``chunk`` None: no second accumulator). Returns (value, events); the
    value is an int (+-inf as +-2**62, NaN as 0)."""
    events = {"overflow": 0, "underflow": 0, "swamping": 0}
    acc, total, count = 0, 0, 0
    for i, p in enumerate(partials):
        if product is not None:
            p = product.quantise(p, events)
        acc = running.add(acc, p, events)
        if chunk:
            count += 1
            if count == chunk or i == len(partials) - 1:
                total = outer.add(total, acc, events)
                acc, count = 0, 0
    value = total if chunk else acc
    if value is None:
        return 0, events
    if value in (INF, -INF):
        return (2 ** 62 if value > 0 else -(2 ** 62)), events
    assert Fraction(value).denominator == 1, value
    return int(value), events
