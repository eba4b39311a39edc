#!/usr/bin/env python3
"""Cross-layer prefetch (docs/memory-model.md, "Cross-layer prefetch"): the figures and the cost.

``figures`` (in one process): ResNet-18, timing only, on every shipped 16x16 design that runs
a shape-only ResNet-18 with prefetch, ideal DRAM, unbounded buffers, latency 100 (and the
same at 32 B/cycle), with ``memory.prefetch`` none and all: the first layer's stall, the
layers after it that still wait for their first tile, their stalls, and the run's cycles.
Then the three modes on ResNet-18 with 64/64/16 KiB buffers at 8 B/cycle.

``speed`` (whole processes, side by side): a transformer run (GPT-2 prefill with
256/256/64 KiB buffers at 32 B/cycle) and ResNet-50 with 64/64/16 KiB at 16 B/cycle, both on
the ideal memory (``memory=ideal`` in this tree; the previous tree, which does not know it,
had that memory by default), on this
tree (default prefetch: all), on this tree with ``memory.prefetch=none``, and on
``--previous`` (the commit before prefetch, default a67b908, exported with ``git archive``).

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_prefetch.py [--repeats 3] [--skip-speed]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_startup import REPO, _env, _run_rusage  # noqa: E402

sys.path.insert(0, str(REPO))
from simulator import api  # noqa: E402

#: Not the trained ZAP design (it needs a trace's predictors) nor the coded one (coded
#: activations run each layer alone).
EXCLUDED = ("zap_os_sa_16x16", "os_sa_16x16_codec_b6")
# memory=ideal first (this tree; the previous tree's runs drop it): the shipped chips have
# 32 KiB buffers and LPDDR5 since, and a DRAM preset refuses the bandwidth key; the figures
# were measured on the unbounded memory with the keys below (docs/memory-model.md, "Ideal
# memory")
RUNS = {
    "gpt2_prefill": ["run", "--arch", "os_sa_16x16", "--workload", "gpt2_prefill",
                     "--timing-only", "--set", "memory=ideal", "--set", "memory.ifmap_kib=256",
                     "--set", "memory.filter_kib=256", "--set", "memory.ofmap_kib=64",
                     "--set", "memory.dram_bandwidth_bytes_per_cycle=32"],
    "resnet50": ["run", "--arch", "os_sa_16x16", "--workload", "resnet50", "--timing-only",
                 "--set", "memory=ideal", "--set", "memory.ifmap_kib=64",
                 "--set", "memory.filter_kib=64",
                 "--set", "memory.ofmap_kib=16",
                 "--set", "memory.dram_bandwidth_bytes_per_cycle=16"],
}


def archs_16() -> list[str]:
    return sorted(p.stem for p in api.shipped_archs()
                  if p.stem.endswith("16x16") and p.stem not in EXCLUDED)


def _run(arch: str, workload, overrides: list[str]):
    return api.simulate(api.load_arch(arch, overrides), workload, functional=False)


def hidden_first_tiles() -> bool:
    """The table of first-tile stalls; True when no layer after the first waits for its
    first tile with unbounded bandwidth."""
    workload = api.load_workload("resnet18")
    ok = True
    for label, memory in (("latency 100, unbounded bandwidth", []),
                          ("latency 100, 32 B/cycle",
                           ["memory.dram_bandwidth_bytes_per_cycle=32"])):
        print(f"ResNet-18, timing only, ideal DRAM, unbounded buffers, {label}")
        print(f"{'arch':<22} {'first layer':>11} {'later waits':>11} {'later stalls':>12} "
              f"{'(none)':>9} {'cycles all':>12} {'none':>12}")
        for arch in archs_16():
            sets = ["memory=ideal", "memory.dram_latency_cycles=100", *memory]
            none = _run(arch, workload, sets + ["memory.prefetch=none"])
            full = _run(arch, workload, sets + ["memory.prefetch=all"])
            waits = sum(layer.prefetch_cycles > 0 for layer in full.layers[1:])
            if not memory and waits:
                ok = False
            print(f"{arch:<22} {full.layers[0].stall_cycles:>11,} {waits:>11} "
                  f"{sum(l.stall_cycles for l in full.layers[1:]):>12,} "
                  f"{sum(l.stall_cycles for l in none.layers[1:]):>9,} "
                  f"{full.total_cycles:>12,} {none.total_cycles:>12,}")
        print()
    print("ResNet-18 on os_sa_16x16, 64/64/16 KiB buffers, 8 B/cycle, latency 100")
    print(f"{'prefetch':<9} {'cycles':>12} {'stalls':>11} {'prefetch':>9} {'peak ofmap B':>12}")
    bounded = ["memory=ideal", "memory.ifmap_kib=64", "memory.filter_kib=64",
               "memory.ofmap_kib=16", "memory.dram_bandwidth_bytes_per_cycle=8",
               "memory.dram_latency_cycles=100"]
    for mode in ("none", "weights", "all"):
        result = _run("os_sa_16x16", workload, bounded + [f"memory.prefetch={mode}"])
        print(f"{mode:<9} {result.total_cycles:>12,} "
              f"{sum(l.stall_cycles for l in result.layers):>11,} "
              f"{sum(l.prefetch_cycles for l in result.layers):>9,} "
              f"{max(l.peak_ofmap_bytes for l in result.layers):>12,}")
    return ok


def _without_ideal(cmd: list[str]) -> list[str]:
    """``cmd`` for the previous tree: its defaults are the unbounded memory, and it knows no
    ``memory=ideal``."""
    at = cmd.index("memory=ideal")
    return cmd[:at - 1] + cmd[at + 1:]


def _export(commit: str, into: Path) -> Path:
    """The tree of ``commit`` (``git archive``: the repository is not touched)."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into / "simulator")],
                   check=True)
    return into


