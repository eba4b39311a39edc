"""Technology tables: units, provenance, refusal of bad tables, node scaling."""

from __future__ import annotations

import copy
import math

import pytest
import yaml

from simulator.energy.tech import (REQUIRED_COMPONENTS, SCALING_FROM_45NM, load_tech,
                                   parse_quantity, scale_table, tech_from_mapping)
from simulator.errors import ConfigError


@pytest.fixture
def raw(repo):
    return yaml.safe_load((repo / "arch_configs" / "tech" / "generic_45nm.yaml").read_text())


def test_shipped_tables_load_with_provenance(repo):
    for path in sorted((repo / "arch_configs" / "tech").glob("*.yaml")):
        table = load_tech(path)
        assert set(REQUIRED_COMPONENTS) <= set(table.components)
        for entry in [*table.components.values(), table.sram, table.dram, table.leakage]:
            assert entry.source and entry.node_nm > 0 and entry.voltage_v > 0


def test_published_anchors(repo):
    # Horowitz ISSCC 2014, 45 nm: 8-bit multiply 0.2 pJ / 282 um2, 32-bit add 0.1 pJ / 137 um2.
    table = load_tech(repo / "arch_configs" / "tech" / "generic_45nm.yaml")
    assert table.energy_pj("mult_8x8") == 0.2 and table.area_um2("mult_8x8") == 282
    assert table.energy_pj("adder_32") == 0.1 and table.area_um2("adder_32") == 137
    # a 64-bit read of the 8 KB reference SRAM is 10 pJ, i.e. 1.25 pJ per byte
    assert table.sram.access_energy_pj_per_byte(8) == pytest.approx(1.25)


@pytest.mark.parametrize("text, kind, value", [
    ("0.2 pJ", "energy", 0.2), ("200 fJ", "energy", 0.2), ("0.0002 nJ", "energy", 0.2),
    ("1 mm2", "area", 1e6), ("282 um2", "area", 282), ("100 nW/um2", "power_density", 1e-4),
    ("1e-3 uW/um2", "power_density", 1e-6),
])
def test_units_convert(text, kind, value):
    assert parse_quantity(text, kind) == pytest.approx(value)


def _refused(raw, where, value, message):
    data = copy.deepcopy(raw)
    node = data
    for key in where[:-1]:
        node = node[key]
    if value is None:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    with pytest.raises(ConfigError) as info:
        tech_from_mapping(data, "t.yaml: tech")
    assert message in str(info.value)
    return str(info.value)


def test_bad_tables_are_refused_with_the_key_path(raw):
    _refused(raw, ["components", "mult_8x8"], None, "missing component(s) mult_8x8")
    _refused(raw, ["components", "adder_32", "energy"], "-0.1 pJ",
             "t.yaml: tech.components.adder_32.energy: expected a non-negative energy")
    _refused(raw, ["components", "adder_32", "energy"], "0.1 pW",
             "tech.components.adder_32.energy: expected an energy unit")
    _refused(raw, ["components", "adder_32", "area"], "137 pJ", "unknown unit 'pJ'")
    _refused(raw, ["components", "adder_32", "area"], 137, "tech.components.adder_32.area: expected area with its unit")
    _refused(raw, ["components", "adder_32", "source"], None,
             "tech.components.adder_32.source: required key is missing")
    _refused(raw, ["leakage", "power_density"], "5 pJ", "tech.leakage.power_density")
    _refused(raw, ["sram", "area_per_kib"], "3 um", "tech.sram.area_per_kib")
    _refused(raw, ["components", "adder_32", "energi"], "1 pJ", "did you mean 'energy'")
    _refused(raw, ["schema_version"], 7, "tech.schema_version")


def test_bad_table_in_cli_is_one_line_exit_2(cli, raw, tmp_path):
    del raw["components"]["register_bit"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8",
                 "--set", f"energy.tech={bad}", "--out", out)
    assert result.status == 2
    assert result.err.count("\n") == 1 and "register_bit" in result.err and str(bad) in result.err
    assert not out.exists()


def test_scaling_interpolates_in_log_node(repo):
    base = load_tech(repo / "arch_configs" / "tech" / "generic_45nm.yaml")
    at16 = tech_from_mapping(scale_table(base, 16, 0.8, "t16"), "t16")
    energy_f, area_f = SCALING_FROM_45NM[16.0]
    for name in REQUIRED_COMPONENTS:
        assert at16.energy_pj(name) == pytest.approx(base.energy_pj(name) * energy_f, rel=1e-5)
        assert at16.area_um2(name) == pytest.approx(base.area_um2(name) * area_f, rel=1e-5)
    assert at16.dram.energy_pj_per_byte == base.dram.energy_pj_per_byte
    # between 32 and 16 nm, log-linear: at the geometric mean the factor is the geometric mean
    mid = tech_from_mapping(scale_table(base, math.sqrt(32 * 16), 0.8, "tm"), "tm")
    expected = math.sqrt(SCALING_FROM_45NM[32.0][0] * SCALING_FROM_45NM[16.0][0])
    assert mid.energy_pj("mult_8x8") == pytest.approx(0.2 * expected, rel=1e-5)
    with pytest.raises(ConfigError, match="between 7 and 45 nm"):
        scale_table(base, 5, 0.7, "t5")
