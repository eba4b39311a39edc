"""Slow, obviously-correct pure-Python twins of the SPARQ and A4W8 PE models.

Plain loops over plain ints, from docs/hardware-spec.md §4 and §6 and the choices documented in
docs/pe-models.md, sharing no code with the package: a window is found by trying the allowed
positions in increasing order, rounding is done with divmod, and every product of every PE-step
is evaluated one by one.
"""

from __future__ import annotations

__all__ = [
    "NAIVE_WINDOWS",
    "naive_window",
    "naive_sparq_gemm",
    "naive_uniform",
    "naive_a4w8_shift",
    "naive_a4w8_gemm",
]

#: (window bits, options) -> (allowed window LSB positions, zero-partner window bits and
#: positions); the table of docs/hardware-spec.md §4 and its vSPARQ fallbacks (8 bits: all of it)
NAIVE_WINDOWS = {
    (4, 5): ([0, 1, 2, 3, 4], 8, [0]),
    (4, 3): ([0, 2, 4], 8, [0]),
    (4, 2): ([0, 4], 8, [0]),
    (6, 3): ([0, 1, 2], 8, [0]),
    (3, 6): ([0, 1, 2, 3, 4, 5], 6, [0, 1, 2]),
    (2, 7): ([0, 1, 2, 3, 4, 5, 6], 4, [0, 1, 2, 3, 4]),
}


def naive_window(x: int, n: int, positions: list[int], rounding: str) -> tuple[int, int]:
    """bSPARQ window of magnitude x (0..255): (value in the original scale, position p)."""
    if x == 0:
        return 0, 0
    leading = len(bin(x)) - 3  # bin(x) = '0b1...'
    for p in sorted(positions):
        if p + n - 1 >= leading:
            break
    else:
        raise ValueError(f"no window of {n} bits at {positions} holds {x}")
    step = 2 ** p
    quotient, remainder = divmod(x, step)
    if rounding == "round":
        half = step // 2
        if p > 0 and (remainder > half or (remainder == half and quotient % 2 == 1)):
            quotient += 1
        if quotient > 2 ** n - 1:
            quotient = 2 ** n - 1
    elif rounding != "raw":
        raise ValueError(f"unknown rounding {rounding!r}")
    return quotient * step, p


def _product(a: int, partner: int, config: tuple[int, int], rounding: str):
    """The activation a multiplier sees for a (its pair partner given), whether it lost bits,
    and the narrow window's position when it did (None otherwise)."""
    if a == 0:
        return 0, False, None
    positions, wide_bits, wide_positions = NAIVE_WINDOWS[config]
    sign = -1 if a < 0 else 1
    x = abs(a)
    if partner == 0:
        value, _ = naive_window(x, wide_bits, wide_positions, rounding)
        return sign * value, value != x, None
    value, p = naive_window(x, config[0], positions, rounding)
    return sign * value, value != x, (p if value != x else None)


def _count(table: dict, key: str, amount: int = 1) -> None:
    table[key] = table.get(key, 0) + amount


