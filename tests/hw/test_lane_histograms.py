"""The histogram path of the bit-serial and SWIS functional models (one pass per operand, up
to 12 lanes) against the naive twins at the group sizes the other tests do not reach (the
word path up to 8 lanes, the bit-by-bit path at 9..12, the pattern-array path above 12),
and the histogram kernels against a direct count on random patterns."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive_swis import naive_bitserial_run, naive_decompose, naive_swis_run
from simulator.config.arch import ArrayConfig
from simulator.hw.pe.bitserial import BitSerialOptions, BitSerialPE
from simulator.hw.pe.swis import SWISOptions, SWISPE
from simulator.kernels.swis import (active_from_histograms, bitserial_weight_histogram,
                                    parallel_histogram, position_histogram)
from simulator.workloads.layers import Layer

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def operands(seed: int, m: int, kd: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, kd)) * (rng.random((m, kd)) < 0.6)
    b = np.clip(np.rint(rng.laplace(0.0, 30.0, (kd, n))), -128, 127)
    b = b * (rng.random((kd, n)) < 0.7)
    return a.astype(np.int64), b.astype(np.int64)


@FEW
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 5), kd=st.integers(1, 30),
       n=st.integers(1, 4), group=st.sampled_from([8, 9, 12, 13]), bits=st.integers(1, 8))
def test_bitserial_group_sizes_match_naive(seed, m, kd, n, group, bits):
    a, b = operands(seed, m, kd, n)
    pe = BitSerialPE(BitSerialOptions(bits=bits, group_size=group), ArrayConfig(rows=2, cols=3))
    fast = pe.simulate_gemm(Layer(name="g", op="gemm", in_channels=kd, out_channels=n,
                                  batch=m), a, b)
    outputs, counters, stats, _, _ = naive_bitserial_run(
        a.tolist(), b.tolist(), bits, "weight", group, 2, 3, bool(a.min() < 0))
    assert fast.outputs.tolist() == outputs
    assert fast.counters == counters
    assert fast.stats == stats


@FEW
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 5), kd=st.integers(1, 30),
       n=st.integers(1, 4), group=st.sampled_from([7, 9, 12, 13]), shifts=st.integers(1, 4))
def test_swis_group_sizes_match_naive(seed, m, kd, n, group, shifts):
    a, b = operands(seed, m, kd, n)
    pe = SWISPE(SWISOptions(group_size=group, shifts=shifts), ArrayConfig(rows=2, cols=3))
    fast = pe.simulate_gemm(Layer(name="g", op="gemm", in_channels=kd, out_channels=n,
                                  batch=m), a, b)
    dec = naive_decompose(b.tolist(), group, shifts=shifts)
    outputs, counters, stats, _, _ = naive_swis_run(a.tolist(), dec, group, 2, 3,
                                                    list(range(n)))
    assert fast.outputs.tolist() == outputs
    assert fast.counters == counters
    assert fast.stats == stats


@FEW
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(0, 6), kd=st.integers(1, 26),
       n=st.integers(1, 5), lanes=st.integers(1, 12))
def test_histogram_kernels_match_a_direct_count(seed, m, kd, n, lanes):
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 4, (m, kd))
    approx = rng.integers(-255, 256, (kd, n)).astype(np.int16)
    n_q = -(-kd // lanes)
    table = rng.integers(0, 8, (256, 5)).astype(np.uint8)
    masks = rng.integers(0, 256, (n_q, n))
    shifts = rng.integers(0, 6, (n_q, n))
    hx, col_nonzero, a_float, a_bound = parallel_histogram(a, lanes)
    hy, k_popcount, w_float, w_bound = position_histogram(approx, masks, shifts, table, lanes)
    active = 0
    for q in range(n_q):
        ks = range(q * lanes, min((q + 1) * lanes, kd))
        for i in range(m):
            for f in range(n):
                for r in range(shifts[q, f]):
                    position = table[masks[q, f], r]
                    active += any(a[i, k] != 0 and (abs(int(approx[k, f])) >> position) & 1
                                  for k in ks)
    assert active_from_histograms(hx, hy) == active
    assert hx.sum() == m * n_q and hy.sum() == shifts.sum()
    assert col_nonzero.tolist() == np.count_nonzero(a, axis=0).tolist()
    assert k_popcount.tolist() == [sum(bin(abs(int(v))).count("1") for v in row)
                                   for row in approx]
    assert a_float.tolist() == a.tolist() and w_float.tolist() == approx.tolist()
    assert a_bound == (int(np.abs(a).max()) if m else 0)
    assert w_bound == int(np.abs(approx.astype(np.int64)).max())


def test_weight_histogram_rounds_half_to_even_and_saturates():
    b = np.array([[-128, -24, -8, 8, 24, 40, 127, 0]], dtype=np.int64).T
    hist, k_popcount, q_float, sq_error, bound = bitserial_weight_histogram(b, 4, 8)
    # 4 bits on the 16-grid: -8/16 and 8/16 round to 0, 24/16 to 2, 40/16 to 2, 127 saturates
    assert q_float[:, 0].tolist() == [-128, -32, 0, 0, 32, 32, 112, 0]
    assert sq_error == int(((b[:, 0] - q_float[:, 0]) ** 2).sum())
    assert bound == 128
    assert hist.sum() == 4
