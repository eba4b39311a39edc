"""The per-request FR-FCFS controller, fast: what a stream that FR-FCFS does not serve in
order runs on (docs/memory-model.md, "The per-request controller, fast").

Two twins of :func:`~simulator.memory.dram_requests.simulate_requests` (the slow,
obviously-correct controller), each tested equal to it on random inputs:

- :func:`python_stream`: a sequential stream (consecutive burst addresses, one direction)
  in plain Python. Such a stream's requests to one bank are queued in address order, so
  their rows never decrease, and the open row is never above the oldest queued request's
  row (a bank opens the row of its oldest queued request, and requests enter the queue in
  address order): the bank's row hits are the first requests of its queue. What FR-FCFS
  can issue next for a bank is therefore decided by the oldest request queued for it — a
  column command when it hits, else a precharge or an activate — and a decision looks at
  one request per bank instead of the whole queue. A column command of a younger hit to
  the same bank would be ready at the same cycle and lose to the older one.
- :func:`compiled_stream` (a sequential stream) and :func:`serve_requests` (any requests,
  reads and writes mixed): the numba kernel of :mod:`simulator.kernels.dram_controller`
  (the reference's decisions, compiled).

:func:`serve_stream` takes the compiled kernel when it was compiled ahead of time
(:mod:`simulator.kernels.compiled`: no numba to import). Otherwise it takes Python while a
process has simulated fewer than :data:`PYTHON_BURSTS` bursts that way, then numba's
kernel: numba's import and its first call cost about what Python takes for that many
bursts, so a run that needs few (a ResNet-18 on the shipped LPDDR5 chip) never pays for
numba and one that needs many (a Llama-2 prefill) pays for it once. All give the same
schedule.
"""

from __future__ import annotations

import functools
from collections import deque

from simulator.config.dram import DramSpec
from simulator.memory.dram_requests import PAST, RequestSchedule, place
from simulator.records import record

__all__ = ["ServedStream", "serve_stream", "python_stream", "compiled_stream",
           "serve_requests", "PYTHON_BURSTS"]

#: Bursts a process simulates in Python before it turns to the compiled controller (about
#: 0.5 s of Python, the cost of numba's import and first call; docs/memory-model.md).
PYTHON_BURSTS = 200_000
_python_bursts = [0]  # bursts this process has simulated in Python


@record
class ServedStream:
    """A sequential stream on the per-request controller: when its last data ended, when
    its last column command went, and the commands it took."""

    end: int
    last_column: int
    activates: int
    misses: int
    refreshes: int


def serve_stream(spec: DramSpec, offset: int, bursts: int, write: bool, *, start: int = 0,
                 foreign: bool = False, next_refresh: int | None = None) -> ServedStream:
    """The per-request controller on the sequential stream of ``bursts`` bursts from burst
    address ``offset``, all reads or all writes, waiting at ``start``: what
    ``simulate_requests(spec, [(offset + j, write) for j in range(bursts)], ...)`` gives.
    Compiled ahead of time, else Python for a process's first :data:`PYTHON_BURSTS`
    bursts, then compiled by numba."""
    if _python_bursts[0] + bursts <= PYTHON_BURSTS and not _compiled_ahead():
        _python_bursts[0] += bursts
        return python_stream(spec, offset, bursts, write, start=start, foreign=foreign,
                             next_refresh=next_refresh)
    return compiled_stream(spec, offset, bursts, write, start=start, foreign=foreign,
                           next_refresh=next_refresh)


@functools.cache
def _compiled_ahead() -> bool:
    from simulator.kernels.compiled import is_compiled

    return is_compiled("simulator.kernels.dram_controller_loops")


