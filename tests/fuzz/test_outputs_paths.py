"""Fuzz `sasim run --out` / `compare --out` over output paths: a new directory, missing
parents, a file, a path under a file, an unwritable parent, an empty directory, a previous
run's directory (with stale files), somebody else's directory; with --save-outputs,
--timeline and --plot inside or outside the directory, and failures after the run.

The promise (docs/getting-started.md, "Files a run writes"): exit 0 or 2, one line and no
traceback on error, either the complete new output (and nothing else in DIR) or the previous
state untouched, and no temporaries left behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.outputs_harness import REPO, assert_clean_exit, snapshot, temporaries

SCALESIM_CFG = REPO / "tests" / "data" / "scalesim" / "conv_os_4x8" / "scalesim.cfg"
#: where --out goes, and whether a run may succeed there
SITUATIONS = {"new": True, "missing_parents": True, "empty_dir": True, "previous_run": True,
              "file": False, "under_a_file": False, "unwritable": False, "foreign_dir": False}


def _unwritable(root: Path) -> Path:
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing: use /proc instead
        return Path("/proc/sasim-fuzz/out")
    locked = root / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "out"


def make_out(root: Path, situation: str) -> Path:
    """Set up ``situation`` under ``root``; returns the --out path."""
    out = root / "out"
    if situation == "missing_parents":
        return root / "a" / "b" / "out"
    if situation == "empty_dir":
        out.mkdir()
    elif situation == "previous_run":
        out.mkdir()
        (out / "summary.json").write_text('{"format": 1, "old": true}\n')
        (out / "COMPUTE_REPORT.csv").write_text("stale\n")
        (out / "outputs.npz").write_bytes(b"stale" * 1000)
        (out / "t.json").write_text("stale\n")
    elif situation == "file":
        out.write_text("a file\n")
    elif situation == "under_a_file":
        (root / "blocker").write_text("")
        return root / "blocker" / "out"
    elif situation == "unwritable":
        return _unwritable(root)
    elif situation == "foreign_dir":
        out.mkdir()
        (out / "notes.txt").write_text("mine\n")
    return out


def strict_json(path: Path):
    def refuse(constant: str):
        raise AssertionError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(situation=st.sampled_from(sorted(SITUATIONS)), save=st.booleans(),
       scalesim=st.booleans(),
       timeline=st.sampled_from([None, "inside", "outside", "under_a_file"]),
       plot=st.sampled_from([None, "inside", "outside", "bad_suffix"]))
def test_run_out_is_whole_or_not_at_all(cli, situation, save, scalesim, timeline, plot):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = make_out(root, situation)
        args = ["run", "--arch", SCALESIM_CFG if scalesim else "os_sa_16x16",
                "--workload", "digits_int8", "--out", out,
                "--save-outputs" if save else "--timing-only"]
        inside = {"summary.json", "layers.csv"} | ({"COMPUTE_REPORT.csv"} if scalesim else set()) \
            | ({"outputs.npz"} if save else set())
        outside = []
        if timeline is not None:
            (root / "blocker").write_text("")
            target = {"inside": out / "t.json", "outside": root / "x" / "t.json",
                      "under_a_file": root / "blocker" / "t.json"}[timeline]
            args += ["--timeline", target]
            if timeline == "inside":
                inside.add("t.json")
            else:
                outside.append(target)
        if plot is not None:
            target = {"inside": out / "p.svg", "outside": root / "y" / "p.svg",
                      "bad_suffix": root / "p.txt"}[plot]
            args += ["--plot", target]
            if plot == "inside":
                inside.add("p.svg")
            else:
                outside.append(target)
        before = snapshot(root)
        result = cli(*args)
        assert_clean_exit(result.status, result.err)
        assert not temporaries(root)
        may_succeed = SITUATIONS[situation] and timeline != "under_a_file" \
            and plot != "bad_suffix"
        assert result.status == (0 if may_succeed else 2), result.err
        if result.status != 0:
            assert snapshot(root) == before  # the previous state, parents not created
            return
        assert {p.name for p in out.iterdir()} == inside  # replaced, not merged
        summary = strict_json(out / "summary.json")
        assert summary["format"] == 1 and summary["workload"] == "digits_resnet"
        if save:
            with np.load(out / "outputs.npz") as saved:
                assert len(saved.files) == len(summary["layers"])
        for target in outside:
            assert target.stat().st_size > 0
        assert (out.stat().st_mode & 0o777) == 0o777 & ~_umask()
        assert ((out / "summary.json").stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_compare_out_is_whole_or_not_at_all(cli, tmp_path, situation):
    out = make_out(tmp_path, situation)
    if situation == "previous_run":
        (out / "comparison.json").write_text("[]\n")
    before = snapshot(tmp_path)
    result = cli("compare", "--arch", "os_sa_16x16", "--arch", "sysmt_2t_16x16",
                 "--workload", "alexnet", "--timing-only", "--out", out)
    assert_clean_exit(result.status, result.err)
    assert not temporaries(tmp_path)
    if not SITUATIONS[situation]:
        assert result.status == 2 and snapshot(tmp_path) == before
        return
    assert result.status == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["comparison.csv", "comparison.json",
                                                         "comparison.png"]
    assert [r["arch"] for r in strict_json(out / "comparison.json")] == ["os_sa_16x16",
                                                                         "sysmt_2t_16x16"]


def test_a_killed_runs_staging_is_removed_by_the_next_run(cli, tmp_path):
    # what SIGKILL leaves: a staging directory named after a process that no longer runs
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    stale = tmp_path / f".sasim-tmp.{dead}.0000.out"
    stale.mkdir()
    (stale / "outputs.npz").write_bytes(b"x" * 100_000)
    live = tmp_path / f".sasim-tmp.{os.getpid() + 0}.0000.other"  # this process: kept
    live.mkdir()
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "alexnet", "--timing-only",
                 "--out", tmp_path / "out")
    assert result.status == 0, result.err
    assert not stale.exists() and live.exists()


def test_out_holding_the_current_directory_is_refused(cli, tmp_path, monkeypatch):
    inner = tmp_path / "out" / "here"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    before = snapshot(tmp_path)
    for out in (inner, tmp_path / "out"):
        result = cli("run", "--arch", "os_sa_16x16", "--workload", "alexnet", "--timing-only",
                     "--out", out)
        assert_clean_exit(result.status, result.err)
        assert result.status == 2 and "holds the current directory" in result.err
    assert snapshot(tmp_path) == before


def test_out_through_a_symlink_replaces_the_linked_directory(cli, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "summary.json").write_text("{}\n")
    (real / "outputs.npz").write_text("stale\n")
    (tmp_path / "link").symlink_to(real)
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "alexnet", "--timing-only",
                 "--out", tmp_path / "link")
    assert result.status == 0, result.err
    assert (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in real.iterdir()) == ["layers.csv", "summary.json"]
    assert not temporaries(tmp_path)


NAMES = st.one_of(
    st.sampled_from(["x" * 300, "y" * 250, "a b", "ü.d", "..", ".", "-", "out.png",
                     "a/" * 20 + "z", "x" * 300 + "/z", "loop/z", "file/z"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
            min_size=1, max_size=40))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=NAMES, flag=st.sampled_from(["run --out", "run --timeline", "run --plot",
                                         "compare --out", "plot", "plot --out"]))
def test_any_output_name_is_written_or_one_line(cli, name, flag):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "loop").symlink_to(root / "loop")
        (root / "file").write_text("")
        target = root / name
        command, _, option = flag.partition(" ")
        if command == "run":
            args = ["run", "--arch", "os_sa_16x16", "--workload", "alexnet", "--timing-only",
                    option, target]
        elif command == "compare":
            args = ["compare", "--arch", "os_sa_16x16", "--workload", "alexnet",
                    "--timing-only", "--out", target]
        elif option:
            args = ["plot", REPO / "tests" / "data", "--kind", "speedup", "--out", target]
        else:
            args = ["plot", target, "--kind", "speedup"]
        result = cli(*args)
        assert_clean_exit(result.status, result.err)
        assert not temporaries(root)


@pytest.mark.parametrize("flag", ["--timeline", "--plot"])
@pytest.mark.parametrize("kind", ["fifo", "device", "socket", "link", "dangling_link"])
def test_an_output_file_never_replaces_a_special_file_or_a_link(cli, tmp_path, flag, kind):
    """A file output is renamed into place: over a device (``/dev/null``), a named pipe or a
    socket that would replace it, so those are refused; a symbolic link is kept and the
    file it names is written (as ``--out`` follows links)."""
    import socket
    import stat

    suffix = ".json" if flag == "--timeline" else ".png"
    target = tmp_path / f"target{suffix}"
    real = tmp_path / f"real{suffix}"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        if os.geteuid() != 0:
            target = Path("/dev/null")  # not ours to create: the system's own
        else:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(target))
        server.close()
    else:
        if kind == "link":
            real.write_text("old\n")
        target.symlink_to(real.name)
    mode = target.lstat().st_mode
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--timing-only",
                 flag, target)
    assert_clean_exit(result.status, result.err)
    assert not temporaries(tmp_path)
    assert target.lstat().st_mode == mode  # the same kind of file, still there
    if kind.endswith("link"):
        assert result.status == 0, result.err
        assert real.stat().st_size > 100 and real.read_bytes() != b"old\n"
    else:
        assert result.status == 2
        assert "not a regular file" in result.err and str(target) in result.err
