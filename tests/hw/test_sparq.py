"""SPARQ: the fast path against the naive model and the register-level reference array.

Every configuration of docs/hardware-spec.md §4 (4-bit windows, 5/3/2 options; 6, 3, 2-bit),
both roundings and both pairings: outputs bit for bit, step counters, product stats and
cycles exactly.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive import naive_native_cycles
from naive_sparq import NAIVE_WINDOWS, naive_sparq_gemm, naive_window
from simulator import api
from simulator.energy.model import array_area
from simulator.errors import ConfigError, SimulationError
from simulator.hw.pe import get_pe_model
from simulator.hw.gemm import run_groups
from simulator.hw.pe.sparq import (PRODUCT_STATS, STEP_COUNTERS, WINDOWS, SparqOptions,
                                   SparqPE, prune_2of4)
from simulator.hw.reference_array import reference_rules, run_reference_array
from simulator.hw.timing import fold_timing
from simulator.kernels import reference_array as ref_kernel
from simulator.kernels.sparq import window_values
from simulator.workloads.layers import Layer

CONFIGS = sorted(NAIVE_WINDOWS)  # (window_bits, options)
ROUNDINGS = ("round", "raw")
PAIRINGS = ("adjacent", "stc")
KERNEL_ROUNDING = {"round": ref_kernel.ROUND_HALF_EVEN, "raw": ref_kernel.ROUND_TRUNCATE}


def layer_for(a: np.ndarray, b: np.ndarray, name: str = "g") -> Layer:
    return Layer(name=name, op="gemm", in_channels=a.shape[1], out_channels=b.shape[1],
                 batch=a.shape[0])


def sparq(window_bits: int, options: int, rounding: str, pairing: str) -> SparqPE:
    return SparqPE(SparqOptions(window_bits=window_bits, options=options, rounding=rounding,
                                pairing=pairing))


def full(counts: dict[str, int], names: tuple[str, ...]) -> dict[str, int]:
    """Counts over every name (a configuration, or the reference, reports only some)."""
    assert set(counts) <= set(names), sorted(set(counts) - set(names))
    return {**dict.fromkeys(names, 0), **counts}


def full_counters(counters: dict[str, int]) -> dict[str, int]:
    return full(counters, STEP_COUNTERS)


def full_stats(stats: dict[str, int]) -> dict[str, int]:
    return full(stats, PRODUCT_STATS)


def reference(pe: SparqPE, a, b, rows: int, cols: int):
    opts = pe.options
    return run_reference_array(a, b, rows, cols, pe.schedule(a.shape[1]), "sparq",
                               {"window": opts.window_name, "rounding": opts.rounding,
                                "pairing": opts.pairing})


# --- bSPARQ windows ---------------------------------------------------------------------------

# docs/hardware-spec.md §4's worked examples and more, derived by hand from the bit rule:
# (value, window_bits, options, raw, round).
WINDOW_TABLE = [
    (23, 4, 2, 16, 16),    # 0b10111, L = 4: p = 4; dropped 0111 < half
    (23, 4, 3, 20, 24),    # p = 2: keeps 101, dropped 11 > half -> 110
    (23, 4, 5, 22, 24),    # p = 1: keeps 1011, dropped 1 = half, odd mantissa -> 1100
    (127, 4, 2, 112, 128),  # p = 4: 0111 + round -> 1000
    (127, 4, 3, 112, 128),  # p = 2 cannot hold L = 6: p = 4
    (127, 4, 5, 120, 120),  # p = 3: 1111 rounds to 10000, overflows: saturates to 1111 << 3
    (15, 4, 2, 15, 15),    # below 16: always exact in 4-bit windows
    (9, 4, 3, 9, 9),
    (25, 4, 5, 24, 24),    # 0b11001, p = 1: tie, mantissa 12 even -> stays
    (27, 4, 5, 26, 28),    # 0b11011, p = 1: tie, mantissa 13 odd -> 14
    (42, 4, 3, 40, 40),    # 0b101010, p = 2: tie, mantissa 10 even
    (46, 4, 3, 44, 48),    # 0b101110, p = 2: tie, mantissa 11 odd -> 12
    (255, 4, 5, 240, 240),  # p = 4: rounds to 256, saturates
    (255, 6, 3, 252, 252),  # 6-bit, p = 2: rounds to 256, saturates to 63 << 2
    (100, 6, 3, 100, 100),  # 0b1100100, p = 1: the dropped bit is 0
    (23, 3, 6, 20, 24),    # 3-bit, p = 2: 101, dropped 11 -> 110
    (127, 3, 6, 112, 112),  # 3-bit, p = 4: 111 + round overflows, saturates
    (7, 3, 6, 7, 7),       # below 8: exact in 3-bit windows
    (23, 2, 7, 16, 24),    # 2-bit, p = 3: 10, dropped 111 > half -> 11
    (127, 2, 7, 96, 96),   # 2-bit, p = 5: 11 + round overflows, saturates
    (3, 2, 7, 3, 3),
    (0, 4, 5, 0, 0),
]


@pytest.mark.parametrize(("x", "bits", "options", "raw", "rounded"), WINDOW_TABLE)
def test_window_hand_table(x, bits, options, raw, rounded):
    shifts = WINDOWS[(bits, options)]
    mask = sum(1 << p for p in shifts)
    for rounding, expected in (("raw", raw), ("round", rounded)):
        assert naive_window(x, bits, list(shifts), rounding)[0] == expected
        assert int(window_values(np.array([x]), bits, shifts, rounding == "round")[0][0]) == expected
        assert ref_kernel.sparq_window(x, bits, mask, KERNEL_ROUNDING[rounding])[0] == expected


@pytest.mark.parametrize(("config", "rounding"), list(itertools.product(CONFIGS, ROUNDINGS)))
def test_every_value_every_window(config, rounding):
    """All 256 magnitudes: the fast table, the naive rule and the reference kernel agree, and
    the result is a window of the value."""
    bits, options = config
    shifts = WINDOWS[config]
    positions, wide_bits, wide_positions = NAIVE_WINDOWS[config]
    assert sorted(shifts) == positions
    mask = sum(1 << p for p in shifts)
    fast, fast_p = window_values(np.arange(256), bits, shifts, rounding == "round")
    for x in range(256):
        value, p = naive_window(x, bits, positions, rounding)
        assert (int(fast[x]), int(fast_p[x])) == (value, p), x
        assert ref_kernel.sparq_window(x, bits, mask, KERNEL_ROUNDING[rounding]) == (value, p)
        assert value % (1 << p) == 0 and value >> p < (1 << bits)  # n bits at position p
        if x < (1 << bits):
            assert value == x  # a value that fits the window at p = 0 is exact
        if x and rounding == "raw":
            assert 0 <= x - value < (1 << p) and x.bit_length() == value.bit_length()
        if rounding == "round":
            assert abs(x - value) <= max(1 << p >> 1, x - (((1 << bits) - 1) << p))


def test_more_options_lose_less():
    """The published direction: more window options, less activation error. Truncated, every
    value is at least as close (a lower window keeps more bits); rounded, saturation can make
    one value worse (127: 5opt 120, 3opt 128), so the squared error over 0..255 is compared."""
    x = np.arange(256)
    for rounding in (True, False):
        err = {o: x - window_values(x, 4, WINDOWS[(4, o)], rounding)[0] for o in (5, 3, 2)}
        if not rounding:
            assert np.all(err[5] <= err[3]) and np.all(err[3] <= err[2])
        squared = {o: int((e * e).sum()) for o, e in err.items()}
        assert squared[5] < squared[3] < squared[2]


# --- hand-computed PE steps -------------------------------------------------------------------

# (acts, weights, (bits, options), rounding, pairing, output, step counter, product stats)
STEP_CASES = [
    # Both non-zero: 23 -> 24 (p = 1) and 127 -> 120 (p = 3, saturated).
    ((23, 127), (1, 1), (4, 5), "round", "adjacent", 24 + 120, "pair_both_trimmed",
     {"approximated_products": 2, "trim_shift_1": 1, "trim_shift_3": 1}),
    # Zero partner: 127 borrows the second multiplier and keeps all 8 bits.
    ((127, 0), (3, 20), (4, 5), "round", "adjacent", 381, "zero_partner",
     {"exact_products": 1}),
    # Only activation zeros trigger borrowing: a zero weight does not.
    ((127, 23), (3, 0), (4, 5), "round", "adjacent", 360, "pair_both_trimmed",
     {"approximated_products": 2, "trim_shift_3": 1, "trim_shift_1": 1}),
    # 9 is exact in the window (p = 0); 23 truncates to 16 at p = 4.
    ((9, 23), (2, 2), (4, 2), "raw", "adjacent", 18 + 32, "pair_one_trimmed",
     {"exact_products": 1, "approximated_products": 1, "trim_shift_4": 1}),
    ((9, 48), (2, 2), (4, 5), "raw", "adjacent", 18 + 96, "pair_exact", {"exact_products": 2}),
    # Signed activations: the magnitude is windowed, the sign kept.
    ((-23, 5), (10, -1), (4, 5), "round", "adjacent", -240 - 5, "pair_one_trimmed",
     {"exact_products": 1, "approximated_products": 1, "trim_shift_1": 1}),
    # 3-bit groups: a zero partner gives a 6-bit, 3-option window (127 -> 126, saturated).
    ((127, 0), (1, 1), (3, 6), "round", "adjacent", 126, "zero_partner_trimmed",
     {"approximated_products": 1}),
    ((23, 0), (1, 1), (3, 6), "round", "adjacent", 23, "zero_partner", {"exact_products": 1}),
    ((23, 40), (1, 1), (3, 6), "raw", "adjacent", 20 + 40, "pair_one_trimmed",
     {"exact_products": 1, "approximated_products": 1, "trim_shift_2": 1}),
    # 2-bit groups: a zero partner gives a 4-bit, 5-option window (127 -> 120).
    ((0, 127), (1, 1), (2, 7), "round", "adjacent", 120, "zero_partner_trimmed",
     {"approximated_products": 1}),
    ((0, 0), (1, 1), (2, 7), "round", "adjacent", 0, "idle", {}),
    # 2:4: the non-zero weights at positions 1 and 3 select the pair (23, 127).
    ((10, 23, 5, 127), (0, 2, 0, 3), (4, 5), "round", "stc", 24 * 2 + 120 * 3,
     "pair_both_trimmed", {"approximated_products": 2, "trim_shift_1": 1, "trim_shift_3": 1}),
    # 2:4 with one non-zero weight: the other slot is empty, 23 keeps all 8 bits.
    ((10, 23, 5, 127), (0, 2, 0, 0), (4, 5), "round", "stc", 46, "zero_partner",
     {"exact_products": 1}),
    # 2:4: the selected partner's activation is zero, 127 keeps all 8 bits.
    ((0, 23, 5, 127), (1, 0, 0, 3), (4, 5), "round", "stc", 381, "zero_partner",
     {"exact_products": 1}),
    ((10, 23, 5, 127), (0, 0, 0, 0), (4, 5), "round", "stc", 0, "idle", {}),
]


@pytest.mark.parametrize(("acts", "wgts", "config", "rounding", "pairing", "expected", "step",
                          "stats"), STEP_CASES)
def test_hand_computed_pe_step(acts, wgts, config, rounding, pairing, expected, step, stats):
    a = np.array([acts], dtype=np.int64)
    b = np.array([[w] for w in wgts], dtype=np.int64)
    pe = sparq(*config, rounding, pairing)
    expected_counters = full_counters({step: 1})
    expected_stats = full_stats(stats)
    ref = reference(pe, a, b, 1, 1)
    assert ref.outputs.tolist() == [[expected]]
    assert full_counters(ref.counters) == expected_counters
    assert full_stats(ref.stats) == expected_stats
    naive_out, naive_counters, naive_stats, steps = naive_sparq_gemm(
        a.tolist(), b.tolist(), *config, rounding, pairing)
    assert naive_out == [[expected]]
    assert full_counters(naive_counters) == expected_counters
    assert full_stats(naive_stats) == expected_stats
    fast = pe.simulate_gemm(layer_for(a, b), a, b)
    assert fast.outputs.tolist() == [[expected]]
    assert full_counters(fast.counters) == expected_counters
    assert full_stats(fast.stats) == expected_stats
    assert steps == 1 == pe.reduction_steps(layer_for(a, b))


# --- random GEMMs -----------------------------------------------------------------------------

ACT_SPECIALS = (1, 7, 8, 15, 16, 23, 24, 25, 27, 40, 46, 100, 127, 128, 200, 248, 252, 255)


def two_of_four(rng: np.random.Generator, b: np.ndarray, empty_bias: float) -> np.ndarray:
    """Keep at most two random non-zero positions in every group of 4 K elements per column."""
    kd, n = b.shape
    out = np.zeros_like(b)
    for g in range(0, kd, 4):
        for col in range(n):
            size = min(4, kd - g)
            keep = rng.permutation(size)[:rng.choice([0, 1, 2], p=[empty_bias / 2,
                                                                     empty_bias / 2,
                                                                     1 - empty_bias])]
            out[g + keep, col] = b[g + keep, col]
    return out


@st.composite
def gemm_cases(draw, pairing: str):
    m, kd, n = draw(st.integers(1, 9)), draw(st.integers(1, 19)), draw(st.integers(1, 7))
    signed = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.integers(0, 256, (m, kd))
    special = rng.random((m, kd)) < 0.3
    a[special] = rng.choice(ACT_SPECIALS, int(special.sum()))
    if signed:  # -128..127 with the same kinds of magnitudes
        a = np.minimum(a // 2, 127) * rng.choice([-1, 1], (m, kd))
    a = a * (rng.random((m, kd)) >= draw(st.sampled_from((0.0, 0.3, 0.6, 0.9))))
    b = rng.integers(-128, 128, (kd, n))
    b = b * (rng.random((kd, n)) >= draw(st.sampled_from((0.0, 0.3))))
    if pairing == "stc":
        b = two_of_four(rng, b, draw(st.sampled_from((0.0, 0.3, 1.0))))
    return a.astype(np.int64), b.astype(np.int64), draw(st.integers(1, 5)), draw(st.integers(1, 5))


def check_all_agree(pe: SparqPE, a, b, rows: int, cols: int):
    opts = pe.options
    layer = layer_for(a, b)
    fast = pe.simulate_gemm(layer, a, b)
    outputs, counters, stats, steps = naive_sparq_gemm(
        a.tolist(), b.tolist(), opts.window_bits, opts.options, opts.rounding, opts.pairing)
    ref = reference(pe, a, b, rows, cols)
    assert fast.outputs.tolist() == outputs == ref.outputs.tolist()
    assert set(counters) <= set(pe.counter_names) and set(stats) <= set(pe.stat_names)
    assert set(fast.counters) == set(pe.counter_names)
    assert full_counters(fast.counters) == full_counters(counters) == full_counters(ref.counters)
    assert full_stats(fast.stats) == full_stats(stats) == full_stats(ref.stats)
    # The counters partition the PE-steps; each step has 0, 1 or 2 non-zero products.
    assert sum(fast.counters.values()) == a.shape[0] * b.shape[1] * steps
    c = full_counters(fast.counters)
    one = c["zero_partner"] + c["zero_partner_trimmed"]
    two = c["pair_exact"] + c["pair_one_trimmed"] + c["pair_both_trimmed"]
    assert fast.stats["exact_products"] + fast.stats["approximated_products"] == one + 2 * two
    assert fast.stats["approximated_products"] == (
        c["zero_partner_trimmed"] + c["pair_one_trimmed"] + 2 * c["pair_both_trimmed"])
    assert pe.reduction_steps(layer) == steps
    timing = fold_timing(layer.gemm, rows, cols, "os", "native", steps)
    assert ref.cycles == timing.compute_cycles == naive_native_cycles(
        a.shape[0], b.shape[1], steps, rows, cols)
    return c, full_stats(fast.stats)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_cases("adjacent"), config=st.sampled_from(CONFIGS),
       rounding=st.sampled_from(ROUNDINGS))
def test_adjacent_fast_equals_naive_and_reference(case, config, rounding):
    a, b, rows, cols = case
    check_all_agree(sparq(*config, rounding, "adjacent"), a, b, rows, cols)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_cases("stc"), config=st.sampled_from(CONFIGS),
       rounding=st.sampled_from(ROUNDINGS))
def test_stc_fast_equals_naive_and_reference(case, config, rounding):
    a, b, rows, cols = case
    check_all_agree(sparq(*config, rounding, "stc"), a, b, rows, cols)


@pytest.mark.parametrize(("config", "rounding", "pairing"),
                         list(itertools.product(CONFIGS, ROUNDINGS, PAIRINGS)))
def test_every_configuration(config, rounding, pairing):
    """Each configuration once on a fixed case with every kind of product."""
    rng = np.random.default_rng(sum(config) * 10 + len(rounding) + len(pairing))
    m, kd, n = 7, 13, 6
    a = rng.choice(np.array(ACT_SPECIALS), (m, kd)) * (rng.random((m, kd)) < 0.6)
    b = rng.integers(-128, 128, (kd, n))
    if pairing == "stc":
        b = two_of_four(rng, b, 0.3)
    counters, stats = check_all_agree(sparq(*config, rounding, pairing), a.astype(np.int64),
                                      b.astype(np.int64), 3, 4)
    assert counters["idle"] and counters["zero_partner"] and stats["exact_products"]
    assert counters["pair_one_trimmed"] + counters["pair_both_trimmed"] > 0
    assert sum(v for k, v in stats.items() if k.startswith("trim_shift")) > 0


@pytest.mark.parametrize("pairing", PAIRINGS)
@pytest.mark.parametrize("config", [(4, 5), (2, 7)])
def test_long_reductions_and_row_blocks(pairing, config):
    """Shapes past the 2:4 kernel's 8-row blocks and its 128-group float32 flush."""
    rng = np.random.default_rng(len(pairing))
    a = (rng.integers(0, 256, (19, 1031)) * (rng.random((19, 1031)) < 0.6)).astype(np.int64)
    b = rng.integers(-128, 128, (1031, 5))
    if pairing == "stc":
        b = two_of_four(rng, b, 0.1)
    pe = sparq(*config, "round", pairing)
    fast = pe.simulate_gemm(layer_for(a, b), a, b.astype(np.int64))
    outputs, counters, stats, _ = naive_sparq_gemm(a.tolist(), b.tolist(), *config, "round",
                                                   pairing)
    assert fast.outputs.tolist() == outputs
    assert full_counters(fast.counters) == full_counters(counters)
    assert full_stats(fast.stats) == full_stats(stats)


