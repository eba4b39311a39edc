"""SySMT's fast path against the register-level reference array and the naive model.

The fast path (numba kernel over gathered operands) must give the identical outputs,
activity counters and native cycle counts as the array that moves operands register by
register (simulator.hw.reference_array) on random layers.
"""

from __future__ import annotations

import contextlib
import dataclasses
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive import naive_schedule, naive_sysmt_gemm
from simulator import api
from simulator.hw.pe.dense import DenseOptions, DensePE
from simulator.hw.pe.schedule import reordered_schedule, thread_schedule
from simulator.hw.pe.sysmt import SySMTOptions, SySMTPE
from simulator.hw.reference_array import run_reference_array
from simulator.hw.timing import fold_timing
from simulator.workloads.layers import Layer


@st.composite
def gemm_case(draw):
    m = draw(st.integers(1, 9))
    kd = draw(st.integers(1, 19))
    n = draw(st.integers(1, 7))
    signed = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if signed else (0, 256)
    a = rng.integers(lo, hi, (m, kd)) * (rng.random((m, kd)) < draw(st.floats(0.1, 1.0)))
    # Weights include -128, narrow values and values near 0xF8 that round up and saturate.
    pool = np.array([-128, -127, -100, -17, -16, -15, -1, 0, 1, 9, 15, 16, 17, 24, 40,
                     120, 127])
    b = rng.choice(pool, (kd, n)) if draw(st.booleans()) else rng.integers(-128, 128, (kd, n))
    b = b * (rng.random((kd, n)) < draw(st.floats(0.1, 1.0)))
    if draw(st.booleans()) and not signed:
        a = np.where(a > 0, rng.choice([23, 24, 40, 127, 128, 248, 255], a.shape), 0)
    return a.astype(np.int64), b.astype(np.int64)


def kernel_path(path: str):
    """Force the kernel's row-tile path or its few-rows PE-step path for any M."""
    import simulator.kernels.sysmt as kernel

    if path == "auto":
        return contextlib.nullcontext()
    return mock.patch.object(kernel, "_DIRECT_ROWS", -1 if path == "tiles" else 10**9)


