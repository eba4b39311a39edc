"""The compiled loop of a prefetch chain's memory schedule (:mod:`simulator.kernels.chain`
documents the rules, the arrays and the protocol). Compiled by numba on first use, or ahead
of time (:data:`AOT`; docs/performance.md, "Kernels compiled ahead of time").
"""

from __future__ import annotations

from numba import types

from simulator.kernels.compiled import same_constants
from simulator.kernels.jit import njit

__all__ = ["AOT"]

# Compiled in: written here (numba's cache sees this file only), checked against the
# driver's on import. Columns of the unit, ticket and layer tables, of the times and ticket
# state, the scalars, the phases and the return codes.
(U_CYCLES, U_LOAD_AFTER, U_WORK, U_LOAD_IFMAP, U_LOAD_FILTER, U_OUT_ALLOC, U_MOVED,
 U_RELEASE_IFMAP, U_RELEASE_FILTER, U_STORE_BYTES, U_STORE_FREE, U_LOAD_TICKET,
 U_STORE_TICKET) = range(13)
UNIT_COLUMNS = 13
(K_BYTES, K_WRITE, K_STORE, K_UNIT, K_LAYER, K_STATIC, K_BURSTS, K_QUIET) = range(8)
TICKET_COLUMNS = 16  # K_QUIET + 4 (a fresh transfer's figures) + 4 (after another's rows)
(Y_UNIT_OFFSET, Y_TICKET_OFFSET, Y_UNITS, Y_TICKETS, Y_CLAIMS_OUTPUTS, Y_LATENCY,
 Y_DEVICE) = range(7)
LAYER_COLUMNS = 7
D_NUM, D_DEN, D_REFI, D_REFRESH_BUSY, D_OPEN_PAGE = range(5)
DEVICE_COLUMNS = 5
(T_START, T_END, T_LOAD_START, T_LOAD_END, T_STORE_START, T_STORE_END, T_ARRIVED) = range(7)
TIME_COLUMNS = 7
(X_SUBMITTED, X_START, X_CYCLES, X_DONE) = range(4)
XFER_COLUMNS = 4
(L_LOADER_PC, L_LOADER_U, L_ARRAY_PC, L_ARRAY_U, L_WAKE, L_WRITER_PC, L_WRITER_U, L_LAST_STORE,
 L_ORIGIN, L_LOADER_DONE, L_ARRAY_DONE, L_WRITER_DONE, L_NEXT_TICKET, L_ACTIVATES, L_MISSES,
 L_READ_BURSTS, L_WRITE_BURSTS, L_BUSY, L_DRAM_BYTES) = range(19)
STATE_COLUMNS = 19
(S_NOW, S_FREE_AT, S_HEAD, S_TAIL, S_PHASE, S_LINK, S_PENDING, S_PENDING_START, S_ANSWER,
 S_LOW, S_HIGH, S_LEVEL, S_LOGGED, S_CAPACITY) = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 17)
SCALARS = 20
PH_PROCESS, PH_LINK, PH_ANSWERED, PH_ADVANCE = range(4)
R_DONE, R_NEED_DRAM, R_DEADLOCK, R_OVERFREE = range(4)
DONE_PC = 9
same_constants("simulator.kernels.chain",
               {name: value for name, value in globals().items()
                if name.isupper() and not name.startswith("AOT")})


@njit(inline="always")
def _log(logs, sc, buffer, now, delta, layer):
    k = sc[S_LOGGED + buffer]
    logs[buffer, k, 0] = now
    logs[buffer, k, 1] = delta
    logs[buffer, k, 2] = layer
    sc[S_LOGGED + buffer] = k + 1


@njit(inline="always")
def _claim(logs, sc, buffer, now, amount, layer):
    """Claim ``amount`` of a buffer now if it fits (True), else nothing (False)."""
    if sc[S_LEVEL + buffer] + amount > sc[S_CAPACITY + buffer]:
        return False
    sc[S_LEVEL + buffer] += amount
    _log(logs, sc, buffer, now, amount, layer)
    return True


@njit(inline="always")
def _free(logs, sc, buffer, now, amount, layer):
    """Give back ``amount`` (False: more than is held, a bug)."""
    if amount == 0:
        return True
    if amount > sc[S_LEVEL + buffer]:
        return False
    sc[S_LEVEL + buffer] -= amount
    _log(logs, sc, buffer, now, -amount, layer)
    return True


