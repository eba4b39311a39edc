#!/usr/bin/env python3
"""Compressed operands (docs/memory-model.md, "Compressed operands"): the figures and the cost.

``ratio`` (in one process): SWIS with N = 3, G = 8 (``swis_g8_n3_16x16``) on ResNet-18
(synthetic weights), timing only, without and with ``memory.compression.weights``: the
stored bits per weight (N + 1 + 3N/G = 5.125 for whole groups) against the DRAM weight bytes
the runs move, with unbounded memory and with 64/64/16 KiB buffers at 8 B/cycle; then the
zero-compressed activation formats on ResNet-18 (synthetic data) and on the digits trace.

``speed`` (whole processes, side by side): runs that do not use compression, on this tree
and on ``--previous`` (the commit before compressed operands, default 1b21455): ResNet-18
timing-only on the dense 16x16 array, ResNet-18 functional on SySMT-2T (synthetic data,
counters and energy); and the same runs with compression on this tree.

Usage (from the repo root)::

    .venv/bin/python benchmarks/bench_compression.py [--repeats 3] [--skip-speed]

Every timed process starts from a temporary directory with ``PYTHONPATH`` naming the tree;
one untimed run of each first fills numba's cache, then the runs take turns, the order
rotated each round. The load average is printed: on a shared machine
only side-by-side ratios of one run mean something.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_startup import REPO, _env, _run_rusage, trees  # noqa: E402

sys.path.insert(0, str(REPO))
from simulator import api  # noqa: E402

# each layer alone (the figures of docs/memory-model.md, "Compressed operands", were measured
# so; cross-layer prefetch has its own benchmark, bench_prefetch.py)
# memory=ideal first: the shipped chips have 32 KiB buffers and LPDDR5 since, and a DRAM
# preset refuses the bandwidth key; the figures were measured on the unbounded memory with
# the keys below (docs/memory-model.md, "Ideal memory")
BOUNDED = ["memory=ideal", "memory.ifmap_kib=64", "memory.filter_kib=64", "memory.ofmap_kib=16",
           "memory.dram_bandwidth_bytes_per_cycle=8", "memory.dram_latency_cycles=100",
           "memory.prefetch=none"]
PLAIN = {
    "r18 timing-only": ["run", "--arch", "os_sa_16x16", "--workload", "resnet18",
                        "--timing-only"],
    "r18 sysmt-2t": ["run", "--arch", "sysmt_2t_16x16", "--workload", "resnet18"],
}
COMPRESSED = {key: [*cmd, "--set", "memory=ideal", "--set", "memory.compression.activations=rle"]
              for key, cmd in PLAIN.items()}


def _run(arch: str, workload: str, overrides: list[str], functional: bool = False):
    return api.simulate(api.load_arch(arch, overrides), api.load_workload(workload),
                        functional=functional)


def swis_ratio() -> bool:
    """The SWIS table; True when every weight-byte ratio is within 1 % of the stored bits."""
    print("SWIS N = 3, G = 8 (swis_g8_n3_16x16) on ResNet-18, timing only, synthetic weights")
    print(f"{'memory':<34} {'bits/weight':>11} {'weight bytes, words':>19} "
          f"{'compressed':>12} {'moved':>7} {'stored/8':>8} {'off':>7}   "
          f"{'cycles words':>12} {'compressed':>12}")
    ok = True
    notes = []
    for label, memory in (("unbounded", ["memory=ideal"]),
                          ("64/-/16 KiB, 8 B/cycle, 100 lat", [m for m in BOUNDED
                                                               if "filter" not in m]),
                          ("64/64/16 KiB, 8 B/cycle, 100 lat", BOUNDED)):
        words = _run("swis_g8_n3_16x16", "resnet18", memory)
        packed = _run("swis_g8_n3_16x16", "resnet18",
                      [*memory, "memory.compression.weights=true"])
        bits = packed.summary()["compression"]["filter"]["stored_bits_per_value"]
        before = sum(layer.dram_filter_read_bytes for layer in words.layers)
        after = sum(layer.dram_filter_read_bytes for layer in packed.layers)
        off = (after / before) / (bits / 8) - 1
        changed = sum(a.filter_reuse != b.filter_reuse
                      for a, b in zip(words.layers, packed.layers))
        if changed:  # smaller tiles fit where words did not: fewer re-reads, not a ratio
            notes.append(f"{label}: the filter reuse differs in {changed} layers (compressed "
                         f"tiles fit where words did not), so fewer bytes are re-read")
        else:
            ok &= abs(off) < 0.01
        print(f"{label:<34} {bits:>11.4f} {before:>19,} {after:>12,} {after / before:>7.4f} "
              f"{bits / 8:>8.4f} {100 * off:>+6.2f}%   {words.total_cycles:>12,} "
              f"{packed.total_cycles:>12,}{'  *' if changed else ''}")
    for note in notes:
        print(f"* {note}")
    print(f"within 1 % of the stored bits wherever the reuse is the same: "
          f"{'yes' if ok else 'NO'}")
    return ok


def activation_formats() -> None:
    """Stored bits per input value and DRAM bytes saved per format."""
    print("\nzero-compressed activations (stored bits per value of the compressed layer "
          "inputs; DRAM bytes of the compressed transfers against the same as words)")
    print(f"{'workload':<28} {'format':<8} {'layers':>6} {'bits/value':>10} "
          f"{'DRAM words':>12} {'compressed':>12} {'saved':>7}   {'stalls words':>12} "
          f"{'compressed':>12}")
    for workload, functional in (("resnet18", False), ("digits_int8", True)):
        words = _run("os_sa_16x16", workload, BOUNDED, functional)
        for fmt in ("bitmask", "rle"):
            packed = _run("os_sa_16x16", workload,
                          [*BOUNDED, f"memory.compression.activations={fmt}"], functional)
            totals = packed.summary()["compression"]
            inputs = totals["ifmap"]
            raw, moved = totals["dram_raw_bytes"], totals["dram_compressed_bytes"]
            source = "synthetic" if packed.workload.data_kind == "synthetic" else "trace"
            print(f"{workload + ' (' + source + ')':<28} {fmt:<8} "
                  f"{0 if inputs is None else inputs['layers']:>6} "
                  f"{0 if inputs is None else inputs['stored_bits_per_value']:>10.3f} "
                  f"{raw:>12,} {moved:>12,} {100 * (1 - moved / raw):>6.1f}%   "
                  f"{words.stall_cycles:>12,} {packed.stall_cycles:>12,}")


def _interleaved(runs: dict[str, tuple[list[str], dict[str, str]]], cwd: Path,
                 repeats: int) -> dict[str, dict]:
    """Each run once untimed (numba's cache), then ``repeats`` rounds of every run, the
    order rotated each round: no side always goes first after a pause or a warm-up."""
    for argv, env in runs.values():
        _run_rusage(argv, env, cwd)
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            argv, env = runs[name]
            times[name].append(_run_rusage(argv, env, cwd)[0])
    return {name: {"min": min(v), "median": statistics.median(v)} for name, v in times.items()}


def speed(repeats: int, previous: str) -> None:
    python = sys.executable
    with trees(previous, "sasim-compress-") as (tmp, timed_trees):
        plain: dict[str, dict[str, dict]] = {}
        packed: dict[str, dict] = {}
        # the two trees and the compressed run interleaved round by round: the load drifts
        # less between the sides of one ratio
        for key, cmd in PLAIN.items():
            # this tree pins the unbounded memory, the previous one's default (it knows no
            # memory=ideal)
            runs = {name: ([python, "-m", "simulator", *cmd,
                            *(["--set", "memory=ideal"] if name == "this" else [])],
                           _env(tree, tmp / f"numba-{name}"))
                    for name, tree in timed_trees.items()}
            runs["compressed"] = ([python, "-m", "simulator", *COMPRESSED[key]],
                                  _env(REPO, tmp / "numba-this"))
            timed = _interleaved(runs, tmp, repeats)
            packed[key] = timed.pop("compressed")
            plain[key] = timed
    load = os.getloadavg()
    print(f"\nrun times, whole processes (min (median) of {repeats} s); load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores")
    print(f"{'run':<17} {'no compression':>15} {'previous':>15} {'this/prev':>9}   "
          f"{'with rle':>15} {'rle/none':>8}")
    for key, sides in plain.items():
        this, prev = sides["this"], sides["previous"]
        z = packed[key]
        print(f"{key:<17} {this['min']:>6.3f} ({this['median']:.3f}) "
              f"{prev['min']:>6.3f} ({prev['median']:.3f}) "
              f"{this['min'] / prev['min']:>8.2f}x   {z['min']:>6.3f} ({z['median']:.3f}) "
              f"{z['min'] / this['min']:>7.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--previous", default="1b21455",
                        help="the commit before compressed operands")
    parser.add_argument("--skip-speed", action="store_true", help="only the figures")
    args = parser.parse_args(argv)
    ok = swis_ratio()
    activation_formats()
    if not args.skip_speed:
        speed(args.repeats, args.previous)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
