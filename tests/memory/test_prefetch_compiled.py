"""The compiled memory schedule of a prefetch chain (simulator/kernels/chain.py) against
SimPy's processes (simulator/memory/prefetch.py) and the plain-loop twin of
tests/memory/naive_prefetch.py: every time, claim, window and DRAM count, on random chains
with a fixed bandwidth, with DRAM presets (refresh reaches some transfers) and on the
shipped chips' whole runs (docs/performance.md, "The memory schedule, compiled")."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from naive_prefetch import naive_chain
from test_prefetch import TIMES, _absolute, chains

from simulator import api
from simulator.config.dram import dram_spec
from simulator.errors import SimulationError
from simulator.memory import Dram
from simulator.memory import prefetch_compiled as compiled
from simulator.memory.dram import DramDevice
from simulator.memory.prefetch import PrefetchChain


def _run(programs, schedule, monkeypatch, dram, offset=0, mode="all"):
    """The chain on a fresh environment from cycle ``offset``, by ``schedule``."""
    monkeypatch.setenv("SASIM_SCHEDULE", schedule)
    env = simpy.Environment()
    if offset:
        env.run(until=offset)
    chain = PrefetchChain(env, mode)
    drams = [dram() for _ in programs]
    for program, layer_dram in zip(programs, drams):
        chain.add(program, layer_dram)
    used = compiled.usable(chain)
    schedules = chain.finish()
    return env.now, chain.origins(), schedules, used


def _same(mine, theirs):
    """Two chains' results: the same in every figure (claims in time order: a cycle's
    claims and frees may be logged in another order)."""
    (end, origins, schedules, _), (end2, origins2, schedules2, _) = mine, theirs
    assert end == end2
    assert origins == origins2
    for i, (a, b) in enumerate(zip(schedules, schedules2)):
        for key in TIMES:
            assert getattr(a, key).tolist() == getattr(b, key).tolist(), (i, key)
        assert (a.elapsed, a.window) == (b.elapsed, b.window), i
        for x, y in zip(a.claims, b.claims):
            assert sorted(map(tuple, x.tolist())) == sorted(map(tuple, y.tolist())), i
        assert a.peak == b.peak, i
        assert a.dram == b.dram, i


@settings(max_examples=150, deadline=None)
@given(chains(), st.sampled_from([None, 0.5, 1.0, 3.0]), st.sampled_from([0, 0, 5]),
       st.sampled_from([0, 7]))
def test_compiled_chain_equals_the_processes(programs, bandwidth, latency, offset):
    with pytest.MonkeyPatch.context() as monkeypatch:
        mine = _run(programs, "compiled", monkeypatch, lambda: Dram(bandwidth, latency), offset)
        theirs = _run(programs, "simpy", monkeypatch, lambda: Dram(bandwidth, latency), offset)
    assert mine[3] and not theirs[3]
    _same(mine, theirs)
    twin = naive_chain(programs, "all", bandwidth, latency)
    assert mine[0] == offset + twin["end"]
    for i, (schedule, origin) in enumerate(zip(mine[2], mine[1])):
        for key in TIMES:
            assert _absolute(getattr(schedule, key), origin - offset) == \
                twin["layers"][i][key], (i, key)


@settings(max_examples=80, deadline=None)
@given(chains(), st.sampled_from(["ddr4_3200", "hbm2e", "lpddr5_6400"]),
       st.sampled_from([0, 5]), st.sampled_from([100.0, 1000.0]),
       st.sampled_from([0, 3_000, 123_457]))
def test_compiled_chain_with_a_dram_device_equals_the_processes(programs, preset, latency,
                                                                clock, offset):
    """A DRAM preset: a transfer's cycles depend on its start (a refresh reaches some: the
    device works those out), and each layer's device counts its own transfers."""
    spec = dram_spec(preset)
    with pytest.MonkeyPatch.context() as monkeypatch:
        mine = _run(programs, "compiled", monkeypatch,
                    lambda: Dram(None, latency, DramDevice(spec, clock)), offset)
        theirs = _run(programs, "simpy", monkeypatch,
                      lambda: Dram(None, latency, DramDevice(spec, clock)), offset)
    assert mine[3] and not theirs[3]
    _same(mine, theirs)


