#!/usr/bin/env python3
"""Benchmark sasim against SCALE-Sim v3 on ResNet-18 and check per-layer agreement.

(a) SCALE-Sim: runs `<scalesim-python> -m scalesim.scale -c CFG -t TOPO -l LAYOUT -p TMP` once,
    measuring wall time and the child's peak RSS (os.wait4). With --skip-scalesim it is not run:
    the reference COMPUTE_REPORT.csv next to the cfg is used and the wall time / peak memory
    recorded in tests/data/scalesim/reference_resnet18/README_reference.md are printed, labelled
    "recorded".
(b) sasim: runs `<repo>/.venv/bin/sasim run --arch CFG --workload TOPO --out TMP` --repeats times
    as a fresh process each time (cold start included), taking the median wall time and peak RSS.

Then it compares the two COMPUTE_REPORT.csv files layer by layer: Total Cycles and Stall Cycles
exactly, Overall Util %, Mapping Efficiency % and Compute Util % to 1e-9 relative (Total Cycles
(incl. prefetch) is compared too and reported separately), and prints a side-by-side table.

Usage (from the repo root):
    python3 benchmarks/bench_vs_scalesim.py --skip-scalesim                # ~seconds
    python3 benchmarks/bench_vs_scalesim.py --scalesim-python /tmp/ss-venv/bin/python   # ~6 min
Options: --arch CFG, --workload TOPO.csv, --layout LAYOUT.csv, --sasim PATH, --repeats N,
         --json OUT.json.  Exit status 0 iff the per-layer figures are identical.

Standard library + numpy only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np  # noqa: F401  (allowed dependency; kept for callers extending the comparison)

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "tests" / "data" / "scalesim" / "reference_resnet18"

# Figures recorded when the reference reports were produced (README_reference.md).
RECORDED = {
    "resnet18_os_32x32": (351.0, 3.7e9),
    "resnet18_ws_32x32": (788.0, 5.5e9),
    "resnet18_padded_os_32x32": (469.0, 4.55e9),
}

EXACT_COLS = ["Total Cycles", "Stall Cycles"]
FLOAT_COLS = ["Overall Util %", "Mapping Efficiency %", "Compute Util %"]
PREFETCH_COL = "Total Cycles (incl. prefetch)"
REL_TOL = 1e-9


# ----------------------------------------------------------------------------- process running
def run_measured(cmd: list[str], cwd: Path, log: Path) -> tuple[float, int, int]:
    """Run cmd as a child; return (wall seconds, peak RSS bytes, return code)."""
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)  # Linux: KiB
    return wall, rss, proc.returncode


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# ----------------------------------------------------------------------------- reports
def read_compute_report(path: Path) -> dict[str, list]:
    """Parse SCALE-Sim's COMPUTE_REPORT.csv ('a, b, c,' rows) into columns by header name."""
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    header = [h.strip() for h in lines[0].split(",")]
    if header and header[-1] == "":
        header = header[:-1]
    cols: dict[str, list] = {h: [] for h in header}
    for line in lines[1:]:
        vals = [v.strip() for v in line.split(",")]
        if vals and vals[-1] == "":
            vals = vals[:-1]
        if len(vals) != len(header):
            raise ValueError(f"{path}: row has {len(vals)} fields, header {len(header)}: {line!r}")
        for h, v in zip(header, vals):
            cols[h].append(v)
    return cols


def as_int(v: str) -> int:
    f = float(v)
    if f != int(f):
        raise ValueError(f"not an integer: {v}")
    return int(f)


def rel_close(a: float, b: float, tol: float = REL_TOL) -> bool:
    if a == b:
        return True
    if math.isnan(a) or math.isnan(b):
        return False
    return abs(a - b) <= tol * max(abs(a), abs(b))


