"""One test per bad input of the issue-13 fuzz campaign: each is refused cleanly (exit 2,
one bounded line naming the file and the key or layer), or, for the inputs that must work,
accepted."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from fuzz.harness import assert_promise, assert_refused, run_cli

REPO = Path(__file__).resolve().parents[2]
CFG = REPO / "tests/data/scalesim/conv_is_16x16_smallsram/scalesim.cfg"
TOPOLOGY = REPO / "tests/data/scalesim/conv_is_16x16_smallsram/topology.csv"
TRACE = REPO / "workloads/digits_int8.npz"

TINY = {"schema_version": 1, "name": "tiny", "batch": 1, "layers": [
    {"name": "conv1", "op": "conv2d", "in_channels": 3, "out_channels": 8,
     "input_size": [8, 8], "kernel_size": 3, "padding": 1},
    {"name": "fc", "op": "linear", "in_features": 512, "out_features": 10}]}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _arch(tmp_path: Path, text: str) -> Path:
    return _write(tmp_path / "arch.yaml", text)


def _tiny(tmp_path: Path, **changes) -> Path:
    data = json.loads(json.dumps(TINY))
    data.update(changes)
    return _write(tmp_path / "tiny.yaml", yaml.safe_dump(data))


def _run_arch(tmp_path, arch, *extra):
    return run_cli("run", "--arch", arch, "--workload", _tiny(tmp_path), "--timing-only",
                   *extra)


# ----------------------------------------------------------------- overrides together

def test_sparq_window_and_options_set_together(tmp_path):
    result = _run_arch(tmp_path, "sparq_5opt_16x16", "--set", "pe.window_bits=3",
                       "--set", "pe.options=6", "--json")
    assert_promise(result)
    assert result.status == 0, result.err
    pe = json.loads(result.out)["arch_config"]["pe"]
    assert (pe["window_bits"], pe["options"]) == (3, 6)


def test_overrides_that_conflict_name_all_of_them(tmp_path):
    result = _run_arch(tmp_path, "sparq_5opt_16x16", "--set", "pe.window_bits=3")
    assert_refused(result, "--set pe.window_bits=3", "sparq_5opt_16x16")


def test_switching_pe_type_drops_the_old_type_keys(tmp_path):
    result = _run_arch(tmp_path, "sparq_5opt_16x16", "--set", "pe.type=dense", "--json")
    assert result.status == 0, result.err
    pe = json.loads(result.out)["arch_config"]["pe"]
    # Only the keys every PE type has (the accumulator, docs/accumulators.md) remain.
    assert set(pe) == {"type", "accumulator", "accumulator_layers"}
    assert (pe["type"], pe["accumulator"]["type"]) == ("dense", "exact")


def test_switching_pe_type_keeps_the_accumulator(tmp_path):
    tiny = _tiny(tmp_path)
    arch = _write(tmp_path / "acc.yaml", "schema_version: 1\npe:\n  type: sysmt\n"
                  "  threads: 4\n  accumulator: {type: int, bits: 20}\n")
    result = run_cli("run", "--arch", arch, "--workload", tiny, "--timing-only",
                     "--set", "pe.type=dense", "--json")
    assert result.status == 0, result.err
    pe = json.loads(result.out)["arch_config"]["pe"]
    assert (pe["type"], pe["accumulator"]["bits"]) == ("dense", 20)
    assert "threads" not in pe


def test_swis_fixed_to_variable_n(tmp_path):
    result = _run_arch(tmp_path, "swis_g8_n3_16x16", "--set", "pe.shifts=null",
                       "--set", "pe.max_shifts=4", "--set", "pe.error_threshold=0.5")
    assert_promise(result)
    assert result.status == 0, result.err


def _sweep(tmp_path, body: str) -> Path:
    _tiny(tmp_path)
    return _write(tmp_path / "spec.yaml",
                  "schema_version: 1\nworkloads: [tiny.yaml]\ntiming_only: true\n" + body)


def test_sweep_zip_explores_sparq_windows(tmp_path):
    spec = _sweep(tmp_path, "base: sparq_5opt_16x16\n"
                            "zip:\n  pe.window_bits: [4, 3]\n  pe.options: [5, 6]\n")
    result = run_cli("sweep", spec, "--out", tmp_path / "out", "--dry-run")
    assert_promise(result)
    assert result.status == 0, result.err
    assert "2 points" in result.out


def test_sweep_grid_switches_pe_type(tmp_path):
    spec = _sweep(tmp_path, "base: sparq_5opt_16x16\ngrid:\n  pe.type: [sparq, dense]\n")
    result = run_cli("sweep", spec, "--out", tmp_path / "out", "--dry-run")
    assert result.status == 0, result.err


def test_switching_pe_type_starts_from_the_new_types_defaults(tmp_path):
    # SPARQ's `rounding: round` is not one of SySMT's roundings: the base's keys go
    result = _run_arch(tmp_path, "sparq_5opt_16x16", "--set", "pe.type=sysmt",
                       "--set", "pe.threads=2", "--json")
    assert result.status == 0, result.err
    pe = json.loads(result.out)["arch_config"]["pe"]
    assert (pe["type"], pe["threads"], pe["rounding"]) == ("sysmt", 2, "round_half_even")


def test_sweep_zip_switches_pe_type_with_one_types_keys(tmp_path):
    spec = _sweep(tmp_path, "base: sparq_5opt_16x16\nzip:\n  pe.type: [sparq, sysmt, dense]\n"
                            "  pe.threads: [null, 2, null]\n")
    result = run_cli("sweep", spec, "--out", tmp_path / "out", "--dry-run")
    assert result.status == 0, result.err
    assert "3 points" in result.out


def test_a_null_override_of_a_key_the_type_has_is_still_checked(tmp_path):
    assert_refused(_run_arch(tmp_path, "sysmt_2t_16x16", "--set", "pe.threads=null"),
                   "sysmt_2t_16x16", "pe.threads")


def test_sweep_zip_rows_may_repeat_a_value_but_not_a_row(tmp_path):
    spec = _sweep(tmp_path, "base: os_sa_16x16\nzip:\n  array.rows: [16, 32, 16]\n"
                            "  array.cols: [16, 32, 32]\n")
    assert run_cli("sweep", spec, "--out", tmp_path / "out", "--dry-run").status == 0
    spec = _sweep(tmp_path, "base: os_sa_16x16\nzip:\n  array.rows: [16, 32, 16]\n"
                            "  array.cols: [16, 32, 16]\n")
    assert_refused(run_cli("sweep", spec, "--out", tmp_path / "out", "--dry-run"),
                   "spec.yaml", "rows 1 and 3 are the same setting")


def test_sweep_swis_fixed_to_variable(tmp_path):
    spec = _sweep(tmp_path, "base: swis_g8_n3_16x16\nzip:\n  pe.shifts: [3, null]\n"
                            "  pe.max_shifts: [null, 4]\n  pe.error_threshold: [null, 0.5]\n")
    result = run_cli("sweep", spec, "--out", tmp_path / "out", "--dry-run")
    assert result.status == 0, result.err


def test_sweep_bad_design_names_spec_and_axis(tmp_path):
    spec = _sweep(tmp_path, "base: sparq_5opt_16x16\ngrid:\n  pe.window_bits: [4, 3]\n")
    assert_refused(run_cli("sweep", spec, "--out", tmp_path / "out", "--dry-run"),
                   "spec.yaml", "pe.window_bits")


def test_sweep_of_a_million_designs_is_refused_quickly(tmp_path):
    values = list(range(1, 1001))
    spec = _sweep(tmp_path, "base: os_sa_16x16\ngrid:\n"
                            f"  array.rows: {values}\n  array.cols: {values}\n")
    start = time.perf_counter()
    assert_refused(run_cli("sweep", spec, "--out", tmp_path / "out", "--dry-run"),
                   "spec.yaml", "1,000,000")
    assert time.perf_counter() - start < 5


# ----------------------------------------------------------------- YAML hardening

def test_duplicate_yaml_key(tmp_path):
    arch = _arch(tmp_path, "schema_version: 1\narray:\n  rows: 8\n  rows: 16\n")
    assert_refused(_run_arch(tmp_path, arch), "arch.yaml", "rows", "duplicate")


def test_duplicate_key_in_workload(tmp_path):
    path = _write(tmp_path / "w.yaml", "schema_version: 1\nname: a\nname: b\nlayers: []\n")
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "w.yaml", "name")


def test_alias_bomb_is_refused_cheaply(tmp_path):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    arch = _arch(tmp_path, "schema_version: 1\n" + "\n".join(lines) + "\n")
    start = time.perf_counter()
    assert_refused(_run_arch(tmp_path, arch), "arch.yaml", "alias")
    assert time.perf_counter() - start < 2


def test_recursive_alias(tmp_path):
    arch = _arch(tmp_path, "schema_version: 1\narray:\n  dataflow: &a\n  - - *a\n")
    assert_refused(_run_arch(tmp_path, arch), "arch.yaml", "recursive")


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "a:\n" + "".join(
    " " * i + "b:\n" for i in range(1, 3000))])
def test_deep_yaml_nesting(tmp_path, text):
    arch = _arch(tmp_path, "schema_version: 1\nx: " + text if text.startswith("[") else text)
    assert_refused(_run_arch(tmp_path, arch), "arch.yaml")


@pytest.mark.parametrize("value", ["123456789012345678901234567890", "1" * 5000, "1.0e+20",
                                   "18446744073709551616", "-1" * 1 + "0" * 40])
@pytest.mark.parametrize("key", ["array.rows", "memory.dram_latency_cycles",
                                 "memory.dram_bandwidth_bytes_per_cycle"])
def test_huge_numbers_in_arch(tmp_path, key, value):
    group, name = key.split(".")
    arch = _arch(tmp_path, f"schema_version: 1\n{group}:\n  {name}: {value}\n")
    result = _run_arch(tmp_path, arch)
    if name.startswith("dram_bandwidth") and value == "1.0e+20":
        assert result.status == 0, result.err  # a float goes there: a valid (huge) number
        return
    line = assert_refused(result, "arch.yaml", name)
    assert len(line) < 400


@pytest.mark.parametrize("value", ["1" * 5000, "1.0e+20", "99999999999999999999"])
def test_huge_numbers_through_set(tmp_path, value):
    assert_refused(_run_arch(tmp_path, "os_sa_16x16", "--set", f"array.rows={value}"),
                   "array.rows")


def test_schema_version_true(tmp_path):
    arch = _arch(tmp_path, "schema_version: true\n")
    assert_refused(_run_arch(tmp_path, arch), "arch.yaml", "schema_version")
    path = _tiny(tmp_path, schema_version=True)
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path),
                   "tiny.yaml", "schema_version")


@pytest.mark.parametrize("value", ["[sparq]", "{a: 1}"])
def test_pe_type_not_a_string(tmp_path, value):
    arch = _arch(tmp_path, f"schema_version: 1\npe:\n  type: {value}\n")
    assert_refused(_run_arch(tmp_path, arch), "arch.yaml", "pe.type")


@pytest.mark.parametrize("field,value", [("op", ["conv2d"]), ("op", {"a": 1}),
                                         ("name", ""), ("name", ["x"])])
def test_bad_layer_fields(tmp_path, field, value):
    data = json.loads(json.dumps(TINY))
    data["layers"][0][field] = value
    path = _write(tmp_path / "w.yaml", yaml.safe_dump(data))
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "w.yaml",
                   "layers[0]")


@pytest.mark.parametrize("field", ["name", "description"])
@pytest.mark.parametrize("value", [["a", "b"], {"a": 1}, 5])
def test_workload_name_description_must_be_strings(tmp_path, field, value):
    path = _tiny(tmp_path, **{field: value})
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "tiny.yaml",
                   field)


def test_negative_seed(tmp_path):
    path = _tiny(tmp_path, data={"seed": -1})
    assert_refused(run_cli("run", "--arch", "sysmt_4t_16x16", "--workload", path),
                   "tiny.yaml", "seed")


def test_huge_seed(tmp_path):
    path = _tiny(tmp_path, data={"seed": 2 ** 70})
    assert_refused(run_cli("run", "--arch", "sysmt_4t_16x16", "--workload", path),
                   "tiny.yaml", "seed")


def test_swis_weight_bits_64(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["layers"][0]["weight_bits"] = 64
    path = _write(tmp_path / "w.yaml", yaml.safe_dump(data))
    line = assert_refused(run_cli("run", "--arch", "swis_g8_n3_16x16", "--workload", path))
    assert "conv1" in line and "weight_bits" in line


# ----------------------------------------------------------------- sizes

@pytest.mark.parametrize("changes", [{"batch": 10 ** 12},
                                     {"layers": [{"name": "big", "op": "gemm", "m": 10 ** 9,
                                                  "k": 10 ** 9, "n": 10 ** 9}]},
                                     {"layers": [{"name": "big", "op": "conv2d",
                                                  "in_channels": 4096, "out_channels": 4096,
                                                  "input_size": [100000, 100000],
                                                  "kernel_size": 3}]}])
def test_huge_layers_say_the_bytes(tmp_path, changes):
    path = _tiny(tmp_path, **changes)
    line = assert_refused(run_cli("run", "--arch", "sysmt_4t_16x16", "--workload", path),
                          "tiny.yaml", "bytes")
    assert "layer" in line


def _trace_with_header(tmp_path, shape, compress=False):
    """A copy of the digits trace whose first layer's input declares ``shape``."""
    out = tmp_path / "t.npz"
    with zipfile.ZipFile(TRACE) as src, zipfile.ZipFile(out, "w") as dst:
        first = json.loads(np.load(TRACE)["manifest"].item())["layers"][0]["name"]
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == f"{first}.input.npy":
                header = {"descr": "|i1", "fortran_order": False, "shape": tuple(shape)}
                buf = __import__("io").BytesIO()
                np.lib.format.write_array_header_1_0(buf, header)
                data = buf.getvalue() + b"\0" * 64
            dst.writestr(info.filename, data)
    return out


