"""The command line, in-process: outputs, and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import csv
import json

import pytest

import simulator
from simulator import api

REQUIRED_SUMMARY = {"arch", "workload", "total_cycles", "compute_cycles", "stall_cycles", "macs",
                    "utilization", "layers"}
REQUIRED_LAYER = {"name", "m", "k", "n", "folds", "compute_cycles", "total_cycles", "macs",
                  "utilization"}


def test_run_writes_summary_and_layers(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--out", out)
    assert result.status == 0, result.err
    assert "layer4.1.conv2" in result.out and "total" in result.out
    summary = json.loads((out / "summary.json").read_text())
    assert REQUIRED_SUMMARY <= set(summary)
    assert all(REQUIRED_LAYER <= set(layer) for layer in summary["layers"])
    assert summary["total_cycles"] == sum(l["total_cycles"] for l in summary["layers"])
    assert 0 < summary["utilization"] <= 1
    rows = list(csv.DictReader((out / "layers.csv").open()))
    assert [r["name"] for r in rows] == [l["name"] for l in summary["layers"]]
    assert [int(r["total_cycles"]) for r in rows] == [l["total_cycles"] for l in summary["layers"]]
    assert not (out / "COMPUTE_REPORT.csv").exists()  # native convention


def test_json_and_set(cli):
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "alexnet", "--json",
                 "--set", "array.rows=32", "--set", "array.cols=8")
    assert result.status == 0, result.err
    summary = json.loads(result.out)
    assert summary["arch_config"]["array"]["rows"] == 32
    assert summary["arch_config"]["array"]["cols"] == 8


def test_version_and_list(cli):
    result = cli("--version")
    assert result.status == 0 and simulator.__version__ in result.out
    result = cli("list")
    assert result.status == 0
    for word in ("os_sa_16x16", "dense", "resnet18", "mobilenet_v2"):
        assert word in result.out
    # each module's state: compiled, stale, not built or off (docs/performance.md)
    tail = result.out.split("kernels compiled ahead of time")[1].splitlines()
    states = {line.split()[0]: line.split(maxsplit=1)[1] for line in tail[3:] if line}
    assert set(states) == {"sysmt_loops", "metrics_loops", "dram_controller_loops",
                           "chain_loops"}
    assert set(states.values()) <= {"compiled", "stale", "not built", "off"}


def test_compare(cli, tmp_path):
    result = cli("compare", "--workload", "resnet18", "--arch", "os_sa_16x16",
                 "--arch", "os_sa_32x32", "--arch", "sysmt_2t_16x16", "--timing-only",
                 "--set", "memory=ideal", "--out", tmp_path / "c")  # the arrays' own speedups
    assert result.status == 0, result.err
    records = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert [r["arch"] for r in records] == ["os_sa_16x16", "os_sa_32x32", "sysmt_2t_16x16"]
    assert records[0]["speedup"] == 1.0 and records[1]["speedup"] > 3
    assert 1.8 < records[2]["speedup"] < 2
    plot = tmp_path / "c" / "comparison.png"  # what `make run` promises
    assert plot.read_bytes().startswith(b"\x89PNG") and str(plot) in result.out
    assert "memory differs" not in result.out  # one memory for all


def test_compare_says_when_the_designs_memory_differs(cli, tmp_path):
    ideal = tmp_path / "ideal16.yaml"
    ideal.write_text("schema_version: 1\narray: {rows: 16, cols: 16, dataflow: os}\n"
                     "pe: {type: dense}\n")
    result = cli("compare", "--workload", "digits_int8", "--arch", "os_sa_16x16", "--arch",
                 ideal, "--timing-only")
    assert result.status == 0, result.err
    assert ("memory differs between the designs (os_sa_16x16: 32/32/32 KiB buffers, "
            "lpddr5_6400; ideal16: unbounded buffers, ideal DRAM)") in result.out


@pytest.mark.parametrize(("files", "argv", "needle"), [
    ({}, ["--arch", "missing.yaml", "--workload", "resnet18"], "missing.yaml: file not found"),
    ({"a.yaml": "schema_version: 1\narray: {rows: [\n"}, ["--arch", "{a.yaml}", "--workload", "resnet18"],
     "malformed YAML"),
    ({"a.yaml": "schema_version: 1\narray: {rows: sixteen}\n"},
     ["--arch", "{a.yaml}", "--workload", "resnet18"],
     "arch.array.rows: expected an integer, got 'sixteen'"),
    ({"a.yaml": "schema_version: 1\narray: {size: 3}\n"},
     ["--arch", "{a.yaml}", "--workload", "resnet18"], "unknown key 'size'"),
    ({"a.yaml": "schema_version: 1\narray: {rows: -1}\n"},
     ["--arch", "{a.yaml}", "--workload", "resnet18"], "arch.array.rows"),
    ({"t.csv": "Layer, M, N, K,\ng0, 5, 6,\n"}, ["--arch", "os_sa_16x16", "--workload", "{t.csv}"],
     "t.csv: line 2: expected 4 columns"),
    ({}, ["--arch", "os_sa_16x16", "--workload", "resnet18", "--set", "array.rows=0"],
     "--set array.rows=0"),
])
def test_bad_input_one_line_exit_2_no_output(cli, tmp_path, files, argv, needle):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for name in files:
        argv = [a.replace("{" + name + "}", str(tmp_path / name)) for a in argv]
    out = tmp_path / "out"
    result = cli("run", *argv, "--out", out)
    assert result.status == 2
    assert needle in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.out == ""
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_dir_is_replaced_atomically(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("run", "--arch", "os_sa_16x16", "--workload", "alexnet", "--out", out).status == 0
    first = (out / "summary.json").read_text()
    assert cli("run", "--arch", "os_sa_32x32", "--workload", "alexnet", "--out", out).status == 0
    assert (out / "summary.json").read_text() != first
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


MEMORY = ["--set", "memory=ideal", "--set", "memory.ifmap_kib=16", "--set", "memory.filter_kib=16",
          "--set", "memory.ofmap_kib=4", "--set", "memory.dram_bandwidth_bytes_per_cycle=8"]


def test_run_with_memory_and_timeline(cli, tmp_path):
    out, timeline = tmp_path / "run", tmp_path / "trace" / "t.json"
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--timing-only",
                 *MEMORY, "--out", out, "--timeline", timeline)
    assert result.status == 0, result.err
    assert "roofline" in result.out and "bound" in result.out and "memory" in result.out
    assert f"wrote the timeline to {timeline}" in result.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stall_cycles"] > 0 and summary["memory_bound_layers"] > 0
    rows = list(csv.DictReader((out / "layers.csv").open()))
    for column in ("dram_ifmap_read_bytes", "peak_ofmap_bytes", "roofline_cycles", "bound",
                   "hcm_bit_ops", "ifmap_reuse", "prefetch_cycles"):
        assert [r[column] for r in rows] == [str(l[column]) for l in summary["layers"]]
    trace = json.loads(timeline.read_text())
    assert {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"} == {
        "layers", "DRAM loads", "array compute", "array stalls", "DRAM write-back"}
    assert [p.name for p in timeline.parent.iterdir()] == ["t.json"]


def test_no_timeline_on_error(cli, tmp_path):
    timeline = tmp_path / "t.json"
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--timeline",
                 timeline, "--set", "memory.ofmap_kib=0.1")
    assert result.status == 2
    assert "layer conv1: memory.ofmap_kib = 102 bytes cannot hold one output tile" in result.err
    assert result.err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_unwritable_timeline_is_one_line(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "alexnet", "--timing-only",
                 "--timeline", blocker / "t.json")
    assert result.status == 2 and result.err.count("\n") == 1
    assert "--timeline" in result.err and "cannot write" in result.err


def test_compute_report_prefetch_and_stalls(cli, tmp_path):
    """A SCALE-Sim config in USER bandwidth mode: loads before the first fold (prefetch) and
    stalls now appear in COMPUTE_REPORT.csv, consistent with summary.json."""
    cfg = tmp_path / "user.cfg"
    cfg.write_text("[general]\nrun_name = user\n[architecture_presets]\nArrayHeight: 8\n"
                   "ArrayWidth: 8\nIfmapSramSzkB: 4\nFilterSramSzkB: 4\nOfmapSramSzkB: 2\n"
                   "Bandwidth : 4\nDataflow : os\n[run_presets]\nInterfaceBandwidth: USER\n")
    out = tmp_path / "out"
    result = cli("run", "--arch", cfg, "--workload", "alexnet", "--out", out)
    assert result.status == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    lines = (out / "COMPUTE_REPORT.csv").read_text().splitlines()[1:]
    for line, layer in zip(lines, summary["layers"]):
        cells = [c.strip() for c in line.split(",")]
        with_prefetch, total, stalls = int(cells[1]), int(cells[2]), int(cells[3])
        assert with_prefetch == layer["total_cycles"]
        assert with_prefetch - total == layer["prefetch_cycles"] + layer["drain_cycles"] > 0
        assert total - stalls == layer["compute_cycles"]
    assert sum(int(l.split(",")[3]) for l in lines) > 0


def test_a_plot_suffix_is_refused_before_the_run_naming_the_users_path(cli, tmp_path):
    target = tmp_path / "layers.gif"
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "alexnet", "--timing-only",
                 "--out", tmp_path / "run", "--plot", target)
    assert result.status == 2
    assert result.err.strip() == (f"sasim: error: --plot {target}: the figure format is chosen "
                                  f"by the suffix: .png, .svg or .pdf")
    assert list(tmp_path.iterdir()) == []


def test_plot_of_a_comparison_directory_says_what_it_is(cli, tmp_path):
    out = tmp_path / "cmp"
    assert cli("compare", "--arch", "os_sa_16x16", "--workload", "alexnet", "--timing-only",
               "--out", out).status == 0
    result = cli("plot", out, "--kind", "speedup")
    assert result.status == 2
    assert "holds a comparison" in result.err and "comparison.png" in result.err


def test_an_internal_error_is_one_line_with_where_and_exit_1(cli, tmp_path, monkeypatch):
    """A bug (any exception sasim does not expect) is one line naming the exception and the
    file and line it came from, exit status 1, and nothing written; SASIM_DEBUG=1 re-raises
    it with the traceback."""
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(api, "simulate", broken)
    monkeypatch.delenv("SASIM_DEBUG", raising=False)
    out = tmp_path / "out"
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--out", out)
    assert result.status == 1 and result.err.count("\n") == 1, result.err
    assert result.err.startswith("sasim: internal error: RuntimeError: boom second line (at ")
    assert "test_cli.py:" in result.err and "SASIM_DEBUG=1" in result.err
    assert not out.exists()
    monkeypatch.setenv("SASIM_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18")
