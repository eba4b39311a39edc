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

__all__ = ["nearest_tables", "best_sets", "approximate", "count_active_cycles", "parallel_histogram",
           "bitserial_weight_histogram", "position_histogram", "active_from_histograms"]


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


_GROUPS_PER_TASK = 4096  # groups one parallel task searches (one error row allocated)


@njit(parallel=True)
def _best_sets(mags, table, out_index, out_error):  # pragma: no cover - compiled
    """``table[x, c]``: squared error of magnitude x under candidate c. All candidates are
    summed at once along the table's contiguous rows (a vector loop), a zero magnitude
    costs nothing under every set and is skipped; the first least error wins."""
    n_groups, lanes = mags.shape
    n_cand = table.shape[1]
    tasks = (n_groups + _GROUPS_PER_TASK - 1) // _GROUPS_PER_TASK
    for task in prange(tasks):
        err = np.empty(n_cand, table.dtype)
        for g in range(task * _GROUPS_PER_TASK, min(n_groups, (task + 1) * _GROUPS_PER_TASK)):
            for c in range(n_cand):
                err[c] = 0
            for t in range(lanes):
                x = mags[g, t]
                if x != 0:
                    for c in range(n_cand):
                        err[c] += table[x, c]
            best = 0
            for c in range(1, n_cand):
                if err[c] < err[best]:
                    best = c
            out_index[g] = best
            out_error[g] = err[best]


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
    index = np.empty(mags.shape[0], dtype=np.int64)
    errors = np.empty(mags.shape[0], dtype=np.int64)
    if mags.shape[0]:
        # int32 sums are exact while G * 255**2 < 2**31, and twice as many fit a vector
        table = sq_error[candidates].T
        wide = mags.shape[1] * 255**2 >= 2**31
        _best_sets(mags, np.ascontiguousarray(table, dtype=np.int64 if wide else np.int32),
                   index, errors)
    return candidates[index], errors


@njit(parallel=True)
def _approximate(weights, group_masks, group_size, nearest, out):  # pragma: no cover
    kd, n_f = weights.shape
    for k in prange(kd):
        q = k // group_size
        for f in range(n_f):
            w = np.int64(weights[k, f])
            mag = np.int64(nearest[group_masks[q, f], abs(w)])
            out[k, f] = -mag if w < 0 else mag


def approximate(weights: np.ndarray, group_masks: np.ndarray, group_size: int,
                nearest: np.ndarray) -> np.ndarray:
    """int16 (Kd, F): each weight's sign times the sub-mask of its group's position set
    nearest to its magnitude (``nearest`` from :func:`nearest_tables`), without the int64
    (Kd, F) temporaries of indexing with a per-row mask array."""
    out = np.empty(weights.shape, dtype=np.int16)
    if weights.size:  # a uint8 table (64 KiB) stays in cache
        _approximate(np.ascontiguousarray(weights), np.ascontiguousarray(group_masks),
                     group_size, np.ascontiguousarray(nearest, dtype=np.uint8), out)
    return out


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
def _disjoint_pairs(hx, hy, lanes):  # pragma: no cover - compiled
    """Pairs (x, y) of patterns over ``lanes`` bits that share no set bit, from their
    histograms ``hx`` and ``hy`` (length 2**lanes): ``sum_x hx[x] * #{y subset of ~x}``.

    ``hy`` is overwritten by its subset-sum transform (``hy[p]`` becomes the number of y
    patterns that are subsets of p), which gives the second factor for every x at once.
    """
    size = 1 << lanes
    full = size - 1
    for bit in range(lanes):
        step = 1 << bit
        for p in range(size):
            if p & step:
                hy[p] += hy[p ^ step]
    disjoint = np.int64(0)
    for x in range(size):
        if hx[x]:
            disjoint += hx[x] * hy[full ^ x]
    return disjoint


@njit
def _count_active_dense(x_pat, y_pat, y_slots, lanes, out):  # pragma: no cover - compiled
    n_q, n_x = x_pat.shape
    n_y = y_pat.shape[1]
    size = 1 << lanes
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
        out[q] = n_x * n_pairs - _disjoint_pairs(hx, hy, lanes)


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


