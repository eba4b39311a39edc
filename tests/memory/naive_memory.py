"""Slow, obviously-correct twins of the memory model: footprints by enumeration, and the
fold/transfer timeline as a plain Python loop (no simpy)."""

from __future__ import annotations

import math

from simulator.workloads.layers import Layer


def naive_footprint(layer: Layer, m0: int, m1: int, k0: int, k1: int) -> int:
    """Distinct input elements read by A[m0:m1, k0:k1] (one group), by enumerating (m, k)."""
    if layer.op != "conv2d":
        return max(0, m1 - m0) * max(0, k1 - k0)
    cg = layer.in_channels // layer.groups
    kh, kw = layer.kernel_size
    (sh, sw), (dh, dw), (ph, pw) = layer.stride, layer.dilation, layer.padding
    h_in, w_in = layer.input_size
    p_out, q_out = layer.output_size
    seen = set()
    for m in range(m0, m1):
        n, rest = divmod(m, p_out * q_out)
        p, q = divmod(rest, q_out)
        for k in range(k0, k1):
            tap, c = divmod(k, cg)
            r, s = divmod(tap, kw)
            h, w = p * sh + r * dh - ph, q * sw + s * dw - pw
            if 0 <= h < h_in and 0 <= w < w_in:
                seen.add((n, h, w, c))
    return len(seen)


def ceil_bytes(elements: int, bits: int) -> int:
    return -(-elements * bits // 8)


def transfer_cycles(nbytes: int, bandwidth, start: int = 0, write: bool = False) -> int:
    """Cycles of one transfer: bytes over the bandwidth, or (a DRAM preset's device,
    docs/memory-model.md) the device's cycles for a transfer starting at ``start``."""
    if callable(getattr(bandwidth, "cycles_at", None)):
        return bandwidth.cycles_at(nbytes, write, start)
    if bandwidth is None or nbytes == 0:
        return 0
    return math.ceil(nbytes / bandwidth)


def naive_timeline(program, bandwidth: float | None, latency: int) -> dict:
    """The engine's schedule of one tile program, computed by a plain loop in channel order.

    Per unit u, in this order: the loader's transfer for u (after unit ``load_after[u]`` and
    the loader's previous transfer, once each buffer has room), the write-back of unit u - 1,
    then unit u itself (after u - 1, its operands' arrival, and room for its outputs). The
    room a claim waits for is found by scanning the frees in the order they happen.
    """
    units = program.units
    load = program.load.tolist()
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
    log = ([], [], [])
    claimed = [0, 0, 0]          # bytes claimed so far per buffer
    channel_free = 0
    loader_free = 0

    def ended_at(unit):
        return 0 if unit < 0 else end[unit]

    def room_for(buffer, amount, upto):
        """Earliest cycle at which ``amount`` more bytes fit, frees of units/stores < upto."""
        if cap[buffer] is None:
            return 0
        need = claimed[buffer] + amount - cap[buffer]
        if need <= 0:
            return 0
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

    def claim(buffer, amount, t):
        claimed[buffer] += amount
        log[buffer].append((t, amount))

    def write_back(v):
        nonlocal channel_free
        if not store_bytes[v]:
            return
        s = max(end[v], channel_free)
        store_start[v], store_end[v] = s, s + transfer_cycles(store_bytes[v], bandwidth, s,
                                                              True)
        channel_free = store_end[v]
        if store_free[v]:
            log[2].append((store_end[v], -store_free[v]))

    for u in range(units):
        nbytes = sum(load[u])
        loader_claims = claims_by_loader and out_alloc[u] > 0
        if nbytes or loader_claims:
            t = max(loader_free, ended_at(int(program.load_after[u])))
            for buffer in (0, 1):
                if load[u][buffer]:
                    t = max(t, room_for(buffer, load[u][buffer], u))
                    claim(buffer, load[u][buffer], t)
            if loader_claims:
                t = max(t, room_for(2, out_alloc[u], u - 1))
                claim(2, out_alloc[u], t)
            if nbytes:
                load_start[u] = max(t, channel_free)
                load_end[u] = load_start[u] + transfer_cycles(nbytes, bandwidth,
                                                              load_start[u])
                channel_free = loader_free = load_end[u]
                arrival[u] = load_end[u] + latency
            else:
                loader_free = arrival[u] = t
        if u:
            write_back(u - 1)
        t = ended_at(u - 1)
        if nbytes or loader_claims:
            t = max(t, arrival[u])
        if out_alloc[u]:
            if not program.double_buffering:
                previous = max((v for v in range(u) if store_bytes[v]), default=-1)
                if previous >= 0:
                    t = max(t, store_end[previous])
            if not claims_by_loader:
                t = max(t, room_for(2, out_alloc[u], u))
                claim(2, out_alloc[u], t)
        start[u], end[u] = t, t + int(program.unit_cycles[u])
        for buffer in (0, 1):
            if release[u][buffer]:
                log[buffer].append((end[u], -release[u][buffer]))
    if units:
        write_back(units - 1)
    elapsed = max([0, *end, *store_end])
    return {"start": start, "end": end, "load_start": load_start, "load_end": load_end,
            "store_start": store_start, "store_end": store_end, "elapsed": elapsed,
            "claims": log}
