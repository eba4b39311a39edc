"""Cross-layer prefetch (docs/memory-model.md, "Cross-layer prefetch").

The engine's chained layers (simulator/memory/prefetch.py) against the plain-loop twin of
tests/memory/naive_prefetch.py on random 2-3 layer programs, cycle for cycle; the shared
buffers' levels within capacity; ``none`` is the layers run one at a time; whole runs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import simpy
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from memory_cases import BUFFER_KIB, layers
from naive_prefetch import naive_chain

from simulator import api
from simulator.config.arch import MemoryConfig
from simulator.errors import SimulationError
from simulator.hw.timing import fold_timing
from simulator.memory import Dram, plan_layer, run_layer
from simulator.memory.prefetch import PrefetchChain

TIMES = ("start", "end", "load_start", "load_end", "store_start", "store_end")


@st.composite
def chains(draw, bounded: bool = True):
    """2-3 random layers planned on one array and one memory (double-buffered)."""
    sizes = BUFFER_KIB if bounded else st.just(None)
    memory = MemoryConfig(
        ifmap_kib=draw(sizes), filter_kib=draw(sizes), ofmap_kib=draw(sizes),
        loop_order=draw(st.sampled_from(["column_folds_outer", "row_folds_outer", "auto"])),
        output_bits=draw(st.sampled_from([None, 8, 16])),
        partial_sum_bits=draw(st.sampled_from([8, 32])))
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dataflow = draw(st.sampled_from(["os", "ws", "is"]))
    programs = []
    for i in range(draw(st.integers(2, 3))):
        layer = dataclasses.replace(draw(layers()), name=f"L{i}")
        timing = fold_timing(layer.gemm, rows, cols, dataflow, "native", layer.gemm.k)
        assume(timing.folds <= 60)
        if draw(st.booleans()):
            cycles = np.full(timing.folds, timing.cycles_per_fold, dtype=np.int64)
        else:
            cycles = np.asarray(draw(st.lists(st.integers(1, 40), min_size=timing.folds,
                                              max_size=timing.folds)), dtype=np.int64)
        try:
            programs.append(plan_layer(layer, rows, cols, dataflow, cycles, memory))
        except SimulationError:
            assume(False)
    return programs


def _chain(programs, mode, bandwidth, latency, offset=0):
    env = simpy.Environment()
    if offset:
        env.run(until=offset)
    chain = PrefetchChain(env, mode)
    for program in programs:
        chain.add(program, Dram(bandwidth, latency))
    schedules = chain.finish()
    return env, chain, schedules


def _absolute(values, origin):
    return [v + origin if v >= 0 else -1 for v in values.tolist()]


def _levels_within(chain, capacity):
    """Replay every buffer's shared log: the level never exceeds the capacity (frees before
    claims at a cycle) and ends at zero."""
    for b, log in enumerate(chain.levels()):
        level = np.cumsum(log[:, 1]) if len(log) else np.zeros(1, dtype=np.int64)
        assert level.min() >= 0
        if capacity[b] is not None:
            assert level.max() <= capacity[b], (b, int(level.max()), capacity[b])
        assert int(log[:, 1].sum()) == 0


@settings(max_examples=120, deadline=None)
@given(chains(), st.sampled_from(["all", "weights"]),
       st.sampled_from([None, 0.5, 1.0, 3.0]), st.sampled_from([0, 0, 5]),
       st.sampled_from([0, 7]))
def test_chain_matches_the_naive_twin(programs, mode, bandwidth, latency, offset):
    env, chain, schedules = _chain(programs, mode, bandwidth, latency, offset)
    twin = naive_chain(programs, mode, bandwidth, latency)
    assert env.now == offset + twin["end"]
    for i, (schedule, origin, theirs) in enumerate(zip(schedules, chain.origins(),
                                                       twin["layers"])):
        assert origin == offset + theirs["origin"], i
        for key in TIMES:
            mine = _absolute(getattr(schedule, key), origin - offset)
            assert mine == theirs[key], (i, key)
        lo, hi = schedule.window
        assert (lo + origin - offset, hi + origin - offset) == twin["windows"][i]
        for b in range(3):
            mine = sorted((t + origin - offset, d) for t, d in schedule.claims[b].tolist())
            assert mine == sorted(theirs["claims"][b]), (i, b)
    _levels_within(chain, programs[0].capacity)
    if mode == "weights":  # inputs only once the previous layer has ended
        for i, program in enumerate(programs[1:], 1):
            moved = program.channel_load.sum(axis=1) - program.channel_load[:, 1]
            ends = _absolute(schedules[i].load_end, chain.origins()[i] - offset)
            done = twin["layers"][i - 1]["done"]
            assert all(end >= done for end, rest in zip(ends, moved.tolist()) if rest)
    # the windows tile the chain's time
    assert sum(s.window[1] - s.window[0] for s in schedules) == env.now - offset


@settings(max_examples=40, deadline=None)
@given(chains(), st.sampled_from(["all", "weights"]),
       st.sampled_from(["ddr4_3200", "hbm2e", "lpddr5_6400"]), st.sampled_from([0, 5]),
       st.sampled_from([100.0, 1000.0]))
def test_chain_with_a_dram_device_matches_the_naive_twin(programs, mode, preset, latency,
                                                         clock):
    """With a DRAM preset (transfer cycles depend on when they start: refresh), and each
    layer's DRAM counts its own transfers."""
    from simulator.config.dram import dram_spec
    from simulator.memory.dram import DramDevice

    spec = dram_spec(preset)
    env = simpy.Environment()
    chain = PrefetchChain(env, mode)
    for program in programs:
        chain.add(program, Dram(None, latency, DramDevice(spec, clock)))
    schedules = chain.finish()
    twin = naive_chain(programs, mode, None, latency, lambda: DramDevice(spec, clock))
    assert env.now == twin["end"]
    for i, (schedule, origin, theirs) in enumerate(zip(schedules, chain.origins(),
                                                       twin["layers"])):
        for key in TIMES:
            assert _absolute(getattr(schedule, key), origin) == theirs[key], (i, key)
        counts = twin["devices"][i].counts
        for key in ("activates", "read_bursts", "write_bursts"):
            assert schedule.dram[key] == getattr(counts, key), (i, key)
    _levels_within(chain, programs[0].capacity)


