#!/usr/bin/env python3
"""Synthetic data against a trace: the calibration tables of docs/synthetic-data.md.

Prints a markdown table of a trace's per-layer statistics next to those of synthetic data
generated for the same layer shapes (options as ``KEY=VALUE``, the keys of a workload's
``data:`` section).

Usage (from the repo root)::

    .venv/bin/python benchmarks/compare_synthetic.py workloads/digits_int8.npz [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import sys

from simulator.config.files import parse_override
from simulator.errors import SasimError
from simulator.workloads.stats import workload_stats
from simulator.workloads.synthetic import (SyntheticOptions, synthesize,
                                           synthetic_options_from_mapping)
from simulator.workloads.trace import load_trace

_KEYS = [("activation_zero_fraction", "act zero", "{:.2f}"),
         ("activation_small_fraction", "act <16", "{:.2f}"),
         ("activation_mean_bits", "act bits", "{:.2f}"),
         ("activation_median_nonzero", "act median", "{:.0f}"),
         ("weight_zero_fraction", "w zero", "{:.3f}"),
         ("weight_small_fraction", "w <16", "{:.2f}"),
         ("weight_mean_bits", "w bits", "{:.2f}")]


def compare(trace_path: str, options: SyntheticOptions) -> str:
    """Markdown table: the trace's per-layer statistics next to synthetic data's."""
    trace = load_trace(trace_path)
    real = list(workload_stats(trace, check_output=False))
    fake = list(workload_stats(synthesize(trace, options), check_output=False))
    header = "| layer | " + " | ".join(f"{label} real / syn" for _, label, _ in _KEYS) + " |"
    lines = [header, "|---" * (len(_KEYS) + 1) + "|"]
    for r, s in zip(real, fake):
        cells = [f"{fmt.format(getattr(r, k))} / {fmt.format(getattr(s, k))}"
                 for k, _, fmt in _KEYS]
        lines.append(f"| {r.name}{' (signed)' if r.activation_signed else ''} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="a trace .npz, e.g. workloads/digits_int8.npz")
    parser.add_argument("options", nargs="*", metavar="KEY=VALUE", help="synthetic options")
    args = parser.parse_args(argv)
    try:
        raw = {}
        for item in args.options:
            key, value = parse_override(item, "option", dotted=False)
            raw[key[0]] = value
        print(compare(args.trace, synthetic_options_from_mapping(raw, "options")))
    except SasimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
