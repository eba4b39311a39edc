"""A slow, obviously-correct twin of the multi-core schedule (docs/memory-model.md,
"Multi-core"), in plain Python with no SimPy: an event list of link requests.

Each tile program is computed by the same plain loop as :func:`naive_memory.naive_timeline`,
written as a generator that stops at every DRAM transfer and asks for the link: it yields
``(time, cycles)`` (when the transfer is submitted, how long it takes) and is sent back when
it starts. A program's transfers are submitted in its channel's ticket order, so a transfer
is submitted no earlier than the one before it.

The coordinator keeps, per core, the request it is waiting on and grants the earliest one
(first come, first served; at equal times the lower core first): it starts when the link is
free, and the link is busy until it ends. A core runs its programs one after another; in a
pipeline, image i of stage c also waits until stage c - 1 has finished image i.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence


def _cycles(nbytes: int, bandwidth: float | None) -> int:
    if bandwidth is None or nbytes == 0:
        return 0
    return math.ceil(nbytes / bandwidth)


def program_steps(program, bandwidth: float | None, latency: int, origin: int
                  ) -> Iterator[tuple[int, int]]:
    """One program from cycle ``origin`` (the loop of ``naive_timeline``, in absolute
    cycles): yields each transfer's (submission time, cycles), receives its start; returns
    its unit and transfer times and its end."""
    units = program.units
    load = program.load.tolist()
    moved = program.channel_load.sum(axis=1).tolist()
    release = program.release.tolist()
    out_alloc = program.out_alloc.tolist()
    store_bytes = program.store.sum(axis=1).tolist()
    store_free = program.store_free.tolist()
    cap = program.capacity
    claims_by_loader = program.loader_claims_outputs
    start, end = [-1] * units, [-1] * units
    load_start, load_end = [-1] * units, [-1] * units
    store_start, store_end = [-1] * units, [-1] * units
    arrival = [0] * units
    claimed = [0, 0, 0]
    loader_free = origin
    submitted = origin  # the last transfer's submission: tickets are served in order

    def ended_at(unit):
        return origin if unit < 0 else end[unit]

    def room_for(buffer, amount, upto):
        if cap[buffer] is None:
            return origin
        need = claimed[buffer] + amount - cap[buffer]
        if need <= 0:
            return origin
        freed = 0
        for v in range(upto):
            if buffer < 2:
                freed += release[v][buffer]
                when = end[v]
            else:
                freed += store_free[v] if store_bytes[v] else 0
                when = store_end[v]
            if freed >= need:
                return when
        raise AssertionError(f"buffer {buffer}: no room for unit {upto} (deadlock)")

    def request(ready, nbytes):
        nonlocal submitted
        submitted = max(submitted, ready)
        cycles = _cycles(nbytes, bandwidth)
        begin = yield (submitted, cycles)
        return begin, begin + cycles

    for u in range(units):
        nbytes = moved[u]
        loader_claims = claims_by_loader and out_alloc[u] > 0
        if sum(load[u]) or nbytes or loader_claims:
            t = max(loader_free, ended_at(int(program.load_after[u])))
            for buffer in (0, 1):
                if load[u][buffer]:
                    t = max(t, room_for(buffer, load[u][buffer], u))
                    claimed[buffer] += load[u][buffer]
            if loader_claims:
                t = max(t, room_for(2, out_alloc[u], u - 1))
                claimed[2] += out_alloc[u]
            if nbytes:
                load_start[u], load_end[u] = yield from request(t, nbytes)
                loader_free = load_end[u]
                arrival[u] = load_end[u] + latency
            else:
                loader_free = arrival[u] = t
        if u and store_bytes[u - 1]:
            store_start[u - 1], store_end[u - 1] = yield from request(end[u - 1],
                                                                      store_bytes[u - 1])
        t = ended_at(u - 1)
        if sum(load[u]) or nbytes or loader_claims:
            t = max(t, arrival[u])
        if out_alloc[u]:
            if not program.double_buffering:
                previous = max((v for v in range(u) if store_bytes[v]), default=-1)
                if previous >= 0:
                    t = max(t, store_end[previous])
            if not claims_by_loader:
                t = max(t, room_for(2, out_alloc[u], u))
                claimed[2] += out_alloc[u]
        start[u], end[u] = t, t + int(program.unit_cycles[u])
    if units and store_bytes[units - 1]:
        store_start[units - 1], store_end[units - 1] = yield from request(
            end[units - 1], store_bytes[units - 1])
    return {"start": start, "end": end, "load_start": load_start, "load_end": load_end,
            "store_start": store_start, "store_end": store_end,
            "finish": max([origin, *end, *store_end])}


def naive_cores(stages: Sequence[Sequence[Sequence]], bandwidth: float | None,
                latency: int, pipeline: bool) -> tuple[dict, bool]:
    """The schedule of every program: ``stages[c][i]`` is core c's list of programs for
    round i (an image of a pipeline). Without ``pipeline`` each core runs its rounds one
    after another; with it, round i of core c also waits for round i of core c - 1.

    Returns ({(core, round, k): absolute times of program k}, ambiguous): ``ambiguous`` is
    true when two cores asked for the link at the same cycle after cycle 0 for transfers that
    take time, an order the engine's event queue decides and this twin does not model.
    """
    cores = len(stages)
    results: dict[tuple[int, int, int], dict] = {}
    finished = [[None] * len(rounds) for rounds in stages]

    def core_steps(c):
        clock = 0
        for i, programs in enumerate(stages[c]):
            if pipeline and c:
                while finished[c - 1][i] is None:
                    yield None  # blocked on the previous stage
                clock = max(clock, finished[c - 1][i])
            for k, program in enumerate(programs):
                result = yield from program_steps(program, bandwidth, latency, clock)
                results[c, i, k] = result
                clock = result["finish"]
            finished[c][i] = clock

    steps = [core_steps(c) for c in range(cores)]
    pending: list = [None] * cores
    alive = [True] * cores

    def advance(c, value=None, first=False):
        try:
            pending[c] = next(steps[c]) if first else steps[c].send(value)
        except StopIteration:
            alive[c], pending[c] = False, None

    for c in range(cores):
        advance(c, first=True)
    link_free, ambiguous = 0, False
    while any(alive):
        for c in range(cores):  # blocked cores look again: a stage may have finished
            if alive[c] and pending[c] is None:
                advance(c)
        ready = [(pending[c][0], c) for c in range(cores) if alive[c] and pending[c]]
        if not ready:
            raise AssertionError("every core waits on another: the pipeline is stuck")
        when, c = min(ready)
        ties = [d for t, d in ready if t == when and d != c]
        if when > 0 and ties and (pending[c][1] or any(pending[d][1] for d in ties)):
            ambiguous = True
        begin = max(when, link_free)
        link_free = begin + pending[c][1]
        advance(c, begin)
    return results, ambiguous
