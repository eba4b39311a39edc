#!/usr/bin/env python3
"""What transform coding costs a run: whole ``sasim run`` processes side by side.

Pairs of runs, each a fresh process (start-up, imports, numba's cache loads included), in
alternating order ``--repeats`` times; the median of each side and of the per-repeat ratio
(robust when other jobs share the machine) is printed:

- ``functional``: ``sasim run --arch sysmt_2t_16x16 --workload resnet18`` (SySMT runs on
  ResNet-18's synthetic data, docs/synthetic-data.md) without and with
  ``--set memory.activation_codec.bits=6``: the codec calibrates a PCA per layer, encodes
  and decodes every layer input bit for bit (target: at most 2x);
- ``timing``: ``sasim run --arch os_sa_16x16 --workload resnet18 --timing-only`` against the
  same run with a codec key set that leaves it off (``memory.activation_codec.lanes=8``):
  a run without the codec must not pay for it (target: the same time).

Usage (from the repo root): ``PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_codec.py
[--repeats 3] [--section functional|timing]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

RUNS = {
    "functional": (["--arch", "sysmt_2t_16x16", "--workload", "resnet18",
                    "--set", "memory=ideal"],
                   ["memory.activation_codec.bits=6"], 2.0),
    "timing": (["--arch", "os_sa_16x16", "--workload", "resnet18", "--timing-only",
                "--set", "memory=ideal"],
               ["memory.activation_codec.lanes=8"], 1.1),
}


def _seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "simulator", "run", *argv, "--json"], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ})
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--section", choices=sorted(RUNS), action="append")
    args = parser.parse_args(argv)
    for name in args.section or sorted(RUNS):
        base, overrides, target = RUNS[name]
        with_codec = base + [a for o in overrides for a in ("--set", o)]
        plain, coded, ratios = [], [], []
        for repeat in range(args.repeats):
            pair = [(base, plain), (with_codec, coded)]
            for run_argv, sink in (pair if repeat % 2 == 0 else pair[::-1]):
                sink.append(_seconds(run_argv))
            ratios.append(coded[-1] / plain[-1])
        ratio = statistics.median(ratios)
        verdict = "PASS" if ratio <= target else "FAIL"
        print(f"{name}: sasim run {' '.join(base)}: {statistics.median(plain):.2f} s; "
              f"with --set {' --set '.join(overrides)}: {statistics.median(coded):.2f} s; "
              f"median ratio {ratio:.2f}x over {args.repeats} pairs (target <= {target}x: "
              f"{verdict}); load average {os.getloadavg()[0]:.1f}")
    return 0  # a benchmark prints its verdicts; `make bench` runs them all


if __name__ == "__main__":
    sys.exit(main())
