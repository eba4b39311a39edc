"""SPARQ and A4W8 functional kernels: window values, pair transforms and the 2:4 kernel.

bSPARQ (docs/hardware-spec.md §4) maps an 8-bit magnitude x to an n-bit window: with L the index of
x's leading one, the window starts at the smallest allowed LSB position p with p + n - 1 >= L
and keeps bits [p+n-1 : p]; ``round`` mode rounds the dropped bits half to even and saturates
at the window's all-ones value ((2**n - 1) << p) when rounding overflows it.
:func:`window_values` evaluates that for arrays of magnitudes; the PE models turn it into
lookup tables indexed by the signed activation (``a + 255``).

Two kernels apply the tables to a whole GEMM group:

- :func:`pair_transform` (vSPARQ on adjacent pairs (k, k+1), and A4W8): each activation
  becomes the table's value for its partner's zero state (``narrow`` when the partner is
  non-zero, ``wide`` when it is zero), written as float64 so that the outputs are one exact
  BLAS product; it also counts the pairs by the classes of their two products (small
  integers the caller names), the odd-Kd padding slot included. Classes do not depend on the
  weights, so the caller multiplies the counts by the number of columns.
- :func:`stc_gemm` (2:4 mode, after :func:`stc_compress` has turned B into per-(group, column)
  selection patterns and slot weights): the activation each product sees depends on the
  column's pattern. For a block of 32 output rows and one group, the kernel evaluates the two
  approximated activations of every selection pattern (:data:`STC_PATTERNS`) as 32-lane
  vectors, then adds, per column, its pattern's two vectors times the column's two weights.
  The product classes are counted once per (row, group, pattern), weighted by the number of
  columns with that pattern, not in the per-column loop.

Both are exact: the float sums are of integers below 2**24 (float32, flushed to float64) or
2**53 (float64).

Kernels take arrays and integers only and import nothing from the rest of the package.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from simulator.kernels.jit import njit

__all__ = ["LUT_OFFSET", "STC_EMPTY", "STC_PATTERNS", "window_values", "pair_transform",
           "stc_compress", "stc_gemm"]

#: Lookup tables are indexed by ``activation + LUT_OFFSET`` (activations -255..255).
LUT_OFFSET = 255

#: Position index of an empty 2:4 slot (no non-zero weight left in the group).
STC_EMPTY = 4

#: The selection patterns of a 2:4 group: (slot 0, slot 1) positions in the group, in K order;
#: ``STC_EMPTY`` marks an empty slot. Code 0: no non-zero weight; 1-4: one; 5-10: two.
STC_PATTERNS = np.array([[4, 4], [0, 4], [1, 4], [2, 4], [3, 4],
                         [0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]], dtype=np.int64)

# 4-bit mask of a group's non-zero weight positions -> STC_PATTERNS row (-1: over two).
_MASK_TO_CODE = np.full(16, -1, dtype=np.int32)
for _code, (_i, _j) in enumerate(STC_PATTERNS.tolist()):
    _MASK_TO_CODE[(1 << _i if _i < STC_EMPTY else 0) | (1 << _j if _j < STC_EMPTY else 0)] = _code

# Output rows per block sharing a group's pattern codes and weights. 32, not 8: numba leaves
# LLVM's SLP vectoriser off, so only a loop vectorises, and an 8-trip loop ran scalar (about
# 3x slower on ResNet-18's layers); a short last block pays for its empty lanes.
_ROWS = 32
_FLUSH = 128  # groups between float32 -> float64 flushes: 128 * 2 * 255 * 128 < 2**24


def window_values(x: np.ndarray, n_bits: int, shifts: tuple[int, ...],
                  round_half_even: bool) -> tuple[np.ndarray, np.ndarray]:
    """bSPARQ window of every magnitude in ``x``.

    Parameters
    ----------
    x : ndarray of int
        Magnitudes, 0..255.
    n_bits : int
        Window width n.
    shifts : tuple of int
        Allowed window LSB positions p; ``max(shifts) + n_bits - 1`` must reach bit 7.
    round_half_even : bool
        Round the dropped bits half to even (saturating in the window) instead of truncating.

    Returns
    -------
    values : ndarray of int64
        The windowed magnitudes, in the original scale (mantissa << p); 0 stays 0.
    shift : ndarray of int64
        The window position p used (0 for x = 0).
    """
    x = np.asarray(x, dtype=np.int64)
    if x.size and (int(x.min()) < 0 or int(x.max()) > 255):
        raise ValueError("window_values takes magnitudes 0..255")
    if max(shifts) + n_bits - 1 < 7:
        raise ValueError(f"shifts {shifts} with n = {n_bits} do not reach bit 7")
    lead = np.zeros_like(x)
    for bit in range(1, 8):
        lead += (x >> bit) > 0
    shift = np.full_like(x, -1)
    for p in sorted(shifts, reverse=True):  # the smallest position that fits overwrites last
        shift = np.where(p + n_bits - 1 >= lead, p, shift)
    mantissa = x >> shift
    if round_half_even:
        below = np.where(shift > 0, (x >> np.maximum(shift - 1, 0)) & 1, 0)
        sticky = (x & ((1 << np.maximum(shift - 1, 0)) - 1)) != 0
        mantissa = mantissa + (below & ((mantissa & 1) | sticky))
        mantissa = np.minimum(mantissa, (1 << n_bits) - 1)
    return mantissa << shift, shift


# Not parallel: the pass is memory-bound, and numba's OpenMP threads spin-waiting after a
# parallel region measurably slowed the BLAS product that follows it.
@njit
def _pair_transform(a, values, classes, n_classes, out, joint, extremes):  # pragma: no cover
    m_rows, kd = a.shape
    size = 2 * LUT_OFFSET + 1
    steps = (kd + 1) // 2
    lo = 0
    hi = 0
    for m in range(m_rows):
        for s in range(steps):
            k0 = 2 * s
            x0 = a[m, k0]
            x1 = a[m, k0 + 1] if k0 + 1 < kd else 0
            lo = min(lo, x0, x1)
            hi = max(hi, x0, x1)
            # Out-of-range values are reported through `extremes`; index 0 meanwhile.
            i0 = x0 + LUT_OFFSET if -LUT_OFFSET <= x0 <= LUT_OFFSET else LUT_OFFSET
            i1 = x1 + LUT_OFFSET if -LUT_OFFSET <= x1 <= LUT_OFFSET else LUT_OFFSET
            # Branch-free: the table's second half is for a non-zero partner.
            c0 = i0 + size * (1 if x1 != 0 else 0)
            c1 = i1 + size * (1 if x0 != 0 else 0)
            out[m, k0] = values[c0]
            if k0 + 1 < kd:
                out[m, k0 + 1] = values[c1]
            # Four sub-histograms so that increments of one pair of classes do not wait on
            # each other; an odd Kd's padding slot counts as a product of 0.
            joint[s & 3, classes[c0] * n_classes + classes[c1]] += 1
    extremes[0] = lo
    extremes[1] = hi


def pair_transform(a: np.ndarray, narrow: np.ndarray, wide: np.ndarray,
                   narrow_cls: np.ndarray, wide_cls: np.ndarray,
                   n_classes: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Approximated activations and the product classes of adjacent pairs (k, k+1).

    Parameters
    ----------
    a : int64 (M, Kd)
        Activations, -255..255.
    narrow, wide : float64 (511,)
        Value used for activation ``a`` (at index ``a + LUT_OFFSET``) when its partner is
        non-zero / zero; both must map 0 to 0.
    narrow_cls, wide_cls : int64 (511,)
        The product class of each case, 0..n_classes-1.
    n_classes : int
        Number of product classes.

    Returns
    -------
    approx : float64 (M, Kd)
        The activations the multipliers see.
    joint : int64 (n_classes, n_classes)
        Pairs by the classes of their first and second product, over all rows and the
        ceil(Kd/2) pairs of each row (an odd Kd's last element pairs with a padding 0, whose
        class is that of activation 0); not yet multiplied by the number of columns.
    a_min, a_max : int
        The smallest and largest activation (0 included), so that the caller can check the
        operands' precision without another pass.

    Raises
    ------
    ValueError
        If an argument has the wrong shape or dtype, or an activation is outside -255..255.
    """
    values, classes = _paired_tables(narrow, wide, narrow_cls, wide_cls, n_classes)
    if a.dtype != np.int64 or a.ndim != 2:
        raise ValueError("pair_transform takes an int64 (M, Kd) activation matrix")
    out = np.empty(a.shape, dtype=np.float64)
    joint = np.zeros((4, n_classes * n_classes), dtype=np.int64)
    extremes = np.zeros(2, dtype=np.int64)
    _pair_transform(np.ascontiguousarray(a), values, classes, n_classes, out, joint, extremes)
    a_min, a_max = int(extremes[0]), int(extremes[1])
    _check_range(a_min, a_max)
    return out, joint.sum(axis=0).reshape(n_classes, n_classes), a_min, a_max


