"""Fuzz sweep directories and the results files `sasim plot` reads.

A sweep directory belongs to one spec and one sweep at a time; `plot` draws only results
whose designs it can identify (with their sweep.json, one row per design and workload) and
whose numbers make sense, and refuses the rest in one line (docs/sweeps.md).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.outputs_harness import assert_clean_exit, snapshot, temporaries
from simulator.outputs import json_text
from simulator.reports.files import summary_json

TINY = """schema_version: 1
name: tiny
batch: 1
layers:
  - {name: conv1, op: conv2d, in_channels: 3, out_channels: 8, input_size: [12, 12], kernel_size: 3, stride: 1, padding: 1}
  - {name: fc, op: linear, in_features: 1152, out_features: 10}
"""


def write_spec(folder: Path, name: str, rows: list[int], baseline: bool = True) -> Path:
    (folder / "tiny.yaml").write_text(TINY)
    spec = {"schema_version": 1, "name": name, "base": ["os_sa_16x16", "sysmt_2t_16x16"],
            "workloads": ["tiny.yaml"], "grid": {"array.rows": rows}, "timing_only": True}
    if baseline:
        spec["baseline"] = {"base": "os_sa_16x16", "array.rows": rows[0]}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A finished sweep directory (4 designs on one workload)."""
    folder = tmp_path_factory.mktemp("swept")
    spec = write_spec(folder, "a", [8, 16])
    from simulator.cli import main

    assert main(["sweep", str(spec), "--out", str(folder / "out"), "--workers", "1"]) == 0
    return folder


