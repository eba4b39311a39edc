"""Compare sasim's SCALE-Sim-convention reports with SCALE-Sim v3.0.0's own, case by case.

    .venv/bin/python benchmarks/validate_scalesim.py

Prints, for every fixture in tests/data/scalesim/ (reports written by the real SCALE-Sim),
the number of layers, how many have identical Total Cycles and Stall Cycles, and the largest
relative difference of the three utilisation percentages.
"""

from __future__ import annotations

import csv
from pathlib import Path

from simulator import api
from simulator.reports.files import compute_report_csv
from simulator.reports.table import format_table

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "scalesim"


def rows(text: str) -> list[list[str]]:
    parsed = list(csv.reader(text.splitlines()))[1:]
    return [[c.strip() for c in r if c.strip()] for r in parsed if r]


def cases():
    for folder in sorted(DATA.iterdir()):
        if (folder / "topology.csv").exists():
            yield folder.name, folder / "scalesim.cfg", folder / "topology.csv", folder / "COMPUTE_REPORT.csv"
    ref = DATA / "reference_resnet18"
    for name, topo in (("resnet18_os_32x32", "Resnet18.csv"), ("resnet18_ws_32x32", "Resnet18.csv"),
                       ("resnet18_padded_os_32x32", "Resnet18_padded.csv")):
        yield name, ref / name / "scalesim.cfg", ref / topo, ref / name / "COMPUTE_REPORT.csv"


def main() -> int:
    table, all_ok = [], True
    for name, cfg, topo, report in cases():
        arch = api.load_arch(cfg)
        ours = rows(compute_report_csv(api.simulate(arch, api.load_workload(topo)).summary()))
        theirs = rows(report.read_text())
        same = sum(o[2] == t[2] and o[3] == t[3] for o, t in zip(ours, theirs))
        worst = max(abs(float(o[i]) - float(t[i])) / max(abs(float(t[i])), 1e-300)
                    for o, t in zip(ours, theirs) for i in (4, 5, 6))
        ok = len(ours) == len(theirs) == same
        all_ok &= ok
        table.append([name, f"{arch.array.rows}x{arch.array.cols}", arch.array.dataflow,
                      len(theirs), f"{same}/{len(theirs)}", f"{worst:.1e}"])
    print(format_table(["case", "array", "flow", "layers", "cycles identical",
                        "max rel diff util %"], table, "lllrrr"))
    print("all cycles identical" if all_ok else "MISMATCH")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
