#!/usr/bin/env python3
"""Issue 14's speed targets for LLMs, measured as whole processes, side by side with a
previous commit.

- ``timing``: ``sasim run --arch os_sa_16x16 --workload llama2_7b_prefill --timing-only``
  (Llama-2-7B prefill, 2048 tokens, all 32 blocks and the LM head; target < 2 s);
- ``block``: ``sasim run --arch sysmt_2t_16x16 --workload
  benchmarks/llama2_7b_prefill_block.yaml`` (functional SySMT-2T on one full block of that
  prefill, synthetic data: counters, error metrics, energy; target within 4x of the block's
  float64 GEMM floor);

and the references, each in its own process: the bare interpreter's start-up
(``python -c pass``) and the float64 GEMM floor of the block: every GEMM group of the
block's nine array layers (q/k/v/o projections, 32 scores and 32 context matmuls, gate, up,
down) as a numpy float64 product of the same synthetic operands. The operands are generated
and lowered outside the timed region; as in ``benchmarks/gemm_timing.py`` and
``bench_startup.py`` the timed region converts each group's integer operands to float64 and
multiplies them (the floor of the target); the product alone (operands already float64) is
printed beside it. A floor process runs in every round of the block's repeats.

Every figure is a fresh process started from a temporary directory (only ``PYTHONPATH``
decides which sasim is imported). The previous tree is a git worktree of ``--previous``
(default: the merge of the transformer work, 8a664e2) in a temporary directory, with its
own numba cache; the block's YAML is this tree's file for both. Both trees are
byte-compiled first and each command runs once untimed before the timed repeats (numba's
cache is filled: the figures are run time, not first compilation), then the repeats
alternate between the trees (both see the same load). Peak memory is each
process's maximum resident set (``wait4``).

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_llm.py [--repeats 5] [--block-repeats 1]
        [--no-previous]

The machine's load average is printed: on a shared machine only the ratios of one run are
meaningful. Where the block's time goes: ``benchmarks/profile_sysmt_run.py --arch
sysmt_2t_16x16 --workload benchmarks/llama2_7b_prefill_block.yaml --layers``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_startup import _env, _run_rusage, _timed, trees  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BLOCK = REPO / "benchmarks" / "llama2_7b_prefill_block.yaml"
PREVIOUS = "8a664e2"
#: this tree's runs pin the unbounded memory (the shipped chips are bounded since; the previous
#: commit knows no `memory=ideal` and its defaults are that memory): docs/memory-model.md,
#: "Ideal memory"
IDEAL = ["--set", "memory=ideal"]

_FLOOR = """
import sys, time
import numpy as np
from simulator import api
from simulator.workloads.lowering import im2col, weights_to_gemm
workload = api.with_synthetic_data(api.load_workload(sys.argv[1]))
cast = product = 0.0
for layer in workload.layers:
    if not layer.is_gemm:
        continue
    t = workload.tensors(layer.name)
    a, b = im2col(t.input, layer, None), weights_to_gemm(t.weight, layer)
    for g in range(a.shape[0]):
        start = time.perf_counter()
        a[g].astype(np.float64) @ b[g].astype(np.float64)
        cast += time.perf_counter() - start
        af, bf = a[g].astype(np.float64), b[g].astype(np.float64)
        start = time.perf_counter()
        af @ bf
        product += time.perf_counter() - start
        del af, bf
    del a, b, t
print(cast, product)
"""


def _interleaved(runs: dict[str, list[str]], envs: dict[str, dict[str, str]], cwd: Path,
                 repeats: int, each_round=None) -> dict[str, dict]:
    """Each tree's command once untimed (numba's cache), then ``repeats`` rounds that run
    every tree's command once (and ``each_round()``), so that all see the same load."""
    for name, argv in runs.items():
        _run_rusage(argv, envs[name], cwd)
    times: dict[str, list[float]] = {name: [] for name in runs}
    peaks: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, argv in runs.items():
            elapsed, peak, _ = _run_rusage(argv, envs[name], cwd)
            times[name].append(elapsed)
            peaks[name].append(peak)
        if each_round is not None:
            each_round()
    return {name: {"min": min(times[name]), "median": statistics.median(times[name]),
                   "peak_mb": max(peaks[name])} for name in runs}


