"""SIGKILL a sweep mid-run, resume it: every point present exactly once, identical to an
uninterrupted run; and results.csv is a valid file at the moment of the kill."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sweep_helpers import read_csv, without

REPO = Path(__file__).resolve().parents[2]


def sweep_command(spec: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "simulator", "sweep", str(spec), "--out", str(out),
            "--workers", "2", "--chunk-size", "1"]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    return env


def finished(points: Path) -> list[Path]:
    """The finished points' records (not a record being written: a hidden temporary)."""
    return [p for p in points.glob("*.json") if not p.name.startswith(".")]


def test_sigkill_then_resume_gives_every_point_once(write_spec, tmp_path, cli):
    # ~60 ResNet-18 timing-only points of tens of ms: a run of a couple of seconds (the ideal
    # memory: a DRAM preset's per-request model would make each point seconds)
    spec = write_spec({"base": ["os_sa_16x16", "sysmt_2t_16x16"], "workloads": ["resnet18"],
                       "grid": {"memory": ["ideal"], "array.rows": [8, 12, 16, 24, 32],
                                "array.cols": [8, 16, 32], "array.clock_mhz": [500, 1000]},
                       "baseline": {"base": "os_sa_16x16", "array.rows": 16,
                                    "array.cols": 16, "array.clock_mhz": 500},
                       "timing_only": True})
    total = 2 * 5 * 3 * 2
    killed = tmp_path / "killed"
    process = subprocess.Popen(sweep_command(spec, killed), cwd=REPO, env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    points = killed / "points"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if points.is_dir() and len(finished(points)) >= 6:
                break
            time.sleep(0.01)
    finally:
        # the whole session: the sweep, its fork server and its workers
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done_at_kill = len(finished(points))
    assert process.returncode == -signal.SIGKILL
    assert 6 <= done_at_kill < total, "the sweep was not killed mid-run"
    # at the moment of the kill, results.csv is a whole CSV file whose rows are finished points
    with open(killed / "results.csv", newline="") as fh:
        text = fh.read()
    assert text.endswith("\n")
    rows = list(csv.DictReader(text.splitlines()))
    assert rows and all(len(r) == len(rows[0]) and None not in r.values() for r in rows)
    assert {r["point_id"] for r in rows} <= {p.stem for p in finished(points)}
    assert len({r["point_id"] for r in rows}) == len(rows)

    resumed = cli("sweep", spec, "--out", killed, "--workers", "2")
    assert resumed.status == 0, resumed.err
    assert f"{total - done_at_kill} run now, {done_at_kill} already done" in resumed.out

    straight = tmp_path / "straight"
    assert cli("sweep", spec, "--out", straight, "--workers", "2").status == 0
    after, reference = read_csv(killed / "results.csv"), read_csv(straight / "results.csv")
    assert len(after) == total
    assert sorted(r["point_id"] for r in after) == sorted({r["point_id"] for r in reference})
    assert without(after, "elapsed_s") == without(reference, "elapsed_s")
    assert [r["point_id"] for r in after] == [r["point_id"] for r in reference]  # spec order
    assert sorted(p.name for p in points.iterdir()) == sorted(
        p.name for p in (straight / "points").iterdir())
