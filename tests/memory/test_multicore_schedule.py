"""Cores sharing one DRAM link (docs/memory-model.md, "Multi-core") against their plain-loop
twin (tests/memory/naive_multicore.py: an event list of link requests, no SimPy): every
unit's start and end and every transfer, cycle for cycle, on random tile programs, for the
cores of one layer and for a pipeline; the link never moves two transfers at once."""

from __future__ import annotations

import dataclasses

import numpy as np
import simpy
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from memory_cases import BUFFER_KIB, cases, layers
from naive_multicore import naive_cores

from simulator.config.arch import MemoryConfig
from simulator.engine import ChannelLink
from simulator.hw.timing import fold_timing
from simulator.errors import SimulationError
from simulator.memory import Dram, plan_layer, start_layer
from simulator.memory.plan import TileProgram
from simulator.multicore import run_pipeline
from simulator.operands import PerBuffer

BANDWIDTHS = st.sampled_from([None, 0.5, 1.0, 3.0])
LATENCIES = st.sampled_from([0, 0, 3])
KEYS = ("start", "end", "load_start", "load_end", "store_start", "store_end")


def _program(case):
    try:
        return plan_layer(case.layer, case.rows, case.cols, case.dataflow, case.fold_cycles,
                          case.memory)
    except SimulationError:
        assume(False)  # buffers too small for this layer (tested in test_plan.py)


def _absolute(schedule, origin: int) -> dict[str, list[int]]:
    """A schedule's times from the run's start (-1 stays -1: no transfer)."""
    return {key: [t + origin if t >= 0 else -1 for t in getattr(schedule, key).tolist()]
            for key in KEYS}


def _assert_link_never_overlaps(timelines) -> None:
    spans = sorted((s, e) for times in timelines
                   for s, e in [*zip(times["load_start"], times["load_end"]),
                                *zip(times["store_start"], times["store_end"])] if s >= 0)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, "two transfers on the link at once"


@settings(max_examples=120, deadline=None)
@given(st.lists(cases(), min_size=2, max_size=3), BANDWIDTHS, LATENCIES)
def test_the_cores_of_a_layer_match_the_naive_twin(drawn, bandwidth, latency):
    programs = [_program(case) for case in drawn]
    twin, ambiguous = naive_cores([[[p]] for p in programs], bandwidth, latency,
                                  pipeline=False)
    assume(not ambiguous)
    env = simpy.Environment()
    link, dram = ChannelLink(env), Dram(bandwidth, latency)
    started = [start_layer(env, p, dram, link) for p in programs]
    schedules = [s.finish() for s in started]
    mine = [_absolute(s, 0) for s in schedules]
    for core, times in enumerate(mine):
        theirs = twin[core, 0, 0]
        for key in KEYS:
            assert times[key] == theirs[key], (core, key)
        assert schedules[core].elapsed == theirs["finish"]
    _assert_link_never_overlaps(mine)


@st.composite
def pipelines(draw):
    """Stages of one or two layers' programs, the same layers for every image."""
    stages = draw(st.integers(2, 3))
    images = draw(st.integers(1, 3))
    layers = [[draw(cases()) for _ in range(draw(st.integers(1, 2)))] for _ in range(stages)]
    return [[[_program(case) for case in stage] for _ in range(images)] for stage in layers]


@settings(max_examples=60, deadline=None)
@given(pipelines(), BANDWIDTHS, LATENCIES)
def test_a_pipeline_matches_the_naive_twin(programs, bandwidth, latency):
    twin, ambiguous = naive_cores(programs, bandwidth, latency, pipeline=True)
    assume(not ambiguous)
    env = simpy.Environment()
    runs = run_pipeline(env, programs, Dram(bandwidth, latency), ChannelLink(env))
    assert set(runs) == set(twin)
    mine = []
    for key, (started, origin) in runs.items():
        schedule = started.finish()
        times = _absolute(schedule, origin)
        mine.append(times)
        for name in KEYS:
            assert times[name] == twin[key][name], (key, name)
        assert origin + schedule.elapsed == twin[key]["finish"]
    _assert_link_never_overlaps(mine)
    # stage c starts image i only after stage c - 1 has finished it
    for (core, image, k), (started, origin) in runs.items():
        if core and k == 0:
            before = max(o + s.finish().elapsed for (c, i, _), (s, o) in runs.items()
                         if c == core - 1 and i == image)
            assert origin >= before