def compare(ref: dict[str, list], got: dict[str, list]) -> dict:
    res = {"n_ref": len(ref["LayerID"]), "n_got": len(got.get("LayerID", [])),
           "mismatches": [], "prefetch_mismatches": [], "missing_cols": [],
           "float_not_bitwise_equal": 0}
    for c in EXACT_COLS + FLOAT_COLS + [PREFETCH_COL]:
        if c not in got:
            res["missing_cols"].append(c)
    n = min(res["n_ref"], res["n_got"])
    for i in range(n):
        for c in EXACT_COLS:
            if c in got and as_int(ref[c][i]) != as_int(got[c][i]):
                res["mismatches"].append((i, c, ref[c][i], got[c][i]))
        for c in FLOAT_COLS:
            if c in got:
                a, b = float(ref[c][i]), float(got[c][i])
                if a != b:
                    res["float_not_bitwise_equal"] += 1
                if not rel_close(a, b):
                    res["mismatches"].append((i, c, ref[c][i], got[c][i]))
        if PREFETCH_COL in got and as_int(ref[PREFETCH_COL][i]) != as_int(got[PREFETCH_COL][i]):
            res["prefetch_mismatches"].append((i, PREFETCH_COL, ref[PREFETCH_COL][i],
                                               got[PREFETCH_COL][i]))
    res["identical"] = (res["n_ref"] == res["n_got"] and not res["mismatches"]
                        and not [c for c in res["missing_cols"] if c != PREFETCH_COL])
    return res


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "n/a"
    if b >= 1e9:
        return f"{b / 1e9:.2f} GB"
    return f"{b / 1e6:.1f} MB"


