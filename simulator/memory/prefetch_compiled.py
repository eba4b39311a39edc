"""A prefetch chain run by its compiled twin instead of SimPy's processes
(docs/performance.md, "The memory schedule, compiled").

:class:`~simulator.memory.prefetch.PrefetchChain` hands its layers here when the twin can
run them: the chain prefetches ``all`` (not ``weights``), owns its DRAM link (not a core of
a multi-core run) and waits on no other chain's outputs, so that nothing else on the
environment touches its buffers or its link; its layers share one DRAM timing (a fixed
bandwidth, or one preset's device).
Then :func:`simulator.kernels.chain.run_chain` computes the same schedule as the processes
(tests/memory/test_prefetch_compiled.py compares them on random programs and on the shipped
chips) and each layer's device gets the same counts: the transfers a refresh reaches are
worked out by the device itself, the others from its per-size figures.

``SASIM_SCHEDULE`` chooses: ``auto`` (the default) uses the twin when its loop is compiled
ahead of time (a first run would otherwise wait for numba to compile it), ``compiled``
always (numba compiles it if need be), ``simpy`` never.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from simulator.memory.plan import LOAD_COLUMNS, TileProgram
from simulator.memory.run import Dram, channel_tickets, loader_work
from simulator.operands import PerBuffer

__all__ = ["CompiledRun", "usable", "run"]

_LOOPS = "simulator.kernels.chain_loops"
_IFMAP, _FILTER = LOAD_COLUMNS.index("ifmap"), LOAD_COLUMNS.index("filter")
_CHOICES = ("auto", "compiled", "simpy")


def _choice() -> str:
    value = os.environ.get("SASIM_SCHEDULE", "").strip().lower() or "auto"
    if value not in _CHOICES:
        from simulator.errors import ConfigError

        raise ConfigError(f"SASIM_SCHEDULE={os.environ['SASIM_SCHEDULE'][:40]!r}: use "
                          f"{', '.join(_CHOICES)} (docs/performance.md, \"The memory "
                          f"schedule, compiled\")")
    return value


def usable(chain: Any) -> bool:
    """True when ``chain`` may run on the twin (see the module docstring)."""
    choice = _choice()
    if choice == "simpy":
        return False
    if (chain.mode != "all" or chain.shared_link is not None or not chain.layers
            or any(gate is not None for gate in chain.gates)):
        return False
    first = chain.layers[0][1]
    for _, dram in chain.layers:
        if (dram.device is None) != (first.device is None):
            return False
        if dram.device is not None and (
                dram.device.spec != first.device.spec
                or (dram.device.num, dram.device.den) != (first.device.num, first.device.den)):
            return False
    if choice == "compiled":
        return True
    from simulator.kernels.compiled import is_compiled

    return is_compiled(_LOOPS)


class _Log:
    """A layer's log of one buffer, as :class:`~simulator.memory.run.BufferLog` gives it."""

    __slots__ = ("rows",)

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def events(self) -> np.ndarray:
        return self.rows


class CompiledRun:
    """One layer of a chain run by the twin: what :meth:`PrefetchChain.collect` reads of a
    run (absolute times)."""

    def __init__(self, program: TileProgram, dram: Dram, times: dict[str, np.ndarray],
                 logs: list[np.ndarray], origin: int, array_done_at: int,
                 done_at: int) -> None:
        self.program, self.dram, self.times = program, dram, times
        self.buffers = PerBuffer(*(_Log(rows) for rows in logs))
        self.origin, self.array_done_at, self.done_at = origin, array_done_at, done_at

    def schedule(self, window: tuple[int, int], end: int) -> Any:
        from simulator.memory.prefetch import layer_schedule

        return layer_schedule(self.times, self.origin, [b.rows for b in self.buffers],
                              self.dram, window, end)


