"""The SySMT (NB-SMT) functional kernel: outputs and activity counters of one GEMM group.

Inputs are the integer operands A (M, Kd) and B (Kd, N), both 8-bit (-128..255), and the
thread schedule ``sched[t, j]``: the K index thread t feeds at step j, -1 for none; every K
index appears once. Per PE-step with c active threads (activation and weight both
non-zero), thread by thread: c <= 1 exact ``a*w``; c == 2 ``a*w - d*wr``; c >= 3 ``ta*tw``,
where ``ta``/``tw`` are the operands reduced to their high nibble (:func:`trim`),
``d = a - ta``, and ``wr`` is the weight where the collision policy reduces the activation
(``|w| >= 16`` for ``sparsity_aware``, every weight for ``msb_trim``), else 0.
Counters: idle, single, shared_exact, shared_reduced.

How it is fast (docs/performance.md has the measurements):

- A thread whose activation is zero is inactive at every column. Per (row, step) a mask of
  the threads with a non-zero activation (about half of them) and of those that lose bits
  selects, through small tables, a class and the live threads; each class has its own
  vectorised loop over the columns: one thread, two (with an exact-only variant when
  neither activation loses bits), three, four. With four live threads c >= 3 unless two
  weights are zero, so that loop adds ``sum(ta*tw)`` only, and the few columns of a step
  with two or more zero weights are fixed exactly afterwards.
- Operands are converted once: each weight to float32 ``(w, wr, tw)`` in B's own row order
  (a thread's step is a row index, no schedule-dependent gather) plus a state byte, each
  activation of a tile's rows to float32 ``a`` and ``d`` plus a state byte, vectorised
  along K.
- float32 holds every integer below 2**24 exactly: a step adds at most T*255*max|w|, and
  the float32 accumulator is flushed into float64 before it could reach 2**24, so the
  arithmetic is exact in any order.
- Tiles of rows share each step's weight rows in cache; small-M layers take all their rows
  in one tile (the weights are then read once) and split the steps between threads, each
  summing into its own partial output. The kernels release the GIL and run on a small
  thread pool (``NUMBA_NUM_THREADS`` threads).
- Counters are not counted per PE-step: a PE-step's class depends only on a per-(row, step)
  state of each thread (zero / exact / trimmed activation) and a per-(step, column) state
  (zero / weight bits), so the counts are ``sum_j hist_rows[j] . class . hist_cols[j]``
  over these state histograms (an exact float64 product, in a loop: no BLAS); the row
  histogram is filled as the kernel visits each (row, step) anyway.
- The exact product ``a @ b`` comes out of the same pass: the classes that lose precision
  also sum their loss (exact minus SySMT result), so the error metrics need no reference
  GEMM (docs/performance.md).
- Operands come in as they are when they are 8-bit integers (no int64 copy).
- A GEMM of at most ``_DIRECT_ROWS`` rows (a fully connected layer at batch 1) uses each
  weight once or a few times: laying the weights out and histogramming their states would
  cost more than the products, so :func:`_direct` converts each step's weights as it uses
  them and applies the full rule to every PE-step, vectorised along the columns, counting
  as it goes.

Code notes (they decide the speed): the column loops index arrays with unsigned integers
(numba wraps negative signed indices, and that per-element check stops LLVM's vectoriser);
a thread's three weight rows share one base, so each loop needs at most four run-time
overlap checks (LLVM gives up on vectorising beyond eight); the hot loops take no array
views (each view costs an atomic reference-count update) and allocate nothing; conditions
inside vectorised loops are selects.
"""

from __future__ import annotations

import functools

import numpy as np

from simulator.kernels.jit import kernel_threads, njit, parallel_map

__all__ = ["sysmt_gemm", "trim", "OperandRangeError"]

_LOW, _HIGH = -128, 255  # operand range: signed or unsigned 8-bit
_EXACT_FLOAT32 = 2**24
_TILE_FLOATS = 1 << 15  # accumulator floats per tile (rows x columns): 128 KB, in L2
_MAX_ROWS = 64  # rows per tile at most (the tile's converted activations stay small)
_PARALLEL_MIN = 1 << 20  # PE-steps below which one thread does the whole GEMM
_TASKS_PER_WORKER = 4  # tasks per thread in each threaded phase (dynamic load balance)
_EXCEPTION_RATIO = 16  # four-thread fix-ups while at most 1/16 of a step's columns need one
_DIRECT_ROWS = 8  # GEMMs of at most this many rows take the PE-step path (:func:`_direct`)


