#!/usr/bin/env python3
"""Digits-model accuracy versus accumulator bits (docs/accumulators.md).

For accumulator widths from 24 down to 10 bits it evaluates the shipped digits ResNet on its
540 held-out images with every quantised layer on the dense PE (``os_sa_16x16``) and its
running sums in each of these formats (docs/hardware-spec.md §8):

- ``int saturate`` / ``int wrap``: an int-b register (``pe.accumulator.bits = b``);
- ``float e5``: a float of b bits, 1 sign + 5 exponent + (b - 6) mantissa bits, bias 5
  (normal values from 2^-4 to 2^26 product units: no overflow, no underflow on this model,
  so only rounding and swamping act);
- ``float e5 chunk16``: the same with chunks of 16 steps into a binary32 second accumulator.

It prints a markdown table (top-1 % and loss per format and width, beside exact INT8) and the
accumulator events of one batch, and writes the plot ``docs/img/accumulator_bits.png``
(top-1 and loss against bits). The 12-bit 1+4+7 float of the paper is printed below the
table for a few biases. Usage (from the repo root)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/accumulator_bits.py [--limit N] [--out PNG]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulator import api
from simulator.accuracy import evaluate_accuracy, load_setup, prepare

BASE = "os_sa_16x16"
BITS = list(range(24, 9, -1))


def variants(bits: int) -> dict[str, tuple[str, ...]]:
    """The ``--set`` overrides of each format at ``bits`` bits."""
    acc = "pe.accumulator"
    float_e5 = (f"{acc}.type=float", f"{acc}.exponent_bits=5",
                f"{acc}.mantissa_bits={bits - 6}", f"{acc}.bias=5")
    return {
        "int saturate": (f"{acc}.type=int", f"{acc}.bits={bits}",
                         f"{acc}.overflow=saturate"),
        "int wrap": (f"{acc}.type=int", f"{acc}.bits={bits}", f"{acc}.overflow=wrap"),
        "float e5": float_e5,
        "float e5 chunk16": (*float_e5, f"{acc}.chunk=16"),
    }


#: The paper's 12-bit float (1 + 4 + 7) at a few biases, with chunks of 16.
PAPER = {f"1+4+7 bias {bias}, chunk 16": (
    "pe.accumulator.type=float", "pe.accumulator.exponent_bits=4",
    "pe.accumulator.mantissa_bits=7", f"pe.accumulator.bias={bias}", "pe.accumulator.chunk=16")
    for bias in (3, 1, -1)}


def evaluate(baseline, overrides: tuple[str, ...]) -> dict:
    arch = api.load_arch(BASE, ("memory=ideal", *overrides))
    return evaluate_accuracy(arch, baseline)["hardware"]


def plot(results: dict[str, dict[int, dict]], int8: dict, out: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    top, loss = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, by_bits in results.items():
        bits = sorted(by_bits)
        top.plot(bits, [100 * by_bits[b]["top1"] for b in bits], marker="o", ms=3, label=name)
        loss.plot(bits, [by_bits[b]["loss"] for b in bits], marker="o", ms=3, label=name)
    top.axhline(100 * int8["top1"], color="grey", ls="--", lw=1, label="exact INT8")
    loss.axhline(int8["loss"], color="grey", ls="--", lw=1)
    loss.set_yscale("log")
    for ax, label in ((top, "top-1 %"), (loss, "loss (nats, log)")):
        ax.set_xlabel("accumulator bits")
        ax.set_ylabel(label)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    top.legend(fontsize=7)
    fig.suptitle("digits ResNet, dense PE: accuracy vs accumulator width "
                 "(benchmarks/accumulator_bits.py)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate on the first N held-out images only")
    parser.add_argument("--out", type=Path, default=Path("docs/img/accumulator_bits.png"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    baseline = prepare(load_setup("digits", limit=args.limit))
    int8 = {"top1": baseline.int8_scores.top1, "loss": baseline.int8_scores.loss}
    images = baseline.setup.evaluation.x.shape[0]
    print(f"digits model, {images} held-out images; exact INT8: top-1 "
          f"{100 * int8['top1']:.2f} %, loss {int8['loss']:.4f}")
    results: dict[str, dict[int, dict]] = {name: {} for name in variants(BITS[0])}
    for bits in BITS:
        for name, overrides in variants(bits).items():
            results[name][bits] = evaluate(baseline, overrides)
    names = list(results)
    print("\n| bits | " + " | ".join(f"{n}: top-1 % / loss" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for bits in BITS:
        cells = [f"{100 * results[n][bits]['top1']:.2f} / {results[n][bits]['loss']:.4f}"
                 for n in names]
        print(f"| {bits} | " + " | ".join(cells) + " |")
    print("\nthe paper's 12-bit float (1 sign + 4 exponent + 7 mantissa):")
    for name, overrides in PAPER.items():
        hw = evaluate(baseline, overrides)
        print(f"  {name:<26} top-1 {100 * hw['top1']:6.2f} %  loss {hw['loss']:.4f}")
    plot(results, int8, args.out)
    print(f"\nwrote {args.out}; {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
