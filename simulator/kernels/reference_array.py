"""Register-transfer-level model of an output-stationary systolic array (the reference).

This kernel is slow and small on purpose: it exists to prove the fast PE models cycle- and
bit-exact. It moves every operand through real pipeline registers, one PE per cycle, and
counts cycles by running the clock until the array is empty; nothing is derived from a
closed form.

Array and dataflow (docs/hardware-spec.md §2-3)
-----------------------------------
PE (i, j) of a fold owns output ``O[fold_row*rows + i, fold_col*cols + j]``; folds are visited
row-fold-major and never overlap. Each PE holds, per thread t < T, an activation register
``act_val[i, j, t]`` and a weight register ``wgt_val[i, j, t]``, plus the step tag of what it
holds (``act_step``, ``wgt_step``; -1 is a bubble). At every clock edge activations move one PE
right and weights one PE down; the left edge of row i and the top edge of column j are fed by
counters that start at ``-i`` and ``-j`` (the skew), so PE (i, j) holds step s at cycle
s + i + j. Step s of thread t carries K index ``sched[t, s]`` (-1: operand 0); edge positions
beyond M or N carry zeros. A PE whose registers hold a step applies its *rule* to the T
operand pairs and adds the result to its accumulator. When no PE holds a step and no edge
counter has a step left, the accumulators are copied into output registers that shift down
one PE per cycle and leave at the bottom edge, where they are collected.

The schedule may differ per column fold (:func:`simulate_os_array_folds`: ``sched[c]`` with
``fold_steps[c]`` steps for column fold c); bit-serial PEs whose group steps last a
data-dependent number of cycles need that.

Adding a PE rule
----------------
A PE type outside this package gives a plain-Python per-PE-step function instead, run by
:func:`simulate_os_array_folds_python` (the same array code, interpreted; see
docs/extending.md). A built-in rule is an integer id plus a small int64 parameter array,
dispatched in :func:`pe_step`.
A rule function receives the T activations and T weights a PE holds in one step (and its
parameters) and returns ``(partial_sum, counter_index)``: the value added to the accumulator
and which of the :data:`N_COUNTERS` activity counters the step belongs to. To add a rule:
write ``_<name>_step(acts, wgts, params)`` here as scalar code, give it the next ``RULE_*``
id, add one branch to :func:`pe_step`, and describe its parameters in the PE model's
``reference_rule`` (:mod:`simulator.hw.pe`). The kernel is compiled once for all rules (the rule is
a runtime integer), so a new rule adds no specialisation.

Kernels here take arrays and integers only and import nothing from the rest of the package.
"""

from __future__ import annotations

import types

import numpy as np

from simulator.kernels.jit import njit

__all__ = [
    "RULE_DENSE",
    "RULE_SYSMT",
    "RULE_SPARQ",
    "RULE_A4W8",
    "POLICY_SPARSITY_AWARE",
    "POLICY_MSB_TRIM",
    "ROUND_HALF_EVEN",
    "ROUND_TRUNCATE",
    "COUNTER_IDLE",
    "COUNTER_SINGLE",
    "COUNTER_SHARED_EXACT",
    "COUNTER_SHARED_REDUCED",
    "N_COUNTERS",
    "SPARQ_WINDOW_CODES",
    "PAIRING_ADJACENT",
    "PAIRING_STC",
    "SPARQ_PRODUCT_NAMES",
    "A4W8_PRODUCT_NAMES",
    "RULE_BITSERIAL",
    "SERIAL_WEIGHT",
    "SERIAL_ACTIVATION",
    "trim_magnitude",
    "sparq_window",
    "uniform_4bit",
    "pe_step",
    "simulate_os_array",
    "simulate_os_array_folds",
    "simulate_os_array_folds_python",
]

#: Rule ids: exact 8b x 8b MAC (T = 1).
RULE_DENSE = 0
#: SySMT / NB-SMT PE; params = [policy, rounding].
RULE_SYSMT = 1
#: SPARQ PE (T = 2 adjacent pair, or T = 4 for a 2:4 group); params = [window, rounding,
#: pairing]. Its counter index encodes the classes of the step's two products (see below).
RULE_SPARQ = 5
#: A4W8 PE (T = 2, activations uniformly quantised to 4 bits); params = [shift, rounding].
RULE_A4W8 = 6

