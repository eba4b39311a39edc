"""A4W8 (4b x 8b, uniform 4-bit activations): fast path, naive model and reference array."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive import naive_native_cycles
from naive_sparq import naive_a4w8_gemm, naive_a4w8_shift, naive_uniform
from simulator import api
from simulator.errors import ConfigError, SimulationError
from simulator.hw.pe.a4w8 import A4W8Options, A4W8PE, activation_shift, uniform_values
from simulator.hw.reference_array import run_reference_array
from simulator.hw.timing import fold_timing
from simulator.kernels import reference_array as ref_kernel
from simulator.workloads.layers import Layer

KERNEL_ROUNDING = {"round": ref_kernel.ROUND_HALF_EVEN, "raw": ref_kernel.ROUND_TRUNCATE}


def layer_for(a: np.ndarray, b: np.ndarray, name: str = "g") -> Layer:
    return Layer(name=name, op="gemm", in_channels=a.shape[1], out_channels=b.shape[1],
                 batch=a.shape[0])


# (x, shift, raw, round), by hand: q = min(round(x / 2**shift), 15) * 2**shift.
UNIFORM_TABLE = [
    (23, 4, 16, 16),    # 23/16 = 1.44
    (24, 4, 16, 32),    # 1.5: tie, 1 is odd -> 2
    (40, 4, 32, 32),    # 2.5: tie, 2 is even -> stays
    (7, 4, 0, 0),       # small values vanish: no window to move down
    (8, 4, 0, 0),       # 0.5: tie, 0 is even
    (9, 4, 0, 16),
    (127, 4, 112, 128),
    (255, 4, 240, 240),  # 15.94 rounds to 16: saturates at 15
    (248, 4, 240, 240),
    (15, 0, 15, 15),    # shift 0: 4-bit values are exact
    (100, 3, 96, 96),   # 12.5: tie, 12 even
    (127, 3, 120, 120),  # 15.875 -> 16 -> saturates
]


@pytest.mark.parametrize(("x", "shift", "raw", "rounded"), UNIFORM_TABLE)
def test_uniform_hand_table(x, shift, raw, rounded):
    for rounding, expected in (("raw", raw), ("round", rounded)):
        assert naive_uniform(x, shift, rounding) == expected
        assert int(uniform_values(np.array([x]), shift, rounding == "round")[0]) == expected
        assert ref_kernel.uniform_4bit(x, shift, KERNEL_ROUNDING[rounding]) == expected


@pytest.mark.parametrize(("shift", "rounding"), list(itertools.product(range(5), ("round", "raw"))))
def test_every_value_every_grid(shift, rounding):
    fast = uniform_values(np.arange(256), shift, rounding == "round")
    for x in range(256):
        q = naive_uniform(x, shift, rounding)
        assert int(fast[x]) == q == ref_kernel.uniform_4bit(x, shift, KERNEL_ROUNDING[rounding])
        assert q % (1 << shift) == 0 and q >> shift <= 15


@pytest.mark.parametrize(("peak", "shift"), [(0, 0), (15, 0), (16, 1), (31, 1), (100, 3),
                                             (128, 4), (255, 4)])
def test_per_layer_shift(peak, shift):
    a = np.array([[0, peak, 3]])
    assert activation_shift(a, "per_layer") == shift == naive_a4w8_shift(a.tolist(), "per_layer")
    assert activation_shift(-a, "per_layer") == shift
    assert activation_shift(a, "fixed") == 4


@st.composite
def gemm_cases(draw):
    m, kd, n = draw(st.integers(1, 9)), draw(st.integers(1, 19)), draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    high = draw(st.sampled_from((16, 64, 128, 256)))
    a = rng.integers(0, high, (m, kd))
    if draw(st.booleans()):
        a = np.minimum(a, 127) * rng.choice([-1, 1], (m, kd))
    a = a * (rng.random((m, kd)) >= draw(st.sampled_from((0.0, 0.5))))
    b = rng.integers(-128, 128, (kd, n)) * (rng.random((kd, n)) >= 0.2)
    return a.astype(np.int64), b.astype(np.int64), draw(st.integers(1, 5)), draw(st.integers(1, 5))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_cases(), rounding=st.sampled_from(("round", "raw")),
       scale=st.sampled_from(("fixed", "per_layer")))
def test_fast_equals_naive_and_reference(case, rounding, scale):
    a, b, rows, cols = case
    pe = A4W8PE(A4W8Options(rounding=rounding, scale=scale))
    layer = layer_for(a, b)
    fast = pe.simulate_gemm(layer, a, b)
    shift = naive_a4w8_shift(a.tolist(), scale)
    outputs, counters, stats, steps = naive_a4w8_gemm(a.tolist(), b.tolist(), shift, rounding)
    ref = run_reference_array(a, b, rows, cols, pe.schedule(a.shape[1]), "a4w8",
                              {"shift": str(shift), "rounding": rounding})
    assert fast.outputs.tolist() == outputs == ref.outputs.tolist()
    assert fast.counters == counters == {**dict.fromkeys(counters, 0), **ref.counters}
    assert fast.stats == stats == {**dict.fromkeys(stats, 0), **ref.stats}
    assert sum(counters.values()) == a.shape[0] * b.shape[1] * steps
    assert sum(stats.values()) == counters["single"] + 2 * counters["double"]
    assert pe.reduction_steps(layer) == steps == -(-a.shape[1] // 2)
    assert ref.cycles == fold_timing(layer.gemm, rows, cols, "os", "native", steps).compute_cycles
    assert ref.cycles == naive_native_cycles(a.shape[0], b.shape[1], steps, rows, cols)


def test_hand_computed_step():
    # Pairs (23, 0) and (5, 128): 23 -> 16, 5 -> 0 (approximated), 128 -> 128 (exact).
    a = np.array([[23, 0, 5, 128]], dtype=np.int64)
    b = np.array([[2], [7], [9], [-1]], dtype=np.int64)
    pe = A4W8PE(A4W8Options())
    expected = 16 * 2 + 0 + 0 - 128
    counters = {"idle": 0, "single": 1, "double": 1}
    stats = {"exact_products": 1, "approximated_products": 2}
    fast = pe.simulate_gemm(layer_for(a, b), a, b)
    assert fast.outputs.tolist() == [[expected]]
    assert fast.counters == counters and fast.stats == stats
    ref = run_reference_array(a, b, 1, 1, pe.schedule(4), "a4w8",
                              {"shift": "4", "rounding": "round"})
    assert ref.outputs.tolist() == [[expected]]
    assert ref.counters == {"single": 1, "double": 1} and ref.stats == stats


def test_operands_must_be_8_bit():
    a = np.array([[300, 1]], dtype=np.int64)
    b = np.ones((2, 1), dtype=np.int64)
    for scale in ("fixed", "per_layer"):
        with pytest.raises(SimulationError, match=r"layer 'x'.*8-bit activations"):
            A4W8PE(A4W8Options(scale=scale)).simulate_gemm(layer_for(a, b, "x"), a, b)


def test_config_errors():
    with pytest.raises(ConfigError, match=r"pe.scale: expected one of 'fixed', 'per_layer'"):
        api.load_arch("a4w8_16x16", ["pe.scale=auto"])
    with pytest.raises(ConfigError, match=r"unknown key 'options'"):
        api.load_arch("a4w8_16x16", ["pe.options=5"])


def test_digits_trace_a4w8_is_the_weakest_4bit_design():
    """SPARQ's windows and borrowing beat the uniform 4-bit grid (either scale) on real data
    at the same speed."""
    workload = api.load_workload("digits_int8")
    fixed = api.simulate(api.load_arch("a4w8_16x16"), workload)
    per_layer = api.simulate(api.load_arch("a4w8_16x16", ["pe.scale=per_layer"]), workload)
    two_opt = api.simulate(api.load_arch("sparq_2opt_16x16"), workload)
    assert two_opt.summary()["sqnr_db"] > max(per_layer.summary()["sqnr_db"],
                                              fixed.summary()["sqnr_db"]) + 3
    assert fixed.total_cycles == two_opt.total_cycles
    summary = fixed.summary()
    assert set(summary["counters"]) == {"idle", "single", "double"}
    assert summary["stats"]["approximated_products"] > summary["stats"]["exact_products"] > 0


def test_a4w8_is_cheaper_than_sparq():
    """No shifters, no detectors, 4-bit activation registers: smaller and less energy per run
    than SPARQ's 2-option PE at the same speed."""
    tech = api.load_tech_table("generic_45nm")
    pe = A4W8PE(A4W8Options())
    assert set(pe.composition().events) == set(pe.counter_names)
    assert set(pe.composition().parts) <= set(tech.components)
    workload = api.load_workload("digits_int8")
    a4w8 = api.simulate(api.load_arch("a4w8_16x16"), workload).summary()
    sparq = api.simulate(api.load_arch("sparq_2opt_16x16"), workload).summary()
    assert a4w8["area_um2"] < sparq["area_um2"]
    assert a4w8["energy_pj"] < sparq["energy_pj"]
