"""Signals at random moments: during `sasim run --save-outputs` and during `sasim sweep`
(local and Dask). Afterwards: no traceback, the output either complete or the previous
state, no temporaries, and no process of the command left running (its workers and fork
server included, even when re-parented to init)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.outputs_harness import (REPO, environment, sasim, session_processes, snapshot,
                             temporaries, wait_until_gone)

STOPPED = {signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGINT: 128 + signal.SIGINT}


def start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=environment(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop(process: subprocess.Popen, signum: int, group: bool = False) -> tuple[int, str]:
    """Send ``signum`` to the command (or, like a Ctrl-C in a terminal, to its whole process
    group), wait (bounded); kill the session if it hangs, so that a failing test leaves
    nothing behind either."""
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        survivors = wait_until_gone(process.pid, 10)
        if survivors:
            os.killpg(process.pid, signal.SIGKILL)
    assert not survivors, f"processes still running after {signal.Signals(signum).name}"
    return process.returncode, err


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delay=st.floats(0.3, 3.0), signum=st.sampled_from([signal.SIGTERM, signal.SIGINT]),
       previous=st.booleans())
def test_a_signal_during_run_save_outputs_leaves_whole_or_previous(delay, signum, previous):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = root / "run"
        if previous:
            out.mkdir()
            (out / "summary.json").write_text('{"format": 1}\n')
        before = snapshot(root)
        process = start(sasim("run", "--arch", "sysmt_4t_16x16", "--workload", "resnet18",
                              "--out", out, "--save-outputs"), root)
        time.sleep(delay)
        status, err = stop(process, signum)
        assert "Traceback" not in err, err
        assert not temporaries(root)
        if status == 0:  # finished before the signal
            with np.load(out / "outputs.npz") as saved:
                assert len(saved.files) > 0
            assert (out / "summary.json").stat().st_size > 1000
        else:
            assert status == STOPPED[signum], err
            assert err.strip() == f"sasim: stopped by {signal.Signals(signum).name}"
            assert snapshot(root) == before


def test_sigkill_during_run_leaves_a_staging_the_next_run_removes(tmp_path):
    process = start(sasim("run", "--arch", "sysmt_4t_16x16", "--workload", "resnet18",
                          "--out", tmp_path / "run", "--save-outputs"), tmp_path)
    deadline = time.monotonic() + 60
    while not temporaries(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert temporaries(tmp_path), "the run was not killed mid-way"
    done = subprocess.run(sasim("run", "--arch", "os_sa_16x16", "--workload", "alexnet",
                                "--timing-only", "--out", tmp_path / "run"),
                          cwd=tmp_path, env=environment(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert not temporaries(tmp_path)


def write_spec(folder: Path) -> Path:
    # ~60 ResNet-18 timing-only points of tens of ms each: a few seconds on two workers (the
    # ideal memory: a DRAM preset's per-request model would make each point seconds)
    spec = {"schema_version": 1, "name": "sig", "base": ["os_sa_16x16", "sysmt_2t_16x16"],
            "workloads": ["resnet18"],
            "grid": {"memory": ["ideal"], "array.rows": [8, 12, 16, 24, 32], "array.cols": [8, 16, 32],
                     "array.clock_mhz": [500, 1000]},
            "timing_only": True}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def sweep_then_signal(root: Path, signum: int, done_before: int, *extra: str,
                      group: bool = False) -> tuple:
    out = root / "out"
    process = start(sasim("sweep", write_spec(root), "--out", out, "--workers", "2",
                          "--chunk-size", "1", *extra), root)
    points = out / "points"
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and process.poll() is None:
        workers = [pid for pid in session_processes(process.pid) if pid != process.pid]
        if workers and points.is_dir() and len(list(points.glob("*.json"))) >= done_before:
            break
        time.sleep(0.01)
    status, err = stop(process, signum, group)
    return out, status, err, workers


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signum=st.sampled_from([signal.SIGTERM, signal.SIGINT]),
       done_before=st.integers(0, 8))
def test_a_signal_stops_a_local_sweep_and_its_workers(signum, done_before):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out, status, err, workers = sweep_then_signal(root, signum, done_before)
        assert "Traceback" not in err, err
        if status != 0:
            assert workers, "the sweep had not started its workers"
            assert status == STOPPED[signum], err
        assert not temporaries(root)
        if (out / "results.csv").exists():  # a whole file (maybe without rows yet)
            text = (out / "results.csv").read_text()
            assert "point_id" in text.splitlines()[0] and text.endswith("\n")
        # the directory is free again: the same sweep resumes
        done = subprocess.run(sasim("sweep", root / "spec.yaml", "--out", out, "--workers", "2"),
                              cwd=root, env=environment(), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert len((out / "results.csv").read_text().splitlines()) == 1 + 60


def test_sigkill_of_a_sweep_takes_its_workers_along(tmp_path):
    # only the sweep process is killed: its fork server exits, and the workers are told
    # by the kernel that their parent died (docs/sweeps.md)
    out, status, err, workers = sweep_then_signal(tmp_path, signal.SIGKILL, 2)
    assert status == -signal.SIGKILL and workers


def test_sigterm_stops_a_dask_sweep_and_its_cluster(tmp_path):
    out, status, err, workers = sweep_then_signal(tmp_path, signal.SIGTERM, 2,
                                                  "--executor", "dask")
    assert "Traceback" not in err, err
    assert status in (0, STOPPED[signal.SIGTERM]), err
    assert workers
    assert not (out / ".dask-scratch").exists()


def test_ctrl_c_to_a_dask_sweeps_process_group_prints_no_worker_traceback(tmp_path):
    """A terminal's Ctrl-C reaches every process of the group: the local cluster's workers
    ignore it (the sweep's process stops them), so none prints a KeyboardInterrupt."""
    out, status, err, workers = sweep_then_signal(tmp_path, signal.SIGINT, 2,
                                                  "--executor", "dask", group=True)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert status in (0, STOPPED[signal.SIGINT]), err
    assert workers
    assert not (out / ".dask-scratch").exists()