# --- errors -----------------------------------------------------------------------------------

def test_stc_rejects_weights_that_are_not_two_of_four():
    a = np.ones((2, 9), dtype=np.int64)
    b = np.zeros((9, 3), dtype=np.int64)
    b[4:7, 2] = 5  # three non-zero weights in group 4..7 of column 2
    pe = sparq(4, 5, "round", "stc")
    with pytest.raises(SimulationError, match=r"layer 'layer3.conv1'.*K elements 4\.\.7 of "
                                              r"output column 2 hold 3 non-zero"):
        pe.simulate_gemm(layer_for(a, b, "layer3.conv1"), a, b)
    b[6, 2] = 0
    pe.simulate_gemm(layer_for(a, b), a, b)  # two are fine
    three = np.zeros((9, 3), dtype=np.int64)
    three[:3] = 1
    with pytest.raises(ValueError, match="2:4"):
        run_reference_array(a, three, 2, 2, pe.schedule(9), "sparq",
                            {"window": "4bit_5opt", "rounding": "round", "pairing": "stc"})


def test_stc_on_a_dense_layer_refused_in_one_line_naming_the_layer(cli):
    # a trace's weights are what they are (synthetic ones would be drawn 2:4)
    result = cli("run", "--arch", "sparq_5opt_16x16", "--set", "pe.pairing=stc",
                 "--set", "pe.unstructured=refuse", "--workload", "digits_int8")
    assert result.status == 2
    assert "layer 'stem'" in result.err and "2:4" in result.err
    assert len(result.err.strip().splitlines()) == 1


