"""The timeline file: Chrome trace-event format, the five tracks, and the per-layer cap."""

from __future__ import annotations

import json
import numbers

import pytest

from simulator import api
from simulator.reports.timeline import TRACKS, trace_events

MEMORY = ("memory.ifmap_kib=16", "memory.filter_kib=16", "memory.ofmap_kib=4",
          "memory.dram_bandwidth_bytes_per_cycle=8", "memory.dram_latency_cycles=50")


def validate_trace_events(document: dict) -> None:
    """Check a document against the Trace Event Format (the JSON Object Format that
    chrome://tracing and Perfetto read): complete ("X"), counter ("C") and metadata ("M")
    events."""
    assert set(document) <= {"traceEvents", "displayTimeUnit", "otherData", "stackFrames",
                             "systemTraceEvents", "samples"}
    assert document.get("displayTimeUnit", "ms") in ("ms", "ns")
    events = document["traceEvents"]
    assert isinstance(events, list) and events
    for event in events:
        assert isinstance(event["name"], str) and event["name"]
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        if event["ph"] == "M":
            assert event["name"] in ("process_name", "thread_name", "thread_sort_index",
                                     "process_sort_index", "process_labels")
            assert isinstance(event["args"], dict)
        elif event["ph"] == "C":  # a counter: numbers in args
            assert isinstance(event["ts"], numbers.Real) and event["ts"] >= 0
            assert event["args"] and all(isinstance(v, numbers.Real)
                                         for v in event["args"].values())
        else:
            assert event["ph"] == "X"
            assert isinstance(event["ts"], numbers.Real) and event["ts"] >= 0
            assert isinstance(event["dur"], numbers.Real) and event["dur"] >= 0
            assert isinstance(event.get("args", {}), dict)
            assert isinstance(event.get("cat", ""), str)


@pytest.fixture(scope="module")
def resnet18():
    arch = api.load_arch("os_sa_16x16", ["memory=ideal", *MEMORY])
    result = api.simulate(arch, api.load_workload("resnet18"), functional=False,
                          timeline=True)
    return result.summary(), result.timeline


def test_resnet18_timeline_is_a_valid_trace(resnet18):
    summary, timeline = resnet18
    document = json.loads(json.dumps(trace_events(summary, timeline)))
    validate_trace_events(document)
    events = [e for e in document["traceEvents"] if e["ph"] == "X"]
    names = {e["args"]["name"] for e in document["traceEvents"] if e["name"] == "thread_name"}
    assert names == set(TRACKS.values())
    by_track = {tid: [e for e in events if e["tid"] == tid] for tid in TRACKS}
    assert all(by_track.values())  # layers, loads, compute, stalls and write-back all appear
    # One layer event per layer, back to back, spanning the run.
    layers = by_track[1]
    assert [e["name"] for e in layers] == [l["name"] for l in summary["layers"]]
    clock = summary["arch_config"]["array"]["clock_mhz"]
    end = layers[-1]["ts"] + layers[-1]["dur"]
    assert end * clock == pytest.approx(sum(l["total_cycles"] for l in summary["layers"]))
    # Compute spans sum to the compute cycles; stall spans to the stalls.
    busy = sum(e["args"].get("busy_cycles", e["args"]["cycles"]) for e in by_track[3])
    assert busy == summary["compute_cycles"]
    idle = sum(e["args"].get("busy_cycles", e["args"]["cycles"]) for e in by_track[4])
    assert idle == summary["stall_cycles"]
    # Bytes on the load and write-back tracks are the DRAM traffic.
    loaded = sum(e["args"]["ifmap_bytes"] + e["args"]["filter_bytes"] + e["args"]["psum_bytes"]
                 for e in by_track[2])
    assert loaded == (summary["dram_ifmap_read_bytes"] + summary["dram_filter_read_bytes"]
                      + summary["dram_psum_read_bytes"])
    written = sum(e["args"]["output_bytes"] + e["args"]["psum_bytes"] for e in by_track[5])
    assert written == summary["dram_ofmap_write_bytes"] + summary["dram_psum_write_bytes"]


@pytest.mark.parametrize("cap", [1, 5, 64])
def test_each_layer_is_capped_per_track(resnet18, cap):
    summary, timeline = resnet18
    events = [e for e in trace_events(summary, timeline, cap)["traceEvents"] if e["ph"] == "X"]
    for layer in summary["layers"]:
        mine = [e for e in events if e["args"].get("layer") == layer["name"]]
        for tid in (2, 3, 4, 5):
            count = sum(e["tid"] == tid for e in mine)
            assert count <= cap
        merged = [e for e in mine if e["tid"] == 3]
        assert sum(e["args"].get("merged", 1) for e in merged) == layer["units"]
        # Merged compute spans do not overlap and keep the fold order.
        starts = [e["ts"] for e in merged]
        assert starts == sorted(starts)


def test_small_layers_get_one_event_per_fold():
    arch = api.load_arch("os_sa_16x16", ("memory=ideal", "array.rows=64", "array.cols=64"))
    result = api.simulate(arch, api.load_workload("alexnet"), functional=False, timeline=True)
    summary = result.summary()
    events = trace_events(summary, result.timeline, 64)["traceEvents"]
    fc = [e for e in events if e.get("args", {}).get("layer") == "classifier.6"
          and e["tid"] == 3]
    layer = next(l for l in summary["layers"] if l["name"] == "classifier.6")
    assert layer["folds"] <= 64
    assert [e["name"] for e in fc] == [f"fold {i}" for i in range(layer["folds"])]


def test_buffer_counters_replay_the_claims(resnet18):
    """The buffer counters (docs/memory-model.md, "Timeline"): at most ``cap`` per buffer and
    layer, never above the buffer's capacity, and their largest value is the run's largest
    level of a plain replay of every layer's claims on the run's clock (layers prefetch into
    each other's space, so the shared level can exceed any one layer's peak)."""
    summary, timeline = resnet18
    capacity = {"ifmap": 16 * 1024, "filter": 16 * 1024, "ofmap": 4 * 1024}
    for cap in (3, 64):
        counters = [e for e in trace_events(summary, timeline, cap)["traceEvents"]
                    if e["ph"] == "C"]
        for b, buffer in enumerate(("ifmap", "filter", "ofmap")):
            mine = [e for e in counters if e["name"] == f"{buffer} buffer bytes"]
            assert len(mine) <= cap * len(timeline)
            level, changes = 0, []
            for record in timeline:
                changes += [(record.origin + t, d) for t, d in record.claims[b].tolist()]
            peak = 0
            for _, delta in sorted(changes):  # frees (negative) first at a cycle
                level += delta
                peak = max(peak, level)
            assert level == 0 and 0 < peak <= capacity[buffer]
            assert max(e["args"]["bytes"] for e in mine) == peak
