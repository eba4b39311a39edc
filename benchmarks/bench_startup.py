#!/usr/bin/env python3
"""Whole-process timings of ``sasim run``, side by side with the previous release.

Every figure is a fresh process, as a user runs it (``python -m simulator run ...``, started
from a temporary directory so that only ``PYTHONPATH`` decides which sasim is imported):

- ``timing``: the timing-only ResNet-18 on SCALE-Sim's 32x32 OS ``.cfg`` (``--timing-only``;
  the files of ``tests/data/scalesim/reference_resnet18``);
- ``cfg``: the same without ``--timing-only`` (a dense PE on shape-only data);
- ``sysmt-r18`` / ``sysmt-vgg``: SySMT-4T on ResNet-18 / VGG-16 with synthetic data, counters
  and energy (``run --arch sysmt_4t_16x16 --workload resnet18|vgg16``);
- ``synth-r18`` / ``synth-vgg``: generating every layer's synthetic data in one process
  (seconds inside the process, after its imports; the data cache off).

Each tree's runs keep their synthetic data in a cache of their own (docs/synthetic-data.md,
"The cache"), which the untimed first run fills, as a user's first run fills theirs; the
``sysmt-cold`` runs start with it empty.

and the references: the bare interpreter's start-up (``python -c pass``) and the float64 GEMM
floor of each workload (every layer's exact GEMM as a numpy float64 product, operands made
outside the timed region, as in ``benchmarks/gemm_timing.py``).

A second table runs this tree twice, with its kernels compiled ahead of time and with
numba's (``SASIM_AOT=0``; docs/performance.md, "Kernels compiled ahead of time"):
``sysmt-r18`` as above, ``sysmt-chip`` (the same on the shipped chip's bounded buffers and
LPDDR5), ``chip-timing`` (``run --arch os_sa_32x32 --workload resnet18 --timing-only``, the
DRAM controller) and ``sysmt-cold`` (``sysmt-r18`` with an empty numba cache: a first run on
a new machine; one process each, no warm-up). The checkout's build must be fresh
(``python -m simulator.kernels.aot``; the script says when it is not).

The previous release is a git worktree of ``--previous`` (default c0b91d4, sasim 0.1.0) in a
temporary directory (``--previous-ideal``: a commit that knows ``--set memory=ideal``, whose
SySMT runs then get it too, and whose kernels are then compiled ahead of time in the worktree,
as this tree's are); the two trees' runs alternate, repeat by repeat. Both trees are
byte-compiled first (an installed package has its byte code) and each command runs once untimed before the timed repeats, which fills numba's cache
(its own directory per tree): the figures are start-up and run time, not first compilation.
Peak memory is each process's maximum resident set (``wait4``).

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_startup.py [--repeats 5] [--vgg-repeats 1] [--quick]

``--quick`` skips VGG-16 (the previous release needs about 20 s and 3.4 GB for it). The
machine's load average is printed: on a shared machine only the side-by-side ratios of one
run are meaningful.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# SCALE-Sim's ResNet-18 inputs, as shipped with the reference reports (bench_vs_scalesim.py)
SCALESIM = REPO / "tests" / "data" / "scalesim" / "reference_resnet18"
CFG = SCALESIM / "resnet18_os_32x32" / "scalesim.cfg"
CSV = SCALESIM / "Resnet18.csv"
#: this tree's runs pin the unbounded memory (the shipped chips are bounded since; the previous
#: commit knows no `memory=ideal` and its defaults are that memory): docs/memory-model.md,
#: "Ideal memory"
IDEAL = ["--set", "memory=ideal"]

TARGETS = {"timing": "< 0.3 s", "cfg": "-", "synth-r18": "< 0.1 s", "synth-vgg": "< 1 s",
           "sysmt-r18": "<= 4x (floor + start-up)", "sysmt-vgg": "< 4 s, < 1 GB"}

_SYNTH = """
import sys, time
from simulator import api
from simulator.workloads.synthetic import synthesize
workload = api.load_workload(sys.argv[1])
start = time.perf_counter()
data = synthesize(workload)
for layer in workload.layers:
    data.tensors(layer.name)
