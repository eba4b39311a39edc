#!/usr/bin/env python3
"""What a narrow accumulator costs a run, and that runs without one did not get slower.

Whole processes, as a user runs them (``python -m simulator run ... --workload resnet18``:
synthetic data, functional, counters and energy), side by side in one script run:

- ``dense`` / ``sysmt-2t``: ``os_sa_16x16`` / ``sysmt_2t_16x16`` as shipped (no accumulator),
  in this tree and in ``--previous`` (default: the commit before the accumulators, its files
  unpacked with ``git archive`` in a temporary directory): runs without an accumulator must not be slower;
- ``dense + fp12`` / ``sysmt-2t + fp12``: the same with the paper's 12-bit float accumulator
  (1 + 4 + 7 bits, bias 1, chunks of 16: ``--set pe.accumulator.type=float ...``), in this
  tree: at most 2x the run without it (docs/performance.md, "Narrow accumulators").
- ``dense + int32``: the dense run made functional by an exact 32-bit accumulator (the
  dense PE's cycles do not depend on data, so ``dense`` computes no GEMM): the judged
  baseline of ``dense + fp12``;
- ``timing``: the timing-only ResNet-18 (``--timing-only``), start-up included.

Each command runs once untimed (numba's cache, its own directory per tree), then
``--repeats`` times; the minimum and median are printed. Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_accumulator.py [--repeats 3] [--previous COMMIT]

On a shared machine only the side-by-side ratios of one run are meaningful; the load average
is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FP12 = ("--set", "pe.accumulator.type=float", "--set", "pe.accumulator.exponent_bits=4",
        "--set", "pe.accumulator.mantissa_bits=7", "--set", "pe.accumulator.bias=1",
        "--set", "pe.accumulator.chunk=16")
#: A 32-bit integer accumulator: on the dense PE with 8-bit operands it never overflows, so
#: the outputs are the exact GEMM (the accumulator's fast path), but the run is functional:
#: synthetic data, the GEMM and the error metrics, like the fp12 run.
INT32 = ("--set", "pe.accumulator.type=int", "--set", "pe.accumulator.bits=32")
RUN = ("run", "--workload", "resnet18", "--arch")
COMMANDS = {
    "timing": (*RUN, "os_sa_16x16", "--timing-only"),
    "dense": (*RUN, "os_sa_16x16"),
    "dense + int32": (*RUN, "os_sa_16x16", *INT32),
    "dense + fp12": (*RUN, "os_sa_16x16", *FP12),
    "sysmt-2t": (*RUN, "sysmt_2t_16x16"),
    "sysmt-2t + fp12": (*RUN, "sysmt_2t_16x16", *FP12),
}
#: The runs the previous tree can do (it has no accumulator).
PREVIOUS = ("timing", "dense", "sysmt-2t")
#: this tree's runs pin the unbounded memory (the shipped chips are bounded since; the previous
#: commit knows no `memory=ideal` and its defaults are that memory): docs/memory-model.md,
#: "Ideal memory"
IDEAL = ["--set", "memory=ideal"]


def _env(tree: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(tree), NUMBA_CACHE_DIR=str(cache), MPLBACKEND="Agg")
    return env


def _once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(argv)}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict[str, str], cwd: Path, repeats: int) -> dict:
    _once(argv, env, cwd)
    runs = [_once(argv, env, cwd) for _ in range(repeats)]
    walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
    return {"min": min(walls), "median": statistics.median(walls), "cpu": min(cpus)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--previous", default="d2568a9",
                        help="commit without accumulators (default: the branch point)")
    args = parser.parse_args(argv)
    python = sys.executable
    rows: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="sasim-acc-bench-") as tmp:
        tmp = Path(tmp)
        previous = tmp / "previous"
        previous.mkdir()
        # The commit's files (git archive: no worktree is registered in the repository).
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.previous],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(previous)], input=archive, check=True)
        try:
            trees = {"this": REPO, "previous": previous}
            for tree in trees.values():
                subprocess.run([python, "-m", "compileall", "-q", str(tree / "simulator")],
                               check=True)
            envs = {name: _env(tree, tmp / f"numba-{name}") for name, tree in trees.items()}
            # Interleaved: each command in both trees before the next command.
            for key, cmd in COMMANDS.items():
                for name in ("this", "previous"):
                    if name == "previous" and key not in PREVIOUS:
                        continue
                    ideal = IDEAL if name == "this" else []
                    rows.setdefault(key, {})[name] = _timed(
                        [python, "-m", "simulator", *cmd, *ideal], envs[name], tmp,
                        args.repeats)
        finally:
            shutil.rmtree(previous, ignore_errors=True)
    load = os.getloadavg()
    print(f"ResNet-18 runs, whole processes (min / median of {args.repeats}); load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores")
    print("wall s: min (median); cpu s: the least user + system time of one process")
    print(f"{'run':<17} {'this wall':>13} {'cpu':>6}   {'previous wall':>13} {'cpu':>6}   "
          f"{'this/previous (cpu)':>19}")
    for key, sides in rows.items():
        this = sides["this"]
        prev = sides.get("previous")
        cell = "" if prev is None else f"{prev['min']:.2f} ({prev['median']:.2f}) {prev['cpu']:6.2f}"
        ratio = "" if prev is None else f"{this['cpu'] / prev['cpu']:.2f}x"
        print(f"{key:<17} {this['min']:>5.2f} ({this['median']:5.2f}) {this['cpu']:6.2f}   "
              f"{cell:>20}   {ratio:>19}")
    print()
    # The dense PE's cycles do not depend on the data, so "dense" computes no GEMM at all:
    # the functional dense run is "dense + int32" (see INT32). SySMT's run is functional.
    for fp12_run, base in (("dense + fp12", "dense + int32"), ("dense + fp12", "dense"),
                           ("sysmt-2t + fp12", "sysmt-2t")):
        this, fp12 = rows[base]["this"], rows[fp12_run]["this"]
        for what in ("min", "cpu"):
            ratio = fp12[what] / this[what]
            label = "wall" if what == "min" else "cpu"
            if base == "dense":  # not a functional run: shown, not judged
                print(f"{fp12_run} / {base} ({label}): {ratio:.2f}x (timing-only baseline)")
                continue
            verdict = "PASS" if ratio <= 2.0 else "FAIL"
            print(f"{fp12_run} / {base} ({label}): {ratio:.2f}x (target <= 2x): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
