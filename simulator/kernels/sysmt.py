"""The SySMT (NB-SMT) functional kernel: outputs and activity counters of one GEMM group.

Inputs are the integer operands A (M, Kd) and B (Kd, N), both 8-bit (-128..255), and the
thread schedule ``sched[t, j]``: the K index thread t feeds at step j, -1 for none; every K
index appears once. Per PE-step with c active threads (activation and weight both
non-zero), thread by thread: c <= 1 exact ``a*w``; c == 2 ``a*w - d*wr``; c >= 3 ``ta*tw``,
where ``ta``/``tw`` are the operands reduced to their high nibble (``trim``),
``d = a - ta``, and ``wr`` is the weight where the collision policy reduces the activation
(``|w| >= 16`` for ``sparsity_aware``, every weight for ``msb_trim``), else 0.
Counters: idle, single, shared_exact, shared_reduced.

The loops are compiled in :mod:`simulator.kernels.sysmt_loops` (names in double quotes
below are its functions); this module drives them. How it is fast (docs/performance.md has
the measurements):

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
  cost more than the products, so ``_direct`` converts each step's weights as it uses
  them and applies the full rule to every PE-step, vectorised along the columns, counting
  as it goes.

Code notes (they decide the speed): the column loops index arrays with unsigned integers
(numba wraps negative signed indices, and that per-element check stops LLVM's vectoriser);
a thread's three weight rows share one base, so each loop needs at most four run-time
overlap checks (LLVM gives up on vectorising beyond eight); the hot loops take no array
views (each view costs an atomic reference-count update) and allocate nothing; conditions
inside vectorised loops are selects, except the three-way result of three or four live
threads, which is an exact sum weighted by 0/1 (as selects, LLVM made it masked stores and
a scatter: 13 % of the kernel's time); the row-state histogram is four partial ones, so
consecutive rows do not chain their increments through memory.
"""

from __future__ import annotations

import functools

import numpy as np

from simulator.kernels.compiled import kernels
from simulator.kernels.jit import kernel_threads, parallel_map

__all__ = ["sysmt_gemm", "OperandRangeError"]

_LOW, _HIGH = -128, 255  # operand range: signed or unsigned 8-bit
_EXACT_FLOAT32 = 2**24
_TILE_FLOATS = 1 << 15  # accumulator floats per tile (rows x columns): 128 KB, in L2
_MAX_ROWS = 64  # rows per tile at most (the tile's converted activations stay small)
_PARALLEL_MIN = 1 << 20  # PE-steps below which one thread does the whole GEMM
_TASKS_PER_WORKER = 4  # tasks per thread in each threaded phase (dynamic load balance)
_EXCEPTION_RATIO = 16  # four-thread fix-ups while at most 1/16 of a step's columns need one
_LOOPS = "simulator.kernels.sysmt_loops"  # the compiled loops (kernels.compiled)
_DIRECT_ROWS = 8  # GEMMs of at most this many rows take the PE-step path (``_direct``)


class OperandRangeError(ValueError):
    """An activation or weight lies outside the 8-bit range -128..255 the kernel is exact for."""


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
    """``x`` as the kernels read it: 8-bit integers as they are (no copy), wider integers
    whose values fit 8 bits (a trace's) as int8 or uint8 (the variants compiled ahead of
    time, and a quarter of the bytes), anything else as int64 (one compiled variant per
    dtype: docs/performance.md)."""
    x = np.asarray(x)
    if x.dtype != np.int8 and x.dtype != np.uint8:
        if x.size and x.dtype.kind in "iu":
            lo, hi = int(x.min()), int(x.max())
            if lo >= -128 and hi <= 127:
                return np.ascontiguousarray(x, dtype=np.int8)
            if lo >= 0 and hi <= 255:
                return np.ascontiguousarray(x, dtype=np.uint8)
        x = x.astype(np.int64, copy=False)
    return np.ascontiguousarray(x)


