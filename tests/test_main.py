"""The ``sasim`` entry point's process settings (simulator/__main__.py, docs/performance.md
"Start-up")."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

import simulator.__main__ as entry_point

REPO = Path(__file__).resolve().parents[1]


def test_entry_freezes_the_imports_out_of_the_collector(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sasim", "--version"])
    monkeypatch.setattr(entry_point, "_keep_freed_memory", lambda: None)
    try:
        with pytest.raises(SystemExit) as stop:  # argparse's --version exits
            entry_point.entry()
        assert stop.value.code == 0 and capsys.readouterr().out.startswith("sasim")
        assert gc.get_freeze_count() > 0 and gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


class _Libc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_memory_is_kept_unless_the_user_tuned_malloc(monkeypatch):
    import ctypes

    libc = _Libc()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    for key in [k for k in list(__import__("os").environ) if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    entry_point._keep_freed_memory()
    assert libc.calls == list(entry_point._KEEP_FREED)
    assert dict(libc.calls)[entry_point._M_TRIM_THRESHOLD] >= 256 << 20
    libc.calls.clear()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    entry_point._keep_freed_memory()
    assert libc.calls == []


def test_an_allocator_without_mallopt_is_left_alone(monkeypatch):
    import ctypes

    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())
    entry_point._keep_freed_memory()  # no AttributeError


def test_a_stop_signal_once_the_outputs_are_committed_lets_the_command_finish(tmp_path):
    """A SIGTERM that comes while (or after) the outputs are renamed into place is ignored:
    the outputs are whole and the command ends normally, not with half of them or with a
    "stopped" status."""
    import os
    import signal

    from simulator import cli
    from simulator.outputs import OutputSet

    with pytest.raises(cli._Stopped):  # before the commit: stopped, nothing written
        with cli._signals_stop_cleanly(), OutputSet() as outputs:
            folder = outputs.directory(tmp_path / "first", "summary.json")
            (folder / "summary.json").write_text("{}")
            os.kill(os.getpid(), signal.SIGTERM)
            outputs.commit()
    assert not (tmp_path / "first").exists()
    with cli._signals_stop_cleanly(), OutputSet() as outputs:
        folder = outputs.directory(tmp_path / "second", "summary.json")
        (folder / "summary.json").write_text("{}")
        outputs.commit()
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the run is complete
    assert (tmp_path / "second" / "summary.json").read_text() == "{}"
    with pytest.raises(cli._Stopped):  # the next command starts afresh
        with cli._signals_stop_cleanly():
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_stop_signal_at_start_up_ends_the_process_at_once(monkeypatch, capfd):
    """Outside a command's run a stop signal ends the process there and then (os._exit),
    also while a module is half imported: an exception raised into an import could become
    another error with a traceback (numpy turns one into an ImportError)."""
    import signal
    import types

    exits = []

    def fake_exit(status: int) -> None:
        exits.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(entry_point.os, "_exit", fake_exit)
    half = types.ModuleType("simulator.outputs")  # being imported: no outputs_final yet
    monkeypatch.setitem(sys.modules, "simulator.outputs", half)
    with pytest.raises(SystemExit):
        entry_point._quit_early(signal.SIGTERM, None)
    assert exits == [128 + signal.SIGTERM]
    assert capfd.readouterr().err == "sasim: stopped by SIGTERM\n"


def test_a_stop_signal_at_any_early_moment_leaves_no_traceback(tmp_path):
    """``sasim run --save-outputs`` stopped in its first 0.4 s, whatever it was importing
    or loading: one line, status 128 + N (or killed by SIGTERM's default action in the
    interpreter's own start-up, before sasim's code runs), nothing written."""
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    for index, delay in enumerate((0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)):
        signum = signal.SIGTERM if index % 2 == 0 or delay < 0.1 else signal.SIGINT
        out = tmp_path / f"run{index}"
        process = subprocess.Popen(
            [sys.executable, "-m", "simulator", "run", "--arch", "sysmt_4t_16x16",
             "--workload", "resnet18", "--out", str(out), "--save-outputs"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        time.sleep(delay)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        assert "Traceback" not in err and "Error" not in err, err
        assert process.returncode in (128 + signum, -signum), (delay, process.returncode, err)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