@njit(inline="always")
def _loader(units, layers, times, xfer, state, logs, sc, layer, now):
    """Layer ``layer``'s loader, as far as it goes now; True if it moved."""
    moved = False
    first, n = layers[layer, Y_UNIT_OFFSET], layers[layer, Y_UNITS]
    tickets = layers[layer, Y_TICKET_OFFSET]
    pc, u = state[layer, L_LOADER_PC], state[layer, L_LOADER_U]
    while pc != DONE_PC:
        g = first + u
        if pc == 0:  # the previous layer's loader first
            if layer > 0 and state[layer - 1, L_LOADER_DONE] < 0:
                break
            state[layer, L_ORIGIN] = now
            u, pc = 0, 1
        elif pc == 1:  # the next unit with loader work
            while u < n and units[first + u, U_WORK] == 0:
                u += 1
            if u == n:
                state[layer, L_LOADER_DONE] = now
                pc = DONE_PC
            else:
                pc = 2
        elif pc == 2:  # its look-ahead
            after = units[g, U_LOAD_AFTER]
            if after >= 0 and times[first + after, T_END] < 0:
                break
            pc = 3
        elif pc == 3:
            amount = units[g, U_LOAD_IFMAP]
            if amount > 0 and not _claim(logs, sc, 0, now, amount, layer):
                break
            pc = 4
        elif pc == 4:
            amount = units[g, U_LOAD_FILTER]
            if amount > 0 and not _claim(logs, sc, 1, now, amount, layer):
                break
            pc = 5
        elif pc == 5:  # outputs: after the previous layer's array
            amount = units[g, U_OUT_ALLOC] if layers[layer, Y_CLAIMS_OUTPUTS] else 0
            if amount > 0:
                if layer > 0 and state[layer - 1, L_ARRAY_DONE] < 0:
                    break
                if not _claim(logs, sc, 2, now, amount, layer):
                    break
            pc = 6
        elif pc == 6:
            if units[g, U_MOVED] > 0:
                xfer[tickets + units[g, U_LOAD_TICKET], X_SUBMITTED] = 1
                pc = 7
            else:
                times[g, T_ARRIVED] = now
                u, pc = u + 1, 1
        else:  # pc 7: the transfer's end
            ticket = tickets + units[g, U_LOAD_TICKET]
            if xfer[ticket, X_DONE] == 0:
                break
            times[g, T_LOAD_END] = now
            times[g, T_LOAD_START] = now - xfer[ticket, X_CYCLES]
            times[g, T_ARRIVED] = now
            u, pc = u + 1, 1
        moved = True
    state[layer, L_LOADER_PC], state[layer, L_LOADER_U] = pc, u
    return moved


@njit(inline="always")
def _array(units, layers, times, state, logs, sc, layer, now):
    """Layer ``layer``'s array, as far as it goes now; 0 if it did not move, 1 if it did,
    -1 on a free of more than is held."""
    moved = 0
    first, n = layers[layer, Y_UNIT_OFFSET], layers[layer, Y_UNITS]
    pc, u = state[layer, L_ARRAY_PC], state[layer, L_ARRAY_U]
    while pc != DONE_PC:
        g = first + u
        if pc == 0:  # one array: the previous layer's last unit first
            if layer > 0 and state[layer - 1, L_ARRAY_DONE] < 0:
                break
            u, pc = 0, 1
        elif pc == 1:
            if u == n:
                state[layer, L_ARRAY_DONE] = now
                pc = DONE_PC
            elif units[g, U_WORK] != 0:
                if times[g, T_ARRIVED] < 0:
                    break
                latency = layers[layer, Y_LATENCY]
                if latency > 0 and times[g, T_LOAD_END] >= 0 and (
                        times[g, T_LOAD_END] + latency > now):
                    state[layer, L_WAKE] = times[g, T_LOAD_END] + latency
                    pc = 2
                else:
                    pc = 3
            else:
                pc = 3
        elif pc == 2 or pc == 4:  # a wait
            if now < state[layer, L_WAKE]:
                break
            pc += 1
        elif pc == 3:
            amount = units[g, U_OUT_ALLOC]
            if amount > 0 and not layers[layer, Y_CLAIMS_OUTPUTS]:
                if not _claim(logs, sc, 2, now, amount, layer):
                    break
            times[g, T_START] = now
            if units[g, U_CYCLES] > 0:
                state[layer, L_WAKE] = now + units[g, U_CYCLES]
                pc = 4
            else:
                pc = 5
        else:  # pc 5: the unit ends
            times[g, T_END] = now
            if not (_free(logs, sc, 0, now, units[g, U_RELEASE_IFMAP], layer)
                    and _free(logs, sc, 1, now, units[g, U_RELEASE_FILTER], layer)):
                return -1
            u, pc = u + 1, 1
        moved = 1
    state[layer, L_ARRAY_PC], state[layer, L_ARRAY_U] = pc, u
    return moved


