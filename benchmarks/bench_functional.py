#!/usr/bin/env python3
"""Functional simulation speed: SySMT / dense PEs against the exact-GEMM floor, in one run.

For every layer of the shipped ResNet-18 (batch 1, 1.81 G MACs) it generates seeded synthetic
INT8 GEMM operands per group (outside every timed region):

- A: post-ReLU-like activations, 0..255, about half zeros, non-zero magnitudes
  ``round(|Laplace(0, 24)|)`` clipped to 255 (heavy-tailed; some exceed a nibble);
  layers with ``activation_signed`` (the image input of conv1) get ``round(Laplace(0, 24))``
  clipped to -128..127 instead;
- B: weights ``round(Laplace(0, 12))`` clipped to -127..127.

It then times, interleaved, repeated ``--repeats`` times and taking each design's minimum:

- floor: ``A.astype(float64) @ B.astype(float64)`` per group, all layers: the exact products,
  the least any simulator that produces the outputs must pay;
- dense, sysmt-2T, sysmt-4T: ``PE.simulate_gemm(layer, A, B)`` per group, all layers
  (everything the functional model does: gathering, trimming, kernel, counters).

It prints a table (design, seconds, ratio to the floor) and PASS/FAIL of SySMT-4T against the
target ratio (4x). Usage (from the repo root): ``make bench`` or
``.venv/bin/python benchmarks/bench_functional.py [--repeats 3] [--target 4]``.
numba uses its default thread count (the machine's cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simulator import api
from simulator.hw.pe.dense import DenseOptions, DensePE
from simulator.hw.pe.sysmt import SySMTOptions, SySMTPE

SEED = 2024


def synthetic_operands(workload, seed: int = SEED) -> list[tuple[object, list[tuple]]]:
    """Per layer: (layer, [(A, B) int64 per group]) with the distributions above."""
    rng = np.random.default_rng(seed)
    out = []
    for layer in workload.layers:
        g = layer.gemm
        groups = []
        for _ in range(g.groups):
            mag = np.rint(rng.laplace(0.0, 24.0, (g.m, g.k)))
            if getattr(layer, "activation_signed", False):
                a = np.clip(mag, -128, 127)
            else:
                a = np.clip(np.abs(mag), 0, 255) * (rng.random((g.m, g.k)) < 0.5)
            b = np.clip(np.rint(rng.laplace(0.0, 12.0, (g.k, g.n))), -127, 127)
            groups.append((a.astype(np.int64), b.astype(np.int64)))
        out.append((layer, groups))
    return out


def time_floor(data) -> float:
    start = time.perf_counter()
    for _, groups in data:
        for a, b in groups:
            a.astype(np.float64) @ b.astype(np.float64)
    return time.perf_counter() - start


def time_pe(pe, data) -> float:
    start = time.perf_counter()
    for layer, groups in data:
        for a, b in groups:
            pe.simulate_gemm(layer, a, b)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", type=float, default=4.0)
    args = parser.parse_args(argv)

    workload = api.load_workload("resnet18")
    data = synthetic_operands(workload)
    macs = sum(layer.gemm.macs for layer in workload.layers)
    designs = {
        "dense": DensePE(DenseOptions()),
        "sysmt-2T": SySMTPE(SySMTOptions(threads=2)),
        "sysmt-4T": SySMTPE(SySMTOptions(threads=4)),
    }
    # Warm-up: compile / load the numba kernels on a small GEMM.
    small_layer, small_groups = data[-1]
    for pe in designs.values():
        pe.simulate_gemm(small_layer, small_groups[0][0][:8], small_groups[0][1])

    best = dict.fromkeys(["floor", *designs], float("inf"))
    for _ in range(args.repeats):
        best["floor"] = min(best["floor"], time_floor(data))
        for name, pe in designs.items():
            best[name] = min(best[name], time_pe(pe, data))

    a_zero = np.mean([np.mean(a == 0) for _, gs in data for a, _ in gs])
    print(f"ResNet-18 batch 1: {len(data)} layers, {macs / 1e9:.3f} G MACs, "
          f"activation zeros {a_zero:.1%}, best of {args.repeats} interleaved runs")
    print(f"{'design':<10} {'seconds':>9} {'x floor':>8}")
    for name, seconds in best.items():
        print(f"{name:<10} {seconds:>9.3f} {seconds / best['floor']:>8.2f}")
    ratio = best["sysmt-4T"] / best["floor"]
    verdict = "PASS" if ratio <= args.target else "FAIL"
    print(f"{verdict}: sysmt-4T at {ratio:.2f}x the floor (target <= {args.target:g}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
