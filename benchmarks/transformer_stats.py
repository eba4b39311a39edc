"""Statistics of the synthetic transformer tensors (docs/synthetic-data.md, "Transformer
tensors"): the tables of that section come from this script.

    python benchmarks/transformer_stats.py            # all tables
    python benchmarks/transformer_stats.py --no-speed # without the timing table

Every figure is computed from seed 0 of the shipped workloads' own layers (tokens cut where
the table says so, to keep the script quick).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from simulator.workloads import transformer_stats as tx
from simulator.workloads.layers import Layer
from simulator.workloads.shapes import load_workload_yaml
from simulator.workloads.synthetic import synthesize

WORKLOADS = Path(__file__).resolve().parent.parent / "workloads"


def _layer(workload: str, name: str) -> Layer:
    layers = load_workload_yaml(WORKLOADS / f"{workload}.yaml").layers
    return next(layer for layer in layers if layer.name == name)


def _row(label: str, layer: Layer, operand: str, seed: int = 0) -> list[str]:
    shape = tx.operand_shapes(layer)[operand]
    a = tx.transformer_tensor(layer, operand, shape, np.random.default_rng(seed))
    m = np.abs(a.astype(np.int64))
    return [label, f"`{layer.name}` {operand}", tx.tensor_kind(layer, operand),
            "x".join(map(str, shape)), str(a.dtype), f"{np.mean(a == 0):.1%}",
            f"{np.mean(a < 0):.1%}", f"{m.mean():.1f}", f"{np.percentile(m, 99):.0f}",
            f"{a.min()}..{a.max()}"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def kinds() -> str:
    """One row per tensor kind, on layers of the shipped workloads."""
    bert, gpt, llama = "bert_base_seq128", "gpt2_prefill", "llama2_7b_prefill"
    cut = dict(tokens=256)  # Llama prefill rows cut to 256 tokens (massive: token 0 kept)
    rows = [
        _row("BERT", _layer(bert, "block0.q_proj"), "input"),
        _row("BERT", _layer(bert, "block0.q_proj"), "weight"),
        _row("BERT", _layer(bert, "block0.scores"), "input"),
        _row("BERT", _layer(bert, "block0.scores"), "weight"),
        _row("BERT", _layer(bert, "block0.softmax"), "input"),
        _row("BERT", _layer(bert, "block0.context"), "input"),
        _row("BERT", _layer(bert, "block0.context"), "weight"),
        _row("BERT", _layer(bert, "block0.fc2"), "input"),
        _row("GPT-2 prefill", _layer(gpt, "block0.context"), "input"),
        _row("ReLU FFN", dataclasses.replace(_layer(bert, "block0.fc2"),
                                             activation_signed=False), "input"),
        _row("Llama-2 (256 tok)", dataclasses.replace(_layer(llama, "block1.attn_norm"), **cut),
             "input"),
        _row("Llama-2 (256 tok)", dataclasses.replace(_layer(llama, "block1.q_proj"),
                                                      batch=256), "input"),
        _row("Llama-2 (256 tok)", dataclasses.replace(_layer(llama, "block1.gate_mul"), **cut),
             "input"),
        _row("Llama-2 (256 tok)", dataclasses.replace(_layer(llama, "block1.down_proj"),
                                                      batch=256), "input"),
        _row("Llama-2 decode b16", _layer("llama2_7b_decode_b16", "block1.attn_norm"), "input"),
        _row("Llama-2 decode b16", _layer("llama2_7b_decode_b16", "block1.context"), "input"),
    ]
    header = ["model", "operand", "kind", "shape", "dtype", "zeros", "negative", "mean |q|",
              "p99 |q|", "range"]
    return _table(header, rows)


def softmax_zeros() -> str:
    """Zeros of quantised softmax rows by key count (64 query rows, 4 heads)."""
    rows = []
    for s in (128, 512, 1024, 2048, 4096):
        cells = [str(s)]
        for t, causal in ((64, False), (s, True)):
            if t > 1024:
                t, causal = 1024, True  # causal rows of the last 1024 queries
            layer = Layer("c", "matmul", s, 64, heads=4, tokens=t, activation_signed=False,
                          causal=causal, role="attention")
            p = tx.transformer_tensor(layer, "input", tx.operand_shapes(layer)["input"],
                                      np.random.default_rng(0))
            cells.append(f"{np.mean(p == 0):.1%}")
            if not causal:
                cells.append(f"{np.median(p.max(axis=-1)):.0f}")
        rows.append(cells)
    header = ["keys S", "zeros (full rows)", "median row max (of 255)",
              "zeros (causal prefill, incl. mask)"]
    return _table(header, rows)


def outlier_effect() -> str:
    """Zeros after per-tensor quantisation with and without LLM outliers (512 tokens)."""
    rows = []
    for width in (768, 4096):
        proj = Layer("b.q_proj", "linear", width, 64, batch=512, activation_signed=True,
                     role="attention")
        rest = tx.transformer_tensor(proj, "input", (512, width), np.random.default_rng(0))
        typical = (np.delete(rest, tx.outlier_channels(width), axis=1)
                   if width >= tx.LLM_WIDTH else rest)
        for tokens in (512, 1):
            norm = Layer("b.attn_norm", "rmsnorm", width, width, tokens=tokens,
                         batch=1 if tokens > 1 else 512, activation_signed=True,
                         role="attention")
            h = tx.transformer_tensor(norm, "input", tx.operand_shapes(norm)["input"],
                                      np.random.default_rng(0))
            what = "prefill (token 0 of 512)" if tokens > 1 else "decode (512 x 1 token)"
            rows.append([str(width), f"{np.mean(typical == 0):.1%}",
                         f"{np.abs(typical.astype(np.int64)).max()}", what,
                         f"{np.mean(h == 0):.2%}"])
    header = ["width", "projection input: zeros of typical channels",
              "their largest code", "residual stream", "zeros"]
    return _table(header, rows)


def speed() -> str:
    """Time to generate the data of Llama-2-7B prefill's block 0 (the first 19 layers)."""
    workload = synthesize(load_workload_yaml(WORKLOADS / "llama2_7b_prefill.yaml"))
    rows, total_values, total_time = [], 0, 0.0
    for layer in workload.layers[:18]:
        start = time.perf_counter()
        data = workload.tensors(layer.name)
        elapsed = time.perf_counter() - start
        values = sum(a.size for a in (data.input, data.weight, data.other) if a is not None)
        total_values += values
        total_time += elapsed
        rows.append([f"`{layer.name}`", f"{values / 1e6:,.1f}", f"{elapsed:.2f}",
                     f"{values / elapsed / 1e6:,.0f}"])
    rows.append(["block 0", f"{total_values / 1e6:,.1f}", f"{total_time:.2f}",
                 f"{total_values / total_time / 1e6:,.0f}"])
    return _table(["layer", "M values", "s", "M values/s"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-speed", action="store_true", help="skip the timing table")
    args = parser.parse_args(argv)
    print("## Tensor kinds (seed 0)\n\n" + kinds())
    print("\n## Softmax outputs P, 8 bits (scale 1/255), logit std "
          f"{tx.LOGIT_STD}\n\n" + softmax_zeros())
    print("\n## LLM outliers and massive activations under per-tensor quantisation\n\n"
          + outlier_effect())
    if not args.no_speed:
        print("\n## Generation speed, Llama-2-7B prefill block 0\n\n" + speed())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