def naive_prune_2of4(b: np.ndarray) -> np.ndarray:
    """Per filter, per group of four K elements: keep the two largest |w|, ties to the lower
    K index (a short last group as it is)."""
    out = np.zeros_like(b)
    for col in range(b.shape[1]):
        for start in range(0, b.shape[0], 4):
            group = list(range(start, min(start + 4, b.shape[0])))
            keep = sorted(group, key=lambda k: (-abs(int(b[k, col])), k))[:2]
            for k in keep:
                out[k, col] = b[k, col]
    return out


@given(kd=st.integers(1, 19), n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1),
       density=st.floats(0, 1))
@settings(max_examples=60, deadline=None)
def test_prune_2of4_equals_naive(kd, n, seed, density):
    rng = np.random.default_rng(seed)
    b = rng.integers(-4, 5, (kd, n)) * (rng.random((kd, n)) < density)  # many ties
    pruned, removed = prune_2of4(b)
    want = naive_prune_2of4(b)
    assert np.array_equal(pruned, want)
    assert removed == np.count_nonzero(b) - np.count_nonzero(want)
    grouped, _ = prune_2of4(np.stack([b, -b]))  # (groups, Kd, N): along K in each group
    assert np.array_equal(grouped[1], naive_prune_2of4(-b))


def test_stc_prunes_dense_weights_and_says_so(cli):
    """``pe.unstructured: prune`` (the default): a dense layer runs as the same PE on its
    2:4-pruned weights, the stat counts what was pruned, the error is against the dense
    GEMM, and the report says so."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (6, 10))
    b = rng.integers(-128, 128, (10, 4))
    pe = sparq(4, 5, "round", "stc")
    layer = layer_for(a, b)
    pruned, stats = pe.prepare_weights(layer, b)
    assert np.array_equal(pruned, naive_prune_2of4(b))
    assert stats == {"pruned_weights": np.count_nonzero(b) - np.count_nonzero(pruned)}
    assert pe.prepare_weights(layer, pruned)[1] == {"pruned_weights": 0}
    run = run_groups(pe, layer, a[None], b[None])
    assert np.array_equal(run.outputs[0], pe.simulate_gemm(layer, a, pruned).outputs)
    assert run.stats["pruned_weights"] == stats["pruned_weights"]
    result = cli("run", "--arch", "sparq_5opt_stc_16x16", "--workload", "digits_int8",
                 "--set", "memory=ideal")
    assert result.status == 0, result.err
    assert "non-zero weights pruned to 2:4 before the run" in result.out


def test_stc_runs_a_matmul_in_adjacent_pairing():
    """A matmul's right operand is computed at run time: in 2:4 mode it runs two K elements
    a step, as the adjacent pairing does, with the same outputs and counters."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (5, 11))
    b = rng.integers(-128, 128, (11, 3))  # dense: no 2:4 structure
    matmul = Layer(name="scores", op="matmul", in_channels=11, out_channels=3, batch=5)
    stc, adjacent = sparq(4, 5, "round", "stc"), sparq(4, 5, "round", "adjacent")
    assert stc.reduction_steps(matmul) == 6 and stc.peak_macs_per_step(matmul) == 2
    assert stc.prepare_weights(matmul, b) == (b, {})
    got, want = stc.simulate_gemm(matmul, a, b), adjacent.simulate_gemm(matmul, a, b)
    assert np.array_equal(got.outputs, want.outputs) and got.counters == want.counters
    assert np.array_equal(stc.schedule(11, matmul), adjacent.schedule(11))
    assert stc.stored_weights(matmul, b[None]) is None
    assert stc.reduction_steps(layer_for(a, b)) == 3


