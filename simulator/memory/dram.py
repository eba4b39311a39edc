"""DRAM timing and energy: the closed form of sequential streams and the engine's device.

A transfer of the engine is a sequential stream of bursts spread over the channels (channel
bits lowest, docs/memory-model.md, "DRAM timing and energy"). On one channel such a stream
is served in order as long as no younger request could go first; then every column command
follows from the one before it and from its row's activate:

- ``col[j] = max(col[j-1] + max(tCCD_S, tBURST), col[j-G] + tCCD_L, ACT(row of j) + tRCD)``
  (G bank groups; consecutive bursts rotate over them);
- one activate per row visit, at ``max(admission, PRE + tRP, previous ACT of the bank + tRC,
  previous ACT + tRRD_S, previous ACT of the group + tRRD_L, fourth previous ACT + tFAW)``,
  where a request is admitted when the one ``queue_depth`` places before it has issued;
- at each refresh point every bank closes and the stream starts again ``tRP + tRFC`` after
  the banks could close.

:func:`stream` computes this in one pass (:func:`_segment`), checks that no younger request
could have gone first (else it runs the fast per-request controller of
:mod:`simulator.memory.dram_stream` for the rest of the stream) and is tested equal to the
plain controller of :mod:`simulator.memory.dram_requests` on random streams
(tests/memory/test_dram.py, tests/memory/test_dram_fast.py).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
from fractions import Fraction

from simulator.config.dram import DramSpec
from simulator.memory.dram_requests import PAST, place
from simulator.memory.dram_stream import ServedStream, serve_stream
from simulator.records import record

__all__ = ["StreamResult", "stream", "DramDevice", "DramCounts", "dram_energy_pj",
           "first_refresh"]


@record
class StreamResult:
    """One channel's sequential stream: when its last data ended, when its last column
    command went, and the commands it took (``in_order``: the closed form held throughout)."""

    end: int
    last_column: int
    activates: int
    bursts: int
    misses: int
    refreshes: int
    in_order: bool


@dataclasses.dataclass
class _Visit:
    bank: int
    group: int
    row: int
    act: int
    first: int
    last: int
    pre: int | None = None   # the PRE that ended the bank's previous visit (or foreign row)


def _latency(spec: DramSpec, write: bool) -> int:
    return (spec.tCWL if write else spec.tCL) + spec.burst_cycles


def _pre_ready(spec: DramSpec, visit: _Visit, last_col: int | None, write: bool) -> int:
    """Earliest PRE of ``visit``'s bank after its column command at ``last_col``."""
    ready = visit.act + spec.tRAS
    if last_col is not None:
        after = (last_col + spec.tCWL + spec.burst_cycles + spec.tWR) if write else (
            last_col + spec.tRTP)
        ready = max(ready, after)
    return ready


@dataclasses.dataclass
class _Segment:
    """The in-order schedule of a stream from cycle 0: each burst's column command and row
    visit, and the visits (one activate each) in the order of their activates."""

    col: list[int]
    visits: list[_Visit]
    visit_of: list[int]


