"""The memory model through the public API: every PE type, summary totals, defaults."""

from __future__ import annotations

import dataclasses

import pytest

from simulator import api
from simulator.config.arch import ArchConfig, ArrayConfig, MemoryConfig, arch_from_mapping
from simulator.config.files import apply_override, parse_override
from simulator.hw.pe import option_types, pe_types
from simulator.memory import hcm_bit_ops, hcm_bits_moved
from simulator.workloads.layers import Layer, Workload
from simulator.workloads.shapes import layer_from_entry

WORKLOAD = """schema_version: 1
name: small
layers:
  - {name: c1, op: conv2d, in_channels: 3, out_channels: 24, input_size: [12, 12], kernel_size: 3, padding: 1}
  - {name: c2, op: conv2d, in_channels: 24, out_channels: 40, input_size: [12, 12], kernel_size: 3, stride: 2, padding: 1}
  - {name: dw, op: conv2d, in_channels: 40, out_channels: 40, groups: 40, input_size: [6, 6], kernel_size: 3, padding: 1}
  - {name: pw, op: conv2d, in_channels: 40, out_channels: 16, input_size: [6, 6], kernel_size: 1, stride: 2}
  - {name: fc, op: linear, in_features: 144, out_features: 10}
"""

BOUNDED = ("memory.ifmap_kib=0.5", "memory.filter_kib=0.5", "memory.ofmap_kib=0.25",
           "memory.dram_bandwidth_bytes_per_cycle=2", "memory.dram_latency_cycles=20")