#: Bit-serial lanes (SWIS, Stripes-like bit-serial, truncation); params = [serial operand].
#: Rule ids are arbitrary distinct integers (7 leaves room for rules added elsewhere).
RULE_BITSERIAL = 7

#: Which operand of RULE_BITSERIAL carries the signed bit (params[0]).
SERIAL_WEIGHT = 0
SERIAL_ACTIVATION = 1

#: SySMT reduction policies (params[0] of RULE_SYSMT).
POLICY_SPARSITY_AWARE = 0
POLICY_MSB_TRIM = 1

#: Rounding of a trimmed magnitude (params[1] of RULE_SYSMT).
ROUND_HALF_EVEN = 0
ROUND_TRUNCATE = 1

#: Activity counter indices (per PE-step with a real output position and a real step).
COUNTER_IDLE = 0
COUNTER_SINGLE = 1
COUNTER_SHARED_EXACT = 2
COUNTER_SHARED_REDUCED = 3
N_COUNTERS = 4

#: SPARQ window configurations (params[0] of RULE_SPARQ), by name: the rows of the
#: docs/hardware-spec.md §4 table. The rule decodes them itself in :func:`_sparq_config`.
SPARQ_WINDOW_CODES = {"4bit_5opt": 0, "4bit_3opt": 1, "4bit_2opt": 2, "6bit_3opt": 3,
                      "3bit_6opt": 4, "2bit_7opt": 5}
#: SPARQ pairings (params[2] of RULE_SPARQ); params[1] is ROUND_HALF_EVEN ('round') or
#: ROUND_TRUNCATE ('raw').
PAIRING_ADJACENT = 0
PAIRING_STC = 1

#: Product classes of the two-product rules. A SPARQ or A4W8 step multiplies two activations,
#: so its counter index is ``class0 * n + class1`` over the n names below; the wrapper turns
#: these pairs of classes into step counters and product totals.
SPARQ_PRODUCT_NAMES = ("zero", "zero_partner", "zero_partner_trimmed", "window_exact",
                       "trim_shift_1", "trim_shift_2", "trim_shift_3", "trim_shift_4",
                       "trim_shift_5", "trim_shift_6")
A4W8_PRODUCT_NAMES = ("zero", "exact", "approximated")
_N_SPARQ_PRODUCTS = 10
_N_A4W8_PRODUCTS = 3


@njit
def trim_magnitude(x, rounding):
    """Reduce an 8-bit magnitude to its high nibble (a 4-bit mantissa shifted by 4).

    Parameters
    ----------
    x : int
        Magnitude, 0..255 (128 is the magnitude of -128).
    rounding : int
        ``ROUND_TRUNCATE`` or ``ROUND_HALF_EVEN``.

    Returns
    -------
    int
        ``x`` itself when ``x < 16``; otherwise the high nibble in the original scale, rounded
        half to even on the dropped low nibble and saturated at 0xF0.
    """
    if x < 16:
        return x
    if rounding == ROUND_TRUNCATE:
        return x & 0xF0
    mantissa = x >> 4
    # Round half to even: up iff the first dropped bit is set and (the kept LSB is set or any
    # lower dropped bit is set).
    if (x >> 3) & 1 == 1 and ((x >> 4) & 1 == 1 or (x & 7) != 0):
        mantissa += 1
    trimmed = mantissa << 4
    if trimmed >= 256:
        trimmed = 0xF0
    return trimmed


@njit
def _trim_signed(v, rounding):
    """Trim a signed 8-bit value on its magnitude, keeping its sign."""
    if v < 0:
        return -trim_magnitude(-v, rounding)
    return trim_magnitude(v, rounding)


@njit
def _classify(active, changed):
    """Counter index of a PE-step with ``active`` active threads."""
    if active == 0:
        return COUNTER_IDLE
    if active == 1:
        return COUNTER_SINGLE
    if changed:
        return COUNTER_SHARED_REDUCED
    return COUNTER_SHARED_EXACT


@njit
def _dense_step(acts, wgts):
    """Exact 8b x 8b multiply of the one thread (T = 1)."""
    total = 0
    active = 0
    for t in range(acts.shape[0]):
        total += acts[t] * wgts[t]
        if acts[t] != 0 and wgts[t] != 0:
            active += 1
    return total, _classify(active, False)


