#!/usr/bin/env python3
"""Synthesised PE area of every design with RTL, relative to the dense PE (docs/rtl.md).

For each shipped design with RTL (dense, SySMT 2T, SySMT 4T, both policies and roundings of
SySMT; SPARQ 5opt, 3opt, 2opt, 5opt stc and the other window widths; A4W8), ``python -m
simulator rtl synth --arch ... --json`` (Yosys: ``synth -noabc``, ``dfflegalize``, ``stat
-tech cmos``; one PE with its operand registers and 32-bit accumulator) in a fresh process;
printed beside sasim's composition-model ratio and the paper's (NB-SMT, MICRO 2020: 2T 1.4x,
4T 2.5x), with the wall time of each synthesis. SPARQ and A4W8 choose windows or quantise
once per row, in a row edge unit outside the PE: the "with edge share" column adds the
edge's area divided by the row's 16 PEs.
``--serial`` prints the bit-serial and SWIS table instead (with G = 16 as a design point the
SWIS paper did not synthesise): flip-flops, the ratio to the dense PE and, for SWIS, to the
8-bit bit-serial PE of the same G (its like-for-like baseline, docs/hardware-spec.md §6),
synthesised and by the composition model.

Usage (from the repo root)::

    .venv/bin/python benchmarks/rtl_area.py [--scope pe|array | --probes | --serial]
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
DESIGNS += [("SPARQ 5opt (shipped)", "sparq_5opt_16x16", []),
            ("SPARQ 3opt (shipped)", "sparq_3opt_16x16", []),
            ("SPARQ 2opt (shipped)", "sparq_2opt_16x16", []),
            ("SPARQ 5opt stc (shipped)", "sparq_5opt_stc_16x16", []),
            ("SPARQ 5opt raw", "sparq_5opt_16x16", ["--set", "pe.rounding=raw"]),
            ("SPARQ 6-bit 3opt", "sparq_5opt_16x16",
             ["--set", "pe.window_bits=6", "--set", "pe.options=3"]),
            ("SPARQ 3-bit 6opt", "sparq_5opt_16x16",
             ["--set", "pe.window_bits=3", "--set", "pe.options=6"]),
            ("SPARQ 2-bit 7opt", "sparq_5opt_16x16",
             ["--set", "pe.window_bits=2", "--set", "pe.options=7"]),
            ("A4W8 (shipped)", "a4w8_16x16", []),
            ("A4W8 per_layer", "a4w8_16x16", ["--set", "pe.scale=per_layer"])]


def _overrides(extra: list[str]) -> list[str]:
    return [v for k, v in zip(extra[::2], extra[1::2]) if k == "--set"]


def probe_costs() -> None:
    """One PE synthesised with and without its counter probes: the ``event`` output (the
    logic that classifies each step for ``sasim rtl verify``) left unconnected, so that
    Yosys removes it and the probe registers that only feed it (SPARQ's and A4W8's lossy
    bits). In-process; the same flow as ``sasim rtl synth``."""
    sys.path.insert(0, str(REPO))
    from amaranth.back import rtlil

    from simulator import api
    from simulator.rtl.design import design_from_arch
    from simulator.rtl.emit import TOP_PE, pe_top
    from simulator.rtl.build import has_row_edge
    from simulator.rtl.synth import synthesize, synthesize_rtlil

    print("| design | transistors | without counter probes | probes' share "
          "| without probes / dense | with edge share / dense |")
    print("|---|---:|---:|---:|---:|---:|")
    dense = None
    for label, arch, extra in DESIGNS:
        design = design_from_arch(api.load_arch(arch, _overrides(extra)), arch)
        counts = []
        for probes in (True, False):
            pe, ports = pe_top(design)
            if not probes:
                ports = [p for p in ports if p is not pe.event]
            text = rtlil.convert(pe, name=TOP_PE, ports=ports)
            counts.append(synthesize_rtlil(text, TOP_PE, "pe").transistors)
        dense = dense or counts[1]  # the dense PE comes first
        edge = (f"{(counts[1] + synthesize(design, 'edge').transistors / design.cols) / dense:.2f}x"
                if has_row_edge(design) else "–")
        print(f"| {label} | {counts[0]} | {counts[1]} | "
              f"{(counts[0] - counts[1]) / counts[0]:.1%} | {counts[1] / dense:.2f}x | {edge} |")


#: Bit-serial and SWIS designs: (label, arch, --set options, label of the same-G baseline).
#: ``pe.bits`` does not change the bit-serial PE (p only sets the steps of the stream), so
#: one row stands for bitserial_3b, _4b and _8b.
SERIAL_DESIGNS = [
    ("bit-serial G=8 weight-serial (p = 3, 4, 8)", "bitserial_8b_16x16", [], None),
    ("bit-serial G=8 activation-serial", "bitserial_8b_16x16",
     ["--set", "pe.serial_operand=activation"], None),
    ("bit-serial G=16 weight-serial", "bitserial_8b_16x16", ["--set", "pe.group_size=16"], None),
    ("SWIS G=8 N=3 (shipped)", "swis_g8_n3_16x16", [],
     "bit-serial G=8 weight-serial (p = 3, 4, 8)"),
    ("SWIS G=8 variable N <= 4 (shipped)", "swis_variable_16x16", [],
     "bit-serial G=8 weight-serial (p = 3, 4, 8)"),
    ("SWIS G=16 N=3 (not in the paper)", "swis_g8_n3_16x16", ["--set", "pe.group_size=16"],
     "bit-serial G=16 weight-serial"),
]


def _synth(arch: str, extra: list[str], scope: str, env) -> tuple[dict, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "simulator", "rtl", "synth", "--arch", arch,
                           *extra, "--scope", scope, "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout), time.perf_counter() - started


def serial_table(scope: str, env) -> None:
    """The bit-serial and SWIS rows."""
    print("| design | cells | flip-flops | transistors | synthesised / dense | composition / "
          "dense | synthesised / bit-serial | composition / bit-serial | synth s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    done = {}
    for label, arch, extra, baseline in SERIAL_DESIGNS:
        r, seconds = _synth(arch, extra, scope, env)
        done[label] = r
        vs = ["–", "–"]
        if baseline is not None:
            b = done[baseline]
            vs = [f"{r['transistors'] / b['transistors']:.2f}x",
                  f"{r['composition_ratio'] / b['composition_ratio']:.2f}x"]
        print(f"| {label} | {r['cell_count']} | {r['cells'].get('$_DFF_P_', 0)} | "
              f"{r['transistors']} | {r['ratio_to_dense']:.2f}x | {r['composition_ratio']:.2f}x "
              f"| {vs[0]} | {vs[1]} | {seconds:.1f} |")
    print(f"\nYosys: {r['yosys'].split(' (')[0]}; area unit: {r['area_unit']}; dense PE "
          f"{r['dense_transistors']} transistors; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", choices=("pe", "array"), default="pe")
    parser.add_argument("--serial", action="store_true",
                        help="the bit-serial and SWIS table")
    parser.add_argument("--probes", action="store_true",
                        help="instead: synthesise each PE with and without its counter probes")
    args = parser.parse_args()
    if args.probes:
        probe_costs()
        return
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if args.serial:
        serial_table(args.scope, env)
        return
    print(f"| design | cells | transistors | synthesised / dense | with edge share / dense "
          f"| composition model / dense | paper | synth s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
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
        edge = (f"{r['ratio_with_edge_share']:.2f}x" if "ratio_with_edge_share" in r
                else "–")
        print(f"| {label} | {r['cell_count']} | {r['transistors']} | {r['ratio_to_dense']:.2f}x "
              f"| {edge} | {r['composition_ratio']:.2f}x | {paper} | {seconds:.1f} |")
    print(f"\nYosys: {r['yosys'].split(' (')[0]}; area unit: {r['area_unit']}; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