def _paired_tables(narrow, wide, narrow_cls, wide_cls, n_classes):
    """Check the four tables; return (values, classes) indexed ``a + 511 * [partner != 0]``."""
    for name, table, dtype in (("narrow", narrow, np.float64), ("wide", wide, np.float64),
                               ("narrow_cls", narrow_cls, np.int64),
                               ("wide_cls", wide_cls, np.int64)):
        if table.shape != (2 * LUT_OFFSET + 1,) or table.dtype != dtype:
            raise ValueError(f"{name} must be a ({2 * LUT_OFFSET + 1},) {np.dtype(dtype)} table")
    if min(int(narrow_cls.min()), int(wide_cls.min())) < 0 or max(
            int(narrow_cls.max()), int(wide_cls.max())) >= n_classes:
        raise ValueError(f"class tables must lie in 0..{n_classes - 1}")
    return np.concatenate([wide, narrow]), np.concatenate([wide_cls, narrow_cls])


def _check_range(a_min: int, a_max: int) -> None:
    if a_min < -LUT_OFFSET or a_max > LUT_OFFSET:
        raise ValueError(f"activations must lie in -{LUT_OFFSET}..{LUT_OFFSET}, "
                         f"not {a_min}..{a_max}")


@njit
def _stc_compress(b, mask_to_code, code, w0, w1):  # pragma: no cover - compiled
    kd, n_cols = b.shape
    n_groups = code.shape[0]
    for g in range(n_groups):
        for n in range(n_cols):
            mask = 0
            first = 0
            second = 0
            found = 0
            for i in range(4):
                k = 4 * g + i
                if k < kd and b[k, n] != 0:
                    mask |= 1 << i
                    if found == 0:
                        first = b[k, n]
                    elif found == 1:
                        second = b[k, n]
                    found += 1
            if found > 2:
                return g, n, found
            code[g, n] = mask_to_code[mask]
            w0[g, n] = first
            w1[g, n] = second
    return -1, -1, 0


