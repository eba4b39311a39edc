#!/usr/bin/env python3
"""The shipped digits ViT: model factory for ``sasim export``/``sasim accuracy`` and its
seeded training, trace and accuracy commands (docs/digits-model.md).

Usage (from the repo root; needs the ``torch`` extra)::

    PYTHONPATH=$PWD .venv/bin/python workloads/digits_vit.py train     # -> workloads/digits_vit.pt
    PYTHONPATH=$PWD .venv/bin/python workloads/digits_vit.py trace     # -> workloads/digits_vit_int8.npz
    PYTHONPATH=$PWD .venv/bin/python workloads/digits_vit.py accuracy  # float and INT8 top-1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

TRACE_SAMPLES = 4           # first test images recorded in the shipped trace
EPOCHS = 60


def model():
    """The trained :class:`simulator.export.tiny_transformers.DigitsViT` (float weights)."""
    from simulator.export.tiny_transformers import pretrained_vit

    return pretrained_vit()


def _options(name: str):
    from simulator.export.transformer import TransformerOptions

    from simulator.export.tiny_transformers import SHIPPED_OPTIONS

    return {"static": SHIPPED_OPTIONS,
            "dynamic": TransformerOptions(activations="dynamic"),
            "smoothquant 0.5": TransformerOptions(smooth_alpha=0.5)}[name]


def main(argv: Sequence[str] | None = None) -> int:
    """``workloads/digits_vit.py train|trace|accuracy``."""
    import torch

    from simulator.errors import SasimError
    from simulator.export.ptq import evaluate
    from simulator.export.tiny_transformers import (VIT_CALIBRATION, VIT_TRACE, VIT_WEIGHTS,
                                                    pretrained_vit, train_vit, vit_split)
    from simulator.export.transformer import export_transformer, quantize_transformer

    parser = argparse.ArgumentParser(prog="workloads/digits_vit.py",
                                     description="Train, trace or evaluate the digits ViT.")
    parser.add_argument("command", choices=["train", "trace", "accuracy"])
    parser.add_argument("--weights", default=str(VIT_WEIGHTS), help="float state dict (.pt)")
    parser.add_argument("--out", default=str(VIT_TRACE), help="trace to write (trace)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs (train)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # deterministic, and fastest for these tiny models on a busy machine
    try:
        if args.command == "train":
            start = time.perf_counter()
            trained = train_vit(args.epochs, log=print)
            torch.save(trained.state_dict(), args.weights)
            print(f"trained in {time.perf_counter() - start:.1f} s; wrote {args.weights}")
            return 0
        float_model = pretrained_vit(args.weights)
        calibration = vit_split("train")[0][:VIT_CALIBRATION]
        x_test, y_test = vit_split("test")
        if args.command == "accuracy":
            float_top1 = evaluate(float_model, x_test, y_test)
            print(f"digits held-out split ({x_test.shape[0]} images), top-1 %:")
            print(f"  float32                           {100 * float_top1:6.2f}")
            for name in ("static", "dynamic", "smoothquant 0.5"):
                top1 = evaluate(quantize_transformer(float_model, calibration, _options(name)),
                                x_test, y_test)
                label = f"INT8, {name}" + (" (the shipped trace)" if name == "static" else "")
                print(f"  {label:<33} {100 * top1:6.2f}  ({100 * (top1 - float_top1):+.2f})")
            return 0
        result = export_transformer(
            float_model, calibration, x_test[:TRACE_SAMPLES], args.out, "digits_vit",
            _options("static"),
            provenance={"model": "simulator.export.tiny_transformers.DigitsViT",
                        "weights": "digits_vit.pt",
                        "calibration_data": f"digits:train[:{VIT_CALIBRATION}] (8x8)",
                        "traced_data": f"digits:test[:{TRACE_SAMPLES}] (8x8)"},
            phase="prefill")
        print(f"wrote {result.path}: {len(result.layers)} layers, {result.traced_samples} "
              f"images")
    except SasimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
