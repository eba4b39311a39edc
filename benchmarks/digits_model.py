#!/usr/bin/env python3
"""Train, trace or evaluate the shipped digits model (docs/digits-model.md).

Usage (from the repo root; needs the ``torch`` extra)::

    .venv/bin/python benchmarks/digits_model.py train     # retrain -> workloads/digits_resnet.pt
    .venv/bin/python benchmarks/digits_model.py trace     # PTQ + trace -> workloads/digits_int8.npz
    .venv/bin/python benchmarks/digits_model.py accuracy  # float and INT8 top-1 (held-out split)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from simulator.errors import SasimError
from simulator.export.digits import (CALIBRATION_SAMPLES, EPOCHS, TRACE_PATH, TRACE_SAMPLES,
                                     WEIGHTS_PATH, digits_split, pretrained, train)


def _accuracy_rows(model: nn.Module) -> tuple[float, float, float]:
    from simulator.export.ptq import CalibrationOptions, evaluate, quantize

    x_cal = digits_split("train")[0][:CALIBRATION_SAMPLES]
    x_test, y_test = digits_split("test")
    float_top1 = evaluate(model, x_test, y_test)
    results = []
    for method in ("max", "percentile", "mse"):
        results.append(evaluate(quantize(model, x_cal, CalibrationOptions(method=method)),
                                x_test, y_test))
    return float_top1, *results


def main(argv: Sequence[str] | None = None) -> int:
    """``benchmarks/digits_model.py train|trace|accuracy``."""
    parser = argparse.ArgumentParser(prog="benchmarks/digits_model.py",
                                     description="Train, trace or evaluate the digits model.")
    parser.add_argument("command", choices=["train", "trace", "accuracy"])
    parser.add_argument("--weights", default=str(WEIGHTS_PATH), help="float state dict (.pt)")
    parser.add_argument("--out", default=str(TRACE_PATH), help="trace to write (trace)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs (train)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        if args.command == "train":
            start = time.perf_counter()
            model = train(args.epochs, log=print)
            torch.save(model.state_dict(), args.weights)
            print(f"trained in {time.perf_counter() - start:.1f} s; wrote {args.weights}")
        elif args.command == "accuracy":
            float_top1, *int8 = _accuracy_rows(pretrained(args.weights))
            n = digits_split("test")[0].shape[0]
            print(f"digits held-out split ({n} images), top-1 %:")
            print(f"  float32                     {100 * float_top1:6.2f}")
            for method, top1 in zip(("max", "percentile 99.99", "mse (shipped trace)"), int8):
                print(f"  INT8 PTQ, {method:<20} {100 * top1:6.2f}  "
                      f"({100 * (top1 - float_top1):+.2f})")
        else:
            from simulator.export.ptq import CalibrationOptions, export_trace

            x_test, y_test = digits_split("test")
            result = export_trace(
                pretrained(args.weights), digits_split("train")[0][:CALIBRATION_SAMPLES],
                x_test[:TRACE_SAMPLES], args.out, "digits_resnet",
                CalibrationOptions(method="mse"), evaluation=(x_test, y_test),
                provenance={"model": "simulator.export.digits.DigitsResNet",
                            "weights": Path(args.weights).name,
                            "calibration_data": f"digits:train[:{CALIBRATION_SAMPLES}]",
                            "traced_data": f"digits:test[:{TRACE_SAMPLES}]",
                            "eval_data": "digits:test"})
            print(f"wrote {result.path}: {len(result.layers)} layers, {result.traced_samples} "
                  f"images; top-1 float {100 * result.float_top1:.2f} %, "
                  f"INT8 {100 * result.int8_top1:.2f} % on {result.eval_samples} test images")
    except SasimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
