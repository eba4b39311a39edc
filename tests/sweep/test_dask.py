"""The same sweep on the local pool and on a Dask LocalCluster gives the same results.csv, and
the Dask run leaves no scratch files outside its output directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import read_csv, without

REPO = Path(__file__).resolve().parents[2]


def test_local_and_dask_give_identical_results(write_spec, tmp_path, cli):
    pytest.importorskip("distributed", reason="needs the 'distributed' extra (make test "
                                              "installs it)")
    spec = write_spec({"base": ["os_sa_16x16", "sysmt_2t_16x16", "swis_g8_n3_16x16"],
                       "workloads": ["tiny.yaml", "small.yaml"],
                       "grid": {"array.rows": [4, 8]}, "baseline": "os_sa_16x16"})
    local = tmp_path / "local"
    assert cli("sweep", spec, "--out", local, "--workers", "2").status == 0
    scratch = tmp_path / "tmp"  # the Dask run's temporary directory: must stay empty
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), TEMP=str(scratch), TMP=str(scratch),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    dask = tmp_path / "dask"
    done = subprocess.run([sys.executable, "-m", "simulator", "sweep", str(spec), "--out",
                           str(dask), "--executor", "dask", "--workers", "2"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "on 2 dask workers" in done.stdout
    rows = read_csv(dask / "results.csv")
    assert len(rows) == 2 * 7 and not any(r["error"] for r in rows)
    assert without(rows, "elapsed_s") == without(read_csv(local / "results.csv"), "elapsed_s")
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in dask.iterdir()) == ["points", "results.csv", "sweep.json",
                                                          "sweep.lock"]


def test_dask_options_are_checked(write_spec, cli, tmp_path):
    spec = write_spec({"base": "os_sa_16x16", "workloads": ["tiny.yaml"]})
    result = cli("sweep", spec, "--out", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:1")
    assert result.status == 2
    assert result.err == ("sasim: error: --scheduler ADDRESS runs on a Dask cluster: use "
                          "--executor dask\n")
    result = cli("sweep", spec, "--out", tmp_path / "o", "--workers", "0")
    assert result.status == 2 and "--workers: expected a positive integer, got 0" in result.err


@pytest.mark.parametrize("address", ["notanaddress", "tcp://[::1", "inproc://x",
                                     "tls://127.0.0.1:1", "ucx://127.0.0.1:1", ""])
def test_a_scheduler_address_that_is_not_tcp_host_port_is_refused(write_spec, cli, tmp_path,
                                                                   address):
    spec = write_spec({"base": "os_sa_16x16", "workloads": ["tiny.yaml"]})
    out = tmp_path / "new" / "deep" / "o"
    result = cli("sweep", spec, "--out", out, "--executor", "dask", "--scheduler", address)
    assert result.status == 2 and result.err.count("\n") == 1, result.err
    assert "expected a Dask scheduler address tcp://HOST:PORT" in result.err
    assert not (tmp_path / "new").exists()
