"""The DRAM fast path stays exact (docs/memory-model.md, "The per-request controller,
compiled"):

- the compiled FR-FCFS controller equals the Python one (``simulate_requests``, the slow
  obviously-correct reference) command for command on random requests: sequential streams
  and random addresses, reads and writes mixed, every preset, both mappings and page
  policies, short rows and refresh intervals, foreign banks or not;
- :func:`stream` equals the Python controller on long sequential streams that span several
  periods of the address pattern and several refresh points (where the closed form stops
  at a reorder or a refresh and the compiled controller takes over);
- a DDR4 run, served in order throughout, never loads numba.
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
from simulator.memory.dram_requests import serve_requests, serve_stream, simulate_requests

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
    served = serve_stream(spec, offset, bursts, write, start=start, foreign=foreign,
                          next_refresh=refresh)
    assert (served.end, served.last_column, served.activates, served.misses,
            served.refreshes) == (slow.end, max(slow.column), slow.activates, slow.misses,
                                  slow.refreshes)


def test_the_shipped_lpddr5_streams_leave_the_closed_form():
    """What the compiled controller is for: on LPDDR5 a stream's activates come slower than
    its bursts, so FR-FCFS serves it out of order from its first row on."""
    spec = dram_spec("lpddr5_6400")
    result = stream(spec, 5000, False, 0, next_refresh=spec.tREFI)
    assert not result.in_order and result.refreshes >= 2


def test_a_ddr4_run_never_loads_numba():
    """DDR4 streams are served in order: the closed form alone, without the compiled
    controller (a run that does not need it does not pay for numba's import)."""
    code = ("import sys\nfrom simulator.api import load_arch, load_workload, simulate\n"
            "result = simulate(load_arch('os_sa_16x16', ['memory.dram=ddr4_3200']),\n"
            "                  load_workload('resnet18'), functional=False)\n"
            "print(result.layers[0].dram['preset'], 'numba' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, check=True, timeout=120)
    assert done.stdout.split()[-2:] == ["ddr4_3200", "False"]
