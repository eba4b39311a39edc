#!/usr/bin/env python3
"""What a DRAM preset costs a whole-process run, and the presets against their equations.

Whole-process timings (median of ``--repeats`` fresh processes, after one untimed run that
fills numba's cache) of a timing-only ResNet-18 on ``os_sa_16x16`` with 64/64/16 KiB
buffers, side by side:

- ``ideal``: the fixed-bandwidth channel at 25.6 B/cycle (DDR4-3200's peak at the array's
  1 GHz): every transfer takes ``ceil(bytes / 25.6)`` cycles;
- ``ddr4_3200`` (and, with ``--all``, ``lpddr5_6400`` and ``hbm2e``): the DRAM model
  (docs/memory-model.md, "DRAM timing and energy").

Target: the ``ddr4_3200`` run at most 1.5x the ideal one. Then, per preset (``--validate``,
the figures of docs/memory-model.md, "Validation"): peak bandwidth, a long sequential read,
random 64 B reads against their activate bound, and the share refresh takes.

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_dram.py [--repeats 5] [--all] [--validate]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# each layer alone (the figures of docs/memory-model.md, "DRAM timing and energy", "Speed",
# were measured so; cross-layer prefetch has its own benchmark, bench_prefetch.py)
# memory=ideal first: the shipped chips have 32 KiB buffers and LPDDR5 since, and a DRAM
# preset refuses the bandwidth key; the figures were measured on the unbounded memory with
# the keys below (docs/memory-model.md, "Ideal memory")
BUFFERS = ("memory=ideal", "memory.ifmap_kib=64", "memory.filter_kib=64", "memory.ofmap_kib=16",
           "memory.prefetch=none")
PRESETS = ("ddr4_3200", "lpddr5_6400", "hbm2e")


def _run(setting: str) -> tuple[float, str]:
    argv = [sys.executable, "-m", "simulator", "run", "--arch", "os_sa_16x16",
            "--workload", "resnet18", "--timing-only", "--json"]
    for item in (*BUFFERS, setting):
        argv += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, done.stdout


def _timings(repeats: int, presets: tuple[str, ...]) -> None:
    import json

    rows = [("ideal 25.6 B/cycle", "memory.dram_bandwidth_bytes_per_cycle=25.6")]
    rows += [(name, f"memory.dram={name}") for name in presets]
    print(f"resnet18 on os_sa_16x16, timing only, 64/64/16 KiB buffers; whole process, "
          f"median of {repeats}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'DRAM':<20} {'seconds':>8} {'x ideal':>8} {'cycles':>12} {'stalls':>10} "
          f"{'row hits':>9} {'GB/s':>7} {'DRAM uJ':>9}")
    base = None
    for label, setting in rows:
        _run(setting)  # fills numba's cache
        times, out = [], ""
        for _ in range(repeats):
            seconds, out = _run(setting)
            times.append(seconds)
        median = statistics.median(times)
        base = base or median
        summary = json.loads(out)
        dram = summary.get("dram")
        hits = "-" if dram is None else f"{100 * dram['row_hit_rate']:.1f} %"
        gbs = "-" if dram is None else f"{dram['achieved_bandwidth_gb_s']:.2f}"
        energy = "-" if dram is None else f"{dram['energy_pj'] / 1e6:,.1f}"
        print(f"{label:<20} {median:>8.3f} {median / base:>8.2f} "
              f"{summary['total_cycles']:>12,} {summary['stall_cycles']:>10,} {hits:>9} "
              f"{gbs:>7} {energy:>9}")


def _validate() -> None:
    sys.path.insert(0, str(REPO))
    from simulator.config.dram import dram_spec
    from simulator.memory.dram import stream
    from simulator.memory.dram_requests import simulate_requests

    print("\npreset        peak GB/s  sequential read  random 64 B reads (bound)    refresh "
          "(tRFC/tREFI)")
    for name in PRESETS:
        spec = dram_spec(name)
        step = max(spec.tCCD_S, spec.burst_cycles)
        bursts = 2 * spec.banks * spec.column_bursts
        seq = stream(spec, bursts, False, 0)
        achieved = bursts * spec.burst_bytes * spec.channels / (seq.end / (spec.clock_mhz
                                                                           * 1e6))
        rng = random.Random(7)
        span = spec.column_bursts * spec.banks
        requests = [(rng.randrange(1 << 22) * span + rng.randrange(span), False)
                    for _ in range(400)]
        rand = simulate_requests(spec, requests)
        per = (rand.end - spec.tRCD - spec.tCL - spec.burst_cycles) / 400
        bound = max(spec.tRRD_S, spec.tFAW / 4, spec.tRC / spec.banks, step)
        long = 4 * spec.tREFI // step
        plain = stream(spec, long, False, 0).end
        refreshed = stream(spec, long, False, 0, next_refresh=spec.tREFI).end
        print(f"{name:<13} {spec.peak_bytes_per_s / 1e9:>9.1f}  "
              f"{100 * achieved / spec.peak_bytes_per_s:>6.1f} % of peak  "
              f"{per:>5.2f} cycles each ({bound:.2f}) = "
              f"{100 * step / per:>4.1f} %   {100 * (refreshed - plain) / refreshed:>5.2f} % "
              f"({100 * spec.tRFC / spec.tREFI:.2f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="also lpddr5_6400 and hbm2e")
    parser.add_argument("--validate", action="store_true", help="the per-preset figures")
    args = parser.parse_args()
    _timings(args.repeats, PRESETS if args.all else PRESETS[:1])
    if args.validate:
        _validate()


if __name__ == "__main__":
    main()
