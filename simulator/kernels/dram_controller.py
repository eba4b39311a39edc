"""The per-request FR-FCFS DRAM controller of one channel, compiled (docs/memory-model.md,
"The per-request controller, fast").

The same decisions as the Python controller ``simulate_requests`` of
``simulator/memory/dram_requests.py`` (its slow, obviously-correct twin, which the tests
compare it with on random requests, command for command): the ``queue_depth`` oldest
unserved requests are seen, and one decision at a time the command that can go earliest is
issued (a column command to an open row before an activate or a precharge at the same cycle,
then the oldest request's; closed page: an idle bank's precharge after every request's
command at the same cycle, the lowest bank first); commands never go back in time; at each
refresh point every bank closes once it may, then the rank refreshes for tRFC. Of one bank's
queued row hits in one direction only the oldest is a candidate: the others are ready at the
same cycle and lose to it.

Arrays and integers in, arrays out: the device timings come as one ``int64`` vector indexed
by the ``P_*`` constants below, the requests as their burst addresses (the bank group, bank
and row are computed on admission) and directions. Importing this module imports numba: the
DRAM model imports it on the first stream that needs it.
"""

from __future__ import annotations

import numpy as np

from simulator.kernels.jit import njit

__all__ = ["P_GROUPS", "P_PER_GROUP", "P_COLUMNS", "P_ROW_BANK_COL", "P_CLOSED", "P_DEPTH",
           "P_BURST", "P_TCL", "P_TCWL", "P_TRCD", "P_TRP", "P_TRAS", "P_TRC", "P_TCCD_S",
           "P_TCCD_L", "P_TRRD_S", "P_TRRD_L", "P_TFAW", "P_TWR", "P_TWTR", "P_TRTP",
           "P_TREFI", "P_TRFC", "PARAMS", "C_END", "C_ACTIVATES", "C_PRECHARGES",
           "C_REFRESHES", "C_MISSES", "C_LAST_COLUMN", "COUNTS", "serve", "serve_sequential"]

# the timing vector's entries
(P_GROUPS, P_PER_GROUP, P_COLUMNS, P_ROW_BANK_COL, P_CLOSED, P_DEPTH, P_BURST, P_TCL, P_TCWL,
 P_TRCD, P_TRP, P_TRAS, P_TRC, P_TCCD_S, P_TCCD_L, P_TRRD_S, P_TRRD_L, P_TFAW, P_TWR, P_TWTR,
 P_TRTP, P_TREFI, P_TRFC) = range(23)
PARAMS = 23
# the counts vector's entries
C_END, C_ACTIVATES, C_PRECHARGES, C_REFRESHES, C_MISSES, C_LAST_COLUMN = range(6)
COUNTS = 6

_PAST = -(1 << 60)      # before everything (no constraint yet)
_CLOSED_ROW = -2        # a precharged bank
_FOREIGN_ROW = -1       # a bank holding another transfer's row


@njit(inline="always")
def _locate(address, groups, per_group, columns, row_bank_col, r, r_group, r_bank, r_row):
    """Request ``r``'s bank group, bank and row (``locate`` of dram_requests.py)."""
    group, rest = address % groups, address // groups
    if row_bank_col:
        rest //= columns
        in_group, row = rest % per_group, rest // per_group
    else:
        in_group, rest = rest % per_group, rest // per_group
        row = rest // columns
    r_group[r] = group
    r_bank[r] = in_group * groups + group
    r_row[r] = row


