"""The compiled loops of the SySMT kernel (:mod:`simulator.kernels.sysmt` drives them and
documents how they are fast).

Compiled by numba on first use, or ahead of time (:data:`AOT`, the variants
simulator/kernels/aot.py builds; docs/performance.md, "Kernels compiled ahead of time").
The constants it compiles in are written here and checked against the driver's on import
(:func:`simulator.kernels.compiled.same_constants`).
"""

from __future__ import annotations

import numpy as np
from numba import types

from simulator.kernels.compiled import same_constants
from simulator.kernels.jit import njit

# compiled in: written here (numba's cache sees this file only), checked against the driver's
_LOW, _HIGH = -128, 255
_EXCEPTION_RATIO = 16
same_constants("simulator.kernels.sysmt", {"_LOW": _LOW, "_HIGH": _HIGH,
                                           "_EXCEPTION_RATIO": _EXCEPTION_RATIO})

__all__ = ["trim", "AOT"]


@njit(checked=False, inline="always")
def trim(v, half_even):  # pragma: no cover - compiled
    """Reduce a float32 holding an 8-bit value to its high nibble, keeping the sign.

    |v| < 16 is kept; otherwise |v| / 16 is rounded (half to even, or truncated), times 16,
    saturating at 240 (docs/hardware-spec.md §3).
    """
    mag = abs(v)
    scaled = mag * np.float32(0.0625)
    q = np.rint(scaled) if half_even else np.floor(scaled)
    kept = min(q * np.float32(16.0), np.float32(240.0))
    return v if mag < np.float32(16.0) else np.copysign(kept, v)


@njit(checked=False)
def _weight_row(b, k, half_even, sparsity_aware, wc, wstate):  # pragma: no cover - compiled
    """Row k of :func:`_prepare_weights`; returns (largest |w|, out-of-range count)."""
    zero = np.float32(0.0)
    sixteen = np.float32(16.0)
    uk = np.uint64(k)
    big = 0
    bad = 0
    for n in range(np.uint64(b.shape[1])):
        v = b[k, n]
        bad += (1 if v < _LOW else 0) + (1 if v > _HIGH else 0)
        v = min(max(v, _LOW), _HIGH)
        big = max(big, abs(v))
        # Through int32: AVX2 converts int32 lanes to float, not int64 ones.
        w = np.float32(np.int32(v))
        wr = w if (abs(w) >= sixteen or not sparsity_aware) else zero
        tw = trim(w, half_even)
        wc[uk, 0, n] = w
        wc[uk, 1, n] = wr
        wc[uk, 2, n] = tw
        # The column state (:func:`_column_histogram`), or bit 4 for a zero weight.
        wstate[uk, n] = (16 if w == zero else 1 + (1 if wr != zero else 0)
                         + (1 if tw != w else 0))
    return big, bad


@njit(checked=False)
def _prepare_weights(b, half_even, sparsity_aware, wc, wstate, k_lo, k_hi):  # pragma: no cover
    """Rows k_lo..k_hi: ``wc[k, i] = (w, wr, tw)[i]`` as float32, and ``wstate[k]`` one byte
    per weight (its column state, 16 for zero), all the column pass reads.

    Returns the largest |weight| and the number of weights outside -128..255.
    """
    big = 0
    bad = 0
    for k in range(k_lo, k_hi):
        row_big, row_bad = _weight_row(b, k, half_even, sparsity_aware, wc, wstate)
        big = max(big, row_big)
        bad += row_bad
    return big, bad


