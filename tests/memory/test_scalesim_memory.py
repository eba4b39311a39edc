"""SCALE-Sim configs map into the memory section, and the buffer and DRAM counts agree with
SCALE-Sim v3.0.0's DETAILED_ACCESS_REPORT where the models agree (docs/validation.md)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from simulator import api
from simulator.errors import ConfigError

DATA = Path(__file__).resolve().parent.parent / "data" / "scalesim"
CASES = sorted(p for p in DATA.iterdir() if (p / "topology.csv").exists())

CFG = """[general]
run_name = mem
[architecture_presets]
ArrayHeight: 8
ArrayWidth: 4
IfmapSramSzkB: 6
FilterSramSzkB: 2
OfmapSramSzkB: 1
Bandwidth : {bandwidth}
Dataflow : ws
[run_presets]
InterfaceBandwidth: {mode}
"""


@pytest.mark.parametrize(("mode", "bandwidth", "expected"), [
    ("CALC", "10", None), ("USER", "10", 10.0), ("USER", "12,12,12", 12.0)])
def test_cfg_sets_the_memory_section(tmp_path, mode, bandwidth, expected):
    path = tmp_path / "a.cfg"
    path.write_text(CFG.format(mode=mode, bandwidth=bandwidth))
    memory = api.load_arch(path).memory
    assert (memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib) == (6, 2, 1)
    assert memory.dram_bandwidth_bytes_per_cycle == expected
    assert (memory.output_bits, memory.partial_sum_bits, memory.double_buffering) == (8, 8, True)


@pytest.mark.parametrize(("mode", "bandwidth", "message"), [
    ("FAST", "10", "InterfaceBandwidth"), ("USER", "ten", "Bandwidth"),
    ("USER", "0", "Bandwidth")])
def test_bad_cfg_memory_values(tmp_path, mode, bandwidth, message):
    path = tmp_path / "a.cfg"
    path.write_text(CFG.format(mode=mode, bandwidth=bandwidth))
    with pytest.raises(ConfigError, match=message) as info:
        api.load_arch(path)
    assert str(path) in str(info.value)


def _detail(case: Path, layers: list) -> list[list[float]]:
    """DETAILED_ACCESS_REPORT rows per sasim layer: SCALE-Sim reports a 'DP' (depthwise)
    layer as one row per channel, which sasim runs as one layer of that many groups."""
    text = (case / "DETAILED_ACCESS_REPORT.csv").read_text().splitlines()
    rows = [[float(c) for c in r[1:] if c.strip()] for r in list(csv.reader(text))[1:] if r]
    out = []
    for layer in layers:
        part, rows = rows[:layer["groups"]], rows[layer["groups"]:]
        out.append([sum(column) for column in zip(*part)])
    assert not rows
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_buffer_traffic_matches_scalesim(case):
    """SRAM reads of both operands and the array's OFMAP writes, layer by layer, exactly
    (SCALE-Sim's OS count adds rows + cols per fold: systolic_compute_os.py)."""
    arch = api.load_arch(case / "scalesim.cfg")
    summary = api.simulate(arch, api.load_workload(case / "topology.csv")).summary()
    rows, cols = arch.array.rows, arch.array.cols
    for layer, theirs in zip(summary["layers"], _detail(case, summary["layers"])):
        quirk = layer["folds"] * (rows + cols) if arch.array.dataflow == "os" else 0
        assert layer["buffer_ifmap_read_bytes"] == theirs[2]
        assert layer["buffer_filter_read_bytes"] == theirs[5]
        assert layer["buffer_ofmap_write_bytes"] - layer["dram_psum_read_bytes"] + quirk \
            == theirs[8]


@pytest.mark.parametrize("case", [c for c in CASES if "smallsram" not in c.name],
                         ids=lambda p: p.name)
def test_dram_reads_match_scalesim_when_operands_fit(case):
    """With 64 KiB buffers every operand of these layers fits: both simulators read each
    input and weight byte once; OS outputs are written once."""
    arch = api.load_arch(case / "scalesim.cfg")
    summary = api.simulate(arch, api.load_workload(case / "topology.csv")).summary()
    for layer, theirs in zip(summary["layers"], _detail(case, summary["layers"])):
        assert layer["ifmap_reuse"] == layer["filter_reuse"] == "group"
        assert layer["dram_ifmap_read_bytes"] == theirs[11]
        assert layer["dram_filter_read_bytes"] == theirs[14]
        if arch.array.dataflow == "os":
            assert layer["dram_ofmap_write_bytes"] == theirs[17] == layer["m"] * layer["n"]


def test_fixture_cases_are_the_documented_ones():
    names = {c.name for c in CASES}
    assert len(names) == 11
    for case in CASES:
        assert json.loads((case / "case.json").read_text())["interface_bandwidth"] == "CALC"
