#!/usr/bin/env python3
"""Transform coding on the digits model: bits per value, DRAM bytes and top-1 versus b.

For each quantiser width b (``--bits``, default 2..8) with the PCA, and for entropy coding
alone (``transform: none``) at the widths of ``--none-bits``, this prints:

- over the 540 held-out digits images (``sasim accuracy --model digits --set
  memory.activation_codec.bits=B``, codecs calibrated on 256 training images): the Shannon
  entropy of the coded symbols, the real Huffman length, and the stored length (word and
  burst padding plus the tables) in bits per activation value; the stored activation bytes
  over the raw 8-bit bytes; top-1 and its change against exact INT8;
- on the shipped trace (``sasim run --arch os_sa_16x16 --workload digits_int8 --set ...``,
  32 images, codecs calibrated on the first 16): DRAM bytes (all operands) and DRAM energy
  against the run without the codec, and the cycles the inverse transform adds on the array.

Then the checks of docs/transform-coding.md at the largest b: top-1 within 0.5 points of
INT8 and stored activation bytes below the 8-bit baseline (exit 1 if either fails), and the
plot (``--plot``, default docs/img/transform_coding_digits.png): top-1 change versus stored
bits per value. Usage (from the repo root, about 2 minutes on one core):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/transform_coding_digits.py
"""

from __future__ import annotations

import argparse
import sys
import time

from simulator import api
from simulator.accuracy import evaluate_accuracy, load_setup, prepare
from simulator.reports.table import format_table

ARCH = "os_sa_16x16"
#: the unbounded memory the figures of docs/transform-coding.md were measured on (the
#: shipped chip's buffers and LPDDR5 would add stalls; docs/memory-model.md, "Ideal memory");
#: the codec keys come after it, as `memory=ideal` resets the whole memory section
IDEAL = ["memory=ideal"]


def _run_totals(overrides: list[str]) -> dict:
    """DRAM bytes, DRAM energy and cycles of the digits trace on the baseline array."""
    result = api.simulate(api.load_arch(ARCH, IDEAL + overrides), api.load_workload("digits_int8"))
    summary = result.summary()
    moved = sum(sum(l.dram_reads) + sum(l.dram_writes) for l in result.layers)
    return {"dram_bytes": moved, "dram_pj": summary["energy_breakdown_pj"]["dram"],
            "energy_pj": summary["energy_pj"], "cycles": summary["total_cycles"],
            "inverse_cycles": summary.get("codec", {}).get("inverse_cycles", 0)}