@settings(max_examples=60, deadline=None)
@given(chains(), st.sampled_from([None, 1.0]), st.sampled_from([0, 5]))
def test_first_layer_runs_as_alone_until_its_last_unit(programs, bandwidth, latency):
    """With room for every output, the chain's first layer loads and computes exactly as it
    does alone: the next layer's loader starts after its own has ended, so later layers
    only share the link with its write-backs (which, with a bounded output buffer, could
    hold up its units)."""
    programs = [dataclasses.replace(p, capacity=p.capacity._replace(ofmap=None))
                for p in programs]
    _, _, schedules = _chain(programs, "all", bandwidth, latency)
    alone = run_layer(simpy.Environment(), programs[0], Dram(bandwidth, latency),
                      closed_form=False)
    for key in ("start", "end", "load_start", "load_end"):
        assert getattr(schedules[0], key).tolist() == getattr(alone, key).tolist(), key


@settings(max_examples=40, deadline=None)
@given(chains(bounded=False), st.sampled_from([0, 3, 100]))
def test_unbounded_buffers_and_bandwidth_hide_every_first_tile(programs, latency):
    """With unbounded buffers and bandwidth, every layer after the first starts its first
    unit when the previous layer's last unit ends, and no layer stalls more than it does
    inside itself (its stalls alone less its first load's)."""
    _, _, schedules = _chain(programs, "all", None, latency)
    for program, schedule in zip(programs[1:], schedules[1:]):
        if not program.units:
            continue
        lo, _ = schedule.window
        assert int(schedule.start[0]) == lo
        alone = run_layer(simpy.Environment(), program, Dram(None, latency),
                          closed_form=False)
        inside = int(alone.end[-1] - alone.start[0] - program.unit_cycles.sum())
        assert int(schedule.end[-1]) - lo - int(program.unit_cycles.sum()) == inside