def speed(repeats: int, previous: str) -> None:
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="sasim-prefetch-") as tmp:
        tmp = Path(tmp)
        subprocess.run([python, "-m", "compileall", "-q", str(REPO / "simulator")], check=True)
        old = _export(previous, tmp / "previous")
        table = {}
        for key, cmd in RUNS.items():
            runs = {"this": ([python, "-m", "simulator", *cmd], _env(REPO, tmp / "n-this")),
                    "none": ([python, "-m", "simulator", *cmd, "--set", "memory.prefetch=none"],
                             _env(REPO, tmp / "n-this")),
                    "previous": ([python, "-m", "simulator", *_without_ideal(cmd)],
                                 _env(old, tmp / "n-prev"))}
            for argv, env in runs.values():  # numba's cache, untimed
                _run_rusage(argv, env, tmp)
            names = list(runs)
            times: dict[str, list[float]] = {name: [] for name in names}
            for round_ in range(repeats):  # the order rotated each round
                for name in names[round_ % 3:] + names[:round_ % 3]:
                    argv, env = runs[name]
                    times[name].append(_run_rusage(argv, env, tmp)[0])
            table[key] = {n: (min(v), statistics.median(v)) for n, v in times.items()}
    load = os.getloadavg()
    print(f"\nwhole processes, min (median) of {repeats} s; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores; previous = {previous}")
    print(f"{'run':<13} {'prefetch all':>15} {'prefetch none':>15} {'previous':>15} "
          f"{'all/prev':>8} {'none/prev':>9}")
    for key, sides in table.items():
        this, none, prev = sides["this"], sides["none"], sides["previous"]
        print(f"{key:<13} {this[0]:>6.2f} ({this[1]:>6.2f}) {none[0]:>6.2f} ({none[1]:>6.2f}) "
              f"{prev[0]:>6.2f} ({prev[1]:>6.2f}) {this[0] / prev[0]:>7.2f}x "
              f"{none[0] / prev[0]:>8.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--previous", default="a67b908", help="the commit before prefetch")
    parser.add_argument("--skip-speed", action="store_true", help="only the figures")
    args = parser.parse_args(argv)
    ok = hidden_first_tiles()
    if not args.skip_speed:
        speed(args.repeats, args.previous)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
