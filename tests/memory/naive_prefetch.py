"""A slow, obviously-correct twin of cross-layer prefetch (docs/memory-model.md, "Cross-layer
prefetch"): no SimPy, a loop over the cycles at which something can happen.

At each such cycle t the layers are visited in order, and each is advanced as far as it can
go at t (its loader, array and writer step by step, its transfers put on the shared link
when they are due), before the next layer is visited: at one cycle an earlier layer's
transfers reach the link before a later layer's, and a later layer never enables anything of
an earlier one. The link serves each transfer from the cycle it became due (its own
submission and its layer's previous ticket's) or when the previous transfer on the link
ended, whichever is later.
"""

from __future__ import annotations

from naive_memory import transfer_cycles

FILTER = 1


def _order(program, split: bool) -> list[tuple[str, int]]:
    """The layer's transfers in its channel order: ("w", u) the early weight part of u's
    loads (``split``), ("l", u) u's loads (the rest of them), ("s", u) u's write-back."""
    units = program.units
    load = program.channel_load.tolist()
    stores = program.store.sum(axis=1).tolist()
    early = _early(program) if split else []
    order = [("w", u) for u in early]
    for u in range(units):
        rest = sum(load[u]) - (load[u][FILTER] if u in early else 0)
        if rest > 0:
            order.append(("l", u))
        if u and stores[u - 1]:
            order.append(("s", u - 1))
    if units and stores[units - 1]:
        order.append(("s", units - 1))
    return order


def _early(program) -> list[int]:
    """Units whose weight bytes go ahead: the first units (nothing to wait for) that move
    weights, while their weight claims fit the filter buffer together."""
    out, held, cap = [], 0, program.capacity[FILTER]
    u = 0
    while u < program.units and program.load_after[u] < 0:
        if program.channel_load[u][FILTER] > 0:
            held += int(program.load[u][FILTER])
            if cap is not None and held > cap:
                break
            out.append(u)
        u += 1
    return out


class _Layer:
    def __init__(self, program, index: int, split: bool) -> None:
        p = self.p = program
        self.index = index
        self.split = split
        units = program.units
        self.load = program.load.tolist()
        self.channel = program.channel_load.tolist()
        self.release = program.release.tolist()
        self.cycles = program.unit_cycles.tolist()
        self.out_alloc = program.out_alloc.tolist()
        self.store = program.store.sum(axis=1).tolist()
        self.store_free = program.store_free.tolist()
        self.loader_ops = self._loader_ops()
        self.op = 0                     # the loader's next op
        self.op_started = False         # a transfer op: submitted, waiting for its end
        self.order = _order(program, split)
        self.ticket_of = {key: i for i, key in enumerate(self.order)}
        self.submitted = {}             # ticket -> (cycle, bytes, write)
        self.next_ticket = 0
        self.xfer = {}                  # ticket -> (start, end)
        self.freed_store = set()
        self.unit = 0                   # the array's next unit
        self.running = None             # the unit computing (its end)
        self.writer = 0                 # the next unit the writer looks at
        self.t = {k: [-1] * units for k in ("start", "end", "load_start", "load_end",
                                             "store_start", "store_end")}
        self.arrived = [None] * units
        self.log = ([], [], [])
        self.origin = self.loader_end = self.array_end = self.done = None

    def _loader_ops(self) -> list[tuple]:
        p, ops = self.p, [("gate_loader",)]
        early = set()
        if self.split:
            for u in _early(p):
                early.add(u)
                if self.load[u][FILTER]:
                    ops.append(("claim", FILTER, self.load[u][FILTER]))
                ops.append(("xfer", ("w", u), self.channel[u][FILTER], u))
        for u in range(p.units):
            claims_out = p.loader_claims_outputs and self.out_alloc[u] > 0
            if not (sum(self.load[u]) or sum(self.channel[u]) or claims_out):
                continue
            ops.append(("after", int(p.load_after[u])))
            ifmap, filt = self.load[u][0], self.load[u][FILTER]
            moved = sum(self.channel[u])
            if u in early:
                filt, moved = 0, moved - self.channel[u][FILTER]
            if self.split and p.load_after[u] < 0 and (moved or ifmap):
                ops.append(("gate_done",))
            if ifmap:
                ops.append(("claim", 0, ifmap))
            if filt:
                ops.append(("claim", FILTER, filt))
            if claims_out:
                ops.append(("gate_array",))
                ops.append(("claim", 2, self.out_alloc[u]))
            if moved:
                ops.append(("xfer", ("l", u), moved, u))
            ops.append(("arrive", u))
        return ops


