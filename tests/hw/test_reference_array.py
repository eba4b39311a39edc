"""The register-level reference array against exact GEMMs and the naive SySMT model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from naive import (COUNTER_NAMES, naive_native_cycles, naive_schedule, naive_sysmt_gemm,
                   naive_trim)
from simulator.hw.reference_array import reference_rules, run_reference_array
from simulator.hw.timing import fold_timing
from simulator.kernels.reference_array import (ROUND_HALF_EVEN, ROUND_TRUNCATE,
                                               trim_magnitude)
from simulator.workloads.layers import GemmShape

SPLITS = ("contiguous", "interleaved")
POLICIES = ("sparsity_aware", "msb_trim")
ROUNDINGS = ("round_half_even", "truncate")
KERNEL_ROUNDING = {"round_half_even": ROUND_HALF_EVEN, "truncate": ROUND_TRUNCATE}

# Values that sit on the rules' boundaries: nibble edges, rounding ties, saturation (0xF8..).
UNSIGNED_SPECIALS = (1, 8, 15, 16, 17, 23, 24, 40, 56, 127, 128, 200, 232, 240, 247, 248,
                     250, 255)
SIGNED_SPECIALS = (-128, -127, -120, -40, -24, -16, -15, -8, 8, 15, 16, 24, 40, 119, 120, 127)
WEIGHT_SPECIALS = (-128, -127, -120, -24, -16, -15, 1, 15, 16, 24, 40, 119, 120, 124, 127)

FAST = settings(max_examples=40, deadline=None)


def schedule(kd: int, threads: int, split: str) -> np.ndarray:
    return np.array(naive_schedule(kd, threads, split), dtype=np.int64)


def random_operand(rng: np.random.Generator, shape: tuple[int, int], low: int, high: int,
                   specials: tuple[int, ...], zero_fraction: float) -> np.ndarray:
    """Uniform values in low..high, a third of them boundary values, some forced to zero."""
    values = rng.integers(low, high + 1, size=shape)
    special = rng.random(shape) < 0.35
    values[special] = rng.choice(np.array(specials), size=int(special.sum()))
    values[rng.random(shape) < zero_fraction] = 0
    return values.astype(np.int64)


@st.composite
def gemm_cases(draw):
    """A random small GEMM group on a random small array, with random sparsity."""
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 7))
    m, kd, n = draw(st.integers(1, 9)), draw(st.integers(1, 11)), draw(st.integers(1, 9))
    signed = draw(st.booleans())
    act_zeros = draw(st.sampled_from((0.0, 0.25, 0.5, 0.8)))
    wgt_zeros = draw(st.sampled_from((0.0, 0.25, 0.5)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if signed:
        A = random_operand(rng, (m, kd), -128, 127, SIGNED_SPECIALS, act_zeros)
    else:
        A = random_operand(rng, (m, kd), 0, 255, UNSIGNED_SPECIALS, act_zeros)
    B = random_operand(rng, (kd, n), -128, 127, WEIGHT_SPECIALS, wgt_zeros)
    return A, B, rows, cols


# --- trim -------------------------------------------------------------------------------------

# Derived by hand from the bit rule (x < 16 kept; else high nibble; round half to even on the
# low nibble, saturating at 240): (x, truncate, round_half_even).
TRIM_TABLE = [
    (0, 0, 0),
    (9, 9, 9),        # below 16: kept whole, even though 9 > 8
    (15, 15, 15),
    (16, 16, 16),
    (23, 16, 16),     # 0b0001_0111: bit 3 = 0, round down
    (24, 16, 32),     # 0b0001_1000: tie, mantissa 1 odd -> up
    (25, 16, 32),     # above the tie
    (40, 32, 32),     # 0b0010_1000: tie, mantissa 2 even -> stays
    (56, 48, 64),     # 0b0011_1000: tie, mantissa 3 odd -> up
    (100, 96, 96),    # 0b0110_0100: bit 3 = 0
    (127, 112, 128),  # 0b0111_1111: up to mantissa 8
    (128, 128, 128),  # |-128|: low nibble 0, unchanged
    (200, 192, 192),  # 0b1100_1000: tie, mantissa 12 even
    (232, 224, 224),  # 0b1110_1000: tie, mantissa 14 even
    (247, 240, 240),  # 0b1111_0111: bit 3 = 0
    (248, 240, 240),  # 0b1111_1000: tie, mantissa 15 odd -> 256, saturates to 240
    (255, 240, 240),  # rounds to 256, saturates
]


@pytest.mark.parametrize(("x", "truncated", "rounded"), TRIM_TABLE)
def test_trim_hand_table(x, truncated, rounded):
    assert naive_trim(x, "truncate") == truncated
    assert naive_trim(x, "round_half_even") == rounded
    assert trim_magnitude(x, ROUND_TRUNCATE) == truncated
    assert trim_magnitude(x, ROUND_HALF_EVEN) == rounded


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_trim_every_value_matches_naive(rounding):
    for x in range(256):
        trimmed = trim_magnitude(x, KERNEL_ROUNDING[rounding])
        assert trimmed == naive_trim(x, rounding), x
        if x < 16:
            assert trimmed == x
        else:
            assert trimmed % 16 == 0 and 16 <= trimmed <= 240
            limit = 15 if rounding == "truncate" else 8
            assert abs(trimmed - x) <= limit or x >= 248


# --- schedules (the naive helper the other tests rely on) -----------------------------------

@pytest.mark.parametrize(("kd", "threads", "split", "expected"), [
    (7, 2, "contiguous", [[0, 1, 2, 3], [4, 5, 6, -1]]),
    (7, 2, "interleaved", [[0, 2, 4, 6], [1, 3, 5, -1]]),
    (5, 4, "contiguous", [[0, 1], [2, -1], [3, -1], [4, -1]]),
    (5, 4, "interleaved", [[0, 4], [1, -1], [2, -1], [3, -1]]),
    (2, 4, "contiguous", [[0], [1], [-1], [-1]]),
    (3, 1, "contiguous", [[0, 1, 2]]),
])
def test_naive_schedule(kd, threads, split, expected):
    assert naive_schedule(kd, threads, split) == expected


# --- hand-computed PE steps -------------------------------------------------------------------

# One output, one step: every thread feeds one K element, so the output is one PE-step.
HAND_CASES = [
    # 2 active, sparsity_aware: 23 has both nibbles and |100| >= 16 -> 16*100; 5 is exact.
    ((23, 5), (100, 3), "sparsity_aware", "truncate", 16 * 100 + 15, "shared_reduced"),
    # |10| < 16: the weight is the narrow operand, exact under sparsity_aware ...
    ((23, 5), (10, 3), "sparsity_aware", "round_half_even", 23 * 10 + 15, "shared_exact"),
    # ... but msb_trim trims the activation anyway.
    ((23, 5), (10, 3), "msb_trim", "round_half_even", 16 * 10 + 15, "shared_reduced"),
    # Rounding matters: 24 truncates to 16, rounds (tie, odd mantissa) to 32.
    ((24, 5), (100, 3), "msb_trim", "truncate", 16 * 100 + 15, "shared_reduced"),
    ((24, 5), (100, 3), "msb_trim", "round_half_even", 32 * 100 + 15, "shared_reduced"),
    # Signed activation keeps its sign: |-40| ties to 32 (even mantissa).
    ((-40, 7), (-50, 2), "msb_trim", "round_half_even", -32 * -50 + 14, "shared_reduced"),
    # Low nibble zero: exact under both policies.
    ((48, 5), (100, 3), "msb_trim", "truncate", 48 * 100 + 15, "shared_exact"),
    # One thread inactive (weight 0): the other gets the whole 8b x 8b multiplier.
    ((23, 5), (100, 0), "msb_trim", "truncate", 23 * 100, "single"),
    ((0, 0), (100, 3), "msb_trim", "truncate", 0, "idle"),
    # 4 threads, 3 active: 4b x 4b, both operands trimmed: 16*96 + 192*(-128) + 5*3.
    ((23, 200, 5, 0), (100, -128, 3, 7), "sparsity_aware", "round_half_even",
     16 * 96 - 192 * 128 + 15, "shared_reduced"),
    # 4 threads, 2 active: back to 4b x 8b; 255 with |w| >= 16 saturates to 240.
    ((255, 0, 5, 9), (20, 4, 0, 1), "sparsity_aware", "round_half_even",
     240 * 20 + 9, "shared_reduced"),
]


@pytest.mark.parametrize(("acts", "wgts", "policy", "rounding", "expected", "counter"),
                         HAND_CASES)
def test_hand_computed_pe_step(acts, wgts, policy, rounding, expected, counter):
    threads = len(acts)
    A = np.array([acts], dtype=np.int64)
    B = np.array([[w] for w in wgts], dtype=np.int64)
    sched = np.arange(threads, dtype=np.int64)[:, None]
    result = run_reference_array(A, B, 1, 1, sched, "sysmt",
                                 {"policy": policy, "rounding": rounding})
    assert result.outputs.tolist() == [[expected]]
    assert result.counters == {name: int(name == counter) for name in COUNTER_NAMES}
    naive_out, naive_counters = naive_sysmt_gemm(A, B, sched, policy, rounding)
    assert naive_out == [[expected]] and naive_counters == result.counters


# --- the array against the models -------------------------------------------------------------

def check_counters(counters: dict[str, int], M: int, N: int, S: int) -> None:
    assert set(counters) == set(COUNTER_NAMES)
    assert all(v >= 0 for v in counters.values())
    assert sum(counters.values()) == M * N * S


@FAST
@given(gemm_cases())
def test_dense_equals_exact_gemm(case):
    A, B, rows, cols = case
    (M, kd), N = A.shape, B.shape[1]
    result = run_reference_array(A, B, rows, cols, schedule(kd, 1, "contiguous"), "dense")
    np.testing.assert_array_equal(result.outputs, A @ B)
    assert result.cycles == naive_native_cycles(M, N, kd, rows, cols)
    check_counters(result.counters, M, N, kd)
    assert result.counters["shared_exact"] == result.counters["shared_reduced"] == 0
    assert result.counters["single"] == int(((A != 0).astype(int) @ (B != 0).astype(int)).sum())


@FAST
@given(gemm_cases(), st.sampled_from((1, 2, 4)), st.sampled_from(SPLITS),
       st.sampled_from(POLICIES), st.sampled_from(ROUNDINGS))
def test_sysmt_equals_naive_model(case, threads, split, policy, rounding):
    A, B, rows, cols = case
    (M, kd), N = A.shape, B.shape[1]
    sched = schedule(kd, threads, split)
    steps = sched.shape[1]
    result = run_reference_array(A, B, rows, cols, sched, "sysmt",
                                 {"policy": policy, "rounding": rounding})
    expected, counters = naive_sysmt_gemm(A, B, sched, policy, rounding)
    assert result.outputs.tolist() == expected
    assert result.counters == counters
    assert result.cycles == naive_native_cycles(M, N, steps, rows, cols)
    check_counters(result.counters, M, N, steps)


@pytest.mark.parametrize(("threads", "split", "policy", "rounding"),
                         list(itertools.product((1, 2, 4), SPLITS, POLICIES, ROUNDINGS)))
def test_sysmt_every_configuration(threads, split, policy, rounding):
    """Each configuration once on a fixed dense-ish case (hypothesis may not sample all)."""
    rng = np.random.default_rng(threads * 100 + len(split) + len(policy) + len(rounding))
    M, kd, N, rows, cols = 7, 11, 6, 3, 5
    A = random_operand(rng, (M, kd), 0, 255, UNSIGNED_SPECIALS, 0.1)
    B = random_operand(rng, (kd, N), -128, 127, WEIGHT_SPECIALS, 0.1)
    sched = schedule(kd, threads, split)
    result = run_reference_array(A, B, rows, cols, sched, "sysmt",
                                 {"policy": policy, "rounding": rounding})
    expected, counters = naive_sysmt_gemm(A, B, sched, policy, rounding)
    assert result.outputs.tolist() == expected
    assert result.counters == counters
    assert result.cycles == naive_native_cycles(M, N, sched.shape[1], rows, cols)
    if threads == 1:
        np.testing.assert_array_equal(result.outputs, A @ B)
    else:
        # The case really exercises lossy collisions.
        assert counters["shared_reduced"] > 0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), st.integers(1, 10), st.integers(1, 10),
       st.integers(1, 12), st.sampled_from((1, 2, 4)))
@example(3, 5, 7, 11, 9, 2)
@example(1, 1, 3, 2, 5, 1)
@example(4, 7, 9, 15, 10, 4)
@example(4, 7, 4, 7, 1, 1)
def test_cycles_are_counted_per_fold(rows, cols, M, N, kd, threads):
    A = np.ones((M, kd), dtype=np.int64)
    B = np.ones((kd, N), dtype=np.int64)
    sched = schedule(kd, threads, "contiguous")
    steps = sched.shape[1]
    result = run_reference_array(A, B, rows, cols, sched, "sysmt",
                                 {"policy": "msb_trim", "rounding": "truncate"})
    assert result.cycles == naive_native_cycles(M, N, steps, rows, cols)
    # The native timing model of the rest of the simulator agrees with the counted cycles.
    timing = fold_timing(GemmShape(m=M, k=kd, n=N), rows, cols, "os", "native", steps)
    assert result.cycles == timing.compute_cycles == timing.folds * timing.cycles_per_fold
    # All-ones operands: the output is the schedule's thread count per step, summed.
    np.testing.assert_array_equal(result.outputs, np.full((M, N), kd))


def test_cycles_of_one_fold_by_hand():
    # 3x5 array, S = 4: last PE computes at cycle 4 + 2 + 4 - 1 = 9, so compute takes 10
    # cycles, then 3 drain cycles: 13 = 4 + 2*3 + 5 - 2.
    A = np.ones((3, 4), dtype=np.int64)
    B = np.ones((4, 5), dtype=np.int64)
    result = run_reference_array(A, B, 3, 5, schedule(4, 1, "contiguous"), "dense")
    assert result.cycles == 13


# --- misuse -----------------------------------------------------------------------------------

A_OK = np.ones((2, 3), dtype=np.int64)
B_OK = np.ones((3, 2), dtype=np.int64)
S_OK = np.arange(3, dtype=np.int64)[None, :]
SYSMT = {"policy": "msb_trim", "rounding": "truncate"}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"A": A_OK.astype(np.int32)}, "dtype int64"),
    ({"A": A_OK.tolist()}, "numpy array"),
    ({"B": np.ones((4, 2), dtype=np.int64)}, "B must have shape"),
    ({"A": np.ones(3, dtype=np.int64)}, "2-D"),
    ({"rows": 0}, "rows"),
    ({"cols": 2.0}, "cols"),
    ({"A": np.full((2, 3), 256, dtype=np.int64)}, "0..255"),
    ({"A": np.array([[-1, 200, 0]] * 2, dtype=np.int64)}, "-128..127"),
    ({"B": np.full((3, 2), -129, dtype=np.int64)}, "weights"),
    ({"sched": np.array([[0, 1, 3]], dtype=np.int64)}, "sched entries"),
    ({"sched": np.array([[0, 1, 1]], dtype=np.int64)}, "exactly once"),
    ({"sched": np.array([[0, 1], [2, -1]], dtype=np.int64)}, "thread"),
    ({"rule": "nosuch"}, "rule must be one of"),
    ({"rule": "sysmt", "params": {"policy": "msb_trim"}}, "rounding"),
    ({"rule": "sysmt", "params": {**SYSMT, "policy": "greedy"}}, "policy"),
    ({"rule": "sysmt", "params": {**SYSMT, "threads": "2"}}, "unknown parameter"),
])
def test_misuse_raises_value_error(kwargs, match):
    arguments = {"A": A_OK, "B": B_OK, "rows": 2, "cols": 2, "sched": S_OK, "rule": "dense",
                 "params": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_reference_array(**arguments)


def test_rules_listed_are_the_pe_types_with_a_rule_and_each_runs():
    # SWIS has no rule of its own: it runs on the bitserial rule (tests/hw/test_swis.py).
    assert sorted(reference_rules()) == ["a4w8", "bitserial", "dense", "sparq", "sysmt"]
    rng = np.random.default_rng(3)
    a = rng.integers(0, 16, size=(3, 4)).astype(np.int64)
    b = rng.integers(-8, 8, size=(4, 3)).astype(np.int64)
    pair = np.array([[0, 2], [1, 3]], dtype=np.int64)
    params = {"dense": (np.array([[0, 1, 2, 3]], dtype=np.int64), None),
              "sysmt": (pair, SYSMT),
              "sparq": (pair, {"window": "4bit_5opt", "rounding": "round",
                               "pairing": "adjacent"}),
              "a4w8": (pair, {"shift": "0", "rounding": "raw"})}
    for rule, (sched, rule_params) in params.items():
        # Values below 16 fit every narrow path of these rules: every one is exact here.
        result = run_reference_array(a, b, 2, 2, sched, rule, rule_params)
        np.testing.assert_array_equal(result.outputs, a @ b, err_msg=rule)
        assert sum(result.counters.values()) == 3 * 3 * sched.shape[1], rule
    with pytest.raises(ValueError, match="thread"):
        run_reference_array(a, b, 2, 2, params["dense"][0], "bitserial",
                            {"serial_operand": "weight"})