@pytest.mark.parametrize(("a_values", "b_values", "match"), [
    ([300, 0], [1, 1], r"layer 'x'.*8-bit activations.*0\.\.300"),
    ([-129, 5], [1, 1], r"layer 'x'.*-129\.\.5"),
    ([-5, 200], [1, 1], r"-5\.\.200"),
    ([1, 2], [128, 1], r"layer 'x'.*signed 8-bit weights"),
])
def test_operands_must_be_8_bit(a_values, b_values, match):
    a = np.array([a_values], dtype=np.int64)
    b = np.array([[v] for v in b_values], dtype=np.int64)
    for pairing in PAIRINGS:
        with pytest.raises(SimulationError, match=match):
            sparq(4, 5, "round", pairing).simulate_gemm(layer_for(a, b, "x"), a, b)


@pytest.mark.parametrize(("overrides", "match"), [
    (["pe.options=6"], r"arch.pe: options: 4-bit windows take 5 or 3 or 2 .*not 6"),
    (["pe.window_bits=3"], r"options: 3-bit windows take 6 .*not 5"),
    (["pe.window_bits=5"], r"pe.window_bits: expected one of 4, 3, 2, 6"),
    (["pe.rounding=nearest"], r"pe.rounding: expected one of 'round', 'raw'"),
    (["pe.pairing=2:4"], r"pe.pairing"),
    (["pe.window=4"], r"unknown key 'window'.*window_bits"),
])
def test_config_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        api.load_arch("sparq_5opt_16x16", overrides)


