#!/usr/bin/env python3
"""Accuracy of the digits model under every design: speed, the docs table, the directions.

Sections (``--section``, default all):

- ``speed``: seconds to evaluate the whole held-out digits set (540 images) with every
  quantised layer on the design's PE, for every shipped arch config (``arch_configs/*.yaml``),
  as ``sasim accuracy --arch NAME --model digits`` does after its one-off setup (loading the
  data, quantising, float and INT8 evaluation: printed once). Each design is the first call
  of its PE type in the process for some configs, so its time includes loading the numba
  kernels from the on-disk cache.
- ``table``: the markdown table of docs/accuracy.md: float, INT8 and each design's top-1,
  loss and agreement, before and after BatchNorm recalibration (``--recal`` images), beside
  the cycles, speedup and energy of ``sasim run --arch ... --workload digits_int8 --json``
  (``total_cycles``, ``energy_pj``; the trace's 32 images).
- ``directions``: the published directions checked on the numbers of ``table``.

``--design "LABEL=ARCH[,KEY=VALUE...]"`` (repeatable) adds rows to the table, e.g. a PE type
merged later; ``--no-defaults`` leaves out the built-in rows. Usage (from the repo root):
``PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_accuracy.py [--section table]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from simulator import api
from simulator.accuracy import evaluate_accuracy, load_setup, prepare

#: (label, arch, overrides) of the built-in table rows, all on 16x16 arrays (the array size
#: does not change any PE's arithmetic: the 32x32 configs have the same accuracy).
DESIGNS = [
    ("dense 8b x 8b (exact INT8)", "os_sa_16x16", ()),
    ("SySMT 2T", "sysmt_2t_16x16", ()),
    ("SySMT 4T", "sysmt_4t_16x16", ()),
    ("bit-serial 8 b (exact)", "bitserial_8b_16x16", ()),
    ("SWIS N = 2", "swis_g8_n3_16x16", ("pe.shifts=2",)),
    ("SWIS N = 3", "swis_g8_n3_16x16", ("pe.shifts=3",)),
    ("SWIS N = 4", "swis_g8_n3_16x16", ("pe.shifts=4",)),
    ("SWIS variable N <= 4, E = 64", "swis_variable_16x16", ()),
    ("truncation 2 b", "bitserial_3b_16x16", ("pe.bits=2",)),
    ("truncation 3 b", "bitserial_3b_16x16", ("pe.bits=3",)),
    ("truncation 4 b", "bitserial_3b_16x16", ("pe.bits=4",)),
]
BASELINE = "os_sa_16x16"
#: cycles and energy on the unbounded memory the table of docs/accuracy.md was measured on
#: (docs/memory-model.md, "Ideal memory"); accuracy does not depend on it
IDEAL = ("memory=ideal",)


def parse_design(text: str) -> tuple[str, str, tuple[str, ...]]:
    label, sep, spec = text.partition("=")
    if not sep or not spec:
        raise SystemExit(f"--design {text!r}: expected LABEL=ARCH[,KEY=VALUE...]")
    arch, *overrides = spec.split(",")
    return label, arch, tuple(overrides)


def section_speed(baseline, batch_size: int) -> None:
    print(f"evaluating {baseline.setup.evaluation.x.shape[0]} held-out digits images, every "
          f"layer on the PE (batch {batch_size}):")
    worst = 0.0
    for path in api.shipped_archs():
        arch = api.load_arch(path, IDEAL)
        report = evaluate_accuracy(arch, baseline, batch_size=batch_size)
        worst = max(worst, report["seconds"])
        print(f"  {path.stem:<22} {report['seconds']:6.1f} s   top-1 "
              f"{100 * report['hardware']['top1']:6.2f} %")
    print(f"slowest: {worst:.1f} s")


def _run_figures(arch) -> tuple[int, float]:
    summary = api.simulate(arch, api.load_workload("digits_int8")).summary()
    return summary["total_cycles"], summary["energy_pj"]


def _cmd(arch: str, overrides: tuple[str, ...]) -> str:
    return f"--arch {arch}" + "".join(f" --set {o}" for o in overrides)


def section_table(baseline, designs, recal: int, batch_size: int) -> list[dict]:
    int8 = baseline.int8_scores
    images = baseline.setup.evaluation.x.shape[0]
    base_cycles = _run_figures(api.load_arch(BASELINE, IDEAL))[0]
    print(f"| design | `sasim` arguments | top-1 % | vs INT8 | loss | agree % | top-1 % "
          f"after BN recal ({recal}) | loss after recal | cycles | speedup | energy µJ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, scores in (("float32", baseline.float_scores), ("INT8 (exporter)", int8)):
        print(f"| {label} | | {100 * scores.top1:.2f} | "
              f"{100 * (scores.correct - int8.correct) / images:+.2f} | {scores.loss:.4f} | "
              f"{100 * scores.agreement:.1f} | | | | | |")
    rows = []
    for label, arch_name, overrides in designs:
        arch = api.load_arch(arch_name, (*IDEAL, *overrides))
        report = evaluate_accuracy(arch, baseline, recalibrate=recal, batch_size=batch_size)
        cycles, energy = _run_figures(arch)
        hw, rc = report["hardware"], report["recalibration"]
        rows.append({"label": label, "hardware": hw, "recal": rc, "cycles": cycles,
                     "energy_pj": energy})
        print(f"| {label} | `{_cmd(arch_name, overrides)}` | {100 * hw['top1']:.2f} | "
              f"{100 * (hw['correct'] - int8.correct) / images:+.2f} | {hw['loss']:.4f} | "
              f"{100 * hw['agreement']:.1f} | {100 * rc['top1']:.2f} | {rc['loss']:.4f} | "
              f"{cycles:,} | {base_cycles / cycles:.2f}x | {energy / 1e6:.1f} |", flush=True)
    return rows


def section_directions(rows: list[dict]) -> None:
    by = {row["label"]: row for row in rows}

    def show(claim: str, holds: bool, detail: str) -> None:
        print(f"  {'holds' if holds else 'DOES NOT HOLD':<13} {claim}: {detail}")

    def fig(label: str, key: str = "hardware") -> str:
        s = by[label][key]
        suffix = " + recal" if key == "recal" else ""
        return f"{label}{suffix} {100 * s['top1']:.2f} % / {s['loss']:.4f}"

    print("published directions on the digits model (top-1 % / loss in nats):")
    if "SySMT 2T" in by and "SySMT 4T" in by:
        two, four = by["SySMT 2T"]["hardware"], by["SySMT 4T"]["hardware"]
        show("SySMT 2T costs less top-1 than 4T", two["top1"] > four["top1"],
             f"{fig('SySMT 2T')} vs {fig('SySMT 4T')}")
        show("SySMT 2T costs less loss than 4T", two["loss"] < four["loss"],
             f"{fig('SySMT 2T')} vs {fig('SySMT 4T')}")
        rc = by["SySMT 4T"]["recal"]
        show("recalibration recovers top-1 for 4T", rc["top1"] > four["top1"],
             f"{fig('SySMT 4T')} -> {fig('SySMT 4T', 'recal')}")
        show("recalibration recovers loss for 4T", rc["loss"] < four["loss"],
             f"{fig('SySMT 4T')} -> {fig('SySMT 4T', 'recal')}")
        if "dense 8b x 8b (exact INT8)" in by:
            print(f"    control: {fig('dense 8b x 8b (exact INT8)')} -> "
                  f"{fig('dense 8b x 8b (exact INT8)', 'recal')} (recalibration with the "
                  f"exact PE)")
    for n in (2, 3, 4):
        swis, trunc = f"SWIS N = {n}", f"truncation {n} b"
        if swis in by and trunc in by:
            a, b = by[swis]["hardware"], by[trunc]["hardware"]
            show(f"SWIS beats truncation at N = {n} (top-1)", a["top1"] > b["top1"],
                 f"{fig(swis)} vs {fig(trunc)}")
            show(f"SWIS beats truncation at N = {n} (loss)", a["loss"] < b["loss"],
                 f"{fig(swis)} vs {fig(trunc)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=["all", "speed", "table", "directions"],
                        default="all")
    parser.add_argument("--recal", type=int, default=1024,
                        help="BatchNorm recalibration images for the table (default 1024)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--design", action="append", default=[], metavar="LABEL=ARCH[,K=V]")
    parser.add_argument("--no-defaults", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    baseline = prepare(load_setup("digits"), args.batch_size)
    print(f"setup (data, quantisation, float and INT8 evaluation): "
          f"{time.perf_counter() - start:.1f} s; torch threads {torch.get_num_threads()}")
    if args.section in ("all", "speed"):
        section_speed(baseline, args.batch_size)
    if args.section in ("all", "table", "directions"):
        designs = ([] if args.no_defaults else DESIGNS) + [parse_design(d) for d in args.design]
        rows = section_table(baseline, designs, args.recal, args.batch_size)
        section_directions(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
