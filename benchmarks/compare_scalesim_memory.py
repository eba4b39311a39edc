"""sasim's memory figures next to SCALE-Sim v3.0.0's, layer by layer, on the reference runs.

    .venv/bin/python benchmarks/compare_scalesim_memory.py            # summary per case
    .venv/bin/python benchmarks/compare_scalesim_memory.py --layers   # every layer too

For every SCALE-Sim run in tests/data/scalesim/ (eleven seeded random cases and SCALE-Sim's
own ResNet-18 runs; all in SCALE-Sim's default CALC bandwidth mode, 1-byte words) it runs sasim
on the same .cfg and topology and compares:

- SRAM reads of IFMAP and filter and SRAM writes of OFMAP (DETAILED_ACCESS_REPORT) with
  sasim's ``buffer_*`` bytes (for OS plus the rows + cols per fold SCALE-Sim adds to its
  OFMAP write count),
- DRAM reads of IFMAP and filter and DRAM writes of OFMAP (DETAILED_ACCESS_REPORT) with
  sasim's ``dram_*`` bytes, and the unique footprint of each operand,
- the average SRAM and DRAM bandwidths of BANDWIDTH_REPORT (summed over the three operands)
  with sasim's bytes over the layer's cycles,
- Total Cycles (incl. prefetch) (COMPUTE_REPORT) with sasim's.

docs/validation.md explains every difference. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from simulator import api
from simulator.reports.table import format_table

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "scalesim"


def _rows(path: Path) -> list[list[float]]:
    parsed = list(csv.reader(path.read_text().splitlines()))[1:]
    return [[float(c) for c in r[1:] if c.strip()] for r in parsed if r]


def cases():
    for folder in sorted(DATA.iterdir()):
        if (folder / "topology.csv").exists():
            yield folder.name, folder, folder / "topology.csv"
    ref = DATA / "reference_resnet18"
    for name, topo in (("resnet18_os_32x32", "Resnet18.csv"), ("resnet18_ws_32x32", "Resnet18.csv"),
                       ("resnet18_padded_os_32x32", "Resnet18_padded.csv")):
        yield name, ref / name, ref / topo


def _per_layer(rows: list[list[float]], layers: list) -> list[list[float]]:
    """SCALE-Sim reports a 'DP' (depthwise) layer as one row per channel; sasim runs it as
    one layer with that many groups: sum the rows."""
    out = []
    for layer in layers:
        part, rows = rows[:layer["groups"]], rows[layer["groups"]:]
        out.append([sum(column) for column in zip(*part)])
    return out


def _ratio(ours: float, theirs: float) -> str:
    if theirs == 0:
        return "-" if ours == 0 else "inf"
    return f"{ours / theirs:.2f}"


def compare(name: str, folder: Path, topology: Path, show_layers: bool) -> list:
    arch = api.load_arch(folder / "scalesim.cfg")
    summary = api.simulate(arch, api.load_workload(topology), functional=False).summary()
    layers = summary["layers"]
    detail = _per_layer(_rows(folder / "DETAILED_ACCESS_REPORT.csv"), layers)
    compute = _per_layer(_rows(folder / "COMPUTE_REPORT.csv"), layers)
    bandwidth = _per_layer(_rows(folder / "BANDWIDTH_REPORT.csv"), layers)
    table = []
    sums = {key: [0, 0] for key in ("sram_if", "sram_f", "sram_o", "dram_if", "dram_f",
                                    "dram_o", "sram_bw", "dram_bw", "prefetch")}
    for lay, det, comp, bw in zip(layers, detail, compute, bandwidth):
        # BANDWIDTH_REPORT: SRAM words per Total Cycle; DRAM words per cycle of SCALE-Sim's
        # DRAM activity window. sasim: bytes over the layer's cycles (the same definition
        # for SRAM; for DRAM the whole layer is the window).
        cycles = lay["total_cycles"] - lay["prefetch_cycles"] - lay["drain_cycles"]
        # The array's OFMAP writes (not partial sums read back from DRAM); SCALE-Sim's OS
        # count also adds rows + cols per fold (docs/validation.md).
        ofmap_writes = (lay["buffer_ofmap_write_bytes"] - lay["dram_psum_read_bytes"]
                        + (lay["folds"] * (arch.array.rows + arch.array.cols)
                           if arch.array.dataflow == "os" else 0))
        sram_bw = (lay["buffer_ifmap_read_bytes"] + lay["buffer_filter_read_bytes"]
                   + ofmap_writes) / cycles
        dram_bw = (lay["dram_ifmap_read_bytes"] + lay["dram_filter_read_bytes"]
                   + lay["dram_ofmap_write_bytes"] + lay["dram_psum_write_bytes"]) / cycles
        pairs = {
            "sram_if": (lay["buffer_ifmap_read_bytes"], det[2]),
            "sram_f": (lay["buffer_filter_read_bytes"], det[5]),
            "sram_o": (ofmap_writes, det[8]),
            "dram_if": (lay["dram_ifmap_read_bytes"], det[11]),
            "dram_f": (lay["dram_filter_read_bytes"], det[14]),
            "dram_o": (lay["dram_ofmap_write_bytes"] + lay["dram_psum_write_bytes"], det[17]),
            "sram_bw": (sram_bw, sum(bw[0:3])),
            "dram_bw": (dram_bw, sum(bw[3:6])),
            "prefetch": (lay["total_cycles"], comp[0]),
        }
        for key, (ours, theirs) in pairs.items():
            sums[key][0] += ours
            sums[key][1] += theirs
        if show_layers:
            table.append([f"  {lay['name']}", lay["ifmap_reuse"], lay["filter_reuse"],
                          *(f"{o:.2f}/{t:.2f}" if key.endswith("_bw") else
                            f"{int(o):,}/{int(t):,}" for key, (o, t) in pairs.items())])
    head = [name, f"{arch.array.rows}x{arch.array.cols} {arch.array.dataflow}",
            "/".join(f"{arch.memory.__dict__[k]:g}" for k in ("ifmap_kib", "filter_kib",
                                                               "ofmap_kib")),
            *(_ratio(o, t) for o, t in sums.values())]
    return [head, *table]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", action="store_true", help="print every layer too "
                        "(cells: sasim/SCALE-Sim)")
    parser.add_argument("--json", metavar="OUT", help="also write the per-case ratios as JSON")
    args = parser.parse_args()
    rows = []
    for name, folder, topology in cases():
        rows += compare(name, folder, topology, args.layers)
    headers = ["case", "array", "SRAM KiB i/f/o", "SRAM if rd", "SRAM f rd", "SRAM of wr",
               "DRAM if rd", "DRAM f rd", "DRAM of wr", "SRAM BW", "DRAM BW",
               "incl. prefetch"]
    print("ratios sasim / SCALE-Sim of per-case sums (per layer with --layers: sasim/SCALE-Sim)")
    print(format_table(headers, [r + [""] * (len(headers) - len(r)) for r in rows],
                       "lll" + "r" * 9))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