def python_stream(spec: DramSpec, offset: int, bursts: int, write: bool, *, start: int = 0,
                  foreign: bool = False, next_refresh: int | None = None) -> ServedStream:
    """:func:`serve_stream` in plain Python, one request per bank per decision (see the
    module docstring for why that is enough)."""
    s = spec
    groups, banks = s.bank_groups, s.banks
    closed_page = s.page_policy == "closed"
    burst, t_rcd, t_rp, t_ras, t_rc = s.burst_cycles, s.tRCD, s.tRP, s.tRAS, s.tRC
    t_ccd_s, t_ccd_l, t_rrd_s, t_rrd_l, t_faw = s.tCCD_S, s.tCCD_L, s.tRRD_S, s.tRRD_L, s.tFAW
    t_wr, t_wtr, t_rtp, t_cl, t_cwl = s.tWR, s.tWTR, s.tRTP, s.tCL, s.tCWL
    where = _locator(s, offset)
    # bank state: open row (None: precharged; -1: another transfer's), last ACT, PRE, RD,
    # end of write data, a column command since the last ACT
    b_row: list[int | None] = [-1 if foreign else None] * banks
    b_act, b_pre, b_read, b_write_end = [PAST] * banks, [PAST] * banks, [PAST] * banks, [
        PAST] * banks
    b_accessed = [True] * banks
    acts = [PAST] * 4  # the last four activates, acts[k % 4]
    n_acts = activates = misses = refreshes = 0
    group_act, group_col = [PAST] * groups, [PAST] * groups
    last_col = last_read = last_write = last_write_end = PAST
    now = floor = start
    refresh_at = next_refresh
    queues: list[deque[tuple[int, int]]] = [deque() for _ in range(banks)]  # (request, row)
    queued = admitted = min(bursts, s.queue_depth)
    for j in range(admitted):
        bank, row = where(j)
        queues[bank].append((j, row))
    end, last = (start if bursts == 0 else PAST), PAST
    while queued:
        if write:
            common = max(floor, now, last_col + t_ccd_s, last_write + burst,
                         last_read + t_cl + burst + 2 - t_cwl)
        else:
            common = max(floor, now, last_col + t_ccd_s, last_read + burst,
                         last_write_end + t_wtr)
        best: tuple[int, int, int] | None = None  # (time, priority, age) as the reference
        kind = bank_of_best = 0
        for b in range(banks):
            queue = queues[b]
            row = b_row[b]
            if not queue:
                if not closed_page or row is None:
                    continue
                key = (max(b_act[b] + t_ras, b_read[b] + t_rtp, b_write_end[b] + t_wr,
                           floor, now), 1, bursts)
                if best is None or key < best:
                    best, kind, bank_of_best = key, 2, b
                continue
            r, wanted = queue[0]
            if row == wanted:
                key = (max(common, b_act[b] + t_rcd, group_col[b % groups] + t_ccd_l), 0, r)
                k = 0
            elif row is None:
                t = max(floor, now, b_pre[b] + t_rp, b_act[b] + t_rc,
                        group_act[b % groups] + t_rrd_l)
                if n_acts:
                    t = max(t, acts[(n_acts - 1) % 4] + t_rrd_s)
                    if n_acts >= 4:
                        t = max(t, acts[n_acts % 4] + t_faw)
                key, k = (t, 1, r), 1
            else:
                key = (max(b_act[b] + t_ras, b_read[b] + t_rtp, b_write_end[b] + t_wr,
                           floor, now), 1, r)
                k = 2
            if best is None or key < best:
                best, kind, bank_of_best = key, k, b
        assert best is not None  # a queued request always has a next command
        t, b = best[0], bank_of_best
        if refresh_at is not None and t >= refresh_at:
            begin = max(refresh_at, floor)
            for c in range(banks):
                if b_row[c] is not None:
                    begin = max(begin, b_act[c] + t_ras, b_read[c] + t_rtp,
                                b_write_end[c] + t_wr)
            for c in range(banks):
                if b_row[c] is not None:
                    b_row[c], b_pre[c] = None, begin
            floor = now = begin + t_rp + s.tRFC
            refreshes += 1
            refresh_at += s.tREFI
            continue
        now = t
        if kind == 1:  # activate the row of the bank's oldest request
            b_row[b], b_act[b], b_accessed[b] = queues[b][0][1], t, False
            acts[n_acts % 4] = t
            n_acts += 1
            activates += 1
            group_act[b % groups] = t
        elif kind == 2:
            b_row[b], b_pre[b] = None, t
        else:  # the column command of the bank's oldest request
            queues[b].popleft()
            last_col = group_col[b % groups] = t
            if not b_accessed[b]:
                b_accessed[b] = True
                misses += 1
            if write:
                last_write = t
                last_write_end = b_write_end[b] = t + t_cwl + burst
                end = max(end, last_write_end)
            else:
                last_read = b_read[b] = t
                end = max(end, t + t_cl + burst)
            last = t
            if admitted < bursts:
                bank, row = where(admitted)
                queues[bank].append((admitted, row))
                admitted += 1
            else:
                queued -= 1
    return ServedStream(end=end, last_column=last, activates=activates, misses=misses,
                        refreshes=refreshes)


