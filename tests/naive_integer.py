"""Slow, obviously-correct I-BERT integer-only ops, element by element on Python ints
(the reference of simulator/hw/integer_ops.py; docs/transformers.md)."""

from __future__ import annotations

import math

LN2 = math.log(2.0)
PRECISION_BITS = 8
OUTPUT_BITS = 16


def naive_i_exp(q: int, scale: float) -> int:
    """exp(q * scale) for q <= 0: z = floor(-q / q_ln2), p = q + z q_ln2, then
    ((p + q_b)^2 + q_c) / 2^z."""
    q_ln2 = max(1, math.floor(LN2 / scale))
    z = (-q) // q_ln2
    p = q + z * q_ln2
    q_b = math.floor(1.353 / scale)
    q_c = math.floor(0.344 / (0.3585 * scale * scale))
    return ((p + q_b) ** 2 + q_c) >> min(z, 62)


def naive_i_softmax(row: list[int], scale: float) -> list[int]:
    row = [v << PRECISION_BITS for v in row]
    scale = scale / (1 << PRECISION_BITS)
    top = max(row)
    e = [naive_i_exp(v - top, scale) for v in row]
    total = max(sum(e), 1)
    return [(v << OUTPUT_BITS) // total for v in e]


def naive_i_gelu(q: int, scale: float) -> int:
    q <<= PRECISION_BITS
    scale = scale / (1 << PRECISION_BITS) / math.sqrt(2.0)
    q_b = math.floor(-1.769 / scale)
    q_c = math.floor(1.0 / (-0.2888 * scale * scale))
    clipped = min(abs(q), -q_b)
    sign = (q > 0) - (q < 0)
    erf = sign * ((clipped + q_b) ** 2 + q_c)
    one = math.floor(1.0 / (-0.2888 * scale * scale))
    return q * (erf + one)


def naive_i_silu(q: int, scale: float) -> int:
    q <<= PRECISION_BITS
    scale = scale / (1 << PRECISION_BITS)
    e = naive_i_exp(-abs(q), scale)
    one = math.floor(1.0 / (0.3585 * scale * scale))
    sigmoid = ((one if q >= 0 else e) << OUTPUT_BITS) // max(one + e, 1)
    return q * sigmoid


def naive_isqrt(n: int) -> int:
    return math.isqrt(n)


def naive_norm(row: list[int], centre: bool) -> list[int]:
    n = len(row)
    mean = sum(row) // n if centre else 0
    centred = [v - mean for v in row]
    std = naive_isqrt(sum(v * v for v in centred) // n)
    return [(v << OUTPUT_BITS) // max(std, 1) for v in centred]
