"""A GEMM whose running sums are kept in a narrow number format, PE-step by PE-step.

The rules are docs/hardware-spec.md §8. Each output's PE feeds its accumulator one PE-step
at a time, in the order the array feeds it (``sched``, as in the register-level reference
array): the step's partial sum comes from the PE's rule (:func:`pe_step`, or the plain
product for the dense rule), is quantised to the product format (float) and added to the
running sum, which is quantised to its format after every addition. With chunking, every
``chunk`` steps the running sum is added into a second, wider accumulator and restarts at 0.

Values are integers in units of one product (docs/accumulators.md explains why a format's
representable values on integer sums are integers), held in int64; infinities and NaN are
sentinels beyond any sum (:data:`POS_INF`, :data:`NEG_INF`, :data:`NAN`). Float formats
whose values fit run on 32-bit lanes instead (int32, or float32 when binary32 holds every
value exactly: ``accumulate_*_lanes``, one body for both, docs/performance.md,
"Narrow accumulators"), with the same values and events.

A format is an int64 array (see :data:`FMT_FIELDS`):
``[kind, bits, overflow, mantissa, emin, emax, rounding, underflow]`` where ``kind`` is
:data:`KIND_INT` or :data:`KIND_FLOAT`; ``emin``/``emax`` are the exponents of the smallest
and the largest normal value (1 - bias and 2^e - 2 - bias).

Kernels here take arrays and integers only and import nothing from the rest of the package.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from simulator.kernels.jit import njit
from simulator.kernels.reference_array import (POLICY_SPARSITY_AWARE, RULE_DENSE, _trim_signed,
                                               pe_step)

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


@intrinsic
def _leading_zeros(typingctx, x):
    """The count of leading zero bits of an int64 (LLVM's ctlz; x > 0 here)."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


@njit(inline="always")
def _exponent(a):
    """floor(log2 a) for 0 < a < 2**62."""
    return 63 - _leading_zeros(a)


@njit(inline="always")
def _is_special(x):
    return x == NAN or x == POS_INF or x == NEG_INF


@njit(inline="always")
def _q_int(x, bits, wrap):
    """(x in an int-``bits`` register, overflow event 0/1); bits >= 63: exact."""
    if bits >= 63:
        return x, 0
    hi = (1 << (bits - 1)) - 1
    lo = -(1 << (bits - 1))
    if lo <= x <= hi:
        return x, 0
    if wrap:
        return ((x - lo) & ((1 << bits) - 1)) + lo, 1
    return (hi if x > hi else lo), 1


@njit(inline="always")
def _q_float(x, m, emin, emax, nearest, keep, to_inf):
    """(x rounded to the float format, overflow event, underflow event) for a finite x."""
    if x == 0:
        return x, 0, 0
    negative = x < 0
    a = -x if negative else x
    e = _exponent(a)
    under = 0
    tiny = e < emin  # below the smallest normal value
    if tiny:
        if not keep:
            return 0, 0, 1
        shift = emin - m  # the subnormal spacing
    else:
        shift = e - m
    if shift > 0:
        rest = a & ((1 << shift) - 1)
        if nearest:  # ties to even: add half - 1, plus 1 when the kept part is odd
            q = (a + (1 << (shift - 1)) - 1 + ((a >> shift) & 1)) >> shift
        else:  # floor: a negative value's magnitude rounds up
            q = (a >> shift) + (1 if negative and rest > 0 else 0)
        if tiny and rest != 0:  # a subnormal result that is not exact
            under = 1
        a = q << shift
    if emax < 61:
        largest = ((1 << (m + 1)) - 1) << (emax - m)
        if a > largest:
            if to_inf:
                return (NEG_INF if negative else POS_INF), 1, under
            a = largest
            return (-a if negative else a), 1, under
    return (-a if negative else a), 0, under


@njit(inline="always")
def _quantise(x, fmt):
    """(x in format ``fmt``, overflow event, underflow event); sentinels pass through."""
    if _is_special(x):
        return x, 0, 0
    if fmt[0] == KIND_INT:
        v, o = _q_int(x, fmt[1], fmt[2] == OVERFLOW_WRAP)
        return v, o, 0
    return _q_float(x, fmt[3], fmt[4], fmt[5], fmt[6] == ROUND_NEAREST_EVEN,
                    fmt[7] == UNDERFLOW_KEEP, fmt[2] == OVERFLOW_INF)


@njit(inline="always")
def _swamped(acc, p, is_float, m, emin):
    """Whether addend ``p`` is non-zero and smaller than half an ulp of ``acc``."""
    if not is_float or p == 0 or acc == 0 or _is_special(acc) or _is_special(p):
        return 0
    a = -acc if acc < 0 else acc
    e = _exponent(a)
    if e < emin:
        e = emin
    ulp_exp = e - m
    if ulp_exp < 1:
        return 0
    mag = -p if p < 0 else p
    return 1 if mag < (1 << (ulp_exp - 1)) else 0


@njit(inline="always")
def _add(acc, p, kind, bits, wrap, m, emin, emax, nearest, keep, to_inf):
    """(Q(acc + p), overflow, underflow, swamping events) with IEEE rules for sentinels."""
    is_float = kind == KIND_FLOAT
    swamp = _swamped(acc, p, is_float, m, emin)
    if acc == NAN or p == NAN:
        return NAN, 0, 0, swamp
    acc_inf = acc == POS_INF or acc == NEG_INF
    p_inf = p == POS_INF or p == NEG_INF
    if acc_inf and p_inf:
        return (acc if acc == p else NAN), 0, 0, swamp
    if acc_inf:
        return acc, 0, 0, swamp
    if p_inf:
        return p, 0, 0, swamp
    if is_float:
        v, o, u = _q_float(acc + p, m, emin, emax, nearest, keep, to_inf)
        return v, o, u, swamp
    if bits >= 63:
        return acc + p, 0, 0, swamp
    v, o = _q_int(acc + p, bits, wrap)
    return v, o, 0, swamp


@njit
def quantise(x, fmt, events):
    """``x`` (an int64 sum, or an infinity/NaN sentinel) in format ``fmt``; events counted."""
    v, o, u = _quantise(x, fmt)
    events[EVENT_OVERFLOW] += o
    events[EVENT_UNDERFLOW] += u
    return v


@njit
def add(acc, p, fmt, events):
    """``Q(acc + p)`` in format ``fmt`` (IEEE rules for the sentinels); events counted."""
    v, o, u, w = _add(acc, p, fmt[0], fmt[1], fmt[2] == OVERFLOW_WRAP, fmt[3], fmt[4], fmt[5],
                      fmt[6] == ROUND_NEAREST_EVEN, fmt[7] == UNDERFLOW_KEEP,
                      fmt[2] == OVERFLOW_INF)
    events[EVENT_OVERFLOW] += o
    events[EVENT_UNDERFLOW] += u
    events[EVENT_SWAMPING] += w
    return v


@njit
def _active_steps(A, m, sched, steps_buf):
    """The steps where some thread of row ``m`` holds a non-zero activation, in order."""
    count = 0
    for s in range(sched.shape[1]):
        for t in range(sched.shape[0]):
            k = sched[t, s]
            if k >= 0 and A[m, k] != 0:
                steps_buf[count] = s
                count += 1
                break
    return count


@njit(checked=False)
def accumulate_dense(A, B, prod_fmt, acc_fmt, outer_fmt, chunk, outputs, events, lo, hi):
    """:func:`accumulate_gemm` for the dense rule with K in order (step s is K index s):
    per row, the steps run outermost and the N running sums side by side (B (Kd, N) read
    row by row), the same additions in the same order for every output."""
    n_n = B.shape[1]
    kd = A.shape[1]
    q_prod = prod_fmt[0] == KIND_FLOAT
    p_m, p_emin, p_emax = prod_fmt[3], prod_fmt[4], prod_fmt[5]
    p_near, p_keep, p_inf = (prod_fmt[6] == ROUND_NEAREST_EVEN,
                             prod_fmt[7] == UNDERFLOW_KEEP, prod_fmt[2] == OVERFLOW_INF)
    a_kind, a_bits, a_wrap = acc_fmt[0], acc_fmt[1], acc_fmt[2] == OVERFLOW_WRAP
    a_m, a_emin, a_emax = acc_fmt[3], acc_fmt[4], acc_fmt[5]
    a_near, a_keep, a_inf = (acc_fmt[6] == ROUND_NEAREST_EVEN, acc_fmt[7] == UNDERFLOW_KEEP,
                             acc_fmt[2] == OVERFLOW_INF)
    acc = np.zeros(n_n, np.int64)
    outer = np.zeros(n_n, np.int64)
    n_over = 0
    n_under = 0
    n_swamp = 0
    for m in range(lo, hi):
        acc[:] = 0
        outer[:] = 0
        for k in range(kd):
            x = A[m, k]
            # x == 0: every partial sum of the step is 0, nothing changes
            for n in range(n_n if x != 0 else 0):
                p = x * B[k, n]
                if p == 0:
                    continue
                if q_prod:
                    p, o, u = _q_float(p, p_m, p_emin, p_emax, p_near, p_keep, p_inf)
                    n_over += o
                    n_under += u
                v, o, u, w = _add(acc[n], p, a_kind, a_bits, a_wrap, a_m, a_emin, a_emax,
                                  a_near, a_keep, a_inf)
                acc[n] = v
                n_over += o
                n_under += u
                n_swamp += w
            if chunk > 0 and (k + 1) % chunk == 0:
                for n in range(n_n):
                    if acc[n] != 0:
                        outer[n] = add(outer[n], acc[n], outer_fmt, events)
                        acc[n] = 0
        if chunk > 0:
            for n in range(n_n):
                if acc[n] != 0:
                    outer[n] = add(outer[n], acc[n], outer_fmt, events)
                    acc[n] = 0
            outputs[m, :] = outer
        else:
            outputs[m, :] = acc
    _count_events(events, n_over, n_under, n_swamp)


@njit(checked=False)
def accumulate_gemm(A, BT, sched, rule, params, prod_fmt, acc_fmt, outer_fmt, chunk,
                    outputs, events, lo, hi):
    """Run rows ``lo:hi`` of A (M, Kd) . B (Kd, N) with every output's sum in a narrow
    format (serial and GIL-free: callers run row blocks on threads).

    A step whose partial sum is 0 changes nothing (adding 0 to a value of the format returns
    it, with no event), so only the steps with a non-zero activation are visited and the
    chunk boundaries are found from the step index.

    Parameters
    ----------
    A : int64 (M, Kd); BT : int64 (N, Kd), B transposed.
    sched : int64 (T, S): the K index thread t feeds at step s, or -1 (operand 0).
    rule, params : the PE's rule (:mod:`simulator.kernels.reference_array`); for
        ``RULE_DENSE`` the product is taken directly.
    prod_fmt : the products' format (a float: Q_prod), or kind -1: products enter as they are.
    acc_fmt : the running sum's format.
    outer_fmt : the second accumulator's format (used when ``chunk`` > 0).
    chunk : steps per chunk (>= 1); 0: no chunking.
    outputs : int64 (M, N), filled with the final sums (sentinels as they are).
    events : int64 (3,), incremented: overflow, underflow and swamping events.
    lo, hi : the rows of A to run.
    """
    n_n = BT.shape[0]
    threads = sched.shape[0]
    acts = np.zeros(threads, np.int64)
    wgts = np.zeros(threads, np.int64)
    active = np.empty(sched.shape[1], np.int64)
    # The formats as scalars, read once (the hot loop keeps them in registers).
    q_prod = prod_fmt[0] == KIND_FLOAT
    p_m, p_emin, p_emax = prod_fmt[3], prod_fmt[4], prod_fmt[5]
    p_near, p_keep, p_inf = (prod_fmt[6] == ROUND_NEAREST_EVEN,
                             prod_fmt[7] == UNDERFLOW_KEEP, prod_fmt[2] == OVERFLOW_INF)
    a_kind, a_bits, a_wrap = acc_fmt[0], acc_fmt[1], acc_fmt[2] == OVERFLOW_WRAP
    a_m, a_emin, a_emax = acc_fmt[3], acc_fmt[4], acc_fmt[5]
    a_near, a_keep, a_inf = (acc_fmt[6] == ROUND_NEAREST_EVEN, acc_fmt[7] == UNDERFLOW_KEEP,
                             acc_fmt[2] == OVERFLOW_INF)
    n_over = 0
    n_under = 0
    n_swamp = 0
    dense = rule == RULE_DENSE
    per_chunk = chunk if chunk > 0 else 1
    for m in range(lo, hi):
        n_active = _active_steps(A, m, sched, active)
        for n in range(n_n):
            acc = 0
            outer = 0
            current = -1
            for i in range(n_active):
                s = active[i]
                if dense:
                    k = sched[0, s]
                    p = A[m, k] * BT[n, k]
                else:
                    for t in range(threads):
                        k = sched[t, s]
                        acts[t] = A[m, k] if k >= 0 else 0
                        wgts[t] = BT[n, k] if k >= 0 else 0
                    p, _ = pe_step(rule, params, acts, wgts)
                if p == 0:
                    continue
                if chunk > 0:
                    block = s // per_chunk
                    if block != current:
                        if acc != 0:
                            outer = add(outer, acc, outer_fmt, events)
                            acc = 0
                        current = block
                if q_prod:
                    p, o, u = _q_float(p, p_m, p_emin, p_emax, p_near, p_keep, p_inf)
                    n_over += o
                    n_under += u
                acc, o, u, w = _add(acc, p, a_kind, a_bits, a_wrap, a_m, a_emin, a_emax,
                                    a_near, a_keep, a_inf)
                n_over += o
                n_under += u
                n_swamp += w
            if chunk > 0:
                if acc != 0:
                    outer = add(outer, acc, outer_fmt, events)
                outputs[m, n] = outer
            else:
                outputs[m, n] = acc
    _count_events(events, n_over, n_under, n_swamp)


@njit(inline="always")
def _q_float_flat(x, m, emin, largest, nearest, keep):
    """:func:`_q_float` without branches, for a format without infinities (``largest`` its
    largest finite value): (value, overflow, underflow) as integers 0/1, so a loop over
    columns can be vectorised."""
    negative = x < 0
    a = -x if negative else x
    e = 63 - _leading_zeros(a | 1)
    tiny = (e < emin) & (a != 0)
    shift = max(max(e, emin) - m, 0)
    step = 1 << shift
    rest = a & (step - 1)
    odd = (a >> shift) & 1
    up_nearest = (shift > 0) & ((rest > (step >> 1)) | ((rest == (step >> 1)) & (odd == 1)))
    up_floor = negative & (rest > 0)
    up = up_nearest if nearest else up_floor
    r = ((a >> shift) + up) << shift
    over = r > largest
    r = min(r, largest)
    flushed = tiny & (not keep)
    under = flushed | (tiny & (rest != 0))
    r = 0 if flushed else r
    return (-r if negative else r), int(over), int(under)


@njit(checked=False)
def accumulate_dense_flat(A, B, prod_fmt, acc_fmt, outer_fmt, chunk, outputs, events, lo, hi):
    """:func:`accumulate_dense` for formats without infinities (int, or a float that
    saturates): the column loop has no data-dependent branches, so it vectorises. The same
    values and events."""
    n_n = B.shape[1]
    kd = A.shape[1]
    p_m, p_emin, p_emax = prod_fmt[3], prod_fmt[4], prod_fmt[5]
    a_m, a_emin, a_emax = acc_fmt[3], acc_fmt[4], acc_fmt[5]
    nearest = acc_fmt[6] == ROUND_NEAREST_EVEN
    keep = acc_fmt[7] == UNDERFLOW_KEEP
    cap = (1 << 62) - 1
    p_largest = ((1 << (p_m + 1)) - 1) << (p_emax - p_m) if p_emax < 61 else cap
    a_largest = ((1 << (a_m + 1)) - 1) << (a_emax - a_m) if a_emax < 61 else cap
    is_int = acc_fmt[0] == KIND_INT
    bits = min(acc_fmt[1], 63)
    i_lo, i_hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    wrap = acc_fmt[2] == OVERFLOW_WRAP
    acc = np.zeros(n_n, np.int64)
    outer = np.zeros(n_n, np.int64)
    n_over = 0
    n_under = 0
    n_swamp = 0
    for m in range(lo, hi):
        acc[:] = 0
        outer[:] = 0
        for k in range(kd):
            x = A[m, k]
            if is_int:
                for n in range(n_n if x != 0 else 0):
                    v = acc[n] + x * B[k, n]
                    over = (v < i_lo) | (v > i_hi)
                    wrapped = ((v - i_lo) & ((1 << bits) - 1)) + i_lo
                    clamped = min(max(v, i_lo), i_hi)
                    acc[n] = wrapped if wrap else clamped
                    n_over += int(over)
                n_n_float = 0
            else:
                n_n_float = n_n if x != 0 else 0
            for n in range(n_n_float):
                p, o1, u1 = _q_float_flat(x * B[k, n], p_m, p_emin, p_largest, nearest, keep)
                s = acc[n]
                mag = -s if s < 0 else s
                ulp_exp = max(63 - _leading_zeros(mag | 1), a_emin) - a_m
                pmag = -p if p < 0 else p
                swamp = ((s != 0) & (p != 0) & (ulp_exp >= 1)
                         & (pmag < (1 << max(ulp_exp - 1, 0))))
                v, o2, u2 = _q_float_flat(s + p, a_m, a_emin, a_largest, nearest, keep)
                acc[n] = v
                n_over += o1 + o2
                n_under += u1 + u2
                n_swamp += int(swamp)
            if chunk > 0 and (k + 1) % chunk == 0:
                n_over, n_under, n_swamp = _flush_flat(acc, outer, outer_fmt, nearest, keep,
                                                       n_over, n_under, n_swamp)
        n_over, n_under, n_swamp = _finish_row(acc, outer, outputs[m], chunk, outer_fmt,
                                               nearest, keep, n_over, n_under, n_swamp)
    _count_events(events, n_over, n_under, n_swamp)


@njit(inline="always")
def _flat_add(s, p, is_int, i_lo, i_hi, bits, wrap, p_m, p_emin, p_largest, a_m, a_emin,
              a_largest, nearest, keep):
    """One step of a format without infinities, branch-free: (new sum, overflow, underflow,
    swamping) for running sum ``s`` and partial sum ``p`` (quantised first for a float)."""
    if is_int:
        v = s + p
        over = int((v < i_lo) | (v > i_hi))
        wrapped = ((v - i_lo) & ((1 << bits) - 1)) + i_lo
        clamped = min(max(v, i_lo), i_hi)
        return (wrapped if wrap else clamped), over, 0, 0
    q, o1, u1 = _q_float_flat(p, p_m, p_emin, p_largest, nearest, keep)
    mag = -s if s < 0 else s
    ulp_exp = max(63 - _leading_zeros(mag | 1), a_emin) - a_m
    qmag = -q if q < 0 else q
    swamp = (s != 0) & (q != 0) & (ulp_exp >= 1) & (qmag < (1 << max(ulp_exp - 1, 0)))
    v, o2, u2 = _q_float_flat(s + q, a_m, a_emin, a_largest, nearest, keep)
    return v, o1 + o2, u1 + u2, int(swamp)


@njit(inline="always")
def _sysmt_state(B, threads, rounding):
    """A SySMT kernel's per-GEMM state: the trimmed weights (4b x 4b collisions) and the
    per-thread buffers of :func:`_sysmt_parts`."""
    tw = np.empty_like(B)
    for k in range(B.shape[0]):
        for n in range(B.shape[1]):
            tw[k, n] = _trim_signed(B[k, n], rounding)
    return (tw, np.zeros(threads, np.int64), np.zeros(threads, np.int64),
            np.zeros(threads, np.bool_), np.zeros(threads, np.int64))


@njit(inline="always")
def _count_events(events, n_over, n_under, n_swamp):
    """Add a kernel's overflow, underflow and swamping counts to ``events``."""
    events[EVENT_OVERFLOW] += n_over
    events[EVENT_UNDERFLOW] += n_under
    events[EVENT_SWAMPING] += n_swamp


@njit(inline="always")
def _sysmt_parts(A, B, tw, sched, sparsity_aware, rounding, m, s, acts, trimmed, nibble_exact,
                 ks, parts):
    """Pass 1 of the SySMT kernels: the partial sums of row ``m``'s step ``s`` for the N
    columns into ``parts`` (the rule of docs/hardware-spec.md §3 as selects); returns N, or 0
    when every activation of the step is 0 (nothing to add)."""
    threads = sched.shape[0]
    n_n = B.shape[1]
    any_active = False
    for t in range(threads):
        k = sched[t, s]
        ks[t] = k if k >= 0 else 0
        a = A[m, k] if k >= 0 else 0
        acts[t] = a
        trimmed[t] = _trim_signed(a, rounding)
        x = -a if a < 0 else a
        nibble_exact[t] = (x >> 4) == 0 or (x & 0xF) == 0
        any_active = any_active or a != 0
    width = n_n if any_active else 0
    # pass 1: the step's partial sums of the N columns (the rule as selects)
    if threads == 2:  # two threads never collide three ways: unrolled
        a0, a1, k0, k1 = acts[0], acts[1], ks[0], ks[1]
        t0, t1 = trimmed[0], trimmed[1]
        e0, e1 = nibble_exact[0] & sparsity_aware, nibble_exact[1] & sparsity_aware
        for n in range(width):
            w0 = B[k0, n]
            w1 = B[k1, n]
            both = (a0 != 0) & (w0 != 0) & (a1 != 0) & (w1 != 0)
            x0 = a0 if (e0 | (sparsity_aware & (abs(w0) < 16))) else t0
            x1 = a1 if (e1 | (sparsity_aware & (abs(w1) < 16))) else t1
            parts[n] = (x0 * w0 + x1 * w1) if both else (a0 * w0 + a1 * w1)
        width_general = 0
    else:
        width_general = width
    for n in range(width_general):
        live = 0
        exact_sum = 0
        pair_sum = 0
        quad_sum = 0
        for t in range(threads):
            a = acts[t]
            w = B[ks[t], n] if a != 0 else 0
            on = (a != 0) & (w != 0)
            live += int(on)
            exact_sum += a * w
            keep_a = sparsity_aware & (nibble_exact[t] | (abs(w) < 16))
            pair_sum += (a if keep_a else trimmed[t]) * w
            quad_sum += trimmed[t] * tw[ks[t], n] if on else 0
        parts[n] = exact_sum if live <= 1 else (pair_sum if live == 2 else quad_sum)
    return width


@njit(checked=False)
def accumulate_sysmt_flat(A, B, sched, sparsity_aware, rounding, prod_fmt, acc_fmt,
                          outer_fmt, chunk, outputs, events, lo, hi):
    """:func:`accumulate_gemm` for the SySMT rule (docs/hardware-spec.md §3) and formats
    without infinities: per row, the steps run outermost and the N running sums side by
    side, each step's partial sum computed without data-dependent branches (the rule of
    :func:`simulator.kernels.reference_array.pe_step` for SySMT, written as selects). The
    same values and events as :func:`accumulate_gemm`."""
    n_n = B.shape[1]
    threads, steps = sched.shape
    tw, acts, trimmed, nibble_exact, ks = _sysmt_state(B, threads, rounding)
    p_m, p_emin, p_emax = prod_fmt[3], prod_fmt[4], prod_fmt[5]
    a_m, a_emin, a_emax = acc_fmt[3], acc_fmt[4], acc_fmt[5]
    nearest = acc_fmt[6] == ROUND_NEAREST_EVEN
    keep = acc_fmt[7] == UNDERFLOW_KEEP
    cap = (1 << 62) - 1
    p_largest = ((1 << (p_m + 1)) - 1) << (p_emax - p_m) if p_emax < 61 else cap
    a_largest = ((1 << (a_m + 1)) - 1) << (a_emax - a_m) if a_emax < 61 else cap
    is_int = acc_fmt[0] == KIND_INT
    bits = min(acc_fmt[1], 63) if is_int else 2
    i_lo, i_hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    wrap = acc_fmt[2] == OVERFLOW_WRAP
    acc = np.zeros(n_n, np.int64)
    outer = np.zeros(n_n, np.int64)
    parts = np.zeros(n_n, np.int64)
    n_over = 0
    n_under = 0
    n_swamp = 0
    for m in range(lo, hi):
        acc[:] = 0
        outer[:] = 0
        for s in range(steps):
            width = _sysmt_parts(A, B, tw, sched, sparsity_aware, rounding, m, s, acts, trimmed,
                                 nibble_exact, ks, parts)
            # pass 2: the N running sums (a loop that vectorises, as for the dense PE)
            for n in range(width):
                v, o, u, w_ = _flat_add(acc[n], parts[n], is_int, i_lo, i_hi, bits, wrap, p_m,
                                        p_emin, p_largest, a_m, a_emin, a_largest, nearest,
                                        keep)
                acc[n] = v
                n_over += o
                n_under += u
                n_swamp += w_
            if chunk > 0 and (s + 1) % chunk == 0:
                n_over, n_under, n_swamp = _flush_flat(acc, outer, outer_fmt, nearest, keep,
                                                       n_over, n_under, n_swamp)
        n_over, n_under, n_swamp = _finish_row(acc, outer, outputs[m], chunk, outer_fmt,
                                               nearest, keep, n_over, n_under, n_swamp)
    _count_events(events, n_over, n_under, n_swamp)


@njit(inline="always")
def _finish_row(acc, outer, out, chunk, outer_fmt, nearest, keep, n_over, n_under, n_swamp):
    """A row ends (int64 running sums): flushed through the second accumulator ``outer``
    (``chunk`` > 0) or written as they are into ``out``; returns the event counts."""
    if chunk > 0:
        n_over, n_under, n_swamp = _flush_flat(acc, outer, outer_fmt, nearest, keep, n_over,
                                               n_under, n_swamp)
        out[:] = outer
    else:
        out[:] = acc
    return n_over, n_under, n_swamp


@njit(inline="always")
def _flush_flat(acc, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp):
    """Add every running sum into the second accumulator and clear it (a chunk ends), for
    formats without infinities; returns the event totals."""
    is_int = outer_fmt[0] == KIND_INT
    bits = min(outer_fmt[1], 63) if is_int else 2
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    m, emin, emax = outer_fmt[3], outer_fmt[4], outer_fmt[5]
    largest = ((1 << (m + 1)) - 1) << (emax - m) if emax < 61 and not is_int else (1 << 62) - 1
    wrap = outer_fmt[2] == OVERFLOW_WRAP
    for n in range(acc.shape[0]):
        # Q_outer(acc) is exact (the second format is the wider one): one quantisation
        v, o, u, w = _flat_add(outer[n], acc[n], is_int, lo, hi, bits, wrap, m, emin,
                               largest, m, emin, largest, nearest, keep)
        outer[n] = v
        acc[n] = 0
        n_over += o
        n_under += u
        n_swamp += w
    return n_over, n_under, n_swamp


@intrinsic
def _leading_zeros32(typingctx, x):
    """The count of leading zero bits of an int32 (LLVM's ctlz; x > 0 here)."""
    sig = types.int32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


def _int32_op(method: str, doc: str):
    """An intrinsic ``(int32, int32) -> int32`` that is the one LLVM i32 instruction
    ``method`` of the IR builder: numba widens integer arithmetic and bitwise operations to
    64 bits, so the lane operations of the 32-bit kernels are written as these."""
    def typer(typingctx, x, y):
        def codegen(context, builder, signature, args):
            return getattr(builder, method)(args[0], args[1])

        return types.int32(types.int32, types.int32), codegen

    typer.__name__ = typer.__qualname__ = f"_{method.rstrip('_')}32"
    typer.__doc__ = doc
    return intrinsic(typer)


_shl32 = _int32_op("shl", "``x << n`` on int32 (0 <= n < 32).")
_sar32 = _int32_op("ashr", "``x >> n`` (arithmetic) on int32, 0 <= n < 32.")
_add32 = _int32_op("add", "``x + y`` on int32 (no overflow here).")
_sub32 = _int32_op("sub", "``x - y`` on int32 (no overflow here).")
_and32 = _int32_op("and_", "``x & y`` on int32.")
_or32 = _int32_op("or_", "``x | y`` on int32.")


@njit(inline="always")
def _q32(x, top, low_shift, emin_e, largest, neg_largest, nearest, keep):
    """:func:`_q_float_flat` on int32 lanes: (value, overflow, underflow) of ``x`` rounded
    to a float format without infinities, with ``top`` = 31 - mantissa bits, ``low_shift`` =
    max(emin - mantissa, 0), ``emin_e`` = 31 - emin, the largest finite value and its
    negative, and ``nearest``/``keep`` masks (-1 for
    true, 0 for false; all int32)."""
    a = np.int32(abs(x))
    lz = _leading_zeros32(a | np.int32(1))
    shift = max(_sub32(top, lz), low_shift)
    step = _shl32(np.int32(1), shift)
    rest = x & _sub32(step, np.int32(1))
    odd = np.int32(np.int32(x & step) != 0)
    up = max(_add32(_sub32(_sar32(step, np.int32(1)), np.int32(1)), odd), np.int32(0))
    r = _add32(x, up & nearest) & _sub32(np.int32(0), step)  # floor: the signed floor
    over = np.int32(r > largest) | np.int32(r < neg_largest)
    r = min(max(r, neg_largest), largest)
    tiny = np.int32(lz > emin_e) & np.int32(a != 0)
    flushed = tiny & ~keep
    under = flushed | (tiny & np.int32(rest != 0))
    r = np.int32(r) & _sub32(flushed, np.int32(1))
    return np.int32(r), over, under


@njit(inline="always")
def _consts32(prod_fmt, acc_fmt):
    """The int32 constants of :func:`_step32` for a product and a running-sum float format
    (``_q32``'s for each, the swamping threshold's, the rounding and underflow masks)."""
    p_m, p_emin, p_emax = prod_fmt[3], prod_fmt[4], prod_fmt[5]
    a_m, a_emin, a_emax = acc_fmt[3], acc_fmt[4], acc_fmt[5]
    p_largest = ((1 << (p_m + 1)) - 1) << (p_emax - p_m)
    a_largest = ((1 << (a_m + 1)) - 1) << (a_emax - a_m)
    return (np.int32(31 - p_m), np.int32(max(p_emin - p_m, 0)), np.int32(31 - p_emin),
            np.int32(p_largest), np.int32(-p_largest),
            np.int32(31 - a_m), np.int32(max(a_emin - a_m, 0)), np.int32(31 - a_emin),
            np.int32(a_largest), np.int32(-a_largest),
            np.int32(31 - a_m - 1), np.int32(a_emin - a_m - 1),
            np.int32(-1 if acc_fmt[6] == ROUND_NEAREST_EVEN else 0),
            np.int32(-1 if acc_fmt[7] == UNDERFLOW_KEEP else 0))


@njit(inline="always")
def _step32(s, p, c):
    """:func:`_flat_add` for a float format on int32 lanes (``c`` from :func:`_consts32`):
    (new running sum, overflow, underflow, swamping) as int32 for running sum ``s`` and
    partial sum ``p``."""
    q, o1, u1 = _q32(p, c[0], c[1], c[2], c[3], c[4], c[12], c[13])
    lz = _leading_zeros32(np.int32(abs(s)) | np.int32(1))
    sh = max(_sub32(c[10], lz), c[11])  # the exponent of half an ulp of s
    swamp = (np.int32(s != 0) & np.int32(q != 0) & np.int32(sh >= 0)
             & np.int32(np.int32(abs(q)) < _shl32(np.int32(1), max(sh, np.int32(0)))))
    v, o2, u2 = _q32(_add32(s, q), c[5], c[6], c[7], c[8], c[9], c[12], c[13])
    return v, _add32(o1, o2), _add32(u1, u2), swamp




@intrinsic
def _bits(typingctx, x):
    """The bits of a float32 as an int32 (LLVM's bitcast)."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def _float(typingctx, x):
    """The float32 whose bits are an int32 (LLVM's bitcast)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@njit(inline="always")
def _consts_f(prod_fmt, acc_fmt):
    """The int32 constants of :func:`_step_f`: per format (products, running sum) the
    rounding's low-bit mask, the bits of its smallest normal and of its largest finite value;
    the swamping threshold's exponent offset and floor; the rounding and underflow masks."""
    p_m, p_emin, p_emax = prod_fmt[3], prod_fmt[4], prod_fmt[5]
    a_m, a_emin, a_emax = acc_fmt[3], acc_fmt[4], acc_fmt[5]
    p_largest = ((1 << (p_m + 1)) - 1) << (p_emax - p_m)
    a_largest = ((1 << (a_m + 1)) - 1) << (a_emax - a_m)
    return (np.int32((1 << (23 - p_m)) - 1), np.int32((p_emin + 127) << 23),
            _bits(np.float32(p_largest)), np.int32(23 - p_m),
            np.int32((1 << (23 - a_m)) - 1), np.int32((a_emin + 127) << 23),
            _bits(np.float32(a_largest)), np.int32(23 - a_m),
            np.int32((a_m + 1) << 23), np.int32((a_emin + 127) << 23),
            np.int32(-1 if acc_fmt[6] == ROUND_NEAREST_EVEN else 0),
            np.int32(-1 if acc_fmt[7] == UNDERFLOW_KEEP else 0))


@njit(inline="always")
def _q_f(x, low, smallest, largest, sh, nearest, keep):
    """:func:`_q_float_flat` on the bits of a float32 ``x`` holding an integer (int32 bits
    out, with overflow and underflow as int32 0/1), for a format with emin <= mantissa bits
    <= 22: below the smallest normal value every integer is exact (it has at most m + 1
    significant bits), so rounding is binary32's significand rounded at bit 23 - m
    (``low`` the mask of the bits below it): to nearest even, a tie goes to the even kept
    part; floor, a negative magnitude rounds up. A carry into the exponent is the next
    binade, as in the spec's rounding."""
    b = _bits(x)
    sign = _and32(b, np.int32(-2147483648))
    mag = _and32(b, np.int32(2147483647))
    odd = _and32(_sar32(mag, sh), np.int32(1))
    up_near = _and32(_add32(_sar32(low, np.int32(1)), odd), nearest)
    up_floor = _and32(_and32(_sar32(b, np.int32(31)), low), _sub32(np.int32(-1), nearest))
    r = _and32(_add32(mag, _or32(up_near, up_floor)), _sub32(np.int32(-1), low))
    over = np.int32(r > largest)
    r = min(r, largest)
    flushed = _and32(np.int32(mag < smallest) & np.int32(mag != 0),
                     _sub32(np.int32(-1), keep))
    r = _and32(r, _sub32(flushed, np.int32(1)))
    return _or32(r, sign), over, flushed


@njit(inline="always")
def _step_f(s, p, c):
    """:func:`_flat_add` on float32 lanes (``c`` from :func:`_consts_f`): (new running sum,
    overflow, underflow, swamping) for running sum ``s`` and partial sum ``p`` (integers
    held exactly: below 2^24). The sum of two values of the formats is binary32's exact
    sum; swamping compares the bits of |q| with those of half an ulp of ``s``."""
    qb, o1, u1 = _q_f(p, c[0], c[1], c[2], c[3], c[10], c[11])
    sb = _and32(_bits(s), np.int32(2147483647))
    qmag = _and32(qb, np.int32(2147483647))
    half_ulp = _sub32(max(_and32(sb, np.int32(0x7F800000)), c[9]), c[8])
    swamp = np.int32(sb != 0) & np.int32(qmag != 0) & np.int32(qmag < half_ulp)
    vb, o2, u2 = _q_f(np.float32(s + _float(qb)), c[4], c[5], c[6], c[7], c[10], c[11])
    return _float(vb), _add32(o1, o2), _add32(u1, u2), swamp


@njit(inline="always")
def _flush_f(acc, row, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp):
    """:func:`_flush_flat` for float32 running sums: they enter the second accumulator as
    integers (``row`` an int64 buffer)."""
    for n in range(acc.shape[0]):
        row[n] = np.int64(acc[n])
        acc[n] = 0
    return _flush_flat(row, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp)






# ----- the lane kernels: one body, int32 or float32 lanes by the running sums' buffer -----

def _lane_consts(acc, prod_fmt, acc_fmt):
    """The constants of :func:`_lane_step` for lanes of ``acc``'s dtype (compiled code
    calls its overload below, which makes the same choice while typing)."""
    return (_consts_f if acc.dtype == np.float32 else _consts32)(prod_fmt, acc_fmt)


@overload(_lane_consts)
def _lane_consts_typed(acc, prod_fmt, acc_fmt):
    if acc.dtype == types.float32:
        return lambda acc, prod_fmt, acc_fmt: _consts_f(prod_fmt, acc_fmt)
    return lambda acc, prod_fmt, acc_fmt: _consts32(prod_fmt, acc_fmt)


def _lane_step(s, p, c):
    """:func:`_step32` or :func:`_step_f` by the running sum's type, ``p`` cast to it."""
    if isinstance(s, np.float32):
        return _step_f(s, np.float32(p), c)
    return _step32(s, np.int32(p), c)


@overload(_lane_step)
def _lane_step_typed(s, p, c):
    if s == types.float32:
        return lambda s, p, c: _step_f(s, np.float32(p), c)
    return lambda s, p, c: _step32(s, np.int32(p), c)


def _lane_value(acc, x):
    """An activation as a lane of ``acc``'s dtype."""
    return acc.dtype.type(x)


@overload(_lane_value)
def _lane_value_typed(acc, x):
    if acc.dtype == types.float32:
        return lambda acc, x: np.float32(x)
    return lambda acc, x: np.int32(x)


def _lane_flush(acc, row, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp):
    """:func:`_flush_flat` of one row of running sums (float32 ones through ``row``)."""
    if acc.dtype == np.float32:
        return _flush_f(acc, row, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp)
    return _flush_flat(acc, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp)


@overload(_lane_flush)
def _lane_flush_typed(acc, row, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp):
    if acc.dtype == types.float32:
        return (lambda acc, row, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp:
                _flush_f(acc, row, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp))
    return (lambda acc, row, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp:
            _flush_flat(acc, outer, outer_fmt, nearest, keep, n_over, n_under, n_swamp))


@njit(inline="always")
def _finish_rows(acc, row, outputs, m0, nr, chunk, outer_fmt, nearest, keep, n_over, n_under,
                 n_swamp):
    """A block of rows ends: each row's running sums (32-bit lanes) flushed through the
    second accumulator (``chunk`` > 0) or written as its outputs; returns the event counts."""
    for r in range(nr):
        if chunk > 0:
            n_over, n_under, n_swamp = _lane_flush(acc[r], row, outputs[m0 + r], outer_fmt,
                                                   nearest, keep, n_over, n_under, n_swamp)
        else:
            for n in range(outputs.shape[1]):
                outputs[m0 + r, n] = np.int64(acc[r, n])
    return n_over, n_under, n_swamp


@njit(checked=False)
def accumulate_dense_lanes(A, B, prod_fmt, acc_fmt, outer_fmt, chunk, outputs, events, lo, hi,
                           acc):
    """:func:`accumulate_dense_flat` on 32-bit lanes, the running sums of 8 rows in ``acc``
    (8, N), int32 or float32 (``B`` of the same dtype). The same values and events.

    int32 lanes: a float format without infinities whose values and partial sums fit (every
    product |a·b|, the largest finite value of the running sum plus that of the products,
    below 2^29; the caller checks). Every operation of the column loop is a 32-bit one
    (:func:`_q32`; numba widens integer arithmetic to 64 bits, so the lane operations are
    LLVM i32 intrinsics), which lets LLVM use 16 lanes of a 512-bit register
    (count-leading-zeros included, ``vplzcntd``).

    float32 lanes: a float format of at most 22 mantissa bits with emin <= mantissa bits
    whose sums stay below 2^24 (the caller checks): every integer the loop holds is exact in
    binary32, the exponent is the float's own and rounding works on its bits (:func:`_q_f`),
    with no count of leading zeros and no variable shift.

    Rows run in blocks of 8, the steps outermost, so one row of B serves 8 rows while it is
    in the first-level cache. Events are counted in int32 per (row, step) (at most 2N each)
    and summed in int64."""
    n_n = B.shape[1]
    kd = A.shape[1]
    c = _lane_consts(acc, prod_fmt, acc_fmt)
    nearest, keep = acc_fmt[6] == ROUND_NEAREST_EVEN, acc_fmt[7] == UNDERFLOW_KEEP
    rows = acc.shape[0]
    row = np.zeros(n_n, np.int64)
    n_over = 0
    n_under = 0
    n_swamp = 0
    for m0 in range(lo, hi, rows):
        nr = min(rows, hi - m0)
        acc[:] = 0
        if chunk > 0:
            outputs[m0:m0 + nr, :] = 0
        for k in range(kd):
            for r in range(nr):
                xi = A[m0 + r, k]
                x = _lane_value(acc, xi)
                c_over = np.int32(0)
                c_under = np.int32(0)
                c_swamp = np.int32(0)
                for n in range(n_n if xi != 0 else 0):
                    v, o, u, w = _lane_step(acc[r, n], x * B[k, n], c)
                    acc[r, n] = v
                    c_over = _add32(c_over, o)
                    c_under = _add32(c_under, u)
                    c_swamp = _add32(c_swamp, w)
                n_over += c_over
                n_under += c_under
                n_swamp += c_swamp
            if chunk > 0 and (k + 1) % chunk == 0:
                for r in range(nr):
                    n_over, n_under, n_swamp = _lane_flush(acc[r], row, outputs[m0 + r],
                                                           outer_fmt, nearest, keep, n_over,
                                                           n_under, n_swamp)
        n_over, n_under, n_swamp = _finish_rows(acc, row, outputs, m0, nr, chunk, outer_fmt,
                                                nearest, keep, n_over, n_under, n_swamp)
    _count_events(events, n_over, n_under, n_swamp)


@njit(checked=False)
def accumulate_sysmt_lanes(A, B, sched, sparsity_aware, rounding, prod_fmt, acc_fmt,
                           outer_fmt, chunk, outputs, events, lo, hi, acc):
    """:func:`accumulate_sysmt_flat` on 32-bit lanes, a row's N running sums in ``acc`` (N,),
    int32 or float32 (``B`` int32: the partial sums are integers, then lanes), for the
    formats of :func:`accumulate_dense_lanes` of that dtype (partial sums of two or more
    threads included: the caller bounds them). The same values and events."""
    n_n = B.shape[1]
    threads, steps = sched.shape
    tw, acts, trimmed, nibble_exact, ks = _sysmt_state(B, threads, rounding)
    c = _lane_consts(acc, prod_fmt, acc_fmt)
    nearest, keep = acc_fmt[6] == ROUND_NEAREST_EVEN, acc_fmt[7] == UNDERFLOW_KEEP
    row = np.zeros(n_n, np.int64)
    parts = np.zeros(n_n, np.int32)
    n_over = 0
    n_under = 0
    n_swamp = 0
    for m in range(lo, hi):
        acc[:] = 0
        outputs[m, :] = 0
        for s in range(steps):
            width = _sysmt_parts(A, B, tw, sched, sparsity_aware, rounding, m, s, acts, trimmed,
                                 nibble_exact, ks, parts)
            # pass 2: the N running sums, 16 lanes at a time
            c_over = np.int32(0)
            c_under = np.int32(0)
            c_swamp = np.int32(0)
            for n in range(width):
                v, o, u, w = _lane_step(acc[n], parts[n], c)
                acc[n] = v
                c_over = _add32(c_over, o)
                c_under = _add32(c_under, u)
                c_swamp = _add32(c_swamp, w)
            n_over += c_over
            n_under += c_under
            n_swamp += c_swamp
            if chunk > 0 and (s + 1) % chunk == 0:
                n_over, n_under, n_swamp = _lane_flush(acc, row, outputs[m], outer_fmt,
                                                       nearest, keep, n_over, n_under, n_swamp)
        if chunk > 0:
            n_over, n_under, n_swamp = _lane_flush(acc, row, outputs[m], outer_fmt, nearest,
                                                   keep, n_over, n_under, n_swamp)
        else:
            for n in range(n_n):
                outputs[m, n] = np.int64(acc[n])
    _count_events(events, n_over, n_under, n_swamp)


@njit(inline="always")
def _round_near_f(mag, low, sh):
    """The magnitude bits ``mag`` of a float32 rounded to nearest even at bit ``sh``
    (``low`` the mask of the bits below it): :func:`_q_f`'s rounding alone."""
    odd = _and32(_sar32(mag, sh), np.int32(1))
    return _and32(_add32(mag, _add32(_sar32(low, np.int32(1)), odd)),
                  _sub32(np.int32(-1), low))


@njit(checked=False)
def accumulate_dense_f32_exact(A, B, prod_fmt, acc_fmt, outer_fmt, chunk, period, outputs,
                               exact, events, lo, hi):
    """:func:`accumulate_dense_lanes` on float32 lanes for rounding to nearest even and a
    product format whose smallest normal value is at most 1 (no nonzero product underflows;
    the caller checks), with the exact sums beside the rounded ones.

    The step is then :func:`_step_f` without the checks that cannot fire and without the
    rounding mode's masks: the product rounded and saturated, swamping, the sum rounded,
    saturated and flushed below its smallest normal value (events counted). The exact sum of
    each output (``exact``, int64 (M, N)) is kept in float32 lanes from the same products
    and moved into ``exact`` every ``period`` steps (the caller picks ``period`` so that
    ``period`` products stay below 2^24: exact in binary32), so the error metrics need no
    separate product. The same values and events as :func:`accumulate_dense_lanes`."""
    n_n = B.shape[1]
    kd = A.shape[1]
    c = _consts_f(prod_fmt, acc_fmt)
    p_low, p_largest, p_sh = c[0], c[2], c[3]
    a_low, a_smallest, a_largest, a_sh = c[4], c[5], c[6], c[7]
    ulp_one, ulp_floor = c[8], c[9]
    flush = _sub32(np.int32(-1), c[11])  # -1 when a sum below the smallest normal flushes
    sign_bit = np.int32(-2147483648)
    magnitude = np.int32(2147483647)
    exponent = np.int32(0x7F800000)
    rows = 8
    acc = np.zeros((rows, n_n), np.float32)
    part = np.zeros((rows, n_n), np.float32)
    row = np.zeros(n_n, np.int64)
    keep = acc_fmt[7] == UNDERFLOW_KEEP
    n_over = 0
    n_under = 0
    n_swamp = 0
    for m0 in range(lo, hi, rows):
        nr = min(rows, hi - m0)
        acc[:] = 0
        part[:] = 0
        exact[m0:m0 + nr, :] = 0
        if chunk > 0:
            outputs[m0:m0 + nr, :] = 0
        for k in range(kd):
            for r in range(nr):
                xi = A[m0 + r, k]
                x = np.float32(xi)
                c_over = np.int32(0)
                c_under = np.int32(0)
                c_swamp = np.int32(0)
                for n in range(n_n if xi != 0 else 0):
                    p = np.float32(x * B[k, n])
                    part[r, n] += p
                    pb = _bits(p)
                    q = _round_near_f(_and32(pb, magnitude), p_low, p_sh)
                    c_over = _add32(c_over, np.int32(q > p_largest))
                    q = min(q, p_largest)
                    s = acc[r, n]
                    sb = _and32(_bits(s), magnitude)
                    half_ulp = _sub32(max(_and32(sb, exponent), ulp_floor), ulp_one)
                    c_swamp = _add32(c_swamp, np.int32(sb != 0) & np.int32(q != 0)
                                     & np.int32(q < half_ulp))
                    v = np.float32(s + _float(_or32(q, _and32(pb, sign_bit))))
                    vb = _bits(v)
                    vmag = _and32(vb, magnitude)
                    r2 = _round_near_f(vmag, a_low, a_sh)
                    c_over = _add32(c_over, np.int32(r2 > a_largest))
                    flushed = _and32(np.int32(vmag < a_smallest) & np.int32(vmag != 0),
                                     flush)
                    c_under = _add32(c_under, flushed)
                    r2 = _and32(min(r2, a_largest), _sub32(flushed, np.int32(1)))
                    acc[r, n] = _float(_or32(r2, _and32(vb, sign_bit)))
                n_over += c_over
                n_under += c_under
                n_swamp += c_swamp
            if (k + 1) % period == 0 or k + 1 == kd:
                for r in range(nr):
                    for n in range(n_n):
                        exact[m0 + r, n] += np.int64(part[r, n])
                        part[r, n] = 0
            if chunk > 0 and (k + 1) % chunk == 0:
                for r in range(nr):
                    n_over, n_under, n_swamp = _flush_f(acc[r], row, outputs[m0 + r],
                                                        outer_fmt, True, keep, n_over,
                                                        n_under, n_swamp)
        n_over, n_under, n_swamp = _finish_rows(acc, row, outputs, m0, nr, chunk, outer_fmt,
                                             True, keep, n_over, n_under, n_swamp)
    _count_events(events, n_over, n_under, n_swamp)