def measure(baseline, transform: str, bits: int) -> dict:
    """One design point: the accuracy run's codec figures and the trace run's totals."""
    overrides = [f"memory.activation_codec.bits={bits}",
                 f"memory.activation_codec.transform={transform}"]
    report = evaluate_accuracy(api.load_arch(ARCH, IDEAL + overrides), baseline)
    codec = report["codec"]
    images = report["images"]
    return {"transform": transform, "bits": bits, **{k: codec[k] for k in (
                "entropy_bits_per_value", "code_bits_per_value", "stored_bits_per_value",
                "stored_bytes", "raw_bytes")},
            "top1": report["hardware"]["top1"],
            "drop_points": 100 * (report["int8"]["correct"] - report["hardware"]["correct"])
            / images, "run": _run_totals(overrides)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    parser.add_argument("--none-bits", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--plot", default="docs/img/transform_coding_digits.png")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    baseline = prepare(load_setup("digits"))
    plain = _run_totals([])
    print(f"digits: {baseline.setup.evaluation.x.shape[0]} held-out images, INT8 top-1 "
          f"{100 * baseline.int8_scores.top1:.2f} %; trace run without the codec: "
          f"{plain['dram_bytes']:,} DRAM bytes, {plain['dram_pj'] / 1e6:.2f} uJ DRAM, "
          f"{plain['cycles']:,} cycles")
    points = [measure(baseline, "pca", b) for b in args.bits]
    points += [measure(baseline, "none", b) for b in args.none_bits]
    rows = []
    for p in points:
        run = p["run"]
        rows.append([p["transform"], p["bits"], f"{p['entropy_bits_per_value']:.3f}",
                     f"{p['code_bits_per_value']:.3f}", f"{p['stored_bits_per_value']:.3f}",
                     f"{100 * p['stored_bytes'] / p['raw_bytes']:.1f}",
                     f"{100 * p['top1']:.2f}", f"{-p['drop_points']:+.2f}",
                     f"{100 * run['dram_bytes'] / plain['dram_bytes']:.1f}",
                     f"{100 * run['dram_pj'] / plain['dram_pj']:.1f}",
                     f"{100 * (run['cycles'] / plain['cycles'] - 1):+.1f}"])
    print(format_table(["transform", "b", "entropy b/v", "Huffman b/v", "stored b/v",
                        "act. bytes % of 8-bit", "top-1 %", "vs INT8", "run DRAM bytes %",
                        "run DRAM energy %", "run cycles"], rows, "lrrrrrrrrrr"))
    print("b/v: bits per activation value over the coded layers' inputs (held-out images); "
          "stored: word- and burst-padded streams plus tables; run: the digits trace on "
          f"{ARCH}, all DRAM traffic (weights included) against the run without the codec; "
          "run cycles: the inverse transform on the array")
    largest = max((p for p in points if p["transform"] == "pca"), key=lambda p: p["bits"])
    ok_accuracy = largest["drop_points"] <= 0.5
    ok_bytes = largest["stored_bytes"] < largest["raw_bytes"]
    print(f"b = {largest['bits']}: top-1 {-largest['drop_points']:+.2f} points vs INT8 "
          f"({'within' if ok_accuracy else 'NOT within'} 0.5); activation bytes "
          f"{largest['stored_bytes']:,} vs {largest['raw_bytes']:,} at 8 bits "
          f"({'below' if ok_bytes else 'NOT below'})")
    if args.plot:
        _plot(points, args.plot)
        print(f"wrote {args.plot}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0 if ok_accuracy and ok_bytes else 1


def _plot(points: list[dict], path: str) -> None:
    """Left: bits per value versus b (entropy, Huffman, stored); right: top-1 change versus
    stored bits per value (points below the axis are written at its bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.0))
    styles = {"pca": ("o", "-", "PCA"), "none": ("s", "--", "no transform")}
    floor = -3.0
    for transform, (marker, line, label) in styles.items():
        chosen = [p for p in points if p["transform"] == transform]
        if not chosen:
            continue
        bits = [p["bits"] for p in chosen]
        for key, shade in (("entropy_bits_per_value", 0.45), ("code_bits_per_value", 0.7),
                           ("stored_bits_per_value", 1.0)):
            name = key.split("_")[0].replace("code", "Huffman")
            left.plot(bits, [p[key] for p in chosen], marker=marker, ls=line, alpha=shade,
                      label=f"{label}: {name}")
        stored = [p["stored_bits_per_value"] for p in chosen]
        change = [-p["drop_points"] for p in chosen]
        right.plot(stored, [max(c, floor) for c in change], marker=marker, ls=line, label=label)
        for x, c, b in zip(stored, change, bits):
            text = f"b={b}" if c >= floor else f"b={b}: {c:+.0f}"
            right.annotate(text, (x, max(c, floor)), textcoords="offset points",
                           xytext=(3, 5 if transform == "pca" else -11), fontsize=8)
    left.set_xlabel("quantiser bits b")
    left.set_ylabel("bits per activation value")
    left.axhline(8, color="grey", lw=0.8, ls=":")
    left.legend(fontsize=7)
    left.set_title("entropy vs Huffman vs stored (padding, tables)")
    right.axhline(-0.5, color="grey", lw=0.8, ls=":")
    right.set_ylim(floor - 0.3, 1.0)
    right.set_xlabel("stored bits per activation value")
    right.set_ylabel("top-1 change vs INT8 (points)")
    right.set_title("accuracy vs saving (8-bit baseline: 8 b/v)")
    right.legend(fontsize=8)
    fig.suptitle("digits model, codec on every layer input but the first", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
