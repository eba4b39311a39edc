"""The SimPy engine against its plain-loop twin, and the limits the memory model must obey.

tests/memory/naive_memory.py recomputes every unit's start and end, every transfer and every
buffer claim with a plain loop in channel order; the engine (three SimPy processes around a
sequenced channel and three buffers) must agree cycle for cycle on random layers, arrays,
dataflows, buffer sizes, loop orders, bandwidths and latencies.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import simpy
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from memory_cases import cases
from naive_memory import naive_timeline

from simulator.errors import SimulationError
from simulator.memory import Dram, peak_occupancy, plan_layer, roofline, run_layer

BANDWIDTHS = st.sampled_from([None, 0.3, 1.0, 2.5, 8.0])
LATENCIES = st.sampled_from([0, 0, 4])


def _program(case, **memory):
    config = dataclasses.replace(case.memory, **memory)
    try:
        return plan_layer(case.layer, case.rows, case.cols, case.dataflow, case.fold_cycles,
                          config)
    except SimulationError:
        assume(False)  # buffers too small for this layer (tested in test_plan.py)


def _run(program, bandwidth, latency=0, offset=0, closed_form=True):
    env = simpy.Environment()
    if offset:
        env.run(until=offset)  # a layer that starts late: times are relative to its start
    return run_layer(env, program, Dram(bandwidth, latency), closed_form=closed_form)


@settings(max_examples=150, deadline=None)
@given(cases(), BANDWIDTHS, LATENCIES, st.sampled_from([0, 13]))
def test_engine_matches_the_naive_twin(case, bandwidth, latency, offset):
    program = _program(case)
    engine = _run(program, bandwidth, latency, offset, closed_form=False)
    twin = naive_timeline(program, bandwidth, latency)
    for key in ("start", "end", "load_start", "load_end", "store_start", "store_end"):
        assert getattr(engine, key).tolist() == twin[key], key
    assert engine.elapsed == twin["elapsed"]
    for buffer in range(3):
        mine = engine.claims[buffer]
        theirs = np.asarray(twin["claims"][buffer], dtype=np.int64).reshape(-1, 2)
        assert sorted(map(tuple, mine.tolist())) == sorted(map(tuple, theirs.tolist()))
        assert engine.peak[buffer] == peak_occupancy(theirs)
        if program.capacity[buffer] is not None:
            assert engine.peak[buffer] <= program.capacity[buffer]
        assert int(mine[:, 1].sum()) == 0  # everything claimed is freed by the end


@settings(max_examples=80, deadline=None)
@given(cases(bounded=False), st.sampled_from([0, 13]))
def test_unbounded_memory_never_stalls(case, offset):
    """No stall, and the closed form run_layer takes in this case is the engine's schedule."""
    program = _program(case)
    engine = _run(program, None, closed_form=False)
    cycles = program.unit_cycles
    assert engine.start.tolist() == (np.cumsum(cycles) - cycles).tolist()
    assert engine.elapsed == int(cycles.sum())
    env = simpy.Environment()
    if offset:
        env.run(until=offset)
    closed = run_layer(env, program, Dram())
    assert env.now == offset + closed.elapsed
    for key in ("start", "end", "load_start", "load_end", "store_start", "store_end"):
        assert getattr(closed, key).tolist() == getattr(engine, key).tolist(), key
    assert closed.elapsed == engine.elapsed
    for mine, theirs in zip(closed.claims, engine.claims):
        assert sorted(map(tuple, mine.tolist())) == sorted(map(tuple, theirs.tolist()))


@settings(max_examples=80, deadline=None)
@given(cases(), BANDWIDTHS, LATENCIES)
def test_cycles_never_beat_the_roofline(case, bandwidth, latency):
    program = _program(case)
    schedule = _run(program, bandwidth, latency)
    dram = int(program.dram_read_bytes.sum() + program.dram_write_bytes.sum())
    bound, _ = roofline(int(program.unit_cycles.sum()), dram, bandwidth)
    assert schedule.elapsed >= bound