def _floor(env: dict[str, str], cwd: Path, block: Path,
           floors: list[tuple[float, float, float]]) -> None:
    """One floor process: appends (cast + product seconds, product seconds, peak MB)."""
    _, mb, out = _run_rusage([sys.executable, "-c", _FLOOR, str(block)], env, cwd)
    cast, product = (float(x) for x in out.split()[-2:])
    floors.append((cast, product, mb))


def _cell(side: dict | None) -> str:
    if side is None:
        return f"{'-':>24}"
    return f"{side['min']:>8.3f} ({side['median']:7.3f}) {side['peak_mb']:6.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timing-only repeats")
    parser.add_argument("--block-repeats", type=int, default=1,
                        help="rounds of the functional block and of its floor")
    parser.add_argument("--previous", default=PREVIOUS, help="commit to compare with")
    parser.add_argument("--no-previous", action="store_true", help="this tree only")
    parser.add_argument("--block", type=Path, default=BLOCK,
                        help="the block's workload YAML (default: %(default)s)")
    args = parser.parse_args(argv)
    block = args.block.resolve()
    python = sys.executable
    commands = {
        "timing": (["run", "--arch", "os_sa_16x16", "--workload", "llama2_7b_prefill",
                    "--timing-only"], args.repeats),
        "block": (["run", "--arch", "sysmt_2t_16x16", "--workload", str(block)],
                  args.block_repeats),
    }
    rows: dict[str, dict[str, dict]] = {}
    previous = None if args.no_previous else args.previous
    with trees(previous, "sasim-bench-llm-") as (tmp, timed_trees):
        envs = {name: _env(tree, tmp / f"numba-{name}") for name, tree in timed_trees.items()}
        floors: list[tuple[float, float, float]] = []
        for key, (cmd, repeats) in commands.items():
            runs = {name: [python, "-m", "simulator", *cmd, *(IDEAL if name == "this" else []),
                           "--out", str(tmp / f"out-{name}-{key}")] for name in timed_trees}
            rows[key] = _interleaved(
                runs, envs, tmp, repeats,
                (lambda: _floor(envs["this"], tmp, block, floors)) if key == "block" else None)
        bare = _timed([python, "-c", "pass"], envs["this"], tmp, args.repeats)
        floor, floor_mm = min(f[0] for f in floors), min(f[1] for f in floors)
        floor_mb = max(f[2] for f in floors)
    load = os.getloadavg()
    print(f"LLM speed, whole processes (min (median) of {args.repeats}; block: "
          f"{args.block_repeats}); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{os.cpu_count()} cores")
    print(f"bare interpreter start-up: {bare['min']:.3f} s")
    print(f"float64 GEMM floor of the block: {floor:.3f} s with the float64 casts, "
          f"{floor_mm:.3f} s products alone (best of {args.block_repeats}; process peak "
          f"{floor_mb:.0f} MB)")
    print()
    print(f"{'run':<7} {'this s (med)':>17} {'MB':>6}   {'previous s (med)':>17} {'MB':>6}"
          f"   {'speed-up':>8}")
    for key, sides in rows.items():
        this, prev = sides["this"], sides.get("previous")
        ratio = f"{prev['min'] / this['min']:>7.2f}x" if prev else f"{'-':>8}"
        print(f"{key:<7} {_cell(this)}   {_cell(prev)}   {ratio}")
    print()
    timing = rows["timing"]["this"]["min"]
    print(f"timing: {timing:.3f} s (target < 2 s: {'met' if timing < 2 else 'NOT met'})")
    for name, side in rows["block"].items():
        whole = side["min"]
        print(f"block ({name}): {whole:.3f} s = {whole / floor:.2f}x the floor "
              f"({whole / floor_mm:.2f}x the products alone); after start-up "
              f"{(whole - bare['min']) / floor:.2f}x; peak {side['peak_mb']:.0f} MB "
              f"(target <= 4x: {'met' if whole <= 4 * floor else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
