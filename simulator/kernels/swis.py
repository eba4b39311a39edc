"""SWIS and bit-serial kernels: shared-position search and the lane-activity count.

Magnitudes are 8-bit (0..255; an INT8 weight has magnitude 0..128). A *position set* is a
bit mask S over positions 0..7; the magnitudes it represents are exactly the sub-masks of S
(``v & ~S == 0``), because the powers of two of distinct positions add without carries.

- :func:`nearest_tables`: for every mask S (0..255) and magnitude x (0..255), the nearest
  representable value (ties to the smaller value) and its squared error.
- :func:`best_sets`: per group of G magnitudes, the candidate mask with the least summed
  squared error (ties to the candidate listed first).
- :func:`count_active_cycles`: over all (row, column, group, slot) processing cycles of a
  bit-serial array, how many have at least one lane whose parallel operand is non-zero and
  whose serial bit is set (the adder tree sees a non-zero input). It counts pattern pairs,
  not cycles: per K group, histograms of the lane patterns of both sides, and (up to 12
  lanes) a subset-sum transform that counts the disjoint pairs for all patterns at once.

Kernels take arrays and integers only and import nothing from the rest of the package.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from simulator.kernels.jit import njit

__all__ = ["nearest_tables", "best_sets", "count_active_cycles"]


def nearest_tables() -> tuple[np.ndarray, np.ndarray]:
    """Nearest representable magnitude and its squared error, for every mask and magnitude.

    Returns
    -------
    nearest : ndarray of int64, shape (256, 256)
        ``nearest[S, x]``: the sub-mask of S closest to x; of two equally close, the smaller.
    sq_error : ndarray of int64, shape (256, 256)
        ``(x - nearest[S, x]) ** 2``.
    """
    values = np.arange(256, dtype=np.int64)
    nearest = np.empty((256, 256), dtype=np.int64)
    for mask in range(256):
        reps = values[(values & ~mask) == 0]  # ascending, so argmin ties pick the smaller
        nearest[mask] = reps[np.argmin(np.abs(values[:, None] - reps[None, :]), axis=1)]
    return nearest, (values[None, :] - nearest) ** 2


@njit(parallel=True)
def _best_sets(mags, candidates, sq_error, out_mask, out_error):  # pragma: no cover - compiled
    n_groups, lanes = mags.shape
    n_cand = candidates.shape[0]
    for g in prange(n_groups):
        best = np.int64(-1)
        best_mask = candidates[0]
        for c in range(n_cand):
            mask = candidates[c]
            row = sq_error[mask]
            err = np.int64(0)
            for t in range(lanes):
                err += row[mags[g, t]]
                # A later candidate wins only with a strictly smaller error.
                if best >= 0 and err >= best:
                    break
            if best < 0 or err < best:
                best = err
                best_mask = mask
        out_mask[g] = best_mask
        out_error[g] = best


def best_sets(mags: np.ndarray, candidates: np.ndarray,
              sq_error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best candidate position set of every group.

    Parameters
    ----------
    mags : ndarray of uint8, shape (groups, G)
        Magnitudes of each group's weights (pad short groups with 0: a zero costs nothing
        under every set).
    candidates : ndarray of int64, shape (C,), C >= 1
        Candidate masks in tie-break order (the first of equally good candidates wins).
    sq_error : ndarray of int64, shape (256, 256)
        From :func:`nearest_tables`.

    Returns
    -------
    masks : ndarray of int64, shape (groups,)
        The chosen mask per group.
    errors : ndarray of int64, shape (groups,)
        The group's summed squared error under it.
    """
    if mags.dtype != np.uint8 or mags.ndim != 2 or not mags.flags.c_contiguous:
        raise ValueError("mags must be a C-contiguous 2-D uint8 array")
    if candidates.dtype != np.int64 or candidates.ndim != 1 or candidates.size < 1:
        raise ValueError("candidates must be a non-empty 1-D int64 array")
    if int(candidates.min()) < 0 or int(candidates.max()) > 255:
        raise ValueError("candidate masks must lie in 0..255")
    if sq_error.shape != (256, 256) or sq_error.dtype != np.int64:
        raise ValueError("sq_error must be the (256, 256) int64 table of nearest_tables()")
    masks = np.empty(mags.shape[0], dtype=np.int64)
    errors = np.empty(mags.shape[0], dtype=np.int64)
    if mags.shape[0]:
        _best_sets(mags, candidates, sq_error, masks, errors)
    return masks, errors


@njit
def _distinct(values):  # pragma: no cover - compiled
    """Distinct non-zero values of a 1-D array and how often each occurs."""
    ordered = np.sort(values)
    keys = np.empty(ordered.size, np.int64)
    counts = np.empty(ordered.size, np.int64)
    n = 0
    i = 0
    while i < ordered.size:
        j = i
        while j < ordered.size and ordered[j] == ordered[i]:
            j += 1
        if ordered[i] != 0:  # a zero pattern never meets a set bit
            keys[n] = ordered[i]
            counts[n] = j - i
            n += 1
        i = j
    return keys[:n], counts[:n]


