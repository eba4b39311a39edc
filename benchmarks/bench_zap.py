#!/usr/bin/env python3
"""ZAP's cost in run time (docs/performance.md, "ZAP"): whole processes, side by side.

- ``no zap``: runs that do not use ZAP, on this tree and on ``--previous`` (the commit before
  ZAP, default d2568a9): ResNet-18 timing-only, ResNet-18 functional (dense, synthetic data),
  ResNet-18 on SySMT-2T, and the digits trace;
- ``zap``: the same functional runs with ZAP on this tree (``zap_synthetic_16x16`` and SySMT
  with the same ``zap`` settings on ResNet-18, ``zap_os_sa_16x16`` with the trained
  predictors on the digits trace), against their run without ZAP (timed right after it).

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_zap.py [--repeats 3]

Every process starts from a temporary directory with ``PYTHONPATH`` naming the tree; one
untimed run first fills numba's cache. The load average is printed: on a shared machine only
side-by-side ratios of one run mean something.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_startup import REPO, _env, _timed, trees  # noqa: E402

SYNTHETIC = ["--set", "zap.enabled=true", "--set", "zap.predictor_source=synthetic",
             "--set", "zap.exclude=['*downsample*', 'layer*.conv2']"]
#: this tree's runs pin the unbounded memory (the shipped chips are bounded since; the previous
#: commit knows no `memory=ideal` and its defaults are that memory): docs/memory-model.md,
#: "Ideal memory"
IDEAL = ["--set", "memory=ideal"]
PLAIN = {
    "r18 timing-only": ["run", "--arch", "os_sa_16x16", "--workload", "resnet18",
                        "--timing-only"],
    "r18 dense": ["run", "--arch", "os_sa_16x16", "--workload", "resnet18"],
    "r18 sysmt-2t": ["run", "--arch", "sysmt_2t_16x16", "--workload", "resnet18"],
    "digits dense": ["run", "--arch", "os_sa_16x16", "--workload", "digits_int8"],
}
WITH_ZAP = {
    "r18 dense": ["run", "--arch", "zap_synthetic_16x16", "--workload", "resnet18"],
    "r18 sysmt-2t": ["run", "--arch", "sysmt_2t_16x16", "--workload", "resnet18", *SYNTHETIC],
    "digits dense": ["run", "--arch", "zap_os_sa_16x16", "--workload", "digits_int8"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--previous", default="d2568a9", help="the commit before ZAP")
    args = parser.parse_args(argv)
    python = sys.executable
    with trees(args.previous, "sasim-zap-") as (tmp, timed_trees):
        plain: dict[str, dict[str, dict]] = {}
        zap: dict[str, dict] = {}
        # the two trees and the run with ZAP interleaved, command by command: the load
        # drifts less between the sides of one ratio
        for key, cmd in PLAIN.items():
            for name, tree in timed_trees.items():
                env = _env(tree, tmp / f"numba-{name}")
                ideal = IDEAL if name == "this" else []
                plain.setdefault(key, {})[name] = _timed(
                    [python, "-m", "simulator", *cmd, *ideal], env, tmp, args.repeats)
            if key in WITH_ZAP:
                zap[key] = _timed([python, "-m", "simulator", *WITH_ZAP[key], *IDEAL],
                                  _env(REPO, tmp / "numba-this"), tmp, args.repeats)
    load = os.getloadavg()
    print(f"ZAP run times, whole processes (min / median of {args.repeats}); load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores")
    print(f"{'run':<17} {'no zap, this':>15} {'previous':>15} {'this/prev':>9}   "
          f"{'with zap':>15} {'zap/no zap':>10}")
    for key, sides in plain.items():
        this, prev = sides["this"], sides["previous"]
        cells = f"{this['min']:.3f} ({this['median']:.3f})"
        line = (f"{key:<17} {cells:>15} {prev['min']:>6.3f} ({prev['median']:.3f}) "
                f"{this['min'] / prev['min']:>8.2f}x")
        if key in zap:
            z = zap[key]
            line += (f"   {z['min']:.3f} ({z['median']:.3f}) "
                     f"{z['min'] / this['min']:>9.2f}x")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