@njit(inline="always")
def _writer(units, layers, times, xfer, state, layer, now):
    """Layer ``layer``'s writer, as far as it goes now; True if it moved."""
    moved = False
    first, n = layers[layer, Y_UNIT_OFFSET], layers[layer, Y_UNITS]
    pc, u = state[layer, L_WRITER_PC], state[layer, L_WRITER_U]
    while pc != DONE_PC:
        if pc == 0:  # the next unit that writes back
            while u < n and units[first + u, U_STORE_BYTES] == 0:
                u += 1
            if u < n:
                pc = 1
            elif state[layer, L_LAST_STORE] < 0:
                state[layer, L_WRITER_DONE] = now
                pc = DONE_PC
            else:
                pc = 2
        elif pc == 1:  # when the unit has ended, its outputs go to the channel
            if times[first + u, T_END] < 0:
                break
            ticket = layers[layer, Y_TICKET_OFFSET] + units[first + u, U_STORE_TICKET]
            xfer[ticket, X_SUBMITTED] = 1
            state[layer, L_LAST_STORE] = ticket
            u, pc = u + 1, 0
        else:  # pc 2: the last write-back's end
            if xfer[state[layer, L_LAST_STORE], X_DONE] == 0:
                break
            state[layer, L_WRITER_DONE] = now
            pc = DONE_PC
        moved = True
    state[layer, L_WRITER_PC], state[layer, L_WRITER_U] = pc, u
    return moved


@njit(inline="always")
def _scheduled(layers, tickets, xfer, state, fifo, sc, layer, ticket, start, cycles):
    """Transfer ``ticket`` holds the link from ``start`` for ``cycles``."""
    xfer[ticket, X_START] = start
    xfer[ticket, X_CYCLES] = cycles
    end = start + cycles
    sc[S_FREE_AT] = end
    fifo[sc[S_TAIL]] = ticket
    sc[S_TAIL] += 1
    state[layer, L_NEXT_TICKET] += 1


