#!/usr/bin/env python3
"""Llama-2-7B decode (batch 1, context 2048) on the 16x16 OS array: is it memory-bound, and
how close is its time per token to (weights + KV-cache bytes) / DRAM bandwidth?

For each DRAM bandwidth (bytes per array cycle at the config's 1 GHz clock) it prints the
cycles of one decode step, the DRAM bytes it reads (weights, the KV cache, activations), the
bytes-over-bandwidth bound, their ratio, the array's own compute cycles, and how many layers
the report calls memory-bound. docs/transformers.md quotes its output.

An output-stationary array at batch 1 uses one row of PEs: each cycle it takes one weight
per column, so a 16-column array at 1 GHz consumes 16 B/cycle (16 GB/s) of weights at best.
Below that bandwidth decode is memory-bound; above it, the array is the limit.

Usage (from the repo root)::

    .venv/bin/python benchmarks/llm_decode_roofline.py [--bandwidths 4 8 12 16 25.6 51.2]
"""

from __future__ import annotations

import argparse

from simulator import api


def decode_step(bandwidth: float) -> dict:
    """One decode step's figures at ``bandwidth`` bytes per cycle."""
    arch = api.load_arch("os_sa_16x16",
                         ["memory=ideal", f"memory.dram_bandwidth_bytes_per_cycle={bandwidth}"])
    run = api.simulate(arch, api.load_workload("llama2_7b_decode_b1"), functional=False)
    summary = run.summary()
    weights_kv = summary["dram_filter_read_bytes"]  # weights and the KV cache (right operands)
    read = weights_kv + summary["dram_ifmap_read_bytes"]
    array_layers = [layer for layer in run.layers if layer.unit != "vector"]
    return dict(bandwidth=bandwidth, cycles=summary["total_cycles"],
                compute=sum(layer.compute_cycles for layer in array_layers),
                weights_kv=weights_kv, kv=summary["kv_cache_read_bytes"], read=read,
                bound=weights_kv / bandwidth,
                memory_bound=sum(layer.bound == "memory" for layer in run.layers),
                layers=len(run.layers), tpot_us=summary["time_per_output_token_us"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bandwidths", type=float, nargs="+",
                        default=[4, 8, 12, 16, 25.6, 51.2])
    args = parser.parse_args()
    print("llama2_7b_decode_b1 on os_sa_16x16 (1 GHz), timing only")
    print(f"{'B/cycle':>8} {'cycles':>14} {'(W+KV)/BW':>14} {'ratio':>6} {'array':>13} "
          f"{'mem-bound':>10} {'TPOT ms':>9}")
    for bw in args.bandwidths:
        f = decode_step(bw)
        print(f"{bw:8.1f} {f['cycles']:14,} {f['bound']:14,.0f} "
              f"{f['cycles'] / f['bound']:6.3f} {f['compute']:13,} "
              f"{f['memory_bound']:4d}/{f['layers']:<5d} {f['tpot_us'] / 1000:9.1f}")
    print(f"bytes read per step: weights + KV cache {f['weights_kv']:,} "
          f"(KV cache {f['kv']:,}), all {f['read']:,}")


if __name__ == "__main__":
    main()