print(time.perf_counter() - start)
"""

_FLOOR = """
import sys, time
import numpy as np
from simulator import api
from simulator.workloads.lowering import im2col, weights_to_gemm
workload = api.with_synthetic_data(api.load_workload(sys.argv[1]))
best = float("inf")
for _ in range(int(sys.argv[2])):
    total = 0.0
    for layer in workload.layers:
        t = workload.tensors(layer.name)
        a, b = im2col(t.input, layer), weights_to_gemm(t.weight, layer)
        start = time.perf_counter()
        for g in range(a.shape[0]):
            a[g].astype(np.float64) @ b[g].astype(np.float64)
        total += time.perf_counter() - start
        del a, b
    best = min(best, total)
print(best)
"""


def _env(tree: Path, cache: Path) -> dict[str, str]:
    """A tree's environment: its numba cache ``cache`` and, beside it, its own cache of
    synthetic data (filled by the untimed first run, as a user's first run fills theirs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(tree), NUMBA_CACHE_DIR=str(cache), MPLBACKEND="Agg",
               SASIM_DATA_CACHE=str(cache.with_name(cache.name + "-data")))
    return env


def _timed(argv: list[str], env: dict[str, str], cwd: Path, repeats: int) -> dict:
    """Untimed warm-up (numba's cache), then ``repeats`` timed processes."""
    _run_rusage(argv, env, cwd)
    times, peaks = [], []
    for _ in range(repeats):
        elapsed, peak, _ = _run_rusage(argv, env, cwd)
        times.append(elapsed)
        peaks.append(peak)
    return {"min": min(times), "median": statistics.median(times), "peak_mb": max(peaks)}


def _run_rusage(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}")
    return elapsed, usage.ru_maxrss / 1024, out.decode()


