"""What the memory model and the SimPy engine add to a whole-network run.

    .venv/bin/python benchmarks/bench_engine.py [--workload resnet50] [--repeats 5]

Times, in-process (median of --repeats, after one warm-up run), ``api.simulate(...,
functional=False)`` of the whole workload on a 16x16 OS array:

- ``timing only``: the fold timing of every layer and nothing else (what `sasim run
  --timing-only` computed before the memory model existed);
- ``unbounded memory``: ``memory=ideal`` (the shipped chips are bounded): nothing can
  wait, so the memory model plans the tiles and the schedule is computed in closed form
  (``run_layer``'s shortcut, which the tests check against the SimPy processes);
- ``64 KiB buffers``: 64 KiB per buffer, double buffered, DRAM 16 B/cycle with 100 cycles of
  latency: every fold (and every streamed chunk) is an event on the SimPy engine;
- the same with ``--timeline`` (schedules kept and turned into a trace-event document);
- the same with ``memory.prefetch=none`` (each layer alone; the default prefetches across
  layers, docs/memory-model.md, "Cross-layer prefetch").

and what each adds to the timing-only run. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

from simulator import api
from simulator.hw.pe import get_pe_model
from simulator.hw.timing import fold_timing
from simulator.reports.table import format_table
from simulator.reports.timeline import timeline_json

BOUNDED = ("memory.ifmap_kib=64", "memory.filter_kib=64", "memory.ofmap_kib=64",
           "memory.dram_bandwidth_bytes_per_cycle=16", "memory.dram_latency_cycles=100")


def _timing_only(arch, workload) -> int:
    pe = get_pe_model(arch.pe)
    total = 0
    for layer in workload.layers:
        total += fold_timing(layer.gemm, arch.array.rows, arch.array.cols, arch.array.dataflow,
                             arch.timing.convention, pe.reduction_steps(layer)).compute_cycles
    return total


def _median(repeats: int, run) -> tuple[float, object]:
    run()
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="resnet50")
    parser.add_argument("--arch", default="os_sa_16x16")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    workload = api.load_workload(args.workload)
    base = api.load_arch(args.arch, ["memory=ideal"])
    bounded = api.load_arch(args.arch, ("memory=ideal", *BOUNDED))
    alone = api.load_arch(args.arch, ("memory=ideal", *BOUNDED, "memory.prefetch=none"))

    rows = []
    t_timing, cycles = _median(args.repeats, lambda: _timing_only(base, workload))
    rows.append(["timing only (no engine)", f"{t_timing:.3f}", "-", f"{cycles:,}", "-", "-"])
    for label, arch, timeline in (("unbounded memory (closed form)", base, False),
                                  ("64 KiB buffers, 16 B/cycle (SimPy)", bounded, False),
                                  ("  + --timeline", bounded, True),
                                  ("  prefetch none (layers alone)", alone, False)):
        def run(arch=arch, timeline=timeline):
            result = api.simulate(arch, workload, functional=False, timeline=timeline)
            if timeline:
                timeline_json(result.summary(), result.timeline)
            return result

        seconds, result = _median(args.repeats, run)
        units = sum(layer.units for layer in result.layers)
        rows.append([label, f"{seconds:.3f}", f"{seconds - t_timing:+.3f}",
                     f"{result.total_cycles:,}", f"{result.stall_cycles:,}",
                     f"{units:,} units / {sum(l.folds for l in result.layers):,} folds"])
    print(f"{workload.name} ({len(workload.layers)} layers) on {args.arch}, timing only "
          f"(functional=False), median of {args.repeats} in-process runs")
    print(format_table(["run", "seconds", "adds", "cycles", "stalls", "scheduled"],
                       rows, "lrrrrr"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
