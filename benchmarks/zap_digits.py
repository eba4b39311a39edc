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


def _point(baseline, workload, dense_cycles: int, mask_type: int, label: str,
           settings: list[str]) -> dict:
    """One row: accuracy with ZAP in the loop on the held-out split, and the trace's run."""
    from simulator import api
    from simulator.accuracy import evaluate_accuracy

    row = {"label": label}
    for schedule in ("none", "compact"):
        arch = api.load_arch("os_sa_16x16", ["memory=ideal", "zap.enabled=true",
                                             f"zap.mask_type={mask_type}",
                                             f"zap.schedule={schedule}", *settings])
        summary = api.simulate(arch, workload).summary()
        row[f"cycles_{schedule}"] = summary["compute_cycles"]
        row["predictor_cycles"] = summary["zap"]["predictor_cycles"]
    report = evaluate_accuracy(arch, baseline)
    z = report["zap"]
    int8, hw = report["int8"], report["hardware"]
    images = report["images"]
    row.update(
        macs_saved=100 * z["macs_saved_fraction"],
        macs_saved_zap_layers=100 * z["macs_saved_fraction_eligible"],
        predictor_macs=100 * z["total"]["outputs"] * 18 / z["network_macs"],
        mispredicted=100 * z["total"]["mispredicted_nonzero"] / z["total"]["outputs"],
        mass_lost=100 * z["mass_lost_fraction"], top1=100 * hw["top1"],
        top1_lost=100 * (int8["correct"] - hw["correct"]) / images, loss=hw["loss"],
        thresholds={name: layer["threshold"] for name, layer in z["layers"].items()},
        saved_none=100 * (dense_cycles - row["cycles_none"]) / dense_cycles,
        saved_compact=100 * (dense_cycles - row["cycles_compact"]) / dense_cycles,
        saved_compact_hidden=100 * (dense_cycles - row["cycles_compact"]
                                    + row["predictor_cycles"]) / dense_cycles)
    return row


def table(mask_type: int, budgets: list[float], plot: str) -> None:
    """Print the threshold table of docs/zap.md and write its plot."""
    from simulator import api
    from simulator.accuracy import load_setup, prepare
    from simulator.reports.table import format_table

    start = time.perf_counter()
    baseline = prepare(load_setup("digits"))
    workload = api.load_workload("digits_int8")
    dense_arch = api.load_arch("os_sa_16x16", ["memory=ideal"])
    dense = api.simulate(dense_arch, workload).summary()["compute_cycles"]
    rows = [_point(baseline, workload, dense, mask_type, f"{t:.1f}", [f"zap.threshold={t}"])
            for t in THRESHOLDS]
    rows += [_point(baseline, workload, dense, mask_type, f"per layer, budget {b:g}",
                    ["zap.threshold=per_layer", f"zap.error_budget={b}"]) for b in budgets]
    print(f"ZAP on the digits model, mask type {mask_type}, os_sa_16x16 (predictor on a "
          f"64-lane side unit); accuracy on the 540 held-out images (INT8 top-1 "
          f"{100 * baseline.int8_scores.top1:.2f} %); cycles on the trace (32 images, dense "
          f"{dense:,} compute cycles)")
    print(format_table(
        ["threshold", "MACs saved %", "of ZAP layers %", "predictor MACs %", "mispred nz %",
         "mass lost %", "top-1 %", "top-1 lost", "loss", "cycles saved none %",
         "compact %", "compact, predictor hidden %"],
        [[r["label"], f"{r['macs_saved']:.2f}", f"{r['macs_saved_zap_layers']:.2f}",
          f"{r['predictor_macs']:.2f}", f"{r['mispredicted']:.2f}", f"{r['mass_lost']:.2f}",
          f"{r['top1']:.2f}", f"{r['top1_lost']:+.2f}", f"{r['loss']:.4f}",
          f"{r['saved_none']:+.2f}", f"{r['saved_compact']:+.2f}",
          f"{r['saved_compact_hidden']:+.2f}"] for r in rows]))
    for r in rows[len(THRESHOLDS):]:
        chosen = ", ".join(f"{name} {t:.2f}" for name, t in r["thresholds"].items())
        print(f"{r['label']}: thresholds {chosen or '(no layer within the budget)'}")
    print("MACs saved: gated-off outputs x their MACs over the network's conv/linear MACs "
          "(the paper's accounting; the predictor's MACs are in their own column); cycles "
          "saved: the whole network's compute cycles against the dense array, predictor "
          "included (last column: without the predictor's cycles, as if it were hidden)")
    _plot(rows[:len(THRESHOLDS)], mask_type, plot)
    print(f"wrote {plot} ({time.perf_counter() - start:.0f} s)")


def _plot(rows: list[dict], mask_type: int, out: str) -> None:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    thresholds = [float(r["label"]) for r in rows]
    left.plot(thresholds, [r["macs_saved"] for r in rows], "o-", label="MACs saved (paper)")
    left.plot(thresholds, [r["saved_compact_hidden"] for r in rows], "v--",
              label="cycles saved, compact, predictor hidden")
    left.plot(thresholds, [r["saved_compact"] for r in rows], "s-",
              label="cycles saved, compact")
    left.plot(thresholds, [r["saved_none"] for r in rows], "^-", label="cycles saved, none")
    left.axhline(0, color="grey", lw=0.5)
    left.set_xlabel("threshold")
    left.set_ylabel("saved, % of the network")
    left.legend(fontsize=8)
    right.plot(thresholds, [r["top1_lost"] for r in rows], "o-",
               label="top-1 lost (points vs INT8)")
    right.plot(thresholds, [100 * r["loss"] for r in rows], "s-", label="loss x 100 (nats)")
    right.plot(thresholds, [r["mass_lost"] for r in rows], "^-",
               label="activation mass lost %")
    right.set_xlabel("threshold")
    right.set_ylabel("cost")
    right.legend(fontsize=8)
    fig.suptitle(f"ZAP on the digits model (mask type {mask_type}, 540 held-out images): "
                 f"benchmarks/zap_digits.py table")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
