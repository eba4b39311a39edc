"""The per-request DRAM controller: the slow, obviously-correct model of one channel.

Every request is one burst. The controller sees the ``queue_depth`` oldest unserved requests
and issues, one decision at a time, the command that can go earliest (FR-FCFS: at equal
times a column command to an open row, then the oldest request); commands never go back in
time. Every timing of docs/memory-model.md, "DRAM timing and energy", is checked against the
commands issued before it; refresh closes every bank at each ``tREFI``. It is the reference
the closed form of :mod:`simulator.memory.dram` is tested against.

:mod:`simulator.memory.dram_stream` has the fast twins that the closed form falls back to
when a stream is not served in order (tested equal to this controller).
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator.config.dram import DramSpec
from simulator.records import record

__all__ = ["Location", "locate", "RequestSchedule", "simulate_requests", "PAST"]

#: A time before everything (no constraint yet).
PAST = -(1 << 60)
#: The row a bank holds at a transfer's start under the open-page policy: no request's row.
FOREIGN_ROW = -1


@record
class Location:
    """Where one burst of a channel lives: bank group, bank (0 .. banks - 1) and row."""

    bank_group: int
    bank: int
    row: int


def locate(spec: DramSpec, burst: int) -> Location:
    """The bank group, bank and row of burst ``burst`` of one channel's address space.

    ``row_bank_col``: row | bank in group | column | bank group (consecutive bursts rotate
    over the bank groups; one bank per group fills its row before the next bank);
    ``row_col_bank``: row | column | bank in group | bank group (consecutive bursts rotate
    over every bank). The channel bits sit below both (docs/memory-model.md).
    """
    return Location(*place(burst, spec.bank_groups, spec.banks_per_group, spec.column_bursts,
                           spec.mapping == "row_bank_col"))


def place(burst: int, groups: int, per_group: int, columns: int,
          row_bank_col: bool) -> tuple[int, int, int]:
    """:func:`locate` on plain ints, (bank group, bank, row): the per-burst loops call it."""
    group, rest = burst % groups, burst // groups
    if row_bank_col:
        rest //= columns
        in_group, row = rest % per_group, rest // per_group
    else:
        in_group, rest = rest % per_group, rest // per_group
        row = rest // columns
    return group, in_group * groups + group, row


@record
class RequestSchedule:
    """What the controller did: per request its column command's time and when its data
    finished; the counts of commands; ``end`` is the last data's end."""

    column: list[int]
    done: list[int]
    activates: int
    precharges: int
    refreshes: int
    end: int
    #: column commands that were the first to their row since its activate (row misses)
    misses: int = 0


class _Bank:
    def __init__(self, row: int | None) -> None:
        self.row = row                # open row, or None when precharged
        self.act = PAST               # last ACT
        self.pre = PAST               # last PRE
        self.last_read = PAST         # last RD to this bank
        self.last_write_end = PAST    # end of the last write data to this bank
        self.accessed = True          # a column command since the last ACT


class _Controller:
    def __init__(self, spec: DramSpec, start: int, foreign: bool) -> None:
        self.spec = spec
        self.banks = [_Bank(FOREIGN_ROW if foreign else None) for _ in range(spec.banks)]
        self.now = start
        self.floor = start            # no command before (the start, the end of a refresh)
        self.acts: list[int] = []
        self.last_act_group = [PAST] * spec.bank_groups
        self.last_col = PAST
        self.last_col_group = [PAST] * spec.bank_groups
        self.last_read = PAST
        self.last_write = PAST
        self.last_write_end = PAST
        self.activates = self.precharges = self.refreshes = self.misses = 0

    # -- earliest times ------------------------------------------------------------------
    def pre_ready(self, bank: _Bank) -> int:
        s = self.spec
        return max(bank.act + s.tRAS, bank.last_read + s.tRTP, bank.last_write_end + s.tWR,
                   self.floor)

    def act_ready(self, loc: Location) -> int:
        s, bank = self.spec, self.banks[loc.bank]
        t = max(self.floor, bank.pre + s.tRP, bank.act + s.tRC,
                self.last_act_group[loc.bank_group] + s.tRRD_L)
        if self.acts:
            t = max(t, self.acts[-1] + s.tRRD_S)
        if len(self.acts) >= 4:
            t = max(t, self.acts[-4] + s.tFAW)
        return t

    def column_ready(self, loc: Location, write: bool) -> int:
        s, bank = self.spec, self.banks[loc.bank]
        burst = s.burst_cycles
        t = max(self.floor, bank.act + s.tRCD, self.last_col + s.tCCD_S,
                self.last_col_group[loc.bank_group] + s.tCCD_L)
        if write:
            return max(t, self.last_write + burst,
                       self.last_read + s.tCL + burst + 2 - s.tCWL)
        return max(t, self.last_read + burst, self.last_write_end + s.tWTR)

    # -- issuing -------------------------------------------------------------------------
    def activate(self, loc: Location, t: int) -> None:
        bank = self.banks[loc.bank]
        bank.row, bank.act, bank.accessed = loc.row, t, False
        self.acts.append(t)
        self.last_act_group[loc.bank_group] = t
        self.activates += 1

    def precharge(self, bank: _Bank, t: int) -> None:
        bank.row, bank.pre = None, t
        self.precharges += 1

    def column(self, loc: Location, write: bool, t: int) -> int:
        s, bank = self.spec, self.banks[loc.bank]
        self.last_col = self.last_col_group[loc.bank_group] = t
        if not bank.accessed:
            bank.accessed = True
            self.misses += 1
        if write:
            self.last_write = t
            self.last_write_end = bank.last_write_end = t + s.tCWL + s.burst_cycles
            return self.last_write_end
        self.last_read = bank.last_read = t
        return t + s.tCL + s.burst_cycles

    def refresh(self, point: int) -> None:
        """Precharge every bank (once each may close), refresh for tRFC."""
        s = self.spec
        start = max([point, self.floor]
                    + [self.pre_ready(b) for b in self.banks if b.row is not None])
        for bank in self.banks:
            if bank.row is not None:
                bank.row, bank.pre = None, start
        self.floor = self.now = start + s.tRP + s.tRFC
        self.refreshes += 1