def stc_compress(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                         tuple[int, int, int] | None]:
    """2:4 compression of weights B (Kd, N): per group of four K elements and column, the
    selection pattern and the weights of its two slots.

    Returns
    -------
    code : int32 (G, N), G = ceil(Kd/4)
        The :data:`STC_PATTERNS` row of the group's non-zero weight positions (a missing
        position of a short last group counts as a zero weight).
    w0, w1 : float32 (G, N)
        The first and second non-zero weight of the group (0 when missing).
    violation : (g, n, count) or None
        The first group with more than two non-zero weights, if any (then the arrays are
        incomplete).
    """
    if b.dtype != np.int64 or b.ndim != 2:
        raise ValueError("stc_compress takes an int64 (Kd, N) weight matrix")
    n_groups = -(-b.shape[0] // 4)
    code = np.zeros((n_groups, b.shape[1]), dtype=np.int32)
    w0 = np.zeros(code.shape, dtype=np.float32)
    w1 = np.zeros(code.shape, dtype=np.float32)
    g, n, count = _stc_compress(np.ascontiguousarray(b), _MASK_TO_CODE, code, w0, w1)
    return code, w0, w1, (None if g < 0 else (int(g), int(n), int(count)))


@njit(parallel=True, checked=False)
def _stc_gemm(a, values, classes, n_classes, code, w0, w1, col_count, present, patterns, out,
              joint, extremes):  # pragma: no cover - compiled
    m_rows, kd = a.shape
    size = 2 * LUT_OFFSET + 1
    n_groups, n_cols = code.shape
    n_patterns = patterns.shape[0]
    n_blocks = (m_rows + _ROWS - 1) // _ROWS
    for blk in prange(n_blocks):
        m0 = blk * _ROWS
        rows = min(_ROWS, m_rows - m0)
        # Rows are the fast axis: per column, the block's rows are one vector of lanes.
        acc = np.zeros((n_cols, _ROWS), np.float32)
        acc64 = np.zeros((n_cols, _ROWS), np.float64)
        t0 = np.zeros((n_patterns, _ROWS), np.float32)
        t1 = np.zeros((n_patterns, _ROWS), np.float32)
        # Per group position (4: an empty slot, a zero activation): table index, value with a
        # zero / a non-zero partner, and whether the activation is non-zero.
        index = np.full((5, _ROWS), LUT_OFFSET, np.int64)
        wide_v = np.zeros((5, _ROWS), np.float32)
        narrow_v = np.zeros((5, _ROWS), np.float32)
        nonzero = np.zeros((5, _ROWS), np.int64)
        partner_f = np.zeros((5, _ROWS), np.float32)
        lo = 0
        hi = 0
        for g in range(n_groups):
            for mi in range(rows):
                for i in range(4):
                    k = 4 * g + i
                    x = a[m0 + mi, k] if k < kd else 0
                    lo = min(lo, x)
                    hi = max(hi, x)
                    idx = x + LUT_OFFSET if -LUT_OFFSET <= x <= LUT_OFFSET else LUT_OFFSET
                    index[i, mi] = idx
                    wide_v[i, mi] = values[idx]
                    narrow_v[i, mi] = values[size + idx]
                    nonzero[i, mi] = 1 if idx != LUT_OFFSET else 0
                    partner_f[i, mi] = nonzero[i, mi]
            for c in range(n_patterns):
                if not present[g, c]:
                    continue
                i = patterns[c, 0]
                j = patterns[c, 1]
                # Arithmetic select (exact on these small integers): a branch here would be
                # mispredicted on half of the activations.
                for mi in range(_ROWS):
                    t0[c, mi] = wide_v[i, mi] + partner_f[j, mi] * (narrow_v[i, mi] - wide_v[i, mi])
                    t1[c, mi] = wide_v[j, mi] + partner_f[i, mi] * (narrow_v[j, mi] - wide_v[j, mi])
                # Every column with this pattern has the same pair of product classes.
                weight = col_count[g, c]
                for mi in range(rows):
                    c0 = classes[index[i, mi] + size * nonzero[j, mi]]
                    c1 = classes[index[j, mi] + size * nonzero[i, mi]]
                    joint[blk, c0 * n_classes + c1] += weight
            cg = code[g]
            x0 = w0[g]
            x1 = w1[g]
            for n in range(n_cols):
                c = cg[n]
                u0 = x0[n]
                u1 = x1[n]
                r0 = t0[c]
                r1 = t1[c]
                col = acc[n]
                for mi in range(_ROWS):
                    col[mi] += r0[mi] * u0 + r1[mi] * u1
            if (g + 1) % _FLUSH == 0:
                for n in range(n_cols):
                    for mi in range(_ROWS):
                        acc64[n, mi] += acc[n, mi]
                        acc[n, mi] = 0.0
        for mi in range(rows):
            for n in range(n_cols):
                out[m0 + mi, n] = np.int64(acc64[n, mi] + acc[n, mi])
        extremes[blk, 0] = lo
        extremes[blk, 1] = hi


def stc_gemm(a: np.ndarray, narrow: np.ndarray, wide: np.ndarray, narrow_cls: np.ndarray,
             wide_cls: np.ndarray, code: np.ndarray, w0: np.ndarray, w1: np.ndarray,
             n_classes: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """SPARQ in 2:4 mode over one GEMM group: outputs and product classes.

    Parameters
    ----------
    a : int64 (M, Kd)
        Activations, -255..255.
    narrow, wide, narrow_cls, wide_cls : tables as in :func:`pair_transform`.
    code : int32 (G, N), G = ceil(Kd/4)
        Selection pattern (a row of :data:`STC_PATTERNS`) of group g in column n.
    w0, w1 : float32 (G, N)
        The weights of the pattern's slot 0 and slot 1 (0 for an empty slot), |w| <= 128.
    n_classes : int
        Number of product classes.

    Returns
    -------
    outputs : int64 (M, N)
    joint : int64 (n_classes, n_classes)
        PE-steps (row, column, group) by the classes of their slot-0 and slot-1 products (an
        empty slot's product is that of activation 0).
    a_min, a_max : int
        The smallest and largest activation (0 included).

    Raises
    ------
    ValueError
        If an argument has the wrong shape, dtype or range.
    """
    values, classes = _paired_tables(narrow, wide, narrow_cls, wide_cls, n_classes)
    if a.dtype != np.int64 or a.ndim != 2:
        raise ValueError("stc_gemm takes an int64 (M, Kd) activation matrix")
    m_rows, kd = a.shape
    n_groups = -(-kd // 4)
    if code.ndim != 2 or code.shape[0] != n_groups or code.dtype != np.int32:
        raise ValueError(f"code must be an int32 ({n_groups}, N) array")
    if w0.shape != code.shape or w1.shape != code.shape:
        raise ValueError(f"w0 and w1 must have code's shape {code.shape}")
    if w0.dtype != np.float32 or w1.dtype != np.float32:
        raise ValueError("w0 and w1 must be float32")
    if code.size and (int(code.min()) < 0 or int(code.max()) >= len(STC_PATTERNS)):
        raise ValueError(f"codes must lie in 0..{len(STC_PATTERNS) - 1}")
    if max(float(np.abs(w0).max(initial=0)), float(np.abs(w1).max(initial=0))) > 128:
        raise ValueError("weights must lie in -128..128 for exact float32 sums")
    # Columns per (group, pattern); bincount, not np.add.at, which is many times slower.
    n_patterns = len(STC_PATTERNS)
    keys = code + (np.arange(n_groups, dtype=np.int32) * n_patterns)[:, None]
    col_count = np.bincount(keys.ravel(), minlength=n_groups * n_patterns).reshape(
        n_groups, n_patterns).astype(np.int64, copy=False)
    out = np.empty((m_rows, code.shape[1]), dtype=np.int64)
    n_blocks = -(-m_rows // _ROWS)
    joint = np.zeros((n_blocks, n_classes * n_classes), dtype=np.int64)
    extremes = np.zeros((n_blocks, 2), dtype=np.int64)
    _stc_gemm(np.ascontiguousarray(a), values, classes, n_classes, np.ascontiguousarray(code),
              np.ascontiguousarray(w0), np.ascontiguousarray(w1), col_count, col_count > 0,
              STC_PATTERNS, out, joint, extremes)
    a_min, a_max = (int(extremes[:, 0].min(initial=0)), int(extremes[:, 1].max(initial=0)))
    _check_range(a_min, a_max)
    return out, joint.sum(axis=0).reshape(n_classes, n_classes), a_min, a_max
