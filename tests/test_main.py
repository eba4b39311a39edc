"""The ``sasim`` entry point's process settings (simulator/__main__.py, docs/performance.md
"Start-up")."""

from __future__ import annotations

import gc
import sys

import pytest

import simulator.__main__ as entry_point


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
