"""Energy = counted actions x table energies + clocked registers + leakage, recomputed here
independently of simulator.energy.model from the raw YAML table."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from simulator import api
from simulator.energy.model import (BufferTraffic, LayerActivity, array_area, layer_energy,
                                    run_energy)
from simulator.errors import ConfigError
from simulator.hw.pe import get_pe_model, pe_types

_UNIT = {"pJ": 1.0, "fJ": 1e-3, "um2": 1.0, "nW/um2": 1e-6}


def _num(text: str) -> float:
    value, unit = re.fullmatch(r"(\S+) (\S+)", text).groups()
    return float(value) * _UNIT[unit]


def _trace(path, rng, zero_fraction):
    x = rng.integers(1, 256, (1, 8, 6, 6)) * (rng.random((1, 8, 6, 6)) >= zero_fraction)
    w = rng.integers(-127, 128, (6, 8, 3, 3))
    manifest = {"format": "sasim-trace", "schema_version": 1, "model": "t", "provenance": {},
                "layers": [{"name": "conv", "op": "conv2d", "stride": 1, "padding": 1,
                            "dilation": 1, "groups": 1, "activation_signed": False,
                            "activation_bits": 8, "weight_bits": 8,
                            "arrays": ["input", "weight"]}]}
    np.savez(path, manifest=np.array(json.dumps(manifest)),
             **{"conv.input": x.astype(np.uint8), "conv.weight": w.astype(np.int8)})
    return path


def _run(arch, path, *overrides):
    # the ideal memory: one bank per buffer, DRAM at the table's energy per bit (the shipped
    # chips' banks and DRAM preset: tests/energy/test_chip_scopes.py, tests/memory/test_dram.py)
    return api.simulate(api.load_arch(arch, ["memory=ideal", *overrides]),
                        api.load_workload(path)).summary()


@pytest.mark.parametrize("arch", ["os_sa_16x16", "sysmt_2t_16x16", "sysmt_4t_16x16"])
def test_energy_is_recomputable_from_counters_and_the_table(repo, tmp_path, arch):
    table = yaml.safe_load((repo / "arch_configs" / "tech" / "generic_45nm.yaml").read_text())
    comps = table["components"]
    summary = _run(arch, _trace(tmp_path / "t.npz", np.random.default_rng(1), 0.4),
                   "array.rows=4", "array.cols=5")
    (layer,) = summary["layers"]
    pe = get_pe_model(api.load_arch(arch).pe)
    composition = pe.composition()
    pes = 4 * 5
    dynamic = sum(count * sum(n * _num(comps[c]["energy"])
                              for c, n in composition.events[name].items())
                  for name, count in layer["counters"].items())
    registers = (composition.parts["register_bit"] * pes * layer["total_cycles"]
                 * _num(comps["register_bit"]["energy"]))
    pe_area = sum(n * _num(comps[c]["area"]) for c, n in composition.parts.items())
    array = pe_area * pes * (1 + table["array_overhead"]["control_wiring_area_fraction"])
    # Unbounded buffers are sized to the run's peak occupancy.
    sram = table["sram"]
    buffers = dram = 0.0
    buffer_area = 0.0
    for op in ("ifmap", "filter", "ofmap"):
        kib = layer[f"peak_{op}_bytes"] / 1024
        buffer_area += kib * _num(sram["area_per_kib"])
        per_byte = (_num(sram["read_energy"]) * (kib / sram["reference_kib"])
                    ** sram["capacity_exponent"] / (sram["word_bits"] / 8))
        buffers += per_byte * (layer[f"buffer_{op}_read_bytes"]
                               + sram["write_to_read"] * layer[f"buffer_{op}_write_bytes"])
    moved = sum(v for k, v in layer.items() if k.startswith("dram_") and k.endswith("_bytes"))
    dram = moved * 8 * _num(table["dram"]["energy_per_bit"])
    assert moved > 0 and buffers > 0
    area = array + buffer_area
    leakage = (_num(table["leakage"]["power_density"]) * area
               * layer["total_cycles"] * 1e3 / summary["clock_mhz"])
    assert summary["area_um2"] == pytest.approx(area, rel=1e-12)
    assert layer["energy_pj"] == pytest.approx(dynamic + registers + buffers + dram + leakage,
                                               rel=1e-12)
    assert summary["energy_pj"] == pytest.approx(layer["energy_pj"], rel=1e-12)
    assert summary["energy_breakdown_pj"]["leakage"] == pytest.approx(leakage, rel=1e-12)
    assert summary["energy_breakdown_pj"]["dram"] == pytest.approx(dram, rel=1e-12)


def test_configured_buffers_set_the_area(tmp_path):
    path = _trace(tmp_path / "t.npz", np.random.default_rng(3), 0.4)
    small = _run("os_sa_16x16", path, "memory.ifmap_kib=4", "memory.filter_kib=4",
                 "memory.ofmap_kib=2")
    large = _run("os_sa_16x16", path, "memory.ifmap_kib=8", "memory.filter_kib=8",
                 "memory.ofmap_kib=4")
    assert (large["area_breakdown_um2"]["buffers"]
            == pytest.approx(2 * small["area_breakdown_um2"]["buffers"]))
    assert large["energy_breakdown_pj"]["buffers"] > small["energy_breakdown_pj"]["buffers"]


@pytest.mark.parametrize("arch", ["os_sa_16x16", "sysmt_2t_16x16", "sysmt_4t_16x16"])
def test_idle_heavy_layer_costs_less_dynamic_energy(tmp_path, arch):
    rng = np.random.default_rng(2)
    dense = _run(arch, _trace(tmp_path / "d.npz", rng, 0.0))
    sparse = _run(arch, _trace(tmp_path / "s.npz", rng, 0.9))
    assert dense["total_cycles"] == sparse["total_cycles"]

    def dynamic(s):
        return sum(s["energy_breakdown_pj"][k] for k in ("multipliers", "adders", "pe_logic"))

    assert dynamic(sparse) < 0.5 * dynamic(dense)
    assert sparse["energy_pj"] < dense["energy_pj"]
    assert sparse["energy_breakdown_pj"]["registers"] == dense["energy_breakdown_pj"]["registers"]


def test_doubling_a_buffer_raises_its_access_energy_by_the_capacity_law(repo):
    tech = api.load_tech_table("generic_45nm")
    parts = {"register_bit": 0}
    area = array_area(tech, parts, 1, {})

    def buffers(kib):
        activity = LayerActivity(counters={}, cycles=0,
                                 buffers={"ifmap": BufferTraffic(kib, 1000, 300)})
        return layer_energy(tech, parts=parts, events={}, pes=1, activity=activity, area=area,
                            clock_mhz=1000).breakdown_pj["buffers"]

    exponent = tech.sram.capacity_exponent
    assert buffers(64) / buffers(32) == pytest.approx(2 ** exponent)
    # 1000 bytes read + 300 written from the 8 KiB reference buffer: 10 pJ per 8 bytes read
    assert buffers(8) == pytest.approx(1000 * 1.25 + 300 * 1.25 * tech.sram.write_to_read)
    assert array_area(tech, parts, 1, {"a": 64}).breakdown_um2["buffers"] == pytest.approx(
        2 * array_area(tech, parts, 1, {"a": 32}).breakdown_um2["buffers"])


def test_every_pe_type_prices_every_counter_with_known_components():
    tech = api.load_tech_table("generic_45nm")
    for name, model in pe_types().items():
        composition = model(model.Options()).composition()
        assert set(composition.events) == set(model.counter_names), name
        used = set(composition.parts)
        for actions in composition.events.values():
            used |= set(actions)
        assert used <= set(tech.components), name
        assert composition.parts.get("register_bit", 0) > 0, name


def test_more_threads_cost_more_area():
    tech = api.load_tech_table("generic_45nm")
    areas = [array_area(tech, get_pe_model(api.load_arch(a).pe).composition().parts, 256,
                        {}).total_um2
             for a in ("os_sa_16x16", "sysmt_2t_16x16", "sysmt_4t_16x16")]
    assert areas[0] < areas[1] < areas[2]


def test_a_component_the_table_lacks_is_named_with_the_table():
    tech = api.load_tech_table("generic_45nm")
    parts = {"mult_8x8": 1, "register_bit": 8, "flux_capacitor": 2}
    with pytest.raises(ConfigError, match="component.s. flux_capacitor that tech table "
                                          "'generic_45nm' does not define"):
        array_area(tech, parts, 4, {})
    activity = LayerActivity(counters={"busy": 3}, cycles=10)
    area = array_area(tech, {"register_bit": 8}, 4, {})
    with pytest.raises(ConfigError, match="counter 'busy' uses component.s. warp_core"):
        layer_energy(tech, parts={"register_bit": 8}, events={"busy": {"warp_core": 1}},
                     pes=4, activity=activity, area=area, clock_mhz=1000)


def test_run_energy_is_the_sum_of_layers_and_its_array_scope():
    layers = [{"multipliers": 1.0, "adders": 2.0, "registers": 3.0, "pe_logic": 4.0,
               "buffers": 5.0, "dram": 6.0, "leakage": 8.0},
              {"multipliers": 1.0, "leakage": 2.0}]
    tech = api.load_tech_table("generic_45nm")
    area = array_area(tech, {"mult_8x8": 1, "register_bit": 8}, 4, {"ifmap": 8})
    totals = run_energy(layers, area, macs=31)
    assert totals["energy_pj"] == pytest.approx(32.0)
    assert totals["energy_per_mac_pj"] == pytest.approx(32.0 / 31)
    share = area.array_um2 / area.total_um2
    assert 0 < share < 1
    assert totals["array_energy_pj"] == pytest.approx(11.0 + 10.0 * share)
    assert run_energy(layers, None, macs=0)["energy_per_mac_pj"] is None
