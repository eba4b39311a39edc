"""The engine's building blocks: milestones, the sequenced channel, buffer space."""

from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.engine import ChannelLink, Milestones, SequencedChannel, Space


def test_milestones_wait_only_for_the_future():
    env = simpy.Environment()
    marks = Milestones(env, 3)
    seen = []

    def waiter(index):
        event = marks.wait(index)
        if event is not None:
            yield event
        seen.append((index, env.now))

    def reacher():
        marks.reach(0)
        yield env.timeout(5)
        marks.reach(1)
        yield env.timeout(2)
        marks.reach(2)

    env.process(reacher())
    for index in (2, 1, 0, -1):
        env.process(waiter(index))
    env.run()
    assert sorted(seen) == [(-1, 0), (0, 0), (1, 5), (2, 7)]
    assert marks.time == [0, 5, 7]
    assert marks.wait(1) is None and marks.reached(-1)


@settings(max_examples=100, deadline=None)
@given(st.permutations(range(6)), st.lists(st.integers(0, 4), min_size=6, max_size=6),
       st.lists(st.integers(0, 9), min_size=6, max_size=6))
def test_sequenced_channel_serves_tickets_in_order(order, arrivals, holds):
    """Whatever order transfers are submitted in, ticket t starts when it is submitted and
    ticket t - 1 has ended, and ends ``holds[t]`` cycles later."""
    env = simpy.Environment()
    channel = SequencedChannel(env)
    served = {}

    def user(ticket):
        yield env.timeout(arrivals[ticket])
        done = channel.transfer(ticket, holds[ticket])
        if done is not None:
            yield done
        served[ticket] = (env.now - holds[ticket], env.now)

    for ticket in order:
        env.process(user(ticket))
    env.run()
    free = 0
    for ticket in range(6):  # the closed form of a FIFO channel in ticket order
        start = max(free, arrivals[ticket])
        assert served[ticket] == (start, start + holds[ticket])
        free = start + holds[ticket]
    assert channel.next_ticket == 6 and channel.free_at == free


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6), st.integers(0, 9)),
                min_size=1, max_size=10))
def test_channels_sharing_a_link_never_overlap(transfers):
    """Two sequenced channels on one link: each keeps its ticket order, the link moves one
    transfer at a time, first come first served, and each transfer waits only for the link
    and for its own channel's earlier tickets (a naive replay of the same rules)."""
    env = simpy.Environment()
    link = ChannelLink(env)
    channels = [SequencedChannel(env, link), SequencedChannel(env, link)]
    tickets = [0, 0]
    served = []

    def user(channel, ticket, arrival, hold):
        yield env.timeout(arrival)
        done = channels[channel].transfer(ticket, hold)
        if done is not None:
            yield done
        served.append((env.now - hold, env.now, channel, ticket))

    for channel, arrival, hold in transfers:
        env.process(user(channel, tickets[channel], arrival, hold))
        tickets[channel] += 1
    env.run()
    busy = sorted((start, end) for start, end, *_ in served if end > start)
    assert all(a[1] <= b[0] for a, b in zip(busy, busy[1:]))  # the link never overlaps
    for channel in (0, 1):  # each channel's tickets in order, none starting before its due
        own = sorted((ticket, start, end) for start, end, c, ticket in served if c == channel)
        assert all(a[2] <= b[1] for a, b in zip(own, own[1:]))
    assert link.free_at == max((end for _, end, *_ in served), default=0)


def test_space_claims_wait_for_room_in_order():
    env = simpy.Environment()
    space = Space(env, 10)
    granted = []

    def claimer(name, amount, at):
        yield env.timeout(at)
        wait = space.claim(amount)
        if wait is not None:
            yield wait
        granted.append((name, env.now))

    def freer():
        yield env.timeout(4)
        space.free(6)   # room for b (4) but c (3) waits behind b
        yield env.timeout(3)
        space.free(4)

    assert space.claim(6) is None  # fits at once, no event
    env.process(claimer("b", 8, 1))
    env.process(claimer("c", 2, 2))
    env.process(freer())
    env.run()
    assert granted == [("b", 4), ("c", 4)]
    assert space.level == 6


def test_unbounded_space_never_waits_and_overfreeing_is_a_bug():
    space = Space(simpy.Environment(), None)
    assert space.claim(10**15) is None
    with pytest.raises(RuntimeError):
        space.free(10**15 + 1)