def _locator(spec: DramSpec, offset: int):
    """Burst ``j`` of a stream from ``offset`` -> (bank, row), as
    :func:`~simulator.memory.dram_requests.locate`."""
    groups, per_group, columns = spec.bank_groups, spec.banks_per_group, spec.column_bursts
    row_bank_col = spec.mapping == "row_bank_col"

    def where(j: int) -> tuple[int, int]:
        _, bank, row = place(offset + j, groups, per_group, columns, row_bank_col)
        return bank, row

    return where


@functools.lru_cache(maxsize=64)
def _params(spec: DramSpec):
    """The compiled controller's timing vector for ``spec`` (read-only: shared)."""
    import numpy as np

    from simulator.kernels import dram_controller as k

    s = spec
    values = {k.P_GROUPS: s.bank_groups, k.P_PER_GROUP: s.banks_per_group,
              k.P_COLUMNS: s.column_bursts, k.P_ROW_BANK_COL: s.mapping == "row_bank_col",
              k.P_CLOSED: s.page_policy == "closed", k.P_DEPTH: s.queue_depth,
              k.P_BURST: s.burst_cycles, k.P_TCL: s.tCL, k.P_TCWL: s.tCWL, k.P_TRCD: s.tRCD,
              k.P_TRP: s.tRP, k.P_TRAS: s.tRAS, k.P_TRC: s.tRC, k.P_TCCD_S: s.tCCD_S,
              k.P_TCCD_L: s.tCCD_L, k.P_TRRD_S: s.tRRD_S, k.P_TRRD_L: s.tRRD_L,
              k.P_TFAW: s.tFAW, k.P_TWR: s.tWR, k.P_TWTR: s.tWTR, k.P_TRTP: s.tRTP,
              k.P_TREFI: s.tREFI, k.P_TRFC: s.tRFC}
    params = np.zeros(k.PARAMS, np.int64)
    for index, value in values.items():
        params[index] = int(value)
    params.setflags(write=False)
    return params


def compiled_stream(spec: DramSpec, offset: int, bursts: int, write: bool, *,
                    start: int = 0, foreign: bool = False,
                    next_refresh: int | None = None) -> ServedStream:
    """:func:`serve_stream` on the compiled controller (imports numba)."""
    from simulator.kernels import dram_controller as k

    counts = k.serve_sequential(_params(spec), offset, bursts, write, start, foreign,
                                next_refresh)
    last = int(counts[k.C_LAST_COLUMN]) if bursts else PAST
    return ServedStream(end=int(counts[k.C_END]), last_column=last,
                        activates=int(counts[k.C_ACTIVATES]), misses=int(counts[k.C_MISSES]),
                        refreshes=int(counts[k.C_REFRESHES]))


def serve_requests(spec: DramSpec, requests, *, start: int = 0, foreign: bool = False,
                   next_refresh: int | None = None) -> RequestSchedule:
    """:func:`~simulator.memory.dram_requests.simulate_requests` on the compiled controller:
    any ``(burst address, is-write)`` requests, the same schedule command for command."""
    import numpy as np

    from simulator.kernels import dram_controller as k

    addresses = np.array([a for a, _ in requests], np.int64)
    writes = np.array([bool(w) for _, w in requests], np.bool_)
    column, done, counts = k.serve(_params(spec), addresses, writes, start, foreign,
                                   next_refresh)
    return RequestSchedule(column=column.tolist(), done=done.tolist(),
                           activates=int(counts[k.C_ACTIVATES]),
                           precharges=int(counts[k.C_PRECHARGES]),
                           refreshes=int(counts[k.C_REFRESHES]), end=int(counts[k.C_END]),
                           misses=int(counts[k.C_MISSES]))