@njit
def _serve(p, addresses, writes, start, foreign, refresh, next_refresh, column, done, counts):
    """Serve the requests (all waiting at ``start``); fill ``column`` and ``done`` per
    request and ``counts`` (``C_*``). ``refresh``: refresh from ``next_refresh`` on."""
    n = addresses.shape[0]
    groups, per_group, columns = p[P_GROUPS], p[P_PER_GROUP], p[P_COLUMNS]
    banks = groups * per_group
    depth, burst = p[P_DEPTH], p[P_BURST]
    t_cl, t_cwl, t_rcd, t_rp, t_ras, t_rc = (p[P_TCL], p[P_TCWL], p[P_TRCD], p[P_TRP],
                                              p[P_TRAS], p[P_TRC])
    t_ccd_s, t_ccd_l, t_rrd_s, t_rrd_l, t_faw = (p[P_TCCD_S], p[P_TCCD_L], p[P_TRRD_S],
                                                  p[P_TRRD_L], p[P_TFAW])
    t_wr, t_wtr, t_rtp, t_refi, t_rfc = p[P_TWR], p[P_TWTR], p[P_TRTP], p[P_TREFI], p[P_TRFC]
    closed_page = p[P_CLOSED] != 0
    row_bank_col = p[P_ROW_BANK_COL] != 0

    # where each request lives (docs/memory-model.md, "Addresses, controller and commands")
    r_group = np.empty(n, np.int64)
    r_bank = np.empty(n, np.int64)
    r_row = np.empty(n, np.int64)
    # bank state
    b_row = np.full(banks, _FOREIGN_ROW if foreign else _CLOSED_ROW, np.int64)
    b_act = np.full(banks, _PAST, np.int64)
    b_pre = np.full(banks, _PAST, np.int64)
    b_read = np.full(banks, _PAST, np.int64)
    b_write_end = np.full(banks, _PAST, np.int64)
    b_accessed = np.ones(banks, np.bool_)
    # channel state
    acts = np.full(4, _PAST, np.int64)  # the last four activates, acts[k % 4]
    n_acts = 0
    group_act = np.full(groups, _PAST, np.int64)
    group_col = np.full(groups, _PAST, np.int64)
    last_col = last_read = last_write = last_write_end = _PAST
    now = floor = start
    activates = precharges = refreshes = misses = 0
    refresh_at = next_refresh
    # the queue: request indices, oldest first
    queue = np.empty(max(1, min(n, depth)), np.int64)
    queued = min(n, depth)
    for i in range(queued):
        queue[i] = i
    admitted = queued
    for r in range(queued):
        _locate(addresses[r], groups, per_group, columns, row_bank_col, r, r_group, r_bank,
                r_row)
    hit = np.zeros(banks, np.bool_)
    oldest = np.full(banks, -1, np.int64)
    # a queued row hit's column command is ready when any other of its bank and direction
    # is, and the older goes first at equal times: only the oldest per bank and direction
    # is a candidate
    seen = np.zeros(2 * banks, np.bool_)
    while queued:
        best_t, best_p, best_r, best_kind, best_payload = _PAST, 2, 0, 0, 0
        found = False
        for b in range(banks):
            hit[b] = False
            oldest[b] = -1
            seen[2 * b] = False
            seen[2 * b + 1] = False
        for i in range(queued):
            r = queue[i]
            b = r_bank[r]
            if b_row[b] == r_row[r]:
                hit[b] = True
                slot = 2 * b + (1 if writes[r] else 0)
                if seen[slot]:
                    continue
                seen[slot] = True
                g = r_group[r]
                t = max(floor, b_act[b] + t_rcd, last_col + t_ccd_s, group_col[g] + t_ccd_l)
                if writes[r]:
                    t = max(t, last_write + burst, last_read + t_cl + burst + 2 - t_cwl)
                else:
                    t = max(t, last_read + burst, last_write_end + t_wtr)
                t = max(t, now)
                if not found or t < best_t or (t == best_t and (
                        0 < best_p or (0 == best_p and r < best_r))):
                    best_t, best_p, best_r, best_kind, best_payload = t, 0, r, 0, r
                    found = True
            elif oldest[b] < 0:
                oldest[b] = r
        for b in range(banks):
            r = oldest[b]
            if r < 0:
                continue
            if b_row[b] == _CLOSED_ROW:
                g = r_group[r]
                t = max(floor, b_pre[b] + t_rp, b_act[b] + t_rc, group_act[g] + t_rrd_l)
                if n_acts >= 1:
                    t = max(t, acts[(n_acts - 1) % 4] + t_rrd_s)
                if n_acts >= 4:
                    t = max(t, acts[(n_acts - 4) % 4] + t_faw)
                kind = 1
            elif not hit[b]:
                t = max(b_act[b] + t_ras, b_read[b] + t_rtp, b_write_end[b] + t_wr, floor)
                kind = 2
            else:
                continue
            t = max(t, now)
            if not found or t < best_t or (t == best_t and (
                    1 < best_p or (1 == best_p and r < best_r))):
                best_t, best_p, best_r, best_kind, best_payload = t, 1, r, kind, (
                    r if kind == 1 else b)
                found = True
        if closed_page:
            for b in range(banks):
                if b_row[b] != _CLOSED_ROW and not hit[b] and oldest[b] < 0:
                    t = max(max(b_act[b] + t_ras, b_read[b] + t_rtp, b_write_end[b] + t_wr,
                                floor), now)
                    if not found or t < best_t or (t == best_t and (
                            1 < best_p or (1 == best_p and n < best_r))):
                        best_t, best_p, best_r, best_kind, best_payload = t, 1, n, 2, b
                        found = True
        t = best_t
        if refresh and t >= refresh_at:
            begin = max(refresh_at, floor)
            for b in range(banks):
                if b_row[b] != _CLOSED_ROW:
                    begin = max(begin, b_act[b] + t_ras, b_read[b] + t_rtp,
                                b_write_end[b] + t_wr)
            for b in range(banks):
                if b_row[b] != _CLOSED_ROW:
                    b_row[b] = _CLOSED_ROW
                    b_pre[b] = begin
            floor = now = begin + t_rp + t_rfc
            refreshes += 1
            refresh_at += t_refi
            continue
        now = t
        if best_kind == 1:  # activate
            r = best_payload
            b, g = r_bank[r], r_group[r]
            b_row[b], b_act[b], b_accessed[b] = r_row[r], t, False
            acts[n_acts % 4] = t
            n_acts += 1
            group_act[g] = t
            activates += 1
        elif best_kind == 2:  # precharge
            b = best_payload
            b_row[b], b_pre[b] = _CLOSED_ROW, t
            precharges += 1
        else:  # column command
            r = best_payload
            b, g = r_bank[r], r_group[r]
            last_col = t
            group_col[g] = t
            if not b_accessed[b]:
                b_accessed[b] = True
                misses += 1
            if writes[r]:
                last_write = t
                last_write_end = t + t_cwl + burst
                b_write_end[b] = last_write_end
                done[r] = last_write_end
            else:
                last_read = t
                b_read[b] = t
                done[r] = t + t_cl + burst
            column[r] = t
            k = 0
            while queue[k] != r:
                k += 1
            for i in range(k, queued - 1):
                queue[i] = queue[i + 1]
            queued -= 1
            if admitted < n:
                _locate(addresses[admitted], groups, per_group, columns, row_bank_col,
                        admitted, r_group, r_bank, r_row)
                queue[queued] = admitted
                queued += 1
                admitted += 1
    end = start
    last = _PAST
    for r in range(n):
        end = done[r] if r == 0 else max(end, done[r])
        last = max(last, column[r])
    counts[C_END] = end
    counts[C_ACTIVATES] = activates
    counts[C_PRECHARGES] = precharges
    counts[C_REFRESHES] = refreshes
    counts[C_MISSES] = misses
    counts[C_LAST_COLUMN] = last