def _few_rows(a: np.ndarray, b: np.ndarray, sched: np.ndarray, round_half_even: bool,
              sparsity_aware: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`sysmt_gemm` of a GEMM with few rows (fully connected layers at batch 1): its
    weights are converted as they are used (``_direct``), each worker a block of columns."""
    loops = kernels(_LOOPS)
    m_rows, n_cols = a.shape[0], b.shape[1]
    threads = sched.shape[0]
    out = np.empty((m_rows, n_cols), dtype=np.int64)
    exact = np.empty((m_rows, n_cols), dtype=np.int64)
    # Any 8-bit weight: a step adds at most threads*255*(255 + 8) (see sysmt_gemm).
    flush = max(1, (_EXACT_FLOAT32 - 1) // (threads * max(-_LOW, _HIGH) * (_HIGH + 8)))
    workers = _workers(m_rows * n_cols * sched.shape[1])
    tasks = 1 if workers == 1 else _TASKS_PER_WORKER * workers
    n_cut = np.linspace(0, n_cols, min(tasks, max(n_cols, 1)) + 1).astype(np.int64)
    parts = np.array(parallel_map(workers, len(n_cut) - 1, lambda w: loops._direct(
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

    loops = kernels(_LOOPS)
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

    parts = parallel_map(workers, len(k_cut) - 1, lambda w: loops._prepare_weights(
        b, round_half_even, sparsity_aware, wc, wstate, k_cut[w], k_cut[w + 1]))
    if sum(bad for _, bad in parts):
        raise OperandRangeError(f"weights must lie in {_LOW}..{_HIGH}")
    big_w = max(int(big) for big, _ in parts)
    # A step adds at most threads*255*(max|w| + 8) to the outputs or the losses (a trimmed
    # weight is at most 8 above |w|); flush float32 before 2**24 could be reached.
    step_max = threads * max(-_LOW, _HIGH) * (big_w + 8)
    flush = max(1, (_EXACT_FLOAT32 - 1) // step_max)
    ex_cols = np.empty((steps, n_cols + 1), dtype=np.int64)
    parallel_map(workers, len(j_cut) - 1, lambda w: loops._column_histogram(
        wstate, sched, hist_cols, ex_cols, j_cut[w], j_cut[w + 1]))
    tiles = _tiles(m_rows, n_cols, steps, workers)
    parts = int(tiles[:, 6].max()) + 1 if len(tiles) else 1
    outs = np.empty((parts, m_rows, n_cols), dtype=np.int64)
    exacts = np.empty((parts, m_rows, n_cols), dtype=np.int64)
    # Contiguous runs of tiles (a run converts each of its row blocks once); each run
    # counts its row states into its own histogram.
    t_cut = np.linspace(0, len(tiles), min(tasks, len(tiles)) + 1).astype(np.int64)
    hist_rows = np.zeros((max(1, len(t_cut) - 1), 4, steps, 3**threads), dtype=np.float64)
    if len(tiles) and sum(parallel_map(workers, len(t_cut) - 1, lambda w: loops._outputs(
            a, sched, round_half_even, wc, ex_cols, outs, exacts, hist_rows[w], tiles,
            flush, t_cut[w], t_cut[w + 1]))):
        raise OperandRangeError(f"activations must lie in {_LOW}..{_HIGH}")
    out = outs[0] if parts == 1 else outs.sum(axis=0)
    exact = exacts[0] if parts == 1 else exacts.sum(axis=0)

    pairs = np.zeros((3**threads, 4**threads), dtype=np.float64)
    loops._pair_counts(hist_rows.reshape(-1, steps, 3**threads), hist_cols, pairs)
    classes = _class_table(threads)
    counts = np.bincount(classes.ravel(), weights=pairs.ravel(), minlength=4).astype(np.int64)
    idle, single, shared_exact, reduced = (int(c) for c in counts)
    return (out, np.array([idle, single, shared_exact + reduced, reduced], dtype=np.int64),
            exact)