def test_trace_declaring_a_huge_shape(tmp_path):
    path = _trace_with_header(tmp_path, (10 ** 6, 1, 8, 8))
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "t.npz")


def test_trace_zip_bomb(tmp_path):
    out = tmp_path / "bomb.npz"
    with zipfile.ZipFile(TRACE) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        dst.writestr("junk.npy", b"\0" * (300 << 20))  # 300 MiB of zeros, ~300 KiB on disk
    start = time.perf_counter()
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", out), "bomb.npz")
    assert time.perf_counter() - start < 5


def test_trace_schema_version_true(tmp_path):
    npz = dict(np.load(TRACE))
    manifest = json.loads(npz["manifest"].item())
    manifest["schema_version"] = True
    npz["manifest"] = np.array(json.dumps(manifest))
    path = tmp_path / "t.npz"
    np.savez(path, **npz)
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "t.npz",
                   "schema_version")


def test_trace_deep_json_manifest(tmp_path):
    npz = dict(np.load(TRACE))
    npz["manifest"] = np.array("[" * 100000 + "]" * 100000)
    path = tmp_path / "t.npz"
    np.savez(path, **npz)
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "t.npz")


# ----------------------------------------------------------------- SCALE-Sim files

def _cfg(tmp_path, key, value):
    text = CFG.read_text()
    lines = [f"{key}: {value}" if line.split(":")[0].strip() == key else line
             for line in text.splitlines()]
    return _write(tmp_path / "x.cfg", "\n".join(lines) + "\n")