def test_a_second_spec_into_the_same_out_is_refused(cli, swept, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(swept / "out", out)
    other = write_spec(tmp_path, "b", [8, 32])
    before = snapshot(out)
    result = cli("sweep", other, "--out", out, "--workers", "1")
    assert_clean_exit(result.status, result.err)
    assert result.status == 2 and "another sweep" in result.err and "'a'" in result.err
    assert snapshot(out) == before
    # the same spec resumes (nothing to run)
    same = write_spec(tmp_path, "a", [8, 16])
    result = cli("sweep", same, "--out", out, "--workers", "1")
    assert result.status == 0 and "0 run now, 4 already done" in result.out


@pytest.mark.parametrize("content", ["notes.txt", "results.csv", "points"])
def test_a_directory_that_is_not_a_sweeps_is_refused(cli, tmp_path, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / content).mkdir() if content == "points" else (out / content).write_text("x\n")
    before = snapshot(tmp_path)
    result = cli("sweep", write_spec(tmp_path, "a", [8]), "--out", out, "--workers", "1")
    assert_clean_exit(result.status, result.err)
    assert result.status == 2 and "not a sweep directory" in result.err
    assert snapshot(tmp_path) == {**before, "a.yaml": snapshot(tmp_path)["a.yaml"],
                                  "tiny.yaml": snapshot(tmp_path)["tiny.yaml"]}


def test_a_sweep_out_that_is_a_file_is_one_line(cli, tmp_path):
    (tmp_path / "out").write_text("")
    result = cli("sweep", write_spec(tmp_path, "a", [8]), "--out", tmp_path / "out")
    assert_clean_exit(result.status, result.err)
    assert result.status == 2 and "not a directory" in result.err


def test_two_sweeps_cannot_write_one_directory_at_once(cli, swept, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(swept / "out", out)
    spec = write_spec(tmp_path, "a", [8, 16])
    with open(out / "sweep.lock", "a") as held:  # what a running sweep holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli("sweep", spec, "--out", out, "--workers", "1", "--retry-errors")
    assert_clean_exit(result.status, result.err)
    assert result.status == 2 and "another sweep is writing" in result.err
    assert cli("sweep", spec, "--out", out, "--workers", "1").status == 0  # released


# --- plot ---------------------------------------------------------------------------------

def plot(cli, results: Path, kind: str = "speedup"):
    target = results.parent / "fig.png" if results.is_file() else results / "fig.png"
    result = cli("plot", results, "--kind", kind, "--out", target)
    assert_clean_exit(result.status, result.err)
    assert not temporaries(target.parent)
    assert target.exists() == (result.status == 0)
    return result


def rewrite(folder: Path, edit) -> None:
    with open(folder / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows = edit(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (folder / "results.csv").write_text(out.getvalue())


def test_plot_draws_a_whole_sweep(cli, swept, tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(swept / "out", folder)
    assert plot(cli, folder).status == 0


def test_plot_refuses_results_without_their_sweep_json(cli, swept, tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(swept / "out", folder)
    (folder / "sweep.json").unlink()
    result = plot(cli, folder / "results.csv")
    assert result.status == 2 and "no sweep.json" in result.err


def test_plot_refuses_designs_it_cannot_tell_apart(cli, swept, tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(swept / "out", folder)

    def same_rows(rows):
        for row in rows:
            row["array.rows"] = "8"
        return rows

    rewrite(folder, same_rows)
    result = plot(cli, folder)
    assert result.status == 2 and "cannot be told apart" in result.err


def test_plot_refuses_another_sweeps_manifest(cli, swept, tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(swept / "out", folder)
    manifest = json.loads((folder / "sweep.json").read_text())
    manifest["axes"] = ["base", "array.cols"]
    (folder / "sweep.json").write_text(json.dumps(manifest))
    result = plot(cli, folder)
    assert result.status == 2 and "not from the same sweep" in result.err
    manifest["format"] = 2
    (folder / "sweep.json").write_text(json.dumps(manifest))
    assert "format 1" in plot(cli, folder).err


@pytest.mark.parametrize(("value", "message"), [("-3.5", "expected a number > 0"),
                                                ("inf", "expected a number > 0"),
                                                ("fast", "expected a number > 0"),
                                                ("0", "expected a number > 0")])
def test_plot_refuses_impossible_times(cli, swept, tmp_path, value, message):
    folder = tmp_path / "r"
    shutil.copytree(swept / "out", folder)

    def bad(rows):
        rows[1]["time_us"] = value
        return rows

    rewrite(folder, bad)
    result = plot(cli, folder)
    assert result.status == 2 and message in result.err and "line 3" in result.err


@pytest.mark.parametrize("kind", ["speedup", "energy", "utilization"])
def test_plot_refuses_results_with_no_usable_metric(cli, swept, tmp_path, kind):
    folder = tmp_path / "r"
    shutil.copytree(swept / "out", folder)
    column = {"speedup": "time_us", "energy": "energy_pj", "utilization": "utilization"}[kind]

    def blank(rows):
        for row in rows:
            row[column] = ""
        return rows

    rewrite(folder, blank)
    result = plot(cli, folder, kind)
    assert result.status == 2 and f"no row has a usable {column}" in result.err


def test_plot_refuses_a_baseline_without_the_metric(cli, swept, tmp_path):
    folder = tmp_path / "r"
    shutil.copytree(swept / "out", folder)

    def fail_baseline(rows):
        for row in rows:
            if row["baseline"] == "True":
                row["time_us"] = ""
                row["error"] = "SimulationError: failed"
        return rows

    rewrite(folder, fail_baseline)
    result = plot(cli, folder)
    assert result.status == 2 and "baseline design" in result.err


MANGLE = st.sampled_from(["truncate", "drop_column", "swap_cells", "garbage_cell",
                          "duplicate_row", "empty", "binary", "quote", "negative"])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mangles=st.lists(MANGLE, min_size=1, max_size=3), data=st.data(),
       manifest=st.booleans(), kind=st.sampled_from(["speedup", "energy", "pareto",
                                                     "utilization", "accuracy"]))
def test_plot_of_mangled_results_is_a_figure_or_one_line(cli, swept, mangles, data,
                                                          manifest, kind):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "r"
        shutil.copytree(swept / "out", folder)
        if not manifest:
            (folder / "sweep.json").unlink()
        text = (folder / "results.csv").read_text()
        for mangle in mangles:
            lines = text.splitlines(keepends=True)
            pick = data.draw(st.integers(0, max(0, len(lines) - 1)))
            if mangle == "truncate":
                text = text[: data.draw(st.integers(0, len(text)))]
            elif mangle == "drop_column" and lines:
                column = data.draw(st.integers(0, 5))
                text = "".join(",".join(c for i, c in enumerate(line.rstrip("\n").split(","))
                                        if i != column) + "\n" for line in lines)
            elif mangle == "swap_cells" and len(lines) > 1:
                cells = lines[pick].rstrip("\n").split(",")
                data.draw(st.randoms()).shuffle(cells)
                lines[pick] = ",".join(cells) + "\n"
                text = "".join(lines)
            elif mangle == "garbage_cell" and lines:
                cells = lines[pick].rstrip("\n").split(",")
                cells[data.draw(st.integers(0, len(cells) - 1))] = data.draw(
                    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8))
                lines[pick] = ",".join(cells) + "\n"
                text = "".join(lines)
            elif mangle == "duplicate_row" and len(lines) > 1:
                text = text + lines[max(1, pick)]
            elif mangle == "empty":
                text = ""
            elif mangle == "binary":
                (folder / "results.csv").write_bytes(b"\xff\xfe\x00" + text.encode())
                text = None
                break
            elif mangle == "quote":
                text = text.replace(",", ',"', 1)
            elif mangle == "negative" and len(lines) > 1:
                text = "".join(lines[:1]) + "".join(
                    line.replace(",", ",-", 3) for line in lines[1:])
        if text is not None:
            (folder / "results.csv").write_text(text)
        result = plot(cli, folder, kind)
        if not manifest:
            assert result.status == 2


def test_reports_are_strict_json_with_nulls():
    summary = {"sqnr_db": -math.inf, "mse": math.nan, "layers": [{"sqnr_db": math.inf}]}

    def refuse(constant):
        raise AssertionError(constant)

    parsed = json.loads(summary_json(summary), parse_constant=refuse)
    assert parsed == {"format": 1, "sqnr_db": None, "mse": None, "layers": [{"sqnr_db": None}]}
    assert json.loads(json_text([1.5, float("nan")]), parse_constant=refuse) == [1.5, None]


def test_the_format_of_point_records_is_read(swept, tmp_path):
    from simulator.reports.sweep_results import load_results
    from simulator.errors import ResultsError

    folder = tmp_path / "r"
    shutil.copytree(swept / "out", folder)
    results = load_results(folder)
    row = results.rows[0]
    assert results.summary(row)["total_cycles"] == row["total_cycles"]
    point = folder / "points" / f"{row['point_id']}.json"
    record = json.loads(point.read_text())
    record["format"] = 99
    point.write_text(json.dumps(record))
    with pytest.raises(ResultsError, match="format 1"):
        load_results(folder).summary(row)
    assert os.path.exists(point)