def _segment(spec: DramSpec, offset: int, bursts: int, write: bool,
             foreign: bool) -> _Segment:
    """The in-order schedule of a sequential stream of ``bursts`` bursts from address
    ``offset``, all waiting at cycle 0, with no history (a new transfer, or the rest of one
    after a refresh): the equations of docs/memory-model.md, "The closed form of a
    sequential stream"."""
    s = spec
    groups, depth, step = s.bank_groups, s.queue_depth, max(s.tCCD_S, s.burst_cycles)
    open_page = s.page_policy == "open"
    col: list[int] = []
    visits: list[_Visit] = []
    visit_of: list[int] = []
    current: dict[int, int] = {}      # bank -> its visit
    foreign_banks = set(range(s.banks)) if foreign else set()
    acts: list[int] = []
    last_act_group = [PAST] * groups
    # locate(), with the spec's figures read once (a property each) for the whole stream
    per_group, columns, row_bank_col = (s.banks_per_group, s.column_bursts,
                                        s.mapping == "row_bank_col")
    for j in range(bursts):
        loc_group, loc_bank, loc_row = place(offset + j, groups, per_group, columns,
                                             row_bank_col)
        admitted = 0 if j < depth else col[j - depth]  # when the request entered the queue
        v = current.get(loc_bank)
        if v is None or visits[v].row != loc_row:
            prev = visits[v] if v is not None else None
            pre = None
            if prev is not None:
                ready = _pre_ready(s, prev, col[prev.last], write)
                pre = max(ready, admitted) if open_page else ready
            elif loc_bank in foreign_banks:
                # open page: closed when its first request is queued; closed page: at once,
                # since no queued request hits the foreign row (docs/memory-model.md)
                pre = admitted if open_page else 0
            act = max(admitted, last_act_group[loc_group] + s.tRRD_L)
            if pre is not None:
                act = max(act, pre + s.tRP)
            if prev is not None:
                act = max(act, prev.act + s.tRC)
            if acts:
                act = max(act, acts[-1] + s.tRRD_S)
            if len(acts) >= 4:
                act = max(act, acts[-4] + s.tFAW)
            foreign_banks.discard(loc_bank)
            visits.append(_Visit(loc_bank, loc_group, loc_row, act, j, j, pre))
            acts.append(act)
            last_act_group[loc_group] = act
            v = current[loc_bank] = len(visits) - 1
        else:
            visits[v].last = j
        t = visits[v].act + s.tRCD
        if j:
            t = max(t, col[-1] + step)
        if j >= groups:
            t = max(t, col[j - groups] + s.tCCD_L)
        col.append(t)
        visit_of.append(v)
    return _Segment(col, visits, visit_of)