@njit
def _sysmt_step(acts, wgts, policy, rounding):
    """SySMT PE: T threads share one 8b x 8b multiplier built from sub-multipliers.

    <= 1 active thread: exact. 2 active: each gets a 4b x 8b multiplier (the activation is the
    narrow operand unless the policy finds an exact mapping). >= 3 active: each gets a 4b x 4b
    multiplier, both operands trimmed on their magnitude.
    """
    n_threads = acts.shape[0]
    active = 0
    for t in range(n_threads):
        if acts[t] != 0 and wgts[t] != 0:
            active += 1
    total = 0
    changed = False
    if active <= 1:
        for t in range(n_threads):
            total += acts[t] * wgts[t]
    elif active == 2:
        for t in range(n_threads):
            a = acts[t]
            w = wgts[t]
            if a == 0 or w == 0:
                continue
            x = abs(a)
            if policy == POLICY_SPARSITY_AWARE and (
                    (x >> 4) == 0 or (x & 0xF) == 0 or abs(w) < 16):
                total += a * w
            else:
                tx = trim_magnitude(x, rounding)
                if tx != x:
                    changed = True
                total += (tx if a > 0 else -tx) * w
    else:
        for t in range(n_threads):
            a = acts[t]
            w = wgts[t]
            if a == 0 or w == 0:
                continue
            ta = _trim_signed(a, rounding)
            tw = _trim_signed(w, rounding)
            if ta != a or tw != w:
                changed = True
            total += ta * tw
    return total, _classify(active, changed)


@njit
def sparq_window(x, n_bits, positions, rounding):
    """bSPARQ window of an 8-bit magnitude (docs/hardware-spec.md §4).

    Parameters
    ----------
    x : int
        Magnitude, 0..255.
    n_bits : int
        Window width n.
    positions : int
        Bit mask of the allowed window LSB positions p (bit p set: p allowed).
    rounding : int
        ``ROUND_TRUNCATE`` (raw) or ``ROUND_HALF_EVEN`` (round).

    Returns
    -------
    value : int
        Bits [p+n-1 : p] of x in the original scale, for the smallest allowed p with
        p + n - 1 >= the index of x's leading one; rounded half to even on the dropped bits
        and saturated at ((1 << n) - 1) << p when rounding overflows the window.
    p : int
        The window position.
    """
    if x == 0:
        return 0, 0
    leading = 0
    while (x >> (leading + 1)) != 0:
        leading += 1
    p = 0
    while not ((positions >> p) & 1 == 1 and p + n_bits - 1 >= leading):
        p += 1
        if p > 7:
            raise ValueError("no allowed window position holds the value")
    mantissa = x >> p
    if rounding == ROUND_HALF_EVEN and p > 0:
        dropped = x & ((1 << p) - 1)
        half = 1 << (p - 1)
        if dropped > half or (dropped == half and mantissa & 1 == 1):
            mantissa += 1
        if mantissa > (1 << n_bits) - 1:
            mantissa = (1 << n_bits) - 1
    return mantissa << p, p


@njit
def _sparq_config(window):
    """(n, positions mask, zero-partner n, zero-partner positions mask) of a window code."""
    if window == 0:  # 4-bit, 5 options: p = 4..0; zero partner keeps all 8 bits
        return 4, 0b11111, 8, 0b1
    if window == 1:  # 4-bit, 3 options: p = 4, 2, 0
        return 4, 0b10101, 8, 0b1
    if window == 2:  # 4-bit, 2 options: p = 4, 0
        return 4, 0b10001, 8, 0b1
    if window == 3:  # 6-bit, 3 options: p = 2, 1, 0
        return 6, 0b111, 8, 0b1
    if window == 4:  # 3-bit, 6 options: p = 5..0; zero partner: 6 bits at p = 2..0
        return 3, 0b111111, 6, 0b111
    if window == 5:  # 2-bit, 7 options: p = 6..0; zero partner: 4 bits at p = 4..0
        return 2, 0b1111111, 4, 0b11111
    raise ValueError("unknown SPARQ window code")


