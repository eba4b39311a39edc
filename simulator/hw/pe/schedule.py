"""Which K element each thread of a multithreaded PE takes per step (docs/hardware-spec.md §3).

A schedule is an int64 array ``sched[t, j]``: the K index thread ``t`` feeds at step ``j``,
or -1 when the thread has nothing to feed (it contributes a zero operand).
"""

from __future__ import annotations

import numpy as np

__all__ = ["thread_schedule", "reordered_schedule", "steps_for"]


def steps_for(kd: int, threads: int) -> int:
    """Steps a ``threads``-thread PE needs for a reduction of ``kd`` elements."""
    return -(-kd // threads)


def _slices(kd: int, threads: int) -> list[tuple[int, int]]:
    """Contiguous balanced slices: the first ``kd % threads`` get one extra element."""
    base, extra = divmod(kd, threads)
    out, start = [], 0
    for t in range(threads):
        size = base + (1 if t < extra else 0)
        out.append((start, size))
        start += size
    return out


def thread_schedule(kd: int, threads: int, split: str) -> np.ndarray:
    """The schedule of ``kd`` K elements over ``threads`` threads.

    ``contiguous``: thread t takes a contiguous slice of K (balanced, first threads get the
    remainder). ``interleaved``: thread t takes k = j*threads + t.
    """
    steps = steps_for(kd, threads)
    sched = np.full((threads, steps), -1, dtype=np.int64)
    if split == "interleaved":
        k = np.arange(steps * threads).reshape(steps, threads).T
        sched[:] = np.where(k < kd, k, -1)
        return sched
    for t, (start, size) in enumerate(_slices(kd, threads)):
        sched[t, :size] = np.arange(start, start + size)
    return sched


def reordered_schedule(nonzero_rate: np.ndarray, threads: int) -> np.ndarray:
    """Offline reordering that pairs dense K elements with sparse ones to avoid collisions.

    K elements are sorted by their activation non-zero rate (densest first, ties by index)
    and cut into ``threads`` contiguous strata of balanced sizes. Thread t takes stratum t,
    densest-first for even t and sparsest-first for odd t, so at each step a dense element
    meets a sparse one (by the rearrangement inequality this minimises the expected number
    of collisions for two threads).
    """
    kd = len(nonzero_rate)
    order = np.argsort(-np.asarray(nonzero_rate, dtype=np.float64), kind="stable")
    steps = steps_for(kd, threads)
    sched = np.full((threads, steps), -1, dtype=np.int64)
    for t, (start, size) in enumerate(_slices(kd, threads)):
        stratum = order[start:start + size]
        sched[t, :size] = stratum if t % 2 == 0 else stratum[::-1]
    return sched