@pytest.fixture
def workload(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(WORKLOAD)
    return api.load_workload(path)


def _arch(pe_type: str, *overrides: str) -> ArchConfig:
    """A 4x4 OS array with the PE type's default options and ``--set``-style overrides."""
    data = {"schema_version": 1, "name": pe_type, "array": {"rows": 4, "cols": 4},
            "pe": {"type": pe_type}}
    for text in overrides:
        key, value = parse_override(text)
        data = apply_override(data, key, value)
    return arch_from_mapping(data, "test", option_types())


@pytest.mark.parametrize("pe_type", sorted(pe_types()))
def test_every_pe_type_runs_through_the_engine(pe_type, workload):
    unbounded = api.simulate(_arch(pe_type), workload, functional=False)
    # each layer alone (the default prefetch is checked below)
    bounded = api.simulate(_arch(pe_type, *BOUNDED, "memory.prefetch=none"), workload,
                           functional=False)
    for free, tight in zip(unbounded.layers, bounded.layers):
        # Unbounded memory: the array's cycles alone.
        assert free.stall_cycles == 0 and free.total_cycles == free.compute_cycles
        # Bounded: the same compute, stalls on top, never below either bound.
        assert tight.compute_cycles == free.compute_cycles
        assert tight.total_cycles >= max(tight.roofline_cycles, tight.hcm_cycles)
        assert tight.prefetch_cycles > 0 and tight.stall_cycles >= tight.prefetch_cycles
        assert tight.dram_ofmap_write_bytes == free.dram_ofmap_write_bytes
        assert tight.units >= tight.folds
    assert bounded.total_cycles > unbounded.total_cycles
    # Cross-layer prefetch (docs/memory-model.md): the same work and bytes, never slower,
    # and the run never beats its roofline (a layer may: its loads began in an earlier
    # layer's window).
    prefetched = api.simulate(_arch(pe_type, *BOUNDED), workload, functional=False)
    first = prefetched.layers[0]
    assert first.prefetch_cycles == bounded.layers[0].prefetch_cycles > 0
    assert unbounded.total_cycles < prefetched.total_cycles <= bounded.total_cycles
    dram_bytes = sum(sum(l.dram_reads) + sum(l.dram_writes) for l in prefetched.layers)
    assert dram_bytes == sum(sum(l.dram_reads) + sum(l.dram_writes) for l in bounded.layers)
    assert prefetched.total_cycles >= max(unbounded.total_cycles, dram_bytes / 2)


def test_faster_pes_draw_more_bytes_per_cycle(workload):
    """A 2-thread SySMT PE consumes two K elements per step: the same bytes in fewer cycles,
    so on a starved channel it gains nothing over the dense PE."""
    dense = api.simulate(_arch("dense"), workload, functional=False)
    sysmt = api.simulate(_arch("sysmt"), workload, functional=False)
    for d, s in zip(dense.layers, sysmt.layers):
        assert s.compute_cycles < d.compute_cycles
        assert (s.dram_ifmap_read_bytes, s.dram_filter_read_bytes) == (
            d.dram_ifmap_read_bytes, d.dram_filter_read_bytes)
    starve = ("memory.dram_bandwidth_bytes_per_cycle=0.01",)
    slow_dense = api.simulate(_arch("dense", *starve), workload, functional=False)
    slow_sysmt = api.simulate(_arch("sysmt", *starve), workload, functional=False)
    assert all(l.bound == "memory" for l in slow_sysmt.layers)
    assert abs(slow_sysmt.total_cycles / slow_dense.total_cycles - 1) < 0.02


def test_summary_totals_add_up(workload):
    summary = api.simulate(_arch("dense", *BOUNDED), workload, functional=False).summary()
    layers = summary["layers"]
    for key in ("dram_ifmap_read_bytes", "dram_filter_read_bytes", "dram_psum_read_bytes",
                "dram_ofmap_write_bytes", "dram_psum_write_bytes", "buffer_ifmap_read_bytes",
                "prefetch_cycles", "drain_cycles", "roofline_cycles", "hcm_bits_moved"):
        assert summary[key] == sum(layer[key] for layer in layers), key
    assert summary["peak_ifmap_bytes"] == max(layer["peak_ifmap_bytes"] for layer in layers)
    assert summary["peak_ifmap_bytes"] <= 512 and summary["peak_ofmap_bytes"] <= 256
    assert summary["memory_bound_layers"] == sum(layer["bound"] == "memory" for layer in layers)
    assert summary["total_cycles"] == summary["compute_cycles"] + summary["stall_cycles"]
    assert summary["arch_config"]["memory"]["ifmap_kib"] == 0.5


def test_hcm_bit_operations():
    # 8b x 8b, Kd = 64: each MAC costs 64 + 8 + 8 + 6 = 86 bit operations.
    layer = layer_from_entry({"name": "g", "op": "gemm", "m": 5, "k": 64, "n": 3}, "w", 1)
    assert hcm_bit_ops(layer) == 5 * 64 * 3 * 86
    assert hcm_bits_moved(layer, 8) == (5 * 64 + 64 * 3 + 5 * 3) * 8


def test_default_memory_is_unbounded():
    memory = MemoryConfig()
    assert (memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib,
            memory.dram_bandwidth_bytes_per_cycle, memory.dram_latency_cycles) == (
        None, None, None, None, 0)
    assert ArrayConfig().rows == 16


def test_loop_order_and_reuse_are_reported(workload):
    result = api.simulate(_arch("dense", *BOUNDED, "memory.loop_order=auto"), workload,
                          functional=False)
    assert {l.loop_order for l in result.layers} <= {"column_folds_outer", "row_folds_outer"}
    assert all(l.ifmap_reuse in ("group", "window", "outer", "fold", "stream")
               for l in result.layers)


def _repeated_blocks() -> Workload:
    """Three layers of one shape, under different names, between two of another."""
    shape = dict(op="linear", in_channels=96, out_channels=80, batch=40)
    layers = [Layer(name=f"l{i}", **shape) for i in range(3)]
    other = Layer(name="other", op="conv2d", in_channels=8, out_channels=16,
                  input_size=(12, 12), kernel_size=(3, 3), padding=(1, 1))
    return Workload(name="blocks", source="blocks", format="yaml",
                    layers=(layers[0], other, layers[1],
                            dataclasses.replace(other, name="other2"), layers[2]))


@pytest.mark.parametrize("arch_name, overrides", [
    # the ideal channel: a DRAM preset's schedule depends on a layer's start (no reuse)
    ("os_sa_16x16", ["memory=ideal", "memory.ifmap_kib=1", "memory.filter_kib=1",
                     "memory.ofmap_kib=1", "memory.dram_bandwidth_bytes_per_cycle=4"]),
    ("sysmt_4t_16x16", ["memory=ideal", "pe.layer_threads={l1: 2}"]),
    # a DRAM preset: the plan is reused, the schedule run anew (alone and chained)
    ("os_sa_16x16", ["memory.prefetch=none"]),
    ("os_sa_16x16", []),
    ("sysmt_4t_16x16", ["pe.layer_threads={l1: 2}", "memory.dram=ddr4_3200"]),
])
def test_layers_of_one_shape_equal_layers_run_alone(arch_name, overrides, monkeypatch):
    # A timing-only run reuses the plan of a shape it ran before: every layer's figures and
    # timeline must equal those of a run that plans every layer anew, per-layer options
    # included.
    arch = api.load_arch(arch_name, overrides)
    workload = _repeated_blocks()
    run = api.simulate(arch, workload, functional=False, timeline=True)
    monkeypatch.setattr(api, "_REUSE_SHAPES", False)
    anew = api.simulate(arch, workload, functional=False, timeline=True)
    for result, fresh in zip(run.layers, anew.layers):
        assert dataclasses.asdict(result) == dataclasses.asdict(fresh), result.name
    for entry, fresh in zip(run.timeline, anew.timeline):
        assert (entry.origin, entry.elapsed) == (fresh.origin, fresh.elapsed)
        assert (entry.start == fresh.start).all() and (entry.end == fresh.end).all()
    origins = [entry.origin for entry in run.timeline]
    ends = [entry.origin + entry.elapsed for entry in run.timeline]
    assert origins[0] == 0 and origins[1:] == ends[:-1]
    if arch_name.startswith("sysmt"):
        assert run.layers[2].compute_cycles != run.layers[0].compute_cycles