@pytest.mark.parametrize("key,value", [("IfmapOffset", "nan"), ("IfmapOffset", "inf"),
                                       ("ArrayHeight", "1.0e+20"), ("ArrayHeight", "1" * 5000),
                                       ("IfmapSramSzkB", "1e300"), ("Bandwidth", "10%"),
                                       ("ArrayWidth", "%(x)s"), ("MemoryBanks", "nan")])
def test_bad_cfg_values(tmp_path, key, value):
    path = _cfg(tmp_path, key, value)
    assert_refused(run_cli("run", "--arch", path, "--workload", _tiny(tmp_path),
                           "--timing-only"), "x.cfg", key)


def test_cfg_percent_in_unused_value_is_fine(tmp_path):
    path = _write(tmp_path / "x.cfg", CFG.read_text().replace(
        "run_name = conv_is_16x16_smallsram", "run_name = 100%_run"))
    result = run_cli("run", "--arch", path, "--workload", _tiny(tmp_path), "--timing-only")
    assert result.status == 0, result.err


def test_topology_without_header_keeps_its_first_layer(tmp_path):
    rows = TOPOLOGY.read_text().splitlines()[1:]
    path = _write(tmp_path / "t.csv", "\n".join(rows) + "\n")
    result = run_cli("run", "--arch", CFG, "--workload", path, "--timing-only", "--json")
    if result.status == 0:
        layers = [layer["name"] for layer in json.loads(result.out)["layers"]]
        assert layers[0] == rows[0].split(",")[0]
        assert len(layers) == len(rows)
    else:
        assert_refused(result, "t.csv", "header")


