"""Cross-layer prefetch: consecutive layers on one set of buffers and one DRAM link.

While a layer computes, the next layer's first units load into the buffer space it leaves
free (docs/memory-model.md, "Cross-layer prefetch"). The layers of a :class:`PrefetchChain`
share three :class:`~simulator.engine.Space` buffers and one
:class:`~simulator.engine.ChannelLink`; each keeps its own ticket order on its own
:class:`~simulator.engine.SequencedChannel`, and the link serves their due transfers first
come, first served (at one cycle, the earlier layer's first).

The rules that keep it free of deadlock, and exact about what the next layer may do early:

- layer i + 1's loader starts when layer i's loader has ended (its last load has moved), so
  its claims never stand in front of layer i's input claims;
- its output-buffer claims (a loader that claims outputs, or its array) come after layer
  i's array has ended its last unit;
- its array starts its first unit when layer i's array has ended its last unit (one array)
  and the unit's operands have arrived; layer i's last write-backs overlap it;
- ``weights``: the loads before layer i + 1's first unit (those with ``load_after < 0``)
  move their weight bytes early (as long as they fit the filter buffer together:
  :func:`early_weights`) and their input bytes only once layer i has ended (its last
  write-back too): the next layer's input is usually this layer's output.

Times are recorded absolute and made relative to each layer's origin (when its loader
began) at the end; a layer's window runs from the previous layer's last unit end to its own
last unit end (the chain's last layer: until everything has ended), so the windows tile the
chain's time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import simpy
from simpy.events import Event

from simulator.config.arch import PrefetchMode
from simulator.engine import ChannelLink, Milestones, SequencedChannel, Space
from simulator.errors import SimulationError
from simulator.memory.plan import LOAD_COLUMNS, TileProgram
from simulator.memory.run import (BufferLog, Dram, LayerSchedule, _cycles, channel_tickets,
                                  loader_work, write_backs)
from simulator.operands import PerBuffer

__all__ = ["PrefetchChain", "PrefetchMode", "early_weights", "prefetch_tickets"]

_FILTER = LOAD_COLUMNS.index("filter")
#: SimPy priority of the first layer's deferred link submissions: after every ordinary event
#: of the cycle (SimPy's are 0 and 1), a later layer's after an earlier one's.
_BASE_PRIORITY = 2


def prefetch_tickets(program: TileProgram, split: bool
                     ) -> tuple[list[int], list[int], list[int]]:
    """The channel's service order of a chained layer: the ticket of each unit's loads, of
    its write-back and (``split``) of the early weight part of its loads; ``-1``: none.

    Without ``split`` it is :func:`~simulator.memory.run.channel_tickets`. With it, the weight
    bytes of the units whose loads wait for no unit (``load_after < 0``) move first, in unit
    order, as separate transfers; the rest keeps the order loads of u, write-back of u - 1,
    loads of u + 1.
    """
    load_ticket, store_ticket = (t.tolist() for t in channel_tickets(program))
    units = program.units
    filter_ticket = [-1] * units
    if not split:
        return load_ticket, store_ticket, filter_ticket
    channel = program.channel_load
    early = early_weights(program)
    rest = channel.sum(axis=1) - channel[:, _FILTER]
    keys = [(-1, u) for u in early]
    for u in range(units):
        if load_ticket[u] >= 0 and (u not in early or rest[u] > 0):
            keys.append((2 * u, u))
        if store_ticket[u] >= 0:
            keys.append((2 * u + 3, -1 - u))
    keys.sort()
    load_ticket, store_ticket = [-1] * units, [-1] * units
    for ticket, (key, u) in enumerate(keys):
        if key < 0:
            filter_ticket[u] = ticket
        elif u >= 0:
            load_ticket[u] = ticket
        else:
            store_ticket[-1 - u] = ticket
    return load_ticket, store_ticket, filter_ticket


def early_weights(program: TileProgram) -> list[int]:
    """The units whose weight bytes ``weights`` moves ahead of the input gate: of the units
    whose loads wait for no unit (``load_after < 0``) and move weight bytes, those in order
    while their weight claims fit the filter buffer together (the claims cannot wait for a
    free of this layer, whose first unit is not loaded yet: that could never come)."""
    capacity = program.capacity.filter
    channel, load = program.channel_load, program.load
    early, held = [], 0
    for u in range(program.units):
        if program.load_after[u] >= 0:
            break
        if channel[u, _FILTER] <= 0:
            continue
        held += int(load[u, _FILTER])
        if capacity is not None and held > capacity:
            break
        early.append(u)
    return early


class _ChainedRun:
    """One layer of a chain: a loader, the array and a writer, as in
    :mod:`simulator.memory.run`, with the gates of the rules above."""

    def __init__(self, chain: PrefetchChain, program: TileProgram | Callable[[], TileProgram],
                 dram: Dram, previous: _ChainedRun | None, inputs_from: Any = None) -> None:
        env = self.env = chain.env
        self.dram, self.previous = dram, previous
        self.inputs_from = inputs_from
        self.chain, self.index = chain, len(chain.runs)
        self.channel = SequencedChannel(env, chain.link)
        self.buffers = PerBuffer(*(BufferLog(space) for space in chain.spaces))
        self.split = chain.mode == "weights" and previous is not None
        # A program still being prepared (a callable, :meth:`PrefetchChain.add`) is taken
        # when the layer first needs it: after its gates on the previous layer, or when the
        # chain asks whether it has put every transfer on the link. Until then its writer
        # waits on ``_first_store``, which becomes the milestone event of its first unit with
        # a write-back, so every process waits on the same events, in the same order, as
        # with the program given at once (tests/memory/test_prefetch.py).
        self._source: Callable[[], TileProgram] | None = None
        self._first_store: Event | None = None
        if isinstance(program, TileProgram):
            self._take(program)
        else:
            self._source = program
            self._first_store = env.event()
        self.origin = self.array_done_at = self.done_at = -1
        self.loader_done = env.process(self.loader())
        self.array_done = env.process(self.array())
        self.writer_done = env.process(self.writer())
        self.done = env.all_of([self.loader_done, self.array_done, self.writer_done])

    def ready(self) -> None:
        """Take the program if it is still being prepared (waits until it is)."""
        if self._source is not None:
            source, self._source = self._source, None
            self._take(source())

    def _take(self, program: TileProgram) -> None:
        """Everything the processes read of the program, worked out once."""
        env, units = self.env, program.units
        self.chain.check_capacity(program)
        self.program = program
        self.ended = Milestones(env, units)
        self.arrived = Milestones(env, units)
        self.load_ticket, self.store_ticket, self.filter_ticket = prefetch_tickets(
            program, self.split)
        self.times = {name: [-1] * units for name in
                      ("start", "end", "load_start", "load_end", "store_start", "store_end")}
        # Plain Python ints per unit and operand: the processes index them once per unit.
        ifmap, filt = (LOAD_COLUMNS.index(name) for name in ("ifmap", "filter"))
        self.load_ifmap, self.load_filter = (program.load[:, c].tolist() for c in (ifmap, filt))
        self.channel_filter = program.channel_load[:, filt].tolist()
        self.release_ifmap, self.release_filter = (program.release[:, c].tolist()
                                                   for c in (ifmap, filt))
        self.cycles = program.unit_cycles.tolist()
        self.out_alloc = program.out_alloc.tolist()
        store = program.store.sum(axis=1)
        self.store_bytes = store.tolist()
        self.store_free = program.store_free.tolist()
        self.loader_work = loader_work(program).tolist()
        self.moved = program.channel_load.sum(axis=1).tolist()
        self.tickets = sum(len(t) - t.count(-1)  # -1: no transfer
                           for t in (self.load_ticket, self.store_ticket, self.filter_ticket))
        if self._first_store is not None:  # the writer waits on it: the first write-back's
            first = next((u for u, nbytes in enumerate(self.store_bytes) if nbytes), None)
            if first is None:
                self._first_store.succeed()  # nothing to write back: the writer ends
            else:
                self.ended._pending[first] = self._first_store

    def submit(self, ticket: int, duration: Any) -> Event | None:
        """Hand transfer ``ticket`` to the channel: at once when no earlier layer has a
        transfer left to put on the link, else at the end of this cycle, after every earlier
        layer's submissions of the cycle (first come, first served on the link). Returns
        what :meth:`SequencedChannel.transfer` does: ``None`` when it has ended now."""
        if self.chain.settled() >= self.index:
            return self.channel.transfer(ticket, duration)
        env = self.env
        event = env.event()

        def go(_: Event) -> None:
            done = self.channel.transfer(ticket, duration)
            if done is None:
                event.succeed()
            else:
                done.callbacks.append(lambda _: event.succeed())

        trigger = Event(env)
        trigger._ok, trigger._value = True, None
        trigger.callbacks.append(go)
        env.schedule(trigger, priority=_BASE_PRIORITY + self.index)
        return event

    def loader(self) -> Iterator[Event]:
        env, previous, dram = self.env, self.previous, self.dram
        if previous is not None:
            yield previous.loader_done
        self.ready()
        self.origin = env.now
        load_start, load_end = self.times["load_start"], self.times["load_end"]
        buffers = self.buffers
        claims_outputs = self.program.loader_claims_outputs
        load_after = self.program.load_after.tolist()
        early_filter = [False] * len(self.cycles)
        for u, ticket in enumerate(self.filter_ticket):  # weights only: their bytes first
            if ticket < 0:
                continue
            nbytes = self.load_filter[u]
            if nbytes:
                wait = buffers.filter.space.claim(nbytes)
                if wait is not None:
                    yield wait
                buffers.filter.log += (env.now, nbytes)
            duration = dram.timed(self.channel_filter[u], False)
            done = self.submit(ticket, duration)
            if done is not None:
                yield done
            load_end[u] = env.now
            load_start[u] = env.now - _cycles(duration)
            early_filter[u] = True
        ended, arrived, split = self.ended, self.arrived, self.split
        load_ifmap, load_filter = self.load_ifmap, self.load_filter
        for u, work in enumerate(self.loader_work):
            if not work:
                continue
            wait = ended.wait(load_after[u])
            if wait is not None:
                yield wait
            ifmap, filt = load_ifmap[u], load_filter[u]
            moved = self.moved[u]
            if early_filter[u]:
                filt = 0
                moved -= self.channel_filter[u]
            if split and load_after[u] < 0 and (moved or ifmap):
                # the input is the previous layer's written output (all of its writers')
                yield previous.done if self.inputs_from is None else self.inputs_from()
            out = self.out_alloc[u] if claims_outputs else 0
            for buffer, nbytes in ((buffers.ifmap, ifmap), (buffers.filter, filt),
                                   (buffers.ofmap, out)):
                if nbytes:
                    if buffer is buffers.ofmap and previous is not None:
                        yield previous.array_done  # outputs after the previous layer's
                    wait = buffer.space.claim(nbytes)
                    if wait is not None:
                        yield wait
                    buffer.log += (env.now, nbytes)
            if moved:
                duration = dram.timed(moved, False)
                done = self.submit(self.load_ticket[u], duration)
                if done is not None:
                    yield done
                load_end[u] = env.now
                if not early_filter[u]:
                    load_start[u] = env.now - _cycles(duration)
            arrived.reach(u)

    def array(self) -> Iterator[Event]:
        env, previous = self.env, self.previous
        if previous is not None:
            yield previous.array_done  # one array: the previous layer's last unit first
        self.ready()
        claims_outputs = not self.program.loader_claims_outputs
        latency = self.dram.latency_cycles
        ifmap_buffer, filter_buffer, ofmap_buffer = self.buffers
        start, end, load_end = self.times["start"], self.times["end"], self.times["load_end"]
        release_ifmap, release_filter = self.release_ifmap, self.release_filter
        for u, cycles in enumerate(self.cycles):
            if self.loader_work[u]:
                wait = self.arrived.wait(u)
                if wait is not None:
                    yield wait
                if latency and load_end[u] >= 0:  # usable latency cycles after the transfer
                    late = load_end[u] + latency - env.now
                    if late > 0:
                        yield env.timeout(late)
            alloc = self.out_alloc[u]
            if alloc and claims_outputs:
                wait = ofmap_buffer.space.claim(alloc)
                if wait is not None:
                    yield wait
                ofmap_buffer.log += (env.now, alloc)
            start[u] = env.now
            if cycles:
                yield env.timeout(cycles)
            end[u] = now = env.now
            ifmap_buffer.free(now, release_ifmap[u])
            filter_buffer.free(now, release_filter[u])
            self.ended.reach(u)

    def writer(self) -> Iterator[Event]:
        if self._first_store is not None:  # the program is being prepared (see __init__)
            yield self._first_store
            self._first_store = None
        env, dram = self.env, self.dram
        store_start, store_end = self.times["store_start"], self.times["store_end"]
        ofmap_buffer, ended = self.buffers.ofmap, self.ended

        def stored(u: int, duration: Any) -> None:
            store_end[u] = now = env.now
            store_start[u] = now - _cycles(duration)
            ofmap_buffer.free(now, self.store_free[u])

        yield from write_backs(self.store_bytes, self.store_ticket, ended, dram, self.submit,
                               stored)

    def schedule(self, window: tuple[int, int], end: int) -> LayerSchedule:
        """The layer's schedule relative to its origin; ``window`` and ``end`` absolute."""
        return layer_schedule({name: np.asarray(values, dtype=np.int64)
                               for name, values in self.times.items()}, self.origin,
                              [b.events() for b in self.buffers], self.dram, window, end)