@njit(inline="always")
def _quiet_cycles(tickets, device, state, layer, ticket, start):
    """The device's cycles of a transfer from ``start`` when no refresh reaches it (and its
    counts), else -1: the caller's device works it out."""
    num, den = device[D_NUM], device[D_DEN]
    refi, busy = device[D_REFI], device[D_REFRESH_BUSY]
    t0 = -((-start * num) // den)
    last = (t0 // refi) * refi
    refresh = last + refi
    begin = t0
    if 0 < last and t0 < last + busy:
        begin = last + busy
    foreign = 1 if (device[D_OPEN_PAGE] != 0 and begin == t0) else 0
    row = K_QUIET + 4 * foreign
    if begin + tickets[ticket, row + 1] >= refresh:
        return -1
    end = begin + tickets[ticket, row]
    state[layer, L_ACTIVATES] += tickets[ticket, row + 2]
    state[layer, L_MISSES] += tickets[ticket, row + 3]
    if tickets[ticket, K_WRITE]:
        state[layer, L_WRITE_BURSTS] += tickets[ticket, K_BURSTS]
    else:
        state[layer, L_READ_BURSTS] += tickets[ticket, K_BURSTS]
    state[layer, L_BUSY] += end - t0
    state[layer, L_DRAM_BYTES] += tickets[ticket, K_BYTES]
    return -((-end * den) // num) - start


@njit
def _run_chain(units, tickets, layers, device, times, xfer, state, fifo, logs, sc):
    """Run the chain from the state in the arrays until it ends (``R_DONE``), needs the
    cycles of a transfer that meets a refresh (``R_NEED_DRAM``: ticket ``sc[S_PENDING]``
    from ``sc[S_PENDING_START]``; call again with them in ``sc[S_ANSWER]`` and the phase
    ``PH_ANSWERED``), deadlocks (``R_DEADLOCK``) or frees more than a buffer holds
    (``R_OVERFREE``)."""
    count = layers.shape[0]
    while True:
        phase = sc[S_PHASE]
        now = sc[S_NOW]
        if phase == PH_PROCESS:  # every process as far as it goes at this cycle
            progress = True
            while progress:
                progress = False
                high = sc[S_HIGH]
                while high + 1 < count and (state[high, L_LOADER_DONE] >= 0
                                            or state[high, L_ARRAY_DONE] >= 0):
                    high += 1
                sc[S_HIGH] = high
                for layer in range(sc[S_LOW], high + 1):
                    if _loader(units, layers, times, xfer, state, logs, sc, layer, now):
                        progress = True
                    went = _array(units, layers, times, state, logs, sc, layer, now)
                    if went < 0:
                        return R_OVERFREE
                    if went > 0:
                        progress = True
                    if _writer(units, layers, times, xfer, state, layer, now):
                        progress = True
            sc[S_PHASE] = PH_LINK
            sc[S_LINK] = sc[S_LOW]
        elif phase == PH_ANSWERED:  # the caller's cycles of the pending transfer
            ticket = sc[S_PENDING]
            _scheduled(layers, tickets, xfer, state, fifo, sc, sc[S_LINK], ticket,
                       sc[S_PENDING_START], sc[S_ANSWER])
            sc[S_PHASE] = PH_LINK
        elif phase == PH_LINK:  # the due transfers take the link: by layer, then ticket
            for layer in range(sc[S_LINK], sc[S_HIGH] + 1):
                offset, n = layers[layer, Y_TICKET_OFFSET], layers[layer, Y_TICKETS]
                while state[layer, L_NEXT_TICKET] < n:
                    ticket = offset + state[layer, L_NEXT_TICKET]
                    if xfer[ticket, X_SUBMITTED] == 0:
                        break
                    start = max(now, sc[S_FREE_AT])
                    if layers[layer, Y_DEVICE]:
                        cycles = _quiet_cycles(tickets, device, state, layer, ticket, start)
                        if cycles < 0:
                            sc[S_LINK], sc[S_PENDING], sc[S_PENDING_START] = layer, ticket, start
                            sc[S_PHASE] = PH_ANSWERED
                            return R_NEED_DRAM
                    else:
                        cycles = tickets[ticket, K_STATIC]
                    _scheduled(layers, tickets, xfer, state, fifo, sc, layer, ticket, start,
                               cycles)
            sc[S_PHASE] = PH_ADVANCE
        else:  # PH_ADVANCE: to the next cycle something happens at
            low = sc[S_LOW]
            while low < count and (state[low, L_LOADER_DONE] >= 0
                                   and state[low, L_ARRAY_DONE] >= 0
                                   and state[low, L_WRITER_DONE] >= 0):
                low += 1
            sc[S_LOW] = low
            if low == count:
                return R_DONE
            head = sc[S_HEAD]
            upcoming = -1
            if head < sc[S_TAIL]:
                ticket = fifo[head]
                upcoming = xfer[ticket, X_START] + xfer[ticket, X_CYCLES]
            for layer in range(low, sc[S_HIGH] + 1):
                pc = state[layer, L_ARRAY_PC]
                if (pc == 2 or pc == 4) and (upcoming < 0 or state[layer, L_WAKE] < upcoming):
                    upcoming = state[layer, L_WAKE]
            if upcoming < 0:
                return R_DEADLOCK
            now = sc[S_NOW] = upcoming
            while head < sc[S_TAIL]:  # transfers end in the order they took the link
                ticket = fifo[head]
                if xfer[ticket, X_START] + xfer[ticket, X_CYCLES] != now:
                    break
                head += 1
                xfer[ticket, X_DONE] = 1
                if tickets[ticket, K_STORE]:  # its outputs leave the buffer
                    g = tickets[ticket, K_UNIT]
                    times[g, T_STORE_END] = now
                    times[g, T_STORE_START] = now - xfer[ticket, X_CYCLES]
                    if not _free(logs, sc, 2, now, units[g, U_STORE_FREE],
                                 tickets[ticket, K_LAYER]):
                        return R_OVERFREE
            sc[S_HEAD] = head
            sc[S_PHASE] = PH_PROCESS


def _variants() -> dict[str, list[tuple]]:
    i64 = types.int64
    table = types.Array(i64, 2, "C", readonly=True)
    matrix = types.Array(i64, 2, "C")
    vector = types.Array(i64, 1, "C")
    return {"_run_chain": [(table, table, table, types.Array(i64, 1, "C", readonly=True),
                            matrix, matrix, matrix, vector, types.Array(i64, 3, "C"),
                            vector)]}


#: Kernel name -> the argument types of each variant built ahead of time.
AOT = _variants()
