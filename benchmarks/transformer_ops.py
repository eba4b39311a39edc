#!/usr/bin/env python3
"""The figures of docs/transformers.md: one Llama-like decoder block (hidden 1024, 16 query
heads, 4 K/V heads, head dim 64, FFN 2816 with SiLU gating), prefill of 256 tokens and
decode over a 1024-token KV cache, batch 4, on a 32x32 array with 16 B/cycle DRAM.

It prints, per design and phase: cycles, array and vector-unit cycles, time by role,
memory-bound layers, KV-cache bytes read, TTFT / TPOT and tokens/s; then the vector unit's
serial vs overlapped schedule, and the integer-only variants' error.

Usage (from the repo root)::

    .venv/bin/python benchmarks/transformer_ops.py
"""

from __future__ import annotations

from simulator import api
from simulator.workloads.layers import Layer, Workload
from simulator.workloads.synthetic import synthesize

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN = 1024, 16, 4, 64, 2816
BATCH, PROMPT, CONTEXT = 4, 256, 1024
MEMORY = ["memory=ideal", "memory.dram_bandwidth_bytes_per_cycle=16", "array.rows=32",
          "array.cols=32"]


def block(phase: str) -> Workload:
    """The decoder block's layers for one phase (prefill: PROMPT tokens; decode: one token
    over CONTEXT cached ones)."""
    tokens = PROMPT if phase == "prefill" else 1
    keys = PROMPT if phase == "prefill" else CONTEXT
    cached = phase == "decode"
    kv = HEAD_DIM * KV_HEADS

    def linear(name, k, n, role):
        return Layer(name, "linear", k, n, batch=BATCH * tokens, activation_signed=True,
                     role=role)

    def vector(name, op, features, heads=1, role=""):
        return Layer(name, op, features, features, batch=BATCH, tokens=tokens, heads=heads,
                     activation_signed=op != "softmax", role=role)

    layers = (
        vector("norm1", "rmsnorm", HIDDEN),
        linear("qkv", HIDDEN, HIDDEN + 2 * kv, "attention"),
        vector("rope", "rotary", HEAD_DIM, HEADS + KV_HEADS, "attention"),
        Layer("scores", "matmul", HEAD_DIM, keys, batch=BATCH, heads=HEADS, kv_heads=KV_HEADS,
              tokens=tokens, activation_signed=True, kv_cache=cached, role="attention"),
        vector("softmax", "softmax", keys, HEADS, "attention"),
        Layer("context", "matmul", keys, HEAD_DIM, batch=BATCH, heads=HEADS,
              kv_heads=KV_HEADS, tokens=tokens, kv_cache=cached, role="attention"),
        linear("out", HIDDEN, HIDDEN, "attention"),
        vector("res1", "add", HIDDEN),
        vector("norm2", "rmsnorm", HIDDEN),
        linear("gate_up", HIDDEN, 2 * FFN, "ffn"),
        vector("silu", "silu", FFN, role="ffn"),
        vector("gate", "mul", FFN, role="ffn"),
        linear("down", FFN, HIDDEN, "ffn"),
        vector("res2", "add", HIDDEN),
    )
    workload = Workload(name=f"llama_block_{phase}", source=f"{phase}.yaml", layers=layers,
                        format="yaml", phase=phase, sequences=BATCH,
                        seq_len=PROMPT, context_len=CONTEXT if cached else 0)
    return synthesize(workload)  # seeded data, drawn only for the layers a run reads


def line(design: str, summary: dict) -> str:
    shares = summary["role_shares"]
    phase = summary["phase"]
    latency = (f"TTFT {summary['time_to_first_token_us']:,.1f} us" if phase == "prefill" else
               f"TPOT {summary['time_per_output_token_us']:,.1f} us, "
               f"{summary['tokens_per_s']:,.0f} tokens/s")
    return (f"{design:18s} {phase:8s} {summary['total_cycles']:>11,} cycles  array "
            f"{summary['array_cycles']:>11,}  vector {summary['vector_cycles']:>10,}  "
            f"attention {100 * shares['attention']:5.1f} %  ffn {100 * shares['ffn']:5.1f} %  "
            f"vector {100 * shares['vector']:5.1f} %  memory-bound layers "
            f"{summary['memory_bound_layers']:>2}/{len(summary['layers'])}  KV read "
            f"{summary['kv_cache_read_bytes'] / 2**20:6.2f} MiB  {latency}")


def main() -> None:
    print(f"Llama-like block: hidden {HIDDEN}, {HEADS} heads / {KV_HEADS} K/V heads, FFN {FFN}, "
          f"batch {BATCH}, prompt {PROMPT}, KV cache {CONTEXT}; 32x32 arrays, 16 B/cycle DRAM")
    for design in ("os_sa_32x32", "sysmt_2t_32x32", "sparq_5opt_32x32", "bitserial_8b_32x32",
                   "swis_g8_n3_32x32"):
        for phase in ("prefill", "decode"):
            arch = api.load_arch(design, MEMORY)
            summary = api.simulate(arch, block(phase), functional=False).summary()
            print(line(design, summary))
    print()
    print("vector unit: serial vs overlapped with the next array layer (dense 32x32, decode)")
    for overlap in ("false", "true"):
        arch = api.load_arch("os_sa_32x32", MEMORY + [f"vector.overlap={overlap}"])
        summary = api.simulate(arch, block("decode"), functional=False).summary()
        print(f"  overlap {overlap:5s}: {summary['total_cycles']:,} cycles, "
              f"{summary['overlap_cycles']:,} vector cycles hidden")
    print()
    print("vector lanes (dense 32x32, prefill): cycles of the block and the vector unit's share")
    for lanes in (16, 64, 256):
        arch = api.load_arch("os_sa_32x32", MEMORY + [f"vector.lanes={lanes}"])
        summary = api.simulate(arch, block("prefill"), functional=False).summary()
        print(f"  lanes {lanes:3d}: {summary['total_cycles']:,} cycles, vector "
              f"{100 * summary['role_shares']['vector']:.1f} %")
    print()
    print("integer-only variants (I-BERT) vs float64 on synthetic data, prefill, 1 design:")
    arch = api.load_arch("os_sa_32x32", MEMORY + ["vector.integer=true"])
    result = api.simulate(arch, block("prefill"))
    for layer in result.layers:
        if layer.vector_sqnr_db is not None:
            print(f"  {layer.name:8s} {layer.op:9s} SQNR {layer.vector_sqnr_db:5.1f} dB, "
                  f"{layer.compute_cycles:,} cycles")
    float_arch = api.load_arch("os_sa_32x32", MEMORY)
    floats = api.simulate(float_arch, block("prefill"), functional=False)
    for layer in floats.layers:
        if layer.op in ("softmax", "rmsnorm", "silu"):
            print(f"  {layer.name:8s} {layer.op:9s} float recipe: {layer.compute_cycles:,} "
                  f"cycles")


if __name__ == "__main__":
    main()