def _tables(programs: list[TileProgram], drams: list[Dram]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The twin's unit, ticket and layer tables and the device's figures."""
    from simulator.kernels import chain as k

    unit_tables, ticket_tables = [], []
    layers = np.zeros((len(programs), k.LAYER_COLUMNS), np.int64)
    device = np.zeros(k.DEVICE_COLUMNS, np.int64)
    dev = drams[0].device
    if dev is not None:
        device[[k.D_NUM, k.D_DEN, k.D_REFI, k.D_REFRESH_BUSY, k.D_OPEN_PAGE]] = (
            dev.num, dev.den, dev.refi, dev.refresh_busy, dev.open_page)
    unit_offset = ticket_offset = 0
    for index, (program, dram) in enumerate(zip(programs, drams)):
        n = program.units
        table = np.zeros((n, k.UNIT_COLUMNS), np.int64)
        moved = program.channel_load.sum(axis=1)
        work = loader_work(program)
        store = program.store.sum(axis=1)
        load_ticket, store_ticket = channel_tickets(program)
        for column, values in ((k.U_CYCLES, program.unit_cycles),
                               (k.U_LOAD_AFTER, program.load_after), (k.U_WORK, work),
                               (k.U_LOAD_IFMAP, program.load[:, _IFMAP]),
                               (k.U_LOAD_FILTER, program.load[:, _FILTER]),
                               (k.U_OUT_ALLOC, program.out_alloc), (k.U_MOVED, moved),
                               (k.U_RELEASE_IFMAP, program.release[:, _IFMAP]),
                               (k.U_RELEASE_FILTER, program.release[:, _FILTER]),
                               (k.U_STORE_BYTES, store), (k.U_STORE_FREE, program.store_free),
                               (k.U_LOAD_TICKET, load_ticket),
                               (k.U_STORE_TICKET, store_ticket)):
            table[:, column] = values
        count = int((load_ticket >= 0).sum() + (store_ticket >= 0).sum())
        tickets = np.zeros((count, k.TICKET_COLUMNS), np.int64)
        for ticket, nbytes, write in ((load_ticket, moved, 0), (store_ticket, store, 1)):
            has = ticket >= 0
            rows = ticket[has]
            tickets[rows, k.K_BYTES] = nbytes[has]
            tickets[rows, k.K_WRITE] = tickets[rows, k.K_STORE] = write
            tickets[rows, k.K_UNIT] = unit_offset + np.flatnonzero(has)
        tickets[:, k.K_LAYER] = index
        _durations(tickets, dram)
        layers[index, [k.Y_UNIT_OFFSET, k.Y_TICKET_OFFSET, k.Y_UNITS, k.Y_TICKETS,
                       k.Y_CLAIMS_OUTPUTS, k.Y_LATENCY, k.Y_DEVICE]] = (
            unit_offset, ticket_offset, n, count, bool(program.loader_claims_outputs),
            dram.latency_cycles, dram.device is not None)
        unit_tables.append(table)
        ticket_tables.append(tickets)
        unit_offset += n
        ticket_offset += count
    return (np.concatenate(unit_tables), np.concatenate(ticket_tables), layers, device)


def _durations(tickets: np.ndarray, dram: Dram) -> None:
    """Fill in a layer's transfers' cycles: fixed, or the device's figures per size."""
    from simulator.kernels import chain as k

    nbytes = tickets[:, k.K_BYTES]
    device = dram.device
    if device is None:
        if dram.bandwidth_bytes_per_cycle is not None:  # Dram.cycles, for every transfer
            tickets[:, k.K_STATIC] = np.ceil(nbytes / dram.bandwidth_bytes_per_cycle)
        return
    bursts = -(-nbytes // device.burst_bytes)
    tickets[:, k.K_BURSTS] = bursts
    keys, where = np.unique(bursts * 2 + tickets[:, k.K_WRITE], return_inverse=True)
    figures = np.array([[value for foreign in (False, True) for value in
                         device.quiet(int(key // 2), bool(key % 2), foreign)]
                        for key in keys.tolist()], np.int64).reshape(len(keys), 8)
    tickets[:, k.K_QUIET:k.K_QUIET + 8] = figures[where.reshape(-1)]


def run(chain: Any) -> list[CompiledRun]:
    """Run ``chain``'s layers on the twin from now; each layer's run (the environment is
    advanced to the chain's end). Raises :class:`~simulator.errors.SimulationError` when the
    schedule deadlocks, as the processes do."""
    from simulator.errors import SimulationError
    from simulator.kernels import chain as k

    for index, (program, dram) in enumerate(chain.layers):
        if not isinstance(program, TileProgram):  # still being prepared: wait for it
            chain.layers[index] = (program := program(), dram)
        chain.check_capacity(program)
    programs = [program for program, _ in chain.layers]
    drams = [dram for _, dram in chain.layers]
    units, tickets, layers, device = _tables(programs, drams)
    start = chain.env.now

    def refresh_cycles(layer: int, ticket: int, at: int) -> int:
        return drams[layer].device.cycles_at(int(tickets[ticket, k.K_BYTES]),
                                             bool(tickets[ticket, k.K_WRITE]), at)

    try:
        result = k.run_chain(units, tickets, layers, device, chain.capacity or (None,) * 3,
                             start, refresh_cycles)
    except RuntimeError as exc:
        raise SimulationError(f"layer {programs[-1].name}: the prefetching memory schedule: "
                              f"{exc}") from None
    logs = []  # per buffer, each layer's rows
    for log in result.logs:
        order = np.argsort(log[:, 2], kind="stable")
        rows = log[order]
        cuts = np.searchsorted(rows[:, 2], np.arange(len(programs) + 1))
        logs.append([rows[cuts[i]:cuts[i + 1], :2] for i in range(len(programs))])
    runs = []
    names = ("start", "end", "load_start", "load_end", "store_start", "store_end")
    columns = (k.T_START, k.T_END, k.T_LOAD_START, k.T_LOAD_END, k.T_STORE_START,
               k.T_STORE_END)
    for index, (program, dram) in enumerate(zip(programs, drams)):
        row = result.state[index]
        first = int(layers[index, k.Y_UNIT_OFFSET])
        block = result.times[first:first + program.units]
        times = {name: block[:, column] for name, column in zip(names, columns)}
        if dram.device is not None:
            counts = dram.device.counts
            counts.activates += int(row[k.L_ACTIVATES])
            counts.misses += int(row[k.L_MISSES])
            counts.read_bursts += int(row[k.L_READ_BURSTS])
            counts.write_bursts += int(row[k.L_WRITE_BURSTS])
            counts.busy_cycles += int(row[k.L_BUSY])
            counts.bytes += int(row[k.L_DRAM_BYTES])
        done_at = int(max(row[k.L_LOADER_DONE], row[k.L_ARRAY_DONE], row[k.L_WRITER_DONE]))
        runs.append(CompiledRun(program, dram, times, [b[index] for b in logs],
                                int(row[k.L_ORIGIN]),
                                int(row[k.L_ARRAY_DONE]), done_at))
    end = max((r.done_at for r in runs), default=start)
    if end > start:
        chain.env.run(until=end)
    return runs