# ---------------------------------------------------------------- whole runs (api.simulate)

def _cycles(result):
    return sum(layer.total_cycles for layer in result.layers)


@pytest.fixture(scope="module")
def resnet18():
    return api.load_workload("resnet18")


def test_none_is_each_layer_alone(resnet18):
    """``none`` is the layers run one after another, each alone with empty buffers."""
    arch = api.load_arch("os_sa_16x16", ["memory=ideal", "memory.prefetch=none",
                                         "memory.ifmap_kib=64",
                                         "memory.filter_kib=64", "memory.ofmap_kib=16",
                                         "memory.dram_bandwidth_bytes_per_cycle=8",
                                         "memory.dram_latency_cycles=20"])
    workload = dataclasses.replace(resnet18, layers=resnet18.layers[:4])
    result = api.simulate(arch, workload, functional=False)
    for layer, got in zip(workload.layers, result.layers):
        alone = api.simulate(arch, dataclasses.replace(workload, layers=(layer,)),
                             functional=False).layers[0]
        assert got == alone


#: Every shipped 16x16 design that runs a shape-only ResNet-18 with prefetch: not the trained
#: ZAP one (it needs a trace's predictors) nor the coded one (coded activations run each
#: layer alone, docs/memory-model.md, "Cross-layer prefetch").
ARCHS_16 = sorted(p.stem for p in api.shipped_archs()
                  if p.stem.endswith("16x16") and p.stem not in ("zap_os_sa_16x16",
                                                                  "os_sa_16x16_codec_b6"))


def test_the_16x16_designs_are_many():
    assert len(ARCHS_16) >= 12


@pytest.mark.parametrize("arch", ARCHS_16)
@pytest.mark.parametrize("bandwidth", [None, 32])
def test_resnet18_first_tiles_hidden(resnet18, arch, bandwidth):
    """The judged check: ideal memory, unbounded buffers, latency 100 (and 32 B/cycle):
    with ``all`` no layer but the first waits for its first tile (``prefetch_cycles`` 0),
    and each layer's stalls are its stalls alone less its first tile's and final
    write-back's (the stalls inside a layer are not prefetch's to hide)."""
    sets = ["memory=ideal", "memory.dram_latency_cycles=100"]
    if bandwidth:
        sets.append(f"memory.dram_bandwidth_bytes_per_cycle={bandwidth}")
    none = api.simulate(api.load_arch(arch, sets + ["memory.prefetch=none"]), resnet18,
                        functional=False)
    full = api.simulate(api.load_arch(arch, sets + ["memory.prefetch=all"]), resnet18,
                        functional=False)
    assert full.layers[0].prefetch_cycles == none.layers[0].prefetch_cycles > 0
    if bandwidth is None:
        for alone, got in zip(none.layers[1:], full.layers[1:]):
            assert got.prefetch_cycles == 0, got.name
            assert got.stall_cycles == (alone.stall_cycles - alone.prefetch_cycles
                                        - alone.drain_cycles), got.name
    assert _cycles(full) < _cycles(none)