# Histogram kernels: the same count as count_active_cycles without materialising any lane
# pattern array. Each makes one pass over its operand and also writes the float64 copy the
# exact product needs, so the functional model reads every operand about as often as the
# float64 GEMM itself does.


@njit
def _parallel_histogram(a, lanes, hist, col_nonzero, a_float):  # pragma: no cover - compiled
    m_rows, kd = a.shape
    n_q = hist.shape[0]
    hi = np.int64(0)
    lo = np.int64(0)
    for m in range(m_rows):
        for q in range(n_q):
            start = q * lanes
            stop = min(start + lanes, kd)
            pattern = 0
            # Branch-free: zeros are common and unpredictable.
            for k in range(start, stop):
                v = a[m, k]
                a_float[m, k] = v
                nonzero = np.int64(v != 0)
                pattern |= nonzero << (k - start)
                col_nonzero[k] += nonzero
                hi = max(hi, v)
                lo = min(lo, v)
            hist[q, pattern] += 1
    return max(hi, -lo)


def parallel_histogram(a: np.ndarray, lanes: int):
    """Histogram of the non-zero lane patterns of a bit-parallel operand.

    Parameters
    ----------
    a : ndarray of int64, shape (M, Kd)
        One row per row of the array's parallel operand; K (the last axis) is cut into groups
        of ``lanes`` (a short last group has its missing lanes 0).
    lanes : int, 1..12

    Returns
    -------
    hist : ndarray of int64, shape (Q, 2**lanes)
        ``hist[q, p]``: rows whose group q has non-zero lanes exactly p (lane t = bit t).
    col_nonzero : ndarray of int64, shape (Kd,)
        Non-zero entries per column of ``a``.
    a_float : ndarray of float64, shape (M, Kd)
        ``a`` as float64.
    bound : int
        ``max |a|`` (0 when empty).
    """
    _check_lanes(lanes)
    a = np.ascontiguousarray(a, dtype=np.int64)
    if a.ndim != 2:
        raise ValueError("a must be 2-D")
    n_q = -(-a.shape[1] // lanes)
    hist = np.zeros((n_q, 1 << lanes), dtype=np.int64)
    col_nonzero = np.zeros(a.shape[1], dtype=np.int64)
    a_float = np.empty(a.shape, dtype=np.float64)
    bound = int(_parallel_histogram(a, lanes, hist, col_nonzero, a_float)) if a.size else 0
    return hist, col_nonzero, a_float, bound


@njit
def _plane(word, bit):  # pragma: no cover - compiled
    """Bit ``bit`` of each byte t of ``word``, as bit t of the result: a shift, a mask of each
    byte's bit 0, and one multiplication that gathers those bits into the top byte."""
    low = (word >> np.uint64(bit)) & np.uint64(0x0101010101010101)
    return np.int64((low * np.uint64(0x0102040810204080)) >> np.uint64(56))


@njit
def _bitserial_weight_histogram(b, bits, lanes, hist, k_popcount, q_float,
                                popcount8):  # pragma: no cover - compiled
    kd, n = b.shape
    n_q = hist.shape[0]
    drop = 8 - bits
    half = (1 << drop) >> 1
    lo_q = -(1 << (bits - 1))
    hi_q = (1 << (bits - 1)) - 1
    code_mask = (1 << bits) - 1
    # Up to 8 lanes, lane t's code is byte t of a word and a slot's pattern is gathered
    # from the word at the end of the group (_plane); above, patterns are built bit by bit.
    bytes_ = lanes <= 8
    words = np.zeros(n, np.uint64)
    patterns = np.zeros((n, bits), np.int64)
    sq_error = np.int64(0)
    hi = np.int64(0)
    lo = np.int64(0)
    for q in range(n_q):
        start = q * lanes
        stop = min(start + lanes, kd)
        patterns[:, :] = 0
        words[:] = 0
        for k in range(start, stop):
            t = k - start
            count = np.int64(0)
            for j in range(n):
                x = b[k, j]
                if drop:
                    # round half to even on the 2^drop grid, then saturate: integer
                    # arithmetic equal to quantize_to_bits' rint(x / 2^drop)
                    y = x >> drop
                    rem = x - (y << drop)
                    y += np.int64(rem > half) | (np.int64(rem == half) & (y & 1))
                    y = min(max(y, lo_q), hi_q)
                    value = y << drop
                else:
                    y = x
                    value = x
                q_float[k, j] = value
                d = x - value
                sq_error += d * d
                hi = max(hi, value)
                lo = min(lo, value)
                code = y & code_mask
                count += popcount8[code]
                if bytes_:
                    words[j] |= np.uint64(code) << np.uint64(8 * t)
                else:
                    for r in range(bits):
                        patterns[j, r] |= ((code >> r) & 1) << t
            k_popcount[k] = count
        for j in range(n):
            for r in range(bits):
                if bytes_:
                    hist[q, _plane(words[j], r)] += 1
                else:
                    hist[q, patterns[j, r]] += 1
    return sq_error, max(hi, -lo)


def bitserial_weight_histogram(b: np.ndarray, bits: int, lanes: int):
    """Quantise weights to ``bits`` (signed) and histogram the lane patterns of their bits.

    Parameters
    ----------
    b : ndarray of int64, shape (Kd, N)
        Weights; K (the first axis) is cut into groups of ``lanes``.
    bits : int, 1..8
        Bits p of the serial code (round half to even, saturate; 8 leaves ``b`` unchanged).
    lanes : int, 1..12

    Returns
    -------
    hist : ndarray of int64, shape (Q, 2**lanes)
        ``hist[q, p]``: (column, bit) slots of group q whose set lanes are exactly p.
    k_popcount : ndarray of int64, shape (Kd,)
        Set code bits per row of ``b`` (summed over the columns).
    q_float : ndarray of float64, shape (Kd, N)
        The quantised weights (original scale) as float64.
    sq_error : int
        ``sum (b - quantised)**2``.
    bound : int
        ``max |quantised|``.
    """
    _check_lanes(lanes)
    if not 1 <= bits <= 8:
        raise ValueError("bits must lie in 1..8")
    b = np.ascontiguousarray(b, dtype=np.int64)
    if b.ndim != 2:
        raise ValueError("b must be 2-D")
    n_q = -(-b.shape[0] // lanes)
    hist = np.zeros((n_q, 1 << lanes), dtype=np.int64)
    k_popcount = np.zeros(b.shape[0], dtype=np.int64)
    q_float = np.empty(b.shape, dtype=np.float64)
    sq_error, bound = _bitserial_weight_histogram(b, bits, lanes, hist, k_popcount, q_float,
                                                  _POPCOUNT8)
    return hist, k_popcount, q_float, int(sq_error), int(bound)


@njit
def _position_histogram(approx, masks, shifts, table, lanes, hist, k_popcount, w_float,
                        popcount8):  # pragma: no cover - compiled
    kd, n_f = approx.shape
    n_q = hist.shape[0]
    slots = table.shape[1]
    bytes_ = lanes <= 8  # as in _bitserial_weight_histogram
    words = np.zeros(n_f, np.uint64)
    patterns = np.zeros((n_f, slots), np.int64)
    positions = np.zeros((n_f, slots), np.int64)
    hi = np.int64(0)
    lo = np.int64(0)
    for q in range(n_q):
        start = q * lanes
        stop = min(start + lanes, kd)
        for f in range(n_f):
            words[f] = 0
            for r in range(shifts[q, f]):
                positions[f, r] = table[masks[q, f], r]
                patterns[f, r] = 0
        for k in range(start, stop):
            t = k - start
            count = np.int64(0)
            for f in range(n_f):
                v = np.int64(approx[k, f])
                w_float[k, f] = v
                hi = max(hi, v)
                lo = min(lo, v)
                magnitude = abs(v) & 255
                count += popcount8[magnitude]
                if bytes_:
                    words[f] |= np.uint64(magnitude) << np.uint64(8 * t)
                else:
                    for r in range(shifts[q, f]):
                        patterns[f, r] |= ((magnitude >> positions[f, r]) & 1) << t
            k_popcount[k] = count
        for f in range(n_f):
            for r in range(shifts[q, f]):
                if bytes_:
                    hist[q, _plane(words[f], positions[f, r])] += 1
                else:
                    hist[q, patterns[f, r]] += 1
    return max(hi, -lo)


def position_histogram(approx: np.ndarray, masks: np.ndarray, shifts: np.ndarray,
                       table: np.ndarray, lanes: int):
    """Histogram the lane patterns of chosen bits of per-group-positioned magnitudes (SWIS).

    Parameters
    ----------
    approx : ndarray of int16, shape (Kd, F)
        Signed weights; lane t of group q of filter f reads bit ``table[masks[q, f], r]`` of
        ``|approx[q * lanes + t, f]|`` (as uint8) in slot r.
    masks : ndarray of int64, shape (Q, F), each in 0..255
    shifts : ndarray of int64, shape (Q, F)
        Slots processed per group, each in 0..table.shape[1].
    table : ndarray of uint8, shape (256, R)
        Positions of each mask per slot.
    lanes : int, 1..12

    Returns
    -------
    hist : ndarray of int64, shape (Q, 2**lanes)
        ``hist[q, p]``: processed (filter, slot) pairs of group q whose set lanes are exactly p.
    k_popcount : ndarray of int64, shape (Kd,)
        Set bits of the magnitudes per row of ``approx``.
    w_float : ndarray of float64, shape (Kd, F)
        ``approx`` as float64.
    bound : int
        ``max |approx|``.
    """
    _check_lanes(lanes)
    approx = np.ascontiguousarray(approx, dtype=np.int16)
    masks = np.ascontiguousarray(masks, dtype=np.int64)
    shifts = np.ascontiguousarray(shifts, dtype=np.int64)
    table = np.ascontiguousarray(table, dtype=np.uint8)
    n_q = -(-approx.shape[0] // lanes)
    if masks.shape != (n_q, approx.shape[1]) or shifts.shape != masks.shape:
        raise ValueError(f"shapes do not match: approx {approx.shape}, masks {masks.shape}, "
                         f"shifts {shifts.shape}, lanes {lanes}")
    if masks.size and (int(masks.min()) < 0 or int(masks.max()) > 255
                       or int(shifts.min()) < 0 or int(shifts.max()) > table.shape[1]):
        raise ValueError("masks must lie in 0..255 and shifts in 0..R")
    hist = np.zeros((n_q, 1 << lanes), dtype=np.int64)
    k_popcount = np.zeros(approx.shape[0], dtype=np.int64)
    w_float = np.empty(approx.shape, dtype=np.float64)
    bound = _position_histogram(approx, masks, shifts, table, lanes, hist, k_popcount, w_float,
                                _POPCOUNT8)
    return hist, k_popcount, w_float, int(bound)


@njit
def _active_from_histograms(hx, hy):  # pragma: no cover - compiled
    n_q, size = hx.shape
    lanes = 0
    while (1 << lanes) < size:
        lanes += 1
    total = np.int64(0)
    subsets = np.empty(size, np.int64)
    for q in range(n_q):
        n_x = np.int64(0)
        n_y = np.int64(0)
        for p in range(size):
            n_x += hx[q, p]
            n_y += hy[q, p]
            subsets[p] = hy[q, p]
        total += n_x * n_y - _disjoint_pairs(hx[q], subsets, lanes)
    return total


def active_from_histograms(hx: np.ndarray, hy: np.ndarray) -> int:
    """Processing cycles with at least one active lane, from both sides' pattern histograms.

    ``sum over q, x, y of hx[q, x] * hy[q, y] * [x & y != 0]``: the count of
    :func:`count_active_cycles` when ``hx`` and ``hy`` are the histograms of its ``x_pat``
    and of its processed ``y_pat`` slots.

    Parameters
    ----------
    hx, hy : ndarray of int64, shape (Q, 2**lanes)

    Returns
    -------
    int
    """
    if hx.shape != hy.shape or hx.ndim != 2 or hx.shape[1] & (hx.shape[1] - 1):
        raise ValueError(f"histograms must both be (Q, 2**lanes), not {hx.shape}, {hy.shape}")
    hx = np.ascontiguousarray(hx, dtype=np.int64)
    hy = np.ascontiguousarray(hy, dtype=np.int64)
    return int(_active_from_histograms(hx, hy)) if hx.size else 0


def _check_lanes(lanes: int) -> None:
    if not 1 <= lanes <= _DENSE_LANES:
        raise ValueError(f"lanes must lie in 1..{_DENSE_LANES}")


_POPCOUNT8 = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)