def test_topology_huge_field(tmp_path):
    path = _write(tmp_path / "t.csv", TOPOLOGY.read_text() + "x" * 200_000 + ",1,1,1,1,1,1,1,\n")
    assert_refused(run_cli("run", "--arch", CFG, "--workload", path, "--timing-only"), "t.csv")


def test_topology_depthwise_with_300000_channels(tmp_path):
    path = _write(tmp_path / "t.csv", TOPOLOGY.read_text().splitlines()[0]
                  + "\nDP1, 10, 10, 3, 3, 300000, 1, 1,\n")
    start = time.perf_counter()
    assert_refused(run_cli("run", "--arch", CFG, "--workload", path, "--timing-only"),
                   "t.csv", "DP1")
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("value", ["1" * 5000, "99999999999999999999999"])
def test_topology_huge_numbers(tmp_path, value):
    path = _write(tmp_path / "t.csv", TOPOLOGY.read_text().splitlines()[0]
                  + f"\nL0, 10, 10, 3, 3, {value}, 1, 1,\n")
    assert_refused(run_cli("run", "--arch", CFG, "--workload", path, "--timing-only"),
                   "t.csv", "L0")


# ----------------------------------------------------------------- tech tables, plot

def _tech(tmp_path, old, new):
    text = (REPO / "arch_configs/tech/generic_45nm.yaml").read_text()
    assert old in text
    return _write(tmp_path / "tech.yaml", text.replace(old, new, 1))


@pytest.mark.parametrize("old,new", [("capacity_exponent: 0.78", "capacity_exponent: 1000"),
                                     ("capacity_exponent: 0.78", "capacity_exponent: -1000"),
                                     ("energy: 0.2 pJ", "energy: 1e400 pJ"),
                                     ("node_nm: 45\nvoltage", "node_nm: [45]\nvoltage")])
def test_bad_tech_tables(tmp_path, old, new):
    tech = _tech(tmp_path, old, new)
    result = run_cli("run", "--arch", "os_sa_16x16", "--set", f"energy.tech={tech}",
                     "--workload", _tiny(tmp_path), "--timing-only")
    assert_refused(result, "tech.yaml")


@pytest.mark.parametrize("dpi", ["100000", "1e308", "nan", "inf", "0"])
def test_plot_dpi(tmp_path, dpi):
    (tmp_path / "res").mkdir()
    result = run_cli("plot", tmp_path / "res", "--kind", "speedup", "--dpi", dpi)
    assert_refused(result, "--dpi")


# ----------------------------------------------------------------- messages

def test_long_values_are_truncated(tmp_path):
    arch = _arch(tmp_path, "schema_version: 1\narray:\n  dataflow: " + "x" * 100_000 + "\n")
    line = assert_refused(_run_arch(tmp_path, arch), "arch.yaml", "dataflow")
    assert len(line) < 600


def test_argparse_errors_are_one_line():
    result = run_cli("run", "--arch")
    assert_refused(result, "--arch")


def test_multiline_message_is_one_line(tmp_path):
    arch = _arch(tmp_path, 'schema_version: 1\nname: "a\\nb\\nc"\narray: {rows: x}\n')
    assert_refused(_run_arch(tmp_path, arch), "arch.yaml")


# ----------------------------------------------------------------- results given to plot

@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("res")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    spec = folder / "spec.yaml"
    spec.write_text("schema_version: 1\nbase: os_sa_16x16\nworkloads: [tiny.yaml]\n"
                    "grid:\n  array.rows: [8, 16]\nbaseline: {array.rows: 8}\n"
                    "timing_only: true\n")
    result = run_cli("sweep", spec, "--out", folder / "out", "--workers", "1")
    assert result.status == 0, result.err
    return folder / "out"


def _edit_results(src, dst, column, value):
    import csv
    import shutil

    shutil.copytree(src, dst)
    rows = list(csv.DictReader((dst / "results.csv").read_text().splitlines()))
    for row in rows:
        row[column] = value
    with open(dst / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dst


def test_plot_refuses_a_negative_time(results_dir, tmp_path):
    res = _edit_results(results_dir, tmp_path / "r", "time_us", "-3.5")
    assert_refused(run_cli("plot", res, "--kind", "speedup"), "results.csv", "time_us")


def test_plot_refuses_results_without_a_usable_metric(results_dir, tmp_path):
    res = _edit_results(results_dir, tmp_path / "r", "time_us", "")
    assert_refused(run_cli("plot", res, "--kind", "speedup"), "time_us")


def test_a_very_wide_input_is_refused_before_the_memory_model_runs(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["layers"][0]["input_size"] = [8, 749742]  # found by the fuzz suite: 90 s of footprint
    path = _write(tmp_path / "w.yaml", yaml.safe_dump(data))
    start = time.perf_counter()
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "w.yaml",
                   "conv1", "input_size")
    assert time.perf_counter() - start < 5


def test_a_layer_too_big_for_the_memory_model_is_refused_quickly(tmp_path):
    data = json.loads(json.dumps(TINY))
    data["layers"][0].update(in_channels=8, input_size=[512, 16384])
    path = _write(tmp_path / "w.yaml", yaml.safe_dump(data))
    start = time.perf_counter()
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--set", "array.rows=8", "--workload",
                           path, "--timing-only"), "w.yaml", "conv1", "folds")
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("flag", ["--arch", "--workload", "--set"])
def test_a_name_too_long_for_the_system_is_one_line(tmp_path, flag):
    long = "a" * 5000
    args = {"--arch": ("--arch", long, "--workload", "alexnet"),
            "--workload": ("--arch", "os_sa_16x16", "--workload", long),
            "--set": ("--arch", "os_sa_16x16", "--workload", "alexnet",
                      "--set", f"energy.tech={long}")}[flag]
    assert_refused(run_cli("run", "--timing-only", *args), "aaaa")