def test_options_default_per_window():
    for bits, options in ((4, 5), (6, 3), (3, 6), (2, 7)):
        arch = api.load_arch("sparq_2opt_16x16", ["pe.options=null", f"pe.window_bits={bits}"])
        assert arch.pe.options == options
        assert arch.pe.window_name == f"{bits}bit_{options}opt"
    assert SparqOptions().options == 5


def test_counter_and_stat_names_per_configuration():
    pe = sparq(4, 5, "round", "adjacent")
    assert pe.counter_names == ("idle", "zero_partner", "pair_exact", "pair_one_trimmed",
                                "pair_both_trimmed")
    assert pe.stat_names == ("exact_products", "approximated_products", "trim_shift_1",
                             "trim_shift_2", "trim_shift_3", "trim_shift_4")
    assert sparq(4, 2, "raw", "stc").stat_names[2:] == ("trim_shift_4", "pruned_weights")
    assert "zero_partner_trimmed" in sparq(2, 7, "round", "adjacent").counter_names
    assert sparq(6, 3, "round", "adjacent").stat_names[2:] == ("trim_shift_1", "trim_shift_2")


def test_reference_rules_are_distinct_and_listed():
    assert {"dense", "sysmt", "sparq", "a4w8"} <= set(reference_rules())
    ids = [getattr(ref_kernel, name) for name in dir(ref_kernel) if name.startswith("RULE_")]
    assert len(ids) == len(set(ids))
    assert len(ref_kernel.SPARQ_PRODUCT_NAMES) == 10 and len(ref_kernel.A4W8_PRODUCT_NAMES) == 3
    assert set(ref_kernel.SPARQ_WINDOW_CODES) == {
        f"{bits}bit_{options}opt" for bits, options in WINDOWS}