def layer_schedule(times: dict[str, np.ndarray], origin: int, claims: list[np.ndarray],
                   dram: Dram, window: tuple[int, int], end: int) -> LayerSchedule:
    """A chained layer's schedule relative to its ``origin`` from its absolute ``times``
    (-1: did not happen) and buffer ``claims`` ((cycle, delta) rows); ``window`` and
    ``end`` absolute. A DRAM device reports over the window."""
    relative = {name: np.where(array >= 0, array - origin, -1) for name, array in times.items()}
    report = None
    if dram.device is not None:  # the layer's transfers over its window
        dram.device.origin = window[0]
        report = dram.device.report(window[1] - window[0])
    return LayerSchedule(start=relative["start"], end=relative["end"],
                         load_start=relative["load_start"], load_end=relative["load_end"],
                         store_start=relative["store_start"], store_end=relative["store_end"],
                         elapsed=end - origin,
                         claims=PerBuffer(*(c - (origin, 0) for c in claims)), dram=report,
                         window=(window[0] - origin, window[1] - origin))


class PrefetchChain:
    """Consecutive layers that prefetch into each other's free buffer space
    (docs/memory-model.md, "Cross-layer prefetch").

    :meth:`add` queues a layer; :meth:`finish` starts every layer's processes (each gated on
    the layer before it), runs the environment until all have ended and returns their
    schedules. Layers must share the buffer capacities.
    """

    def __init__(self, env: simpy.Environment, mode: PrefetchMode,
                 link: ChannelLink | None = None) -> None:
        if mode not in ("weights", "all"):
            raise ValueError(f"prefetch mode {mode!r}: a chain prefetches weights or all")
        self.env, self.mode = env, mode
        # the DRAM link: the chain's own, or one it shares with other chains (the cores of a
        # multi-core run, docs/memory-model.md, "Multi-core")
        self.shared_link = link
        self.layers: list[tuple[TileProgram, Dram]] = []
        self.gates: list[Any] = []
        self.capacity: PerBuffer[int | None] | None = None
        self.runs: list[_ChainedRun] = []
        self.start = env.now
        self._settled = 0
        self._origins: list[int] = []
        self.cacheable = True

    def __len__(self) -> int:
        return len(self.layers)

    def settled(self) -> int:
        """How many of the first layers have put every transfer on the link."""
        runs = self._settled
        while runs < len(self.runs):
            run = self.runs[runs]
            run.ready()  # its ticket count (a program being prepared is waited for)
            if run.channel.next_ticket != run.tickets:
                break
            runs += 1
        self._settled = runs
        return runs

    def add(self, program: TileProgram | Callable[[], TileProgram], dram: Dram,
            cacheable: bool = False, inputs_from: Any = None) -> int:
        """Add ``program``'s layer after the last one added (it runs in :meth:`finish`);
        returns its index. ``cacheable``: the program object is kept and reused by the
        caller for every layer of its shape (a chain of such programs may be cached).
        ``inputs_from`` (``weights`` only): called when the layer's loader reaches its first
        input, it returns the event its input waits for (default: the previous layer of this
        chain has ended; a multi-core run passes the end of every core's previous layer
        whose outputs it reads).

        ``program`` may be a function that returns the program (a layer whose functional
        model is still running in another thread): it is called when the engine first needs
        the layer, so the engine runs the layers before it meanwhile; the schedule is the
        same (docs/performance.md)."""
        if isinstance(program, TileProgram):
            self.check_capacity(program)
        else:
            cacheable = False
        self.layers.append((program, dram))
        self.gates.append(inputs_from)
        self.cacheable = self.cacheable and cacheable and inputs_from is None
        return len(self.layers) - 1

    def check_capacity(self, program: TileProgram) -> None:
        """The chain's layers share its buffers: the first program sets their capacities."""
        if self.capacity is None:
            self.capacity = program.capacity
        elif program.capacity != self.capacity:
            raise ValueError(f"layer {program.name}: buffer capacities {program.capacity} "
                             f"differ from the chain's {self.capacity}")

    def finish(self, cache: dict | None = None) -> list[LayerSchedule]:
        """Run the layers from now until every one has ended; each layer's schedule with its
        window.

        ``cache`` (the run's, ideal DRAM only) keeps the schedules of a chain of the same
        program objects (all added ``cacheable``): a chain starts with empty buffers and a free
        link, so its schedule relative to its start depends on its programs alone (a
        transformer's repeated blocks run once).
        """
        env = self.env
        self.start = env.now
        if not self.cacheable:
            cache = None
        key = tuple(id(program) for program, _ in self.layers)
        if cache is not None and key in cache:
            _, schedules, offsets, elapsed = cache[key]
            if elapsed:
                env.run(until=env.now + elapsed)
            self._origins = [self.start + offset for offset in offsets]
            return schedules
        schedules = self._run()
        self._origins = [run.origin for run in self.runs]
        if cache is not None:  # the programs are kept so that their ids stay theirs
            cache[key] = ([program for program, _ in self.layers], schedules,
                          [origin - self.start for origin in self._origins],
                          env.now - self.start)
        return schedules

    def _run(self) -> list[LayerSchedule]:
        env = self.env
        from simulator.memory import prefetch_compiled

        if prefetch_compiled.usable(self):  # the same schedule, compiled
            self.runs = prefetch_compiled.run(self)
            return self.collect()
        done = self.start_processes()
        if self.runs:
            try:
                env.run(until=done)
            except RuntimeError:  # SimPy: no events left before every process finished
                self.runs[-1].ready()
                raise SimulationError(f"layer {self.runs[-1].program.name}: the "
                                      f"prefetching memory schedule deadlocked") from None
        return self.collect()

    def start_processes(self) -> Event:
        """Start every layer's processes now without running the environment (the caller
        runs it, other chains beside this one on a shared link); the event of all their
        ends. :meth:`collect` then gives the schedules."""
        env = self.env
        self.start = env.now
        self.link = self.shared_link if self.shared_link is not None else ChannelLink(env)
        if self.layers and not isinstance(self.layers[0][0], TileProgram):
            first, dram = self.layers[0]  # the buffers' capacities: the first program's
            self.layers[0] = (program := first(), dram)
            self.check_capacity(program)
        self.spaces = PerBuffer(*(Space(env, c) for c in self.capacity or (None,) * 3))
        for (program, dram), gate in zip(self.layers, self.gates):
            run = _ChainedRun(self, program, dram, self.runs[-1] if self.runs else None, gate)
            run.array_done.callbacks.append(
                lambda _, run=run: setattr(run, "array_done_at", env.now))
            run.done.callbacks.append(lambda _, run=run: setattr(run, "done_at", env.now))
            self.runs.append(run)
        return env.all_of([run.done for run in self.runs])

    def collect(self) -> list[LayerSchedule]:
        """Every layer's schedule with its window, once all have ended (the chain's end:
        its last layer's end); the origins are then :meth:`origins`'."""
        end = max((run.done_at for run in self.runs), default=self.env.now)
        self._origins = [run.origin for run in self.runs]
        schedules = []
        window_start = self.start
        for index, run in enumerate(self.runs):
            window_end = end if index == len(self.runs) - 1 else run.array_done_at
            schedules.append(run.schedule((window_start, window_end), run.done_at))
            window_start = window_end
        return schedules

    def origins(self) -> list[int]:
        """Each layer's origin (when its loader began): its schedule's cycle 0 (after
        :meth:`finish`)."""
        return list(self._origins)

    def levels(self) -> PerBuffer[np.ndarray]:
        """Every buffer's claims and frees of all layers, absolute (cycle, delta), in time
        order with frees before claims at a cycle: the shared buffers' log."""
        out = []
        for b in range(3):
            array = np.concatenate([np.zeros((0, 2), dtype=np.int64)]
                                   + [run.buffers[b].events() for run in self.runs])
            out.append(array[np.lexsort((array[:, 1], array[:, 0]))])
        return PerBuffer(*out)
