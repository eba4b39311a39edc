"""Running a sweep: results.csv and point files, ratios, resume, failures, crash repair."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sweep_helpers import read_csv, without

from simulator import api
from simulator.reports.progress import ProgressBar, format_duration
from simulator.sweep import LocalExecutor, chunk_points, load_sweep, plan_sweep, run_sweep
from simulator.sweep.results import ResultsTable, metric_columns

SPEC = {"base": ["os_sa_16x16", "sysmt_2t_16x16"], "workloads": ["tiny.yaml", "small.yaml"],
        "grid": {"array.rows": [4, 8], "array.dataflow": ["os", "ws"]},
        "baseline": {"base": "os_sa_16x16", "array.rows": 8, "array.dataflow": "os"},
        "timing_only": True}


@pytest.fixture(scope="module")
def pool():
    with LocalExecutor(2) as executor:
        yield executor


def run(path: Path, out: Path, executor, **options):
    return run_sweep(plan_sweep(load_sweep(path), path), out, executor, **options)


def test_results_csv_has_one_row_per_point_with_axes_metrics_and_ratios(write_spec, tmp_path,
                                                                         pool):
    path = write_spec(SPEC)
    out = tmp_path / "out"
    outcome = run(path, out, pool)
    plan = plan_sweep(load_sweep(path), path)
    assert (outcome.total, outcome.ran, outcome.skipped) == (16, 16, 0)
    # sysmt on ws cannot run: 2 designs x 2 workloads recorded as failures
    assert outcome.failed == 4
    rows = read_csv(out / "results.csv")
    assert [r["point_id"] for r in rows] == [p.id for p in plan.points]  # spec order
    header = list(rows[0])
    assert header[:4] == ["workload", "base", "array.rows", "array.dataflow"]
    assert header[-3:] == ["error", "point_id", "elapsed_s"]
    assert header.index("total_cycles") < header.index("speedup")
    for row, point in zip(rows, plan.points):
        record = json.loads((out / "points" / f"{point.id}.json").read_text())
        assert record["axes"] == dict(point.axes) and record["workload"] == point.workload
        if record["error"]:
            assert row["error"] == record["error"] and row["total_cycles"] == ""
            continue
        assert row["error"] == ""
        # the row holds the summary's scalars under their summary.json names
        for key, value in metric_columns(record["summary"]).items():
            assert row[key] == ("" if value is None else repr(value) if isinstance(value, float)
                                else str(value)), key
        arch = api.load_arch(point.base_path, point.overrides)
        expected = api.simulate(arch, api.load_workload(point.workload_path),
                                functional=False).summary()
        assert int(row["total_cycles"]) == expected["total_cycles"]
    base = {r["workload"]: r for r in rows if r["baseline"] == "True"}
    assert sorted(base) == ["small.yaml", "tiny.yaml"]
    for row in rows:
        if row["error"]:
            assert row["speedup"] == ""
            continue
        b = base[row["workload"]]
        assert math.isclose(float(row["speedup"]),
                            float(b["time_us"]) / float(row["time_us"]), rel_tol=1e-12)
        assert math.isclose(float(row["area_ratio"]),
                            float(row["area_um2"]) / float(b["area_um2"]), rel_tol=1e-12)
        assert row["energy_ratio"] == ""  # timing only: no energy
    assert all(float(b["speedup"]) == 1.0 for b in base.values())
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["axes"] == ["base", "array.rows", "array.dataflow"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files


def test_rerunning_skips_finished_points_and_retry_errors_reruns_failures(write_spec,
                                                                          tmp_path, pool):
    path = write_spec(SPEC)
    out = tmp_path / "out"
    run(path, out, pool)
    first = read_csv(out / "results.csv")
    again = run(path, out, pool)
    assert (again.ran, again.skipped, again.failed) == (0, 16, 4)
    assert read_csv(out / "results.csv") == first
    retried = run(path, out, pool, retry_errors=True)
    assert (retried.ran, retried.skipped, retried.failed) == (4, 12, 4)
    assert without(read_csv(out / "results.csv"), "elapsed_s") == without(first, "elapsed_s")


def test_a_torn_or_stale_results_csv_is_rebuilt_from_the_point_files(write_spec, tmp_path,
                                                                      pool):
    path = write_spec(SPEC)
    out = tmp_path / "out"
    run(path, out, pool)
    complete = read_csv(out / "results.csv")
    # a crash mid-append leaves half a line; a crash before the append leaves a row missing;
    # a crash mid-write of a point file leaves an unreadable record (it runs again)
    text = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(text[:-3]) + text[-3][:25])
    victim = complete[5]["point_id"]
    (out / "points" / f"{victim}.json").write_text('{"format": 1, "id": "')
    again = run(path, out, pool)
    assert again.ran == 1
    assert without(read_csv(out / "results.csv"), "elapsed_s") == without(complete, "elapsed_s")


def test_a_header_gains_columns_by_a_rebuild(tmp_path):
    table = ResultsTable(tmp_path / "results.csv")
    table.rebuild([{"workload": "w", "a": 1, "error": None, "point_id": "p1"}])
    assert table.append([{"workload": "w", "a": 2.5, "error": "boom", "point_id": "p2"}])
    assert not table.append([{"workload": "w", "b": 3, "point_id": "p3"}])  # new column
    table.close()
    assert read_csv(tmp_path / "results.csv") == [
        {"workload": "w", "a": "1", "error": "", "point_id": "p1"},
        {"workload": "w", "a": "2.5", "error": "boom", "point_id": "p2"}]


def test_chunks_put_baselines_first_and_group_workloads(write_spec):
    path = write_spec({**SPEC, "grid": {"array.rows": [2, 4, 8, 16], "array.dataflow":
                                        ["os", "ws"]}})
    plan = plan_sweep(load_sweep(path), path)
    chunks = chunk_points(plan.points, workers=2)
    flat = [p for chunk in chunks for p in chunk]
    assert sorted(p.id for p in flat) == sorted(p.id for p in plan.points)
    assert [len(c) for c in chunks[:2]] == [1, 1] and all(c[0].baseline for c in chunks[:2])
    rest = flat[2:]
    assert [p.workload for p in rest] == sorted((p.workload for p in rest),
                                                key=["tiny.yaml", "small.yaml"].index)
    assert max(len(c) for c in chunk_points(plan.points, 1, chunk_size=5)) == 5


def test_progress_bar_on_a_terminal_and_in_a_log():
    class Stream:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return False

    now = [0.0]
    log = Stream()
    bar = ProgressBar(100, log, label="sweep x", interval_s=10, clock=lambda: now[0])
    bar.update(0)
    now[0] = 5.0
    bar.update(40)  # within the interval: quiet
    now[0] = 12.0
    bar.update(60, failed=2)
    now[0] = 20.0
    bar.update(100, failed=2)
    assert log.text.splitlines() == [
        "sweep x: 0/100 points (0%), 0 points/min, ETA --:--",
        "sweep x: 60/100 points (60%), 300 points/min, ETA 0:08, 2 failed",
        "sweep x: 100/100 points (100%), 300 points/min, done in 0:20, 2 failed"]
    tty = Stream()
    bar = ProgressBar(4, tty, tty=True, width=8, clock=lambda: now[0])
    bar.update(1)
    assert tty.text.endswith("[##------] 1/4 points (25%)  0 points/min  ETA --:--")
    assert tty.text.startswith("\r\033[K")
    assert format_duration(3725) == "1:02:05" and format_duration(75.2) == "1:15"
