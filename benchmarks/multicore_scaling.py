#!/usr/bin/env python3
"""Multi-core scaling (docs/memory-model.md, "Multi-core"): ResNet-50 at batch 8 on 1, 2 and
4 cores of 16x16 SySMT-2T (arch_configs/sysmt_2t_16x16.yaml) with ``memory.dram=ddr4_3200``
and 256/256/64 KiB buffers per core, for each partition.

Every run is a whole ``sasim run --json`` process (SySMT's functional model on synthetic
data, so the energy has its PE counters); the table gives its cycles, the scaling efficiency
(single-core cycles / (cores x multi-core cycles)), the energy per inference, inferences per
second at the arch's clock, and the process's wall time. The batch-8 workload is the shipped
resnet50 with its ``batch`` set to 8, written to a temporary file.

Usage (from the repo root)::

    .venv/bin/python benchmarks/multicore_scaling.py [--cores 1 2 4]
        [--partitions batch output_channels spatial pipeline] [--previous COMMIT]

``--previous COMMIT`` times every multi-core run of that commit too (a temporary git
worktree), each right after this tree's, and prints the wall times side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench_startup import trees

REPO = Path(__file__).resolve().parent.parent
MEMORY = ("memory.dram=ddr4_3200", "memory.ifmap_kib=256", "memory.filter_kib=256",
          "memory.ofmap_kib=64")
PARTITIONS = ("batch", "output_channels", "spatial", "pipeline")


def batch8_workload(directory: Path) -> Path:
    """The shipped resnet50 with batch 8, in ``directory``."""
    text = (REPO / "workloads" / "resnet50.yaml").read_text()
    text, count = re.subn(r"(?m)^batch: 1$", "batch: 8", text)
    assert count == 1, "workloads/resnet50.yaml: expected one 'batch: 1' line"
    path = directory / "resnet50_b8.yaml"
    path.write_text(text.replace("name: resnet50", "name: resnet50_b8", 1))
    return path


def run(workload: Path, cores: int, partition: str, tree: Path = REPO) -> tuple[float, dict]:
    """One whole ``sasim run`` process of the sasim in ``tree``: its wall time and its
    summary."""
    argv = [sys.executable, "-m", "simulator", "run", "--arch", "sysmt_2t_16x16",
            "--workload", str(workload), "--json"]
    for item in (*MEMORY, f"multicore.cores={cores}", f"multicore.partition={partition}"):
        argv += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True,
                          cwd=tree)
    return time.perf_counter() - start, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--partitions", nargs="+", default=list(PARTITIONS),
                        choices=PARTITIONS)
    parser.add_argument("--previous", metavar="COMMIT",
                        help="also time every multi-core run of this commit (a git worktree), "
                             "alternating with this tree's, and print the two side by side")
    args = parser.parse_args()
    with trees(args.previous, "sasim-multicore-") as (tmp, found):
        workload = batch8_workload(Path(tmp))
        for tree in found.values():
            run(workload, 1, "batch", tree)  # fills numba's cache; not timed
        rows, single, speed = [], None, []
        for partition in args.partitions:
            for cores in args.cores:
                if cores == 1 and single is not None:
                    rows.append((partition, *single))
                    continue
                seconds, summary = run(workload, cores, partition)
                if cores > 1 and "previous" in found:
                    speed.append((partition, cores, seconds,
                                  run(workload, cores, partition, found["previous"])[0]))
                if cores == 1:
                    single = (1, seconds, summary)
                rows.append((partition, cores, seconds, summary))
    base = single[2]["total_cycles"] if single else None
    print(f"resnet50 batch 8 on sysmt_2t_16x16, ddr4_3200, 256/256/64 KiB buffers per core; "
          f"whole process per run; load average {os.getloadavg()[0]:.1f}")
    print(f"{'partition':<16} {'cores':>5} {'cycles':>13} {'efficiency':>10} "
          f"{'uJ/inference':>12} {'inferences/s':>12} {'stalls %':>8} {'wall s':>7}")
    for partition, cores, seconds, summary in rows:
        cycles = summary["total_cycles"]
        efficiency = "-" if base is None else f"{base / (cores * cycles):.3f}"
        energy = summary["energy_pj"] / summary["inferences"] * 1e-6
        stalls = summary["multicore"]["per_core"] if "multicore" in summary else None
        stall_share = (sum(c["stall_cycles"] for c in stalls)
                       / sum(c["busy_cycles"] for c in stalls) if stalls
                       else summary["stall_cycles"] / cycles)
        print(f"{partition:<16} {cores:>5} {cycles:>13,} {efficiency:>10} {energy:>12,.1f} "
              f"{summary['inferences_per_s']:>12,.1f} {100 * stall_share:>8.1f} "
              f"{seconds:>7.1f}")

    if speed:
        print(f"\nwall s of each multi-core process, this tree and {args.previous} one after "
              f"the other (load average {os.getloadavg()[0]:.1f})")
        print(f"{'partition':<16} {'cores':>5} {'this s':>7} {'previous s':>10} {'speed-up':>8}")
        for partition, cores, seconds, before in speed:
            print(f"{partition:<16} {cores:>5} {seconds:>7.1f} {before:>10.1f} "
                  f"{before / seconds:>7.2f}x")


if __name__ == "__main__":
    main()
