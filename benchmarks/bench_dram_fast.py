#!/usr/bin/env python3
"""What the shipped chip's LPDDR5 costs a whole-process run, beside DDR4, HBM2E and ideal.

The shipped 16x16 chip (``os_sa_16x16``: 32 KiB buffers, ``lpddr5_6400``) serves most of its
DRAM streams out of order (FR-FCFS takes younger row hits first), so they run on the fast
per-request controller (docs/memory-model.md, "The per-request controller, fast"); DDR4
streams take the closed form. Whole-process timings (median of
``--repeats`` fresh processes, the configurations alternating, after one untimed run of each
that fills numba's cache; wall seconds and CPU seconds, the latter steadier on a shared
machine) of a timing-only ResNet-18, side by side with the ratio to the ``ddr4_3200`` run
(target: the shipped LPDDR5 run at most 1.5x it):

- the shipped chip as it is (``lpddr5_6400``);
- ``--set memory.dram=ddr4_3200`` and ``--set memory.dram=hbm2e`` (same buffers);
- ``--set memory=ideal`` (unbounded buffers, the fixed-bandwidth channel).

With ``--llm``, one block of the timing-only Llama-2-7B prefill (2048 tokens,
``benchmarks/llama2_7b_prefill_block.yaml``: the shipped prefill's ``block0.*`` layers) on the
shipped chip, with ``ddr4_3200`` and with ``memory=ideal``, once each: the whole prefill is
32 such blocks and the LM head, and takes about 32 times as long (the target was the whole
prefill on the shipped chip under 60 s); ``--llm-full`` runs the whole prefill on the
shipped chip once (tens of minutes).

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_dram_fast.py [--repeats 5] [--llm] [--llm-full]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROWS = (("lpddr5_6400 (shipped)", ()), ("ddr4_3200", ("memory.dram=ddr4_3200",)),
        ("hbm2e", ("memory.dram=hbm2e",)), ("memory=ideal", ("memory=ideal",)))


def _run(workload: str, settings: tuple[str, ...]) -> tuple[float, float, dict]:
    """One whole process: wall seconds, CPU seconds (user + system) and its summary."""
    argv = [sys.executable, "-m", "simulator", "run", "--arch", "os_sa_16x16",
            "--workload", workload, "--timing-only", "--json"]
    for item in settings:
        argv += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(done.stdout)


def _line(label: str, wall: float, cpu: float, base: tuple[float, float] | None,
          summary: dict) -> str:
    dram = summary.get("dram")
    ratio = "-" if base is None else f"{wall / base[0]:.2f}"
    cpu_ratio = "-" if base is None else f"{cpu / base[1]:.2f}"
    hits = "-" if dram is None else f"{100 * dram['row_hit_rate']:.1f} %"
    refreshes = "-" if dram is None else f"{dram['refreshes']:,}"
    return (f"{label:<22} {wall:>8.2f} {ratio:>7} {cpu:>8.2f} {cpu_ratio:>7} "
            f"{summary['total_cycles']:>15,} {summary['stall_cycles']:>13,} {hits:>9} "
            f"{refreshes:>9}")


def _header(title: str) -> None:
    print(title)
    print(f"{'memory':<22} {'seconds':>8} {'x DDR4':>7} {'CPU s':>8} {'x DDR4':>7} "
          f"{'cycles':>15} {'stalls':>13} {'row hits':>9} {'refreshes':>9}")


def _resnet(repeats: int) -> None:
    _header(f"resnet18 on os_sa_16x16 (shipped: 32 KiB buffers), timing only; whole process, "
            f"median of {repeats}; load average {os.getloadavg()[0]:.1f}")
    for label, settings in ROWS:
        _run("resnet18", settings)  # fills numba's cache
    runs: dict[str, list[tuple[float, float, dict]]] = {label: [] for label, _ in ROWS}
    for _ in range(repeats):  # the rows alternate, so that each sees the same load
        for label, settings in ROWS:
            runs[label].append(_run("resnet18", settings))
    results = {label: (statistics.median(r[0] for r in rows),
                       statistics.median(r[1] for r in rows), rows[-1][2])
               for label, rows in runs.items()}
    base = results["ddr4_3200"][:2]
    for label, (wall, cpu, summary) in results.items():
        print(_line(label, wall, cpu, base, summary))


BLOCK = str(REPO / "benchmarks" / "llama2_7b_prefill_block.yaml")


def _llm(full: bool) -> None:
    workload, rows = (("llama2_7b_prefill", (ROWS[0],)) if full
                      else (BLOCK, (ROWS[0], ROWS[1], ROWS[3])))
    _header(f"\n{Path(workload).stem} on os_sa_16x16, timing only; whole process, one run; "
            f"load average {os.getloadavg()[0]:.1f}")
    results = {label: _run(workload, settings) for label, settings in rows}
    base = results["ddr4_3200"][:2] if "ddr4_3200" in results else None
    for label, (wall, cpu, summary) in results.items():
        print(_line(label, wall, cpu, base, summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--llm", action="store_true",
                        help="also one block of the Llama-2-7B prefill")
    parser.add_argument("--llm-full", action="store_true",
                        help="also the whole Llama-2-7B prefill on the shipped chip")
    args = parser.parse_args()
    _resnet(args.repeats)
    if args.llm:
        _llm(full=False)
    if args.llm_full:
        _llm(full=True)


if __name__ == "__main__":
    main()