@pytest.mark.parametrize("overlap", ["false", "true"])
def test_repeated_chains_equal_chains_run_anew(overlap, monkeypatch):
    """A transformer's blocks: chains of the same planned layers run once; every layer's
    figures and timeline equal a run that plans and runs every layer anew (vector layers
    between the chains, beside the next array layer or not)."""
    workload = api.load_workload("gpt2_decode")
    workload = dataclasses.replace(workload, layers=workload.layers[:1 + 14 * 3])
    arch = api.load_arch("os_sa_16x16", ["memory=ideal", "memory.ifmap_kib=64",
                                         "memory.filter_kib=64", "memory.ofmap_kib=16",
                                         "memory.dram_bandwidth_bytes_per_cycle=16",
                                         "memory.dram_latency_cycles=10",
                                         f"vector.overlap={overlap}"])
    run = api.simulate(arch, workload, functional=False, timeline=True)
    monkeypatch.setattr(api, "_REUSE_SHAPES", False)
    anew = api.simulate(arch, workload, functional=False, timeline=True)
    assert run.layers == anew.layers
    for entry, fresh in zip(run.timeline, anew.timeline):
        assert (entry.origin, entry.elapsed) == (fresh.origin, fresh.elapsed)
        for key in TIMES:
            assert (getattr(entry, key) == getattr(fresh, key)).all(), key
    alone = api.simulate(api.load_arch("os_sa_16x16", ["memory=ideal",
        "memory.ifmap_kib=64", "memory.filter_kib=64", "memory.ofmap_kib=16",
        "memory.dram_bandwidth_bytes_per_cycle=16", "memory.dram_latency_cycles=10",
        f"vector.overlap={overlap}", "memory.prefetch=none"]), workload, functional=False)
    assert run.total_cycles < alone.total_cycles


def test_bounded_resnet18_buffers_stay_within_capacity(resnet18):
    """ResNet-18's first layers planned with 64/64/16 KiB buffers, chained at 8 B/cycle: the
    shared buffers' replayed levels stay within capacity in both modes, and the timeline's
    layer spans (the windows) tile the run."""
    arch = api.load_arch("os_sa_16x16", ["memory=ideal", "memory.ifmap_kib=64",
                                         "memory.filter_kib=64", "memory.ofmap_kib=16"])
    programs = []
    for layer in resnet18.layers[:6]:
        timing = fold_timing(layer.gemm, 16, 16, "os", "native", layer.gemm.k)
        programs.append(plan_layer(layer, 16, 16, "os", timing.fold_cycles, arch.memory))
    for mode in ("weights", "all"):
        env, chain, schedules = _chain(programs, mode, 8.0, 100)
        _levels_within(chain, programs[0].capacity)
        assert max(int(log[:, 1].cumsum().max()) for log in chain.levels()[:2]) > 0
        assert sum(s.window[1] - s.window[0] for s in schedules) == env.now


def test_modes_in_a_whole_run(resnet18):
    """weights sits between none and all, the windows add up to the run, and the timeline
    shows loads before a layer's window."""
    sets = ["memory=ideal", "memory.ifmap_kib=64", "memory.filter_kib=64", "memory.ofmap_kib=16",
            "memory.dram_bandwidth_bytes_per_cycle=8", "memory.dram_latency_cycles=100"]
    workload = dataclasses.replace(resnet18, layers=resnet18.layers[:8])
    runs = {mode: api.simulate(api.load_arch("os_sa_16x16", sets + [f"memory.prefetch={mode}"]),
                               workload, functional=False, timeline=True)
            for mode in ("none", "weights", "all")}
    assert (runs["all"].total_cycles <= runs["weights"].total_cycles
            < runs["none"].total_cycles)
    for result in runs.values():
        spans = [(t.origin, t.origin + t.elapsed) for t in result.timeline]
        assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert spans[-1][1] == result.total_cycles
    early = [t for t in runs["all"].timeline[1:] if (t.load_start[:2] < 0).any()]
    assert early  # prefetched loads sit before their layer's window
    # the default is all in the native convention, none in SCALE-Sim's
    assert api.simulate(api.load_arch("os_sa_16x16", sets), workload,
                        functional=False).layers == runs["all"].layers
    scalesim = {mode: api.simulate(api.load_arch("os_sa_16x16", sets + [
        "timing.convention=scalesim", *([f"memory.prefetch={mode}"] if mode else [])]),
        workload, functional=False) for mode in (None, "none", "all")}
    assert scalesim[None].layers == scalesim["none"].layers != scalesim["all"].layers
