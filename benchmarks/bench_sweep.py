"""Sweep throughput: the 500-point timing-only sweep on ResNet-18
(sweeps/resnet18_timing_500.yaml), local pool vs Dask.

Prints the cost of one point run serially (api.simulate + summary), then the rate of the same
sweep on the local process pool and on a Dask LocalCluster (when Dask is installed) with the
same number of workers, and whether the two results.csv files agree (timing column aside).
Each executor starts from an empty output directory in a temporary folder.

    PYTHONPATH=$PWD python benchmarks/bench_sweep.py [--workers N] [--no-dask]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

from simulator import api
from simulator.sweep import (DaskExecutor, LocalExecutor, default_workers, load_sweep,
                             plan_sweep, run_sweep)

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "resnet18_timing_500.yaml"


def serial_cost(plan, sample: int = 12) -> float:
    """Mean seconds of api.simulate + summary over a sample of the points, in-process."""
    workload = api.load_workload("resnet18")
    step = max(1, len(plan.points) // sample)
    chosen = plan.points[::step][:sample]
    api.simulate(api.load_arch(chosen[0].base_path), workload, functional=False)  # warm up
    times = []
    for point in chosen:
        arch = api.load_arch(point.base_path, point.overrides)
        start = time.perf_counter()
        api.simulate(arch, workload, functional=False).summary()
        times.append(time.perf_counter() - start)
    return statistics.mean(times)


def rows_without_timing(path: Path) -> list[tuple]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return sorted(tuple((k, v) for k, v in row.items() if k != "elapsed_s") for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_sweep.") as tmp:
        plan = plan_sweep(load_sweep(SPEC), SPEC)
        n = len(plan.points)
        one = serial_cost(plan)
        print(f"{n} points, ResNet-18, timing only; {args.workers} workers")
        print(f"serial: {1000 * one:.1f} ms per point (api.simulate + summary) -> "
              f"{60 / one:.0f} points/min on one core, ideal {args.workers * 60 / one:.0f} "
              f"on {args.workers}")
        outs = {}
        executors = [("local", lambda: LocalExecutor(args.workers))]
        try:
            import distributed  # noqa: F401
            if not args.no_dask:
                executors.append(("dask", lambda: DaskExecutor(
                    args.workers, scratch=Path(tmp) / "dask" / ".dask-scratch")))
        except ImportError:
            print("dask: not installed (pip install 'sasim[distributed]')")
        for name, make in executors:
            out = Path(tmp) / name
            start = time.perf_counter()
            with make() as executor:
                ready = time.perf_counter()
                outcome = run_sweep(plan, out, executor)
            wall = time.perf_counter() - start
            outs[name] = out / "results.csv"
            print(f"{name}: {outcome.ran} points in {wall:.1f} s wall (executor set-up "
                  f"{ready - start:.1f} s) = {60 * outcome.ran / wall:.0f} points/min; "
                  f"{outcome.points_per_minute:.0f} points/min once started; "
                  f"{outcome.failed} failed")
        if len(outs) == 2:
            same = rows_without_timing(outs["local"]) == rows_without_timing(outs["dask"])
            print(f"local and dask results.csv identical (elapsed_s aside, row order aside): "
                  f"{'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
