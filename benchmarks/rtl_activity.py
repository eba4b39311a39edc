#!/usr/bin/env python3
"""Switching activity of the generated RTL per PE-step class, beside the energy model.

Co-simulates the dense, SySMT-2T and SySMT-4T arrays (4x4), as generated and with operand
isolation (``--operand-isolation``: the multipliers' inputs held at zero on an idle step), on
the digits trace (workloads/digits_int8.npz, every array layer cropped to ``--max-folds``
folds), checks every GEMM against sasim as ``sasim rtl verify`` does, and prints per class
of PE-step
(docs/rtl.md, "Switching activity"):

- the toggles per PE-step at the multipliers' inputs, at the partial sum (the accumulate
  adder's input), at the accumulator register and at the operand registers;
- the multiplier-input and adder (partial sum + accumulator) toggles relative to a
  ``single`` step;
- the energy model's dynamic energy per PE-step of that class (docs/energy-model.md) and its
  multiplier and adder energy relative to a ``single`` step.

Usage (from the repo root)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/rtl_activity.py [--max-folds 4]
        [--isolation both|off|on] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from simulator import api
from simulator.hw.accumulator import pe_composition
from simulator.hw.pe import get_pe_model
from simulator.rtl.activity import NO_STEP, measure, model_energies
from simulator.rtl.cosim import ACTIVITY_GROUPS

ARCHS = ("os_sa_16x16", "sysmt_2t_16x16", "sysmt_4t_16x16")
TRACE = "workloads/digits_int8.npz"
SHORT = {"multiplier_inputs": "mult in", "partial_sum": "psum", "accumulator": "acc",
         "operand_registers": "op regs"}


def _ratio(value: float, base: float) -> str:
    return f"{value / base:5.2f}" if base else "    -"


def report(arch_name: str, max_folds: int, isolation: bool) -> dict:
    """Measure one design and print its table; returns its record."""
    arch = api.load_arch(arch_name, ["memory=ideal", "array.rows=4", "array.cols=4"])
    workload = api.load_workload(TRACE)
    started = time.perf_counter()
    table, result = measure(arch, arch_name, workload, max_folds=max_folds,
                            operand_isolation=isolation)
    seconds = time.perf_counter() - started
    tech = api.load_tech_table(arch.energy.tech)
    model = model_energies(pe_composition(get_pe_model(arch.pe, arch.array)), tech)
    cycles = sum(r.cycles for r in result.reports)
    gating = "with operand isolation" if isolation else "as generated"
    print(f"\n{arch_name} {gating} on a 4x4 array, {TRACE} ({len(result.reports)} GEMMs, {cycles} "
          f"cycles, every output and counter equal to sasim's; {seconds:.1f} s)")
    print(f"{'class':<15}{'PE-steps':>9}" + "".join(f"{SHORT[g]:>9}" for g in ACTIVITY_GROUPS)
          + " | rel: mult  adder | model pJ: mult  adder  logic | rel: mult  adder")
    single = {g: table.per_step("single", g) for g in ACTIVITY_GROUPS}
    adder_single = single["partial_sum"] + single["accumulator"]
    m_single = model.get("single", {})
    record = {}
    for event in table.steps:
        per = {g: table.per_step(event, g) for g in ACTIVITY_GROUPS}
        energy = model.get(event, {})
        mult, adder = energy.get("multipliers", 0.0), energy.get("adders", 0.0)
        rtl_adder = per["partial_sum"] + per["accumulator"]
        line = (f"{event:<15}{table.steps[event]:>9}"
                + "".join(f"{per[g]:9.2f}" for g in ACTIVITY_GROUPS)
                + f" |     {_ratio(per['multiplier_inputs'], single['multiplier_inputs'])}"
                + f"  {_ratio(rtl_adder, adder_single)}")
        if event != NO_STEP:
            line += (f" |      {mult:5.3f}  {adder:5.3f}  {energy.get('pe_logic', 0.0):5.3f}"
                     f" |     {_ratio(mult, m_single.get('multipliers', 0.0))}"
                     f"  {_ratio(adder, m_single.get('adders', 0.0))}")
        print(line)
        record[event] = {"steps": table.steps[event], "toggles_per_step": per,
                         "model_pj": energy}
    return {"arch": arch_name, "operand_isolation": isolation, "cycles": cycles,
            "seconds": seconds, "classes": record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-folds", type=int, default=4)
    parser.add_argument("--isolation", choices=("both", "off", "on"), default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    variants = {"both": (False, True), "off": (False,), "on": (True,)}[args.isolation]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} cores; toggles per PE-step (no step: per PE-cycle)")
    records = [report(name, args.max_folds, isolation) for isolation in variants
               for name in ARCHS]
    if args.json:
        print(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