@contextlib.contextmanager
def trees(previous: str | None, prefix: str, build_previous: bool = False):
    """A temporary directory and the trees to time, ``{"this": REPO, "previous": ...}``: the
    previous one a git worktree of commit ``previous`` in that directory (none when
    ``previous`` is None), both byte-compiled (an installed package has its byte code);
    the worktree is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        tmp = Path(tmp)
        found = {"this": REPO}
        if previous is not None:
            found["previous"] = tmp / "previous"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet",
                            str(found["previous"]), previous], check=True)
        try:
            if previous is not None and build_previous:  # its kernels compiled ahead of time
                subprocess.run([sys.executable, "-m", "simulator.kernels.aot"],
                               env=_env(found["previous"], tmp / "numba-build"),
                               cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            for tree in found.values():
                subprocess.run([sys.executable, "-m", "compileall", "-q",
                                str(tree / "simulator")], check=True)
            yield tmp, found
        finally:
            if "previous" in found:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                                str(found["previous"])], check=False)
                shutil.rmtree(found["previous"], ignore_errors=True)


#: this tree's runs with and without the kernels compiled ahead of time
AOT_COMMANDS = {"sysmt-r18": ["run", "--arch", "sysmt_4t_16x16", "--workload", "resnet18",
                              *IDEAL],
                "sysmt-chip": ["run", "--arch", "sysmt_4t_16x16", "--workload", "resnet18"],
                "chip-timing": ["run", "--arch", "os_sa_32x32", "--workload", "resnet18",
                                "--timing-only"]}


def _cold(argv: list[str], env: dict[str, str], cwd: Path, caches: Path, repeats: int
          ) -> dict:
    """``repeats`` processes, each with an empty numba cache and data cache (no
    warm-up)."""
    times, peaks = [], []
    for index in range(repeats):
        folder = caches / f"cold-{env.get('SASIM_AOT')}-{index}"
        elapsed, peak, _ = _run_rusage(argv, {**env, "NUMBA_CACHE_DIR": str(folder),
                                              "SASIM_DATA_CACHE": f"{folder}-data"}, cwd)
        times.append(elapsed)
        peaks.append(peak)
    return {"min": min(times), "median": statistics.median(times), "peak_mb": max(peaks)}


def _compiled_table(python: str, tmp: Path, repeats: int) -> dict[str, dict]:
    """This tree with the kernels compiled ahead of time against numba's; returns the
    compiled side's figures by run."""
    state = subprocess.run([python, "-m", "simulator.kernels.aot", "--check"],
                           env=_env(REPO, tmp / "numba-this"), capture_output=True,
                           text=True, check=True).stdout.split()
    print()
    print("this tree: kernels compiled ahead of time against numba's (SASIM_AOT=0); "
          f"build: {' '.join(state)}")
    print(f"{'run':<11} {'compiled s (med)':>17} {'MB':>6}   {'numba s (med)':>15} {'MB':>6}"
          f"   {'speed-up':>8}")
    commands = {**AOT_COMMANDS, "sysmt-cold": AOT_COMMANDS["sysmt-r18"]}
    compiled = {}
    for key, cmd in commands.items():
        sides = []
        for aot in ("", "0"):
            env = {**_env(REPO, tmp / "numba-this"), "SASIM_AOT": aot}
            argv = [python, "-m", "simulator", *cmd]
            sides.append(_cold(argv, env, tmp, tmp, 1) if key == "sysmt-cold"
                         else _timed(argv, env, tmp, repeats))
        cells = [(f"{side['min']:.3f} ({side['median']:.3f})", f"{side['peak_mb']:.0f}")
                 for side in sides]
        print(f"{key:<11} {cells[0][0]:>17} {cells[0][1]:>6}   {cells[1][0]:>15} "
              f"{cells[1][1]:>6}   {sides[1]['min'] / sides[0]['min']:>7.1f}x")
        compiled[key] = sides[0]
    return compiled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vgg-repeats", type=int, default=1)
    parser.add_argument("--previous", default="c0b91d4", help="commit of the previous release")
    parser.add_argument("--quick", action="store_true", help="skip VGG-16")
    parser.add_argument("--previous-ideal", action="store_true",
                        help="the previous commit knows --set memory=ideal (one after the "
                             "shipped chips got bounded memory): its SySMT runs get it too")
    args = parser.parse_args(argv)
    python = sys.executable
    with trees(args.previous, "sasim-bench-", args.previous_ideal) as (tmp, timed_trees):
        commands = {"timing": ["run", "--arch", str(CFG), "--workload", str(CSV),
                               "--timing-only"],
                    "cfg": ["run", "--arch", str(CFG), "--workload", str(CSV)],
                    "sysmt-r18": ["run", "--arch", "sysmt_4t_16x16", "--workload",
                                  "resnet18"]}
        if not args.quick:
            commands["sysmt-vgg"] = ["run", "--arch", "sysmt_4t_16x16", "--workload",
                                     "vgg16"]
        # The trees' runs alternate, repeat by repeat: on a shared machine a slow spell
        # then slows both sides alike.
        runs: dict[tuple[str, str], tuple[list[str], dict[str, str], int, bool]] = {}
        for name, tree in timed_trees.items():
            env = _env(tree, tmp / f"numba-{name}")
            ideal_here = name == "this" or args.previous_ideal
            for key, cmd in commands.items():
                repeats = args.vgg_repeats if key == "sysmt-vgg" else args.repeats
                # the SCALE-Sim cfg brings its own memory; the shipped arch is pinned
                ideal = IDEAL if ideal_here and key.startswith("sysmt") else []
                runs[key, name] = ([python, "-m", "simulator", *cmd, *ideal], env, repeats,
                                   False)
            for key, workload in (("synth-r18", "resnet18"), ("synth-vgg", "vgg16")):
                if key == "synth-vgg" and args.quick:
                    continue
                # generating the data: the cache off
                runs[key, name] = ([python, "-c", _SYNTH, workload],
                                   {**env, "SASIM_DATA_CACHE": "off"},
                                   args.vgg_repeats if key == "synth-vgg" else args.repeats,
                                   True)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for (key, name), (argv_, env, _, inner) in runs.items():
            if not inner:
                _run_rusage(argv_, env, tmp)  # untimed warm-up (numba's cache)
        for repeat in range(max(r for _, _, r, _ in runs.values())):
            for (key, name), (argv_, env, repeats, inner) in runs.items():
                if repeat < repeats:
                    elapsed, peak, out = _run_rusage(argv_, env, tmp)
                    samples.setdefault((key, name), []).append(
                        (float(out.split()[-1]), float("nan")) if inner else (elapsed, peak))
        rows: dict[str, dict[str, dict]] = {}
        for (key, name), values in samples.items():
            times = [t for t, _ in values]
            rows.setdefault(key, {})[name] = {"min": min(times),
                                              "median": statistics.median(times),
                                              "peak_mb": max(p for _, p in values)}
        env = _env(REPO, tmp / "numba-this")
        bare = _timed([python, "-c", "pass"], env, tmp, args.repeats)
        floors = {"resnet18": float(_run_rusage([python, "-c", _FLOOR, "resnet18", "3"],
                                                env, tmp)[2].split()[-1])}
        if not args.quick:
            floors["vgg16"] = float(_run_rusage([python, "-c", _FLOOR, "vgg16", "1"],
                                                env, tmp)[2].split()[-1])
    load = os.getloadavg()
    print(f"sasim start-up and run time, whole processes (min / median of {args.repeats}; "
          f"VGG-16: {args.vgg_repeats}); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{os.cpu_count()} cores")
    print(f"bare interpreter start-up: {bare['min']:.3f} s (median {bare['median']:.3f} s)")
    for workload, floor in floors.items():
        print(f"float64 GEMM floor, {workload}: {floor:.3f} s (best of "
              f"{3 if workload == 'resnet18' else 1})")
    print()
    print(f"{'run':<11} {'this s (med)':>15} {'MB':>6}   {'previous s (med)':>17} {'MB':>6}"
          f"   {'speed-up':>8}   target")
    for key, sides in rows.items():
        this, prev = sides["this"], sides["previous"]
        cells = []
        for side in (this, prev):
            mb = "" if side["peak_mb"] != side["peak_mb"] else f"{side['peak_mb']:.0f}"
            cells.append((f"{side['min']:.3f} ({side['median']:.3f})", mb))
        print(f"{key:<11} {cells[0][0]:>15} {cells[0][1]:>6}   {cells[1][0]:>17} {cells[1][1]:>6}"
              f"   {prev['min'] / this['min']:>7.1f}x   {TARGETS[key]}")
    floor = floors["resnet18"] + bare["min"]
    r18 = rows["sysmt-r18"]["this"]["min"]
    print()
    print(f"sysmt-r18: {r18:.3f} s = {r18 / floor:.1f}x (floor {floors['resnet18']:.3f} s + "
          f"start-up {bare['min']:.3f} s); {(r18 - bare['min']) / floors['resnet18']:.1f}x the "
          f"floor after start-up")
    with tempfile.TemporaryDirectory(prefix="sasim-bench-aot-") as tmp:
        compiled = _compiled_table(python, Path(tmp), args.repeats)
    print()
    for key, what in (("sysmt-r18", "memory=ideal"), ("sysmt-chip", "the shipped chip's memory")):
        run = compiled[key]["min"]
        print(f"{key} ({what}), compiled table: {run:.3f} s = {run / floor:.1f}x (floor + "
              f"start-up {floor:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
