#!/usr/bin/env python3
"""Synthesised PE area of every design with RTL, relative to the dense PE (docs/rtl.md).

For each shipped design with RTL (dense, SySMT 2T, SySMT 4T, both policies and roundings of
SySMT), ``python -m simulator rtl synth --arch ... --json`` (Yosys: ``synth -noabc``,
``dfflegalize``, ``stat -tech cmos``; one PE with its operand registers and 32-bit
accumulator) in a fresh process; printed beside sasim's composition-model ratio and the
paper's (NB-SMT, MICRO 2020: 2T 1.4x, 4T 2.5x), with the wall time of each synthesis.

Usage (from the repo root)::

    .venv/bin/python benchmarks/rtl_area.py [--scope pe|array]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DESIGNS = [("dense", "os_sa_16x16", [])]
for _threads in (2, 4):
    for _policy, _rounding in (("sparsity_aware", "round_half_even"),
                               ("sparsity_aware", "truncate"),
                               ("msb_trim", "round_half_even"), ("msb_trim", "truncate")):
        DESIGNS.append((f"SySMT {_threads}T {_policy} {_rounding}", f"sysmt_{_threads}t_16x16",
                        ["--set", f"pe.policy={_policy}", "--set", f"pe.rounding={_rounding}"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", choices=("pe", "array"), default="pe")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    print(f"| design | cells | transistors | synthesised / dense | composition model / dense "
          f"| paper | synth s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, arch, extra in DESIGNS:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "simulator", "rtl", "synth", "--arch",
                               arch, *extra, "--scope", args.scope, "--json"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        r = json.loads(done.stdout)
        paper = "–" if r["paper_ratio"] is None else f"{r['paper_ratio']:.1f}x"
        print(f"| {label} | {r['cell_count']} | {r['transistors']} | {r['ratio_to_dense']:.2f}x "
              f"| {r['composition_ratio']:.2f}x | {paper} | {seconds:.1f} |")
    print(f"\nYosys: {r['yosys'].split(' (')[0]}; area unit: {r['area_unit']}; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