@njit
def _sparq_product(a, partner, window, rounding):
    """(activation the multiplier sees, product class) for ``a`` next to ``partner``."""
    if a == 0:
        return 0, 0
    n_bits, positions, wide_bits, wide_positions = _sparq_config(window)
    x = a if a > 0 else -a
    if partner == 0:
        # vSPARQ: the zero partner lends its multiplier, the activation gets the wide window.
        value, p = sparq_window(x, wide_bits, wide_positions, rounding)
        cls = 1 if value == x else 2
    else:
        value, p = sparq_window(x, n_bits, positions, rounding)
        cls = 3 if value == x else 3 + p
    return (value if a > 0 else -value), cls


@njit
def _sparq_step(acts, wgts, window, rounding, pairing):
    """SPARQ PE: two multipliers with shifters on one pair of activations.

    ``PAIRING_ADJACENT`` (T = 2): the pair is the two slots. ``PAIRING_STC`` (T = 4, one 2:4
    group): the pair is the slots whose weight is non-zero, in order; a missing member is an
    empty slot (activation 0, weight 0), so in 2:4 mode weight zeros count as zero partners.
    """
    n_threads = acts.shape[0]
    if pairing == PAIRING_ADJACENT:
        if n_threads != 2:
            raise ValueError("adjacent SPARQ pairs need T = 2")
        a0, a1, w0, w1 = acts[0], acts[1], wgts[0], wgts[1]
    else:
        if n_threads != 4:
            raise ValueError("2:4 SPARQ groups need T = 4")
        a0, a1, w0, w1 = 0, 0, 0, 0
        found = 0
        for t in range(4):
            if wgts[t] != 0:
                if found == 0:
                    a0, w0 = acts[t], wgts[t]
                elif found == 1:
                    a1, w1 = acts[t], wgts[t]
                else:
                    raise ValueError("more than 2 non-zero weights in a 2:4 group")
                found += 1
    v0, c0 = _sparq_product(a0, a1, window, rounding)
    v1, c1 = _sparq_product(a1, a0, window, rounding)
    return v0 * w0 + v1 * w1, c0 * _N_SPARQ_PRODUCTS + c1


@njit
def uniform_4bit(x, shift, rounding):
    """Uniform 4-bit quantisation of magnitude x: min(round(x / 2**shift), 15) << shift."""
    q = x >> shift
    if rounding == ROUND_HALF_EVEN and shift > 0:
        dropped = x & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if dropped > half or (dropped == half and q & 1 == 1):
            q += 1
    if q > 15:
        q = 15
    return q << shift


@njit
def _a4w8_step(acts, wgts, shift, rounding):
    """A4W8 PE: two 4b x 8b multipliers, each activation quantised alone, no borrowing."""
    total = 0
    code = 0
    for t in range(acts.shape[0]):
        a = acts[t]
        x = a if a > 0 else -a
        q = uniform_4bit(x, shift, rounding)
        total += (q if a > 0 else -q) * wgts[t]
        cls = 0 if a == 0 else (1 if q == x else 2)
        code = code * _N_A4W8_PRODUCTS + cls
    return total, code


@njit
def _bitserial_step(acts, wgts, serial):
    """One cycle of a bit-serial PE with G = T - 1 lanes.

    Weight slot G holds the bit position processed this cycle (the shared position of SWIS,
    or the bit index of a p-bit serial operand), or -1 when the PE has no position to
    process (it waits in lock-step). In lanes t < G the serial operand (the weight or the
    activation, by ``serial``) is a signed bit in {-1, 0, 1}: an AND gate passes the parallel
    operand when the bit is set, negated for -1 (a sign bit, or the negative top bit of a
    two's complement code); an adder tree sums the lanes and one shifter scales the sum.
    Counter index: 0 when waiting, else 1 + the number of active lanes (bit set and parallel
    operand non-zero).
    """
    lanes = acts.shape[0] - 1
    position = wgts[lanes]
    if position < 0:
        return 0, 0
    tree = 0
    active = 0
    for t in range(lanes):
        if serial == SERIAL_WEIGHT:
            bit = wgts[t]
            value = acts[t]
        else:
            bit = acts[t]
            value = wgts[t]
        if bit < -1 or bit > 1:
            raise ValueError("a bit-serial lane's serial operand must be -1, 0 or 1")
        if bit != 0 and value != 0:
            active += 1
            if bit > 0:
                tree += value
            else:
                tree -= value
    return tree * (1 << position), 1 + active


