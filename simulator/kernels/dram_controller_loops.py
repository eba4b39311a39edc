"""The compiled loops of the per-request DRAM controller
(:mod:`simulator.kernels.dram_controller` documents the rules and checks the arguments).
Compiled by numba on first use, or ahead of time (:data:`AOT`; docs/performance.md,
"Kernels compiled ahead of time").
"""

from __future__ import annotations

import numpy as np
from numba import types

from simulator.kernels.compiled import same_constants
from simulator.kernels.jit import njit

__all__ = ["AOT"]

# Compiled in: written here (numba's cache sees this file only), checked against the
# driver's on import. The timing vector's entries, the counts vector's, and the row states.
(P_GROUPS, P_PER_GROUP, P_COLUMNS, P_ROW_BANK_COL, P_CLOSED, P_DEPTH, P_BURST, P_TCL, P_TCWL,
 P_TRCD, P_TRP, P_TRAS, P_TRC, P_TCCD_S, P_TCCD_L, P_TRRD_S, P_TRRD_L, P_TFAW, P_TWR, P_TWTR,
 P_TRTP, P_TREFI, P_TRFC) = range(23)
C_END, C_ACTIVATES, C_PRECHARGES, C_REFRESHES, C_MISSES, C_LAST_COLUMN = range(6)
_PAST, _CLOSED_ROW, _FOREIGN_ROW = -(1 << 60), -2, -1
same_constants("simulator.kernels.dram_controller",
               {name: value for name, value in globals().items()
                if name.startswith(("P_", "C_")) or name in ("_PAST", "_CLOSED_ROW",
                                                             "_FOREIGN_ROW")})


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


def _variants() -> dict[str, list[tuple]]:
    i64, flag = types.int64, types.boolean
    params = types.Array(i64, 1, "C", readonly=True)  # the DRAM model's vector is read-only
    vector = types.Array(i64, 1, "C")
    return {"_serve_sequential": [(p, i64, i64, flag, i64, flag, flag, i64, vector)
                                  for p in (params, vector)],
            "_serve": [(p, vector, types.Array(flag, 1, "C"), i64, flag, flag, i64, vector,
                        vector, vector) for p in (params, vector)]}


#: Kernel name -> the argument types of each variant built ahead of time.
AOT = _variants()
