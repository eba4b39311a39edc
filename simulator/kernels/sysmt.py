"""The SySMT (NB-SMT) functional kernel: outputs and activity counters of one GEMM group.

Layout: per output row m and step j the T threads' activations ``a[m, j, t]`` and their
trimmed values ``ta``; per step j and column n the weights ``w[j, t, n]``, trimmed weights
``tw`` and the weights that force a 4b x 8b reduction ``wr`` (``w`` where the policy trims the
activation in a two-thread collision, 0 where the weight is narrow enough to be the 4-bit
operand). All are float32 holding small integers: every per-step sum is below 2**24 and is
flushed to a float64 accumulator every ``_FLUSH`` steps, so the arithmetic is exact while
the inner loop vectorises on float lanes.

Per PE-step with c active threads (activation and weight both non-zero):
c <= 1 exact sum; c == 2 every thread uses ``a - (a - ta)*[wr != 0]``; c >= 3 every
thread uses ``ta * tw``. Counters: idle, single, shared_exact, shared_reduced.

Speed (docs/performance.md): a thread whose activation is zero is inactive at every column,
so for each (row, step) the kernel looks at the threads with a non-zero activation only and
runs a branch-free loop over the columns specialised for one, two, or three or four such
threads. Rows are processed in blocks that share each step's weight rows. The counters are not
counted per PE-step: a PE-step's class depends on a per-(row, step) state of each thread
(zero / exact / trimmed activation) and a per-(step, column) state (zero / weight bits), so the
counts are ``sum_j hist_rows[j] . class . hist_cols[j]`` over these state histograms.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from numba import prange

from simulator.kernels.jit import njit

__all__ = ["sysmt_gemm"]

_FLUSH = 64  # steps between float32 -> float64 flushes: 64 * 4 * 255 * 128 < 2**24
_ROWS = 8  # output rows per block sharing the step's weight rows


@njit(parallel=True, error_model="numpy")
def _sysmt_outputs(a, ta, w, tw, wr, out):  # pragma: no cover - compiled
    m_rows, steps, threads = a.shape
    n_cols = w.shape[2]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    two = np.float32(2.0)
    n_blocks = (m_rows + _ROWS - 1) // _ROWS
    for blk in prange(n_blocks):
        m0 = blk * _ROWS
        rows = min(_ROWS, m_rows - m0)
        acc = np.zeros((_ROWS, n_cols), np.float32)
        acc64 = np.zeros((_ROWS, n_cols), np.float64)
        live = np.zeros(4, np.int64)
        for j in range(steps):
            for mi in range(rows):
                m = m0 + mi
                p = 0
                for t in range(threads):
                    if a[m, j, t] != zero:
                        live[p] = t
                        p += 1
                if p == 0:
                    continue
                row = acc[mi]
                t0 = live[0]
                a0 = a[m, j, t0]
                w0 = w[j, t0]
                if p == 1:
                    for n in range(n_cols):
                        row[n] += a0 * w0[n]
                    continue
                t1 = live[1]
                a1 = a[m, j, t1]
                w1 = w[j, t1]
                d0 = a0 - ta[m, j, t0]
                d1 = a1 - ta[m, j, t1]
                if p == 2:
                    if d0 == zero and d1 == zero:
                        for n in range(n_cols):
                            row[n] += a0 * w0[n] + a1 * w1[n]
                    else:
                        r0 = wr[j, t0]
                        r1 = wr[j, t1]
                        for n in range(n_cols):
                            x0 = w0[n]
                            x1 = w1[n]
                            red = d0 * r0[n] + d1 * r1[n]
                            both = x0 != zero and x1 != zero
                            row[n] += a0 * x0 + a1 * x1 - (red if both else zero)
                    continue
                # Three or four threads with a non-zero activation; a missing fourth is a
                # zero activation on thread t0 (it adds nothing and is never active).
                t2 = live[2]
                a2 = a[m, j, t2]
                w2 = w[j, t2]
                d2 = a2 - ta[m, j, t2]
                if p == 4:
                    t3 = live[3]
                    a3 = a[m, j, t3]
                    q3 = one
                else:
                    t3 = t0
                    a3 = zero
                    q3 = zero
                w3 = w[j, t3]
                ta0 = ta[m, j, t0]
                ta1 = ta[m, j, t1]
                ta2 = ta[m, j, t2]
                ta3 = ta[m, j, t3] * q3
                d3 = a3 - ta3
                r0 = wr[j, t0]
                r1 = wr[j, t1]
                r2 = wr[j, t2]
                r3 = wr[j, t3]
                u0 = tw[j, t0]
                u1 = tw[j, t1]
                u2 = tw[j, t2]
                u3 = tw[j, t3]
                for n in range(n_cols):
                    x0 = w0[n]
                    x1 = w1[n]
                    x2 = w2[n]
                    x3 = w3[n]
                    c = ((one if x0 != zero else zero) + (one if x1 != zero else zero)
                         + (one if x2 != zero else zero) + (q3 if x3 != zero else zero))
                    s1 = a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                    s2 = d0 * r0[n] + d1 * r1[n] + d2 * r2[n] + d3 * r3[n]
                    s3 = ta0 * u0[n] + ta1 * u1[n] + ta2 * u2[n] + ta3 * u3[n]
                    row[n] += s1 if c < two else (s1 - s2 if c == two else s3)
            if (j + 1) % _FLUSH == 0:
                for mi in range(rows):
                    for n in range(n_cols):
                        acc64[mi, n] += acc[mi, n]
                        acc[mi, n] = zero
        for mi in range(rows):
            for n in range(n_cols):
                out[m0 + mi, n] = np.int64(acc64[mi, n] + acc[mi, n])


@njit(parallel=True, error_model="numpy")
def _state_histograms(a, ta, w, tw, wr, hist_rows, hist_cols):  # pragma: no cover - compiled
    """Per step j: how many rows / columns are in each joint thread state (see module doc).

    Row state of a thread: 0 zero activation, 1 exact, 2 trimmed (a != ta); code base 3.
    Column state: 0 zero weight, else 1 + [wr != 0] + 2*[tw != w]; code base 5.
    """
    m_rows, steps, threads = a.shape
    n_cols = w.shape[2]
    for j in prange(steps):
        for m in range(m_rows):
            code = 0
            scale = 1
            for t in range(threads):
                av = a[m, j, t]
                if av != 0:
                    code += scale * (2 if av != ta[m, j, t] else 1)
                scale *= 3
            hist_rows[code, j] += 1.0
        for n in range(n_cols):
            code = 0
            scale = 1
            for t in range(threads):
                wv = w[j, t, n]
                if wv != 0:
                    code += scale * (1 + (1 if wr[j, t, n] != 0 else 0)
                                     + (2 if tw[j, t, n] != wv else 0))
                scale *= 5
            hist_cols[j, code] += 1.0


@functools.lru_cache(maxsize=None)
def _class_table(threads: int) -> np.ndarray:
    """(3**T, 5**T) class of a PE-step by its row and column state codes.

    0 idle, 1 single, 2 shared_exact, 3 shared_reduced; the rules of the module docstring.
    """
    table = np.empty((3**threads, 5**threads), dtype=np.int64)
    for row_states in itertools.product(range(3), repeat=threads):
        row_code = sum(s * 3**t for t, s in enumerate(row_states))
        for col_states in itertools.product(range(5), repeat=threads):
            col_code = sum(q * 5**t for t, q in enumerate(col_states))
            active = [t for t in range(threads) if row_states[t] and col_states[t]]
            trimmed_a = [row_states[t] == 2 for t in active]
            wide_w = [(col_states[t] - 1) & 1 == 1 for t in active]
            trimmed_w = [(col_states[t] - 1) & 2 == 2 for t in active]
            if len(active) <= 1:
                cls = len(active)
            elif len(active) == 2:
                cls = 3 if any(x and y for x, y in zip(trimmed_a, wide_w)) else 2
            else:
                cls = 3 if any(x or y for x, y in zip(trimmed_a, trimmed_w)) else 2
            table[row_code, col_code] = cls
    return table


def _counts(a, ta, w, tw, wr) -> np.ndarray:
    steps, threads = w.shape[:2]
    # float64 counts are exact: every entry below is at most M*N*S < 2**53.
    hist_rows = np.zeros((3**threads, steps), dtype=np.float64)
    hist_cols = np.zeros((steps, 5**threads), dtype=np.float64)
    _state_histograms(a, ta, w, tw, wr, hist_rows, hist_cols)
    # Only the states that occur take part (fewer than half of them for 8-bit data).
    rows = np.flatnonzero(hist_rows.any(axis=1))
    cols = np.flatnonzero(hist_cols.any(axis=0))
    pairs = np.rint(hist_rows[rows] @ hist_cols[:, cols])
    classes = _class_table(threads)[np.ix_(rows, cols)]
    return np.bincount(classes.ravel(), weights=pairs.ravel(), minlength=4).astype(np.int64)


def sysmt_gemm(a: np.ndarray, ta: np.ndarray, w: np.ndarray, tw: np.ndarray,
               wr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the SySMT kernel; returns (outputs (M, N) int64, counts (4,) int64).

    Parameters
    ----------
    a, ta : float32 (M, S, T) activations and trimmed activations per step and thread.
    w, tw, wr : float32 (S, T, N) weights, trimmed weights, and reduction-forcing weights.
        All hold 8-bit integers (activations -128..255, weights -128..127), T <= 4.

    Returns
    -------
    outputs : int64 (M, N)
    counts : int64 (4,), PE-steps that are idle, single, shared (two or more active threads)
        and shared with a reduced operand.
    """
    m_rows, steps, threads = a.shape
    if threads > 4:
        raise ValueError(f"sysmt_gemm supports at most 4 threads, not {threads}")
    if ta.shape != a.shape:
        raise ValueError(f"ta shape {ta.shape} != a shape {a.shape}")
    for name, arr in (("w", w), ("tw", tw), ("wr", wr)):
        if arr.ndim != 3 or arr.shape[:2] != (steps, threads):
            raise ValueError(f"{name} shape {arr.shape} does not match (S, T) = {(steps, threads)}")
    for arr in (a, ta, w, tw, wr):
        if arr.dtype != np.float32 or not arr.flags.c_contiguous:
            raise ValueError("sysmt_gemm takes C-contiguous float32 arrays")
    if steps * threads * 255 * 128 >= 2**53:
        raise ValueError("reduction too long for exact float64 accumulation")
    out = np.empty((m_rows, w.shape[2]), dtype=np.int64)
    _sysmt_outputs(a, ta, w, tw, wr, out)
    counts = _counts(a, ta, w, tw, wr)
    idle, single, shared_exact, reduced = (int(c) for c in counts)
    return out, np.array([idle, single, shared_exact + reduced, reduced], dtype=np.int64)
