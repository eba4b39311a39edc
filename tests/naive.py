"""Slow, obviously-correct pure-Python twins of sasim's kernels, for the tests to compare with.

Everything here loops in plain Python over plain ints; no numpy tricks, no shared code with
the package. Written from docs/hardware-spec.md §2-3 and docs/reference-array.md, not the kernels.
"""

from __future__ import annotations

__all__ = [
    "COUNTER_NAMES",
    "naive_schedule",
    "naive_trim",
    "naive_sysmt_gemm",
    "naive_native_cycles",
]

COUNTER_NAMES = ("idle", "single", "shared_exact", "shared_reduced")


def naive_schedule(kd: int, threads: int, split: str) -> list[list[int]]:
    """Thread schedule as a list of ``threads`` lists of K indices (-1: no operand).

    ``contiguous``: thread t gets a contiguous slice of K; the first ``kd % threads`` threads
    get one extra element. ``interleaved``: thread t takes k = step * threads + t.
    """
    steps = -(-kd // threads)
    sched = []
    if split == "contiguous":
        start = 0
        for t in range(threads):
            size = kd // threads + (1 if t < kd % threads else 0)
            row = []
            for j in range(steps):
                row.append(start + j if j < size else -1)
            sched.append(row)
            start += size
    elif split == "interleaved":
        for t in range(threads):
            row = []
            for j in range(steps):
                k = j * threads + t
                row.append(k if k < kd else -1)
            sched.append(row)
    else:
        raise ValueError(f"unknown split {split!r}")
    return sched


def naive_trim(x: int, rounding: str) -> int:
    """Keep the high nibble of magnitude ``x`` (0..255); values below 16 are kept whole."""
    if x < 16:
        return x
    quotient, remainder = divmod(x, 16)
    if rounding == "round_half_even":
        if remainder > 8 or (remainder == 8 and quotient % 2 == 1):
            quotient += 1
    elif rounding != "truncate":
        raise ValueError(f"unknown rounding {rounding!r}")
    return min(quotient * 16, 240)


def _signed_trim(v: int, rounding: str) -> int:
    sign = -1 if v < 0 else 1
    return sign * naive_trim(abs(v), rounding)


def _fits_4x8_exactly(a: int, w: int) -> bool:
    """A 4b x 8b multiplier computes a * w exactly (the sparsity-aware mappings)."""
    x = abs(a)
    high, low = x // 16, x % 16
    return high == 0 or low == 0 or abs(w) < 16


def naive_sysmt_gemm(A, B, sched, policy: str, rounding: str):
    """SySMT GEMM, PE-step by PE-step.

    Parameters
    ----------
    A : (M, Kd) activations, B : (Kd, N) weights, sched : (T, S) K indices or -1; any
    indexable of ints (converted with ``int``).

    Returns
    -------
    outputs : list of lists of int, (M, N)
    counters : dict with the keys of ``COUNTER_NAMES``
    """
    n_m, n_n = len(A), len(B[0])
    threads, steps = len(sched), len(sched[0])
    outputs = [[0] * n_n for _ in range(n_m)]
    counters = dict.fromkeys(COUNTER_NAMES, 0)
    for m in range(n_m):
        for n in range(n_n):
            total = 0
            for s in range(steps):
                pairs = []
                for t in range(threads):
                    k = int(sched[t][s])
                    a = int(A[m][k]) if k >= 0 else 0
                    w = int(B[k][n]) if k >= 0 else 0
                    pairs.append((a, w))
                active = [(a, w) for a, w in pairs if a != 0 and w != 0]
                reduced = False
                for a, w in active:
                    if len(active) <= 1:
                        used_a, used_w = a, w
                    elif len(active) == 2:
                        if policy == "sparsity_aware" and _fits_4x8_exactly(a, w):
                            used_a, used_w = a, w
                        elif policy in ("sparsity_aware", "msb_trim"):
                            used_a, used_w = _signed_trim(a, rounding), w
                        else:
                            raise ValueError(f"unknown policy {policy!r}")
                    else:
                        used_a, used_w = _signed_trim(a, rounding), _signed_trim(w, rounding)
                    reduced = reduced or used_a != a or used_w != w
                    total += used_a * used_w
                if not active:
                    counters["idle"] += 1
                elif len(active) == 1:
                    counters["single"] += 1
                elif reduced:
                    counters["shared_reduced"] += 1
                else:
                    counters["shared_exact"] += 1
            outputs[m][n] = total
    return outputs, counters


def naive_native_cycles(M: int, N: int, S: int, rows: int, cols: int) -> int:
    """Native OS cycles of one GEMM group: folds x (S + 2*rows + cols - 2), no overlap."""
    folds = -(-M // rows) * -(-N // cols)
    return folds * (S + 2 * rows + cols - 2)
