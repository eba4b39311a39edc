"""A run's schedule as a Chrome trace-event file (opens in Perfetto and chrome://tracing).

One process, five tracks (threads): ``layers``, ``DRAM loads``, ``array compute``,
``array stalls`` and ``DRAM write-back``, and a counter per buffer (the bytes it holds);
a multi-core run has one more process per core (``core 0``, ``core 1``, ...), each with these
five tracks, for the cores' parts of the layers (docs/memory-model.md, "Multi-core"). Times
are microseconds at the arch's clock (the format's unit); every event also carries its
cycles in ``args``.

A whole network has too many folds for one event each, so each layer contributes at most
``max_events_per_track`` events per track: when it has more, its consecutive units (or
transfers, or stall gaps) are merged into that many spans of near-equal counts, each from the
first one's start to the last one's end, with the count and the summed cycles and bytes in
``args`` (docs/memory-model.md, "Timeline").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from simulator.outputs import finite

__all__ = ["TRACKS", "trace_events", "timeline_json"]

#: Track (thread) ids and names, top to bottom.
TRACKS = {1: "layers", 2: "DRAM loads", 3: "array compute", 4: "array stalls",
          5: "DRAM write-back"}
_PID = 1


def _groups(count: int, cap: int) -> list[tuple[int, int]]:
    """``count`` items cut into at most ``cap`` runs of consecutive items, near-equal sizes."""
    parts = min(count, cap)
    if parts <= 0:  # nothing on this track (e.g. a layer that loads nothing)
        return []
    cuts = [i * count // parts for i in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def _spans(name: str, what: str, tid: int, begin: np.ndarray, finish: np.ndarray,
           extra: Mapping[str, np.ndarray], cap: int, to_us: float,
           labels: Sequence[str] | None = None, pid: int = _PID) -> Iterable[dict[str, Any]]:
    """Complete ("X") events for intervals [begin, finish), merged into at most ``cap``."""
    for lo, hi in _groups(len(begin), cap):
        start, stop = int(begin[lo]), int(finish[hi - 1])
        args: dict[str, Any] = {"layer": name, "cycles": stop - start}
        if hi - lo > 1:
            args["merged"] = hi - lo
            args["busy_cycles"] = int((finish[lo:hi] - begin[lo:hi]).sum())
        for key, values in extra.items():
            args[key] = int(values[lo:hi].sum())
        label = labels[lo] if labels is not None and hi - lo == 1 else (
            f"{what} x{hi - lo}" if hi - lo > 1 else what)
        yield {"name": label, "cat": what, "ph": "X", "pid": pid, "tid": tid,
               "ts": start * to_us, "dur": (stop - start) * to_us, "args": args}


def trace_events(summary: Mapping[str, Any], timeline: Sequence[Any],
                 max_events_per_track: int = 64) -> dict[str, Any]:
    """The Chrome trace-event document of a run.

    Parameters
    ----------
    summary : the run's summary (names, clock, per-layer figures).
    timeline : per layer, an object with the attributes of ``simulator.results.LayerTimeline``
        (cycles from the run's start).
    max_events_per_track : cap per layer and track; beyond it events are merged.
    """
    clock = summary["arch_config"]["array"]["clock_mhz"]
    to_us = 1.0 / clock
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": _PID, "tid": 0,
         "args": {"name": f"sasim: {summary['arch']} on {summary['workload']}"}}]
    for tid, track in TRACKS.items():
        events.append({"name": "thread_name", "ph": "M", "pid": _PID, "tid": tid,
                       "args": {"name": track}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": _PID, "tid": tid,
                       "args": {"sort_index": tid}})
    cap = max_events_per_track
    cores = sorted({getattr(record, "core", -1) for record in timeline} - {-1})
    for core in cores:  # a multi-core run: one process (its five tracks) per core
        events += _core_lanes(summary, core)
    pairs: Iterable[tuple[Mapping[str, Any], Any]] = zip(summary["layers"], timeline)
    if cores:
        by_name = {layer["name"]: layer for layer in summary["layers"]}
        pairs = ((by_name[getattr(record, "layer", "") or record.name], record)
                 for record in timeline)
    for layer, record in pairs:
        core = getattr(record, "core", -1)
        pid = _PID if core < 0 else _PID + 1 + core
        origin, name = record.origin, record.name
        events.append({"name": name, "cat": "layer", "ph": "X", "pid": pid, "tid": 1,
                       "ts": origin * to_us, "dur": record.elapsed * to_us,
                       "args": {"cycles": record.elapsed,
                                "compute_cycles": layer["compute_cycles"],
                                "stall_cycles": layer["stall_cycles"],
                                "roofline_cycles": layer["roofline_cycles"],
                                "bound": layer["bound"], "folds": layer["folds"]}})
        start, end = record.start + origin, record.end + origin
        folds = record.unit_fold
        events += _spans(name, "compute", 3, start, end, {}, cap, to_us,
                         labels=[f"fold {f}" for f in folds.tolist()]
                         if len(start) <= cap else None, pid=pid)
        # a unit moves bytes or has no transfer (times may be negative: a load prefetched
        # before the layer's window, docs/memory-model.md, "Cross-layer prefetch")
        loaded = record.load_bytes.sum(axis=1) > 0
        events += _spans(name, "load", 2, record.load_start[loaded] + origin,
                         record.load_end[loaded] + origin,
                         {"ifmap_bytes": record.load_bytes[loaded, 0],
                          "filter_bytes": record.load_bytes[loaded, 1],
                          "psum_bytes": record.load_bytes[loaded, 2]}, cap, to_us, pid=pid)
        stored = record.store_bytes.sum(axis=1) > 0
        events += _spans(name, "write-back", 5, record.store_start[stored] + origin,
                         record.store_end[stored] + origin,
                         {"output_bytes": record.store_bytes[stored, 0],
                          "psum_bytes": record.store_bytes[stored, 1]}, cap, to_us, pid=pid)
        # The array is idle before its first unit, between units, and after its last.
        idle_from = np.concatenate([[origin], end])
        idle_to = np.concatenate([start, [origin + record.elapsed]])
        gap = idle_to > idle_from
        if gap.any():
            kind = ["prefetch"] + ["stall"] * len(start) + ["write-back"]
            labels = [k for k, g in zip(kind, gap.tolist()) if g]
            events += _spans(name, "stall", 4, idle_from[gap], idle_to[gap], {}, cap, to_us,
                             labels=labels, pid=pid)
    events += _occupancy(timeline, cap, to_us)
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"sasim_version": summary["sasim_version"], "arch": summary["arch"],
                          "workload": summary["workload"], "clock_mhz": clock,
                          "max_events_per_track": cap}}


def _occupancy(timeline: Sequence[Any], cap: int, to_us: float) -> list[dict[str, Any]]:
    """Counter ("C") events of the bytes each buffer holds: every layer's claims and frees
    put together on the run's clock (frees before claims at a cycle), so layers that
    prefetch into each other's free space add up; per layer window at most ``cap`` events
    per buffer, each the largest level of the cycles it stands for."""
    if not timeline or any(getattr(r, "claims", None) is None for r in timeline):
        return []
    events: list[dict[str, Any]] = []
    bounds = [(r.origin, r.origin + r.elapsed) for r in timeline]
    last_end = max(hi for _, hi in bounds)
    for b, buffer in enumerate(("ifmap", "filter", "ofmap")):
        log = np.concatenate([np.asarray(r.claims[b], dtype=np.int64).reshape(-1, 2)
                              + np.array([r.origin, 0], dtype=np.int64) for r in timeline])
        if not len(log):
            continue
        log = log[np.lexsort((log[:, 1], log[:, 0]))]
        times, level = log[:, 0], np.cumsum(log[:, 1])
        final = np.append(times[1:] != times[:-1], True)  # the level after each cycle
        times, level = times[final], level[final]
        for lo_t, hi_t in bounds:
            upto = times <= hi_t if hi_t == last_end else times < hi_t
            inside = np.flatnonzero((times >= lo_t) & upto)
            for lo, hi in _groups(len(inside), cap):
                chosen = inside[lo:hi]
                events.append({"name": f"{buffer} buffer bytes", "cat": "buffers", "ph": "C",
                               "pid": _PID, "tid": 0, "ts": int(times[chosen[0]]) * to_us,
                               "args": {"bytes": int(level[chosen].max())}})
    return events


def _core_lanes(summary: Mapping[str, Any], core: int) -> list[dict[str, Any]]:
    """The process of one core of a multi-core run and its five named tracks."""
    pid = _PID + 1 + core
    events = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
               "args": {"name": f"core {core}"}},
              {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
               "args": {"sort_index": pid}}]
    for tid, track in TRACKS.items():
        events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                       "args": {"name": track}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                       "args": {"sort_index": tid}})
    return events


def timeline_json(summary: Mapping[str, Any], timeline: Sequence[Any],
                  max_events_per_track: int = 64) -> str:
    """The trace-event document as JSON text."""
    return json.dumps(finite(trace_events(summary, timeline, max_events_per_track)),
                      separators=(",", ":"), allow_nan=False) + "\n"
