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
"""

from __future__ import annotations

import numpy as np
from numba import prange

from simulator.kernels.jit import njit

__all__ = ["sysmt_gemm"]

_FLUSH = 64  # steps between float32 -> float64 flushes: 64 * 4 * 255 * 128 < 2**24


@njit(parallel=True, error_model="numpy")
def _sysmt_kernel(a, ta, w, tw, wr, out, counts):  # pragma: no cover - compiled
    m_rows, steps, threads = a.shape
    n_cols = w.shape[2]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    two = np.float32(2.0)
    for m in prange(m_rows):
        acc64 = np.zeros(n_cols, np.float64)
        acc = np.zeros(n_cols, np.float32)
        c_idle = np.zeros(n_cols, np.float32)
        c_single = np.zeros(n_cols, np.float32)
        c_shared = np.zeros(n_cols, np.float32)
        c_reduced = np.zeros(n_cols, np.float32)
        for j in range(steps):
            for n in range(n_cols):
                c = zero
                s1 = zero
                s2 = zero
                s3 = zero
                ch2 = zero
                ch3 = zero
                for t in range(threads):
                    av = a[m, j, t]
                    wv = w[j, t, n]
                    act = one if (av != zero and wv != zero) else zero
                    c += act
                    d = av - ta[m, j, t]
                    rv = wr[j, t, n]
                    twv = tw[j, t, n]
                    s1 += av * wv
                    s2 += d * rv
                    s3 += ta[m, j, t] * twv
                    ch2 += act if (d != zero and rv != zero) else zero
                    ch3 += act if (d != zero or twv != wv) else zero
                if c <= one:
                    acc[n] += s1
                elif c == two:
                    acc[n] += s1 - s2
                else:
                    acc[n] += s3
                c_idle[n] += one if c == zero else zero
                c_single[n] += one if c == one else zero
                c_shared[n] += one if c >= two else zero
                c_reduced[n] += one if ((c == two and ch2 > zero)
                                        or (c > two and ch3 > zero)) else zero
            if (j + 1) % _FLUSH == 0:
                for n in range(n_cols):
                    acc64[n] += acc[n]
                    acc[n] = zero
        for n in range(n_cols):
            out[m, n] = np.int64(acc64[n] + acc[n])
        counts[m, 0] = np.int64(c_idle.astype(np.float64).sum())
        counts[m, 1] = np.int64(c_single.astype(np.float64).sum())
        counts[m, 2] = np.int64(c_shared.astype(np.float64).sum())
        counts[m, 3] = np.int64(c_reduced.astype(np.float64).sum())


def sysmt_gemm(a: np.ndarray, ta: np.ndarray, w: np.ndarray, tw: np.ndarray,
               wr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the SySMT kernel; returns (outputs (M, N) int64, counts (4,) int64).

    Parameters
    ----------
    a, ta : float32 (M, S, T) activations and trimmed activations per step and thread.
    w, tw, wr : float32 (S, T, N) weights, trimmed weights, and reduction-forcing weights.
    """
    m_rows, steps, threads = a.shape
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
    counts = np.zeros((m_rows, 4), dtype=np.int64)
    _sysmt_kernel(a, ta, w, tw, wr, out, counts)
    return out, counts.sum(axis=0)
