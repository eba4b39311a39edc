#!/usr/bin/env python3
"""How long ``sasim rtl verify`` takes (docs/rtl.md, docs/performance.md), and a longer
random campaign than the tests run.

Speed: a trace with one linear layer, M = 16, Kd = 64, N = 16 (activations unsigned, half of
them zero; weights signed), on a 4x4 array: 16 folds. For the dense PE, SySMT 2T, SySMT 4T,
SPARQ 5opt and A4W8, ``python -m simulator rtl verify --arch ... --set array.rows=4 --set
array.cols=4 --workload <trace> --json`` runs in a fresh process; the wall time of the whole
process is printed with the verdict, the cycles and the cycles per second of co-simulation.
Target: under a minute each.

Bit-serial (weight- and activation-serial, p = 8 and 4) and SWIS (fixed N = 3, variable
N <= 4) run the same trace.

``--backend verilator`` runs the same with ``sasim rtl verify --backend verilator``;
``--backend both`` prints Amaranth's and Verilator's process seconds side by side, Verilator's
twice: compiling into a fresh cache (the first design also compiles Verilator's runtime),
then from the cache (docs/rtl.md, "The Verilator backend").

Campaign (``--campaign N``): N random GEMMs per design (``sasim rtl verify --cases N``) on
4x4 arrays for dense, every SySMT variant (2T/4T x both policies x both roundings), every
SPARQ variant (6 window configurations x both roundings x both pairings; ``stc`` draws 2:4
weights), A4W8 with both roundings and both scales, and the bit-serial and SWIS designs
above.

Usage (from the repo root)::

    .venv/bin/python benchmarks/rtl_verify.py [--backend amaranth|verilator|both]
        [--campaign 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--set", "array.rows=4", "--set", "array.cols=4"]
DESIGNS = [("dense", "os_sa_16x16", []), ("SySMT 2T", "sysmt_2t_16x16", []),
           ("SySMT 4T", "sysmt_4t_16x16", []), ("SPARQ 5opt", "sparq_5opt_16x16", []),
           ("A4W8", "a4w8_16x16", [])]
#: SPARQ's window configurations (docs/hardware-spec.md §4): (window_bits, options).
SPARQ_WINDOWS = [(4, 5), (4, 3), (4, 2), (6, 3), (3, 6), (2, 7)]
#: Bit-serial and SWIS (G = 8): Kd = 64 is 8 groups, p or N steps each (docs/rtl.md).
SERIAL = [("bit-serial 8b", "bitserial_8b_16x16", []),
          ("bit-serial 8b act", "bitserial_8b_16x16", ["--set", "pe.serial_operand=activation"]),
          ("bit-serial 4b", "bitserial_4b_16x16", []),
          ("SWIS N=3", "swis_g8_n3_16x16", []),
          ("SWIS N<=4", "swis_variable_16x16", [])]
DESIGNS += SERIAL


def write_trace(path: Path) -> None:
    """One linear layer, M = 16, Kd = 64, N = 16 (docs/trace-format.md)."""
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (16, 64)) * (rng.random((16, 64)) < 0.5)).astype(np.uint8)
    w = rng.integers(-128, 128, (16, 64)).astype(np.int8)
    manifest = {"format": "sasim-trace", "schema_version": 1, "model": "rtl_bench",
                "provenance": {}, "layers": [
                    {"name": "fc", "op": "linear", "activation_signed": False,
                     "activation_bits": 8, "weight_bits": 8, "arrays": ["input", "weight"]}]}
    np.savez(path, manifest=np.array(json.dumps(manifest)), **{"fc.input": x, "fc.weight": w})


def sasim(*argv: str) -> tuple[dict, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "simulator", *argv, "--json"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    return json.loads(done.stdout), seconds


def speed(backend: str = "amaranth") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp, "fc.npz")
        write_trace(trace)
        if backend == "both":
            side_by_side(trace, Path(tmp, "cache"))
            return
        print(f"sasim rtl verify, 4x4 array, M=16 Kd=64 N=16 (16 folds); "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'design':18} {'verdict':8} {'folds':>5} {'cycles':>6} {'cosim s':>8} "
              f"{'cycles/s':>9} {'process s':>9}")
        for label, arch, extra in DESIGNS:
            report, seconds = sasim("rtl", "verify", "--arch", arch, *SMALL, *extra,
                                    "--workload", str(trace), "--backend", backend)
            cosim = sum(c["seconds"] for c in report["cases"])
            print(f"{label:18} {report['verdict']:8} {report['folds']:5d} "
                  f"{report['cycles']:6d} {cosim:8.1f} {report['cycles'] / cosim:9.0f} "
                  f"{seconds:9.1f}")


def side_by_side(trace: Path, cache: Path) -> None:
    """Amaranth's and Verilator's whole-process seconds for each design."""
    os.environ["SASIM_VERILATOR_CACHE"] = str(cache)
    print(f"sasim rtl verify, 4x4 array, M=16 Kd=64 N=16 (16 folds), process seconds; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'design':18} {'cycles':>6} {'amaranth':>9} {'verilator (compile)':>20} "
          f"{'verilator (cached)':>19}")
    for label, arch, extra in DESIGNS:
        argv = ("rtl", "verify", "--arch", arch, *SMALL, *extra, "--workload", str(trace))
        ama, t_ama = sasim(*argv)
        first, t_first = sasim(*argv, "--backend", "verilator")
        cached, t_cached = sasim(*argv, "--backend", "verilator")
        verdicts = {ama["verdict"], first["verdict"], cached["verdict"]}
        same = ama["cases"][0]["counters"] == cached["cases"][0]["counters"] \
            and ama["cycles"] == cached["cycles"]
        note = "" if verdicts == {"match"} and same else f"  {sorted(verdicts)}, same={same}"
        print(f"{label:18} {ama['cycles']:6d} {t_ama:9.1f} {t_first:20.1f} "
              f"{t_cached:19.1f}{note}")


def campaign(cases: int) -> None:
    print(f"\nrandom campaign: {cases} GEMMs per design on 4x4 arrays")
    variants = [("dense", "os_sa_16x16", [])]
    for threads in (2, 4):
        for policy in ("sparsity_aware", "msb_trim"):
            for rounding in ("round_half_even", "truncate"):
                variants.append((f"SySMT {threads}T {policy} {rounding}", "sysmt_2t_16x16",
                                 ["--set", f"pe.threads={threads}", "--set",
                                  f"pe.policy={policy}", "--set", f"pe.rounding={rounding}"]))
    for bits, options in SPARQ_WINDOWS:
        for rounding in ("round", "raw"):
            for pairing in ("adjacent", "stc"):
                variants.append((f"SPARQ {bits}-bit {options}opt {rounding} {pairing}",
                                 "sparq_5opt_16x16",
                                 ["--set", f"pe.window_bits={bits}", "--set",
                                  f"pe.options={options}", "--set", f"pe.rounding={rounding}",
                                  "--set", f"pe.pairing={pairing}"]))
    for rounding in ("round", "raw"):
        for scale in ("fixed", "per_layer"):
            variants.append((f"A4W8 {rounding} {scale}", "a4w8_16x16",
                             ["--set", f"pe.rounding={rounding}", "--set", f"pe.scale={scale}"]))
    for label, arch, extra in variants + SERIAL:
        report, seconds = sasim("rtl", "verify", "--arch", arch, *SMALL, *extra,
                                "--cases", str(cases), "--seed", "1")
        print(f"{label:42} {report['verdict']:8} {report['folds']:5d} folds "
              f"{report['cycles']:7d} cycles {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=int, default=0, metavar="N",
                        help="also run N random GEMMs per design")
    parser.add_argument("--backend", choices=("amaranth", "verilator", "both"),
                        default="amaranth", help="co-simulator (both: side by side)")
    args = parser.parse_args()
    speed(args.backend)
    if args.campaign:
        campaign(args.campaign)


if __name__ == "__main__":
    main()