@njit(checked=False)
def _column_step(wstate, schedule, j, hist_cols, ex_cols, codes, partial):  # pragma: no cover
    """Step j of :func:`_column_histogram`."""
    threads = schedule.shape[0]
    n_cols = wstate.shape[1]
    for n in range(np.uint64(n_cols)):
        codes[n] = 0
    scale = 1
    for t in range(threads):
        k = schedule[t, j]
        if k >= 0:
            uk = np.uint64(k)
            for n in range(np.uint64(n_cols)):
                state = np.int32(wstate[uk, n])
                # The code in the low bits, the count of zero weights from bit 20 up.
                codes[n] += scale * (state & 15) + ((state >> 4) << 20)
        scale *= 4
    # Four partial histograms: consecutive columns often share a code, and one histogram
    # would chain every increment through memory.
    for q in range(4):
        for code in range(partial.shape[1]):
            partial[q, code] = 0
    count = 0
    for n in range(n_cols):
        packed = codes[n]
        partial[n & 3, packed & 0xFFFFF] += 1
        # Always written, kept only where two or more threads meet a zero weight.
        ex_cols[j, 1 + count] = n
        count += 1 if packed >> 20 >= 2 else 0
    ex_cols[j, 0] = count
    for code in range(partial.shape[1]):
        hist_cols[j, code] = (partial[0, code] + partial[1, code] + partial[2, code]
                              + partial[3, code])


@njit(checked=False)
def _column_histogram(wstate, schedule, hist_cols, ex_cols, j_lo, j_hi):  # pragma: no cover
    """For steps j_lo..j_hi: ``hist_cols[j, code]``, the columns whose joint weight state at
    step j is ``code`` (base 4, thread t adding ``4**t * state``: 0 zero weight or no
    operand, 1 narrow (wr == 0), 2 wide, 3 wide and trimmed (tw != w); a narrow weight is
    below 16 and never trimmed), and ``ex_cols[j, 1:1 + ex_cols[j, 0]]``, the columns
    where two or more threads meet a zero weight (the exceptions of the four-thread loop
    of :func:`_tile`).
    """
    # int32, as wide as the float32 lanes it is computed with.
    codes = np.empty(wstate.shape[1], np.int32)
    partial = np.empty((4, hist_cols.shape[1]), np.int64)
    for j in range(j_lo, j_hi):
        _column_step(wstate, schedule, j, hist_cols, ex_cols, codes, partial)


