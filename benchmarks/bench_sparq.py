#!/usr/bin/env python3
"""Functional simulation speed of the SPARQ and A4W8 PEs against the exact-GEMM floor.

For every layer of the shipped ResNet-18 (batch 1, 1.81 G MACs) it lowers the seeded synthetic
data that ``sasim run`` uses for shape-only workloads (docs/synthetic-data.md: about half the
activations zero, log-normal magnitudes, Laplacian per-channel-quantised weights) to GEMM
operands, outside every timed region, once with dense weights and once with 2:4 structured
weights (``weight_structure: 2:4``, same activations) for SPARQ's 2:4 mode.

It then times, interleaved, ``--repeats`` times, keeping each design's minimum:

- floor: ``A.astype(float64) @ B.astype(float64)`` per group, all layers (the exact products:
  the least any simulator that produces the outputs must pay);
- dense, a4w8, sparq 5/3/2-option 4-bit windows, sparq 3-bit and 2-bit windows (adjacent
  pairs) on the dense weights, and sparq-5opt in 2:4 mode (``stc``) on the 2:4 weights:
  ``PE.simulate_gemm(layer, A, B)`` per group, everything the functional model does.

It prints a table: design, seconds, ratio to the floor. Usage (from the repo root):
``.venv/bin/python benchmarks/bench_sparq.py [--repeats 3]``. numba and BLAS use their default
thread counts (the machine's cores); on a shared machine, where other jobs slow BLAS's threads
most, ``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1`` gives a steadier one-core comparison.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from simulator import api
from simulator.hw.pe.a4w8 import A4W8Options, A4W8PE
from simulator.hw.pe.dense import DenseOptions, DensePE
from simulator.hw.pe.sparq import SparqOptions, SparqPE
from simulator.workloads.lowering import im2col, weights_to_gemm
from simulator.workloads.synthetic import SyntheticOptions, synthesize

from gemm_timing import time_floor, time_pe  # benchmarks/gemm_timing.py


def lowered_operands(workload, options: SyntheticOptions, with_activations: bool):
    """Per layer: (layer, [(A or None, B) int64 per group])."""
    data = synthesize(workload, options)
    out = []
    for layer in workload.layers:
        tensors = data.tensors(layer.name)
        a = im2col(tensors.input, layer) if with_activations else None
        b = weights_to_gemm(tensors.weight, layer)
        out.append((layer, [(None if a is None else a[g], b[g]) for g in range(b.shape[0])]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    workload = api.load_workload("resnet18")
    dense_data = lowered_operands(workload, SyntheticOptions(), True)
    sparse_weights = lowered_operands(workload, SyntheticOptions(weight_structure="2:4"), False)
    # Same seed, same activations: pair the dense data's A with the 2:4 weights.
    stc_data = [(layer, [(a, b) for (a, _), (_, b) in zip(groups, sparse)])
                for (layer, groups), (_, sparse) in zip(dense_data, sparse_weights)]
    designs = {
        "dense": (DensePE(DenseOptions()), dense_data),
        "a4w8": (A4W8PE(A4W8Options()), dense_data),
        "sparq-5opt": (SparqPE(SparqOptions(options=5)), dense_data),
        "sparq-3opt": (SparqPE(SparqOptions(options=3)), dense_data),
        "sparq-2opt": (SparqPE(SparqOptions(options=2)), dense_data),
        "sparq-3bit": (SparqPE(SparqOptions(window_bits=3)), dense_data),
        "sparq-2bit": (SparqPE(SparqOptions(window_bits=2)), dense_data),
        "sparq-5opt-2:4": (SparqPE(SparqOptions(options=5, pairing="stc")), stc_data),
    }
    # Warm-up: compile / load the numba kernels on a small GEMM.
    for pe, data in designs.values():
        layer, groups = data[-1]
        pe.simulate_gemm(layer, groups[0][0][:8], groups[0][1])

    best = dict.fromkeys(["floor", *designs], float("inf"))
    for _ in range(args.repeats):
        best["floor"] = min(best["floor"], time_floor(dense_data))
        for name, (pe, data) in designs.items():
            best[name] = min(best[name], time_pe(pe, data))

    macs = sum(layer.gemm.macs for layer in workload.layers)
    a_zero = np.mean([np.mean(a == 0) for _, gs in dense_data for a, _ in gs])
    import numba

    print(f"ResNet-18 batch 1 (synthetic data): {len(dense_data)} layers, {macs / 1e9:.3f} G "
          f"MACs, activation zeros {a_zero:.1%}, best of {args.repeats} interleaved runs; "
          f"numba threads {numba.get_num_threads()}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"{'design':<15} {'seconds':>9} {'x floor':>8}")
    for name, seconds in best.items():
        print(f"{name:<15} {seconds:>9.3f} {seconds / best['floor']:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
