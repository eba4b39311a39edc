"""Statistics of the synthetic transformer tensors (docs/synthetic-data.md, "Transformer
tensors"): the tables of that section come from this script.

    python benchmarks/transformer_stats.py            # all tables
    python benchmarks/transformer_stats.py --no-speed # without the timing table

Every figure is computed from seed 0 of the shipped workloads' own layers (tokens cut where
the table says so, to keep the script quick). The last table compares the real traces of the
trained transformers (workloads/digits_vit_int8.npz, workloads/char_gpt_int8.npz) with the
generator drawn for the same layers.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from simulator.workloads import transformer_stats as tx
from simulator.workloads.layers import Layer, Workload, float_codes
from simulator.workloads.shapes import load_workload_yaml
from simulator.workloads.stats import SMALL
from simulator.workloads.synthetic import synthesize
from simulator.workloads.trace import load_trace

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


#: The real traces compared with the generator (docs/digits-model.md), and whether the model
#: is causal: the character GPT is (simulator/export/tiny_transformers.py), but a trace does
#: not record the mask (its layers have ``causal`` False), so the generator is told here.
TRACES = (("digits ViT", "digits_vit_int8", False), ("char GPT", "char_gpt_int8", True))
#: The tensors compared, in table order: (label, generator kind); the FFN activation's
#: output gets its kind from the model (GELU: gelu_out, SiLU: gated).
TENSORS = (("Q (scores left)", "query"), ("K (scores right)", "keys"),
           ("V (context right)", "values"), ("P (context left)", "probs"),
           ("normed: q, k, v, fc1 inputs", "normed"), ("attention output: out input", "gaussian"),
           ("{act} output: fc2 input", None), ("residual stream: norm input", "hidden"),
           ("weights (per channel)", "weight"))
_ACTIVATION_KINDS = {"gelu": ("GELU", "gelu_out"), "silu": ("SiLU", "gated")}


def tensor_of(layer: Layer, operand: str) -> str | None:
    """Which of :data:`TENSORS` (its label, ``{act}`` unfilled) an operand of a trace's block
    layer is, or None for the operands not compared (embedding, head, final norm, the FFN's
    and softmax's own inputs, an add's operands: the residual stream is taken at the norms)."""
    if not layer.role:  # outside the blocks
        return None
    short = layer.name.rsplit(".", 1)[-1]
    if layer.op == "matmul":
        signed = layer.activation_signed
        return TENSORS[(0 if signed else 3) if operand == "input" else (1 if signed else 2)][0]
    if layer.op in ("layernorm", "rmsnorm"):
        return TENSORS[7][0]
    if layer.op != "linear":
        return None
    if operand == "weight":
        return TENSORS[8][0]
    return {"q": TENSORS[4][0], "k": TENSORS[4][0], "v": TENSORS[4][0], "fc1": TENSORS[4][0],
            "out": TENSORS[5][0], "fc2": TENSORS[6][0]}.get(short)


def code_stats(codes: list[np.ndarray]) -> tuple[float, float, float, int, int]:
    """Zero fraction, fraction below 16 (zeros included), mean set bits of the magnitude
    (zeros count 0), largest magnitude and number of values of the codes pooled: the
    definitions of ``sasim inspect`` (simulator/workloads/stats.py)."""
    m = np.concatenate([np.abs(np.asarray(c, np.int64)).reshape(-1) for c in codes])
    return (float(np.mean(m == 0)), float(np.mean(m < SMALL)),
            float(np.bitwise_count(m.astype(np.uint64)).mean()), int(m.max()), m.size)


def _codes(array: np.ndarray) -> np.ndarray:
    """A trace's operand as codes: float vector-layer inputs as 8-bit codes per tensor, as
    sasim reads them (``float_codes``)."""
    return float_codes(array)[0] if array.dtype.kind == "f" else array


def trace_tensors(workload: Workload, causal: bool = False,
                  seed: int = 0) -> tuple[str, dict[str, tuple]]:
    """The FFN activation's name and, per compared tensor, its generator kind, the real codes
    and the generator's codes for the same layers and shapes (layer i drawn from
    ``SeedSequence([seed, i])``; ``causal``: softmax rows masked as a decoder's)."""
    acts = {layer.op for layer in workload.layers if layer.op in _ACTIVATION_KINDS}
    (act,) = acts
    name, act_kind = _ACTIVATION_KINDS[act]
    kinds = {label.format(act=name): kind or act_kind for label, kind in TENSORS}
    real: dict[str, list] = {label: [] for label in kinds}
    synthetic: dict[str, list] = {label: [] for label in kinds}
    for index, layer in enumerate(workload.layers):
        data = workload.tensors(layer.name)
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        # a float (vector-layer) input is compared as 8-bit codes: drawn at 8 bits too
        drawn = dataclasses.replace(layer, activation_bits=min(layer.activation_bits, 8),
                                    causal=causal or layer.causal)
        for operand, shape in tx.operand_shapes(layer).items():
            label = tensor_of(layer, operand)
            if label is None:
                continue
            label = label.format(act=name)
            real[label].append(_codes(getattr(data, operand)))
            synthetic[label].append(tx.transformer_tensor(drawn, operand, shape, rng,
                                                          kinds[label]))
    return name, {label: (kinds[label], real[label], synthetic[label]) for label in kinds}