# ----------------------------------------------------------------- narrow accumulators
# (docs/accumulators.md): each bad format is one line naming the file and the key, exit 2.

@pytest.mark.parametrize("sets, words", [
    (("type=int", "bits=12", "chunk=0"), ("pe.accumulator.chunk", "from 1")),
    (("type=float", "exponent_bits=9", "mantissa_bits=30"), ("at most 32 bits", "not 40")),
    (("type=int", "bits=0"), ("pe.accumulator.bits", "from 2 to 64")),
    (("type=int", "bits=12", "overflow=sideways"), ("pe.accumulator.overflow", "sideways")),
    (("bits=12",), ("pe.accumulator", "type is exact")),
])
def test_bad_accumulators_are_refused(tmp_path, sets, words):
    overrides = [arg for s in sets for arg in ("--set", f"pe.accumulator.{s}")]
    result = _run_arch(tmp_path, "os_sa_16x16", *overrides)
    assert_refused(result, "os_sa_16x16", *words)


def test_accumulator_on_a_bit_serial_pe_is_refused(tmp_path):
    result = run_cli("run", "--arch", "swis_g8_n3_16x16", "--workload", _tiny(tmp_path),
                     "--set", "pe.accumulator.type=int", "--set", "pe.accumulator.bits=16")
    assert_refused(result, "pe.accumulator", "swis")


def test_accumulator_layers_naming_unknown_layers_are_refused(tmp_path):
    arch = _write(tmp_path / "acc.yaml", "schema_version: 1\npe:\n  type: dense\n"
                  "  accumulator_layers: {nope: {type: int, bits: 16}}\n")
    result = run_cli("run", "--arch", arch, "--workload", _tiny(tmp_path))
    assert_refused(result, "accumulator_layers", "nope")


# ----------------------------------------------------------------- the second campaign
# (a review of the features after issue 13: DRAM, multi-core, vector ops, RTL, sweeps)

@pytest.mark.parametrize("sets, key", [
    (("memory.dram=ideal", "memory.dram_bandwidth_bytes_per_cycle=1e-15"),
     "memory.dram_bandwidth_bytes_per_cycle"),
    (("multicore.cores=2", "multicore.interconnect_bytes_per_cycle=1e-15"),
     "multicore.interconnect_bytes_per_cycle"),
    (("memory.dram=ideal", "memory.dram_latency_cycles=1099511627776"),
     "memory.dram_latency_cycles"),
])
def test_channels_too_slow_for_64_bit_cycles_are_refused(tmp_path, sets, key):
    overrides = [arg for s in sets for arg in ("--set", s)]
    assert_refused(_run_arch(tmp_path, "os_sa_16x16", *overrides), "os_sa_16x16", key)


def test_a_count_beyond_64_bits_is_one_line(tmp_path, monkeypatch):
    from simulator import api

    def overflowing(*args, **kwargs):
        np.asarray([1 << 70], dtype=np.int64)  # what a schedule's conversion raises

    monkeypatch.setattr(api, "simulate", overflowing)
    assert_refused(_run_arch(tmp_path, "os_sa_16x16"), "exceeds 64-bit integers")


def test_ideal_as_a_preset_mapping_is_the_ideal_channel(tmp_path):
    result = _run_arch(tmp_path, "os_sa_16x16", "--set", "memory.dram={preset: ideal}",
                       "--json")
    assert result.status == 0, result.err
    assert json.loads(result.out)["arch_config"]["memory"]["dram"] == "ideal"


def test_a_workload_without_array_layers_prints_its_table(tmp_path):
    workload = _write(tmp_path / "vec.yaml", "schema_version: 1\nname: vec\nlayers:\n"
                      "  - {name: sm, op: softmax, features: 8}\n")
    result = run_cli("run", "--arch", "os_sa_16x16", "--workload", workload, "--timing-only",
                     "--out", tmp_path / "out")
    assert_promise(result)
    assert result.status == 0 and "no MACs" in result.out, result.err


def test_signed_one_bit_input_to_an_integer_vector_op(tmp_path):
    workload = _write(tmp_path / "ln.yaml", "schema_version: 1\nname: ln\nlayers:\n"
                      "  - {name: fc, op: linear, in_features: 8, out_features: 8}\n"
                      "  - {name: ln, op: layernorm, features: 8, activation_bits: 1,\n"
                      "     activation_signed: true}\n")
    result = run_cli("run", "--arch", "os_sa_16x16", "--workload", workload, "--set",
                     "vector.integer=true", "--json")
    assert_promise(result)
    assert result.status == 0, result.err


@pytest.mark.parametrize("args, words", [
    (("--cases", "1", "--seed", "-1"), ("--seed", "non-negative")),
    (("--cases", "1000000000000000000000"), ("--cases", "10,000")),
    (("--cases", "1", "--set", "pe.accumulator.type=int", "--set", "pe.accumulator.bits=8"),
     ("pe.accumulator", "exact")),
])
def test_rtl_verify_refuses_what_it_cannot_check(args, words):
    result = run_cli("rtl", "verify", "--arch", "os_sa_16x16", "--set", "array.rows=2",
                     "--set", "array.cols=2", *args)
    assert_refused(result, *words)


def test_sweep_accuracy_model_is_checked_up_front(tmp_path):
    spec = _write(tmp_path / "acc.yaml", "schema_version: 1\nname: acc\nbase: os_sa_16x16\n"
                  "workloads: [digits_int8]\ntiming_only: true\naccuracy: {model: nosuch}\n")
    assert_refused(run_cli("sweep", spec, "--out", tmp_path / "s", "--dry-run"),
                   "acc.yaml", "sweep.accuracy.model", "path/to/file.py:factory")


