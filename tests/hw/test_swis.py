"""SWIS: the fast decomposition, scheduler, timing and functional model against the naive
twins (tests/naive_swis.py) and the register-level reference array, bit for bit and cycle for
cycle; the configuration rules; and the published direction on the digits trace."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive_swis import (naive_best_set, naive_decompose, naive_nearest, naive_schedule,
                        naive_swis_run, swis_reference_operands)
from simulator import api
from simulator.config.arch import ArrayConfig
from simulator.errors import ConfigError
from simulator.hw.pe.swis import (SWISOptions, SWISPE, cached_decompose,
                                  clear_decomposition_cache, decompose, fold_envelope,
                                  position_sets, schedule_filters)
from simulator.hw.reference_array import run_reference_array
from simulator.hw.timing import fold_timing
from simulator.kernels.swis import nearest_tables
from simulator.workloads.layers import Layer

SLOW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def gemm_layer(m: int, kd: int, n: int) -> Layer:
    return Layer(name="g", op="gemm", in_channels=kd, out_channels=n, batch=m)


@st.composite
def modes(draw):
    """Decomposition keyword arguments: fixed N, threshold or budget."""
    kind = draw(st.sampled_from(["fixed", "threshold", "budget"]))
    if kind == "fixed":
        return {"shifts": draw(st.integers(1, 5))}
    max_shifts = draw(st.integers(1, 4))
    if kind == "threshold":
        return {"max_shifts": max_shifts,
                "error_threshold": float(draw(st.sampled_from([0, 1, 5, 40, 200, 1000])))}
    return {"max_shifts": max_shifts, "bit_budget": draw(st.sampled_from([1.0, 1.5, 2.25, 3.0,
                                                                          3.7, 8.0]))}


@st.composite
def weights(draw, max_kd: int = 19, max_f: int = 7):
    kd, n_f = draw(st.integers(1, max_kd)), draw(st.integers(1, max_f))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([3.0, 12.0, 40.0]))
    b = np.clip(np.rint(rng.laplace(0.0, scale, (kd, n_f))), -128, 127)
    if draw(st.booleans()):  # boundary values: -128, 127, ties between representable values
        pool = np.array([-128, 127, -127, 96, 3, 5, 6, 24, 40, 100, 0])
        mask = rng.random((kd, n_f)) < 0.3
        b[mask] = rng.choice(pool, int(mask.sum()))
    b[rng.random((kd, n_f)) < draw(st.sampled_from([0.0, 0.3, 0.7]))] = 0
    return b.astype(np.int64)


def activations(rng: np.random.Generator, m: int, kd: int, signed: bool,
                zeros: float) -> np.ndarray:
    a = rng.integers(-128, 128, (m, kd)) if signed else rng.integers(0, 256, (m, kd))
    return (a * (rng.random((m, kd)) >= zeros)).astype(np.int64)


# --- the search ------------------------------------------------------------------------------

def test_nearest_tables_match_naive():
    nearest, sq_error = nearest_tables()
    for mask in range(256):
        positions = [s for s in range(8) if mask >> s & 1]
        for x in list(range(0, 129)) + [200, 255]:
            expected = naive_nearest(x, positions)
            assert nearest[mask, x] == expected, (mask, x)
            assert sq_error[mask, x] == (x - expected) ** 2


def test_position_sets_are_all_combinations_in_mask_order():
    assert [len(position_sets(n)) for n in range(9)] == [1, 8, 28, 56, 70, 56, 28, 8, 1]
    assert position_sets(2)[:3].tolist() == [0b11, 0b101, 0b110]
    assert all(np.all(np.diff(position_sets(n)) > 0) for n in range(9))


def test_worked_example():
    """The example of docs/pe-models.md, by hand.

    Group [20, -9, 44, 3], N = 3. S = {2, 4, 5} represents {0, 4, 16, 20, 32, 36, 48, 52}:
    20 -> 20, 9 -> 4 (5 below, 7 above), 44 -> 48 (36 is 8 away), 3 -> 4: error
    0 + 25 + 16 + 1 = 42. S = {3, 4, 5} represents multiples of 8 up to 56: 20 -> 16 (tie
    with 24, the smaller), 9 -> 8, 44 -> 40 (tie with 48), 3 -> 0: error 16 + 1 + 16 + 9 = 42.
    Both are best; {2, 4, 5} has the smaller mask (52 < 56) and wins.
    """
    b = np.array([[20], [-9], [44], [3]])
    dec = decompose(b, 4, shifts=3)
    assert dec.masks.tolist() == [[0b110100]]
    assert dec.approx.ravel().tolist() == [20, -4, 48, 4]
    assert dec.errors.tolist() == [[42]]
    assert naive_best_set([20, 9, 44, 3], 3) == ((2, 4, 5), 42)
    # Storage: N + 1 + 3N/G = 3 + 1 + 9/4 bits per weight.
    assert dec.storage_bits == 4 * 3 + 4 + 9


@SLOW
@given(b=weights(), group_size=st.integers(1, 9), mode=modes())
def test_decomposition_equals_naive(b, group_size, mode):
    fast = decompose(b, group_size, **mode)
    naive = naive_decompose(b.tolist(), group_size, **mode)
    assert fast.approx.tolist() == naive["approx"]
    assert fast.shifts.tolist() == naive["shifts"]
    assert fast.errors.tolist() == naive["errors"]
    positions = [[tuple(s for s in range(8) if m >> s & 1) for m in row]
                 for row in fast.masks.tolist()]
    assert positions == naive["positions"]
    # Every represented magnitude uses only the group's positions.
    rows = np.repeat(fast.masks, group_size, axis=0)[:b.shape[0]]
    assert np.all(np.abs(fast.approx) & ~rows == 0)
    assert np.all(np.bitwise_count(fast.masks.astype(np.uint8)) == fast.shifts)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64])
def test_narrow_weights_decompose_as_int64_ones(dtype):
    # The search and the approximation read the weights in their own dtype (an int8 -128's
    # magnitude does not fit int8); the result equals the naive decomposition.
    rng = np.random.default_rng(7)
    b = rng.integers(-128, 128, size=(37, 11))
    b[0, :3] = -128
    b[1, :2] = 127
    b[2:6, 4] = 0
    fast = decompose(b.astype(dtype), 8, shifts=3)
    naive = naive_decompose(b.tolist(), 8, shifts=3)
    assert fast.approx.dtype == np.int16
    assert fast.approx.tolist() == naive["approx"]
    assert fast.errors.tolist() == naive["errors"]


def test_variable_n_rules():
    rng = np.random.default_rng(5)
    b = np.clip(np.rint(rng.laplace(0, 20, (64, 16))), -127, 127).astype(np.int64)
    errors = {n: decompose(b, 8, shifts=n).errors for n in range(1, 5)}
    dec = decompose(b, 8, max_shifts=4, error_threshold=50.0)
    for n in range(1, 5):
        chosen = dec.shifts == n
        assert np.all(errors[n][chosen] == dec.errors[chosen])
        if n < 4:
            assert np.all(errors[n][chosen] <= 50)
        for smaller in range(1, n):
            assert np.all(errors[smaller][chosen] > 50)
    assert len(np.unique(dec.shifts)) > 1  # the case really mixes N
    # The budget is spent and never exceeded: mask bits sum(N * 8) <= floor(2.5 * weights).
    budget = decompose(b, 8, max_shifts=4, bit_budget=2.5)
    assert (budget.shifts * 8).sum() <= 2.5 * b.size
    assert (budget.shifts * 8).sum() > 2.5 * b.size - 8
    assert budget.errors.sum() < decompose(b, 8, shifts=2).errors.sum()
    assert np.all(decompose(b, 8, max_shifts=4, bit_budget=1.0).shifts == 1)


def test_more_positions_never_hurt_and_eight_are_exact():
    rng = np.random.default_rng(1)
    b = rng.integers(-128, 128, (40, 6))
    totals = [int(decompose(b, 5, shifts=n).errors.sum()) for n in range(1, 9)]
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1] == 0
    np.testing.assert_array_equal(decompose(b, 5, shifts=8).approx, b)


def test_decompose_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shifts"):
        decompose(np.ones((3, 2)), 2, shifts=2, max_shifts=3)
    with pytest.raises(ValueError, match="max_shifts"):
        decompose(np.ones((3, 2)), 2, max_shifts=3)
    with pytest.raises(ValueError, match="255"):
        decompose(np.full((3, 2), 300), 2, shifts=2)


def test_cache_reuses_decompositions():
    clear_decomposition_cache()
    b = np.arange(-40, 40).reshape(20, 4)
    options = SWISOptions(shifts=2)
    first = cached_decompose(b, options)
    assert cached_decompose(b.copy(), options) is first
    assert cached_decompose(b, SWISOptions(shifts=2, schedule=False)) is first
    assert cached_decompose(b, SWISOptions(shifts=3)) is not first
    changed = b.copy()
    changed[0, 0] += 1
    assert cached_decompose(changed, options) is not first
    with pytest.raises(ValueError):
        first.approx[0, 0] = 1  # cached results are read-only


def test_cache_is_bounded_in_bytes(monkeypatch):
    from simulator.hw.pe import swis

    clear_decomposition_cache()
    b = np.arange(-40, 40).reshape(20, 4)
    options = SWISOptions(shifts=2)
    size = swis._nbytes(cached_decompose(b, options))
    monkeypatch.setattr(swis, "CACHE_BYTES", 2 * size)
    for delta in range(1, 4):
        cached_decompose(b + delta, options)
    assert len(swis._CACHE) == 2 and swis._CACHE_SIZE == 2 * size
    assert cached_decompose(b + 3, options) is cached_decompose(b + 3, options)
    clear_decomposition_cache()
    assert not swis._CACHE and swis._CACHE_SIZE == 0


# --- the scheduler ---------------------------------------------------------------------------

def test_scheduler_groups_similar_profiles():
    # Filters alternate between needing 1 and 4 positions in every group: in the original
    # order every fold of 2 waits for the 4; scheduled, the 1s share folds.
    shifts = np.tile(np.array([1, 4]), (5, 4))  # (Q=5, F=8)
    order = schedule_filters(shifts, 2)
    assert fold_envelope(shifts, np.arange(8), 2).sum() == 4 * 4 * 5
    assert fold_envelope(shifts, order, 2).sum() == (4 + 4 + 1 + 1) * 5
    assert sorted(order.tolist()) == list(range(8))
    assert order.tolist() == naive_schedule(shifts.tolist(), 2)


@settings(max_examples=60, deadline=None)
@given(q=st.integers(1, 6), f=st.integers(1, 12), cols=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1))
def test_scheduler_never_slower_and_equals_naive(q, f, cols, seed):
    shifts = np.random.default_rng(seed).integers(1, 5, (q, f))
    order = schedule_filters(shifts, cols)
    assert sorted(order.tolist()) == list(range(f))
    assert fold_envelope(shifts, order, cols).sum() <= fold_envelope(shifts, np.arange(f),
                                                                     cols).sum()
    assert order.tolist() == naive_schedule(shifts.tolist(), cols)


# --- the PE against the naive array and the reference array ----------------------------------

@st.composite
def swis_cases(draw):
    b = draw(weights(max_kd=17, max_f=7))
    kd = b.shape[0]
    m = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = activations(rng, m, kd, draw(st.booleans()), draw(st.sampled_from([0.0, 0.4, 0.8])))
    mode = draw(modes())
    options = SWISOptions(group_size=draw(st.integers(1, 6)), schedule=draw(st.booleans()),
                          **mode)
    return a, b, options, draw(st.integers(1, 4)), draw(st.integers(1, 4))


@SLOW
@given(case=swis_cases())
def test_fast_equals_naive_and_reference_array(case):
    a, b, options, rows, cols = case
    m, kd = a.shape
    pe = SWISPE(options, ArrayConfig(rows=rows, cols=cols))
    layer = gemm_layer(m, kd, b.shape[1])
    fast = pe.simulate_gemm(layer, a, b)
    steps = pe.column_fold_steps(layer, b[None])
    cycles = fold_timing(layer.gemm, rows, cols, "os", "native", pe.reduction_steps(layer),
                         steps.steps).compute_cycles

    mode = {k: v for k, v in (("shifts", options.shifts), ("max_shifts", options.max_shifts),
                              ("error_threshold", options.error_threshold),
                              ("bit_budget", options.bit_budget)) if v is not None}
    dec = naive_decompose(b.tolist(), options.group_size, **mode)
    order = (naive_schedule(dec["shifts"], cols) if options.schedule
             else list(range(b.shape[1])))
    outputs, counters, stats, fold_steps, naive_cycles = naive_swis_run(
        a.tolist(), dec, options.group_size, rows, cols, order)
    assert fast.outputs.tolist() == outputs
    assert fast.counters == counters
    assert fast.stats == stats
    assert steps.steps.tolist() == [fold_steps]
    assert cycles == naive_cycles
    unscheduled = naive_swis_run(a.tolist(), dec, options.group_size, rows, cols,
                                 list(range(b.shape[1])))[3]
    assert steps.alternatives["unscheduled"].tolist() == [unscheduled]
    assert steps.alternatives["scheduled"].sum() <= steps.alternatives["unscheduled"].sum()

    a_x, b_x, sched, ref_steps = swis_reference_operands(a.tolist(), dec, options.group_size,
                                                         cols, order)
    ref = run_reference_array(np.array(a_x, dtype=np.int64), np.array(b_x, dtype=np.int64),
                              rows, cols, np.array(sched, dtype=np.int64), "bitserial",
                              {"serial_operand": "weight"},
                              fold_steps=np.array(ref_steps, dtype=np.int64))
    unpermuted = np.empty_like(ref.outputs)
    unpermuted[:, order] = ref.outputs
    assert unpermuted.tolist() == outputs
    assert ref.counters == counters
    assert ref.cycles == cycles
    assert ref.stats == {"shifts": stats["shifts"], "active_lanes": stats["active_lanes"]}


def test_reference_array_sees_lockstep_waits_and_scheduling():
    """Two filters with N = 1 and two with N = 3 on a 1 x 2 array: unscheduled, each fold
    pairs a 1 with a 3 (each group step lasts 3 cycles, the N = 1 PE waits 2 of them);
    scheduled, the 3s share a fold and the 1s finish in one cycle per group."""
    b = np.array([[1, 7, 1, 7], [1, 7, 1, 7]] * 2, dtype=np.int64)  # Kd = 4, G = 2: Q = 2
    a = np.array([[3, 5, 7, 9]], dtype=np.int64)
    layer = gemm_layer(1, 4, 4)
    results = {}
    for schedule in (False, True):
        pe = SWISPE(SWISOptions(group_size=2, max_shifts=3, error_threshold=0.0,
                                schedule=schedule), ArrayConfig(rows=1, cols=2))
        assert pe.decomposition(b).shifts.tolist() == [[1, 3, 1, 3]] * 2
        fast = pe.simulate_gemm(layer, a, b)
        np.testing.assert_array_equal(fast.outputs, a @ b)  # threshold 0: exact
        steps = pe.column_fold_steps(layer, b[None]).steps
        results[schedule] = (fast.counters, steps.tolist())
    assert results[False] == ({"idle": 2 * 2 * 2, "zero": 0, "active": 16}, [[6, 6]])
    assert results[True] == ({"idle": 0, "zero": 0, "active": 16}, [[6, 2]])


def test_fixed_n_speedup_over_bitserial_is_8_over_n():
    workload = api.load_workload("digits_int8")
    # the arrays' own cycles (the ideal memory): this is about the PEs, not the chip
    base = api.simulate(api.load_arch("bitserial_8b_16x16", ["memory=ideal"]), workload,
                        functional=False)
    for n in (2, 3, 4):
        arch = api.load_arch("swis_g8_n3_16x16", ["memory=ideal", f"pe.shifts={n}"])
        swis = api.simulate(arch, workload, functional=False)
        for lb, ls in zip(base.layers, swis.layers):
            assert lb.steps_per_fold * n == ls.steps_per_fold * 8
        assert swis.summary()["alternative_cycles"] == {"scheduled": swis.total_cycles,
                                                        "unscheduled": swis.total_cycles}


def test_digits_swis_beats_truncation_and_reports_storage():
    """docs/hardware-spec.md §5: at the same N, SWIS's weight error is far below truncation's."""
    workload = api.load_workload("digits_int8")
    for n in (3, 4):
        swis = api.simulate(api.load_arch("swis_g8_n3_16x16", [f"pe.shifts={n}"]),
                            workload).summary()
        trunc = api.simulate(api.load_arch("bitserial_4b_16x16", [f"pe.bits={n}"]),
                             workload).summary()
        assert swis["stats"]["weight_sq_error"] * 4 < trunc["stats"]["weight_sq_error"]
        assert swis["sqnr_db"] > trunc["sqnr_db"] + 3
        # Storage (N + 1 + 3N/G per full group; the digits layers' Kd are not all multiples
        # of 8, so short groups pay a little more metadata per weight).
        bits = swis["stats"]["storage_bits"] / swis["stats"]["weights"]
        assert n + 1 + 3 * n / 8 <= bits < n + 1 + 3 * n / 8 + 0.1
        assert trunc["stats"]["storage_bits"] == n * trunc["stats"]["weights"]
        for layer in swis["layers"]:
            assert layer["stats"]["storage_bits"] >= (n + 1) * layer["stats"]["weights"]


def test_variable_run_reports_both_schedules(cli):
    # the array's own cycles (the ideal memory): the alternatives are compute cycles
    result = cli("run", "--arch", "swis_variable_16x16", "--workload", "digits_int8",
                 "--set", "memory=ideal", "--set", "array.cols=4", "--json")
    assert result.status == 0, result.err
    import json

    summary = json.loads(result.out)
    alternatives = summary["alternative_cycles"]
    assert summary["total_cycles"] == alternatives["scheduled"] < alternatives["unscheduled"]
    assert summary["counters"]["idle"] > 0 and summary["data"] == "trace"


# --- configuration ---------------------------------------------------------------------------

def test_defaults_and_modes():
    assert SWISOptions().mode == "fixed" and SWISOptions().fixed_shifts == 3
    assert SWISOptions(max_shifts=4).mode == "threshold"
    assert SWISOptions(max_shifts=4).threshold == 0.0
    assert SWISOptions(max_shifts=4, bit_budget=2.0).mode == "budget"
    arch = api.load_arch("os_sa_16x16", ["pe.type=swis"])
    assert arch.pe.fixed_shifts == 3


@pytest.mark.parametrize(("sets", "match"), [
    (["pe.max_shifts=4"], r"arch\.pe: pe\.max_shifts cannot be combined with pe\.shifts"),
    (["pe.shifts=null", "pe.bit_budget=2"], r"pe\.bit_budget needs pe\.max_shifts"),
    (["pe.shifts=null", "pe.max_shifts=4", "pe.error_threshold=3", "pe.bit_budget=2"],
     r"pe\.error_threshold and pe\.bit_budget are exclusive"),
    (["pe.shifts=9"], r"arch\.pe\.shifts: expected an integer in 1\.\.8"),
    (["pe.shifts=null", "pe.max_shifts=4", "pe.bit_budget=0.5"], r"arch\.pe\.bit_budget"),
    (["pe.shifts=null", "pe.max_shifts=4", "pe.error_threshold=-1"],
     r"arch\.pe\.error_threshold"),
    (["pe.group_size=0"], r"arch\.pe\.group_size"),
    (["pe.schedule=maybe"], r"arch\.pe\.schedule"),
])
def test_bad_combinations_name_the_key(sets, match):
    with pytest.raises(ConfigError, match=match):
        api.load_arch("swis_g8_n3_16x16", sets)


def test_shipped_swis_configs():
    fixed = api.load_arch("swis_g8_n3_16x16").pe
    assert (fixed.type, fixed.group_size, fixed.fixed_shifts, fixed.mode) == ("swis", 8, 3,
                                                                             "fixed")
    variable = api.load_arch("swis_variable_16x16").pe
    assert variable.mode == "threshold" and variable.max_shifts == 4
    assert api.load_arch("swis_g8_n3_32x32").array.cols == 32


# --- per-column-fold timing ------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 30), n=st.integers(1, 40), groups=st.integers(1, 3),
       rows=st.integers(1, 9), cols=st.integers(1, 9),
       convention=st.sampled_from(["native", "scalesim"]))
def test_equal_column_fold_steps_reproduce_the_plain_timing(m, k, n, groups, rows, cols,
                                                            convention):
    from simulator.workloads.layers import GemmShape

    gemm = GemmShape(m=m, k=k, n=n, groups=groups)
    plain = fold_timing(gemm, rows, cols, "os", convention, k)
    steps = np.full((groups, -(-n // cols)), k)
    varied = fold_timing(gemm, rows, cols, "os", convention, 0, steps)
    assert (varied.folds, varied.steps_per_fold, varied.cycles_per_fold,
            varied.compute_cycles) == (plain.folds, plain.steps_per_fold,
                                       plain.cycles_per_fold, plain.compute_cycles)
    assert varied.mapping_efficiency == pytest.approx(plain.mapping_efficiency, rel=1e-12)
    assert varied.compute_utilization == pytest.approx(plain.compute_utilization, rel=1e-12)


def test_column_fold_steps_by_hand():
    from simulator.workloads.layers import GemmShape

    # M = 5 on 2 rows: 3 row folds; N = 3 on 2 cols: column folds of 2 and 1 filters taking
    # 4 and 7 steps. native: 3 * ((4 + 2*2 + 2 - 2) + (7 + 4)) = 3 * (8 + 11) = 57.
    gemm = GemmShape(m=5, k=10, n=3)
    timing = fold_timing(gemm, 2, 2, "os", "native", 0, np.array([[4, 7]]))
    assert (timing.folds, timing.compute_cycles, timing.steps_per_fold,
            timing.cycles_per_fold) == (6, 57, 7, 11)
    # Busy PE-steps over PE-cycles: (5*2*4 + 5*1*7) / (3 * 4 * (4 + 2 + 7 + 2)).
    assert timing.compute_utilization == pytest.approx(75 / 180)
    scalesim = fold_timing(gemm, 2, 2, "os", "scalesim", 0, np.array([[4, 7]]))
    assert scalesim.compute_cycles == 3 * ((4 + 2) + (7 + 2)) - 1
    with pytest.raises(ValueError, match="shape"):
        fold_timing(gemm, 2, 2, "os", "native", 0, np.array([[4]]))
    with pytest.raises(ValueError, match="OS"):
        fold_timing(gemm, 2, 2, "ws", "native", 0, np.array([[4, 7]]))