def fmt_s(s: float | None) -> str:
    return "n/a" if s is None else (f"{s:.1f} s" if s >= 10 else f"{s:.3f} s")


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="sasim vs SCALE-Sim v3 on ResNet-18")
    ap.add_argument("--scalesim-python", default="/tmp/ss-venv/bin/python")
    ap.add_argument("--skip-scalesim", action="store_true",
                    help="do not run SCALE-Sim; use the reference report and recorded figures")
    ap.add_argument("--arch", type=Path, default=REF / "resnet18_os_32x32" / "scalesim.cfg")
    ap.add_argument("--workload", type=Path, default=REF / "Resnet18.csv")
    ap.add_argument("--layout", type=Path, default=REF / "layout_resnet18.csv")
    ap.add_argument("--reference-report", type=Path, default=None,
                    help="COMPUTE_REPORT.csv used with --skip-scalesim "
                         "(default: next to --arch)")
    ap.add_argument("--sasim", type=Path, default=REPO / ".venv" / "bin" / "sasim")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary output folders")
    args = ap.parse_args(argv)

    arch, workload = args.arch.resolve(), args.workload.resolve()
    ref_name = arch.parent.name
    work = Path(tempfile.mkdtemp(prefix="bench_vs_scalesim_"))
    result: dict = {"arch": str(arch), "workload": str(workload)}

    # (a) SCALE-Sim ---------------------------------------------------------------------------
    if args.skip_scalesim:
        ref_report = (args.reference_report or arch.parent / "COMPUTE_REPORT.csv").resolve()
        ss_time, ss_rss = RECORDED.get(ref_name, (None, None))
        ss_label = "SCALE-Sim 3.0.0 (recorded, README_reference.md)"
        print(f"[scalesim] skipped; using {ref_report}", flush=True)
    else:
        ss_out = work / "scalesim"
        ss_out.mkdir()
        cmd = [args.scalesim_python, "-m", "scalesim.scale", "-c", str(arch), "-t", str(workload),
               "-l", str(args.layout.resolve()), "-p", str(ss_out)]
        print(f"[scalesim] running: {' '.join(cmd)}  (this takes minutes)", flush=True)
        ss_time, ss_rss, rc = run_measured(cmd, ss_out, work / "scalesim.log")
        if rc != 0:
            print(f"SCALE-Sim failed (rc={rc}):\n{tail(work / 'scalesim.log')}", file=sys.stderr)
            return 2
        found = sorted(ss_out.glob("*/COMPUTE_REPORT.csv"))
        if not found:
            print("SCALE-Sim wrote no COMPUTE_REPORT.csv", file=sys.stderr)
            return 2
        ref_report = found[0]
        ss_label = "SCALE-Sim 3.0.0 (measured)"
        # the per-layer traces are large; keep only the reports
        if not args.keep:
            for p in ref_report.parent.glob("layer*"):
                shutil.rmtree(p, ignore_errors=True)
        print(f"[scalesim] {ss_time:.1f} s, peak RSS {fmt_bytes(ss_rss)}", flush=True)
    result["scalesim"] = {"label": ss_label, "wall_s": ss_time, "peak_rss_bytes": ss_rss,
                          "report": str(ref_report)}

    # (b) sasim ---------------------------------------------------------------------------------
    if not args.sasim.exists():
        print(f"sasim executable not found: {args.sasim}", file=sys.stderr)
        return 2
    times, rsss = [], []
    sasim_report = None
    for k in range(args.repeats):
        out = work / f"sasim_{k}"
        out.mkdir()
        cmd = [str(args.sasim), "run", "--arch", str(arch), "--workload", str(workload),
               "--out", str(out)]
        t, rss, rc = run_measured(cmd, work, work / f"sasim_{k}.log")
        if rc != 0:
            print(f"sasim failed (rc={rc}): {' '.join(cmd)}\n{tail(work / f'sasim_{k}.log')}",
                  file=sys.stderr)
            return 2
        times.append(t)
        rsss.append(rss)
        sasim_report = out / "COMPUTE_REPORT.csv"
        print(f"[sasim] run {k + 1}/{args.repeats}: {t:.3f} s, peak RSS {fmt_bytes(rss)}",
              flush=True)
    if sasim_report is None or not sasim_report.exists():
        print(f"sasim wrote no COMPUTE_REPORT.csv in {sasim_report.parent if sasim_report else work}",
              file=sys.stderr)
        return 2
    sa_time, sa_rss = statistics.median(times), statistics.median(rsss)
    result["sasim"] = {"wall_s_median": sa_time, "wall_s_all": times,
                       "peak_rss_bytes_median": sa_rss, "peak_rss_bytes_max": max(rsss),
                       "report": str(sasim_report)}

    # comparison ---------------------------------------------------------------------------------
    cmp = compare(read_compute_report(ref_report), read_compute_report(sasim_report))
    result["comparison"] = {k: v for k, v in cmp.items()}

    w = 50
    print()
    print(f"workload {workload.name}, arch {arch.parent.name}/{arch.name}")
    print(f"{'':{w}} {'wall time':>12} {'peak memory':>12}")
    print(f"{ss_label:{w}} {fmt_s(ss_time):>12} {fmt_bytes(ss_rss):>12}")
    print(f"{f'sasim (median of {args.repeats}, cold process)':{w}} {fmt_s(sa_time):>12} "
          f"{fmt_bytes(sa_rss):>12}")
    t_ratio = f"{ss_time / sa_time:.1f}x" if ss_time and sa_time else "n/a"
    m_ratio = f"{ss_rss / sa_rss:.1f}x" if ss_rss and sa_rss else "n/a"
    print(f"{'ratio (SCALE-Sim / sasim)':{w}} {t_ratio:>12} {m_ratio:>12}")
    print()
    print(f"layers: SCALE-Sim {cmp['n_ref']}, sasim {cmp['n_got']}")
    if cmp["missing_cols"]:
        print(f"columns missing from sasim's report: {cmp['missing_cols']}")
    print("per-layer cycles identical (Total, Stall exact; Overall/Mapping/Compute Util "
          f"to {REL_TOL:g} rel): {'yes' if cmp['identical'] else 'no'}")
    for i, c, a, b in cmp["mismatches"][:30]:
        print(f"   layer {i}: {c}: SCALE-Sim {a}  sasim {b}")
    if len(cmp["mismatches"]) > 30:
        print(f"   ... {len(cmp['mismatches']) - 30} more")
    print(f"utilisation floats bit-identical: "
          f"{'yes' if cmp['float_not_bitwise_equal'] == 0 else 'no'}"
          + (f" ({cmp['float_not_bitwise_equal']} values differ in the last digits)"
             if cmp["float_not_bitwise_equal"] else ""))
    if PREFETCH_COL not in cmp["missing_cols"]:
        print(f"'{PREFETCH_COL}' identical: "
              f"{'yes' if not cmp['prefetch_mismatches'] else 'no'}"
              + (f" ({len(cmp['prefetch_mismatches'])} layers differ)"
                 if cmp["prefetch_mismatches"] else ""))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"outputs kept in {work}")
    return 0 if cmp["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
