"""The shipped chips' memory: what the buffer sizes and the DRAM preset change
(docs/memory-model.md, "The shipped chips"; docs/energy-model.md, "Two scopes").

    .venv/bin/python benchmarks/chip_memory.py            # the tables of the docs
    .venv/bin/python benchmarks/chip_memory.py --quick    # the default chip's table only

Prints (1) the default 16x16 dense chip on ResNet-18: each buffer's priced size, traffic and
energy per byte beside the published 45 nm SRAM figures, and the chip's energy by scope and
class; (2) cycles, stalls, DRAM traffic and energy at both scopes as the buffers (the same
size for the three) and the DRAM change, for the dense array and SySMT-2T.
"""

from __future__ import annotations

import argparse

from simulator import api
from simulator.reports.table import format_table

#: CACTI 7.0 at 45 nm, a scratch RAM with one 64-bit read-write port, over the three ITRS
#: cell types (hp, lop, lstp) and 1, 2 or 4 banks: the lowest and highest energy per byte read
#: and written, by capacity in KiB (printed by benchmarks/cacti_sram.sh; docs/memory-model.md,
#: "The shipped chips").
CACTI_45NM_PJ_PER_BYTE = {8: ((0.41, 0.97), (0.42, 1.18)), 16: ((0.53, 1.68), (0.59, 1.66)),
                          32: ((0.85, 2.44), (0.78, 2.21)), 64: ((1.48, 3.74), (1.13, 3.16))}
BUFFERS = ("ifmap", "filter", "ofmap")
WORKLOAD = "resnet18"


def _cacti(kib: float, write: bool) -> str:
    span = CACTI_45NM_PJ_PER_BYTE.get(kib)
    return "-" if span is None else f"{span[write][0]:.2f}-{span[write][1]:.2f}"


def default_chip(arch_name: str = "os_sa_16x16") -> None:
    """Table 1: the default chip's buffers and energy shares."""
    s = api.simulate(api.load_arch(arch_name), api.load_workload(WORKLOAD)).summary()
    rows = []
    banks = s["arch_config"]["memory"]["buffer_banks"]
    for name in BUFFERS:
        layers = s["layers"]
        reads = sum(lay[f"buffer_{name}_read_bytes"] for lay in layers)
        writes = sum(lay[f"buffer_{name}_write_bytes"] for lay in layers)
        kib = s["buffer_sizing"]["priced_kib"][name]
        rows.append([name, f"{kib:g}", banks, f"{reads / 2**20:,.1f}", f"{writes / 2**20:,.1f}",
                     f"{_per_byte(s, kib / banks, write=False):.2f}", _cacti(kib, False),
                     f"{_per_byte(s, kib / banks, write=True):.2f}", _cacti(kib, True)])
    buffers = s["energy_breakdown_pj"]["buffers"]
    moved = sum(s[f"buffer_{b}_{d}_bytes"] for b in BUFFERS for d in ("read", "write"))
    print(f"{arch_name} on {WORKLOAD}: buffers and their energy per byte")
    print(format_table(["buffer", "KiB", "banks", "read MiB", "written MiB", "pJ/B read",
                        "CACTI 45 nm", "pJ/B write", "CACTI 45 nm"], rows, "lrrrrrrrr"))
    print(f"all buffers: {buffers / 1e6:,.1f} uJ over {moved / 2**20:,.1f} MiB = "
          f"{buffers / moved:.2f} pJ per byte")
    total = s["energy_pj"]
    parts = {"array (PEs, registers, their leakage)": s["array_energy_pj"],
             "buffers": buffers, "DRAM": s["energy_breakdown_pj"]["dram"],
             "leakage of the buffers": total - s["array_energy_pj"] - buffers
             - s["energy_breakdown_pj"]["dram"]}
    print(format_table(["chip-scope energy", "uJ", "share %"],
                       [[k, f"{v / 1e6:,.1f}", f"{100 * v / total:.1f}"]
                        for k, v in parts.items()] + [["chip", f"{total / 1e6:,.1f}", "100.0"]],
                       "lrr"))
    print(f"cycles {s['total_cycles']:,}, stalls {s['stall_cycles']:,}; DRAM "
          f"{s['dram']['preset']}, {_dram_mib(s):,.1f} MiB moved; area {s['area_mm2']:.3f} mm2 "
          f"(array {s['array_area_um2'] / 1e6:.3f})\n")


def _per_byte(summary: dict, kib: float, write: bool) -> float:
    tech = api.load_tech_table(summary["arch_config"]["energy"]["tech"])
    return tech.sram.access_energy_pj_per_byte(kib, write=write)


def _dram_mib(s: dict) -> float:
    return sum(s[k] for k in ("dram_ifmap_read_bytes", "dram_filter_read_bytes",
                              "dram_psum_read_bytes", "dram_ofmap_write_bytes",
                              "dram_psum_write_bytes")) / 2**20


def sizes_table(archs: tuple[str, ...], sizes: tuple[float | None, ...],
                drams: tuple[str, ...]) -> None:
    """Table 2: the same chip with other buffer sizes and DRAMs."""
    rows = []
    for arch_name in archs:
        for dram in drams:
            for kib in sizes:
                if (kib is None) != (dram == "ideal"):
                    continue  # unbounded buffers go with the ideal channel (memory: ideal)
                sets = (["memory=ideal"] if kib is None else
                        [f"memory.{b}_kib={kib:g}" for b in BUFFERS] + [f"memory.dram={dram}"])
                # the bytes of a DRAM preset's own energy; the ideal channel's at 20 pJ/bit
                s = api.simulate(api.load_arch(arch_name, sets),
                                 api.load_workload(WORKLOAD)).summary()
                b = s["energy_breakdown_pj"]
                moved = sum(s[f"buffer_{x}_{d}_bytes"] for x in BUFFERS
                            for d in ("read", "write"))
                rows.append([arch_name, "unbounded" if kib is None else f"{kib:g}", dram,
                             s["total_cycles"], s["stall_cycles"], f"{_dram_mib(s):,.1f}",
                             f"{s['array_energy_pj'] / 1e6:,.0f}",
                             f"{s['energy_pj'] / 1e6:,.0f}", f"{b['buffers'] / moved:.2f}",
                             f"{100 * b['buffers'] / s['energy_pj']:.0f}",
                             f"{100 * b['dram'] / s['energy_pj']:.0f}",
                             f"{s['area_mm2']:.2f}"])
    print(f"{WORKLOAD}: the buffers (KiB each of ifmap/filter/ofmap) and the DRAM")
    print(format_table(["design", "KiB each", "DRAM", "cycles", "stalls", "DRAM MiB",
                        "array uJ", "chip uJ", "buffer pJ/B", "buffers %", "DRAM %",
                        "chip mm2"], rows, "lll" + "r" * 9))
    print("array uJ: array scope (the PEs, their registers, their leakage); chip uJ: chip "
          "scope (+ buffers, DRAM, all leakage); unbounded = memory: ideal (each buffer priced "
          "at the run's peak occupancy, DRAM at the table's 20 pJ/bit)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default chip's table only")
    args = parser.parse_args()
    default_chip()
    if not args.quick:
        sizes_table(("os_sa_16x16", "sysmt_2t_16x16"), (16, 32, 64, 128, None),
                    ("lpddr5_6400", "ddr4_3200", "ideal"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