def test_sweep_baseline_errors_name_the_baseline(tmp_path):
    spec = _write(tmp_path / "bl.yaml", "schema_version: 1\nname: bl\nbase: os_sa_16x16\n"
                  "workloads: [digits_int8]\ntiming_only: true\nbaseline: nosuch_arch\n")
    line = assert_refused(run_cli("sweep", spec, "--out", tmp_path / "s", "--dry-run"),
                          "bl.yaml", "sweep.baseline: nosuch_arch: file not found")
    assert line.count("nosuch_arch") == 1


@pytest.mark.parametrize("sets, words", [
    (("zap.layers.conv1.enabled=true",), ("zap.layers", "'conv1'", "digits_int8.npz")),
    (("multicore.layers={nosuch: spatial}",), ("multicore.layers", "digits_int8.npz")),
    (("multicore.cores=2", "multicore.layers={nosuch: spatial}"),
     ("multicore.layers", "digits_int8.npz")),
])
def test_per_layer_options_name_layers_the_workload_has(sets, words):
    overrides = [arg for s in sets for arg in ("--set", s)]
    result = run_cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8",
                     "--timing-only", *overrides)
    assert_refused(result, *words)


def test_zap_override_on_a_layer_zap_cannot_predict(tmp_path):
    result = run_cli("run", "--arch", "zap_synthetic_16x16", "--workload", _tiny(tmp_path),
                     "--timing-only", "--set", "zap.layers={fc: {mask_type: 3}}")
    assert_refused(result, "zap.layers.fc", "linear")
    off = run_cli("run", "--arch", "zap_synthetic_16x16", "--workload", _tiny(tmp_path),
                  "--timing-only", "--set", "zap.layers={fc: {enabled: false}}")
    assert off.status == 0, off.err


# ----------------------------------------------------------------- the third campaign

def test_timeline_of_an_array_layer_then_a_vector_layer(tmp_path):
    result = run_cli("run", "--arch", "os_sa_16x16", "--workload", "gpt2_decode",
                     "--timing-only", "--timeline", tmp_path / "t.json")
    assert_promise(result)
    assert result.status == 0, result.err
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]


@pytest.mark.parametrize("extra, words", [
    (["--timeline", "{out}/summary.json"], ["--timeline", "--out writes that file too"]),
    (["--timeline", "{tmp}/same.png", "--plot", "{tmp}/same.png"],
     ["--plot", "--timeline writes that file too"]),
])
def test_two_outputs_of_one_run_cannot_share_a_file(tmp_path, extra, words):
    out = tmp_path / "out"
    extra = [a.replace("{out}", str(out)).replace("{tmp}", str(tmp_path)) for a in extra]
    result = _run_arch(tmp_path, "os_sa_16x16", "--out", out, *extra)
    assert_refused(result, *words)
    assert not out.exists() and not (tmp_path / "same.png").exists()


def test_an_out_directory_holding_an_input_is_not_replaced(tmp_path):
    out = tmp_path / "out"
    first = _run_arch(tmp_path, "os_sa_16x16", "--out", out)
    assert first.status == 0, first.err
    arch = out / "mine.yaml"
    arch.write_text((REPO / "arch_configs/os_sa_16x16.yaml").read_text())
    result = _run_arch(tmp_path, arch, "--out", out)
    assert_refused(result, "holds the input", "mine.yaml")
    assert arch.exists() and (out / "summary.json").exists()


def test_save_outputs_of_a_timing_only_run_says_why(tmp_path):
    result = run_cli("run", "--arch", "os_sa_16x16", "--workload", TRACE, "--timing-only",
                     "--save-outputs", "--out", tmp_path / "out")
    assert_refused(result, "--save-outputs needs a functional run: drop --timing-only")


def test_rtl_without_amaranth_is_one_line(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['amaranth'] = None; from simulator.cli import main; "
            f"sys.exit(main(['rtl', 'emit', '--arch', 'os_sa_16x16', '--set', "
            f"'array.rows=2', '--set', 'array.cols=2', '--out', {str(tmp_path / 'r')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "pip install 'sasim[rtl]'" in done.stderr
    assert not (tmp_path / "r").exists()


def test_sweep_workers_are_bounded_by_the_cpus(tmp_path):
    spec = _sweep(tmp_path, "base: os_sa_16x16\n")
    result = run_cli("sweep", spec, "--out", tmp_path / "out", "--workers", "100000")
    assert_refused(result, "--workers: at most", "CPU(s)", "100000")
    assert not (tmp_path / "out").exists()


def test_sweep_accuracy_without_torch_is_refused_up_front(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    spec = _sweep(tmp_path, "base: os_sa_16x16\naccuracy: {model: digits}\n")
    result = run_cli("sweep", spec, "--out", tmp_path / "out")
    assert_refused(result, "spec.yaml: accuracy:", "pip install 'sasim[torch]'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--arch", "--workload"])
def test_an_endless_device_is_read_only_up_to_the_bound(tmp_path, flag):
    argv = {"--arch": "os_sa_16x16", "--workload": "resnet18"}
    argv[flag] = "/dev/zero"
    started = time.perf_counter()
    result = run_cli("run", "--arch", argv["--arch"], "--workload", argv["--workload"],
                     "--timing-only")
    assert_refused(result, "/dev/zero")
    assert time.perf_counter() - started < 20


def test_trace_manifest_with_a_duplicate_key(tmp_path):
    npz = dict(np.load(TRACE))
    text = npz["manifest"].item()
    npz["manifest"] = np.array('{"model": "first", ' + text.lstrip()[1:])
    assert '"model"' in text  # the key now appears twice
    path = tmp_path / "t.npz"
    np.savez(path, **npz)
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "t.npz",
                   "duplicate key 'model'")


def test_a_text_file_named_npz(tmp_path):
    path = _write(tmp_path / "x.npz", "hello\n")
    line = assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path),
                          "x.npz", "not an .npz archive")
    assert "pickle" not in line


