"""A prefetch chain's memory schedule, compiled (docs/memory-model.md, "Cross-layer
prefetch", and docs/performance.md, "The memory schedule, compiled").

The SimPy processes of :mod:`simulator.memory.prefetch` are the reference; this loop is
their compiled twin, and the tests require the two to agree on every time, claim and DRAM
count (tests/memory/test_prefetch_compiled.py). It keeps, per layer of the chain, the
three processes as program counters:

- the **loader** starts when the previous layer's loader has ended; for each unit with
  loader work it waits for unit ``load_after`` to end, claims its input and weight bytes
  (and its output bytes, after the previous layer's array), hands its transfer to the
  link and waits for it to end;
- the **array** starts when the previous layer's array has ended; each unit waits for its
  operands (and the DRAM latency after their transfer), claims its outputs, computes for
  its cycles and frees the operand bytes of their last use;
- the **writer** hands each unit's write-back to the link when the unit ends; the output
  bytes are freed when that transfer ends, and the writer ends with its last.

Every process goes as far as it can at a cycle (a buffer claim is granted when its bytes
fit, whatever order the frees of that cycle came in: each buffer has one claimer at a
time). Then the transfers due at that cycle take the link, first come, first served: at
one cycle the earlier layer's first, within a layer in ticket order; a transfer starts
when the link is free and holds it for its cycles. The loop then moves to the next cycle
at which a transfer ends or an array's wait does. A transfer that meets a DRAM refresh is
not worked out here: the loop returns, the caller's device computes it, and the loop goes
on from where it stopped.

Arrays in, arrays out (``int64``), indexed by the constants below: the unit, ticket and
layer tables and the device's figures are read only; the times, the transfers' state, the
layers' state, the link's order, the buffer logs and the scalars are the loop's state. The
loop is compiled in :mod:`simulator.kernels.chain_loops` (by numba on first use, or ahead
of time: :mod:`simulator.kernels.compiled`); this module makes the state and drives it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulator.kernels.compiled import kernels

__all__ = ["ChainRun", "run_chain", "UNIT_COLUMNS", "TICKET_COLUMNS", "LAYER_COLUMNS",
           "DEVICE_COLUMNS"]

_LOOPS = "simulator.kernels.chain_loops"

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


class ChainRun:
    """What :func:`run_chain` leaves: ``times`` (units x ``T_*``, absolute cycles, -1: did
    not happen), ``state`` (layers x ``L_*``: each layer's origin, its processes' ends and
    its DRAM counts) and ``logs``: per buffer an (events, 3) array of (cycle, +bytes claimed
    or -bytes freed, layer)."""

    def __init__(self, times: np.ndarray, state: np.ndarray, logs: list[np.ndarray]) -> None:
        self.times, self.state, self.logs = times, state, logs


def run_chain(units: np.ndarray, tickets: np.ndarray, layers: np.ndarray, device: np.ndarray,
              capacity: tuple[int | None, int | None, int | None], start: int,
              refresh_cycles: Callable[[int, int, int], int]) -> ChainRun:
    """Run a chain's layers from cycle ``start`` with empty buffers and a free link.

    Parameters
    ----------
    units : (units, ``UNIT_COLUMNS``) int64, every layer's units in chain order (tickets and
        ``load_after`` local to the layer, -1: none).
    tickets : (transfers, ``TICKET_COLUMNS``) int64, every layer's transfers in ticket order.
    layers : (layers, ``LAYER_COLUMNS``) int64.
    device : ``DEVICE_COLUMNS`` int64 (read when a layer has ``Y_DEVICE``).
    capacity : each buffer's bytes (``None``: unbounded).
    refresh_cycles : ``(layer, transfer, start) -> cycles`` of a transfer that meets a
        refresh (the device also counts it).

    Raises
    ------
    RuntimeError : the schedule deadlocks, or frees more than a buffer holds (a bug).
    """
    for name, table, columns in (("units", units, UNIT_COLUMNS),
                                 ("tickets", tickets, TICKET_COLUMNS),
                                 ("layers", layers, LAYER_COLUMNS)):
        if table.dtype != np.int64 or table.ndim != 2 or table.shape[1] != columns:
            raise ValueError(f"{name} must be int64 with {columns} columns, not "
                             f"{table.dtype} {table.shape}")
    count, total = layers.shape[0], units.shape[0]
    times = np.full((total, TIME_COLUMNS), -1, np.int64)
    xfer = np.zeros((tickets.shape[0], XFER_COLUMNS), np.int64)
    state = np.full((count, STATE_COLUMNS), -1, np.int64)
    state[:, [L_LOADER_PC, L_LOADER_U, L_ARRAY_PC, L_ARRAY_U, L_WRITER_PC, L_WRITER_U,
              L_NEXT_TICKET, L_ACTIVATES, L_MISSES, L_READ_BURSTS, L_WRITE_BURSTS, L_BUSY,
              L_DRAM_BYTES]] = 0
    stores = np.concatenate([[0], np.cumsum(units[:, U_STORE_BYTES] > 0)])
    ends = layers[:, Y_UNIT_OFFSET] + layers[:, Y_UNITS]
    silent = stores[ends] == stores[layers[:, Y_UNIT_OFFSET]]
    state[silent, L_WRITER_PC] = DONE_PC  # no write-back: the writer ends at once
    state[silent, L_WRITER_DONE] = start
    fifo = np.zeros(max(1, tickets.shape[0]), np.int64)
    logs = np.zeros((3, 2 * total + 1, 3), np.int64)
    sc = np.zeros(SCALARS, np.int64)
    sc[S_NOW] = sc[S_FREE_AT] = start
    sc[S_PHASE] = PH_PROCESS
    for b, cap in enumerate(capacity):
        sc[S_CAPACITY + b] = np.iinfo(np.int64).max // 2 if cap is None else cap
    read_only = [np.ascontiguousarray(a) for a in (units, tickets, layers, device)]
    for a in read_only:
        a.setflags(write=False)
    arguments = (*read_only, times, xfer, state, fifo, logs, sc)
    kernel = kernels(_LOOPS)._run_chain
    loop = kernel.resolve(*arguments) if hasattr(kernel, "resolve") else kernel
    while True:
        code = loop(*arguments)
        if code != R_NEED_DRAM:
            break
        sc[S_ANSWER] = refresh_cycles(int(sc[S_LINK]), int(sc[S_PENDING]),
                                      int(sc[S_PENDING_START]))
    if code == R_DEADLOCK:
        raise RuntimeError("the memory schedule deadlocked")
    if code == R_OVERFREE:
        raise RuntimeError("a buffer was freed of more than it held")
    return ChainRun(times, state, [logs[b, :sc[S_LOGGED + b]] for b in range(3)])
