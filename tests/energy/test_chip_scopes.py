"""The shipped chips (bounded buffers, a DRAM preset), the ideal memory and the two energy
scopes (docs/memory-model.md, "The shipped chips" and "Ideal memory"; docs/energy-model.md,
"Two scopes")."""

from __future__ import annotations

import json

import pytest

from simulator import api
from simulator.config.arch import MemoryConfig
from simulator.energy.scope import (SRAM_WARNING_KIB_PER_PE, array_energy_pj, buffer_sizing,
                                    priced_buffer_kib, sram_warning)
from simulator.energy.tech import COMPONENT_CLASSES
from simulator.reports.table import format_run

CHIP_KEYS = ("ifmap_kib", "filter_kib", "ofmap_kib", "buffer_banks", "dram", "double_buffering",
             "dram_bandwidth_bytes_per_cycle")

#: os_sa_16x16 on digits_int8 under the unbounded defaults of the release before the shipped
#: chips (total cycles, energy, array energy, area): `memory: ideal` must give them back.
OLD_DIGITS = (439_260, 384_699_674.0472684, 101_167_392.57983999, 713_782.05875)


def test_every_shipped_chip_is_bounded_and_like_for_like():
    chips: dict[int, set] = {}
    for path in api.shipped_archs():
        arch = api.load_arch(path)
        if (arch.array.rows, arch.array.cols) not in ((16, 16), (32, 32)):
            continue
        memory = arch.memory
        assert None not in (memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib), path.stem
        assert memory.dram != "ideal", path.stem
        chips.setdefault(arch.array.rows, set()).add(
            tuple(getattr(memory, key) for key in CHIP_KEYS))
    # one memory per array size, for every design of it
    assert chips == {16: {(32, 32, 32, 2, "lpddr5_6400", True, None)},
                     32: {(64, 64, 64, 2, "lpddr5_6400", True, None)}}


def test_ideal_memory_is_the_schema_default():
    assert api.load_arch("os_sa_16x16", ["memory=ideal"]).memory == MemoryConfig()
    # later keys refine the ideal memory (the codec design keeps its codec)
    codec = api.load_arch("os_sa_16x16_codec_b6", ["memory=ideal", "memory.activation_codec.bits=6"])
    assert codec.memory == MemoryConfig(activation_codec=codec.memory.activation_codec)
    assert codec.memory.activation_codec.bits == 6


def test_ideal_memory_gives_the_old_numbers_back():
    summary = api.simulate(api.load_arch("os_sa_16x16", ["memory=ideal"]),
                           api.load_workload("digits_int8")).summary()
    cycles, energy, array, area = OLD_DIGITS
    assert summary["total_cycles"] == cycles and summary["stall_cycles"] == 0
    assert summary["energy_pj"] == pytest.approx(energy, rel=1e-12)
    assert summary["array_energy_pj"] == pytest.approx(array, rel=1e-12)
    assert summary["area_um2"] == pytest.approx(area, rel=1e-12)
    assert summary["buffer_sizing"]["unbounded"] == ["ifmap", "filter", "ofmap"]


def test_unbounded_run_says_so_and_warns(cli):
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--timing-only",
                 "--set", "memory=ideal")
    assert result.status == 0, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sasim: warning: arch os_sa_16x16")
    assert "2,500 KiB in all (9.8 KiB per PE" in lines[0]
    assert "unbounded buffers (ifmap/filter/ofmap): priced as SRAMs" in result.out
    # the shipped chip: sized buffers, nothing to warn about
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--timing-only")
    assert result.status == 0 and result.err == ""
    assert "unbounded buffers" not in result.out


def test_small_unbounded_run_does_not_warn(cli):
    # digits: 138 KiB of peaks on 256 PEs, 0.5 KiB per PE: plausible, reported, no warning
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--timing-only",
                 "--set", "memory=ideal")
    assert result.status == 0 and result.err == ""
    assert "unbounded buffers (ifmap/filter/ofmap)" in result.out


def test_sram_warning_threshold():
    def summary(kib: float, unbounded=("filter",)) -> dict:
        sizing = buffer_sizing({"ifmap": 8.0, "filter": None, "ofmap": 8.0},
                               {"filter": int((kib - 16) * 1024)}, 4)
        if not unbounded:
            sizing["unbounded"] = []
        return {"arch": "a", "workload": "w", "buffer_sizing": sizing}

    limit = SRAM_WARNING_KIB_PER_PE * 4
    assert sram_warning(summary(limit)) is None
    assert "filter buffer(s)" in sram_warning(summary(limit + 1))
    assert sram_warning(summary(limit + 1, unbounded=())) is None


