#!/usr/bin/env python3
"""The memory schedule of prefetch chains: the compiled twin against SimPy's processes.

Whole processes as a user runs them (``sasim run --arch A --workload W [--timing-only]``)
with ``SASIM_SCHEDULE=simpy`` and ``SASIM_SCHEDULE=auto`` (the compiled twin when its loop
is compiled ahead of time), alternating, after one untimed run of each; min and median
wall seconds, CPU seconds (user + system, of the process and its functional child) and peak
memory, and the ratio. Each pair's JSON reports are checked equal (the twin must not change
a figure). Then, in-process, the seconds every chain's ``finish`` takes on ResNet-18 (the
engine's share of a run), best of ``--repeats``.

With ``--check W [W ...]``, instead: every shipped arch on each workload ``W``, timing only,
in-process, with both schedules; prints how many reports differ (0 expected) and how many
chains the twin ran.

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_schedule.py [--repeats 7] [--vgg]
    .venv/bin/python benchmarks/bench_schedule.py --check resnet18 mobilenet_v2 gpt2_decode
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = (("sysmt-4t r18 timing", "sysmt_4t_16x16", "resnet18", True),
         ("sysmt-4t r18", "sysmt_4t_16x16", "resnet18", False),
         ("os-sa 32x32 r18 timing", "os_sa_32x32", "resnet18", True),
         ("sparq-5opt r18", "sparq_5opt_16x16", "resnet18", False))
VGG = (("sysmt-4t vgg16", "sysmt_4t_16x16", "vgg16", False),)


def _run(arch: str, workload: str, timing_only: bool, schedule: str
         ) -> tuple[float, float, float, str]:
    """One whole process: wall s, CPU s (with its functional child), peak MB and its
    report."""
    argv = [sys.executable, "-m", "simulator", "run", "--arch", arch, "--workload", workload,
            "--json"] + (["--timing-only"] if timing_only else [])
    env = {**os.environ, "PYTHONPATH": str(REPO), "SASIM_SCHEDULE": schedule}
    start = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env=env) as process:
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"{' '.join(argv)}: exit status {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def _in_process(repeats: int) -> dict[str, float]:
    """Seconds in every chain's ``finish`` of a timing-only ResNet-18 on the 16x16 chip."""
    sys.path.insert(0, str(REPO))
    from simulator import api
    from simulator.memory import prefetch

    arch, workload = api.load_arch("sysmt_4t_16x16"), api.load_workload("resnet18")
    finish = prefetch.PrefetchChain.finish
    spent = [0.0]

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return finish(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    prefetch.PrefetchChain.finish = timed
    best = {}
    try:
        for schedule in ("simpy", "auto"):
            os.environ["SASIM_SCHEDULE"] = schedule
            api.simulate(arch, workload, functional=False)  # warm: imports, DRAM figures
            times = []
            for _ in range(repeats):
                spent[0] = 0.0
                api.simulate(arch, workload, functional=False)
                times.append(spent[0])
            best[schedule] = min(times)
    finally:
        prefetch.PrefetchChain.finish = finish
        os.environ.pop("SASIM_SCHEDULE", None)
    return best


def _check(workloads: list[str]) -> None:
    """Every shipped arch on each workload, timing only, with both schedules: the reports
    must be the same."""
    sys.path.insert(0, str(REPO))
    from simulator import api, multicore
    from simulator.memory import prefetch_compiled

    run, chains = prefetch_compiled.run, [0]

    def counted(chain):
        chains[0] += 1
        return run(chain)

    prefetch_compiled.run = counted
    pairs = differ = 0
    for name in workloads:
        workload = api.load_workload(name)
        for path in sorted(api.shipped_archs()):
            arch = api.load_arch(path.stem)
            reports = []
            for schedule in ("simpy", "auto"):
                os.environ["SASIM_SCHEDULE"] = schedule
                simulate = multicore.simulate if arch.multicore.cores > 1 else api.simulate
                result = simulate(arch, workload, functional=False)
                reports.append(json.dumps(result.summary(), sort_keys=True, default=str))
            pairs += 1
            if reports[0] != reports[1]:
                differ += 1
                print(f"differ: {path.stem} on {name}")
    print(f"{pairs} arch x workload pairs, {differ} reports differ; {chains[0]} chains ran "
          f"on the compiled twin")
    if not chains[0]:
        sys.exit("the twin ran no chain: is its loop compiled ahead of time "
                 "(`.venv/bin/python -m simulator.kernels.aot`)?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--vgg", action="store_true", help="add SySMT-4T VGG-16 (slow)")
    parser.add_argument("--check", nargs="+", metavar="WORKLOAD",
                        help="compare the reports of every shipped arch on these workloads")
    args = parser.parse_args()
    if args.check:
        _check(args.check)
        return
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "simulator")],
                   check=True)
    sys.path.insert(0, str(REPO))
    from simulator.kernels.compiled import is_compiled

    if not is_compiled("simulator.kernels.chain_loops"):
        sys.exit("the chain's loop is not compiled ahead of time here: run "
                 "`.venv/bin/python -m simulator.kernels.aot` first")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"prefetch chains: compiled twin (auto) vs SimPy processes, whole processes, "
          f"min (median) of {args.repeats}; load average {load}, {os.cpu_count()} cores")
    print(f"{'run':24} {'simpy s':>15} {'cpu':>6} {'MB':>5} {'compiled s':>15} {'cpu':>6} "
          f"{'MB':>5} {'speed-up':>8}")
    for name, arch, workload, timing_only in CASES + (VGG if args.vgg else ()):
        repeats = max(1, args.repeats // 3) if workload == "vgg16" else args.repeats
        figures: dict[str, list[tuple[float, float, float]]] = {"simpy": [], "auto": []}
        reports = {}
        for schedule in figures:  # untimed: numba's cache, the page cache
            reports[schedule] = _run(arch, workload, timing_only, schedule)[3]
        if reports["simpy"] != reports["auto"]:
            sys.exit(f"{name}: the two schedules' reports differ")
        for _ in range(repeats):
            for schedule in figures:
                wall, cpu, peak, _ = _run(arch, workload, timing_only, schedule)
                figures[schedule].append((wall, cpu, peak))
        cells = []
        for schedule in ("simpy", "auto"):
            walls = [f[0] for f in figures[schedule]]
            cells.append(f"{min(walls):6.3f} ({statistics.median(walls):6.3f}) "
                         f"{min(f[1] for f in figures[schedule]):6.3f} "
                         f"{max(f[2] for f in figures[schedule]):5.0f}")
        ratio = (min(f[0] for f in figures["simpy"]) / min(f[0] for f in figures["auto"]))
        print(f"{name:24} {cells[0]} {cells[1]} {ratio:7.2f}x")
    best = _in_process(args.repeats)
    print(f"\nin-process, every chain's finish on sysmt_4t_16x16 resnet18 (timing only), best "
          f"of {args.repeats}: SimPy {best['simpy']:.3f} s, compiled {best['auto']:.3f} s "
          f"({best['simpy'] / best['auto']:.1f}x)")


if __name__ == "__main__":
    main()
