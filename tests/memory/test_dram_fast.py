"""The DRAM fast path stays exact (docs/memory-model.md, "The per-request controller,
compiled"):

- the Python stream controller and the compiled FR-FCFS controller equal the Python
  reference on sequential streams, and the compiled one equals it (``simulate_requests``, the slow
  obviously-correct reference) command for command on random requests: sequential streams
  and random addresses, reads and writes mixed, every preset, both mappings and page
  policies, short rows and refresh intervals, foreign banks or not;
- :func:`stream` equals the Python controller on long sequential streams that span several
  periods of the address pattern and several refresh points (where the closed form stops
  at a reorder or a refresh and the compiled controller takes over);
- :func:`~simulator.memory.dram_stream.serve_stream` turns from Python to the compiled
  controller after ``PYTHON_BURSTS`` bursts, and a ResNet-18 run (DDR4, or the shipped
  LPDDR5) never loads numba.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config.dram import DramConfig, dram_spec
from simulator.memory.dram import _period, stream
from simulator.memory import dram_stream
from simulator.memory.dram_requests import PAST, simulate_requests
from simulator.memory.dram_stream import compiled_stream, python_stream, serve_requests

PRESETS = ("ddr4_3200", "lpddr5_6400", "hbm2e")
REPO = Path(__file__).resolve().parents[2]


@st.composite
def devices(draw, short: bool = False):
    """A preset with a mapping and a page policy, possibly (``short``: always) with small
    rows and a short refresh interval, so that row changes and refreshes come often."""
    over = {"preset": draw(st.sampled_from(PRESETS)),
            "mapping": draw(st.sampled_from(["row_bank_col", "row_col_bank"])),
            "page_policy": draw(st.sampled_from(["open", "closed"]))}
    if short or draw(st.booleans()):
        over["row_bytes"] = draw(st.sampled_from([256, 512, 1024]))
        over["tREFI"] = draw(st.sampled_from([1200, 2000, 4000]))
    return dram_spec(DramConfig(**over))


@st.composite
def request_lists(draw):
    """Requests of one channel: a sequential run from an offset, or random addresses (rows
    far apart), each a read or a write, in one direction or mixed."""
    count = draw(st.integers(0, 200))
    mixed = draw(st.booleans())
    direction = draw(st.booleans())
    if draw(st.booleans()):
        offset = draw(st.integers(0, 5000))
        addresses = [offset + j for j in range(count)]
    else:
        addresses = draw(st.lists(st.integers(0, 1 << 20), min_size=count, max_size=count))
    writes = (draw(st.lists(st.booleans(), min_size=count, max_size=count)) if mixed
              else [direction] * count)
    return list(zip(addresses, writes))


@settings(max_examples=150, deadline=None)
@given(devices(), request_lists(), st.integers(0, 5000), st.booleans(),
       st.one_of(st.none(), st.integers(1, 3000)))
def test_compiled_controller_equals_the_python_one(spec, requests, start, foreign, refresh):
    refresh = None if refresh is None else start + refresh
    slow = simulate_requests(spec, requests, start=start, foreign=foreign,
                             next_refresh=refresh)
    fast = serve_requests(spec, requests, start=start, foreign=foreign, next_refresh=refresh)
    assert fast == slow  # every request's column command and data end, and every count


@st.composite
def sequential_streams(draw):
    """A device and a sequential stream on it: length, direction, start, offset, foreign
    banks, the first refresh point (or none)."""
    spec = draw(devices())
    start = draw(st.integers(0, 5000))
    refresh = draw(st.one_of(st.none(), st.integers(start + 1, start + 3000)))
    return (spec, draw(st.integers(0, 300)), draw(st.booleans()), start,
            draw(st.integers(0, 5000)), draw(st.booleans()), refresh)


@settings(max_examples=150, deadline=None)
@given(sequential_streams())
def test_both_twins_equal_the_python_controller_on_streams(case):
    spec, bursts, write, start, offset, foreign, refresh = case
    slow = simulate_requests(spec, [(offset + j, write) for j in range(bursts)], start=start,
                             foreign=foreign, next_refresh=refresh)
    expected = (slow.end, max(slow.column, default=PAST), slow.activates, slow.misses,
                slow.refreshes)
    for twin in (python_stream, compiled_stream):
        served = twin(spec, offset, bursts, write, start=start, foreign=foreign,
                      next_refresh=refresh)
        assert (served.end, served.last_column, served.activates, served.misses,
                served.refreshes) == expected, twin.__name__


def test_serve_stream_turns_to_the_compiled_controller(monkeypatch, stream_twins):
    """Without the kernels compiled ahead of time: Python for a process's first
    PYTHON_BURSTS bursts, then compiled by numba: the same results (with them, compiled from
    the first: tests/hw/test_compiled_kernels.py)."""
    spec = dram_spec("lpddr5_6400")
    monkeypatch.setattr(dram_stream, "_compiled_ahead", lambda: False)
    monkeypatch.setattr(dram_stream, "_python_bursts", [0])
    monkeypatch.setattr(dram_stream, "PYTHON_BURSTS", 1500)
    results = [dram_stream.serve_stream(spec, 0, 1000, False, start=0, next_refresh=900)
               for _ in range(2)]
    assert stream_twins == ["python_stream", "compiled_stream"]
    assert results[0] == results[1]


@settings(max_examples=25, deadline=None)
@given(devices(short=True), st.data())
def test_long_streams_equal_the_python_controller(spec, data):
    """Several periods (``banks x column_bursts`` bursts) and several refresh points."""
    period, step = _period(spec), max(spec.tCCD_S, spec.burst_cycles)
    # column commands go at least `step` apart: this many reach the second refresh point
    least = max(2 * period, 2 * spec.tREFI // step + 2)
    bursts = data.draw(st.integers(least, least + period))
    write, foreign = data.draw(st.booleans()), data.draw(st.booleans())
    start = data.draw(st.integers(0, 5000))
    offset = data.draw(st.integers(0, 4 * period))
    refresh = start + data.draw(st.integers(1, spec.tREFI))
    fast = stream(spec, bursts, write, start, offset=offset, foreign=foreign,
                  next_refresh=refresh)
    slow = simulate_requests(spec, [(offset + j, write) for j in range(bursts)], start=start,
                             foreign=foreign, next_refresh=refresh)
    assert slow.refreshes >= 2
    assert (fast.end, fast.last_column) == (slow.end, max(slow.column))
    assert (fast.activates, fast.misses, fast.refreshes) == (
        slow.activates, slow.misses, slow.refreshes)
    for twin in (python_stream, compiled_stream):
        served = twin(spec, offset, bursts, write, start=start, foreign=foreign,
                      next_refresh=refresh)
        assert (served.end, served.last_column, served.activates, served.misses,
                served.refreshes) == (slow.end, max(slow.column), slow.activates,
                                      slow.misses, slow.refreshes), twin.__name__


def test_the_shipped_lpddr5_streams_leave_the_closed_form():
    """What the compiled controller is for: on LPDDR5 a stream's activates come slower than
    its bursts, so FR-FCFS serves it out of order from its first row on."""
    spec = dram_spec("lpddr5_6400")
    result = stream(spec, 5000, False, 0, next_refresh=spec.tREFI)
    assert not result.in_order and result.refreshes >= 2


def test_a_resnet18_run_never_loads_numba():
    """DDR4 streams are served in order (the closed form alone) and the shipped chip's
    LPDDR5 needs fewer than PYTHON_BURSTS bursts of the per-request controller: neither
    run pays for numba's import (without the kernels compiled ahead of time, which need
    no numba either)."""
    code = ("import sys\nfrom simulator.api import load_arch, load_workload, simulate\n"
            "for over in (['memory.dram=ddr4_3200'], []):\n"
            "    result = simulate(load_arch('os_sa_16x16', over), load_workload('resnet18'),\n"
            "                      functional=False)\n"
            "    print(result.layers[0].dram['preset'])\n"
            "print('numba' in sys.modules)")
    for aot in ("0", ""):
        env = {**os.environ, "PYTHONPATH": str(REPO), "SASIM_AOT": aot}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=REPO, check=True, timeout=120)
        assert done.stdout.split()[-3:] == ["ddr4_3200", "lpddr5_6400", "False"]