def test_the_chains_the_twin_does_not_take(monkeypatch):
    """``weights``, a shared link and ``SASIM_SCHEDULE=simpy`` stay with the processes."""
    from simulator.engine import ChannelLink

    monkeypatch.setenv("SASIM_SCHEDULE", "compiled")
    env = simpy.Environment()
    assert not compiled.usable(PrefetchChain(env, "all"))  # no layers
    program = _programs()[0]
    for chain in (PrefetchChain(env, "weights"), PrefetchChain(env, "all", ChannelLink(env))):
        chain.add(program, Dram(1.0, 0))
        assert not compiled.usable(chain)
    chain = PrefetchChain(env, "all")
    chain.add(program, Dram(1.0, 0))
    assert compiled.usable(chain)
    chain.add(program, Dram(1.0, 0, DramDevice(dram_spec("hbm2e"), 1000.0)))
    assert not compiled.usable(chain)  # one DRAM timing for the chain
    monkeypatch.setenv("SASIM_SCHEDULE", "simpy")
    chain = PrefetchChain(env, "all")
    chain.add(program, Dram(1.0, 0))
    assert not compiled.usable(chain)


def _programs():
    from simulator.hw.timing import fold_timing
    from simulator.memory import plan_layer

    workload = api.load_workload("resnet18")
    arch = api.load_arch("os_sa_16x16")
    out = []
    for layer in workload.layers[:3]:
        timing = fold_timing(layer.gemm, 16, 16, "os", "native", layer.gemm.k)
        out.append(plan_layer(layer, 16, 16, "os", timing.fold_cycles, arch.memory))
    return out


def test_a_deadlock_is_an_error(monkeypatch):
    """A program that claims more than a buffer holds never finishes: both say so."""
    program = _programs()[0]
    tight = dataclasses.replace(program, capacity=program.capacity._replace(
        ifmap=int(program.load[:, 0].max()) - 1))
    for schedule in ("compiled", "simpy"):
        monkeypatch.setenv("SASIM_SCHEDULE", schedule)
        chain = PrefetchChain(simpy.Environment(), "all")
        chain.add(tight, Dram(1.0, 0))
        with pytest.raises(SimulationError, match="deadlocked"):
            chain.finish()


@pytest.mark.parametrize("arch", ["sysmt_4t_16x16", "os_sa_32x32", "sparq_5opt_16x16"])
def test_whole_runs_are_the_same(arch, monkeypatch):
    """ResNet-18 on shipped chips (bounded buffers, LPDDR5): the same report either way."""
    workload = api.load_workload("resnet18")
    reports = []
    for schedule in ("compiled", "simpy"):
        monkeypatch.setenv("SASIM_SCHEDULE", schedule)
        result = api.simulate(api.load_arch(arch), workload, functional=False, timeline=True)
        reports.append((json.dumps(result.summary(), sort_keys=True), result.timeline))
        assert sum(layer.stall_cycles for layer in result.layers) > 0  # memory shapes it
    (mine, timeline), (theirs, reference) = reports
    assert mine == theirs
    for a, b in zip(timeline, reference):
        assert (a.origin, a.elapsed) == (b.origin, b.elapsed)
        for key in TIMES:
            assert np.array_equal(getattr(a, key), getattr(b, key)), (a.name, key)


def test_a_wrong_schedule_name_is_refused(cli, monkeypatch):
    monkeypatch.setenv("SASIM_SCHEDULE", "fast")
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--timing-only")
    assert result.status == 2
    assert result.err.count("\n") == 1 and "SASIM_SCHEDULE='fast'" in result.err
    assert "Traceback" not in result.err