def test_priced_buffer_kib():
    assert priced_buffer_kib({"ifmap": None, "filter": 32.0, "ofmap": None},
                             {"ifmap": 2048, "filter": 0, "ofmap": 0}) == {"ifmap": 2.0,
                                                                          "filter": 32.0}


def test_banks_price_one_bank_and_keep_the_area():
    workload = api.load_workload("digits_int8")
    one, two = (api.simulate(api.load_arch("os_sa_16x16", [f"memory.buffer_banks={b}"]),
                             workload).summary() for b in (1, 2))
    tech = api.load_tech_table("generic_45nm")
    expected = {}
    for banks, s in ((1, one), (2, two)):
        expected[banks] = sum(
            lay[f"buffer_{b}_read_bytes"] * tech.sram.access_energy_pj_per_byte(32 / banks)
            + lay[f"buffer_{b}_write_bytes"]
            * tech.sram.access_energy_pj_per_byte(32 / banks, write=True)
            for lay in s["layers"] for b in ("ifmap", "filter", "ofmap"))
        assert s["energy_breakdown_pj"]["buffers"] == pytest.approx(expected[banks], rel=1e-9)
    assert two["area_um2"] == one["area_um2"]
    assert two["total_cycles"] == one["total_cycles"]


def test_resnet18_default_chip_buffers_within_cacti():
    # docs/energy-model.md, "Two scopes": CACTI 7.0 at 45 nm, 32 KiB, 64-bit port, hp/lop/lstp
    # cells, 1-4 banks: 0.85-2.44 pJ per byte read, 0.78-2.21 written (benchmarks/cacti_sram.sh)
    summary = api.simulate(api.load_arch("os_sa_16x16"), api.load_workload("resnet18"),
                           functional=False).summary()
    assert summary["buffer_sizing"]["priced_kib"] == {"ifmap": 32, "filter": 32, "ofmap": 32}
    tech = api.load_tech_table("generic_45nm")
    assert 0.85 <= tech.sram.access_energy_pj_per_byte(16) <= 2.44
    assert 0.78 <= tech.sram.access_energy_pj_per_byte(16, write=True) <= 2.21
    assert summary["stall_cycles"] > 0 and summary["dram"]["energy_pj"] > 0
    # no buffer holds a whole tensor of the network: the peaks stay within the 32 KiB
    assert max(summary[f"peak_{b}_bytes"] for b in ("ifmap", "filter", "ofmap")) <= 32 * 1024


def test_two_scopes_in_the_summary_and_the_table():
    summary = api.simulate(api.load_arch("sysmt_2t_16x16"),
                           api.load_workload("digits_int8")).summary()
    share = summary["array_area_um2"] / summary["area_um2"]
    breakdown = summary["energy_breakdown_pj"]
    assert summary["array_energy_pj"] == pytest.approx(
        sum(breakdown[k] for k in COMPONENT_CLASSES) + share * breakdown["leakage"])
    assert summary["array_energy_pj"] == pytest.approx(array_energy_pj(breakdown, share))
    assert summary["chip_energy_pj"] == summary["energy_pj"] > summary["array_energy_pj"]
    layers = summary["layers"]
    assert sum(l["array_energy_pj"] for l in layers) == pytest.approx(summary["array_energy_pj"])
    assert sum(l["chip_energy_pj"] for l in layers) == pytest.approx(summary["energy_pj"])
    text = format_run(summary)
    assert "array energy uJ" in text and "chip energy uJ" in text
    assert "array scope" in text and "chip scope" in text
    json.dumps(summary)  # plain data


def test_compare_shows_both_scopes(cli, tmp_path):
    result = cli("compare", "--arch", "os_sa_16x16", "--arch", "sysmt_2t_16x16",
                 "--workload", "digits_int8", "--out", tmp_path / "cmp")
    assert result.status == 0, result.err
    header = next(line for line in result.out.splitlines() if line.startswith("workload"))
    for column in ("array energy uJ", "array energy vs first", "chip energy uJ",
                   "chip energy vs first"):
        assert column in header
    records = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    for record in records:
        assert record["chip_energy_pj"] == record["energy_pj"] > record["array_energy_pj"] > 0


def test_papers_array_scope_ratios_stay():
    # docs/validation.md (benchmarks/validate_energy.py): SySMT-2T against the dense array on
    # ResNet-18, the array fed without stalls as in the paper: 1.45x area, 29.2 % saving
    runs = [api.simulate(api.load_arch(a, ["memory=ideal"]), api.load_workload("resnet18"))
            .summary() for a in ("os_sa_16x16", "sysmt_2t_16x16")]
    base, new = runs
    assert round(new["array_area_um2"] / base["array_area_um2"], 2) == 1.45
    assert round(100 * (1 - new["array_energy_pj"] / base["array_energy_pj"]), 1) == 29.2
