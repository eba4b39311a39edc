"""The vector unit: cycles, memory, overlap, energy and area (docs/transformers.md)."""

from __future__ import annotations

import math

import pytest

from simulator import api
from simulator.config.arch import DEFAULT_RECIPES, INTEGER_RECIPES, VECTOR_PRIMITIVES
from simulator.hw.vector import vector_cost
from simulator.workloads.layers import VECTOR_OPS, Layer, Workload


def _naive_cycles(layer: Layer, arch) -> int:
    """Lane by lane: hand every element's (and row's) primitives to the least busy lane...
    equivalently, the lanes share the lane-cycles evenly; then convert to array cycles."""
    recipe = arch.vector.recipe(layer.op)
    if layer.op in ("maxpool", "avgpool"):
        items = layer.output_elements * layer.kernel_size[0] * layer.kernel_size[1]
        rows = layer.output_elements
    elif layer.op == "global_avgpool":
        items, rows = layer.elements, layer.output_elements
    else:
        items, rows = layer.batch * layer.heads * layer.tokens * layer.in_channels, layer.rows
    lanes = [0] * arch.vector.lanes
    for key, count in recipe.items():
        primitive = key.removeprefix("row_")
        for _ in range(math.ceil((rows if key.startswith("row_") else items) * count)):
            lanes[lanes.index(min(lanes))] += getattr(arch.vector.cycles, primitive)
    # a lane is busy for its own cycles; the unit needs ceil(total / lanes) when the work
    # is spread evenly (each primitive is split at lane-cycle granularity)
    vector = -(-sum(lanes) // arch.vector.lanes)
    return math.ceil(vector / arch.vector.clock_ratio)


@pytest.mark.parametrize("op", VECTOR_OPS)
@pytest.mark.parametrize("overrides", [(), ("vector.lanes=7", "vector.clock_ratio=2"),
                                       ("vector.integer=true", "vector.cycles.exp=11")])
def test_cycles_follow_the_recipe(op, overrides):
    arch = api.load_arch("os_sa_16x16", ["memory=ideal", *overrides])
    layer = Layer("v", op, 12, 12, batch=2, heads=3, tokens=5, input_size=(6, 6),
                  kernel_size=(3, 3), stride=(3, 3))
    cost = vector_cost(layer, arch.vector)
    assert cost.cycles == _naive_cycles(layer, arch)
    assert cost.work == sum(cost.operations[p] * getattr(arch.vector.cycles, p)
                            for p in VECTOR_PRIMITIVES)


def test_clock_ratio_is_exact():
    layer = Layer("r", "relu", 3, 3)
    for ratio, expected in (("0.1", 30), ("3", 1), ("0.5", 6), ("2", 2)):
        arch = api.load_arch("os_sa_16x16", ["memory=ideal", "vector.lanes=1",
                                             f"vector.clock_ratio={ratio}"])
        assert vector_cost(layer, arch.vector).cycles == expected, ratio


def test_synthetic_vector_inputs_have_their_shapes():
    from simulator.workloads.synthetic import synthesize

    layers = (Layer("a", "add", 8, 8, batch=2, heads=3, tokens=4, activation_signed=True),
              Layer("s", "softmax", 8, 8, heads=2, tokens=4),
              Layer("p", "maxpool", 5, 5, batch=2, input_size=(6, 6), kernel_size=(2, 2),
                    stride=(2, 2)))
    workload = synthesize(Workload("w", "w.yaml", layers, "yaml"))
    add = workload.tensors("a")
    assert add.input.shape == add.other.shape == (2, 3, 4, 8) and add.weight is None
    assert add.input.min() < 0 and not (add.input == add.other).all()
    soft = workload.tensors("s")
    assert soft.input.shape == (1, 2, 4, 8) and soft.input.min() >= 0 and soft.other is None
    assert workload.tensors("p").input.shape == (2, 5, 6, 6)
    again = synthesize(Workload("w", "w.yaml", layers, "yaml")).tensors("a")
    assert (again.input == add.input).all() and (again.other == add.other).all()


def test_default_recipes_are_the_published_costs():
    soft = DEFAULT_RECIPES["softmax"]
    assert soft["exp"] == 3 and sum(v for k, v in soft.items() if k != "exp") == 7
    assert sum(v for k, v in DEFAULT_RECIPES["layernorm"].items() if "row" not in k) == 8
    assert sum(DEFAULT_RECIPES["rmsnorm"].values()) == 5
    gelu = DEFAULT_RECIPES["gelu"]
    assert gelu["exp"] == 1 and sum(gelu.values()) - 1 == 9
    assert DEFAULT_RECIPES["silu"]["exp"] == 1 and sum(DEFAULT_RECIPES["silu"].values()) == 4
    assert sum(DEFAULT_RECIPES["rotary"].values()) * 2 == 6  # per pair
    assert all("exp" not in recipe for recipe in INTEGER_RECIPES.values())


def _run(layers, overrides=(), phase="", functional=False):
    arch = api.load_arch("os_sa_16x16", ["memory=ideal", *overrides])
    workload = Workload("w", "w.yaml", tuple(layers), "yaml", phase=phase, sequences=2)
    if functional:
        from simulator.workloads.synthetic import synthesize

        workload = synthesize(workload)
    return api.simulate(arch, workload, functional=functional)


FC = Layer("fc", "linear", 256, 256, batch=64, role="ffn")
GELU = Layer("act", "gelu", 256, 256, batch=1, tokens=64, role="ffn")
FC2 = Layer("fc2", "linear", 256, 64, batch=64, role="ffn")


def test_vector_layer_reads_and_writes_through_dram_and_can_be_memory_bound():
    add = Layer("res", "add", 256, 256, tokens=64, activation_signed=True)
    unbounded = _run([add]).layers[0]
    assert unbounded.total_cycles == unbounded.compute_cycles == 64 * 256 // 16
    assert unbounded.dram_ifmap_read_bytes == 2 * 64 * 256
    assert unbounded.dram_ofmap_write_bytes == 64 * 256
    slow = _run([add], ["memory.dram_bandwidth_bytes_per_cycle=2"]).layers[0]
    assert slow.bound == "memory" and slow.stall_cycles > 0
    assert slow.total_cycles >= 3 * 64 * 256 // 2  # every byte crosses the channel
    small = _run([add], ["memory.ifmap_kib=1", "memory.ofmap_kib=1"]).layers[0]
    assert small.peak_ifmap_bytes <= 1024 and small.units > 16


def test_serial_and_overlapped_schedules():
    serial = _run([FC, GELU, FC2])
    overlapped = _run([FC, GELU, FC2], ["vector.overlap=true"])
    s = {layer.name: layer for layer in serial.layers}
    o = {layer.name: layer for layer in overlapped.layers}
    assert serial.total_cycles == sum(layer.total_cycles for layer in serial.layers)
    hidden = min(s["act"].total_cycles, s["fc2"].total_cycles)
    assert o["act"].overlap_cycles == hidden > 0
    assert overlapped.total_cycles == serial.total_cycles - hidden
    assert overlapped.utilization == pytest.approx(
        overlapped.macs / (overlapped.total_cycles * 16 * 16))  # over the run's wall time
    summary = overlapped.summary()
    assert summary["overlap_cycles"] == hidden
    assert summary["array_cycles"] + summary["vector_cycles"] == summary["total_cycles"]


def test_overlap_on_the_engine_with_a_bounded_channel():
    over = ["memory.dram_bandwidth_bytes_per_cycle=4"]
    serial = _run([FC, GELU, FC2], over)
    overlapped = _run([FC, GELU, FC2], over + ["vector.overlap=true"])
    act = {layer.name: layer for layer in overlapped.layers}["act"]
    fc2 = {layer.name: layer for layer in overlapped.layers}["fc2"]
    assert act.overlap_cycles == min(act.total_cycles, fc2.total_cycles)
    assert overlapped.total_cycles < serial.total_cycles


def test_no_overlap_when_the_next_layer_is_not_an_array_layer():
    result = _run([FC, GELU, Layer("act2", "relu", 256, 256, tokens=64)],
                  ["vector.overlap=true"])
    assert all(layer.overlap_cycles == 0 for layer in result.layers)


def test_vector_energy_and_area_come_from_the_tech_table():
    result = _run([FC, GELU, FC2], functional=True)
    tech = api.load_tech_table("generic_45nm")
    act = result.layers[1]
    expected = sum(n * tech.energy_pj(f"vector_{p}") for p, n in act.vector_operations.items())
    assert act.energy_breakdown_pj["vector"] == pytest.approx(expected)
    assert act.energy_breakdown_pj["dram"] == pytest.approx(
        (act.dram_ifmap_read_bytes + act.dram_ofmap_write_bytes)
        * tech.dram.energy_pj_per_byte)
    lane = sum(tech.area_um2(f"vector_{p}") for p in VECTOR_PRIMITIVES)
    assert result.area.breakdown_um2["vector"] == pytest.approx(16 * lane)
    summary = result.summary()
    assert summary["energy_breakdown_pj"]["vector"] == pytest.approx(expected)
    assert summary["array_area_um2"] == pytest.approx(
        summary["area_um2"] - result.area.breakdown_um2["buffers"] - 16 * lane)


def test_cnn_runs_have_no_vector_unit_in_their_results():
    import dataclasses

    result = _run([dataclasses.replace(FC, role=""), dataclasses.replace(FC2, role="")],
                  functional=True)
    summary = result.summary()
    assert "vector" not in summary["energy_breakdown_pj"]
    assert "vector" not in summary["area_breakdown_um2"]
    assert "array_cycles" not in summary


def test_role_shares_and_phase_figures():
    result = _run([FC, GELU, FC2], phase="prefill")
    summary = result.summary()
    shares = summary["role_shares"]
    assert shares["vector"] == pytest.approx(result.layers[1].total_cycles
                                             / summary["total_cycles"])
    assert shares["ffn"] + shares["vector"] == pytest.approx(1.0)
    assert summary["time_to_first_token_us"] == pytest.approx(summary["time_us"])
    from simulator.reports.table import format_run

    text = format_run(summary)
    assert "time to first token" in text and "vector" in text


def test_timeline_places_an_overlapped_vector_layer_beside_the_next_one():
    arch = api.load_arch("os_sa_16x16", ["memory=ideal", "vector.overlap=true",
                                         "memory.dram_bandwidth_bytes_per_cycle=8"])
    workload = Workload("w", "w.yaml", (FC, GELU, FC2), "yaml")
    result = api.simulate(arch, workload, functional=False, timeline=True)
    names = [t.name for t in result.timeline]
    assert names == ["fc", "act", "fc2"]
    fc, act, fc2 = result.timeline
    assert act.origin == fc2.origin == fc.origin + fc.elapsed
    assert act.elapsed == result.layers[1].total_cycles


def test_a_tech_table_without_vector_components_names_them(repo, tmp_path):
    from simulator.errors import ConfigError

    text = (repo / "arch_configs" / "tech" / "generic_45nm.yaml").read_text()
    table = tmp_path / "novec.yaml"
    table.write_text(text[:text.index("  # The vector unit")] + text[text.index("sram:"):])
    override = [f"energy.tech={table}"]
    assert _run([FC, FC2], override).total_cycles > 0  # no vector layer: no vector unit
    with pytest.raises(ConfigError, match="the vector unit uses component.*vector_add"):
        _run([FC, GELU, FC2], override)
