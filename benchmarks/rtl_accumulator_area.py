#!/usr/bin/env python3
"""The float accumulator's area: synthesis against sasim's area model (docs/accumulators.md,
"Area against synthesis").

Synthesises (the flow of ``sasim rtl synth``: Yosys ``synth -noabc``, ``dfflegalize``,
``stat -tech cmos``) the standalone accumulators of ``simulator/rtl/accumulator.py``:

- ``int32``: the 32-bit integer accumulator every PE has (adder and register);
- ``fp12``: the paper's 12-bit float running sum (1 + 4 + 7, bias 1): ``Q_prod``, the float
  adder with round to nearest even, flush and saturation, its register;
- ``fp12 + chunk 16``: the same with the binary32 second accumulator (its adder and
  register, the chunk counter);

and the dense PE (``sasim rtl synth --arch os_sa_16x16 --scope pe``). Printed beside the
tech table's areas (its components, µm², with the whole ``fp_adder_32``): each block over
the int32 accumulator, the second accumulator alone (the difference of the last two), the
share of ``fp_adder_32`` that makes the model agree (``OUTER_FLOAT_ADDER_SHARE`` in
simulator/hw/accumulator.py), and the PE with the fp12 accumulator over the dense PE (the dense PE with its int32 accumulator
replaced by the synthesised block).

Usage (from the repo root)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/rtl_accumulator_area.py
"""

from __future__ import annotations

import time


def main() -> None:
    from simulator import api
    from simulator.config.accumulator import chunk_bias_offset
    from simulator.energy.model import pe_area_um2
    from simulator.hw.accumulator import OUTER_FLOAT_ADDER_SHARE, pe_composition
    from simulator.hw.pe.registry import get_pe_model
    from simulator.rtl.accumulator import (FloatAccumulator, IntAccumulator,
                                           synthesize_accumulator)
    from simulator.rtl.design import design_from_arch
    from simulator.rtl.synth import synthesize

    tech = api.load_tech_table("generic_45nm")
    area = {name: c.area_um2 for name, c in tech.components.items()}
    reg = area["register_bit"]
    model = {"int32": area["adder_32"] + 32 * reg,
             "fp12": 0.75 * area["fp_adder_16"] + 12 * reg,
             "fp12 + chunk 16": 0.75 * area["fp_adder_16"] + 12 * reg + area["fp_adder_32"]
             + 32 * reg}
    started = time.perf_counter()
    synth = {"int32": synthesize_accumulator(IntAccumulator(32), "acc_int32"),
             "fp12": synthesize_accumulator(FloatAccumulator(4, 7, 1), "acc_fp12"),
             "fp12 + chunk 16": synthesize_accumulator(
                 FloatAccumulator(4, 7, 1, 16, chunk_bias_offset(16)), "acc_fp12_chunk16")}
    dense_arch = api.load_arch("os_sa_16x16")
    dense_pe = synthesize(design_from_arch(dense_arch, "os_sa_16x16"), "pe").transistors
    seconds = time.perf_counter() - started
    t = {k: r.transistors for k, r in synth.items()}
    print("| block | cells | transistors | synthesised / int32 | table µm² | table / int32 "
          "| table / synthesis |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, report in synth.items():
        s_ratio, m_ratio = t[key] / t["int32"], model[key] / model["int32"]
        print(f"| {key} | {report.cell_count} | {t[key]} | {s_ratio:.2f}x | {model[key]:.1f} "
              f"| {m_ratio:.2f}x | {m_ratio / s_ratio:.2f} |")
    second = t["fp12 + chunk 16"] - t["fp12"]
    s_ratio = second / t["int32"]
    m_second = area["fp_adder_32"] + 32 * reg
    print(f"| second accumulator (binary32) | | {second} | {s_ratio:.2f}x | {m_second:.1f} | "
          f"{m_second / model['int32']:.2f}x | {m_second / model['int32'] / s_ratio:.2f} |")
    share = (s_ratio * model["int32"] - 32 * reg) / area["fp_adder_32"]
    print(f"\nshare of fp_adder_32 that gives the synthesised second accumulator: {share:.3f} "
          f"(the model uses OUTER_FLOAT_ADDER_SHARE = {OUTER_FLOAT_ADDER_SHARE})")
    fp_arch = api.load_arch("os_sa_fp12acc_16x16")
    pe_areas = {}
    for name, arch in (("dense", dense_arch), ("fp12", fp_arch)):
        pe = get_pe_model(arch.pe, arch.array)
        pe_areas[name] = sum(pe_area_um2(tech, pe_composition(pe).parts).values())
    fp_pe = dense_pe - t["int32"] + t["fp12 + chunk 16"]
    table_pe = pe_areas["fp12"] + (1 - OUTER_FLOAT_ADDER_SHARE) * area["fp_adder_32"]
    print(f"PE with the fp12 accumulator (chunks of 16) / dense PE: synthesised "
          f"{fp_pe / dense_pe:.2f}x ({fp_pe} / {dense_pe} transistors); model "
          f"{pe_areas['fp12'] / pe_areas['dense']:.2f}x (with the whole fp_adder_32: "
          f"{table_pe / pe_areas['dense']:.2f}x)")
    print(f"Yosys: {synth['int32'].yosys.split(' (')[0]}; {seconds:.1f} s")


if __name__ == "__main__":
    main()