def test_a_hand_computed_two_core_schedule():
    """Two one-unit programs loading 10 bytes on a 1 byte/cycle link: core 1's load waits for
    core 0's; each computes 5 cycles, then writes back 4 bytes when the link is free."""
    program = TileProgram(
        name="L", unit_cycles=_ints([5]), unit_fold=_ints([0]), load=_ints([[10, 0, 0]]),
        load_after=_ints([-1]), release=_ints([[10, 0]]), out_alloc=_ints([4]),
        loader_claims_outputs=False, store=_ints([[4, 0]]), store_free=_ints([4]),
        capacity=PerBuffer(None, None, None), double_buffering=True, folds=1,
        loop_order="column_folds_outer", reuse={}, buffer_reads=PerBuffer(0, 0, 0),
        buffer_writes=PerBuffer(0, 0, 0))
    env = simpy.Environment()
    link, dram = ChannelLink(env), Dram(1.0, 0)
    started = [start_layer(env, program, dram, link) for _ in range(2)]
    first, second = (s.finish() for s in started)
    assert (first.load_start[0], first.load_end[0]) == (0, 10)
    assert (second.load_start[0], second.load_end[0]) == (10, 20)
    assert (first.start[0], first.end[0]) == (10, 15)
    assert (second.start[0], second.end[0]) == (20, 25)
    assert (first.store_start[0], first.store_end[0]) == (20, 24)  # the link is busy until 20
    assert (second.store_start[0], second.store_end[0]) == (25, 29)
    twin, _ = naive_cores([[[program]], [[program]]], 1.0, 0, pipeline=False)
    assert twin[1, 0, 0]["store_end"] == [29]


def _ints(values):
    return np.asarray(values, dtype=np.int64)


@st.composite
def core_chains(draw):
    """2-3 cores, each a chain of 1-3 random programs, all planned on one array and one
    memory (every core has buffers of the same sizes)."""
    memory = MemoryConfig(
        ifmap_kib=draw(BUFFER_KIB), filter_kib=draw(BUFFER_KIB), ofmap_kib=draw(BUFFER_KIB),
        loop_order=draw(st.sampled_from(["column_folds_outer", "row_folds_outer", "auto"])),
        output_bits=draw(st.sampled_from([None, 8, 16])))
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dataflow = draw(st.sampled_from(["os", "ws", "is"]))
    cores = []
    for _ in range(draw(st.integers(2, 3))):
        programs = []
        for i in range(draw(st.integers(1, 3))):
            layer = dataclasses.replace(draw(layers()), name=f"L{i}")
            timing = fold_timing(layer.gemm, rows, cols, dataflow, "native", layer.gemm.k)
            assume(timing.folds <= 40)
            cycles = np.asarray(draw(st.lists(st.integers(1, 30), min_size=timing.folds,
                                              max_size=timing.folds)), dtype=np.int64)
            try:
                programs.append(plan_layer(layer, rows, cols, dataflow, cycles, memory))
            except SimulationError:
                assume(False)
        cores.append(programs)
    return cores


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(core_chains(), st.sampled_from(["all", "weights"]),
       st.sampled_from([None, 0.5, 1.0, 3.0]), st.sampled_from([0, 0, 5]), st.booleans())
def test_chains_of_cores_on_one_link_match_the_naive_twin(cores, mode, bandwidth, latency,
                                                         gate_all):
    """Cross-layer prefetch within each core (docs/memory-model.md, "Multi-core"): every
    core's consecutive layers as one chain on its own buffers, all chains on one link;
    with ``gate_all`` a layer's input waits for every core's previous layer (``weights``)."""
    from naive_prefetch import naive_chains

    from simulator.memory.prefetch import PrefetchChain

    if gate_all:  # every core runs the same layers (each its share)
        cores = [programs[:min(map(len, cores))] for programs in cores]
    twin, ambiguous = naive_chains(cores, mode, bandwidth, latency, gate_all=gate_all)
    assume(not ambiguous)
    env = simpy.Environment()
    link = ChannelLink(env)
    chains = [PrefetchChain(env, mode, link) for _ in cores]
    for chain, programs in zip(chains, cores):
        for i, program in enumerate(programs):
            gate = None
            if gate_all and i:
                gate = (lambda i=i: env.all_of([c.runs[i - 1].done for c in chains]))
            chain.add(program, Dram(bandwidth, latency), inputs_from=gate)
    env.run(until=env.all_of([chain.start_processes() for chain in chains]))
    timelines = []
    for core, (chain, theirs) in enumerate(zip(chains, twin)):
        schedules = chain.collect()
        assert max(chain.origins()[-1] + schedules[-1].elapsed, 0) <= env.now
        for i, (schedule, origin) in enumerate(zip(schedules, chain.origins())):
            layer = theirs["layers"][i]
            assert origin == layer["origin"], (core, i)
            times = _absolute(schedule, origin)
            for key in KEYS:
                assert times[key] == layer[key], (core, i, key)
            lo, hi = schedule.window
            assert (lo + origin, hi + origin) == theirs["windows"][i], (core, i)
            timelines.append(times)
        for b, log in enumerate(chain.levels()):  # each core's buffers within capacity
            level = np.cumsum(log[:, 1]) if len(log) else np.zeros(1, dtype=np.int64)
            capacity = cores[core][0].capacity[b]
            assert capacity is None or level.max() <= capacity
    assert env.now == max(t["end"] for t in twin)
    if mode == "all":  # (weights: a unit's load span holds its early weights and the rest)
        _assert_link_never_overlaps(timelines)


