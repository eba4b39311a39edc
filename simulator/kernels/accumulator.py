"""A GEMM whose running sums are kept in a narrow number format, PE-step by PE-step.

The rules are docs/hardware-spec.md §8. Each output's PE feeds its accumulator one PE-step
at a time, in the order the array feeds it (``sched``, as in the register-level reference
array): the step's partial sum comes from the PE's rule (:func:`pe_step`, or the plain
product for the dense rule), is quantised to the product format (float) and added to the
running sum, which is quantised to its format after every addition. With chunking, every
``chunk`` steps the running sum is added into a second, wider accumulator and restarts at 0.

Values are integers in units of one product (docs/accumulators.md explains why a format's
representable values on integer sums are integers), held in int64; infinities and NaN are
sentinels beyond any sum (:data:`POS_INF`, :data:`NEG_INF`, :data:`NAN`).

A format is an int64 array (see :data:`FMT_FIELDS`):
``[kind, bits, overflow, mantissa, emin, emax, rounding, underflow]`` where ``kind`` is
:data:`KIND_INT` or :data:`KIND_FLOAT`; ``emin``/``emax`` are the exponents of the smallest
and the largest normal value (1 - bias and 2^e - 2 - bias).

Kernels here take arrays and integers only and import nothing from the rest of the package.
"""

from __future__ import annotations

import numpy as np

from simulator.kernels.jit import njit
from simulator.kernels.reference_array import RULE_DENSE, pe_step

__all__ = ["KIND_INT", "KIND_FLOAT", "OVERFLOW_WRAP", "OVERFLOW_SATURATE", "OVERFLOW_INF",
           "ROUND_NEAREST_EVEN", "ROUND_FLOOR", "UNDERFLOW_FLUSH", "UNDERFLOW_KEEP",
           "POS_INF", "NEG_INF", "NAN", "FMT_FIELDS", "quantise", "add", "accumulate_gemm",
           "EVENT_OVERFLOW", "EVENT_UNDERFLOW", "EVENT_SWAMPING"]

KIND_INT = 0
KIND_FLOAT = 1
OVERFLOW_WRAP = 0
OVERFLOW_SATURATE = 1
OVERFLOW_INF = 2
ROUND_NEAREST_EVEN = 0
ROUND_FLOOR = 1
UNDERFLOW_FLUSH = 0
UNDERFLOW_KEEP = 1
#: Sentinels of +inf, -inf and NaN (no finite sum of 8-bit products comes near 2**62).
POS_INF = 1 << 62
NEG_INF = -(1 << 62)
NAN = -(1 << 63)
#: The fields of a format array, in order.
FMT_FIELDS = ("kind", "bits", "overflow", "mantissa", "emin", "emax", "rounding", "underflow")
#: Event counter indices.
EVENT_OVERFLOW = 0
EVENT_UNDERFLOW = 1
EVENT_SWAMPING = 2


@njit(inline="always")
def _exponent_fast(a):
    """floor(log2 a) for 0 < a < 2**62, by halving the search."""
    e = 0
    if a >= (1 << 32):
        a >>= 32
        e += 32
    if a >= (1 << 16):
        a >>= 16
        e += 16
    if a >= (1 << 8):
        a >>= 8
        e += 8
    if a >= (1 << 4):
        a >>= 4
        e += 4
    if a >= (1 << 2):
        a >>= 2
        e += 2
    if a >= 2:
        e += 1
    return e


@njit(inline="always")
def _quantise_int(x, fmt, events):
    bits = fmt[1]
    if bits >= 63:
        return x
    hi = (1 << (bits - 1)) - 1
    lo = -(1 << (bits - 1))
    if lo <= x <= hi:
        return x
    events[EVENT_OVERFLOW] += 1
    if fmt[2] == OVERFLOW_WRAP:
        return ((x - lo) & ((1 << bits) - 1)) + lo
    return hi if x > hi else lo


@njit(inline="always")
def _quantise_float(x, fmt, events):
    if x == 0:
        return x
    m = fmt[3]
    emin = fmt[4]
    emax = fmt[5]
    negative = x < 0
    a = -x if negative else x
    e = _exponent_fast(a)
    if e < emin:  # below the smallest normal value
        events[EVENT_UNDERFLOW] += 1
        if fmt[7] == UNDERFLOW_FLUSH:
            return 0
        shift = emin - m  # the subnormal spacing
    else:
        shift = e - m
    if shift > 0:
        step = 1 << shift
        q = a >> shift
        rest = a - (q << shift)
        if fmt[6] == ROUND_NEAREST_EVEN:
            half = step >> 1
            if rest > half or (rest == half and (q & 1) == 1):
                q += 1
        elif negative and rest > 0:  # floor of a negative value: the magnitude rounds up
            q += 1
        a = q << shift
    if emax < 61:
        largest = ((1 << (m + 1)) - 1) << (emax - m)
        if a > largest:
            events[EVENT_OVERFLOW] += 1
            if fmt[2] == OVERFLOW_INF:
                return NEG_INF if negative else POS_INF
            a = largest
    return -a if negative else a