def gemm_layer(a, b) -> Layer:
    return Layer(name="g", op="gemm", in_channels=a.shape[1], out_channels=b.shape[1],
                 batch=a.shape[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_case(), threads=st.sampled_from([1, 2, 4]),
       policy=st.sampled_from(["sparsity_aware", "msb_trim"]),
       rounding=st.sampled_from(["round_half_even", "truncate"]),
       split=st.sampled_from(["contiguous", "interleaved"]),
       rows=st.integers(1, 5), cols=st.integers(1, 5),
       path=st.sampled_from(["tiles", "direct"]))
def test_fast_path_equals_reference_array(case, threads, policy, rounding, split, rows, cols,
                                          path):
    a, b = case
    pe = SySMTPE(SySMTOptions(threads=threads, policy=policy, rounding=rounding,
                              thread_split=split))
    layer = gemm_layer(a, b)
    with kernel_path(path):
        fast = pe.simulate_gemm(layer, a, b)
    sched = pe.schedule(layer, a)
    ref = run_reference_array(a, b, rows, cols, sched, "sysmt",
                              {"policy": policy, "rounding": rounding})
    np.testing.assert_array_equal(fast.outputs, ref.outputs)
    assert fast.counters == ref.counters
    np.testing.assert_array_equal(fast.exact, a @ b)
    timing = fold_timing(layer.gemm, rows, cols, "os", "native", pe.reduction_steps(layer))
    assert timing.compute_cycles == ref.cycles


@settings(max_examples=60, deadline=None)
@given(case=gemm_case(), threads=st.sampled_from([2, 4]),
       policy=st.sampled_from(["sparsity_aware", "msb_trim"]),
       rounding=st.sampled_from(["round_half_even", "truncate"]),
       split=st.sampled_from(["contiguous", "interleaved"]),
       path=st.sampled_from(["tiles", "direct"]))
def test_fast_path_equals_naive_model(case, threads, policy, rounding, split, path):
    a, b = case
    pe = SySMTPE(SySMTOptions(threads=threads, policy=policy, rounding=rounding,
                              thread_split=split))
    with kernel_path(path):
        fast = pe.simulate_gemm(gemm_layer(a, b), a, b)
    sched = naive_schedule(a.shape[1], threads, split)
    assert pe.schedule(gemm_layer(a, b), a).tolist() == sched
    outputs, counters = naive_sysmt_gemm(a.tolist(), b.tolist(), sched, policy, rounding)
    assert fast.outputs.tolist() == outputs
    assert fast.counters == counters
    np.testing.assert_array_equal(fast.exact, a @ b)


@settings(max_examples=30, deadline=None)
@given(case=gemm_case(), rows=st.integers(1, 4), cols=st.integers(1, 4))
def test_dense_equals_reference_array(case, rows, cols):
    a, b = case
    pe = DensePE(DenseOptions())
    layer = gemm_layer(a, b)
    fast = pe.simulate_gemm(layer, a, b)
    ref = run_reference_array(a, b, rows, cols, thread_schedule(a.shape[1], 1, "contiguous"),
                              "dense")
    np.testing.assert_array_equal(fast.outputs, ref.outputs)
    np.testing.assert_array_equal(fast.outputs, a @ b)
    assert fast.counters["single"] == ref.counters["single"]
    assert fast.counters["idle"] == ref.counters["idle"]
    assert fold_timing(layer.gemm, rows, cols, "os", "native", a.shape[1]).compute_cycles == ref.cycles


def test_schedules():
    assert thread_schedule(7, 2, "contiguous").tolist() == [[0, 1, 2, 3], [4, 5, 6, -1]]
    assert thread_schedule(6, 4, "contiguous").tolist() == [[0, 1], [2, 3], [4, -1], [5, -1]]
    assert thread_schedule(5, 2, "interleaved").tolist() == [[0, 2, 4], [1, 3, -1]]
    # Reordering: densest first on thread 0, sparsest first on thread 1.
    rate = np.array([0.1, 0.9, 0.5, 0.7])
    assert reordered_schedule(rate, 2).tolist() == [[1, 3], [0, 2]]


def test_reordering_reduces_collisions():
    rng = np.random.default_rng(0)
    # Both contiguous halves start dense: without reordering dense meets dense.
    rate = np.repeat([0.9, 0.1, 0.9, 0.1], 16)
    a = (rng.random((256, 64)) < rate) * rng.integers(1, 256, (256, 64))
    b = rng.integers(-128, 128, (64, 8))
    layer = gemm_layer(a, b)
    plain = SySMTPE(SySMTOptions(threads=2)).simulate_gemm(layer, a, b).counters
    reordered = SySMTPE(SySMTOptions(threads=2, reorder_channels=True)).simulate_gemm(
        layer, a, b).counters
    collisions = lambda c: c["shared_exact"] + c["shared_reduced"]  # noqa: E731
    assert collisions(reordered) < 0.5 * collisions(plain)


def test_two_threads_halve_compute_on_dense_layers():
    workload = api.load_workload("resnet18")
    base = api.simulate(api.load_arch("os_sa_16x16"), workload, functional=False)
    smt2 = api.simulate(api.load_arch("sysmt_2t_16x16"), workload, functional=False)
    smt4 = api.simulate(api.load_arch("sysmt_4t_16x16"), workload, functional=False)
    for b_layer, l2, l4 in zip(base.layers, smt2.layers, smt4.layers):
        assert l2.steps_per_fold == -(-b_layer.steps_per_fold // 2)
        assert l4.steps_per_fold == -(-b_layer.steps_per_fold // 4)
    steps = lambda r: sum(l.steps_per_fold * l.folds for l in r.layers)  # noqa: E731
    assert steps(base) / steps(smt2) == pytest.approx(2, rel=0.01)
    assert base.total_cycles / smt2.total_cycles > 1.7  # fill/drain does not shrink


def test_layer_thread_override(tmp_path):
    arch = api.load_arch("sysmt_4t_16x16", ["pe.layer_threads={conv1: 1, fc: 2}"])
    result = api.simulate(arch, api.load_workload("resnet18"), functional=False)
    by_name = {l.name: l for l in result.layers}
    assert by_name["conv1"].steps_per_fold == 147
    assert by_name["fc"].steps_per_fold == 256
    assert by_name["layer1.0.conv1"].steps_per_fold == 576 // 4
    bad = api.load_arch("sysmt_4t_16x16", ["pe.layer_threads={nosuch: 2}"])
    with pytest.raises(Exception, match="nosuch"):
        api.simulate(bad, api.load_workload("resnet18"), functional=False)


def _middle_layers(name: str):
    workload = api.load_workload(name)
    return dataclasses.replace(workload, layers=workload.layers[5:9])


def test_weight_pruning_reduces_lossy_collisions():
    """NB-SMT's premise: sparser weights, fewer collisions that lose precision."""
    arch = api.load_arch("sysmt_4t_16x16")
    dense = api.simulate(arch, _middle_layers("resnet18")).summary()
    pruned = api.simulate(arch, _middle_layers("resnet18_pruned40")).summary()
    assert dense["data"] == pruned["data"] == "synthetic"
    share = lambda s: s["counters"]["shared_reduced"] / sum(s["counters"].values())  # noqa: E731
    assert share(pruned) < 0.8 * share(dense)
    assert pruned["counters"]["idle"] > dense["counters"]["idle"]
    assert pruned["sqnr_db"] > dense["sqnr_db"]


def test_two_threads_lose_less_than_four():
    two = api.simulate(api.load_arch("sysmt_2t_16x16"), _middle_layers("resnet18")).summary()
    four = api.simulate(api.load_arch("sysmt_4t_16x16"), _middle_layers("resnet18")).summary()
    assert two["sqnr_db"] > four["sqnr_db"] + 3


@pytest.mark.parametrize("threads", [2, 4])
@pytest.mark.parametrize("policy", ["sparsity_aware", "msb_trim"])
def test_fast_path_on_long_reductions_and_row_blocks(threads, policy):
    """Shapes past the kernel's 8-row blocks and its 64-step float32 flush."""
    rng = np.random.default_rng(threads)
    a = (rng.integers(0, 256, (19, 301)) * (rng.random((19, 301)) < 0.6)).astype(np.int64)
    b = (rng.integers(-128, 128, (301, 5)) * (rng.random((301, 5)) < 0.8)).astype(np.int64)
    for split in ("contiguous", "interleaved"):
        pe = SySMTPE(SySMTOptions(threads=threads, policy=policy, thread_split=split))
        fast = pe.simulate_gemm(gemm_layer(a, b), a, b)
        outputs, counters = naive_sysmt_gemm(a.tolist(), b.tolist(),
                                             naive_schedule(301, threads, split), policy,
                                             "round_half_even")
        assert fast.outputs.tolist() == outputs
        assert fast.counters == counters
        np.testing.assert_array_equal(fast.exact, a @ b)


def test_kernel_trim_equals_naive_trim():
    """The kernel's float trim (used on every operand) against the naive integer rule."""
    from naive import naive_trim

    from simulator.kernels.sysmt_loops import trim

    for rounding in ("round_half_even", "truncate"):
        for v in range(-128, 256):
            expected = (-1 if v < 0 else 1) * naive_trim(abs(v), rounding)
            assert trim(np.float32(v), rounding == "round_half_even") == expected, (v, rounding)


def _random_operands(rng, m, kd, n, weight_high=128):
    a = rng.integers(0, 256, (m, kd)) * (rng.random((m, kd)) < 0.55)
    b = rng.integers(-128, weight_high, (kd, n)) * (rng.random((kd, n)) < 0.9)
    return a.astype(np.int64), b.astype(np.int64)


@pytest.mark.parametrize("path", ["tiles", "direct"])
@pytest.mark.parametrize("threads", [2, 4])
def test_fast_path_on_many_workers_and_tiles(monkeypatch, threads, path):
    """Several workers over several row tiles, or over parts of the reduction (each part
    summing into its own output), or (few-rows path) over blocks of columns, against the
    naive model."""
    import simulator.kernels.sysmt as kernel

    monkeypatch.setattr(kernel, "_workers", lambda pe_steps: 3)
    rng = np.random.default_rng(7 + threads)
    # 21 rows in 6-row tiles (a 96-float accumulator); 2 rows whose 30-long reduction is
    # split between the 3 workers.
    for m, kd, n, split, tile in ((21, 23, 16, "contiguous", 96),
                                  (2, 30, 100, "interleaved", kernel._TILE_FLOATS)):
        monkeypatch.setattr(kernel, "_TILE_FLOATS", tile)
        a, b = _random_operands(rng, m, kd, n)
        pe = SySMTPE(SySMTOptions(threads=threads, thread_split=split))
        layer = gemm_layer(a, b)
        tiles = kernel._tiles(m, n, pe.reduction_steps(layer), 3)
        assert len(set(tiles[:, 0])) >= 3 or len(set(tiles[:, 6])) == 3
        with kernel_path(path):
            fast = pe.simulate_gemm(layer, a, b)
        outputs, counters = naive_sysmt_gemm(a.tolist(), b.tolist(),
                                             naive_schedule(kd, threads, split),
                                             "sparsity_aware", "round_half_even")
        assert fast.outputs.tolist() == outputs
        assert fast.counters == counters
        np.testing.assert_array_equal(fast.exact, a @ b)


@pytest.mark.parametrize("path", ["tiles", "direct"])
@pytest.mark.parametrize("threads", [2, 4])
def test_fast_path_across_float32_flushes(threads, path):
    """Reductions long enough that the float32 accumulator is flushed several times, with
    unsigned 8-bit weights (the largest products, so the most frequent flushes)."""
    rng = np.random.default_rng(threads)
    a, b = _random_operands(rng, 3, 1400, 4, weight_high=256)
    a[0] = 255  # the largest step sums
    b[:, 0] = 255
    pe = SySMTPE(SySMTOptions(threads=threads, policy="msb_trim"))
    with kernel_path(path):
        fast = pe.simulate_gemm(gemm_layer(a, b), a, b)
    outputs, counters = naive_sysmt_gemm(a.tolist(), b.tolist(),
                                         naive_schedule(1400, threads, "contiguous"),
                                         "msb_trim", "round_half_even")
    assert fast.outputs.tolist() == outputs
    assert fast.counters == counters
    np.testing.assert_array_equal(fast.exact, a @ b)


@pytest.mark.parametrize("path", ["tiles", "direct"])
def test_operands_outside_8_bit_are_rejected(path):
    from simulator.errors import SimulationError
    from simulator.kernels.sysmt import OperandRangeError, sysmt_gemm

    pe = SySMTPE(SySMTOptions(threads=2))
    a = np.ones((3, 4), np.int64)
    b = np.ones((4, 2), np.int64)
    sched = thread_schedule(4, 2, "contiguous")
    for bad_a, bad_b, operand in ((a * 256, b, "activations"), (a * -129, b, "activations"),
                                  (a, b * 256, "weights"), (a, b * -129, "weights")):
        with kernel_path(path), pytest.raises(OperandRangeError, match=operand):
            sysmt_gemm(bad_a, bad_b, sched, True, True)
        with kernel_path(path), pytest.raises(SimulationError, match="layer 'g'"):
            pe.simulate_gemm(gemm_layer(bad_a, bad_b), bad_a, bad_b)
    with kernel_path(path):
        out, counts, _ = sysmt_gemm(a * 255, b * -128, sched, True, True)
    assert out.tolist() == naive_sysmt_gemm((a * 255).tolist(), (b * -128).tolist(),
                                            sched.tolist(), "sparsity_aware",
                                            "round_half_even")[0]


def test_schedule_must_use_every_k_once():
    from simulator.kernels.sysmt import sysmt_gemm

    a = np.ones((2, 4), np.int64)
    b = np.ones((4, 3), np.int64)
    for sched in ([[0, 1], [2, 2]], [[0, 1], [2, -1]], [[0, 1], [2, 4]], [[0, 1], [2, -2]]):
        with pytest.raises(ValueError, match="every K index"):
            sysmt_gemm(a, b, np.array(sched), True, True)


@pytest.mark.parametrize("path", ["tiles", "direct"])
@pytest.mark.parametrize("policy", ["sparsity_aware", "msb_trim"])
def test_four_live_threads_with_two_zero_weights(policy, path):
    """Four non-zero activations meeting dense weights, but two (or three) zero weights in
    a few columns: c drops to 2 (a lossy collision) or 1 there. The kernel adds sum(ta*tw)
    for the dense columns and fixes those few columns exactly."""
    rng = np.random.default_rng(11)
    kd, n = 40, 64
    a = rng.choice([23, 40, 127, 200, 255], (3, kd)).astype(np.int64)
    b = rng.choice([-100, -37, 25, 100], (kd, n)).astype(np.int64)
    sched = naive_schedule(kd, 4, "contiguous")
    for step, col, zeros in ((0, 5, (0, 1)), (3, 17, (1, 3)), (3, 40, (0, 2, 3)), (9, 63, (2, 3))):
        for t in zeros:
            b[sched[t][step], col] = 0
    pe = SySMTPE(SySMTOptions(threads=4, policy=policy))
    with kernel_path(path):
        fast = pe.simulate_gemm(gemm_layer(a, b), a, b)
    outputs, counters = naive_sysmt_gemm(a.tolist(), b.tolist(), sched, policy,
                                         "round_half_even")
    assert fast.outputs.tolist() == outputs
    assert fast.counters == counters
    np.testing.assert_array_equal(fast.exact, a @ b)
    assert counters["shared_reduced"] > 0


@pytest.mark.parametrize("path", ["tiles", "direct"])
def test_fast_path_with_a_small_exact_float_range(monkeypatch, path):
    """With a 2**12 "exact range" the kernel flushes float32 every step: still equal to the
    naive model."""
    import simulator.kernels.sysmt as kernel

    monkeypatch.setattr(kernel, "_EXACT_FLOAT32", 2**12)
    rng = np.random.default_rng(3)
    a, b = _random_operands(rng, 20, 37, 30)
    pe = SySMTPE(SySMTOptions(threads=4))
    assert 4 * 255 * (np.abs(b).max() + 8) >= 2**12  # a flush after every step
    with kernel_path(path):
        fast = pe.simulate_gemm(gemm_layer(a, b), a, b)
    outputs, counters = naive_sysmt_gemm(a.tolist(), b.tolist(),
                                         naive_schedule(37, 4, "contiguous"),
                                         "sparsity_aware", "round_half_even")
    assert fast.outputs.tolist() == outputs
    assert fast.counters == counters
    np.testing.assert_array_equal(fast.exact, a @ b)


def test_composition_is_defined_for_built_thread_counts_only():
    from simulator.hw.pe.sysmt import sysmt_composition

    assert sysmt_composition(4, 2).parts["mult_4x4"] == 4
    assert sysmt_composition(2, 1).parts["mult_4x8"] == 2
    for threads in (3, 8):
        with pytest.raises(ValueError, match=f"1, 2 or 4 threads, not {threads}"):
            sysmt_composition(threads, threads)


@pytest.mark.parametrize("threads", [2, 4])
@pytest.mark.parametrize("signed", [False, True])
def test_8_bit_operands_are_read_as_they_are(threads, signed):
    """int8/uint8 operands (the data's own dtype, no int64 copy) give the same outputs,
    counters and exact product as int64 ones, with the edge values -128, 127/255 and
    zeros, on both kernel paths (two row tiles; the few-rows path), across float32
    flushes, with both policies."""
    from simulator.kernels.sysmt import _operand, sysmt_gemm

    rng = np.random.default_rng(5 + threads + 2 * signed)
    lo, hi, dtype = (-128, 128, np.int8) if signed else (0, 256, np.uint8)
    m, kd, n = 66, 1001, 9
    a = rng.integers(lo, hi, (m, kd)) * (rng.random((m, kd)) < 0.6)
    a[0] = hi - 1
    a[1] = lo
    a[2, ::3] = 0
    b = rng.integers(-128, 128, (kd, n)) * (rng.random((kd, n)) < 0.8)
    b[:, 0] = -128
    b[:, 1] = 127
    b[::2, 2] = 0
    sched = np.array(naive_schedule(kd, threads, "interleaved"))
    narrow_a, narrow_b = a.astype(dtype), b.astype(np.int8)
    assert _operand(narrow_a) is narrow_a and _operand(narrow_b) is narrow_b
    # wider integers whose values fit 8 bits are narrowed (a trace's int64 tensors)
    assert _operand(a).dtype == dtype and _operand(b).dtype == np.int8
    assert _operand(a - 1 if signed else a + 1).dtype == np.int64  # they do not fit
    for policy in ("sparsity_aware", "msb_trim"):
        outputs, counters = naive_sysmt_gemm(a.tolist(), b.tolist(), sched.tolist(), policy,
                                             "round_half_even")
        for path in ("tiles", "direct"):
            with kernel_path(path):
                out, counts, exact = sysmt_gemm(narrow_a, narrow_b, sched, True,
                                                policy == "sparsity_aware")
                wide = sysmt_gemm(a, b, sched, True, policy == "sparsity_aware")
            assert out.tolist() == outputs
            assert counts.tolist() == [counters["idle"], counters["single"],
                                       counters["shared_exact"] + counters["shared_reduced"],
                                       counters["shared_reduced"]]
            np.testing.assert_array_equal(exact, a @ b)
            np.testing.assert_array_equal(wide[0], out)
            np.testing.assert_array_equal(wide[2], exact)