def simulate_requests(spec: DramSpec, requests: Sequence[tuple[int, bool]], *,
                      start: int = 0, foreign: bool = False,
                      next_refresh: int | None = None) -> RequestSchedule:
    """Serve ``requests`` (burst address in the channel, is-write), all waiting at ``start``.

    Parameters
    ----------
    spec : the DRAM (its mapping, page policy, queue depth and timings).
    requests : one entry per burst, oldest first.
    start : DRAM cycle at which the requests arrive.
    foreign : every bank starts holding a row no request uses (the open-page state of a new
        transfer); otherwise every bank starts precharged.
    next_refresh : the first refresh point (then every ``tREFI``); None: no refresh.

    Returns
    -------
    RequestSchedule
    """
    s = spec
    ctl = _Controller(s, start, foreign)
    locs = [locate(s, address) for address, _ in requests]
    writes = [bool(w) for _, w in requests]
    n = len(requests)
    column, done = [0] * n, [0] * n
    queue = list(range(min(n, s.queue_depth)))
    admitted = len(queue)
    refresh_at = next_refresh
    closed_page = s.page_policy == "closed"
    while queue:
        best = None  # (time, priority, age, kind, payload)
        hits_by_bank: dict[int, bool] = {}
        oldest_by_bank: dict[int, int] = {}
        for r in queue:
            loc = locs[r]
            bank = ctl.banks[loc.bank]
            if bank.row == loc.row:
                hits_by_bank[loc.bank] = True
                key = (max(ctl.column_ready(loc, writes[r]), ctl.now), 0, r, "col", r)
                if best is None or key[:3] < best[:3]:
                    best = key
            else:
                oldest_by_bank.setdefault(loc.bank, r)
        for b, r in oldest_by_bank.items():
            bank = ctl.banks[b]
            if bank.row is None:
                key = (max(ctl.act_ready(locs[r]), ctl.now), 1, r, "act", r)
            elif not hits_by_bank.get(b):
                key = (max(ctl.pre_ready(bank), ctl.now), 1, r, "pre", b)
            else:
                continue
            if best is None or key[:3] < best[:3]:
                best = key
        if closed_page:
            for b, bank in enumerate(ctl.banks):
                if bank.row is not None and not hits_by_bank.get(b) and b not in oldest_by_bank:
                    key = (max(ctl.pre_ready(bank), ctl.now), 1, n, "pre", b)
                    if best is None or key[:3] < best[:3]:
                        best = key
        assert best is not None  # a queued request always has a next command
        t, _, _, kind, payload = best
        if refresh_at is not None and t >= refresh_at:
            ctl.refresh(refresh_at)
            refresh_at += s.tREFI
            continue
        ctl.now = t
        if kind == "act":
            ctl.activate(locs[payload], t)
        elif kind == "pre":
            ctl.precharge(ctl.banks[payload], t)
        else:
            r = payload
            column[r] = t
            done[r] = ctl.column(locs[r], writes[r], t)
            queue.remove(r)
            if admitted < n:
                queue.append(admitted)
                admitted += 1
    return RequestSchedule(column=column, done=done, activates=ctl.activates,
                           precharges=ctl.precharges, refreshes=ctl.refreshes,
                           end=max(done, default=start), misses=ctl.misses)