def _dispatch_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables over a (row, step)'s mask: bit t = thread t's activation is non-zero,
    bit 4 + t = it loses bits to trimming (the state bytes of the threads, shifted by t).

    ``_CLASS[mask]``: 0 no live thread, 1 one, 2 two exact, 3 two with a loss, 4 three,
    5 four. ``_LIVE[mask & 15]``: the live threads first, in order. ``_CODE[mask]``: the row
    state code of the counters (base 3, thread t adding ``3**t`` * (0 zero, 1 exact,
    2 trimmed)).
    """
    cls = np.zeros(256, np.int64)
    live = np.zeros((16, 4), np.int64)
    code = np.zeros(256, np.int64)
    for mask in range(256):
        threads = [t for t in range(4) if mask >> t & 1]
        lossy = any(mask >> (4 + t) & 1 for t in threads)
        p = len(threads)
        cls[mask] = p + (1 if p >= 3 or (p == 2 and lossy) else 0)
        code[mask] = sum(3**t * ((mask >> t & 1) + (mask >> (4 + t) & 1)) for t in range(4))
        if mask < 16:
            live[mask] = threads + [t for t in range(4) if t not in threads]
    return cls, live, code


_CLASS, _LIVE, _CODE = _dispatch_tables()


@njit(checked=False)
def _convert_rows(a, m0, rows, half_even, af, df, st):  # pragma: no cover - compiled
    """Rows m0..m0+rows of A, vectorised along K: ``af`` the activations (float32), ``df``
    their trim losses ``a - ta``, ``st`` a state byte (bit 0: non-zero, bit 4: trimmed).

    Column Kd of the outputs is a zero operand for threads with nothing to feed (set by
    the caller). Returns the number of activations outside -128..255.
    """
    zero = np.float32(0.0)
    bad = 0
    for i in range(rows):
        m = m0 + i
        ui = np.uint64(i)
        for k in range(np.uint64(a.shape[1])):
            v = a[m, k]
            bad += (1 if v < _LOW else 0) + (1 if v > _HIGH else 0)
            x = np.float32(np.int32(min(max(v, _LOW), _HIGH)))
            d = x - trim(x, half_even)
            af[ui, k] = x
            df[ui, k] = d
            st[ui, k] = (1 if x != zero else 0) | (16 if d != zero else 0)
    return bad


@njit(checked=False)
def _tile(schedule, wc, ex_cols, af, df, st, out, exact, hist, m0, rows, n0, n1, j0, j1,
          flush, count, acc, acc64, loss, loss64, kr, wrow):  # pragma: no cover - compiled
    """Outputs of rows m0..m0+rows (converted in ``af``, ``df``, ``st``) and columns n0..n1,
    summed over steps j0..j1, into ``out``; the exact products ``a @ b`` into ``exact``.

    A (row, step)'s threads are dispatched through its mask (:func:`_dispatch_tables`),
    built from the state bytes. One and two exact threads are exact; the other classes
    also sum their loss (exact minus SySMT result) in ``loss``. When ``count``, each
    (row, step)'s state code goes into ``hist[i & 3, j, code]`` (four partial histograms).
    """
    kd = af.shape[1] - 1  # column kd is the zero operand
    threads = schedule.shape[0]
    steps = schedule.shape[1]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    two = np.float32(2.0)
    lo = np.uint64(n0)
    hi = np.uint64(n1)
    for i in range(rows):
        ui = np.uint64(i)
        for n in range(lo, hi):
            acc[ui, n] = zero
            acc64[ui, n] = 0.0
            loss[ui, n] = zero
            loss64[ui, n] = 0.0
    for j in range(j0, j1):
        # Scalar fix-ups pay only while the exceptions are few (dense weights); pruned
        # weights make many, and the four-thread loop then uses the full formula.
        few_exceptions = ex_cols[j, 0] * _EXCEPTION_RATIO <= n1 - n0
        for t in range(4):
            k = schedule[t, j] if t < threads else -1
            kr[t] = k if k >= 0 else kd
            wrow[t] = np.uint64(max(k, 0))
        for i in range(rows):
            ui = np.uint64(i)
            mask = (st[i, kr[0]] | (st[i, kr[1]] << 1) | (st[i, kr[2]] << 2)
                    | (st[i, kr[3]] << 3))
            if count:  # four partial histograms: consecutive rows often share a code
                hist[i & 3, j, _CODE[mask]] += 1.0
            cls = _CLASS[mask]
            if cls == 0:
                continue
            t0 = _LIVE[mask & 15, 0]
            a0 = af[i, kr[t0]]
            w0 = wrow[t0]
            if cls == 1:
                for n in range(lo, hi):
                    acc[ui, n] += a0 * wc[w0, 0, n]
                continue
            t1 = _LIVE[mask & 15, 1]
            a1 = af[i, kr[t1]]
            w1 = wrow[t1]
            if cls == 2:
                for n in range(lo, hi):
                    acc[ui, n] += a0 * wc[w0, 0, n] + a1 * wc[w1, 0, n]
                continue
            d0 = df[i, kr[t0]]
            d1 = df[i, kr[t1]]
            if cls == 3:
                # Two active threads collide where both weights are non-zero; a thread's
                # d*wr is non-zero only where its own weight is, so the partner decides.
                for n in range(lo, hi):
                    x0 = wc[w0, 0, n]
                    x1 = wc[w1, 0, n]
                    e0 = d0 * wc[w0, 1, n]
                    e1 = d1 * wc[w1, 1, n]
                    lost = (e0 if x1 != zero else zero) + (e1 if x0 != zero else zero)
                    acc[ui, n] += (a0 * x0 + a1 * x1) - lost
                    loss[ui, n] += lost
                continue
            t2 = _LIVE[mask & 15, 2]
            a2 = af[i, kr[t2]]
            d2 = df[i, kr[t2]]
            w2 = wrow[t2]
            v0 = a0 - d0
            v1 = a1 - d1
            v2 = a2 - d2
            if cls == 4:
                for n in range(lo, hi):
                    x0 = wc[w0, 0, n]
                    x1 = wc[w1, 0, n]
                    x2 = wc[w2, 0, n]
                    c = ((one if x0 != zero else zero) + (one if x1 != zero else zero)
                         + (one if x2 != zero else zero))
                    s1 = a0 * x0 + a1 * x1 + a2 * x2
                    s2 = d0 * wc[w0, 1, n] + d1 * wc[w1, 1, n] + d2 * wc[w2, 1, n]
                    s3 = v0 * wc[w0, 2, n] + v1 * wc[w1, 2, n] + v2 * wc[w2, 2, n]
                    # The three cases as exact arithmetic (0/1 weights times integers below
                    # 2**24), not selects: LLVM turns those into masked stores and scatters.
                    lost = (np.float32(c == two) * s2
                            + np.float32(c > two) * (s1 - s3))
                    acc[ui, n] += s1 - lost
                    loss[ui, n] += lost
                continue
            t3 = _LIVE[mask & 15, 3]
            a3 = af[i, kr[t3]]
            d3 = df[i, kr[t3]]
            w3 = wrow[t3]
            v3 = a3 - d3
            if few_exceptions:
                # Four live threads: with at most one zero weight c >= 3 and the result is
                # sum(ta*tw) (a zero weight's term is 0); the step's columns with two or
                # more zero weights (c <= 2) are fixed afterwards.
                for n in range(lo, hi):
                    s3 = (v0 * wc[w0, 2, n] + v1 * wc[w1, 2, n] + v2 * wc[w2, 2, n]
                          + v3 * wc[w3, 2, n])
                    acc[ui, n] += s3
                    loss[ui, n] += (a0 * wc[w0, 0, n] + a1 * wc[w1, 0, n] + a2 * wc[w2, 0, n]
                                    + a3 * wc[w3, 0, n]) - s3
                for e in range(1, 1 + ex_cols[j, 0]):
                    n = ex_cols[j, e]
                    if n < n0 or n >= n1:
                        continue
                    x0 = wc[w0, 0, n]
                    x1 = wc[w1, 0, n]
                    x2 = wc[w2, 0, n]
                    x3 = wc[w3, 0, n]
                    c = ((1 if x0 != zero else 0) + (1 if x1 != zero else 0)
                         + (1 if x2 != zero else 0) + (1 if x3 != zero else 0))
                    s1 = a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                    s2 = (d0 * wc[w0, 1, n] + d1 * wc[w1, 1, n] + d2 * wc[w2, 1, n]
                          + d3 * wc[w3, 1, n])
                    s3 = (v0 * wc[w0, 2, n] + v1 * wc[w1, 2, n] + v2 * wc[w2, 2, n]
                          + v3 * wc[w3, 2, n])
                    acc[i, n] += (s1 - s2 if c == 2 else s1) - s3
                    # The loop above added the loss s1 - s3 of c >= 3.
                    loss[i, n] += (s2 if c == 2 else zero) - (s1 - s3)
                continue
            for n in range(lo, hi):
                x0 = wc[w0, 0, n]
                x1 = wc[w1, 0, n]
                x2 = wc[w2, 0, n]
                x3 = wc[w3, 0, n]
                c = ((one if x0 != zero else zero) + (one if x1 != zero else zero)
                     + (one if x2 != zero else zero) + (one if x3 != zero else zero))
                s1 = a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                s2 = (d0 * wc[w0, 1, n] + d1 * wc[w1, 1, n] + d2 * wc[w2, 1, n]
                      + d3 * wc[w3, 1, n])
                s3 = (v0 * wc[w0, 2, n] + v1 * wc[w1, 2, n] + v2 * wc[w2, 2, n]
                      + v3 * wc[w3, 2, n])
                lost = np.float32(c == two) * s2 + np.float32(c > two) * (s1 - s3)
                acc[ui, n] += s1 - lost
                loss[ui, n] += lost
        if (j + 1 - j0) % flush == 0:
            for i in range(rows):
                ui = np.uint64(i)
                for n in range(lo, hi):
                    acc64[ui, n] += acc[ui, n]
                    acc[ui, n] = zero
                    loss64[ui, n] += loss[ui, n]
                    loss[ui, n] = zero
    for i in range(rows):
        ui = np.uint64(i)
        for n in range(lo, hi):
            result = np.int64(acc64[ui, n] + acc[ui, n])
            out[m0 + i, n] = result
            exact[m0 + i, n] = result + np.int64(loss64[ui, n] + loss[ui, n])


@njit(checked=False)
def _outputs(a, schedule, half_even, wc, ex_cols, outs, exacts, hist, tiles, flush, first,
             end):  # pragma: no cover - compiled
    """Tiles first..end (rows of ``tiles``: first row, rows, first column, end column,
    first step, end step, output part), into ``outs[part]`` and ``exacts[part]``; row
    states into ``hist``.

    Returns the number of activations outside -128..255.
    """
    max_rows = tiles[first:end, 1].max()
    # One more column: the zero operand of threads with nothing to feed.
    af = np.zeros((max_rows, a.shape[1] + 1), np.float32)
    df = np.zeros((max_rows, a.shape[1] + 1), np.float32)
    st = np.zeros((max_rows, a.shape[1] + 1), np.uint8)
    acc = np.empty((max_rows, outs.shape[2]), np.float32)
    acc64 = np.empty((max_rows, outs.shape[2]), np.float64)
    loss = np.empty((max_rows, outs.shape[2]), np.float32)
    loss64 = np.empty((max_rows, outs.shape[2]), np.float64)
    kr = np.zeros(4, np.int64)
    wrow = np.zeros(4, np.uint64)
    converted = -1
    bad = 0
    for tile in range(first, end):
        m0 = tiles[tile, 0]
        rows = tiles[tile, 1]
        if m0 != converted:
            bad += _convert_rows(a, m0, rows, half_even, af, df, st)
            converted = m0
        # Each (row, step) is counted once: by the tile holding its first column.
        part = tiles[tile, 6]
        _tile(schedule, wc, ex_cols, af, df, st, outs[part], exacts[part], hist, m0, rows,
              tiles[tile, 2], tiles[tile, 3], tiles[tile, 4], tiles[tile, 5], flush,
              tiles[tile, 2] == 0, acc, acc64, loss, loss64, kr, wrow)
    return bad


@njit(checked=False)
def _step_weights(b, schedule, j, half_even, sparsity_aware, n0, n1, wv):  # pragma: no cover
    """Step j's weights of columns n0..n1 for :func:`_direct`: ``wv[t] = (w, wr, tw)`` of
    thread t (zeros for a thread with nothing to feed). Returns the out-of-range count."""
    zero = np.float32(0.0)
    sixteen = np.float32(16.0)
    bad = 0
    for t in range(4):
        k = schedule[t, j] if t < schedule.shape[0] else -1
        if k < 0:
            for n in range(np.uint64(n1 - n0)):
                wv[t, 0, n] = zero
                wv[t, 1, n] = zero
                wv[t, 2, n] = zero
            continue
        for n in range(np.uint64(n1 - n0)):
            v = b[k, n0 + n]
            bad += (1 if v < _LOW else 0) + (1 if v > _HIGH else 0)
            w = np.float32(np.int32(min(max(v, _LOW), _HIGH)))
            wv[t, 0, n] = w
            wv[t, 1, n] = w if (abs(w) >= sixteen or not sparsity_aware) else zero
            wv[t, 2, n] = trim(w, half_even)
    return bad


@njit(checked=False)
def _direct(a, b, schedule, half_even, sparsity_aware, flush, out, exact, n0,
            n1):  # pragma: no cover - compiled
    """Columns n0..n1 of a GEMM with few rows, PE-step by PE-step: returns the counts
    (idle, single, shared, shared with a reduced operand) and the out-of-range weights and
    activations.

    Each weight is used by few rows, so it is converted in the step that uses it (into a
    buffer in L1) instead of being laid out for the whole GEMM first; every (row, step,
    column) applies the full rule of the module docstring, vectorised along the columns,
    and is counted where it is computed.
    """
    zero = np.float32(0.0)
    rows = a.shape[0]
    width = n1 - n0
    uw = np.uint64(width)
    wv = np.empty((4, 3, width), np.float32)
    acc = np.zeros((rows, width), np.float32)
    acc64 = np.zeros((rows, width), np.float64)
    loss = np.zeros((rows, width), np.float32)
    loss64 = np.zeros((rows, width), np.float64)
    av = np.zeros(4, np.float32)
    dv = np.zeros(4, np.float32)
    idle = 0
    single = 0
    shared = 0
    reduced = 0
    bad_w = 0
    bad_a = 0
    for j in range(schedule.shape[1]):
        bad_w += _step_weights(b, schedule, j, half_even, sparsity_aware, n0, n1, wv)
        for i in range(rows):
            ui = np.uint64(i)
            for t in range(4):
                k = schedule[t, j] if t < schedule.shape[0] else -1
                x = zero
                if k >= 0:
                    v = a[i, k]
                    bad_a += (1 if v < _LOW else 0) + (1 if v > _HIGH else 0)
                    x = np.float32(np.int32(min(max(v, _LOW), _HIGH)))
                av[t] = x
                dv[t] = x - trim(x, half_even)
            a0, a1, a2, a3 = av[0], av[1], av[2], av[3]
            d0, d1, d2, d3 = dv[0], dv[1], dv[2], dv[3]
            v0, v1, v2, v3 = a0 - d0, a1 - d1, a2 - d2, a3 - d3
            for n in range(uw):
                x0 = wv[0, 0, n]
                x1 = wv[1, 0, n]
                x2 = wv[2, 0, n]
                x3 = wv[3, 0, n]
                r0 = wv[0, 1, n]
                r1 = wv[1, 1, n]
                r2 = wv[2, 1, n]
                r3 = wv[3, 1, n]
                y0 = wv[0, 2, n]
                y1 = wv[1, 2, n]
                y2 = wv[2, 2, n]
                y3 = wv[3, 2, n]
                p0 = a0 * x0
                p1 = a1 * x1
                p2 = a2 * x2
                p3 = a3 * x3
                # Live threads: both operands non-zero, that is a non-zero product.
                c = ((1 if p0 != zero else 0) + (1 if p1 != zero else 0)
                     + (1 if p2 != zero else 0) + (1 if p3 != zero else 0))
                e0 = d0 * r0
                e1 = d1 * r1
                e2 = d2 * r2
                e3 = d3 * r3
                s1 = (p0 + p1) + (p2 + p3)
                s2 = (e0 + e1) + (e2 + e3)
                s3 = v0 * y0 + v1 * y1 + v2 * y2 + v3 * y3
                value = s3 if c > 2 else (s1 - s2 if c == 2 else s1)
                acc[ui, n] += value
                loss[ui, n] += s1 - value
                # Reduced: two live threads, one loses activation bits against a wide
                # weight (d * wr != 0); three or four, a live operand is trimmed.
                lossy2 = (e0 != zero) | (e1 != zero) | (e2 != zero) | (e3 != zero)
                lossy3 = (((p0 != zero) & ((d0 != zero) | (y0 != x0)))
                          | ((p1 != zero) & ((d1 != zero) | (y1 != x1)))
                          | ((p2 != zero) & ((d2 != zero) | (y2 != x2)))
                          | ((p3 != zero) & ((d3 != zero) | (y3 != x3))))
                idle += 1 if c == 0 else 0
                single += 1 if c == 1 else 0
                shared += 1 if c >= 2 else 0
                reduced += 1 if ((c > 2) & lossy3) | ((c == 2) & lossy2) else 0
        if (j + 1) % flush == 0:
            for i in range(rows):
                ui = np.uint64(i)
                for n in range(uw):
                    acc64[ui, n] += acc[ui, n]
                    acc[ui, n] = zero
                    loss64[ui, n] += loss[ui, n]
                    loss[ui, n] = zero
    for i in range(rows):
        ui = np.uint64(i)
        for n in range(uw):
            result = np.int64(acc64[ui, n] + acc[ui, n])
            out[i, n0 + n] = result
            exact[i, n0 + n] = result + np.int64(loss64[ui, n] + loss[ui, n])
    return idle, single, shared, reduced, bad_w, bad_a


@njit(checked=False)
def _pair_counts(rows, cols, pairs):  # pragma: no cover - compiled
    """``pairs += sum(rows, axis=0).T @ cols`` for (W, S, R) partial row histograms and
    (S, C) column histograms, float64.

    float64 is exact for every count here (below 2**53), in any order; a loop rather than
    BLAS, whose threads would keep spinning on the cores the kernels run on next
    (docs/performance.md). Most row states do not occur at a step (8-bit data use fewer
    than half of them). Blocks of 64 steps keep their column histograms in cache while
    every row state's row of ``pairs`` takes four steps per pass (one read and write of
    the row per four steps, not per step).
    """
    steps, codes = rows.shape[1], rows.shape[2]
    total = np.zeros((steps, codes))
    for w in range(rows.shape[0]):
        for j in range(steps):
            for r in range(codes):
                total[j, r] += rows[w, j, r]
    width = np.uint64(cols.shape[1])
    for j0 in range(0, steps, 64):
        j1 = min(steps, j0 + 64)
        for r in range(codes):
            j = j0
            while j + 4 <= j1:
                x0 = total[j, r]
                x1 = total[j + 1, r]
                x2 = total[j + 2, r]
                x3 = total[j + 3, r]
                if x0 != 0.0 or x1 != 0.0 or x2 != 0.0 or x3 != 0.0:
                    for c in range(width):
                        pairs[r, c] += ((x0 * cols[j, c] + x1 * cols[j + 1, c])
                                        + (x2 * cols[j + 2, c] + x3 * cols[j + 3, c]))
                j += 4
            while j < j1:
                x = total[j, r]
                if x != 0.0:
                    for c in range(width):
                        pairs[r, c] += x * cols[j, c]
                j += 1


def _variants() -> dict[str, list[tuple]]:
    """The argument types compiled ahead of time: 8-bit operands of either sign, as sasim's
    data and synthetic data are (an ``int64`` operand is compiled by numba when it comes)."""
    i64, f32, f64, u8, flag = types.int64, types.float32, types.float64, types.uint8, types.boolean

    def arr(dtype: types.Type, ndim: int) -> types.Array:
        return types.Array(dtype, ndim, "C")

    eight_bit = (types.int8, types.uint8)
    table: dict[str, list[tuple]] = {
        "_prepare_weights": [(arr(b, 2), flag, flag, arr(f32, 3), arr(u8, 2), i64, i64)
                             for b in eight_bit],
        "_column_histogram": [(arr(u8, 2), arr(i64, 2), arr(f64, 2), arr(i64, 2), i64, i64)],
        "_outputs": [(arr(a, 2), arr(i64, 2), flag, arr(f32, 3), arr(i64, 2), arr(i64, 3),
                      arr(i64, 3), arr(f64, 3), arr(i64, 2), i64, i64, i64)
                     for a in eight_bit],
        "_direct": [(arr(a, 2), arr(b, 2), arr(i64, 2), flag, flag, i64, arr(i64, 2),
                     arr(i64, 2), i64, i64) for a in eight_bit for b in eight_bit],
        "_pair_counts": [(arr(f64, 3), arr(f64, 2), arr(f64, 2))],
    }
    return table


#: Kernel name -> the argument types of each variant built ahead of time.
AOT = _variants()
