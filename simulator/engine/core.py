"""A thin layer over SimPy: integer cycles, milestones, and a channel served in a fixed order.

The engine never owns an environment: the caller creates one ``simpy.Environment`` per run and
passes it in, so two runs never share state. Simulated time is in cycles, and every delay the
processes wait is an integer number of cycles, so results are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy
from simpy.events import Event
from simpy.resources.base import BaseResource, Get, Put

__all__ = ["ChannelLink", "Milestones", "SequencedChannel", "Space", "SpaceClaim"]


class Milestones:
    """Numbered points in a simulation ("unit 7 ended", "store 3 completed").

    A process records that milestone ``i`` is reached now with :meth:`reach`; another waits
    for it with ``yield`` on :meth:`wait`, which returns ``None`` when there is nothing to
    wait for. Events are created only for milestones someone waits on before they happen.
    """

    def __init__(self, env: simpy.Environment, count: int) -> None:
        self.env = env
        self.time: list[int] = [-1] * count
        self._pending: dict[int, Event] = {}

    def reach(self, index: int) -> None:
        """Milestone ``index`` happens now."""
        self.time[index] = self.env.now
        event = self._pending.pop(index, None)
        if event is not None:
            event.succeed()

    def reached(self, index: int) -> bool:
        """True when milestone ``index`` has happened (a negative index always has)."""
        return index < 0 or self.time[index] >= 0

    def wait(self, index: int) -> Event | None:
        """An event for milestone ``index``, or ``None`` if it has already happened."""
        if index < 0 or self.time[index] >= 0:  # reached (inline: called once per unit)
            return None
        event = self._pending.get(index)
        if event is None:
            event = self._pending[index] = self.env.event()
        return event


class ChannelLink:
    """The wire under one or more :class:`SequencedChannel`: it moves one transfer at a time
    and is busy until ``free_at``.

    Channels that share a link (the layers of a run that overlap, or the cores of a chip on
    one DRAM) each keep their own ticket order; the link serves their due transfers first
    come, first served, never interrupting one (docs/memory-model.md).
    """

    __slots__ = ("free_at",)

    def __init__(self, env: simpy.Environment) -> None:
        self.free_at = env.now  # when the last scheduled transfer ends


class SequencedChannel:
    """A channel that moves one transfer at a time, in a fixed ticket order (0, 1, 2, ...).

    Transfer ``t`` starts when it has been submitted and transfer ``t - 1`` has ended,
    whatever order the submissions arrive in, and occupies the channel for its cycles. A
    static service order keeps a schedule monotone: making any transfer shorter can never
    make anything later (there is no reordering to go wrong).

    Because the order is fixed and a transfer is never interrupted, a transfer's end is known
    the moment it and all earlier tickets have been submitted: :meth:`transfer` schedules one
    timeout for it then, instead of a grant, a hold and a release.
    """

    def __init__(self, env: simpy.Environment, link: ChannelLink | None = None) -> None:
        self.env = env
        self.next_ticket = 0
        self.link = ChannelLink(env) if link is None else link
        self._queued: dict[int, tuple[int, Event]] = {}

    def transfer(self, ticket: int, cycles: int | Callable[[int], int]) -> Event | None:
        """Submit transfer ``ticket`` of ``cycles`` cycles.

        Returns an event that fires when the transfer ends, or ``None`` when it ends now
        (a zero-cycle transfer whose turn it is). The transfer started ``cycles`` before.
        ``cycles`` may be a function of the cycle the transfer starts at (a DRAM whose
        refresh comes at fixed times, docs/memory-model.md); it is called once, then.
        """
        if ticket != self.next_ticket:
            event = self.env.event()
            self._queued[ticket] = (cycles, event)
            return event
        done = self._schedule(cycles)
        while self.next_ticket in self._queued:
            queued_cycles, event = self._queued.pop(self.next_ticket)
            end = self._schedule(queued_cycles)
            if end is None:
                event.succeed()
            else:
                end.callbacks.append(lambda _, event=event: event.succeed())
        return done

    @property
    def free_at(self) -> int:
        """When the last transfer scheduled on the link ends."""
        return self.link.free_at

    def _schedule(self, cycles: int | Callable[[int], int]) -> Event | None:
        now, link = self.env.now, self.link
        start = max(now, link.free_at)
        if callable(cycles):
            cycles = cycles(start)
        end = link.free_at = start + cycles
        self.next_ticket += 1
        if end == now:
            return None
        return self.env.timeout(end - now)


class SpaceClaim(Put):
    """A claim of ``amount`` units of a :class:`Space`."""

    def __init__(self, resource: Space, amount: int) -> None:
        self.amount = amount
        super().__init__(resource)


class Space(BaseResource):
    """Room in a buffer: claims wait, first come first served, until enough has been freed.

    Like ``simpy.Container`` with ``put`` as *claim* and ``get`` as *free*, except that a
    claim that fits is granted at once without an event and a free never waits (the
    holder gives back what it claimed), which keeps a busy schedule cheap. ``capacity=None``
    is unbounded: nothing ever waits.
    """

    def __init__(self, env: simpy.Environment, capacity: int | None) -> None:
        super().__init__(env, capacity=math.inf if capacity is None else capacity)
        self.level = 0

    def claim(self, amount: int) -> SpaceClaim | None:
        """Claim ``amount``: ``None`` if granted now, else an event that fires when it is."""
        if not self.put_queue and self.level + amount <= self._capacity:
            self.level += amount
            return None
        return SpaceClaim(self, amount)

    def free(self, amount: int) -> None:
        """Give back ``amount``; waiting claims that now fit are granted, in order."""
        if amount > self.level:
            raise RuntimeError(f"Space: freeing {amount} with only {self.level} claimed")
        self.level -= amount
        if self.put_queue:
            self._trigger_put(None)

    def _do_put(self, event: SpaceClaim) -> bool:
        if self.level + event.amount <= self._capacity:
            self.level += event.amount
            event.succeed()
            return True
        return False  # first come first served: later claims wait behind this one

    def _do_get(self, event: Get) -> bool:
        raise NotImplementedError("free space with free()")
