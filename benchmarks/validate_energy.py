"""The papers' headline ratios against the default 45 nm table (docs/validation.md).

    .venv/bin/python benchmarks/validate_energy.py

Runs each design and its baseline on the shipped workload (synthetic INT8 data, seeded) and
prints area ratio, speedup and energy saving next to the published figures at array scope
(PEs with their control and wiring, and their leakage: the scope of a synthesised PE array,
which is what the papers report), with the array fed without stalls as in the papers' setup
(``memory: ideal``); then the same designs as the shipped chips (their buffers and DRAM):
speedup, and the saving at array and at chip scope (+ buffers, DRAM, all leakage);
docs/validation.md, docs/energy-model.md "Two scopes".
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
#: The papers' setup: the array alone, never waiting for memory (docs/memory-model.md,
#: "Ideal memory").
IDEAL = ("memory=ideal",)


def _saving(new: dict, base: dict, key: str) -> float:
    return 100 * (1 - new[key] / base[key])


def _memory(summary: dict) -> str:
    memory = summary["arch_config"]["memory"]
    sizes = "/".join(f"{memory[f'{b}_kib']:g}" for b in ("ifmap", "filter", "ofmap"))
    return f"{sizes} KiB, {memory['dram']}"


def _pub(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"


def main() -> int:
    rows = []
    cache: dict[tuple[str, str], dict] = {}

    def run(arch: str, workload: str, memory: tuple[str, ...] = ()) -> dict:
        if (arch, workload, memory) not in cache:
            cache[arch, workload, memory] = api.simulate(
                api.load_arch(arch, memory), api.load_workload(workload)).summary()
        return cache[arch, workload, memory]

    chips = []
    for design, baseline, workload, area_pub, speed_pub, saving_pub in CASES:
        new, base = run(design, workload, IDEAL), run(baseline, workload, IDEAL)
        area = new["array_area_um2"] / base["array_area_um2"]
        speed = base["total_cycles"] / new["total_cycles"]
        saving = _saving(new, base, "array_energy_pj")
        rows.append([f"{design} vs {baseline}", workload,
                     f"{area:.2f}x", _pub(area_pub, "x"),
                     "" if area_pub is None else f"{area - area_pub:+.2f}",
                     f"{speed:.2f}x", _pub(speed_pub, "x"),
                     f"{saving:.1f} %", f"{saving_pub:.0f} %", f"{saving - saving_pub:+.1f} pp"])
        new, base = run(design, workload), run(baseline, workload)
        chips.append([f"{design} vs {baseline}", workload, _memory(new),
                      f"{base['total_cycles'] / new['total_cycles']:.2f}x",
                      f"{_saving(new, base, 'array_energy_pj'):.1f} %",
                      f"{_saving(new, base, 'energy_pj'):.1f} %",
                      f"{new['energy_pj'] / 1e6:,.0f} / {base['energy_pj'] / 1e6:,.0f}"])
    print("array scope, the array fed without stalls (memory: ideal), as the papers measure it")
    print(format_table(["design", "workload", "area", "published", "diff", "speedup",
                        "published", "array energy saving", "published", "diff"], rows,
                       "ll" + "r" * 8))
    print("\nthe shipped chips (their buffers and DRAM): both scopes")
    print(format_table(["design", "workload", "memory", "speedup", "array energy saving",
                        "chip energy saving", "chip uJ design / baseline"], chips,
                       "lll" + "r" * 4))
    tech = next(iter(cache.values()))["tech"]
    print(f"\ntech table: {tech}; synthetic INT8 data (seeded), native cycle convention; the "
          "published figures are the NB-SMT paper's (45 nm, 8-bit).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