@njit
def _serve_sequential(p, offset, n, write, start, foreign, refresh, next_refresh, counts):
    """:func:`_serve` on the requests ``offset .. offset + n - 1``, all of one direction."""
    addresses = np.arange(offset, offset + n).astype(np.int64)
    writes = np.empty(n, np.bool_)
    writes[:] = write
    column = np.zeros(n, np.int64)
    done = np.zeros(n, np.int64)
    _serve(p, addresses, writes, start, foreign, refresh, next_refresh, column, done, counts)


def serve_sequential(params: np.ndarray, offset: int, count: int, write: bool, start: int,
                     foreign: bool, next_refresh: int | None) -> np.ndarray:
    """:func:`serve` on ``count`` consecutive burst addresses from ``offset``, all reads or
    all writes; only the ``C_*`` counts (one call into compiled code, no arrays passed)."""
    if params.shape != (PARAMS,) or params.dtype != np.int64:
        raise ValueError(f"params must be int64 of shape ({PARAMS},), not {params.dtype} "
                         f"{params.shape}")
    if offset < 0 or count < 0:
        raise ValueError(f"offset and count must be non-negative, not {offset}, {count}")
    counts = np.zeros(COUNTS, np.int64)
    _serve_sequential(params, int(offset), int(count), bool(write), int(start), bool(foreign),
                      next_refresh is not None, 0 if next_refresh is None else int(next_refresh),
                      counts)
    if count == 0:
        counts[C_END] = start
    return counts


def serve(params: np.ndarray, addresses: np.ndarray, writes: np.ndarray, start: int,
          foreign: bool, next_refresh: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Serve one channel's requests with the compiled controller.

    Parameters
    ----------
    params : int64 vector of ``PARAMS`` entries (the ``P_*`` constants).
    addresses : int64 burst addresses within the channel, oldest first (non-negative).
    writes : bool per request: a write (else a read).
    start : DRAM cycle the requests arrive at.
    foreign : every bank starts holding a row no request uses (else precharged).
    next_refresh : the first refresh point (then every tREFI); None: no refresh.

    Returns
    -------
    column, done, counts : per request its column command's cycle and the end of its data;
        the ``C_*`` counts (``C_END``: the last data's end, ``start`` for no request).
    """
    if params.shape != (PARAMS,) or params.dtype != np.int64:
        raise ValueError(f"params must be int64 of shape ({PARAMS},), not {params.dtype} "
                         f"{params.shape}")
    if addresses.dtype != np.int64 or writes.dtype != np.bool_ or (
            addresses.shape != writes.shape):
        raise ValueError("addresses must be int64 and writes bool, of one length")
    n = addresses.shape[0]
    column = np.zeros(n, np.int64)
    done = np.zeros(n, np.int64)
    counts = np.zeros(COUNTS, np.int64)
    _serve(params, addresses, writes, int(start), bool(foreign), next_refresh is not None,
           0 if next_refresh is None else int(next_refresh), column, done, counts)
    if n == 0:
        counts[C_END] = start
    return column, done, counts
