"""Running a tile program on the engine: a loader, the array and a writer around three buffers.

Three SimPy processes share one DRAM channel and three buffers (each a
:class:`~simulator.engine.Space` whose level is the bytes held):

- the **loader** walks the units in order; for unit u it waits until unit ``load_after[u]``
  has ended (one unit of look-ahead with double buffering), claims buffer space (waiting
  until enough has been freed) and transfers the unit's bytes over the channel; the data is
  usable ``dram_latency_cycles`` after the transfer ends;
- the **array** starts unit u when u - 1 has ended and u's operands have arrived (and, for a
  unit that produces outputs, when the output buffer has room), computes for the unit's
  cycles, then frees the operand bytes whose last use this was;
- the **writer** waits for each unit that produces outputs and transfers them to DRAM; their
  output-buffer space is freed when the transfer ends.

The channel serves transfers in a fixed order (the loads of unit u, then the write-back of
unit u - 1, then the loads of unit u + 1, ...): :class:`~simulator.engine.SequencedChannel`.
Events stand for transfers and units, never for single PE cycles.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import simpy
from simpy.events import Event

from simulator.engine import ChannelLink, Milestones, SequencedChannel, Space
from simulator.errors import SimulationError
from simulator.memory.plan import LOAD_COLUMNS, TileProgram
from simulator.operands import PerBuffer
from simulator.records import record

__all__ = ["Dram", "LayerSchedule", "StartedLayer", "run_layer", "start_layer",
           "unbounded_schedule", "channel_tickets", "loader_work", "peak_occupancy",
           "write_backs"]


@record
class Dram:
    """The DRAM channel: bytes per cycle (``None``: unbounded) and load latency in cycles;
    ``device``: a DRAM preset's :class:`~simulator.memory.dram.DramDevice` whose timing
    replaces the bandwidth (docs/memory-model.md, "DRAM timing and energy")."""

    bandwidth_bytes_per_cycle: float | None = None
    latency_cycles: int = 0
    device: Any = None

    def timed(self, nbytes: int, write: bool) -> int | _Timed:
        """The cycles of a transfer for :meth:`SequencedChannel.transfer`: a number, or
        (with a device) a function of its start that records the cycles it returned."""
        if self.device is None or nbytes == 0:
            return self.cycles(nbytes)
        return _Timed(self.device, nbytes, write)

    def cycles(self, nbytes: int) -> int:
        """Cycles the channel is busy moving ``nbytes`` (whole cycles, rounded up)."""
        if self.bandwidth_bytes_per_cycle is None or nbytes == 0:
            return 0
        return math.ceil(nbytes / self.bandwidth_bytes_per_cycle)


class _Timed:
    """A DRAM transfer whose cycles depend on the cycle it starts at (refresh)."""

    __slots__ = ("device", "nbytes", "write", "cycles")

    def __init__(self, device: Any, nbytes: int, write: bool) -> None:
        self.device, self.nbytes, self.write, self.cycles = device, nbytes, write, 0

    def __call__(self, start: int) -> int:
        self.cycles = self.device.cycles_at(self.nbytes, self.write, start)
        return self.cycles


def _cycles(duration: int | _Timed) -> int:
    return duration.cycles if isinstance(duration, _Timed) else duration


@record
class LayerSchedule:
    """When everything of one layer happened, in cycles from the layer's start.

    Unit arrays have one entry per unit; ``-1`` marks a unit without loads or write-back.
    ``claims`` holds, per buffer, an int64 (k, 2) array of (cycle, +bytes claimed / -bytes
    freed) events in the order they happened.
    """

    start: np.ndarray
    end: np.ndarray
    load_start: np.ndarray
    load_end: np.ndarray
    store_start: np.ndarray
    store_end: np.ndarray
    elapsed: int
    claims: PerBuffer[np.ndarray]
    #: The DRAM's figures for the layer (a DRAM preset only; docs/memory-model.md).
    dram: dict[str, Any] | None = None
    #: With cross-layer prefetch, the layer's window (start, end) in cycles from its start:
    #: what its ``total_cycles`` count (docs/memory-model.md, "Cross-layer prefetch");
    #: ``None``: the whole ``elapsed``.
    window: tuple[int, int] | None = None

    @functools.cached_property
    def peak(self) -> PerBuffer[int]:
        """Peak bytes held in each buffer (computed once: layers of one shape share it)."""
        return PerBuffer(*(peak_occupancy(c) for c in self.claims))


def peak_occupancy(claims: np.ndarray) -> int:
    """Largest level of a buffer given its (cycle, delta) events; frees at a cycle count
    before claims at that cycle (space freed at cycle t is usable at cycle t)."""
    if len(claims) == 0:
        return 0
    order = np.lexsort((claims[:, 1], claims[:, 0]))
    return int(max(0, np.cumsum(claims[order, 1]).max()))


def channel_tickets(program: TileProgram) -> tuple[np.ndarray, np.ndarray]:
    """The channel's service order: ticket of each unit's loads and of its write-back.

    Loads of unit u come before the write-back of unit u - 1 (so prefetching is not held up
    by draining), and that before the loads of unit u + 1. ``-1``: no transfer.
    """
    units = program.units
    has_load = program.channel_load.sum(axis=1) > 0
    has_store = program.store.sum(axis=1) > 0
    keys = np.concatenate([2 * np.arange(units)[has_load], 2 * np.arange(units)[has_store] + 3])
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.argsort(keys, kind="stable")] = np.arange(len(keys))
    load_ticket = np.full(units, -1, dtype=np.int64)
    store_ticket = np.full(units, -1, dtype=np.int64)
    load_ticket[has_load] = rank[:int(has_load.sum())]
    store_ticket[has_store] = rank[int(has_load.sum()):]
    return load_ticket, store_ticket


def loader_work(program: TileProgram) -> np.ndarray:
    """Per unit: whether the loader has anything to do for it (bytes to claim or to move)."""
    work = (program.load.sum(axis=1) > 0) | (program.channel_load.sum(axis=1) > 0)
    if program.loader_claims_outputs:
        work |= program.out_alloc > 0
    return work


class BufferLog:
    """One layer's view of an on-chip buffer: its :class:`~simulator.engine.Space` (its own,
    or one shared by the layers of a prefetch chain) and a log of claims and frees (cycle,
    +bytes claimed or -bytes freed), kept flat (cycle, bytes, cycle, bytes, ...): numpy
    converts a flat list of ints many times faster."""

    __slots__ = ("space", "log")

    def __init__(self, space: Space) -> None:
        self.space = space
        self.log: list[int] = []

    def events(self) -> np.ndarray:
        """The log as an int64 (k, 2) array."""
        return np.asarray(self.log, dtype=np.int64).reshape(-1, 2)

    def free(self, now: int, nbytes: int) -> None:
        """Give ``nbytes`` back at cycle ``now`` (from the layer's start) and log it."""
        if nbytes:
            self.space.free(nbytes)
            self.log += (now, -nbytes)


class _LayerRun:
    """One layer's run: its three processes and the state they share.

    The per-unit loops are written out flat (no helper generators): they run once per unit
    of a whole network, and SimPy's cost is per event and per Python call.
    """

    def __init__(self, env: simpy.Environment, program: TileProgram, dram: Dram,
                 link: ChannelLink | None = None) -> None:
        self.env, self.program, self.dram = env, program, dram
        units = program.units
        self.origin = env.now
        self.channel = SequencedChannel(env, link)
        self.buffers = PerBuffer(*(BufferLog(Space(env, c)) for c in program.capacity))
        self.ended = Milestones(env, units)
        self.arrived = Milestones(env, units)
        self.stored = Milestones(env, units)
        tickets = channel_tickets(program)
        self.load_ticket, self.store_ticket = (t.tolist() for t in tickets)
        self.times = {name: [-1] * units for name in
                      ("start", "end", "load_start", "load_end", "store_start", "store_end")}
        # Plain Python ints: the processes index these per unit (worked out with numpy:
        # this runs once per layer and core, over every unit of it).
        columns = [LOAD_COLUMNS.index(name) for name in ("ifmap", "filter")]
        self.load_ifmap, self.load_filter = (program.load[:, c].tolist() for c in columns)
        transfer = program.channel_load.sum(axis=1)
        self.transfer = transfer.tolist()
        self.release_ifmap, self.release_filter = (program.release[:, c].tolist()
                                                   for c in columns)
        self.cycles = program.unit_cycles.tolist()
        self.out_alloc = program.out_alloc.tolist()
        store = program.store.sum(axis=1)
        self.store_bytes = store.tolist()
        self.store_free = program.store_free.tolist()
        self.loader_work = loader_work(program).tolist()
        # the last unit before u that writes back (-1: none)
        writes = np.where(store > 0, np.arange(units), -1)
        self.previous_store = np.concatenate(
            [[-1], np.maximum.accumulate(writes)[:-1]]).astype(np.int64).tolist() if units else []

    def loader(self) -> Iterator[Event]:
        env, dram, channel, origin = self.env, self.dram, self.channel, self.origin
        load_start, load_end = self.times["load_start"], self.times["load_end"]
        buffers = self.buffers
        claims_outputs = self.program.loader_claims_outputs
        load_after = self.program.load_after.tolist()
        ended, arrived = self.ended, self.arrived
        load_ifmap, load_filter = self.load_ifmap, self.load_filter
        for u, work in enumerate(self.loader_work):
            if not work:
                continue
            wait = ended.wait(load_after[u])
            if wait is not None:
                yield wait
            out = self.out_alloc[u] if claims_outputs else 0
            # Partial sums read back land in the output space claimed for them.
            for buffer, nbytes in ((buffers.ifmap, load_ifmap[u]),
                                   (buffers.filter, load_filter[u]), (buffers.ofmap, out)):
                if nbytes:
                    wait = buffer.space.claim(nbytes)
                    if wait is not None:
                        yield wait
                    buffer.log += (env.now - origin, nbytes)
            nbytes = self.transfer[u]  # what the channel moves (ifmap + filt + psum, or coded)
            if nbytes:
                duration = dram.timed(nbytes, False)
                done = channel.transfer(self.load_ticket[u], duration)
                if done is not None:
                    yield done
                load_end[u] = env.now - origin
                load_start[u] = load_end[u] - _cycles(duration)
            arrived.reach(u)

    def array(self) -> Iterator[Event]:
        env, origin = self.env, self.origin
        claims_outputs = not self.program.loader_claims_outputs
        double_buffering = self.program.double_buffering
        latency = self.dram.latency_cycles
        ifmap_buffer, filter_buffer, ofmap_buffer = self.buffers
        start, end, load_end = self.times["start"], self.times["end"], self.times["load_end"]
        ended, arrived, stored = self.ended, self.arrived, self.stored
        release_ifmap, release_filter = self.release_ifmap, self.release_filter
        for u, cycles in enumerate(self.cycles):
            if self.loader_work[u]:
                wait = arrived.wait(u)
                if wait is not None:
                    yield wait
                # Data is usable dram_latency_cycles after its transfer ends.
                if latency and load_end[u] >= 0:
                    late = origin + load_end[u] + latency - env.now
                    if late > 0:
                        yield env.timeout(late)
            alloc = self.out_alloc[u]
            if alloc:
                if not double_buffering:
                    # One output buffer: it cannot take new outputs while it is drained.
                    wait = stored.wait(self.previous_store[u])
                    if wait is not None:
                        yield wait
                if claims_outputs:
                    wait = ofmap_buffer.space.claim(alloc)
                    if wait is not None:
                        yield wait
                    ofmap_buffer.log += (env.now - origin, alloc)
            start[u] = env.now - origin
            if cycles:
                yield env.timeout(cycles)
            end[u] = now = env.now - origin
            ifmap_buffer.free(now, release_ifmap[u])
            filter_buffer.free(now, release_filter[u])
            ended.reach(u)

    def writer(self) -> Iterator[Event]:
        env, dram, channel, origin = self.env, self.dram, self.channel, self.origin
        store_start, store_end = self.times["store_start"], self.times["store_end"]
        ofmap_buffer, ended, stored = self.buffers.ofmap, self.ended, self.stored

        def stored_now(u: int, duration: int | _Timed) -> None:
            store_end[u] = now = env.now - origin
            store_start[u] = now - _cycles(duration)
            ofmap_buffer.free(now, self.store_free[u])
            stored.reach(u)

        yield from write_backs(self.store_bytes, self.store_ticket, ended, dram,
                               channel.transfer, stored_now)


def write_backs(store_bytes: list[int], store_ticket: list[int], ended: Milestones,
                dram: Dram, submit: Any, stored: Any) -> Iterator[Event]:
    """The writer's loop (a lone layer's and a chained one's, docs/memory-model.md): each
    unit's outputs go to the channel (``submit(ticket, duration)``) when the unit has ended;
    ``stored(u, duration)`` runs when that transfer ends. The channel serves write-backs in
    ticket order, so the writer need not wait for one to end before it takes the next: its
    end frees the space. The loop ends when the last write-back does."""
    done = None
    for u, nbytes in enumerate(store_bytes):
        if not nbytes:
            continue
        wait = ended.wait(u)
        if wait is not None:
            yield wait
        duration = dram.timed(nbytes, True)
        done = submit(store_ticket[u], duration)
        if done is None:
            stored(u, duration)
        else:
            done.callbacks.append(lambda _, u=u, d=duration: stored(u, d))
    if done is not None and not done.processed:
        yield done


def run_layer(env: simpy.Environment, program: TileProgram, dram: Dram, *,
              closed_form: bool = True) -> LayerSchedule:
    """Run one layer's tile program on ``env``, starting now; returns its schedule.

    Layers run one after another on the same environment: each starts with empty buffers
    when the previous one has written back its last output.

    With unbounded buffers, unbounded bandwidth and no latency nothing can wait: every unit
    starts when the previous one ends, every load happens when its look-ahead allows and every
    write-back when its unit ends. That schedule is computed in closed form and the
    environment is advanced past it; ``closed_form=False`` runs the processes anyway (the
    tests require both to agree).

    Raises
    ------
    SimulationError : when the program cannot finish (a buffer can never make room); the
        planner rules this out, so it signals a bug.
    TypeError : when the program's cycles or bytes are not integers.
    """
    for name in ("unit_cycles", "load", "release", "out_alloc", "store", "store_free",
                 "channel_load"):
        if getattr(program, name).dtype.kind not in "iu":
            raise TypeError(f"TileProgram.{name} must hold integers (cycles and bytes stay "
                            f"exact), not {getattr(program, name).dtype}")
    if (closed_form and program.capacity == (None, None, None) and dram.device is None
            and dram.bandwidth_bytes_per_cycle is None and dram.latency_cycles == 0):
        schedule = unbounded_schedule(program)
        if schedule.elapsed:
            env.run(until=env.now + schedule.elapsed)
        return schedule
    started = start_layer(env, program, dram)
    return started.finish()


class StartedLayer:
    """A layer whose processes run on the environment (:func:`start_layer`); other layers may
    run beside it (the vector unit's ``overlap``, docs/transformers.md)."""

    def __init__(self, env: simpy.Environment, program: TileProgram, dram: Dram,
                 link: ChannelLink | None = None) -> None:
        self.env, self.program = env, program
        self.run = _LayerRun(env, program, dram, link)
        self.done = env.all_of([env.process(self.run.loader()), env.process(self.run.array()),
                                env.process(self.run.writer())])
        self.end: int | None = None
        self.done.callbacks.append(lambda _: setattr(self, "end", env.now))

    def finish(self) -> LayerSchedule:
        """Run the environment until the layer has finished (if it has not) and return its
        schedule; its ``elapsed`` ends when the layer did, not when this is called."""
        if not self.done.processed:
            try:
                self.env.run(until=self.done)
            except RuntimeError:  # SimPy: no events left before every process finished
                raise SimulationError(f"layer {self.program.name}: the memory schedule "
                                      f"deadlocked") from None
        layer = self.run
        t = {name: np.asarray(v, dtype=np.int64) for name, v in layer.times.items()}
        end = self.end if self.end is not None else self.env.now
        device = layer.dram.device
        return LayerSchedule(start=t["start"], end=t["end"], load_start=t["load_start"],
                             load_end=t["load_end"], store_start=t["store_start"],
                             store_end=t["store_end"], elapsed=end - layer.origin,
                             claims=PerBuffer(*(b.events() for b in layer.buffers)),
                             dram=None if device is None else device.report(end - layer.origin))


def start_layer(env: simpy.Environment, program: TileProgram, dram: Dram,
                link: ChannelLink | None = None) -> StartedLayer:
    """Start one layer's processes on ``env`` now, without running the environment: the
    caller runs it (another layer beside it) and calls :meth:`StartedLayer.finish`. The layer
    has its own DRAM channel (docs/transformers.md, "Overlap") unless ``link`` is given: then
    its transfers share that link with the other layers on it, first come, first served
    (docs/memory-model.md)."""
    return StartedLayer(env, program, dram, link)


def unbounded_schedule(program: TileProgram) -> LayerSchedule:
    """The schedule of ``program`` when nothing waits (unbounded memory, no latency).

    Units run back to back; unit u's loads happen when unit ``load_after[u]`` ends (the
    channel is free then: every earlier transfer took no time at a cycle no later), its
    write-back when it ends. Claims and frees follow at those cycles.
    """
    cycles = program.unit_cycles
    end = np.cumsum(cycles)
    start = end - cycles
    ended = np.concatenate([[0], end])  # ended[v + 1]: end of unit v; ended[0]: the start
    loads = program.channel_load.sum(axis=1) > 0
    at_load = ended[program.load_after + 1]
    load_time = np.where(loads, at_load, -1)
    stores = program.store.sum(axis=1) > 0
    store_time = np.where(stores, end, -1)
    claims = []
    for name in ("ifmap", "filter"):  # the input buffers: columns of load and release
        column = LOAD_COLUMNS.index(name)
        claimed = program.load[:, column] > 0
        freed = program.release[:, column] > 0
        claims.append(np.concatenate([
            np.stack([at_load[claimed], program.load[claimed, column]], axis=1),
            np.stack([end[freed], -program.release[freed, column]], axis=1)]))
    claimed = program.out_alloc > 0
    when = (at_load if program.loader_claims_outputs else start)[claimed]
    freed = stores & (program.store_free > 0)
    claims.append(np.concatenate([
        np.stack([when, program.out_alloc[claimed]], axis=1),
        np.stack([end[freed], -program.store_free[freed]], axis=1)]))
    elapsed = int(end[-1]) if len(end) else 0
    return LayerSchedule(start=start, end=end, load_start=load_time, load_end=load_time.copy(),
                         store_start=store_time, store_end=store_time.copy(), elapsed=elapsed,
                         claims=PerBuffer(*(np.asarray(c, dtype=np.int64).reshape(-1, 2)
                                            for c in claims)))
