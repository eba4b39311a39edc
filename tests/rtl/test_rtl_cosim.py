"""The RTL array (simulator/rtl, docs/rtl.md) co-simulated against sasim, bit for bit.

Hypothesis draws small arrays (1x1 to 4x4), odd GEMM shapes (K up to 32), random sparsity,
signed or unsigned activations and the values at the rules' edges; each example runs a batch
of GEMMs through one simulation (building Amaranth's simulator costs more than the cycles).
The RTL must equal the register-level reference array (outputs, counters), the naive model
of tests/naive.py (outputs), and count ``S + 2*rows + cols - 2`` cycles per fold
(docs/timing-model.md, native) while ``busy`` is high.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive import naive_schedule, naive_sysmt_gemm

from simulator.hw.reference_array import run_reference_array
from simulator.rtl.cosim import run_gemms
from simulator.rtl.design import RtlDesign, exact_acc_bits

CASES = settings(max_examples=8, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EDGE_A = [0, 1, 15, 16, 17, 24, 40, 127, 128, 136, 240, 247, 248, 250, 255]
EDGE_W = [-128, -127, -16, -15, -1, 0, 1, 15, 16, 17, 24, 120, 127]

@st.composite
def gemm(draw, signed: bool, max_m: int, max_n: int):
    """One GEMM (A, B) with edge values and random sparsity."""
    m = draw(st.integers(1, max_m))
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, 32))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if signed else (0, 256)
    a = rng.integers(lo, hi, (m, k))
    edges = np.array([v for v in EDGE_A if lo <= v < hi])
    pick = rng.random((m, k)) < 0.3
    a[pick] = rng.choice(edges, int(pick.sum()))
    a[rng.random((m, k)) < draw(st.floats(0, 0.9))] = 0
    b = rng.integers(-128, 128, (k, n))
    pick = rng.random((k, n)) < 0.3
    b[pick] = rng.choice(np.array(EDGE_W), int(pick.sum()))
    b[rng.random((k, n)) < draw(st.floats(0, 0.9))] = 0
    return a.astype(np.int64), b.astype(np.int64)

@st.composite
def batch(draw):
    """An array size, the activations' signedness and three GEMMs for it."""
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    signed = draw(st.booleans())
    gemms = draw(st.lists(gemm(signed, 2 * rows + 1, 2 * cols + 1), min_size=3, max_size=3))
    return rows, cols, signed, gemms

def _check(design: RtlDesign, gemms, threads: int, split: str, rule: str, params) -> None:
    scheds = [np.array(naive_schedule(a.shape[1], threads, split), dtype=np.int64)
              for a, _ in gemms]
    runs = run_gemms(design, [(a, b, s) for (a, b), s in zip(gemms, scheds)])
    for (a, b), sched, rtl in zip(gemms, scheds, runs):
        ref = run_reference_array(a, b, design.rows, design.cols, sched, rule, params)
        np.testing.assert_array_equal(rtl.outputs, ref.outputs)
        assert {k: v for k, v in ref.counters.items() if v} == \
            {k: v for k, v in rtl.counters.items() if v}
        per_fold = sched.shape[1] + 2 * design.rows + design.cols - 2
        folds = -(-a.shape[0] // design.rows) * -(-b.shape[1] // design.cols)
        assert rtl.fold_cycles == [per_fold] * folds
        assert rtl.cycles == ref.cycles
        if rule == "sysmt":
            naive, counters = naive_sysmt_gemm(a.tolist(), b.tolist(), sched.tolist(),
                                               params["policy"], params["rounding"])
            np.testing.assert_array_equal(rtl.outputs, np.array(naive))
            assert counters == rtl.counters
        else:
            np.testing.assert_array_equal(rtl.outputs, a @ b)

@CASES
@given(batch(), st.booleans())
def test_dense_rtl_equals_the_reference(drawn, isolation):
    rows, cols, signed, gemms = drawn
    design = RtlDesign("t", "dense", 1, {}, rows, cols, signed, exact_acc_bits(32),
                       operand_isolation=isolation)
    _check(design, gemms, 1, "contiguous", "dense", None)

@settings(max_examples=24, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch(), st.sampled_from([2, 4]), st.sampled_from(["sparsity_aware", "msb_trim"]),
       st.sampled_from(["round_half_even", "truncate"]),
       st.sampled_from(["contiguous", "interleaved"]), st.booleans())
def test_sysmt_rtl_equals_the_reference(drawn, threads, policy, rounding, split, isolation):
    rows, cols, signed, gemms = drawn
    params = {"policy": policy, "rounding": rounding}
    design = RtlDesign("t", "sysmt", threads, params, rows, cols, signed, exact_acc_bits(32),
                       operand_isolation=isolation)
    _check(design, gemms, threads, split, "sysmt", params)

@pytest.mark.parametrize(("threads", "policy", "rounding"),
                         [(4, "sparsity_aware", "round_half_even"),
                          (2, "msb_trim", "truncate")])
def test_sysmt_rtl_collisions_at_every_edge(threads, policy, rounding):
    """Every pair of edge values collides in every thread count c = 1 .. T: saturation of
    248..255 to 240, -128, nibble boundaries, the weight below 16."""
    rng = np.random.default_rng(threads)
    acts = np.array(EDGE_A)
    k = threads * 8
    a = rng.choice(acts, (6, k))
    a[:, ::3] = 0
    a[0] = 255
    a[1] = 248
    b = rng.choice(np.array(EDGE_W), (k, 5))
    b[:, 0] = 127
    b[1::4, 1] = 0
    params = {"policy": policy, "rounding": rounding}
    design = RtlDesign("t", "sysmt", threads, params, 3, 2, False, exact_acc_bits(k))
    _check(design, [(a.astype(np.int64), b.astype(np.int64))], threads, "interleaved",
           "sysmt", params)

def test_fewer_threads_than_built_are_fed_zeros():
    """A 4-thread PE running a 2-thread layer (pe.layer_threads) equals the 2-thread rule."""
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (5, 9)).astype(np.int64)
    b = rng.integers(-128, 128, (9, 3)).astype(np.int64)
    params = {"policy": "sparsity_aware", "rounding": "round_half_even"}
    design = RtlDesign("t", "sysmt", 4, params, 2, 2, False, exact_acc_bits(9))
    sched = np.array(naive_schedule(9, 2, "contiguous"), dtype=np.int64)
    rtl = run_gemms(design, [(a, b, sched)])[0]
    ref = run_reference_array(a, b, 2, 2, sched, "sysmt", params)
    np.testing.assert_array_equal(rtl.outputs, ref.outputs)
    assert rtl.cycles == ref.cycles