@pytest.mark.parametrize("argv, words", [
    (["--arch", "", "--workload", "resnet18"], ["an empty path", "arch config"]),
    (["--arch", "os_sa_16x16", "--workload", "resnet18", "--set", "energy.tech="],
     ["energy.tech: expected a technology table", "got ''"]),
])
def test_an_empty_path_says_so(argv, words):
    """(An arch's technology table is checked with the arch: the message names the file.)"""
    assert_refused(run_cli("run", *argv, "--timing-only"), *words)


def test_compare_refuses_a_design_listed_twice():
    result = run_cli("compare", "--arch", "os_sa_16x16", "--arch", "os_sa_16x16",
                     "--workload", "resnet18", "--timing-only")
    assert_refused(result, "--arch: 'os_sa_16x16' is listed twice")


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400", "nan"])
def test_plot_refuses_an_infinite_sqnr(results_dir, tmp_path, value):
    res = _edit_results(results_dir, tmp_path / "r", "sqnr_db", value)
    assert_refused(run_cli("plot", res, "--kind", "speedup"), "results.csv", "sqnr_db",
                   "finite number")


def test_plot_of_a_sweeps_own_manifest_plots_the_sweep(results_dir, tmp_path):
    result = run_cli("plot", results_dir / "sweep.json", "--kind", "speedup", "--out",
                     tmp_path / "s.png")
    assert_promise(result)
    assert result.status == 0, result.err


def test_many_overrides_keep_the_key_and_the_problem_in_the_line(tmp_path):
    sets = [a for i in range(14) for a in ("--set", f"memory.ifmap_kib={32 + i}")]
    result = _run_arch(tmp_path, "os_sa_16x16", *sets, "--set", "array.rows=-1")
    assert_refused(result, "(and 12 more --set)", "array.rows")


def test_topology_rows_with_fields_no_column_names(tmp_path):
    topo = _write(tmp_path / "t.csv", "Layer, M, N, K,\nc1, 8, 8, 3, 3, 3, 8, 1,\n")
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", topo,
                           "--timing-only"), "t.csv", "line 2", "more than the 4")


def test_tech_figures_are_bounded(tmp_path):
    table = yaml.safe_load((REPO / "arch_configs/tech/generic_45nm.yaml").read_text())
    component = next(iter(table["components"]))
    table["components"][component]["energy"] = "1e308 pJ"
    path = _write(tmp_path / "tech.yaml", yaml.safe_dump(table))
    result = run_cli("run", "--arch", "os_sa_16x16", "--workload", _tiny(tmp_path),
                     "--set", f"energy.tech={path}")
    assert_refused(result, "tech.yaml", "at most 1e+09 pJ")


def test_unquoted_two_of_four_is_the_string(tmp_path):
    path = _tiny(tmp_path, data={"weight_structure": "PLACEHOLDER"})
    path.write_text(path.read_text().replace("PLACEHOLDER", "2:4"))
    assert "weight_structure: 2:4" in path.read_text()
    result = run_cli("run", "--arch", "sysmt_2t_16x16", "--workload", path, "--json")
    assert_promise(result)
    assert result.status == 0, result.err


@pytest.mark.parametrize("data, key", [
    ({"weight_shape": 0.01}, "data.weight_shape"),
    ({"activation_log_sigma": 50}, "data.activation_log_sigma"),
    ({"activation_median": 1e300}, "data.activation_median"),
])
def test_synthetic_data_options_are_bounded(tmp_path, data, key):
    result = run_cli("run", "--arch", "sysmt_2t_16x16", "--workload", _tiny(tmp_path, data=data))
    assert_refused(result, "tiny.yaml", key)


def test_rotary_over_an_odd_width_is_refused(tmp_path):
    path = _write(tmp_path / "r.yaml", yaml.safe_dump({
        "schema_version": 1, "name": "r", "layers": [
            {"name": "rot", "op": "rotary", "features": 3, "tokens": 4}]}))
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "r.yaml",
                   "rot", "must be even")


@pytest.mark.parametrize("command", [["emit", "--out", "{tmp}/e"], ["synth", "--scope", "array"]])
def test_rtl_of_a_huge_array_is_refused(tmp_path, command):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = run_cli("rtl", argv[0], "--arch", "os_sa_16x16", "--set", "array.rows=4096",
                     "--set", "array.cols=4096", *argv[1:])
    assert_refused(result, "16,777,216 PEs", "4,096")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("flag", ["--out", "--timeline", "--plot"])
def test_an_empty_output_path_is_refused(tmp_path, flag):
    result = _run_arch(tmp_path, "os_sa_16x16", flag, "")
    assert_refused(result, flag, "suffix" if flag == "--plot" else "an empty path")


def test_another_models_zap_predictors_are_refused():
    result = run_cli("run", "--arch", "zap_os_sa_16x16", "--workload", "char_gpt_int8",
                     "--set", f"zap.predictors={REPO / 'workloads/digits_int8_zap.npz'}",
                     "--timing-only")
    assert_refused(result, "digits_int8_zap.npz", "none of which the workload has")


# ----------------------------------------------------------------- named pipes, argv bytes

@pytest.mark.parametrize("flag, name", [("--arch", "arch.yaml"), ("--workload", "w.yaml"),
                                        ("--workload", "w.csv"), ("--workload", "t.npz")])
def test_a_named_pipe_without_a_writer_is_refused_at_once(tmp_path, flag, name):
    """Opening a FIFO for reading would wait for a writer forever; it is read without
    waiting, so one that no process writes to is refused in one line."""
    pipe = tmp_path / name
    os.mkfifo(pipe)
    other = ["--workload", _tiny(tmp_path)] if flag == "--arch" else ["--arch", "os_sa_16x16"]
    result = run_cli("run", flag, pipe, *other, "--timing-only", timeout=20)
    assert_refused(result, name)


