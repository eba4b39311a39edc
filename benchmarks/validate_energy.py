"""The papers' headline ratios against the default 45 nm table (docs/validation.md).

    .venv/bin/python benchmarks/validate_energy.py

Runs each design and its baseline on the shipped workload (synthetic INT8 data, seeded) and
prints area ratio, speedup and energy saving next to the published figures, for the array
(PEs with their control and wiring, and its leakage: the scope of a synthesised PE array,
which is what the papers report) and for the whole run (with buffers and DRAM).
"""

from __future__ import annotations

from simulator import api
from simulator.reports.table import format_table

#: (design, baseline, workload, published area ratio, speedup, energy saving %): the NB-SMT
#: (SySMT) paper at 45 nm; SWIS's "1.8-1.9x less energy than bit-serial accelerators of the
#: same size" is a saving of 44.4-47.4 % (midpoint 1.85x = 45.9 %; no area or speedup for it).
CASES = [
    ("sysmt_2t_16x16", "os_sa_16x16", "resnet18", 1.4, 2.0, 33.0),
    ("sysmt_4t_16x16", "os_sa_16x16", "resnet18_pruned40", 2.5, 3.4, 39.0),
    ("swis_variable_16x16", "bitserial_8b_16x16", "resnet18", None, None, 45.9),
    ("swis_g8_n3_16x16", "bitserial_8b_16x16", "resnet18", None, None, 45.9),
]
def _pub(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"


def main() -> int:
    rows = []
    cache: dict[tuple[str, str], dict] = {}

    def run(arch: str, workload: str) -> dict:
        if (arch, workload) not in cache:
            cache[arch, workload] = api.simulate(api.load_arch(arch),
                                                 api.load_workload(workload)).summary()
        return cache[arch, workload]

    for design, baseline, workload, area_pub, speed_pub, saving_pub in CASES:
        new, base = run(design, workload), run(baseline, workload)
        area = new["array_area_um2"] / base["array_area_um2"]
        speed = base["total_cycles"] / new["total_cycles"]
        saving = 100 * (1 - new["array_energy_pj"] / base["array_energy_pj"])
        saving_total = 100 * (1 - new["energy_pj"] / base["energy_pj"])
        rows.append([f"{design} vs {baseline}", workload,
                     f"{area:.2f}x", _pub(area_pub, "x"),
                     "" if area_pub is None else f"{area - area_pub:+.2f}",
                     f"{speed:.2f}x", _pub(speed_pub, "x"),
                     f"{saving:.1f} %", f"{saving_pub:.0f} %", f"{saving - saving_pub:+.1f} pp",
                     f"{saving_total:.1f} %"])
    print(format_table(["design", "workload", "area", "published", "diff", "speedup",
                        "published", "array energy saving", "published", "diff",
                        "whole-run saving"], rows, "ll" + "r" * 9))
    tech = next(iter(cache.values()))["tech"]
    print(f"\ntech table: {tech}; synthetic INT8 data (seeded), native cycle convention; the "
          "published figures are the NB-SMT paper's (45 nm, 8-bit).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