@njit
def _count_active_pairs(x_pat, y_pat, y_slots, out):  # pragma: no cover - compiled
    n_q = x_pat.shape[0]
    n_y = y_pat.shape[1]
    for q in range(n_q):
        # Equal patterns behave identically: pair each distinct X pattern with each distinct
        # processed Y pattern once, weighted by how often both occur.
        x_keys, x_counts = _distinct(x_pat[q])
        processed = np.empty(n_y * y_pat.shape[2], np.int64)
        n = 0
        for b in range(n_y):
            for r in range(y_slots[q, b]):
                processed[n] = y_pat[q, b, r]
                n += 1
        y_keys, y_counts = _distinct(processed[:n])
        total = np.int64(0)
        for i in range(x_keys.size):
            p = x_keys[i]
            hits = np.int64(0)
            for j in range(y_keys.size):
                if p & y_keys[j] != 0:
                    hits += y_counts[j]
            total += hits * x_counts[i]
        out[q] = total


@njit
def _count_active_dense(x_pat, y_pat, y_slots, lanes, out):  # pragma: no cover - compiled
    n_q, n_x = x_pat.shape
    n_y = y_pat.shape[1]
    size = 1 << lanes
    full = size - 1
    # Serial on purpose: the per-group work is small, and a parallel loop with per-group
    # allocations measured 75x slower here.
    for q in range(n_q):
        # Histograms of both sides' patterns; the pairs that meet no set bit are
        # sum_x hx[x] * (number of y that are subsets of ~x), and a subset-sum transform
        # gives the second factor for every x at once.
        hx = np.zeros(size, np.int64)
        hy = np.zeros(size, np.int64)
        for i in range(n_x):
            hx[x_pat[q, i]] += 1
        n_pairs = np.int64(0)
        for b in range(n_y):
            for r in range(y_slots[q, b]):
                hy[y_pat[q, b, r]] += 1
                n_pairs += 1
        for bit in range(lanes):
            step = 1 << bit
            for m in range(size):
                if m & step:
                    hy[m] += hy[m ^ step]
        disjoint = np.int64(0)
        for x in range(size):
            if hx[x]:
                disjoint += hx[x] * hy[full ^ x]
        out[q] = n_x * n_pairs - disjoint


def count_active_cycles(x_pat: np.ndarray, y_pat: np.ndarray, y_slots: np.ndarray) -> int:
    """Processing cycles in which at least one lane is active.

    A lane of a bit-serial PE is active in a cycle when its parallel operand is non-zero and
    the serial operand's bit of that cycle is set. Per K group q, ``x_pat[q, i]`` is the lane
    bit pattern (lane t = bit t) of one side that does not change across the group's cycles,
    and ``y_pat[q, j, r]`` that of the other side in slot r; only slots
    ``r < y_slots[q, j]`` are processed. The result is
    ``sum over q, i, j, r < y_slots[q, j] of [x_pat[q, i] & y_pat[q, j, r] != 0]``.

    Parameters
    ----------
    x_pat : ndarray of int64, shape (Q, X)
    y_pat : ndarray of int64, shape (Q, Y, R)
    y_slots : ndarray of int64, shape (Q, Y), each in 0..R

    Returns
    -------
    int
    """
    for name, arr, ndim in (("x_pat", x_pat, 2), ("y_pat", y_pat, 3), ("y_slots", y_slots, 2)):
        if arr.dtype != np.int64 or arr.ndim != ndim or not arr.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous {ndim}-D int64 array")
    if y_pat.shape[:2] != y_slots.shape or x_pat.shape[0] != y_pat.shape[0]:
        raise ValueError(f"shapes do not match: x_pat {x_pat.shape}, y_pat {y_pat.shape}, "
                         f"y_slots {y_slots.shape}")
    if y_slots.size and (int(y_slots.min()) < 0 or int(y_slots.max()) > y_pat.shape[2]):
        raise ValueError("y_slots must lie in 0..R")
    out = np.zeros(x_pat.shape[0], dtype=np.int64)
    if not (x_pat.size and y_pat.size):
        return 0
    if int(x_pat.min()) < 0 or int(y_pat.min()) < 0:
        raise ValueError("lane patterns must be non-negative")
    widest = max(int(x_pat.max()), int(y_pat.max())).bit_length()
    if widest <= _DENSE_LANES:
        _count_active_dense(x_pat, y_pat, y_slots, max(widest, 1), out)
    else:
        _count_active_pairs(x_pat, y_pat, y_slots, out)
    return int(out.sum())


#: Up to this many lanes the count uses dense histograms of 2^lanes patterns.
_DENSE_LANES = 12
