"""The compiled loop of :func:`simulator.kernels.metrics.error_sums` (compiled by numba on
first use, or ahead of time: :data:`AOT`; docs/performance.md, "Kernels compiled ahead of
time")."""

from __future__ import annotations

import numpy as np
from numba import types

from simulator.kernels.compiled import same_constants
from simulator.kernels.jit import njit

# compiled in: written here (numba's cache sees this file only), checked against the driver's
_BLOCK = 1024
same_constants("simulator.kernels.metrics", {"_BLOCK": _BLOCK})

__all__ = ["AOT"]


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


#: Kernel name -> the argument types of each variant built ahead of time (int64 values).
AOT = {"_blocks": [(types.Array(types.int64, 1, "C"), types.Array(types.int64, 1, "C"),
                    types.Array(types.float64, 1, "C"), types.Array(types.float64, 1, "C"),
                    types.Array(types.int64, 1, "C"), types.int64, types.int64)]}
