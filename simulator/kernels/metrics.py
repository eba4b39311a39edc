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

from simulator.kernels.compiled import kernels
from simulator.kernels.jit import kernel_threads, parallel_map

__all__ = ["error_sums"]

_BLOCK = 1024  # values per block sum
_PARALLEL_MIN = 1 << 20  # values below which one thread does it all


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
    loops = kernels("simulator.kernels.metrics_loops")
    parallel_map(workers, len(cuts) - 1, lambda w: loops._blocks(
        a, e, noise, signal, largest, cuts[w], cuts[w + 1]))
    return (float(noise.sum()), int(largest.max()) if blocks else 0, float(signal.sum()))
