#!/usr/bin/env python3
"""Functional simulation speed: SySMT / dense PEs against the exact-GEMM floor, in one run.

For every layer of the shipped ResNet-18 (batch 1, 1.81 G MACs) it generates seeded synthetic
INT8 GEMM operands per group (outside every timed region):

- A: post-ReLU-like activations, 0..255, about half zeros, non-zero magnitudes
  ``round(|Laplace(0, 24)|)`` clipped to 255 (heavy-tailed; some exceed a nibble);
  layers with ``activation_signed`` (the image input of conv1) get ``round(Laplace(0, 24))``
  clipped to -128..127 instead;
- B: weights ``round(Laplace(0, 12))`` clipped to -127..127.

It then times, ``--repeats`` times, each design right after the floor (so a repeat's ratios
share the machine's load of that moment):

- floor: ``A.astype(float64) @ B.astype(float64)`` per group, all layers: the exact products,
  the least any simulator that produces the outputs must pay;
- dense, sysmt-2T, sysmt-4T: ``PE.simulate_gemm(layer, A, B)`` per group, all layers
  (everything the functional model does: conversion, trimming, kernel, counters).

It prints, per design, the best time over the repeats and its ratio to the best floor, and
the median over the repeats of the per-repeat ratio (robust when other jobs share the
machine); then PASS/FAIL of SySMT-4T against the target ratio (4x), the threads both sides
used, and the memory: the peak of numpy allocations per design (tracemalloc, one untimed
pass; the kernels' small per-thread buffers are not included) and the process's peak RSS.

Usage (from the repo root): ``make bench`` or
``.venv/bin/python benchmarks/bench_functional.py [--repeats 5] [--target 4] [--threads N]``.
``--threads N`` limits both sides to N threads: BLAS through threadpoolctl (if installed) and
the SySMT kernel's thread pool through numba's thread count (``NUMBA_NUM_THREADS``); by
default both use the machine's cores.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import time
import tracemalloc

import numba
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


def run_floor(data) -> None:
    for _, groups in data:
        for a, b in groups:
            a.astype(np.float64) @ b.astype(np.float64)


def run_pe(pe, data) -> None:
    for layer, groups in data:
        for a, b in groups:
            pe.simulate_gemm(layer, a, b)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def traced_peak_mb(fn, *args) -> float:
    """Peak of traced (numpy and Python) allocations during ``fn(*args)``, in MB."""
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def numpy_blas_threads() -> str:
    """numpy's BLAS library and its thread count, as threadpoolctl reports them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    # Other BLAS copies may be loaded (scipy's, by numba); numpy's is the one in numpy.libs.
    pools = [p for p in threadpool_info()
             if p.get("user_api") == "blas" and "numpy" in p.get("filepath", "")]
    return ", ".join(f"{p['internal_api']} {p['num_threads']} threads" for p in pools) or "?"


def thread_limits(threads: int | None) -> contextlib.AbstractContextManager:
    """Limit BLAS and the SySMT kernels to ``threads`` threads (no limit for None)."""
    if threads is None:
        return contextlib.nullcontext()
    numba.config.NUMBA_NUM_THREADS = threads
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        sys.exit("--threads needs threadpoolctl to limit BLAS")
    return threadpool_limits(limits=threads, user_api="blas")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both the floor's BLAS and the SySMT kernels")
    args = parser.parse_args(argv)

    workload = api.load_workload("resnet18")
    data = synthetic_operands(workload)
    macs = sum(layer.gemm.macs for layer in workload.layers)
    designs = {
        "dense": DensePE(DenseOptions()),
        "sysmt-2T": SySMTPE(SySMTOptions(threads=2)),
        "sysmt-4T": SySMTPE(SySMTOptions(threads=4)),
    }
    # Warm-up: compile / load the numba kernels (and whatever libraries they load).
    for pe in designs.values():
        run_pe(pe, data[-2:])
    with thread_limits(args.threads):
        times: dict[str, list[float]] = {name: [] for name in ["floor", *designs]}
        for _ in range(args.repeats):
            for name, pe in designs.items():
                times["floor"].append(timed(run_floor, data))
                times[name].append(timed(run_pe, pe, data))
        peaks = {"floor": traced_peak_mb(run_floor, data)}
        peaks.update({name: traced_peak_mb(run_pe, pe, data) for name, pe in designs.items()})
        blas = numpy_blas_threads()

    # Each design's repeats follow a floor measurement: pair them for per-repeat ratios.
    floors = {name: times["floor"][i::len(designs)] for i, name in enumerate(designs)}
    best_floor = min(times["floor"])
    a_zero = np.mean([np.mean(a == 0) for _, gs in data for a, _ in gs])
    print(f"ResNet-18 batch 1: {len(data)} layers, {macs / 1e9:.3f} G MACs, "
          f"activation zeros {a_zero:.1%}, {args.repeats} repeats")
    print(f"{'design':<10} {'best s':>8} {'x floor':>8} {'median x':>9} {'peak MB':>8}")
    print(f"{'floor':<10} {best_floor:>8.3f} {1:>8.2f} {1:>9.2f} {peaks['floor']:>8.1f}")
    medians = {}
    for name in designs:
        medians[name] = statistics.median(t / f for t, f in zip(times[name], floors[name]))
        print(f"{name:<10} {min(times[name]):>8.3f} {min(times[name]) / best_floor:>8.2f} "
              f"{medians[name]:>9.2f} {peaks[name]:>8.1f}")
    ratio = min(times["sysmt-4T"]) / best_floor
    verdict = "PASS" if max(ratio, medians["sysmt-4T"]) <= args.target else "FAIL"
    print(f"{verdict}: sysmt-4T at {ratio:.2f}x the floor (median {medians['sysmt-4T']:.2f}x; "
          f"target <= {args.target:g}x)")
    print(f"threads: floor (and dense) numpy BLAS {blas}; SySMT kernels "
          f"{numba.config.NUMBA_NUM_THREADS} threads")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(f"process peak RSS {rss_mb:.0f} MB (operands of all layers included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