class OperandRangeError(ValueError):
    """An activation or weight lies outside the 8-bit range -128..255 the kernel is exact for."""


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
    (row, step)'s state code goes into ``hist[j, code]``.
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
            if count:
                hist[j, _CODE[mask]] += 1.0
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
                    acc[ui, n] += s3 if c > two else (s1 - s2 if c == two else s1)
                    loss[ui, n] += s1 - s3 if c > two else (s2 if c == two else zero)
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
                acc[ui, n] += s3 if c > two else (s1 - s2 if c == two else s1)
                loss[ui, n] += s1 - s3 if c > two else (s2 if c == two else zero)
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

    float64 is exact for every count here (below 2**53); a loop rather than BLAS, whose
    threads would keep spinning on the cores the kernels run on next (docs/performance.md).
    Most row states do not occur at a step (8-bit data use fewer than half of them).
    """
    for j in range(rows.shape[1]):
        for r in range(rows.shape[2]):
            x = 0.0
            for w in range(rows.shape[0]):
                x += rows[w, j, r]
            if x != 0.0:
                for c in range(np.uint64(cols.shape[1])):
                    pairs[r, c] += x * cols[j, c]


@functools.lru_cache(maxsize=None)
def _class_table(threads: int) -> np.ndarray:
    """(3**T, 4**T) class of a PE-step by its row and column state codes.

    0 idle, 1 single, 2 shared_exact, 3 shared_reduced; the rules of the module docstring.
    Row code ``sum(s_t 3**t)`` (state 0 zero, 1 exact, 2 trimmed activation); column code
    ``sum(q_t 4**t)`` (0 zero, 1 narrow, 2 wide, 3 trimmed weight).
    """
    digits = np.arange(threads)
    row = (np.arange(3**threads)[:, None] // 3**digits) % 3  # (R, T) states
    col = (np.arange(4**threads)[:, None] // 4**digits) % 4  # (C, T) states
    active = (row[:, None, :] > 0) & (col[None, :, :] > 0)  # (R, C, T)
    count = active.sum(axis=2)
    trimmed_a = row[:, None, :] == 2
    # two live threads: reduced when a trimmed activation meets a wide weight; three or
    # four: reduced when any live operand is trimmed
    two = (active & trimmed_a & (col[None, :, :] >= 2)).any(axis=2)
    more = (active & (trimmed_a | (col[None, :, :] == 3))).any(axis=2)
    reduced = np.where(count == 2, two, more)
    return np.where(count <= 1, count, np.where(reduced, 3, 2)).astype(np.int64)


def _workers(pe_steps: int) -> int:
    """Threads for one GEMM: ``NUMBA_NUM_THREADS`` (default: the cores), one for small work.

    The kernels release the GIL and run on :func:`simulator.kernels.jit.parallel_map`'s
    thread pool rather than numba's parallel backend (see :mod:`simulator.kernels.jit`).
    """
    return 1 if pe_steps < _PARALLEL_MIN else kernel_threads()


def _tiles(m_rows: int, n_cols: int, steps: int, workers: int) -> np.ndarray:
    """Tiles, one per row: first row, rows, first column, end column, first step, end step,
    output part.

    All columns and as many rows as an accumulator of ``_TILE_FLOATS`` holds (at most
    ``_MAX_ROWS``), in equal row blocks: every (row, step) is dispatched once, and a
    small-M layer reads its weights once. When there are fewer row blocks than workers,
    the steps are split between them instead, each part summing into its own output.
    """
    if not m_rows or not n_cols:
        return np.zeros((0, 7), np.int64)
    rows = max(1, min(m_rows, _MAX_ROWS, _TILE_FLOATS // n_cols))
    row_blocks = -(-m_rows // rows)
    parts = 1
    if row_blocks > 1:
        row_blocks = -(-row_blocks // workers) * workers
    elif workers > 1 and steps >= 2 * workers:
        parts = workers
    rows = -(-m_rows // row_blocks)
    row_blocks = -(-m_rows // rows)
    tiles = np.zeros((row_blocks * parts, 7), np.int64)
    for p in range(parts):
        for blk in range(row_blocks):
            tiles[p * row_blocks + blk] = (blk * rows, min(rows, m_rows - blk * rows), 0,
                                           n_cols, p * steps // parts,
                                           (p + 1) * steps // parts, p)
    return tiles


def _operand(x: np.ndarray) -> np.ndarray:
    """``x`` as the kernels read it: 8-bit integers as they are (no copy), anything else as
    int64 (one compiled variant per dtype: docs/performance.md)."""
    x = np.asarray(x)
    if x.dtype != np.int8 and x.dtype != np.uint8:
        x = x.astype(np.int64, copy=False)
    return np.ascontiguousarray(x)


def _few_rows(a: np.ndarray, b: np.ndarray, sched: np.ndarray, round_half_even: bool,
              sparsity_aware: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`sysmt_gemm` of a GEMM with few rows (fully connected layers at batch 1): its
    weights are converted as they are used (:func:`_direct`), each worker a block of
    columns."""
    m_rows, n_cols = a.shape[0], b.shape[1]
    threads = sched.shape[0]
    out = np.empty((m_rows, n_cols), dtype=np.int64)
    exact = np.empty((m_rows, n_cols), dtype=np.int64)
    # Any 8-bit weight: a step adds at most threads*255*(255 + 8) (see sysmt_gemm).
    flush = max(1, (_EXACT_FLOAT32 - 1) // (threads * max(-_LOW, _HIGH) * (_HIGH + 8)))
    workers = _workers(m_rows * n_cols * sched.shape[1])
    tasks = 1 if workers == 1 else _TASKS_PER_WORKER * workers
    n_cut = np.linspace(0, n_cols, min(tasks, max(n_cols, 1)) + 1).astype(np.int64)
    parts = np.array(parallel_map(workers, len(n_cut) - 1, lambda w: _direct(
        a, b, sched, round_half_even, sparsity_aware, flush, out, exact, n_cut[w],
        n_cut[w + 1])), dtype=np.int64).reshape(-1, 6).sum(axis=0)
    if parts[4]:
        raise OperandRangeError(f"weights must lie in {_LOW}..{_HIGH}")
    if parts[5]:
        raise OperandRangeError(f"activations must lie in {_LOW}..{_HIGH}")
    return out, parts[:4].copy(), exact


def sysmt_gemm(a: np.ndarray, b: np.ndarray, sched: np.ndarray, round_half_even: bool,
               sparsity_aware: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the SySMT kernel; returns (outputs (M, N) int64, counts (4,) int64, exact
    products (M, N) int64).

    Parameters
    ----------
    a : integer (M, Kd) activations, -128..255 (int8 and uint8 are read as they are).
    b : integer (Kd, N) weights, -128..255.
    sched : int64 (T, S) schedule, 1 <= T <= 4: the K index thread t feeds at step j, or -1;
        every K index appears exactly once.
    round_half_even : bool
        Trimming rounds half to even (else truncates).
    sparsity_aware : bool
        Two-thread collision policy: an activation is reduced only against a weight with
        |w| >= 16 (``sparsity_aware``), or against any weight (``msb_trim``).

    Returns
    -------
    outputs : int64 (M, N)
    counts : int64 (4,), PE-steps that are idle, single, shared (two or more active threads)
        and shared with a reduced operand.
    exact : int64 (M, N), ``a @ b``: the kernel sums what each reduced step loses, so the
        error metrics need no reference product.

    Raises
    ------
    OperandRangeError
        An operand lies outside -128..255.
    ValueError
        Bad shapes, or a schedule that does not use every K index exactly once.
    """
    a = _operand(a)
    b = _operand(b)
    sched = np.ascontiguousarray(sched, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or sched.ndim != 2:
        raise ValueError("a, b and sched must be 2-D")
    m_rows, kd = a.shape
    threads, steps = sched.shape
    n_cols = b.shape[1]
    if not 1 <= threads <= 4:
        raise ValueError(f"sysmt_gemm supports 1 to 4 threads, not {threads}")
    if b.shape[0] != kd:
        raise ValueError(f"b shape {b.shape} does not match a shape {a.shape}")
    used = sched[sched >= 0]
    if (sched < -1).any() or used.size != kd or (
            kd and not np.array_equal(np.bincount(used, minlength=kd), np.ones(kd, np.int64))):
        raise ValueError(f"the schedule must use every K index 0..{kd - 1} exactly once")
    round_half_even, sparsity_aware = bool(round_half_even), bool(sparsity_aware)
    if m_rows <= _DIRECT_ROWS:
        return _few_rows(a, b, sched, round_half_even, sparsity_aware)

    # A thread's three weight rows share one base (constant offsets): LLVM then needs one
    # run-time overlap check per thread, and four threads stay under its limit of eight.
    wc = np.empty((kd, 3, n_cols), dtype=np.float32)
    wstate = np.empty((kd, n_cols), dtype=np.uint8)
    # float64 counts are exact: every entry below is at most M*N*S < 2**53.
    hist_cols = np.zeros((steps, 4**threads), dtype=np.float64)
    workers = _workers(m_rows * n_cols * steps)
    tasks = 1 if workers == 1 else _TASKS_PER_WORKER * workers
    k_cut = np.linspace(0, kd, min(tasks, max(kd, 1)) + 1).astype(np.int64)
    j_cut = np.linspace(0, steps, min(tasks, max(steps, 1)) + 1).astype(np.int64)

    parts = parallel_map(workers, len(k_cut) - 1, lambda w: _prepare_weights(
        b, round_half_even, sparsity_aware, wc, wstate, k_cut[w], k_cut[w + 1]))
    if sum(bad for _, bad in parts):
        raise OperandRangeError(f"weights must lie in {_LOW}..{_HIGH}")
    big_w = max(int(big) for big, _ in parts)
    # A step adds at most threads*255*(max|w| + 8) to the outputs or the losses (a trimmed
    # weight is at most 8 above |w|); flush float32 before 2**24 could be reached.
    step_max = threads * max(-_LOW, _HIGH) * (big_w + 8)
    flush = max(1, (_EXACT_FLOAT32 - 1) // step_max)
    ex_cols = np.empty((steps, n_cols + 1), dtype=np.int64)
    parallel_map(workers, len(j_cut) - 1, lambda w: _column_histogram(
        wstate, sched, hist_cols, ex_cols, j_cut[w], j_cut[w + 1]))
    tiles = _tiles(m_rows, n_cols, steps, workers)
    parts = int(tiles[:, 6].max()) + 1 if len(tiles) else 1
    outs = np.empty((parts, m_rows, n_cols), dtype=np.int64)
    exacts = np.empty((parts, m_rows, n_cols), dtype=np.int64)
    # Contiguous runs of tiles (a run converts each of its row blocks once); each run
    # counts its row states into its own histogram.
    t_cut = np.linspace(0, len(tiles), min(tasks, len(tiles)) + 1).astype(np.int64)
    hist_rows = np.zeros((max(1, len(t_cut) - 1), steps, 3**threads), dtype=np.float64)
    if len(tiles) and sum(parallel_map(workers, len(t_cut) - 1, lambda w: _outputs(
            a, sched, round_half_even, wc, ex_cols, outs, exacts, hist_rows[w], tiles,
            flush, t_cut[w], t_cut[w + 1]))):
        raise OperandRangeError(f"activations must lie in {_LOW}..{_HIGH}")
    out = outs[0] if parts == 1 else outs.sum(axis=0)
    exact = exacts[0] if parts == 1 else exacts.sum(axis=0)

    pairs = np.zeros((3**threads, 4**threads), dtype=np.float64)
    _pair_counts(hist_rows, hist_cols, pairs)
    classes = _class_table(threads)
    counts = np.bincount(classes.ravel(), weights=pairs.ravel(), minlength=4).astype(np.int64)
    idle, single, shared_exact, reduced = (int(c) for c in counts)
    return (out, np.array([idle, single, shared_exact + reduced, reduced], dtype=np.int64),
            exact)