def real_vs_synthetic() -> str:
    """Per tensor of the real traces: zeros, values below 16, mean set bits and the largest
    code, real / synthetic (the generator on the same layers)."""
    rows = []
    for model, trace, causal in TRACES:
        _, tensors = trace_tensors(load_trace(WORKLOADS / f"{trace}.npz"), causal)
        for label, (kind, real, synthetic) in tensors.items():
            r, g = code_stats(real), code_stats(synthetic)
            rows.append([model, label, f"`{kind}`", str(len(real)), f"{r[4]:,}",
                         f"{r[0]:.1%} / {g[0]:.1%}", f"{r[1]:.1%} / {g[1]:.1%}",
                         f"{r[2]:.2f} / {g[2]:.2f}", f"{r[3]} / {g[3]}"])
    header = ["model", "tensor", "generator kind", "operands", "values", "zeros real / syn",
              "below 16 real / syn", "set bits real / syn", "max code real / syn"]
    return _table(header, rows)


def real_attention() -> str:
    """Per block of the real traces: the softmax logits' spread within a row (masked keys
    left out) and the zeros and median row maximum of the quantised P, against the
    generator's LOGIT_STD."""
    rows = []
    for model, trace, causal in TRACES:
        workload = load_trace(WORKLOADS / f"{trace}.npz")
        blocks = [l.name.rsplit(".", 1)[0] for l in workload.layers if l.op == "softmax"]
        for block in blocks:
            logits = workload.tensors(f"{block}.softmax").input
            p = workload.tensors(f"{block}.context").input
            seen = logits > -1e8  # the exporter's masked scores are -1e9
            spread = np.nanmean(np.nanstd(np.where(seen, logits, np.nan), axis=-1))
            rows.append([model, f"`{block}`", f"{spread:.2f}", f"{np.mean(p == 0):.1%}",
                         f"{np.mean(p[seen] == 0):.1%}", f"{np.median(p.max(axis=-1)):.0f}"])
    header = ["model", "block", "logit std in a row", "P zeros", "P zeros (unmasked keys)",
              "median row max (of 255)"]
    return _table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-speed", action="store_true", help="skip the timing table")
    args = parser.parse_args(argv)
    print("## Tensor kinds (seed 0)\n\n" + kinds())
    print("\n## Softmax outputs P, 8 bits (scale 1/255), logit std "
          f"{tx.LOGIT_STD}\n\n" + softmax_zeros())
    print("\n## LLM outliers and massive activations under per-tensor quantisation\n\n"
          + outlier_effect())
    print("\n## Real traces vs the generator on the same layers (8-bit codes)\n\n"
          + real_vs_synthetic())
    print("\n## Attention in the real traces, per block (generator: logit std "
          f"{tx.LOGIT_STD})\n\n" + real_attention())
    if not args.no_speed:
        print("\n## Generation speed, Llama-2-7B prefill block 0\n\n" + speed())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