def _first_reorder(spec: DramSpec, seg: _Segment) -> int:
    """The first burst FR-FCFS would not serve in order (the stream's length if none):
    after a gap in the column commands, a younger queued request to an open row that could
    have gone first."""
    s = spec
    groups, depth, step = s.bank_groups, s.queue_depth, max(s.tCCD_S, s.burst_cycles)
    col, visits, visit_of = seg.col, seg.visits, seg.visit_of
    known = len(col)
    for j in range(1, known):
        t = col[j]
        if t <= col[j - 1] + step:
            continue
        for k in range(j + 1, min(j - 1 + depth, known - 1) + 1):
            ready = visits[visit_of[k]].act + s.tRCD
            if ready >= t:
                continue
            candidate = max(ready, col[j - 1] + step)
            same_group = k - groups * ((k - j) // groups + 1)
            if same_group >= 0:
                candidate = max(candidate, col[same_group] + s.tCCD_L)
            if candidate < t:
                return j
    return known


def _last_issued(spec: DramSpec, visit: _Visit, cut: int) -> int | None:
    """The visit's last burst before ``cut`` (its bursts are evenly spaced), or None."""
    if visit.first >= cut:
        return None
    stride = spec.bank_groups if spec.mapping == "row_bank_col" else spec.banks
    return visit.first + stride * ((min(visit.last, cut - 1) - visit.first) // stride)


def _refresh_start(spec: DramSpec, alone: _Alone, write: bool, point: int,
                   cut: int) -> tuple[int, int]:
    """When the refresh at ``point`` starts (every open bank may close; times relative to
    the segment's start) and how many activates went before it. Visits rotate over the
    banks, so each bank's last visit before the point and the one after it lie within
    ``banks`` visits of the point."""
    s, seg = spec, alone.segment
    before = bisect.bisect_left(alone.acts, point)
    latest: dict[int, _Visit] = {}
    for visit in seg.visits[max(0, before - s.banks):before]:
        latest[visit.bank] = visit
    after: dict[int, _Visit] = {}
    for visit in seg.visits[before:before + s.banks]:
        after.setdefault(visit.bank, visit)
    start = max(point, 0)
    for bank, visit in latest.items():
        last = _last_issued(s, visit, cut)
        if s.page_policy == "closed":
            closed = (last is not None and visit.last < cut
                      and _pre_ready(s, visit, seg.col[last], write) < point)
        else:
            following = after.get(bank)
            closed = following is not None and following.pre is not None and (
                following.pre < point)
        if not closed:
            start = max(start, _pre_ready(s, visit, None if last is None else seg.col[last],
                                          write))
    return start, before


@record
class _Alone:
    """A stream's in-order schedule from cycle 0 with no refresh, and where FR-FCFS would
    first leave that order."""

    segment: _Segment
    acts: list[int]
    firsts: list[int]
    first_reorder: int


def _period(spec: DramSpec) -> int:
    """Bursts after which the address pattern repeats one row further on (same timing)."""
    return spec.banks * spec.column_bursts


@functools.lru_cache(maxsize=2048)
def _alone(spec: DramSpec, bursts: int, write: bool, foreign: bool, offset: int) -> _Alone:
    seg = _segment(spec, offset, bursts, write, foreign)
    return _Alone(seg, [v.act for v in seg.visits], [v.first for v in seg.visits],
                  _first_reorder(spec, seg))


@functools.lru_cache(maxsize=1024)
def _requests_alone(spec: DramSpec, bursts: int, write: bool, foreign: bool,
                    offset: int) -> ServedStream:
    """The per-request controller on a stream from cycle 0 with no refresh (shifted, the
    schedule of any start whose column commands all come before the next refresh point)."""
    return serve_stream(spec, offset, bursts, write, foreign=foreign)


def _reach(spec: DramSpec, point: int) -> int:
    """Bursts of a stream from cycle 0 whose in-order schedule decides what happens before
    ``point``: column commands go at least ``max(tCCD_S, tBURST)`` apart from cycle 1 on,
    so at most ``ceil(point / step)`` go before it, and FR-FCFS looks ``queue_depth``
    requests further (docs/memory-model.md, "The closed form of a sequential stream")."""
    step = max(spec.tCCD_S, spec.burst_cycles)
    return -(-max(point, 0) // step) + spec.queue_depth + 1


#: Streams up to this many bursts use their whole (cached) in-order schedule (:func:`_in_order`).
_WHOLE = 1 << 14


def _in_order(spec: DramSpec, bursts: int, write: bool, foreign: bool, offset: int,
              point: int | None) -> _Alone:
    """The in-order schedule of a stream from cycle 0 as far as it decides the stream up
    to the refresh ``point`` (None: the whole stream): the schedule is causal, so a prefix
    of the stream has the prefix of its schedule, and its first reorder up to the cut is the
    whole stream's. A short prefix first: where it already shows a reorder (as on the
    LPDDR5 and HBM2E presets, within the first few bursts) the rest is never computed.

    A stream of at most ``_WHOLE`` bursts takes its whole schedule whatever the point: it is
    cached per length, and the engine's transfers repeat a few lengths at ever new refresh
    points (a prefix per point would be computed anew each time)."""
    known = (bursts if point is None or bursts <= _WHOLE
             else min(bursts, _reach(spec, point)))
    short = min(known, 4 * spec.queue_depth)
    if short < known:
        early = _alone(spec, short, write, foreign, offset)
        if early.first_reorder <= short - spec.queue_depth:  # its look-ahead was complete
            return early
    return _alone(spec, known, write, foreign, offset)


def first_refresh(spec: DramSpec, start: int) -> tuple[int, int]:
    """A transfer arriving at ``start``: when it can begin (after a refresh the channel is
    doing while idle) and the first refresh point after that (refresh points are the
    multiples of ``tREFI`` from the run's start)."""
    last = (start // spec.tREFI) * spec.tREFI
    if last > 0 and start < last + spec.tRP + spec.tRFC:
        return last + spec.tRP + spec.tRFC, last + spec.tREFI
    return start, last + spec.tREFI


def stream(spec: DramSpec, bursts: int, write: bool, start: int, *, offset: int = 0,
           foreign: bool = False, next_refresh: int | None = None) -> StreamResult:
    """One channel's sequential stream of ``bursts`` bursts from address ``offset``, all
    waiting at DRAM cycle ``start`` (``foreign``: the banks hold rows of other data, the
    open-page state of a new transfer; ``next_refresh``: the first refresh point, None for
    none). Equal to :func:`simulate_requests` on the same requests (tested).

    Between refreshes the schedule is the in-order one from the segment's start, shifted
    (cached per length, direction, bank state and offset within the address pattern); a
    refresh cuts it at the first column command at or after the refresh point.
    """
    s = spec
    if bursts == 0:
        return StreamResult(start, start, 0, 0, 0, 0, True)
    a, t0, refresh = 0, start, next_refresh
    activates = misses = refreshes = 0
    ordered = True  # every segment so far took the closed form
    period = _period(s)
    while True:
        n = bursts - a
        point = None if refresh is None else refresh - t0
        alone = _in_order(s, n, write, foreign, (offset + a) % period, point)
        col = alone.segment.col
        cut = len(col) if point is None else bisect.bisect_left(col, point)
        if alone.first_reorder < min(cut + 1, n):  # a younger request may go first
            rest = _requests(s, offset + a, n, write, t0, foreign, refresh)
            return StreamResult(end=rest.end, last_column=rest.last_column,
                                activates=activates + rest.activates, bursts=bursts,
                                misses=misses + rest.misses,
                                refreshes=refreshes + rest.refreshes, in_order=False)
        if cut == n:
            return StreamResult(end=t0 + col[-1] + _latency(s, write),
                                last_column=t0 + col[-1],
                                activates=activates + len(alone.acts), bursts=bursts,
                                misses=misses + len(alone.acts), refreshes=refreshes,
                                in_order=ordered)
        assert refresh is not None and point is not None
        begin, acts = _refresh_start(s, alone, write, point, cut)
        activates += acts
        misses += bisect.bisect_left(alone.firsts, cut)
        refreshes += 1
        t0, foreign, a = t0 + begin + s.tRP + s.tRFC, False, a + cut
        refresh += s.tREFI


def _requests(spec: DramSpec, offset: int, bursts: int, write: bool, start: int,
              foreign: bool, refresh: int | None) -> ServedStream:
    """The rest of a stream that FR-FCFS does not serve in order, on the fast per-request
    controller (docs/memory-model.md, "The per-request controller, fast"). Without a refresh
    point among its column commands it is the schedule from cycle 0 shifted (cached); else
    one run of the controller through every refresh point."""
    s = spec
    step = max(s.tCCD_S, s.burst_cycles)
    rest: ServedStream | None = None
    # column commands go at least `step` apart: a longer stream reaches the refresh point
    if refresh is None or bursts <= -(-(refresh - start) // step):
        quiet = _requests_alone(s, bursts, write, foreign, offset % _period(s))
        if refresh is None or start + quiet.last_column < refresh:
            rest = dataclasses.replace(quiet, end=start + quiet.end,
                                       last_column=start + quiet.last_column)
    if rest is None:
        rest = serve_stream(s, offset, bursts, write, start=start, foreign=foreign,
                            next_refresh=refresh)
    return rest


@dataclasses.dataclass
class DramCounts:
    """What one layer's transfers did on the DRAM (summed over channels)."""

    activates: int = 0
    read_bursts: int = 0
    write_bursts: int = 0
    misses: int = 0
    busy_cycles: int = 0      # DRAM cycles some transfer was in progress
    bytes: int = 0


@functools.lru_cache(maxsize=4096)
def _quiet_transfer(spec: DramSpec, bursts: int, write: bool, foreign: bool
                    ) -> tuple[int, int, int, int]:
    """A transfer of ``bursts`` bursts over the channels, started at DRAM cycle 0 with no
    refresh: (end, guard, activates, misses), summed over channels. :func:`stream` gives
    the same schedule shifted for any start whose refresh point comes after ``start +
    guard`` (the last column command of the in-order schedule and of the one it took), so
    :meth:`DramDevice.cycles_at` reuses it there (tested against :func:`stream`)."""
    fewer, extra = divmod(bursts, spec.channels)
    end = guard = activates = misses = 0
    for count, channels in ((fewer + 1, extra), (fewer, spec.channels - extra)):
        if not count or not channels:
            continue
        result = stream(spec, count, write, 0, foreign=foreign)
        in_order = _alone(spec, count, write, foreign, 0).segment.col[-1]
        end = max(end, result.end)
        guard = max(guard, result.last_column, in_order)
        activates += result.activates * channels
        misses += result.misses * channels
    return end, guard, activates, misses


class DramDevice:
    """The DRAM behind the engine's channel for one layer (docs/memory-model.md, "DRAM
    timing and energy"): a transfer's array cycles from its start, and the counts.

    Cycles convert at the ratio of the clocks (``array.clock_mhz`` and the DRAM's): a
    transfer that starts at array cycle ``t`` starts at DRAM cycle ``ceil(t * f_dram /
    f_array)`` and its data is there at the first array cycle at or after its last data.
    """

    def __init__(self, spec: DramSpec, array_clock_mhz: float, origin: int = 0) -> None:
        self.spec = spec
        ratio = Fraction(spec.clock_mhz) / Fraction(array_clock_mhz)  # DRAM per array cycle
        self.num, self.den = ratio.numerator, ratio.denominator
        self.origin = origin
        self.counts = DramCounts()
        self.open_page = spec.page_policy == "open"
        # the spec's figures read once per transfer, kept as plain ints (the compiled
        # chain reads them too: simulator/memory/prefetch_compiled.py)
        self.burst_bytes, self.refi = spec.burst_bytes, spec.tREFI
        self.refresh_busy = spec.tRP + spec.tRFC
        #: (bursts, write, foreign) -> :func:`_quiet_transfer`'s figures: a dict lookup per
        #: transfer instead of the cache's hash of the whole spec (once per transfer)
        self._quiet: dict[tuple[int, bool, bool], tuple[int, int, int, int]] = {}

    def to_dram(self, cycle: int) -> int:
        """The first DRAM cycle at or after array cycle ``cycle``."""
        return -(-cycle * self.num // self.den)

    def to_array(self, cycle: int) -> int:
        """The first array cycle at or after DRAM cycle ``cycle``."""
        return -(-cycle * self.den // self.num)

    def quiet(self, bursts: int, write: bool, foreign: bool) -> tuple[int, int, int, int]:
        """:func:`_quiet_transfer`'s figures for a transfer of ``bursts`` bursts (end, guard,
        activates, misses from its start, when no refresh reaches it)."""
        key = (bursts, write, foreign)
        figures = self._quiet.get(key)
        if figures is None:
            figures = self._quiet[key] = _quiet_transfer(self.spec, bursts, write, foreign)
        return figures

    def cycles_at(self, nbytes: int, write: bool, start: int) -> int:
        """Array cycles the channel is busy moving ``nbytes`` from array cycle ``start``."""
        if nbytes <= 0:
            return 0
        s = self.spec
        t0 = -(-start * self.num // self.den)  # to_dram and first_refresh, inline: they run
        last = (t0 // self.refi) * self.refi  # once per transfer
        refresh = last + self.refi
        begin = last + self.refresh_busy if 0 < last and t0 < last + self.refresh_busy else t0
        foreign = self.open_page and begin == t0
        bursts = -(-nbytes // self.burst_bytes)
        counts = self.counts
        quiet = self._quiet.get((bursts, write, foreign)) or self.quiet(bursts, write, foreign)
        if refresh is None or begin + quiet[1] < refresh:  # no refresh reaches it
            end = begin + quiet[0]
            counts.activates += quiet[2]
            counts.misses += quiet[3]
            if write:
                counts.write_bursts += bursts
            else:
                counts.read_bursts += bursts
            counts.busy_cycles += end - t0
            counts.bytes += nbytes
            return -(-end * self.den // self.num) - start  # to_array
        fewer, extra = divmod(bursts, s.channels)
        end = begin
        for count, channels in ((fewer + 1, extra), (fewer, s.channels - extra)):
            if not count or not channels:
                continue
            result = stream(s, count, write, begin, foreign=foreign, next_refresh=refresh)
            end = max(end, result.end)
            counts.activates += result.activates * channels
            counts.misses += result.misses * channels
            if write:
                counts.write_bursts += count * channels
            else:
                counts.read_bursts += count * channels
        counts.busy_cycles += end - t0
        counts.bytes += nbytes
        return self.to_array(end) - start

    def report(self, elapsed: int) -> dict[str, float | int | str]:
        """The layer's DRAM figures over its ``elapsed`` array cycles from ``origin``:
        counts, row-hit rate, bandwidth achieved and peak, energy split (pJ)."""
        s, c = self.spec, self.counts
        first, last = self.to_dram(self.origin), self.to_dram(self.origin + elapsed)
        refreshes = last // s.tREFI - first // s.tREFI  # refresh points in the window
        seconds = (last - first) / (s.clock_mhz * 1e6)
        bursts = c.read_bursts + c.write_bursts
        energy = dram_energy_pj(s, c, last - first, refreshes)
        return {"preset": s.preset, "activates": c.activates, "read_bursts": c.read_bursts,
                "write_bursts": c.write_bursts, "row_hits": bursts - c.misses,
                "row_hit_rate": (bursts - c.misses) / bursts if bursts else None,
                "refreshes": refreshes * s.channels * s.ranks,
                "achieved_bandwidth_gb_s": c.bytes / seconds / 1e9 if seconds else 0.0,
                "peak_bandwidth_gb_s": s.peak_bytes_per_s / 1e9,
                **energy}


def dram_energy_pj(spec: DramSpec, counts: DramCounts, window_cycles: int,
                   refreshes: int) -> dict[str, float]:
    """DRAM energy from IDD currents (the DRAMPower / Micron power-calculator method),
    docs/memory-model.md, "DRAM energy": per device and command, current above the standby
    current times VDD times the command's time; background over the window; in pJ.

    Parameters
    ----------
    counts : activates and bursts summed over channels; ``busy_cycles`` the DRAM cycles a
        transfer was in progress (banks open: active standby).
    window_cycles : DRAM cycles of the layer (the background's time).
    refreshes : refresh points in the window (every rank of every channel refreshes).
    """
    s = spec
    tck_ns = 1e3 / s.clock_mhz
    per_device = s.vdd * tck_ns  # mA x V x ns = pJ
    devices = s.devices
    act = (s.idd0 * s.tRC - (s.idd3n * s.tRAS + s.idd2n * (s.tRC - s.tRAS))) * per_device
    read = (s.idd4r - s.idd3n) * s.burst_cycles * per_device
    write = (s.idd4w - s.idd3n) * s.burst_cycles * per_device
    refresh = (s.idd5b - s.idd3n) * s.tRFC * per_device
    idle_current = s.idd3n if s.page_policy == "open" else s.idd2n
    busy = min(counts.busy_cycles, window_cycles)  # every channel works on each transfer
    background = (s.idd3n * busy + idle_current * max(0.0, window_cycles - busy)) * (
        per_device * s.channels * s.ranks)
    out = {"activate_pj": counts.activates * act * devices,
           "burst_pj": (counts.read_bursts * read + counts.write_bursts * write) * devices,
           "background_pj": background * devices,
           "refresh_pj": refreshes * s.channels * s.ranks * refresh * devices}
    out["energy_pj"] = sum(out.values())
    return out
