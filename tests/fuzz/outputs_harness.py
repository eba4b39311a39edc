"""Helpers of the output and signal fuzz tests: tree snapshots, leftovers, processes."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Names of temporaries sasim may create (simulator/outputs.py), and the names older
#: versions used for a streamed outputs.npz.
TEMP_MARKERS = (".sasim-tmp.", ".outputs.")


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content hash ('dir' for directories)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temporaries(root: Path) -> list[Path]:
    """Temporaries left anywhere under ``root``."""
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_MARKERS)]


def assert_clean_exit(status: int, err: str, allowed: tuple[int, ...] = (0, 2)) -> None:
    """Exit status among ``allowed``, no traceback, an error is one line."""
    assert status in allowed, (status, err)
    assert "Traceback" not in err, err
    if status == 2:
        assert err.startswith("sasim: error: ") and err.count("\n") == 1, err


def environment() -> dict[str, str]:
    """The environment of a ``python -m simulator`` subprocess using this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    env.setdefault("MPLBACKEND", "Agg")
    return env


def sasim(*argv: object) -> list[str]:
    return [sys.executable, "-m", "simulator", *map(str, argv)]


def session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a sweep started with start_new_session=True:
    its fork server and workers stay in the session even when re-parented to init)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            out.append(int(entry.name))
    return out


def wait_until_gone(sid: int, seconds: float) -> list[int]:
    """Wait (bounded) for session ``sid`` to have no process; returns the survivors."""
    deadline = time.monotonic() + seconds
    alive = session_processes(sid)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = session_processes(sid)
    return alive
