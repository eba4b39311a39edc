"""Shared fixtures: repository paths and an in-process CLI runner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simulator.cli import main

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@dataclasses.dataclass
class CliResult:
    status: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``sasim ARGV`` in-process and return its exit status, stdout and stderr."""

    def run(*argv: str) -> CliResult:
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            status = exc.code
        captured = capsys.readouterr()
        return CliResult(status, captured.out, captured.err)

    return run


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def stream_twins(monkeypatch) -> list[str]:
    """The names of the DRAM stream twins (``python_stream``, ``compiled_stream``) that
    ``serve_stream`` calls, in order, while the test runs."""
    from simulator.memory import dram_stream

    used: list[str] = []
    for twin in ("python_stream", "compiled_stream"):
        real = getattr(dram_stream, twin)
        monkeypatch.setattr(dram_stream, twin,
                            lambda *a, _real=real, _name=twin, **k: used.append(_name)
                            or _real(*a, **k))
    return used