@settings(max_examples=60, deadline=None)
@given(cases(), LATENCIES)
def test_starved_dram_approaches_the_roofline(case, latency):
    program = _program(case)
    dram = int(program.dram_read_bytes.sum() + program.dram_write_bytes.sum())
    compute = int(program.unit_cycles.sum())
    assume(dram > 0)
    bandwidth = dram / (200 * (compute + latency * program.units))
    bound, which = roofline(compute, dram, bandwidth)
    elapsed = _run(program, bandwidth, latency).elapsed
    assert which == "memory"
    assert bound <= elapsed <= 1.02 * bound


@settings(max_examples=80, deadline=None)
@given(cases(), st.sampled_from([0.3, 1.0, 2.5, 8.0]), LATENCIES)
def test_more_bandwidth_never_costs_cycles(case, bandwidth, latency):
    program = _program(case)
    slow = _run(program, bandwidth, latency).elapsed
    assert _run(program, 2 * bandwidth, latency).elapsed <= slow
    assert _run(program, None, latency).elapsed <= slow


@settings(max_examples=80, deadline=None)
@given(cases(), BANDWIDTHS, LATENCIES)
def test_double_buffering_never_hurts(case, bandwidth, latency):
    single = _program(case, double_buffering=False)
    double = _program(case, double_buffering=True)
    # Same bytes, same units: double buffering only lets loads and write-backs overlap.
    assert (single.load == double.load).all() and (single.store == double.store).all()
    assert _run(double, bandwidth, latency).elapsed <= _run(single, bandwidth, latency).elapsed


def test_a_hand_computed_schedule():
    """Three folds of 10 cycles at 4 B/cycle, by hand: with double buffering the next fold's
    loads overlap the current fold; loads and write-backs share the channel in order."""
    from simulator.config.arch import MemoryConfig
    from simulator.workloads.layers import Layer

    # A 2x2 OS array; GEMM 2 x 10 x 6: three column folds of (2 x 10) . (10 x 2).
    layer = Layer(name="g", op="gemm", in_channels=10, out_channels=6, batch=2)
    cycles = np.full(3, 10, dtype=np.int64)
    # ifmap: all of A (20 bytes) fits: loaded once; filter: 10 x 2 = 20 bytes per fold.
    program = plan_layer(layer, 2, 2, "os", cycles, MemoryConfig(ifmap_kib=1, filter_kib=0.04))
    assert program.load[:, :2].tolist() == [[20, 20], [0, 20], [0, 20]]
    schedule = _run(program, 4.0)
    # Loads: fold 0's 40 bytes at 0-10; fold 1's weights at 10-15 (there is room for a
    # second weight tile); fold 2's weights need fold 0's tile gone (fold 0 ends at 20) and
    # queue behind fold 0's write-back of 4 bytes (20-21): 21-26.
    assert schedule.load_start.tolist() == [0, 10, 21]
    assert schedule.load_end.tolist() == [10, 15, 26]
    assert schedule.start.tolist() == [10, 20, 30]
    assert schedule.store_start.tolist() == [20, 30, 40]
    assert schedule.elapsed == 41
    assert schedule.peak == (20, 40, 8)
    assert math.isclose(program.dram_read_bytes.sum(), 80)


def test_cycles_and_bytes_must_be_integers():
    from simulator.config.arch import MemoryConfig
    from simulator.workloads.layers import Layer

    layer = Layer(name="g", op="gemm", in_channels=4, out_channels=2, batch=2)
    program = plan_layer(layer, 2, 2, "os", np.full(1, 5, dtype=np.int64), MemoryConfig())
    fractional = dataclasses.replace(program, unit_cycles=program.unit_cycles + 0.5)
    with pytest.raises(TypeError, match="unit_cycles must hold integers"):
        _run(fractional, None)
