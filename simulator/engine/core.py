"""A thin layer over SimPy: integer cycles, milestones, and a channel served in a fixed order.

The engine never owns an environment: the caller creates one ``simpy.Environment`` per run and
passes it in, so two runs never share state. Simulated time is in cycles, and every delay the
processes wait is an integer number of cycles, so results are exact.
"""

from __future__ import annotations

import math

import simpy
from simpy.events import Event
from simpy.resources.base import BaseResource, Get, Put

__all__ = ["Milestones", "SequencedChannel", "ChannelRequest", "Space", "SpaceClaim"]


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
        if self.reached(index):
            return None
        event = self._pending.get(index)
        if event is None:
            event = self._pending[index] = self.env.event()
        return event


class ChannelRequest(Put):
    """A request for the channel with the ticket it was issued."""

    def __init__(self, resource: SequencedChannel, ticket: int) -> None:
        self.ticket = ticket
        super().__init__(resource)


class SequencedChannel(BaseResource):
    """A capacity-one resource that serves its users in a fixed ticket order (0, 1, 2, ...).

    The holder of ticket ``t`` gets the channel once ticket ``t - 1`` has released it,
    whatever order the requests arrive in. A static service order keeps a schedule monotone:
    making any transfer shorter can never make anything later (there is no reordering to go
    wrong). :meth:`acquire` grants a ticket whose turn it is at once, without an event, so a
    channel that is mostly free costs little.
    """

    def __init__(self, env: simpy.Environment) -> None:
        super().__init__(env, capacity=1)
        self.next_ticket = 0
        self.busy = False

    def acquire(self, ticket: int) -> ChannelRequest | None:
        """Take the channel for ``ticket``: ``None`` if granted now, else an event to wait on."""
        if not self.busy and ticket == self.next_ticket:
            self.busy = True
            return None
        return ChannelRequest(self, ticket)

    def release(self) -> None:
        """Hand the channel to the next ticket (its waiting request, if any, fires now)."""
        if not self.busy:
            raise RuntimeError("SequencedChannel released while idle")
        self.busy = False
        self.next_ticket += 1
        self._trigger_put(None)

    def _do_put(self, event: ChannelRequest) -> bool:
        if not self.busy and event.ticket == self.next_ticket:
            self.busy = True
            event.succeed()
        return True  # keep scanning: a later request may hold the next ticket

    def _do_get(self, event: Get) -> bool:
        raise NotImplementedError("release the channel with release()")


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
