"""Run the CLI in-process and check the promise every input makes (docs/config-reference.md).

Bad input gives exactly one line on stderr, under :data:`MAX_LINE` characters, that names
the file it came from; the exit status is 2; there is never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import time
import traceback

from simulator.cli import main

__all__ = ["Outcome", "run_cli", "assert_promise", "assert_refused", "MAX_LINE"]

#: Bound on the one stderr line of a refusal ("sasim: error: " plus the bounded message).
MAX_LINE = 600


@dataclasses.dataclass
class Outcome:
    status: int
    out: str
    err: str
    crash: str | None  # the traceback of an exception that escaped main(), if any


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_cli(*argv, timeout: int = 60) -> Outcome:
    """``sasim ARGV`` in-process: exit status, stdout, stderr and any escaped exception.

    ``timeout`` catches hangs; it is generous because a first run compiles numba kernels
    and the machine may be shared (a 20 s limit was hit under load).
    """
    out, err = io.StringIO(), io.StringIO()
    crash = None
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main([str(a) for a in argv])
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
    except _Timeout:
        status, crash = -1, f"timed out after {timeout} s: sasim {' '.join(map(str, argv))}"
    except Exception:  # noqa: BLE001 - a test harness must record any escape
        status, crash = 1, traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    slow_log = os.environ.get("SASIM_FUZZ_SLOW_LOG")
    if slow_log and time.perf_counter() - start > 3:
        with open(slow_log, "a", encoding="utf-8") as fh:
            fh.write(f"{time.perf_counter() - start:.1f} s: {argv}\n")
            for arg in argv:
                if os.path.isfile(str(arg)) and os.path.getsize(str(arg)) < 20000:
                    fh.write(open(str(arg), errors="replace").read() + "\n")
    return Outcome(status, out.getvalue(), err.getvalue(), crash)


def assert_promise(result: Outcome, names: str | None = None) -> None:
    """Exit 0, or exit 2 with one bounded line on stderr naming ``names`` (a file)."""
    assert result.crash is None, result.crash
    assert "Traceback" not in result.err, result.err
    assert result.status in (0, 2), (result.status, result.err)
    if result.status == 2:
        lines = result.err.splitlines()
        assert len(lines) == 1, result.err[:2000]
        assert len(lines[0]) <= MAX_LINE, lines[0][:2000]
        assert lines[0].startswith("sasim: error: "), lines[0]
        if names is not None:
            assert names in lines[0], (names, lines[0])


def assert_refused(result: Outcome, *words: str) -> str:
    """Exit 2 with one bounded line containing every one of ``words``; returns the line."""
    assert_promise(result)
    assert result.status == 2, (result.status, result.out[-2000:], result.err)
    line = result.err.strip()
    for word in words:
        assert word in line, (word, line)
    return line