# --- whole runs -------------------------------------------------------------------------------

def test_two_elements_per_step_halve_the_steps():
    workload = api.load_workload("resnet18")
    base = api.simulate(api.load_arch("os_sa_16x16"), workload, functional=False)
    pair = api.simulate(api.load_arch("sparq_5opt_16x16"), workload, functional=False)
    stc = api.simulate(api.load_arch("sparq_5opt_16x16", ["pe.pairing=stc"]), workload,
                       functional=False)
    for dense, two, four in zip(base.layers, pair.layers, stc.layers):
        assert two.steps_per_fold == -(-dense.steps_per_fold // 2)
        assert four.steps_per_fold == -(-dense.steps_per_fold // 4)
        assert two.peak_macs_per_pe_cycle == 2 and four.peak_macs_per_pe_cycle == 4
    steps = lambda r: sum(l.steps_per_fold * l.folds for l in r.layers)  # noqa: E731
    assert steps(base) / steps(pair) == pytest.approx(2, rel=0.01)
    assert steps(base) / steps(stc) == pytest.approx(4, rel=0.02)


def test_digits_trace_more_options_more_accurate():
    """On the real digits INT8 trace: SQNR 5opt > 3opt > 2opt, all lossy, counters complete;
    more options, fewer approximated activations."""
    workload = api.load_workload("digits_int8")
    sqnr, lossy = {}, {}
    for name in ("sparq_5opt_16x16", "sparq_3opt_16x16", "sparq_2opt_16x16"):
        summary = api.simulate(api.load_arch(name), workload).summary()
        sqnr[name] = summary["sqnr_db"]
        pe_steps = sum(l["m"] * l["n"] * l["groups"] * l["steps_per_fold"]
                       for l in summary["layers"])
        assert sum(summary["counters"].values()) == pe_steps
        assert summary["outputs_match_trace"] is False
        lossy[name] = summary["stats"]["approximated_products"]
    assert sqnr["sparq_5opt_16x16"] > sqnr["sparq_3opt_16x16"] > sqnr["sparq_2opt_16x16"] > 20
    # More options, more values land exactly in some window.
    assert lossy["sparq_5opt_16x16"] < lossy["sparq_3opt_16x16"] < lossy["sparq_2opt_16x16"]


def test_stc_on_two_of_four_weights_runs():
    """The shipped 2:4 design on the shipped 2:4 workload (synthetic `weight_structure: 2:4`)."""
    workload = api.load_workload("resnet18_2of4")
    workload = dataclasses.replace(workload, layers=workload.layers[-4:-1])
    # the arrays' own cycles (the ideal memory): this is about the PE, not the chip
    stc = api.simulate(api.load_arch("sparq_5opt_stc_16x16", ["memory=ideal"]), workload)
    pairs = api.simulate(api.load_arch("sparq_5opt_16x16", ["memory=ideal"]), workload)
    assert stc.summary()["data"] == "synthetic"
    for four, two in zip(stc.layers, pairs.layers):
        assert four.steps_per_fold == -(-four.k // 4) and two.steps_per_fold == -(-two.k // 2)
        assert four.sqnr_db > 25 and two.sqnr_db > 25
        pe_steps = four.m * four.n * four.groups * four.steps_per_fold
        assert sum(four.counters.values()) == pe_steps
    assert stc.total_cycles < 0.6 * pairs.total_cycles


# --- energy and area --------------------------------------------------------------------------

@pytest.mark.parametrize(("config", "rounding", "pairing"),
                         list(itertools.product(CONFIGS, ROUNDINGS, PAIRINGS)))
def test_composition_prices_every_step_counter(config, rounding, pairing):
    pe = sparq(*config, rounding, pairing)
    composition = pe.composition()
    assert set(pe.counter_names) <= set(composition.events) == set(SparqPE.counter_names)
    tech = api.load_tech_table("generic_45nm")
    used = set(composition.parts)
    for actions in composition.events.values():
        used |= set(actions)
    assert used <= set(tech.components) and set(composition.parts) >= used
    events = composition.events
    # Both zero: only the two zero detectors; any work uses both multipliers and the adders.
    assert events["idle"] == {"comparator_bit": 16}
    for step in ("zero_partner", "pair_exact", "pair_both_trimmed"):
        assert events[step]["mult_4x8"] == composition.parts["mult_4x8"]
        assert events[step]["adder_32"] == 1
    rounders = (0, 1, 2) if rounding == "round" else (0, 0, 0)
    assert tuple(events[s].get("adder_8", 0) for s in
                 ("pair_exact", "pair_one_trimmed", "pair_both_trimmed")) == rounders


def test_more_window_options_cost_more_area():
    """docs/hardware-spec.md §4: more window options cost more shifter area; 2:4 more registers."""
    tech = api.load_tech_table("generic_45nm")

    def area(*overrides):
        arch = api.load_arch("sparq_5opt_16x16", list(overrides))
        return array_area(tech, get_pe_model(arch.pe).composition().parts, 256,
                              {}).total_um2

    five, three, two = area(), area("pe.options=3"), area("pe.options=2")
    assert five > three > two
    assert area("pe.pairing=stc") > five
    dense = array_area(tech, get_pe_model(api.load_arch("os_sa_16x16").pe)
                           .composition().parts, 256, {}).total_um2
    assert 1 < two / dense < five / dense < 2


def test_stc_design_runs_any_shape_only_workload_on_2of4_synthetic_weights():
    from simulator import api
    from simulator.hw.pe import get_pe_model
    from simulator.sweep.worker import prepared_workload
    from simulator.workloads.lowering import weights_to_gemm

    arch = api.load_arch("sparq_5opt_stc_16x16")
    assert get_pe_model(arch.pe, arch.array).synthetic_data() == {"weight_structure": "2:4"}
    workload = api.load_workload("alexnet")
    layer = workload.layers[0]
    for data in (api.with_synthetic_data(workload, {"weight_structure": "2:4"}),
                 prepared_workload(arch, str(workload.source), functional=True)):
        (b,) = weights_to_gemm(data.tensors(layer.name).weight, layer)  # one group
        groups = b[: b.shape[0] // 4 * 4].reshape(-1, 4, b.shape[1])
        assert groups.size > 0.9 * b.size and np.count_nonzero(b) > b.size // 3
        assert (np.count_nonzero(groups, axis=1) <= 2).all()
    plain = weights_to_gemm(api.with_synthetic_data(workload).tensors(layer.name).weight, layer)
    assert (np.count_nonzero(plain[0][:360].reshape(-1, 4, 64), axis=1) > 2).any()
    result = api.simulate(arch, dataclasses.replace(workload, layers=workload.layers[:2]))
    assert result.summary()["data"] == "synthetic"
    # the adjacent pairing asks for nothing: the workload's own data
    assert get_pe_model(api.load_arch("sparq_5opt_16x16").pe).synthetic_data() == {}
