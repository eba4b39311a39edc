#!/usr/bin/env python3
"""SWIS and bit-serial speed and storage figures, in one run.

Sections (``--section``, default all):

- ``decompose``: the SWIS decomposition of every ResNet-18 weight (batch-1 synthetic operands
  of benchmarks/bench_functional.py, 11.7 M weights) for fixed N = 3, variable N under an
  error threshold (N <= 4, 64) and under a bit budget (N <= 4, 3 bits per weight): uncached
  (the search itself) and cached (what a sweep pays once the weights were seen: hashing the
  weights and a dictionary look-up).
- ``functional``: the functional model of each design on every ResNet-18 GEMM
  (``PE.simulate_gemm``: outputs, counters, stats), against the float64 GEMM floor, best of
  ``--repeats`` interleaved runs; SWIS with its decomposition cached (it is offline work, the
  cold figure is printed beside it).
- ``storage``: on the shipped digits trace, bits per weight and weight error of SWIS (G = 8)
  and of weight truncation at N = 2..6, with the output SQNR and the cycles on a 16x16 array.

Usage (from the repo root): ``.venv/bin/python benchmarks/bench_swis.py [--section storage]``.
numba uses its default thread count (the machine's cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_functional import synthetic_operands  # noqa: E402

from simulator import api  # noqa: E402
from simulator.config.arch import ArrayConfig  # noqa: E402
from simulator.hw.pe.bitserial import BitSerialOptions, BitSerialPE  # noqa: E402
from simulator.hw.pe.swis import (SWISOptions, SWISPE, cached_decompose,  # noqa: E402
                                  clear_decomposition_cache)

from gemm_timing import time_floor, time_pe  # benchmarks/gemm_timing.py

MODES = {
    "fixed N=3": SWISOptions(shifts=3),
    "threshold N<=4, 64": SWISOptions(max_shifts=4, error_threshold=64.0),
    "budget N<=4, 3 b/w": SWISOptions(max_shifts=4, bit_budget=3.0),
}


def time_decompositions(data, options: SWISOptions) -> float:
    start = time.perf_counter()
    for _, groups in data:
        for _, b in groups:
            cached_decompose(b, options)
    return time.perf_counter() - start


def section_decompose(data) -> None:
    weights = sum(b.size for _, groups in data for _, b in groups)
    # Warm-up: compile / load the kernels on a small matrix.
    cached_decompose(data[-1][1][0][1][:16], SWISOptions(max_shifts=4, bit_budget=2.0))
    print(f"SWIS decomposition of ResNet-18's {weights / 1e6:.2f} M weights (G = 8)")
    print(f"{'mode':<20} {'uncached s':>10} {'cached s':>9} {'mean N':>7}")
    for name, options in MODES.items():
        clear_decomposition_cache()
        cold = time_decompositions(data, options)
        warm = time_decompositions(data, options)
        total_n = sum(int(cached_decompose(b, options).shifts.sum())
                      for _, groups in data for _, b in groups)
        groups = sum(cached_decompose(b, options).shifts.size
                     for _, groups in data for _, b in groups)
        print(f"{name:<20} {cold:>10.3f} {warm:>9.3f} {total_n / groups:>7.2f}")


def section_functional(data, repeats: int) -> None:
    array = ArrayConfig(rows=16, cols=16)
    designs = {
        "swis N=3": SWISPE(SWISOptions(shifts=3), array),
        "swis variable": SWISPE(MODES["threshold N<=4, 64"], array),
        "bitserial 8b": BitSerialPE(BitSerialOptions(bits=8), array),
        "truncation 4b": BitSerialPE(BitSerialOptions(bits=4), array),
    }
    small_layer, small_groups = data[-1]
    for pe in designs.values():
        pe.simulate_gemm(small_layer, small_groups[0][0][:8], small_groups[0][1])
    clear_decomposition_cache()
    cold = {name: time_pe(pe, data) for name, pe in designs.items() if name.startswith("swis")}
    best = dict.fromkeys(["floor", *designs], float("inf"))
    for _ in range(repeats):
        best["floor"] = min(best["floor"], time_floor(data))
        for name, pe in designs.items():
            best[name] = min(best[name], time_pe(pe, data))
    macs = sum(layer.gemm.macs for layer, _ in data)
    print(f"\nfunctional model, ResNet-18 batch 1 ({macs / 1e9:.3f} G MACs), 16x16 array, "
          f"best of {repeats} interleaved runs")
    print(f"{'design':<15} {'seconds':>8} {'x floor':>8}   cold cache (s, x floor)")
    for name, seconds in best.items():
        extra = ""
        if name in cold:
            extra = f"   {cold[name]:.3f}, {cold[name] / best['floor']:.2f}"
        print(f"{name:<15} {seconds:>8.3f} {seconds / best['floor']:>8.2f}{extra}")


def section_storage() -> None:
    workload = api.load_workload("digits_int8")
    print("\nstorage and weight error on the digits trace (G = 8 for SWIS), 16x16 array")
    print(f"{'design':<16} {'bits/weight':>11} {'weight MSE':>10} {'SQNR dB':>8} "
          f"{'cycles':>9}")
    for n in (2, 3, 4, 5, 6):
        for kind, arch in (("swis", "swis_g8_n3_16x16"), ("truncation", "bitserial_4b_16x16")):
            if kind == "swis" and n > 4:
                continue
            key = "pe.shifts" if kind == "swis" else "pe.bits"
            arch_n = api.load_arch(arch, ["memory=ideal", f"{key}={n}"])
            summary = api.simulate(arch_n, workload).summary()
            stats = summary["stats"]
            print(f"{kind + ' N=' + str(n):<16} {stats['storage_bits'] / stats['weights']:>11.3f} "
                  f"{stats['weight_sq_error'] / stats['weights']:>10.2f} "
                  f"{summary['sqnr_db']:>8.1f} {summary['total_cycles']:>9,}")
    exact = api.simulate(api.load_arch("bitserial_8b_16x16", ["memory=ideal"]), workload).summary()
    print(f"{'bitserial 8b':<16} {8.0:>11.3f} {0.0:>10.2f} {'exact':>8} "
          f"{exact['total_cycles']:>9,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=["all", "decompose", "functional", "storage"],
                        default="all")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.section in ("all", "decompose", "functional"):
        data = synthetic_operands(api.load_workload("resnet18"))
        if args.section in ("all", "decompose"):
            section_decompose(data)
        if args.section in ("all", "functional"):
            section_functional(data, args.repeats)
    if args.section in ("all", "storage"):
        section_storage()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