def naive_sparq_gemm(A, B, window_bits: int, options: int, rounding: str, pairing: str):
    """SPARQ GEMM, PE-step by PE-step.

    ``adjacent``: step s holds K elements (2s, 2s+1); an odd Kd's last element pairs with 0.
    ``stc``: step s holds the group 4s..4s+3; per column, the positions with a non-zero weight
    (at most two, else ValueError) form the pair, in K order; a missing one is an empty slot
    (activation 0, weight 0).

    Returns
    -------
    outputs : list of lists of int, (M, N)
    counters : dict, PE-steps by kind: ``idle`` (no non-zero activation), ``zero_partner`` /
        ``zero_partner_trimmed`` (one, kept whole / lost bits), ``pair_exact`` /
        ``pair_one_trimmed`` / ``pair_both_trimmed`` (two, by how many lost bits)
    stats : dict, ``exact_products``, ``approximated_products`` (non-zero activations) and
        ``trim_shift_<p>`` (narrow windows at position p that lost bits)
    steps : int
    """
    config = (window_bits, options)
    n_m, kd, n_n = len(A), len(B), len(B[0])
    width = 2 if pairing == "adjacent" else 4
    steps = (kd + width - 1) // width
    outputs = [[0] * n_n for _ in range(n_m)]
    counters: dict[str, int] = {}
    stats: dict[str, int] = {}
    for m in range(n_m):
        for n in range(n_n):
            total = 0
            for s in range(steps):
                ks = [k for k in range(width * s, width * s + width) if k < kd]
                if pairing == "adjacent":
                    slots = ks
                elif pairing == "stc":
                    slots = [k for k in ks if int(B[k][n]) != 0]
                    if len(slots) > 2:
                        raise ValueError(f"group at K {ks[0]} of column {n} is not 2:4")
                else:
                    raise ValueError(f"unknown pairing {pairing!r}")
                pair = [(int(A[m][k]), int(B[k][n])) for k in slots]
                while len(pair) < 2:
                    pair.append((0, 0))
                (a0, w0), (a1, w1) = pair
                nonzero, lost = 0, 0
                for a, partner, w in ((a0, a1, w0), (a1, a0, w1)):
                    used, trimmed, p = _product(a, partner, config, rounding)
                    total += used * w
                    if a != 0:
                        nonzero += 1
                        lost += trimmed
                        _count(stats, "approximated_products" if trimmed else "exact_products")
                    if p is not None:
                        _count(stats, f"trim_shift_{p}")
                if nonzero == 0:
                    kind = "idle"
                elif nonzero == 1:
                    kind = "zero_partner_trimmed" if lost else "zero_partner"
                else:
                    kind = ["pair_exact", "pair_one_trimmed", "pair_both_trimmed"][lost]
                _count(counters, kind)
            outputs[m][n] = total
    return outputs, counters, stats, steps


def naive_uniform(x: int, shift: int, rounding: str) -> int:
    """Uniform 4-bit quantisation of magnitude x on the grid of step 2**shift."""
    step = 2 ** shift
    quotient, remainder = divmod(x, step)
    if rounding == "round" and shift > 0:
        half = step // 2
        if remainder > half or (remainder == half and quotient % 2 == 1):
            quotient += 1
    return min(quotient, 15) * step


def naive_a4w8_shift(A, scale: str) -> int:
    """Grid exponent: 4 (fixed), or the fewest dropped bits that fit max |a| in 4 bits."""
    if scale == "fixed":
        return 4
    peak = max(abs(int(v)) for row in A for v in row)
    shift = 0
    while peak >= 16 * 2 ** shift:
        shift += 1
    return shift


def naive_a4w8_gemm(A, B, shift: int, rounding: str):
    """A4W8 GEMM, PE-step by PE-step: pairs (2s, 2s+1), each activation quantised alone.

    Returns (outputs, counters {idle, single, double}: non-zero activations in the step,
    stats {exact_products, approximated_products}, steps).
    """
    n_m, kd, n_n = len(A), len(B), len(B[0])
    steps = (kd + 1) // 2
    outputs = [[0] * n_n for _ in range(n_m)]
    counters = {"idle": 0, "single": 0, "double": 0}
    stats = {"exact_products": 0, "approximated_products": 0}
    for m in range(n_m):
        for n in range(n_n):
            total = 0
            for s in range(steps):
                nonzero = 0
                for k in (2 * s, 2 * s + 1):
                    a = int(A[m][k]) if k < kd else 0
                    w = int(B[k][n]) if k < kd else 0
                    sign = -1 if a < 0 else 1
                    used = sign * naive_uniform(abs(a), shift, rounding)
                    if a != 0:
                        nonzero += 1
                        stats["exact_products" if used == a else "approximated_products"] += 1
                    total += used * w
                counters[["idle", "single", "double"][nonzero]] += 1
            outputs[m][n] = total
    return outputs, counters, stats, steps