@st.composite
def chained_pipelines(draw):
    """Stages of 1-2 random programs on one memory, the same for every image."""
    cores = draw(core_chains())
    images = draw(st.integers(1, 2))
    return [[list(programs) for _ in range(images)] for programs in cores]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(chained_pipelines(), st.sampled_from(["all", "weights"]),
       st.sampled_from([None, 0.5, 1.0, 3.0]), st.sampled_from([0, 0, 5]))
def test_a_pipeline_of_prefetch_chains_matches_the_naive_twin(programs, mode, bandwidth,
                                                              latency):
    """A pipeline with cross-layer prefetch: each stage's layers for one image are one chain
    on the stage's buffers, all on one link; stage c's chain for image i starts when stage
    c - 1 has ended image i and stage c has ended image i - 1."""
    from naive_prefetch import naive_chains

    images = len(programs[0])
    chains = [programs[c][i] for c in range(len(programs)) for i in range(images)]
    after = [[d for d in ((c - 1) * images + i if c else None, c * images + i - 1 if i else None)
              if d is not None] for c in range(len(programs)) for i in range(images)]
    twin, ambiguous = naive_chains(chains, mode, bandwidth, latency, after=after)
    assume(not ambiguous)
    event(f"{images} images, bandwidth {bandwidth}")
    env = simpy.Environment()
    runs = run_pipeline(env, programs, Dram(bandwidth, latency), ChannelLink(env), mode=mode)
    assert env.now == max(chain["end"] for chain in twin)
    for (core, image, k), (started, origin) in runs.items():
        theirs = twin[core * images + image]
        schedule = started.finish()
        assert origin == theirs["layers"][k]["origin"], (core, image, k)
        times = _absolute(schedule, origin)
        for key in KEYS:
            assert times[key] == theirs["layers"][k][key], (core, image, k, key)
        lo, hi = schedule.window
        assert (lo + origin, hi + origin) == theirs["windows"][k], (core, image, k)


def _run_chains(cores, mode, bandwidth, latency, gate_all, lazy):
    """The chains of :func:`test_chains_of_cores_on_one_link_match_the_naive_twin`; with
    ``lazy`` every program after each core's first is handed over as a function, taken when
    the engine first needs it (docs/performance.md): what each run recorded, and when."""
    from simulator.memory.prefetch import PrefetchChain

    env = simpy.Environment()
    link = ChannelLink(env)
    chains = [PrefetchChain(env, mode, link) for _ in cores]
    taken: list[tuple[int, int, int]] = []  # (core, layer, cycle) as the programs are taken
    for core, (chain, programs) in enumerate(zip(chains, cores)):
        for i, program in enumerate(programs):
            gate = None
            if gate_all and i:
                gate = (lambda i=i: env.all_of([c.runs[i - 1].done for c in chains]))

            def source(program=program, core=core, i=i):
                taken.append((core, i, env.now))
                return program

            chain.add(source if lazy else program, Dram(bandwidth, latency), inputs_from=gate)
    env.run(until=env.all_of([chain.start_processes() for chain in chains]))
    out = []
    for chain in chains:
        for schedule, origin in zip(chain.collect(), chain.origins()):
            out.append((origin, _absolute(schedule, origin), schedule.window,
                        [c.tolist() for c in schedule.claims]))
    return env.now, out, taken


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(core_chains(), st.sampled_from(["all", "weights"]),
       st.sampled_from([None, 0.5, 1.0, 3.0]), st.sampled_from([0, 0, 5]), st.booleans())
def test_programs_taken_late_give_the_same_schedule(cores, mode, bandwidth, latency, gate_all):
    """A chained layer whose program is still being prepared when the engine starts (a
    function, taken when the layer is first needed) runs exactly as if it had been given
    at once: same times, claims and windows on every core, with every gate and bandwidth
    (unbounded: transfers of no time). Every program is taken, once."""
    if gate_all:
        cores = [programs[:min(map(len, cores))] for programs in cores]
    end, eager, _ = _run_chains(cores, mode, bandwidth, latency, gate_all, lazy=False)
    end_lazy, lazy, taken = _run_chains(cores, mode, bandwidth, latency, gate_all, lazy=True)
    assert (end_lazy, lazy) == (end, eager)
    assert sorted((core, i) for core, i, _ in taken) == sorted(
        (core, i) for core, programs in enumerate(cores) for i in range(len(programs)))