@njit
def pe_step(rule, params, acts, wgts):
    """Apply PE rule ``rule`` to the T operand pairs a PE holds in one step.

    Parameters
    ----------
    rule : int
        A ``RULE_*`` id.
    params : ndarray of int64
        The rule's parameters (see the ``RULE_*`` constants).
    acts, wgts : ndarray of int64, shape (T,)
        The activation and weight of each thread.

    Returns
    -------
    partial_sum : int
        Value added to the PE's accumulator.
    counter : int
        A ``COUNTER_*`` index.
    """
    if rule == RULE_DENSE:
        return _dense_step(acts, wgts)
    if rule == RULE_SYSMT:
        return _sysmt_step(acts, wgts, params[0], params[1])
    if rule == RULE_SPARQ:
        return _sparq_step(acts, wgts, params[0], params[1], params[2])
    if rule == RULE_A4W8:
        return _a4w8_step(acts, wgts, params[0], params[1])
    if rule == RULE_BITSERIAL:
        return _bitserial_step(acts, wgts, params[0])
    raise ValueError("unknown PE rule id")


@njit
def simulate_os_array(A, B, sched, rows, cols, rule, params, outputs, counters):
    """Run one GEMM group through the register-level OS array, fold after fold.

    Parameters
    ----------
    A : ndarray of int64, shape (M, Kd)
        Activations.
    B : ndarray of int64, shape (Kd, N)
        Weights.
    sched : ndarray of int64, shape (T, S)
        ``sched[t, s]``: the K index thread t feeds at step s, or -1 (operand 0).
    rows, cols : int
        Array size in PEs.
    rule : int
        A ``RULE_*`` id.
    params : ndarray of int64
        The rule's parameters.
    outputs : ndarray of int64, shape (M, N)
        Filled with what leaves the bottom edge of the array.
    counters : ndarray of int64, shape (N_COUNTERS,)
        Incremented per PE-step with a real output position and a real step.

    Returns
    -------
    int
        Cycles counted while the array ran, all folds together (fill, compute and drain).
    """
    fold_steps = np.full(1, sched.shape[1], np.int64)
    per_fold = sched.reshape(1, sched.shape[0], sched.shape[1])
    return simulate_os_array_folds(A, B, per_fold, fold_steps, rows, cols, rule, params,
                                   outputs, counters)


