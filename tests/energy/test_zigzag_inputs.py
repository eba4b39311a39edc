"""The ZigZag comparison's input builder (benchmarks/zigzag_energy.py; docs/validation.md,
"Energy against ZigZag"): ZigZag itself is not needed here. The workload must be sasim's
layers loop for loop, every per-access energy must be the raw tech table's, and the
conversion of ZigZag's result back into components must add up."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from pathlib import Path

import pytest
import yaml

from simulator import api


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def zz():
    spec = importlib.util.spec_from_file_location("zigzag_energy_bench",
                                                  REPO / "benchmarks" / "zigzag_energy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(zz):
    arch = api.load_arch(zz.ARCH, zz.arch_overrides())
    workload = api.load_workload(zz.WORKLOAD)
    tech = api.load_tech_table(arch.energy.tech)
    return arch, workload, tech, zz.build_inputs(arch, workload, tech)


def _raw_table(repo):
    return yaml.safe_load((repo / "arch_configs" / "tech" / "generic_45nm.yaml").read_text())


def _pj(text: str) -> float:
    value, unit = re.fullmatch(r"(\S+) (\S+)", text).groups()
    return float(value) * {"pJ": 1.0, "fJ": 1e-3}[unit]


def test_the_yaml_round_trips_and_has_every_section(setup, tmp_path, zz):
    *_, inputs = setup
    paths = zz.write_inputs(inputs, tmp_path)
    for key, path in paths.items():
        assert yaml.safe_load(path.read_text()) == inputs[key]
    assert set(inputs["accelerator"]) == {"name", "memories", "operational_array"}


def test_every_layer_loops_over_sasims_shape(setup):
    _, workload, _, inputs = setup
    assert [entry["name"] for entry in inputs["workload"]] == [l.name for l in workload.layers]
    for layer, entry in zip(workload.layers, inputs["workload"]):
        loops = dict(zip(entry["loop_dims"], entry["loop_sizes"]))
        assert math.prod(loops.values()) == layer.macs, layer.name
        gemm = layer.gemm
        assert loops["K"] == gemm.n
        assert loops["C"] * loops["FY"] * loops["FX"] == gemm.k
        assert loops["B"] * loops["OY"] * loops["OX"] == gemm.m
        assert entry["operand_precision"] == {"W": 8, "I": 8, "O": 32, "O_final": 8}
    conv1 = inputs["workload"][0]
    assert conv1["loop_sizes"] == [1, 64, 3, 112, 112, 7, 7]
    assert conv1["dimension_relations"] == ["ix=2*ox+1*fx", "iy=2*oy+1*fy"]
    assert conv1["pr_loop_sizes"] == [224, 224] and conv1["padding"] == [[3, 3], [3, 3]]
    down = next(e for e in inputs["workload"] if e["name"] == "layer2.0.downsample.0")
    assert down["loop_sizes"] == [1, 128, 64, 28, 28, 1, 1] and down["padding"] == [[0, 0]] * 2
    fc = inputs["workload"][-1]
    assert fc["loop_sizes"] == [1, 1000, 512, 1, 1, 1, 1]


def _fewest_tiles(ox: int, oy: int, rows: int) -> int:
    """Naively: the fewest OX x OY patches of at most ``rows`` pixels covering the layer."""
    return min(-(-ox // a) * -(-oy // b) for a in range(1, ox + 1) for b in range(1, oy + 1)
               if a * b <= rows)


def test_the_spatial_mapping_is_output_stationary_with_the_fewest_pixel_tiles(setup):
    arch, workload, _, inputs = setup
    rows, cols = arch.array.rows, arch.array.cols
    by_name = {m["name"]: m["spatial_mapping"] for m in inputs["mapping"]}
    for layer, entry in zip(workload.layers, inputs["workload"]):
        loops = dict(zip(entry["loop_dims"], entry["loop_sizes"]))
        sm = by_name[entry["name"]]
        d1 = dict((d, int(n)) for d, n in (s.split(", ") for s in sm["D1"]))
        (k_dim, k), = (s.split(", ") for s in sm["D2"])
        assert set(d1) <= {"OX", "OY"} and k_dim == "K" and int(k) == min(cols, loops["K"])
        assert math.prod(d1.values()) <= rows
        tiles = -(-loops["OX"] // d1["OX"]) * -(-loops["OY"] // d1.get("OY", 1))
        assert tiles == _fewest_tiles(loops["OX"], loops["OY"], rows), entry["name"]
        assert tiles >= -(-layer.gemm.m // rows)  # never fewer than sasim's row folds
    assert by_name["conv1"] == {"D1": ["OX, 16"], "D2": ["K, 16"]}
    assert by_name["layer1.0.conv1"]["D1"] == ["OX, 8", "OY, 2"]
    assert by_name["layer2.0.conv2"]["D1"] == ["OX, 4", "OY, 4"]
    assert by_name["layer4.0.conv2"]["D1"] == ["OX, 7", "OY, 2"]  # 4 tiles, as sasim's folds
    assert by_name["fc"] == {"D1": ["OX, 1"], "D2": ["K, 16"]}


def test_every_energy_is_the_raw_tables(setup, repo):
    arch, _, _, inputs = setup
    raw = _raw_table(repo)
    comp = {name: _pj(entry["energy"]) for name, entry in raw["components"].items()}
    sram, dram = raw["sram"], raw["dram"]
    read_64 = _pj(sram["read_energy"]) * (64 / sram["reference_kib"]) ** sram["capacity_exponent"]
    per_byte = read_64 / (sram["word_bits"] / 8)
    acc = inputs["accelerator"]
    assert acc["operational_array"]["unit_energy"] == pytest.approx(
        comp["mult_8x8"] + comp["adder_32"])
    assert acc["operational_array"]["sizes"] == [arch.array.rows, arch.array.cols]
    mem = acc["memories"]
    for name, bits in (("reg_I", 8), ("reg_W", 8), ("reg_O", 32)):
        assert mem[name]["size"] == bits and mem[name]["served_dimensions"] == []
        assert mem[name]["r_cost"] == pytest.approx(bits * comp["register_bit"])
        assert mem[name]["w_cost"] == mem[name]["r_cost"]
    for name, operand in (("ifmap", "I1"), ("filter", "I2"), ("ofmap", "O")):
        buf = mem[f"{name}_buffer"]
        width = buf["ports"][0]["bandwidth_max"]
        assert buf["size"] == 64 * 1024 * 8 and buf["operands"] == [operand]
        assert buf["r_cost"] == pytest.approx(per_byte * width / 8)
        assert buf["w_cost"] == pytest.approx(per_byte * sram["write_to_read"] * width / 8)
    dram_width = mem["dram"]["ports"][0]["bandwidth_max"]
    assert mem["dram"]["r_cost"] == pytest.approx(_pj(dram["energy_per_bit"]) * dram_width)


def test_each_memory_has_a_port_for_every_direction_its_operands_move(setup):
    *_, inputs = setup
    needed = {"I1": {"tl", "fh"}, "I2": {"tl", "fh"}, "O": {"tl", "th", "fh", "fl"}}
    for name, memory in inputs["accelerator"]["memories"].items():
        allocated: dict[str, set[str]] = {}
        for port in memory["ports"]:
            assert 0 < port["bandwidth_min"] <= port["bandwidth_max"], name
            for item in port["allocation"]:
                operand, direction = item.split(", ")
                allocated.setdefault(operand, set()).add(direction)
        assert allocated == {op: needed[op] for op in memory["operands"]}, name


def test_unbounded_buffers_and_other_pe_types_are_refused(zz):
    workload = api.load_workload(zz.WORKLOAD)
    arch = api.load_arch(zz.ARCH, ["memory=ideal"])  # unbounded buffers
    tech = api.load_tech_table(arch.energy.tech)
    with pytest.raises(ValueError, match="memory.ifmap_kib must be set"):
        zz.build_inputs(arch, workload, tech)
    with pytest.raises(ValueError, match="dense OS array"):
        zz.build_inputs(api.load_arch("sysmt_2t_16x16", zz.arch_overrides()), workload, tech)


def test_zigzags_result_is_split_into_sasims_components(zz):
    def level(memory, energy, **directions):
        full = {"rd_out_to_low": 0, "wr_in_by_low": 0, "rd_out_to_high": 0, "wr_in_by_high": 0}
        return {"memory": memory, "energy_pj": energy, "bytes": {**full, **directions}}

    layer = {"name": "l", "macs": 10, "mac_pj": 3.0, "latency_cycles": 7.0, "operands": {
        "I": [level("reg_I", 1.0), level("ifmap_buffer", 2.0, rd_out_to_low=5, wr_in_by_high=3),
              level("dram", 4.0, rd_out_to_low=3)],
        "W": [level("reg_W", 8.0), level("filter_buffer", 16.0, rd_out_to_low=6),
              level("dram", 32.0, rd_out_to_low=6)],
        "O": [level("reg_O", 64.0), level("ofmap_buffer", 128.0, wr_in_by_low=2, rd_out_to_high=2),
              level("dram", 256.0, wr_in_by_low=2)]}}
    out = zz.zigzag_components(layer)
    assert out["registers"] == 73.0 and out["mac"] == 3.0 and out["leakage"] == 0.0
    assert (out["buffer_ifmap"], out["buffer_filter"], out["buffer_ofmap"]) == (2.0, 16.0, 128.0)
    assert (out["dram_ifmap"], out["dram_filter"], out["dram_ofmap"]) == (4.0, 32.0, 256.0)
    assert (out["buffer_ifmap_bytes"], out["dram_ofmap_bytes"]) == (8, 2)
    assert sum(out[c] for c in zz.COMPONENTS) == 3.0 + 73 + 2 + 16 + 128 + 4 + 32 + 256


def test_sasims_side_adds_up_to_its_own_energy(setup, zz):
    arch, workload, tech, inputs = setup
    small = dataclasses.replace(workload, layers=[workload.layers[-1]])  # fc: fast
    (row,) = zz.sasim_layers(arch, small, tech, inputs["energies"])
    run = api.simulate(arch, small).layers[0]
    assert sum(row[c] for c in zz.COMPONENTS) + row["leakage"] == pytest.approx(run.energy_pj)
    assert row["dram_filter_bytes"] == run.dram_filter_read_bytes == 512 * 1000
    assert row["dram_filter"] == pytest.approx(512 * 1000 * 160.0)


def _stored_inputs_are_current(zz, inputs) -> None:
    folder = REPO / "tests" / "data" / "zigzag"
    for key in ("workload", "accelerator", "mapping"):
        stored = yaml.safe_load((folder / f"{key}.yaml").read_text(encoding="utf-8"))
        assert stored == inputs[key], (
            f"tests/data/zigzag/{key}.yaml is not what the builder makes now: rerun ZigZag "
            "(tests/data/zigzag/README.md)")


def test_the_docs_tables_are_what_the_script_prints_from_the_stored_result(setup, zz, capsys):
    """docs/validation.md, "Energy against ZigZag": the tables come from ZigZag's stored
    result (tests/data/zigzag) and a sasim run made now."""
    *_, inputs = setup
    _stored_inputs_are_current(zz, inputs)
    folder = REPO / "tests" / "data" / "zigzag"
    assert zz.main(["--keep", str(folder), "--reuse"]) == 0
    printed = capsys.readouterr().out
    doc = (REPO / "docs" / "validation.md").read_text(encoding="utf-8")
    tables = printed.split("\n\n")
    assert len(tables) == 4
    for table in tables:
        assert table.strip() in doc, "rerun benchmarks/zigzag_energy.py --keep " \
            "tests/data/zigzag --reuse and paste its output into docs/validation.md:\n" + printed
    assert zz.main(["--keep", str(folder), "--reuse", "--set", "memory.loop_order=auto"]) == 0
    auto = capsys.readouterr().out
    ifmap = re.search(r"^dram ifmap +([\d,.]+) +([\d,.]+)", auto, re.M).groups()
    ratio = re.search(r"^total without leakage +\S+ +\S+ +(\S+)", auto, re.M).group(1)
    s_uj, z_uj = (f"{float(x.replace(',', '')):,.0f}" for x in ifmap)
    prose = " ".join(doc.split())
    assert f"(sasim {s_uj} µJ of ifmap DRAM against ZigZag's {z_uj}, total {ratio}× " in prose


def test_reuse_refuses_a_result_made_from_other_inputs(setup, zz, tmp_path):
    *_, inputs = setup
    zz.write_inputs(inputs, tmp_path)
    (tmp_path / "result.json").write_text('{"lpf_limit": 6, "opt": "energy"}')
    other = {**inputs, "mapping": inputs["mapping"][:-1]}
    with pytest.raises(zz.ComparisonError, match="mapping.yaml: not the inputs built now"):
        zz.reuse_zigzag(other, tmp_path, 6, "energy")
    with pytest.raises(zz.ComparisonError, match="made with lpf_limit 6, opt energy"):
        zz.reuse_zigzag(inputs, tmp_path, 4, "energy")


def test_bad_input_is_one_line_and_status_2(zz, tmp_path, capsys):
    assert zz.main(["--zigzag-python", str(tmp_path / "none"), "--layers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such interpreter" in err and "Traceback" not in err
    assert zz.main(["--keep", str(tmp_path), "--reuse"]) == 2
    assert "no ZigZag result to reuse" in capsys.readouterr().err
    assert zz.main(["--set", "memory.no_such_key=1", "--keep", str(tmp_path), "--reuse"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_key" in err
