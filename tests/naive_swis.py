"""Slow, obviously-correct pure-Python twins of the SWIS and bit-serial models.

Plain loops over plain ints, from docs/hardware-spec.md §5-6 and docs/pe-models.md, sharing no code
with the package: the exhaustive search per group, the threshold and budget rules, the filter
scheduler, the PE-cycle by PE-cycle array, the p-bit rounding, and the expansion of a GEMM into
the bit operands that the register-level reference array clocks.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

__all__ = [
    "naive_nearest",
    "naive_best_set",
    "naive_decompose",
    "naive_schedule",
    "naive_swis_run",
    "naive_round_to_bits",
    "naive_bitserial_run",
    "swis_reference_operands",
    "bitserial_reference_operands",
]


def naive_nearest(x: int, positions) -> int:
    """The sum of a subset of {2^s : s in positions} nearest to x (ties: the smaller)."""
    best = None
    for size in range(len(positions) + 1):
        for subset in itertools.combinations(positions, size):
            value = sum(2 ** s for s in subset)
            if best is None or abs(x - value) < abs(x - best) or (
                    abs(x - value) == abs(x - best) and value < best):
                best = value
    return best


def naive_best_set(magnitudes, n: int):
    """(positions, error) of the best n-position set for a group: least summed squared error,
    ties to the smaller mask value sum(2^s)."""
    best = None
    for positions in itertools.combinations(range(8), n):
        error = sum((x - naive_nearest(x, positions)) ** 2 for x in magnitudes)
        mask = sum(2 ** s for s in positions)
        if best is None or (error, mask) < (best[1], best[2]):
            best = (positions, error, mask)
    return best[0], best[1]


def naive_decompose(B, group_size: int, shifts=None, max_shifts=None, error_threshold=None,
                    bit_budget=None):
    """SWIS decomposition of B (Kd x F lists of ints).

    Returns a dict: ``approx`` (Kd x F), and per group [q][f]: ``positions`` (ascending
    tuple), ``shifts`` (N), ``errors``.
    """
    kd, n_f = len(B), len(B[0])
    n_q = -(-kd // group_size)

    def group(q, f):
        return [abs(int(B[k][f])) for k in range(q * group_size, min(kd, (q + 1) * group_size))]

    choice = [[None] * n_f for _ in range(n_q)]
    if shifts is not None:
        for q in range(n_q):
            for f in range(n_f):
                positions, error = naive_best_set(group(q, f), shifts)
                choice[q][f] = (positions, shifts, error)
    elif error_threshold is not None:
        for q in range(n_q):
            for f in range(n_f):
                for n in range(1, max_shifts + 1):
                    positions, error = naive_best_set(group(q, f), n)
                    if error <= error_threshold or n == max_shifts:
                        choice[q][f] = (positions, n, error)
                        break
    else:
        # Every group starts at one position; the greedy adds one position at a time to the
        # group with the largest error reduction per mask bit (ties: the group first in
        # (q, f) order) while that reduction is positive and the group's bits fit.
        options = {}
        sizes = {}
        for q in range(n_q):
            for f in range(n_f):
                sizes[q, f] = len(group(q, f))
                options[q, f] = [naive_best_set(group(q, f), n) for n in range(1, max_shifts + 1)]
        n_of = {key: 1 for key in options}
        remaining = math.floor(bit_budget * (kd * n_f)) - sum(sizes.values())
        while True:
            best = None
            for q in range(n_q):
                for f in range(n_f):
                    n = n_of[q, f]
                    if n == max_shifts:
                        continue
                    gain = Fraction(options[q, f][n - 1][1] - options[q, f][n][1], sizes[q, f])
                    if best is None or gain > best[0]:
                        best = (gain, (q, f))
            if best is None or best[0] <= 0 or sizes[best[1]] > remaining:
                break
            n_of[best[1]] += 1
            remaining -= sizes[best[1]]
        for (q, f), n in n_of.items():
            positions, error = options[q, f][n - 1]
            choice[q][f] = (positions, n, error)
    approx = [[0] * n_f for _ in range(kd)]
    for k in range(kd):
        for f in range(n_f):
            positions = choice[k // group_size][f][0]
            w = int(B[k][f])
            approx[k][f] = (-1 if w < 0 else 1) * naive_nearest(abs(w), positions)
    return {"approx": approx,
            "positions": [[c[0] for c in row] for row in choice],
            "shifts": [[c[1] for c in row] for row in choice],
            "errors": [[c[2] for c in row] for row in choice]}


def _fold_cost(shifts, order, cols: int) -> int:
    cost = 0
    for start in range(0, len(order), cols):
        fold = order[start:start + cols]
        for row in shifts:
            cost += max(row[f] for f in fold)
    return cost


def naive_schedule(shifts, cols: int) -> list[int]:
    """The filter order of the scheduler (shifts: Q x F lists of N)."""
    n_f = len(shifts[0])
    identity = list(range(n_f))
    if n_f <= cols:
        return identity
    total = {f: sum(row[f] for row in shifts) for f in range(n_f)}
    remaining = sorted(range(n_f), key=lambda f: (-total[f], f))
    order = []
    while remaining:
        seed = remaining[0]
        rest = remaining[1:]
        growth = []
        for rank, f in enumerate(rest):
            growth.append((sum(max(row[seed], row[f]) for row in shifts), rank))
        picked = sorted(rank for _, rank in sorted(growth)[:cols - 1])
        order.append(seed)
        order.extend(rest[rank] for rank in picked)
        remaining = [f for rank, f in enumerate(rest) if rank not in picked]
    if _fold_cost(shifts, order, cols) < _fold_cost(shifts, identity, cols):
        return order
    return identity


def naive_swis_run(A, dec, group_size: int, rows: int, cols: int, order):
    """The SWIS array PE-cycle by PE-cycle.

    Column fold c holds filters ``order[c*cols:(c+1)*cols]``; in group step q every PE of the
    fold spends L = max N over the fold's filters cycles; in cycle r a PE whose filter has
    N > r processes its r-th shared position (AND lanes, adder tree, shift, accumulate),
    the others wait.

    Returns (outputs M x F, counters, stats, steps per column fold, native cycles).
    """
    n_m, kd = len(A), len(A[0])
    approx, positions, shifts = dec["approx"], dec["positions"], dec["shifts"]
    n_q, n_f = len(shifts), len(shifts[0])
    outputs = [[0] * n_f for _ in range(n_m)]
    counters = {"idle": 0, "zero": 0, "active": 0}
    active_lanes = 0
    fold_steps = []
    for start in range(0, n_f, cols):
        fold = order[start:start + cols]
        steps = 0
        for q in range(n_q):
            length = max(shifts[q][f] for f in fold)
            steps += length
            for r in range(length):
                for m in range(n_m):
                    for f in fold:
                        if r >= shifts[q][f]:
                            counters["idle"] += 1
                            continue
                        position = positions[q][f][r]
                        tree = 0
                        lanes = 0
                        for t in range(group_size):
                            k = q * group_size + t
                            if k >= kd:
                                continue
                            a, w = int(A[m][k]), approx[k][f]
                            if (abs(w) >> position) & 1 and a != 0:
                                lanes += 1
                                tree += a if w > 0 else -a
                        outputs[m][f] += tree * 2 ** position
                        active_lanes += lanes
                        counters["active" if lanes else "zero"] += 1
        fold_steps.append(steps)
    row_folds = -(-n_m // rows)
    total_n = sum(sum(row) for row in shifts)
    sizes = [min(group_size, kd - q * group_size) for q in range(n_q)]
    stats = {"shifts": counters["zero"] + counters["active"], "active_lanes": active_lanes,
             "metadata_reads": row_folds * total_n,
             "storage_bits": sum(sizes[q] * (shifts[q][f] + 1) + 3 * shifts[q][f]
                                 for q in range(n_q) for f in range(n_f)),
             "weights": kd * n_f,
             "weight_sq_error": sum(sum(row) for row in dec["errors"])}
    cycles = sum(row_folds * (steps + 2 * rows + cols - 2) for steps in fold_steps)
    return outputs, counters, stats, fold_steps, cycles


def naive_round_to_bits(x: int, bits: int, signed: bool) -> int:
    """x on the bits-bit grid of its 8-bit format: round half to even, saturate."""
    step = 2 ** (8 - bits)
    quotient, remainder = divmod(x, step)  # floor division, also for negative x
    if 2 * remainder > step or (2 * remainder == step and quotient % 2 == 1):
        quotient += 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    return min(max(quotient, low), high) * step


def _serial_bits(value: int, bits: int, signed: bool):
    """[(position, signed bit)] of a value on the bits-bit grid, LSB first."""
    code = value // 2 ** (8 - bits)
    if code < 0:
        code += 2 ** bits
    out = []
    for j in range(bits):
        bit = (code >> j) & 1
        if signed and j == bits - 1:
            bit = -bit
        out.append((8 - bits + j, bit))
    return out


def naive_bitserial_run(A, B, bits: int, serial: str, group_size: int, rows: int, cols: int,
                        signed_activations: bool):
    """The bit-serial array PE-cycle by PE-cycle: per K group, ``bits`` cycles, one bit of
    the serial operand (LSB first) per cycle.

    Returns (outputs, counters, stats, steps per fold, native cycles).
    """
    n_m, kd, n_f = len(A), len(A[0]), len(B[0])
    qa = [[int(v) for v in row] for row in A]
    qb = [[int(v) for v in row] for row in B]
    if serial == "weight":
        qb = [[naive_round_to_bits(v, bits, True) for v in row] for row in qb]
    else:
        qa = [[naive_round_to_bits(v, bits, signed_activations) for v in row] for row in qa]
    n_q = -(-kd // group_size)
    outputs = [[0] * n_f for _ in range(n_m)]
    counters = {"idle": 0, "zero": 0, "active": 0}
    active_lanes = 0
    for q in range(n_q):
        for j in range(bits):
            for m in range(n_m):
                for f in range(n_f):
                    tree = 0
                    lanes = 0
                    position = 8 - bits + j
                    for t in range(group_size):
                        k = q * group_size + t
                        if k >= kd:
                            continue
                        if serial == "weight":
                            _, bit = _serial_bits(qb[k][f], bits, True)[j]
                            value = qa[m][k]
                        else:
                            _, bit = _serial_bits(qa[m][k], bits, signed_activations)[j]
                            value = qb[k][f]
                        if bit != 0 and value != 0:
                            lanes += 1
                            tree += value * bit
                    outputs[m][f] += tree * 2 ** position
                    active_lanes += lanes
                    counters["active" if lanes else "zero"] += 1
    steps = n_q * bits
    folds = -(-n_m // rows) * -(-n_f // cols)
    weight_error = sum((int(B[k][f]) - qb[k][f]) ** 2 for k in range(kd) for f in range(n_f))
    stats = {"shifts": counters["zero"] + counters["active"], "active_lanes": active_lanes,
             "storage_bits": kd * n_f * (bits if serial == "weight" else 8),
             "weights": kd * n_f, "weight_sq_error": weight_error if serial == "weight" else 0}
    return outputs, counters, stats, steps, folds * (steps + 2 * rows + cols - 2)


def _expanded_index(q: int, r: int, t: int, slots: int, group_size: int) -> int:
    return (q * slots + r) * (group_size + 1) + t


def swis_reference_operands(A, dec, group_size: int, cols: int, order):
    """Bit operands and per-column-fold schedule for the reference array's bitserial rule.

    Expanded K index (q, r, t): lane t < G of slot r of group q, and t = G the slot's
    position. A'[m, (q, r, t)] = A[m, q*G + t] (0 for t = G or past Kd);
    B'[(q, r, t), j] = sign * bit of filter order[j]'s weight at its r-th position, and
    B'[(q, r, G), j] = that position, or -1 when the filter has fewer than r + 1 positions.
    Column fold c steps through (q, r) for r < max N of its filters.

    Returns (A', B', sched (C, G+1, S), fold_steps (C,)) as nested lists.
    """
    n_m, kd = len(A), len(A[0])
    approx, positions, shifts = dec["approx"], dec["positions"], dec["shifts"]
    n_q, n_f = len(shifts), len(shifts[0])
    slots = max(max(row) for row in shifts)
    size = n_q * slots * (group_size + 1)
    a_x = [[0] * size for _ in range(n_m)]
    b_x = [[0] * n_f for _ in range(size)]
    for q in range(n_q):
        for r in range(slots):
            for t in range(group_size):
                k = q * group_size + t
                if k >= kd:
                    continue
                for m in range(n_m):
                    a_x[m][_expanded_index(q, r, t, slots, group_size)] = int(A[m][k])
            for j, f in enumerate(order):
                position_row = _expanded_index(q, r, group_size, slots, group_size)
                if r >= shifts[q][f]:
                    b_x[position_row][j] = -1
                    continue
                position = positions[q][f][r]
                b_x[position_row][j] = position
                for t in range(group_size):
                    k = q * group_size + t
                    if k < kd:
                        w = approx[k][f]
                        bit = (abs(w) >> position) & 1
                        index = _expanded_index(q, r, t, slots, group_size)
                        b_x[index][j] = -bit if w < 0 else bit
    scheds, fold_steps = [], []
    for start in range(0, n_f, cols):
        fold = order[start:start + cols]
        steps = []
        for q in range(n_q):
            for r in range(max(shifts[q][f] for f in fold)):
                steps.append([_expanded_index(q, r, t, slots, group_size)
                              for t in range(group_size + 1)])
        scheds.append(steps)
        fold_steps.append(len(steps))
    longest = max(fold_steps)
    sched = [[[steps[s][t] if s < len(steps) else -1 for s in range(longest)]
              for t in range(group_size + 1)] for steps in scheds]
    return a_x, b_x, sched, fold_steps


def bitserial_reference_operands(A, B, bits: int, serial: str, group_size: int,
                                 signed_activations: bool):
    """Bit operands and schedule (one for all folds) of the bit-serial array.

    Expanded K index (q, j, t) as in :func:`swis_reference_operands` with slot j = the j-th
    bit (LSB first) at position 8 - bits + j. Returns (A', B', sched (G+1, S)).
    """
    n_m, kd, n_f = len(A), len(A[0]), len(B[0])
    n_q = -(-kd // group_size)
    size = n_q * bits * (group_size + 1)
    a_x = [[0] * size for _ in range(n_m)]
    b_x = [[0] * n_f for _ in range(size)]
    for q in range(n_q):
        for j in range(bits):
            for f in range(n_f):
                b_x[_expanded_index(q, j, group_size, bits, group_size)][f] = 8 - bits + j
            for t in range(group_size):
                k = q * group_size + t
                if k >= kd:
                    continue
                index = _expanded_index(q, j, t, bits, group_size)
                for m in range(n_m):
                    a = int(A[m][k])
                    if serial == "activation":
                        a = _serial_bits(naive_round_to_bits(a, bits, signed_activations), bits,
                                         signed_activations)[j][1]
                    a_x[m][index] = a
                for f in range(n_f):
                    w = int(B[k][f])
                    if serial == "weight":
                        w = _serial_bits(naive_round_to_bits(w, bits, True), bits, True)[j][1]
                    b_x[index][f] = w
    sched = [[_expanded_index(q, j, t, bits, group_size) for q in range(n_q) for j in range(bits)]
             for t in range(group_size + 1)]
    return a_x, b_x, sched