def test_zap_predictors_from_a_named_pipe_are_refused_at_once(tmp_path):
    pipe = tmp_path / "p.npz"
    os.mkfifo(pipe)
    result = run_cli("run", "--arch", "zap_os_sa_16x16", "--workload", "digits_int8",
                     "--set", f"zap.predictors={pipe}", "--timing-only", timeout=20)
    assert_refused(result, "p.npz", "not a ZAP predictors file", "zap.predictors")


@pytest.mark.parametrize("override", ["name=\udcff", "pe.type=\udcff", "\udcff=1"])
def test_an_override_that_is_not_utf8_is_refused(tmp_path, override):
    """argv bytes the locale does not decode reach Python as surrogates, which no YAML
    reader takes."""
    result = _run_arch(tmp_path, "os_sa_16x16", "--set", override)
    assert_refused(result, "--set", "not UTF-8 text")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_an_empty_or_truncated_zap_predictors_file_is_refused(tmp_path, content):
    path = tmp_path / "p.npz"
    path.write_bytes(content)
    result = run_cli("run", "--arch", "zap_os_sa_16x16", "--workload", "digits_int8",
                     "--set", f"zap.predictors={path}", "--timing-only")
    assert_refused(result, "p.npz", "not a ZAP predictors file",
                   "arch zap_os_sa_16x16: zap.predictors")


def _cancelling_trace(path: Path) -> Path:
    """One linear layer whose exact output is 0 (5*7 - 7*5) and which SWIS with one shift
    does not compute exactly: no signal, some noise (SQNR minus infinity)."""
    manifest = {"format": "sasim-trace", "schema_version": 1, "model": "cancel",
                "layers": [{"name": "fc", "op": "linear", "activation_signed": False,
                            "activation_bits": 8, "weight_bits": 8,
                            "arrays": ["input", "weight", "output"]}]}
    np.savez(path, manifest=np.array(json.dumps(manifest)),
             **{"fc.input": np.array([[5, 7]], np.uint8),
                "fc.weight": np.array([[7, -5]], np.int8),
                "fc.output": np.array([[0]], np.int64)})
    return path


def test_outputs_with_no_signal_report_sqnr_as_null(tmp_path):
    """The run's total SQNR, like a layer's, is minus infinity when the exact outputs are all
    zero and the simulated ones are not; strict JSON writes it as null."""
    arch = _arch(tmp_path, "schema_version: 1\nname: s1\narray: {rows: 4, cols: 4}\n"
                           "pe: {type: swis, shifts: 1, group_size: 2}\n")
    trace = _cancelling_trace(tmp_path / "t.npz")
    out = tmp_path / "o"
    result = run_cli("run", "--arch", arch, "--workload", trace, "--json", "--out", out)
    assert_promise(result)
    assert result.status == 0, result.err
    summary = json.loads((out / "summary.json").read_text(),
                         parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))
    assert summary["sqnr_db"] is None and summary["mse"] > 0


def test_inspect_refuses_synthetic_data_that_cannot_fit(tmp_path):
    """inspect draws synthetic data: a layer whose data cannot be held is refused before
    any is drawn, as a run refuses it."""
    path = _write(tmp_path / "w.yaml", yaml.safe_dump({
        "schema_version": 1, "name": "t", "layers": [
            {"name": "fc", "op": "linear", "in_features": 100_000, "out_features": 100_000,
             "tokens": 1000}]}))
    assert_refused(run_cli("inspect", path), "w.yaml", "layer 'fc'", "its data take")


@pytest.mark.parametrize("text", ["array: {rows: 010, cols: 4}", "array: {rows: 4, cols: -00_7}"])
def test_a_yaml_integer_with_a_leading_zero_is_refused(tmp_path, text):
    """YAML 1.1 reads 010 as octal 8: refused rather than silently 8 (08, not octal, was
    already refused as a string)."""
    arch = _arch(tmp_path, f"schema_version: 1\nname: o\n{text}\n")
    assert_refused(_run_arch(tmp_path, arch), "arch.yaml", "leading zero")
    assert_refused(_run_arch(tmp_path, "os_sa_16x16", "--set", "array.rows=010"),
                   "--set array.rows", "leading zero")


def test_a_trace_holding_a_member_twice_is_refused(tmp_path):
    path = tmp_path / "t.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for member in zipfile.ZipFile(TRACE).infolist():
            archive.writestr(member, zipfile.ZipFile(TRACE).read(member))
        first = zipfile.ZipFile(TRACE).infolist()[-1]
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr(first, zipfile.ZipFile(TRACE).read(first))
    assert_refused(run_cli("run", "--arch", "os_sa_16x16", "--workload", path), "t.npz",
                   "twice")


def test_a_scalesim_cfg_with_a_byte_order_mark_is_read(tmp_path):
    cfg = tmp_path / "bom.cfg"
    cfg.write_bytes(b"\xef\xbb\xbf" + CFG.read_bytes())
    result = run_cli("run", "--arch", cfg, "--workload", TOPOLOGY, "--timing-only")
    assert_promise(result)
    assert result.status == 0, result.err


@pytest.mark.parametrize("change", [{"time_us": 0}, {"time_us": -1.0}, {"total_cycles": -5},
                                    {"format": 2}])
def test_plot_refuses_an_impossible_run_summary(tmp_path, change):
    out = tmp_path / "run"
    assert run_cli("run", "--arch", "os_sa_16x16", "--workload", "gpt2_decode",
                   "--timing-only", "--out", out).status == 0
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, **change}))
    key = next(iter(change))
    assert_refused(run_cli("plot", out, "--kind", "ops", "--out", tmp_path / "p.png"),
                   "summary.json", key)
    assert not (tmp_path / "p.png").exists()
