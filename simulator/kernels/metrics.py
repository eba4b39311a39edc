"""The error sums of a PE's outputs against the exact product, in one pass.

A functional run measures every GEMM's outputs against the exact product
(:func:`simulator.api._functional`): the sum of the squared errors, the largest absolute
error and the sum of the squared exact values. Done with numpy that is five full-size
temporaries (difference, its magnitude, two float64 copies) and two BLAS dot products,
whose OpenBLAS threads keep spinning after each call; a transformer block's outputs are
hundreds of millions of values (docs/performance.md, "Transformers"). :func:`error_sums`
reads each output and exact value once.

Summation order is fixed (blocks of :data:`_BLOCK` values, four accumulators each, the
block sums added pairwise by numpy), so the sums do not depend on the threads used; sums
of integer squares below 2**53 are exact in any order.
"""

from __future__ import annotations

import numpy as np

from simulator.kernels.jit import kernel_threads, njit, parallel_map

__all__ = ["error_sums"]

_BLOCK = 1024  # values per block sum
_PARALLEL_MIN = 1 << 20  # values below which one thread does it all


@njit(checked=False)
def _blocks(approx, exact, noise, signal, largest, b_lo, b_hi):  # pragma: no cover
    """Blocks b_lo..b_hi of the flat int64 arrays: per block, the sum of squared errors
    (``noise``), of squared exact values (``signal``) and the largest absolute error
    (``largest``)."""
    size = approx.shape[0]
    for b in range(b_lo, b_hi):
        lo = b * _BLOCK
        hi = min(size, lo + _BLOCK)
        n0 = n1 = n2 = n3 = 0.0
        s0 = s1 = s2 = s3 = 0.0
        big = 0
        i = lo
        while i + 4 <= hi:
            e0, e1, e2, e3 = exact[i], exact[i + 1], exact[i + 2], exact[i + 3]
            d0, d1 = approx[i] - e0, approx[i + 1] - e1
            d2, d3 = approx[i + 2] - e2, approx[i + 3] - e3
            big = max(big, max(max(abs(d0), abs(d1)), max(abs(d2), abs(d3))))
            f0, f1, f2, f3 = np.float64(d0), np.float64(d1), np.float64(d2), np.float64(d3)
            n0 += f0 * f0
            n1 += f1 * f1
            n2 += f2 * f2
            n3 += f3 * f3
            g0, g1, g2, g3 = np.float64(e0), np.float64(e1), np.float64(e2), np.float64(e3)
            s0 += g0 * g0
            s1 += g1 * g1
            s2 += g2 * g2
            s3 += g3 * g3
            i += 4
        while i < hi:
            d = approx[i] - exact[i]
            big = max(big, abs(d))
            f = np.float64(d)
            g = np.float64(exact[i])
            n0 += f * f
            s0 += g * g
            i += 1
        noise[b] = (n0 + n1) + (n2 + n3)
        signal[b] = (s0 + s1) + (s2 + s3)
        largest[b] = big


def error_sums(approx: np.ndarray, exact: np.ndarray) -> tuple[float, int, float]:
    """Sum of squared errors, largest absolute error and sum of squared exact values.

    Parameters
    ----------
    approx, exact : integer arrays of the same shape (converted to int64 when they are not).

    Returns
    -------
    noise : float, ``sum((approx - exact)**2)`` in float64.
    largest : int, ``max|approx - exact|`` (0 for empty arrays).
    signal : float, ``sum(exact**2)`` in float64.
    """
    a = np.ascontiguousarray(approx, dtype=np.int64).reshape(-1)
    e = np.ascontiguousarray(exact, dtype=np.int64).reshape(-1)
    if a.shape != e.shape:
        raise ValueError(f"shapes differ: {approx.shape} and {exact.shape}")
    blocks = -(-a.size // _BLOCK)
    noise = np.zeros(blocks, np.float64)
    signal = np.zeros(blocks, np.float64)
    largest = np.zeros(blocks, np.int64)
    workers = 1 if a.size < _PARALLEL_MIN else kernel_threads()
    cuts = np.linspace(0, blocks, min(blocks, 4 * workers) + 1).astype(np.int64)
    parallel_map(workers, len(cuts) - 1, lambda w: _blocks(
        a, e, noise, signal, largest, cuts[w], cuts[w + 1]))
    return (float(noise.sum()), int(largest.max()) if blocks else 0, float(signal.sum()))
