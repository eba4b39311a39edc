"""SPARQ's 2:4 kernel on GEMMs larger than the random cases of test_sparq.py: several
32-row blocks with a short last one, and more than 128 groups (a float32 -> float64 flush),
against the naive twin."""

from __future__ import annotations

import numpy as np
import pytest

from naive_sparq import naive_sparq_gemm
from simulator.hw.pe.sparq import PRODUCT_STATS, STEP_COUNTERS, SparqOptions, SparqPE
from simulator.workloads.layers import Layer


@pytest.mark.parametrize(("window_bits", "options", "rounding"), [(4, 5, "round"),
                                                                   (2, 7, "raw")])
def test_stc_blocks_and_flushes_match_naive(window_bits, options, rounding):
    rng = np.random.default_rng(window_bits)
    m, kd, n = 70, 517, 3
    a = rng.integers(0, 256, (m, kd)) * (rng.random((m, kd)) < 0.5)
    b = rng.integers(-128, 128, (kd, n))
    for g in range(0, kd, 4):  # keep at most two non-zero weights of every group of four
        for col in range(n):
            drop = rng.permutation(min(4, kd - g))[2:]
            b[g + drop, col] = 0
    pe = SparqPE(SparqOptions(window_bits=window_bits, options=options, rounding=rounding,
                              pairing="stc"))
    layer = Layer(name="g", op="gemm", in_channels=kd, out_channels=n, batch=m)
    fast = pe.simulate_gemm(layer, a.astype(np.int64), b.astype(np.int64))
    outputs, counters, stats, _ = naive_sparq_gemm(a.tolist(), b.tolist(), window_bits,
                                                   options, rounding, "stc")
    assert fast.outputs.tolist() == outputs
    assert {k: fast.counters.get(k, 0) for k in STEP_COUNTERS} == {
        k: counters.get(k, 0) for k in STEP_COUNTERS}
    assert {k: fast.stats.get(k, 0) for k in PRODUCT_STATS} == {
        k: stats.get(k, 0) for k in PRODUCT_STATS}
