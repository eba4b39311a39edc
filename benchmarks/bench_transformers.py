#!/usr/bin/env python3
"""The shipped transformers under every design: numeric error per layer and model accuracy.

For each design (``--design LABEL=ARCH[,KEY=VALUE...]``, default: the table below) and each
shipped transformer trace (``digits_vit_int8``, ``char_gpt_int8``):

- **SQNR** of the PE's outputs against the exact ones over the trace's linear and matmul
  layers (:func:`simulator.accuracy.transformers.layer_sqnr`: 10 log10 Σ exact² / Σ error²),
  for all of them together, the linear layers and the attention matmuls (Q·Kᵀ, P·V);
- the model metric with every linear and matmul layer on the PE (``sasim accuracy --model
  digits_vit`` top-1 %, ``--model char_gpt`` perplexity), unless ``--no-accuracy``;

then the published directions checked (SPARQ 5opt >= 3opt >= 2opt in SQNR; SySMT 2T error
below 4T). Usage (from the repo root)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_transformers.py [--no-accuracy]
"""

from __future__ import annotations

import argparse
import math

import torch

from simulator import api
from simulator.accuracy.transformers import evaluate_transformer, layer_sqnr, prepare_transformer

DESIGNS = [
    ("dense 8b x 8b", "os_sa_16x16", ()),
    ("SySMT 2T", "sysmt_2t_16x16", ()),
    ("SySMT 4T", "sysmt_4t_16x16", ()),
    ("SPARQ 5opt", "sparq_5opt_16x16", ()),
    ("SPARQ 3opt", "sparq_3opt_16x16", ()),
    ("SPARQ 2opt", "sparq_2opt_16x16", ()),
    ("A4W8", "a4w8_16x16", ()),
    ("SWIS N = 3", "swis_g8_n3_16x16", ()),
    ("bit-serial 3 b", "bitserial_3b_16x16", ()),
]
MODELS = (("digits_vit", "digits_vit_int8"), ("char_gpt", "char_gpt_int8"))


def _db(rows: list[dict], keep) -> float:
    signal = sum(r["signal"] for r in rows if keep(r))
    noise = sum(r["noise"] for r in rows if keep(r))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def _parse(text: str) -> tuple[str, str, tuple[str, ...]]:
    label, sep, spec = text.partition("=")
    if not sep or not spec:
        raise SystemExit(f"--design {text!r}: expected LABEL=ARCH[,KEY=VALUE...]")
    arch, *overrides = spec.split(",")
    return label, arch, tuple(overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", action="append", default=[], metavar="LABEL=ARCH[,K=V]")
    parser.add_argument("--no-accuracy", action="store_true",
                        help="only the SQNR columns (no model evaluation)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    designs = [_parse(d) for d in args.design] or DESIGNS
    baselines = {} if args.no_accuracy else {m: prepare_transformer(m) for m, _ in MODELS}
    for model, _ in MODELS:
        if model in baselines:
            b = baselines[model]
            key = "top1" if b.metric == "top1" else "perplexity"
            scale = 100 if key == "top1" else 1
            print(f"{model}: float {scale * b.float_score[key]:.3f}, "
                  f"INT8 {scale * b.int8_score[key]:.3f} ({key})")
    print("| design | `--arch` | ViT SQNR dB (all / linear / attention matmuls) | ViT top-1 % "
          "| GPT SQNR dB (all / linear / attention matmuls) | GPT perplexity |")
    print("|---|---|---|---|---|---|")
    results: dict[str, dict[str, float]] = {}
    for label, arch_name, overrides in designs:
        arch = api.load_arch(arch_name, ("memory=ideal", *overrides))
        cells = []
        for model, trace in MODELS:
            rows = layer_sqnr(arch, trace)
            all_db = _db(rows, lambda r: True)
            results.setdefault(label, {})[model] = all_db
            cells.append(f"{all_db:.1f} / {_db(rows, lambda r: r['op'] == 'linear'):.1f} / "
                         f"{_db(rows, lambda r: r['op'] == 'matmul'):.1f}")
            if model in baselines:
                report = evaluate_transformer(arch, baselines[model])
                hw = report["hardware"]
                value = 100 * hw["top1"] if "top1" in hw else hw["perplexity"]
                results[label][f"{model}.metric"] = value
                cells.append(f"{value:.2f}" if "top1" in hw else f"{value:.3f}")
            else:
                cells.append("")
        extra = "".join(f" --set {o}" for o in overrides)
        print(f"| {label} | `{arch_name}{extra}` | " + " | ".join(cells) + " |", flush=True)
    print("directions (SQNR over all linear and matmul layers of each trace):")
    for model, _ in MODELS:
        sparq = [results.get(f"SPARQ {n}", {}).get(model) for n in ("5opt", "3opt", "2opt")]
        if None not in sparq:
            holds = sparq[0] >= sparq[1] >= sparq[2]
            print(f"  {'holds' if holds else 'DOES NOT HOLD':<13} {model}: SPARQ 5opt >= 3opt "
                  f">= 2opt: {sparq[0]:.1f} / {sparq[1]:.1f} / {sparq[2]:.1f} dB")
        two, four = (results.get(f"SySMT {t}", {}).get(model) for t in ("2T", "4T"))
        if two is not None and four is not None:
            print(f"  {'holds' if two > four else 'DOES NOT HOLD':<13} {model}: SySMT 2T error "
                  f"below 4T: SQNR {two:.1f} dB vs {four:.1f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
