"""Shared timers of the functional benchmarks: the float64 GEMM floor and a PE's pass.

``data`` is a list of ``(layer, [(A, B), ...])`` with one int64 operand pair per GEMM group.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["time_floor", "time_pe"]


def time_floor(data) -> float:
    """Seconds to compute every group's exact GEMM as a numpy float64 matrix product."""
    start = time.perf_counter()
    for _, groups in data:
        for a, b in groups:
            a.astype(np.float64) @ b.astype(np.float64)
    return time.perf_counter() - start


def time_pe(pe, data) -> float:
    """Seconds for the PE model's functional simulation of every group."""
    start = time.perf_counter()
    for layer, groups in data:
        for a, b in groups:
            pe.simulate_gemm(layer, a, b)
    return time.perf_counter() - start