@njit
def simulate_os_array_folds(A, B, sched, fold_steps, rows, cols, rule, params, outputs,
                            counters):
    """:func:`simulate_os_array` with a schedule per column fold.

    Parameters
    ----------
    sched : ndarray of int64, shape (C, T, S)
        ``sched[c, t, s]``: the K index thread t feeds at step s of column fold c (row fold
        independent), or -1 (operand 0). C = 1 uses ``sched[0]`` for every column fold.
    fold_steps : ndarray of int64, shape (C,)
        Steps of each column fold (``fold_steps[c] <= S``).
    counters : ndarray of int64
        Long enough for every counter index the rule returns.

    The other parameters and the result are those of :func:`simulate_os_array`.
    """
    n_m = A.shape[0]
    n_n = B.shape[1]
    n_threads = sched.shape[1]
    act_val = np.zeros((rows, cols, n_threads), np.int64)
    wgt_val = np.zeros((rows, cols, n_threads), np.int64)
    act_step = np.empty((rows, cols), np.int64)
    wgt_step = np.empty((rows, cols), np.int64)
    acc = np.zeros((rows, cols), np.int64)
    out_val = np.zeros((rows, cols), np.int64)
    out_row = np.empty((rows, cols), np.int64)
    act_feed = np.empty(rows, np.int64)
    wgt_feed = np.empty(cols, np.int64)
    cycles = 0
    for fold_row in range((n_m + rows - 1) // rows):
        m0 = fold_row * rows
        for fold_col in range((n_n + cols - 1) // cols):
            n0 = fold_col * cols
            fold = fold_col if sched.shape[0] > 1 else 0
            n_steps = fold_steps[fold]
            act_val[:] = 0
            wgt_val[:] = 0
            act_step[:] = -1
            wgt_step[:] = -1
            acc[:] = 0
            out_row[:] = -1
            for i in range(rows):
                act_feed[i] = -i
            for j in range(cols):
                wgt_feed[j] = -j

            # Fill and compute: one iteration per clock cycle while anything is in flight.
            while True:
                for i in range(rows):
                    for j in range(cols - 1, 0, -1):
                        act_step[i, j] = act_step[i, j - 1]
                        for t in range(n_threads):
                            act_val[i, j, t] = act_val[i, j - 1, t]
                    s = act_feed[i]
                    act_feed[i] += 1
                    m = m0 + i
                    if 0 <= s < n_steps:
                        act_step[i, 0] = s
                        for t in range(n_threads):
                            k = sched[fold, t, s]
                            act_val[i, 0, t] = A[m, k] if (k >= 0 and m < n_m) else 0
                    else:
                        act_step[i, 0] = -1
                        for t in range(n_threads):
                            act_val[i, 0, t] = 0
                for j in range(cols):
                    for i in range(rows - 1, 0, -1):
                        wgt_step[i, j] = wgt_step[i - 1, j]
                        for t in range(n_threads):
                            wgt_val[i, j, t] = wgt_val[i - 1, j, t]
                    s = wgt_feed[j]
                    wgt_feed[j] += 1
                    n = n0 + j
                    if 0 <= s < n_steps:
                        wgt_step[0, j] = s
                        for t in range(n_threads):
                            k = sched[fold, t, s]
                            wgt_val[0, j, t] = B[k, n] if (k >= 0 and n < n_n) else 0
                    else:
                        wgt_step[0, j] = -1
                        for t in range(n_threads):
                            wgt_val[0, j, t] = 0

                busy = False
                for i in range(rows):
                    for j in range(cols):
                        if act_step[i, j] < 0 or wgt_step[i, j] < 0:
                            continue
                        busy = True
                        partial, counter = pe_step(rule, params, act_val[i, j], wgt_val[i, j])
                        acc[i, j] += partial
                        if m0 + i < n_m and n0 + j < n_n:
                            counters[counter] += 1
                pending = False
                for i in range(rows):
                    if act_feed[i] < n_steps:
                        pending = True
                for j in range(cols):
                    if wgt_feed[j] < n_steps:
                        pending = True
                if not busy and not pending:
                    break
                cycles += 1

            # Drain: the accumulators shift down their column and leave at the bottom edge.
            for i in range(rows):
                for j in range(cols):
                    out_val[i, j] = acc[i, j]
                    out_row[i, j] = i
            while True:
                occupied = False
                for i in range(rows):
                    for j in range(cols):
                        if out_row[i, j] >= 0:
                            occupied = True
                if not occupied:
                    break
                for j in range(cols):
                    r = out_row[rows - 1, j]
                    if r >= 0 and m0 + r < n_m and n0 + j < n_n:
                        outputs[m0 + r, n0 + j] = out_val[rows - 1, j]
                    for i in range(rows - 1, 0, -1):
                        out_val[i, j] = out_val[i - 1, j]
                        out_row[i, j] = out_row[i - 1, j]
                    out_val[0, j] = 0
                    out_row[0, j] = -1
                cycles += 1
    return cycles


def _python_rule(rule, params, acts, wgts):
    """``pe_step`` of the interpreted array: ``rule`` is the Python step function."""
    return rule(acts, wgts, params)


#: The body of :func:`simulate_os_array_folds` run by the interpreter, with ``pe_step`` bound
#: to :func:`_python_rule`: one array model for compiled and plain-Python rules.
_interpreted_folds = types.FunctionType(getattr(simulate_os_array_folds, "py_func",
                                                simulate_os_array_folds).__code__,
                                        {**globals(), "pe_step": _python_rule},
                                        "simulate_os_array_folds_interpreted")


def simulate_os_array_folds_python(A, B, sched, fold_steps, rows, cols, step, params, outputs,
                                   counters):
    """:func:`simulate_os_array_folds` with a plain-Python PE rule (slow: tiny shapes only).

    Parameters
    ----------
    step : callable
        ``step(acts, wgts, params) -> (partial_sum, counter_index)``, called once per PE-step
        with the T activations and T weights the PE holds (int64 arrays).
    params : object
        Passed to ``step`` unchanged (a PE plug-in's named parameters).

    The other parameters and the result are those of :func:`simulate_os_array_folds`.
    """
    return _interpreted_folds(A, B, sched, fold_steps, rows, cols, step, params, outputs,
                              counters)