def naive_chain(programs, mode: str, bandwidth, latency: int, dram_factory=None) -> dict:
    """Every layer's times (absolute cycles), claims, origin and window, and the run's end,
    for ``programs`` chained with prefetch ``mode`` (``weights`` or ``all``)."""
    return naive_chains([programs], mode, bandwidth, latency, dram_factory)[0][0]


def naive_chains(chains, mode: str, bandwidth, latency: int, dram_factory=None,
                 gate_all: bool = False, after=None) -> tuple[list[dict], bool]:
    """Several chains (the cores of a multi-core run, docs/memory-model.md, "Multi-core"),
    each on its own buffers, all on one link: per chain what :func:`naive_chain` returns,
    and whether the engine's event order decides the result (two chains put transfers on
    the link at the same cycle after cycle 0, one of them taking time: the twin serves the
    lower chain first, SimPy's queue decides). ``gate_all`` (``weights``): a layer's input
    waits for the previous layer of every chain, not only its own. ``after[c]``: the chains
    chain c starts after (all their layers ended; a pipeline's stage and image order); a
    chain starts at cycle 0 without.

    At each cycle the chains are visited in order, each layer advanced as far as it can go,
    until nothing more happens at that cycle (a chain may enable another's gate).
    """
    groups = [[_Layer(p, i, mode == "weights" and i > 0) for i, p in enumerate(programs)]
              for programs in chains]
    for c, group in enumerate(groups):
        for L in group:
            L.chain = c
    layers = [L for group in groups for L in group]
    caps = [programs[0].capacity for programs in chains]
    levels = [[0, 0, 0] for _ in chains]
    link_free = 0
    placed: dict[int, list[tuple[int, bool]]] = {}  # cycle -> (chain, takes time)
    devices = [[dram_factory() if dram_factory else bandwidth for _ in group]
               for group in groups]

    def step(L: _Layer, t: int) -> bool:
        """One thing layer L can do at t; False when nothing."""
        nonlocal link_free
        level, cap, group = levels[L.chain], caps[L.chain], groups[L.chain]

        def fits(b, n):
            return cap[b] is None or level[b] + n <= cap[b]

        prev = group[L.index - 1] if L.index else None
        # the channel: the next ticket, once submitted, goes on the link
        if L.next_ticket in L.submitted:
            k = L.next_ticket
            _, nbytes, write = L.submitted[k]
            start = max(t, link_free)
            end = start + transfer_cycles(nbytes, devices[L.chain][L.index], start, write)
            L.xfer[k] = (start, end)
            link_free = end
            placed.setdefault(t, []).append((L.chain, end > start))
            L.next_ticket += 1
            return True
        # write-backs that have ended free their output space
        for k, (start, end) in L.xfer.items():
            kind, u = L.order[k]
            if kind == "s" and end <= t and k not in L.freed_store:
                L.freed_store.add(k)
                L.t["store_start"][u], L.t["store_end"][u] = start, end
                if L.store_free[u]:
                    level[2] -= L.store_free[u]
                    L.log[2].append((end, -L.store_free[u]))
                return True
        # the array
        if L.running is not None and L.running <= t:
            u = L.unit
            L.t["end"][u] = t
            for b in (0, 1):
                if L.release[u][b]:
                    level[b] -= L.release[u][b]
                    L.log[b].append((t, -L.release[u][b]))
            L.running = None
            L.unit += 1
            if L.unit == L.p.units:
                L.array_end = t
            return True
        if L.running is None and L.unit < L.p.units and L.array_end is None:
            u = L.unit
            ready = u > 0 or prev is None or (prev.array_end is not None
                                              and prev.array_end <= t)
            loads = any(op[0] == "arrive" and op[1] == u for op in L.loader_ops)
            if loads:
                ready = ready and L.arrived[u] is not None
                if ready and L.t["load_end"][u] >= 0:
                    ready = L.t["load_end"][u] + latency <= t
            out = L.out_alloc[u] if not L.p.loader_claims_outputs else 0
            if ready and (not out or fits(2, out)):
                if out:
                    level[2] += out
                    L.log[2].append((t, out))
                L.t["start"][u] = t
                L.running = t + L.cycles[u]
                return True
        if L.p.units == 0 and L.array_end is None and (
                prev is None or (prev.array_end is not None and prev.array_end <= t)):
            L.array_end = t
            return True
        # the writer: write-backs in unit order, once their unit has ended
        while L.writer < L.p.units and not L.store[L.writer]:
            L.writer += 1
        if L.writer < L.p.units and 0 <= L.t["end"][L.writer] <= t:
            u = L.writer
            L.submitted[L.ticket_of[("s", u)]] = (t, L.store[u], True)
            L.writer += 1
            return True
        # the loader
        if L.op < len(L.loader_ops):
            op = L.loader_ops[L.op]
            go = False
            if op[0] == "gate_loader":
                go = prev is None or (prev.loader_end is not None and prev.loader_end <= t)
                if go:
                    L.origin = t
            elif op[0] == "after":
                go = op[1] < 0 or 0 <= L.t["end"][op[1]] <= t
            elif op[0] == "gate_done":
                before = [g[L.index - 1] for g in groups] if gate_all else [prev]
                go = all(B.done is not None and B.done <= t for B in before)
            elif op[0] == "gate_array":
                go = prev is None or (prev.array_end is not None and prev.array_end <= t)
            elif op[0] == "claim":
                go = fits(op[1], op[2])
                if go:
                    level[op[1]] += op[2]
                    L.log[op[1]].append((t, op[2]))
            elif op[0] == "xfer":
                k = L.ticket_of[op[1]]
                if not L.op_started:
                    L.submitted[k] = (t, op[2], False)
                    L.op_started = True
                    return True
                if k in L.xfer and L.xfer[k][1] <= t:
                    start, end = L.xfer[k]
                    u = op[3]
                    if op[1][0] == "w" or L.t["load_start"][u] < 0:
                        L.t["load_start"][u] = start
                    L.t["load_end"][u] = end
                    L.op_started, go = False, True
            elif op[0] == "arrive":
                L.arrived[op[1]] = t
                go = True
            if go:
                L.op += 1
                if L.op == len(L.loader_ops):
                    L.loader_end = t
                return True
        if (L.done is None and L.loader_end is not None and L.array_end is not None
                and L.writer >= L.p.units
                and all(k in L.freed_store for k, (kind, _) in enumerate(L.order)
                        if kind == "s")):
            L.done = t
            return True
        return False

    after = after or [[] for _ in chains]
    starts = [None] * len(chains)

    def started(c: int, t: int) -> bool:
        """Whether chain c has begun by t (every chain it starts after has ended)."""
        if starts[c] is None and all(all(L.done is not None and L.done <= t for L in groups[d])
                                     for d in after[c]):
            starts[c] = t
        return starts[c] is not None

    t = 0
    while any(L.done is None for L in layers):
        moved = True
        while moved:
            moved = False
            for L in layers:
                if not started(L.chain, t):
                    continue
                while step(L, t):
                    moved = True
        times = [end for L in layers for (_, end) in L.xfer.values() if end > t]
        times += [L.running for L in layers if L.running is not None and L.running > t]
        times += [L.t["load_end"][u] + latency for L in layers for u in range(L.p.units)
                  if L.t["load_end"][u] >= 0 and L.t["load_end"][u] + latency > t]
        if all(L.done is not None for L in layers):
            break
        if not times:
            raise AssertionError(f"the chain deadlocked at cycle {t}")
        t = min(times)
    ambiguous = any(t > 0 and len({c for c, _ in entries}) > 1
                    and any(slow for _, slow in entries) for t, entries in placed.items())
    out = []
    for group, chain_devices, start in zip(groups, devices, starts):
        end = max(L.done for L in group)
        windows, first = [], start
        for i, L in enumerate(group):
            last = end if i == len(group) - 1 else L.array_end
            windows.append((first, last))
            first = last
        out.append({"layers": [{**L.t, "claims": L.log, "origin": L.origin, "done": L.done}
                               for L in group], "windows": windows, "end": end,
                    "devices": chain_devices})
    return out, ambiguous
