#!/usr/bin/env python3
"""ZAP on the digits model (docs/zap.md): train the predictors, and the table of MACs and
cycles saved against accuracy lost for each threshold.

Usage (from the repo root; needs the ``torch`` extra)::

    .venv/bin/python benchmarks/zap_digits.py train   # -> workloads/digits_int8_zap.npz
    .venv/bin/python benchmarks/zap_digits.py table   # the table of docs/zap.md and its plot
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from simulator.errors import SasimError

THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
PLOT = Path("docs/img/zap_digits.png")


def train(out: str, epochs: int, seed: int) -> None:
    """Train every mask type's predictors for the digits model's ReLU convs."""
    from simulator.accuracy.models import load_setup
    from simulator.export import quantize
    from simulator.export.digits import RELU_CONVS, digits_split
    from simulator.export.zap import train_predictors

    start = time.perf_counter()
    setup = load_setup("digits")
    qmodel = quantize(setup.model, setup.calibration.x, setup.options)
    x = digits_split("train")[0]
    train_predictors(qmodel, RELU_CONVS, x, out, epochs=epochs, seed=seed, log=print,
                     provenance={"model": "digits_resnet (workloads/digits_resnet.pt)",
                                 "quantised_as": "workloads/digits_int8.npz",
                                 "training_data": "digits:train (all 1257 images)"})
    print(f"trained in {time.perf_counter() - start:.1f} s; wrote {out}")


def main(argv: Sequence[str] | None = None) -> int:
    """``benchmarks/zap_digits.py train|table``."""
    from simulator.export.digits import ZAP_PATH

    parser = argparse.ArgumentParser(prog="benchmarks/zap_digits.py", description=__doc__)
    parser.add_argument("command", choices=["train", "table"])
    parser.add_argument("--out", default=str(ZAP_PATH), help="predictors file (train)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mask-type", type=int, default=5, help="mask pattern (table)")
    parser.add_argument("--budgets", default="0.01,0.03,0.1",
                        help="error budgets of the per-layer rows (table)")
    parser.add_argument("--plot", default=str(PLOT), help="figure to write (table)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        if args.command == "train":
            train(args.out, args.epochs, args.seed)
        else:
            table(args.mask_type, [float(b) for b in args.budgets.split(",")], args.plot)
    except SasimError as exc:
        print(f"zap_digits: error: {exc}", file=sys.stderr)
        return 2
    return 0


def table(mask_type: int, budgets: list[float], plot: str) -> None:
    raise NotImplementedError


if __name__ == "__main__":
    sys.exit(main())