@njit
def quantise(x, fmt, events):
    """``x`` (an int64 sum, or an infinity/NaN sentinel) in format ``fmt``; events counted."""
    if x == NAN or x == POS_INF or x == NEG_INF:
        return x
    if fmt[0] == KIND_INT:
        return _quantise_int(x, fmt, events)
    return _quantise_float(x, fmt, events)


@njit(inline="always")
def _swamped(acc, p, fmt):
    """Whether addend ``p`` is non-zero and smaller than half an ulp of ``acc``."""
    if fmt[0] == KIND_INT or p == 0 or acc == 0:
        return False
    if acc == NAN or acc == POS_INF or acc == NEG_INF:
        return False
    if p == NAN or p == POS_INF or p == NEG_INF:
        return False
    a = -acc if acc < 0 else acc
    e = _exponent_fast(a)
    if e < fmt[4]:
        e = fmt[4]
    ulp_exp = e - fmt[3]
    if ulp_exp < 1:
        return False
    mag = -p if p < 0 else p
    return mag < (1 << (ulp_exp - 1))


@njit
def add(acc, p, fmt, events):
    """``Q(acc + p)`` in format ``fmt`` (IEEE rules for the sentinels); events counted."""
    if _swamped(acc, p, fmt):
        events[EVENT_SWAMPING] += 1
    if acc == NAN or p == NAN:
        return NAN
    acc_inf = acc == POS_INF or acc == NEG_INF
    p_inf = p == POS_INF or p == NEG_INF
    if acc_inf and p_inf:
        return acc if acc == p else NAN
    if acc_inf:
        return acc
    if p_inf:
        return p
    if fmt[0] == KIND_INT:
        if fmt[1] >= 63:
            return acc + p
        return _quantise_int(acc + p, fmt, events)
    return _quantise_float(acc + p, fmt, events)


@njit
def accumulate_gemm(A, BT, sched, rule, params, prod_fmt, acc_fmt, outer_fmt, chunk,
                    outputs, events, lo, hi):
    """Run rows ``lo:hi`` of A (M, Kd) . B (Kd, N) with every output's sum in a narrow
    format (serial and GIL-free: callers run row blocks on threads).

    Parameters
    ----------
    A : int64 (M, Kd); BT : int64 (N, Kd), B transposed.
    sched : int64 (T, S): the K index thread t feeds at step s, or -1 (operand 0).
    rule, params : the PE's rule (:mod:`simulator.kernels.reference_array`); for
        ``RULE_DENSE`` the product is taken directly.
    prod_fmt : the products' format (a float: Q_prod), or kind -1: products enter as they are.
    acc_fmt : the running sum's format.
    outer_fmt : the second accumulator's format (used when ``chunk`` > 0).
    chunk : steps per chunk; 0: no chunking.
    outputs : int64 (M, N), filled with the final sums (sentinels as they are).
    events : int64 (3,), incremented: overflow, underflow and swamping events.
    lo, hi : the rows of A to run.
    """
    n_n = BT.shape[0]
    threads = sched.shape[0]
    steps = sched.shape[1]
    counts = np.zeros(3, np.int64)
    for m in range(lo, hi):
        acts = np.zeros(threads, np.int64)
        wgts = np.zeros(threads, np.int64)
        for n in range(n_n):
            acc = 0
            outer = 0
            in_chunk = 0
            for s in range(steps):
                if rule == RULE_DENSE:
                    k = sched[0, s]
                    p = A[m, k] * BT[n, k] if k >= 0 else 0
                else:
                    for t in range(threads):
                        k = sched[t, s]
                        acts[t] = A[m, k] if k >= 0 else 0
                        wgts[t] = BT[n, k] if k >= 0 else 0
                    p, _ = pe_step(rule, params, acts, wgts)
                if prod_fmt[0] == KIND_FLOAT:
                    p = _quantise_float(p, prod_fmt, counts)
                acc = add(acc, p, acc_fmt, counts)
                if chunk > 0:
                    in_chunk += 1
                    if in_chunk == chunk or s == steps - 1:
                        outer = add(outer, acc, outer_fmt, counts)
                        acc = 0
                        in_chunk = 0
            outputs[m, n] = outer if chunk > 0 else acc
    for i in range(3):
        events[i] += counts[i]
