"""The ``sasim rtl`` commands: emit, verify, synth (docs/rtl.md).

Called by :mod:`simulator.cli`, which imports this module only for ``sasim rtl``: nothing of
Amaranth is imported on any other path. Every refusal is a :class:`SasimError` (one line,
exit status 2); a verification that finds a mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from simulator import api
from simulator.errors import SasimError, shorten
from simulator.hw.pe import get_pe_model, pe_model_class, word_parallel_baseline
from simulator.outputs import OutputSet, json_text
from simulator.rtl.design import (DEFAULT_ACC_BITS, RtlDesign, design_from_arch,
                                  design_label, require_amaranth)

__all__ = ["cmd_emit", "cmd_verify", "cmd_synth", "composition_ratio"]

#: Widths of accumulators the RTL builds.
ACC_BITS_RANGE = (8, 64)


def _acc_bits(value: int | None) -> int | None:
    if value is not None and not ACC_BITS_RANGE[0] <= value <= ACC_BITS_RANGE[1]:
        raise SasimError(f"--acc-bits: expected {ACC_BITS_RANGE[0]}..{ACC_BITS_RANGE[1]}, "
                         f"not {value}")
    return value


#: ``rtl emit`` and ``rtl synth --scope array``: at most this many PEs (a 64 x 64 array); a
#: larger netlist takes memory and time without bound.
MAX_ARRAY_PES = 4096


def _design(args: argparse.Namespace, **extra: Any) -> tuple[Any, RtlDesign]:
    """The arch and its design; refuses a PE type without RTL before importing Amaranth."""
    arch = api.load_arch(args.arch, args.set or ())
    design = design_from_arch(arch, f"--arch {args.arch}",
                              operand_isolation=args.operand_isolation, **extra)
    pes = design.rows * design.cols
    if getattr(args, "scope", "array") == "array" and pes > MAX_ARRAY_PES:
        raise SasimError(f"--arch {args.arch}: array.rows x array.cols = {design.rows}x"
                         f"{design.cols} ({pes:,} PEs) is more than the {MAX_ARRAY_PES:,} "
                         f"PEs sasim generates RTL for; its PE and a smaller array of it "
                         f"tell the same (e.g. --set array.rows=16 --set array.cols=16)")
    require_amaranth()
    return arch, design


def cmd_emit(args: argparse.Namespace) -> int:
    """``sasim rtl emit``: Verilog of the array and of one PE, and params.json."""
    _, design = _design(args, act_signed=args.signed_activations,
                        acc_bits=_acc_bits(args.acc_bits) or DEFAULT_ACC_BITS)
    from simulator.rtl.build import has_row_edge
    from simulator.rtl.emit import TOP_ARRAY, TOP_EDGE, TOP_PE, design_verilog

    tops = {"top": TOP_ARRAY, "pe_top": TOP_PE}
    files = {f"{TOP_ARRAY}.v": design_verilog(design, "array"),
             f"{TOP_PE}.v": design_verilog(design, "pe")}
    if has_row_edge(design):  # SPARQ, A4W8: the row edge unit (docs/rtl.md, "Edge units")
        files[f"{TOP_EDGE}.v"] = design_verilog(design, "edge")
        tops["edge_top"] = TOP_EDGE
    files["params.json"] = json_text({**design.params(), **tops})
    with OutputSet() as outputs:
        folder = outputs.directory(args.out, "params.json")
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        outputs.commit()
    print(f"wrote {', '.join(sorted(files))} to {args.out} ({design.rows}x{design.cols} "
          f"{design_label(design)} array, {design.acc_bits}-bit accumulators)")
    return 0


#: Most random GEMMs (``--cases``) and folds per layer (``--max-folds``) one verify takes.
MAX_COUNT = 10_000


def cmd_verify(args: argparse.Namespace) -> int:
    """``sasim rtl verify``: co-simulate and compare; exit 1 on a mismatch."""
    from simulator.rtl.verify import check_cosim_size, verify_arch

    if args.layer is not None and args.workload is None:
        raise SasimError("--layer needs --workload")
    for flag, value in (("--cases", args.cases), ("--max-folds", args.max_folds)):
        if value is not None and not 1 <= value <= MAX_COUNT:
            raise SasimError(f"{flag}: expected an integer from 1 to {MAX_COUNT:,}, not "
                             f"{shorten(str(value))}")
    if not 0 <= args.seed < 2**63:
        raise SasimError(f"--seed: expected a non-negative integer below 2^63, not "
                         f"{shorten(str(args.seed))}")
    arch, design = _design(args)
    check_cosim_size(design, f"--arch {args.arch}")
    backend = getattr(args, "backend", "amaranth")
    if backend == "verilator":  # refused up front when Verilator or a compiler is missing
        from simulator.rtl.verilator import require_verilator

        require_verilator()
    workload = api.load_workload(args.workload) if args.workload else None
    started = time.perf_counter()
    with OutputSet() as outputs:
        folder = (outputs.directory(args.save_outputs, "outputs.npz", "--save-outputs")
                  if args.save_outputs is not None else None)
        result = verify_arch(arch, f"--arch {args.arch}", cases=args.cases or 8,
                             seed=args.seed, workload=workload, layer=args.layer,
                             max_folds=args.max_folds, acc_bits=_acc_bits(args.acc_bits),
                             need_whole=folder is not None,
                             operand_isolation=args.operand_isolation, backend=backend)
        if folder is not None:
            _save_outputs(folder, result)
            outputs.commit()
    seconds = time.perf_counter() - started
    report = _verify_record(args, result, seconds)
    if args.json:
        print(json_text(report))
    else:
        _print_verify(report, result)
        if args.save_outputs:
            print(f"wrote outputs.npz to {args.save_outputs}")
    return 0 if result.mismatch is None else 1


def _save_outputs(folder, result) -> None:
    """outputs.npz as ``sasim run --save-outputs`` writes it (``<layer>.output``; random
    cases: ``case<i>.output``, the (M, N) outputs)."""
    from simulator.reports.files import NpzStream

    stream = NpzStream(folder / "outputs.npz")
    try:
        if result.outputs:
            for name, array in result.outputs.items():
                stream.add(f"{name}.output", array)
        else:
            for i, (report, array) in enumerate(zip(result.reports, result.rtl_outputs)):
                stream.add(f"case{i}.output", array)
    finally:
        stream.close()


def _verify_record(args, result, seconds: float) -> dict[str, Any]:
    from simulator.rtl.verify import layer_summaries

    totals: dict[str, int] = {}
    stats: dict[str, int] = {}
    for rep in result.reports:
        for name, value in rep.counters.items():
            totals[name] = totals.get(name, 0) + value
        for name, value in rep.stats.items():
            stats[name] = stats.get(name, 0) + value
    mismatch = result.mismatch
    return {"verdict": "match" if mismatch is None else "mismatch",
            "arch": args.arch, "design": result.design.params(),
            "convention": "native", "backend": getattr(args, "backend", "amaranth"),
            "cases": [rep.record() for rep in result.reports],
            "layers": layer_summaries(result.reports),
            "cycles": sum(rep.cycles for rep in result.reports),
            "folds": sum(rep.folds for rep in result.reports),
            "counters": totals,
            **({"stats": stats} if stats else {}),
            "mismatch": None if mismatch is None else dataclasses.asdict(mismatch),
            "seconds": round(seconds, 3)}


def _print_verify(report: dict[str, Any], result) -> None:
    from simulator.reports.table import format_table

    names = [*report["counters"], *report.get("stats", {})]
    rows = []
    for rep in result.reports:
        counts = {**rep.counters, **rep.stats}
        rows.append([rep.case, rep.m, rep.k, rep.n, rep.threads, rep.steps, rep.folds,
                     "/".join(str(c) for c in sorted(set(rep.cycles_per_fold))),
                     *(counts.get(n, 0) for n in names),
                     "ok" if rep.mismatch is None else "MISMATCH"])
    print(format_table(["GEMM", "M", "Kd", "N", "T", "steps", "folds", "cycles/fold", *names,
                        "verdict"], rows, "lrrrrrrr" + "r" * len(names) + "l"))
    d = result.design
    print(f"{d.rows}x{d.cols} {design_label(d)} RTL, {d.acc_bits}-bit accumulators: "
          f"{report['folds']} folds, {report['cycles']} cycles ({report['seconds']:.1f} s)")
    if result.mismatch is None:
        print(f"verdict: match: all {len(result.reports)} GEMMs bit-identical to sasim's "
              f"functional model and reference array; cycles per fold as sasim's native "
              f"convention; counters identical"
              + (f"; active lanes identical ({report['stats']['active_lanes']})"
                 if "active_lanes" in report.get("stats", {}) else ""))
    else:
        print(result.mismatch.line())


def composition_ratio(arch) -> float:
    """sasim's composition-model PE area relative to the dense PE (docs/energy-model.md)."""
    from simulator.energy.model import pe_area_um2

    tech = api.load_tech_table(arch.energy.tech)
    base = word_parallel_baseline()
    return (sum(pe_area_um2(tech, get_pe_model(arch.pe, arch.array).composition().parts)
                .values())
            / sum(pe_area_um2(tech, base(base.Options()).composition().parts).values()))


def cmd_synth(args: argparse.Namespace) -> int:
    """``sasim rtl synth``: Yosys on the PE or the array, and the ratio to the dense PE."""
    from simulator.rtl.synth import synthesize, yosys_command

    arch, design = _design(args, acc_bits=_acc_bits(args.acc_bits) or DEFAULT_ACC_BITS)
    yosys_command()  # refuse a missing Yosys before building anything
    started = time.perf_counter()
    report = synthesize(design, args.scope)
    # the word-parallel baseline (the dense PE) in the same array, with the same ports
    base = word_parallel_baseline()
    dense = (report if design.pe_type == base.type_name else
             synthesize(dataclasses.replace(design, pe_type=base.type_name, threads=1,
                                            options={}), args.scope))
    # the paper's PE area relative to the dense PE (docs/validation.md)
    paper = dict(pe_model_class(design.pe_type).rtl.area_ratios).get(design.threads)
    seconds = time.perf_counter() - started
    record = {"arch": args.arch, "design": design.params(), "scope": args.scope,
              "area_unit": "CMOS transistors (Yosys stat -tech cmos, generic gates)",
              "cells": report.cells, "cell_count": report.cell_count,
              "transistors": report.transistors, "dense_transistors": dense.transistors,
              "ratio_to_dense": round(report.transistors / dense.transistors, 4),
              "composition_ratio": round(composition_ratio(arch), 4),
              "paper_ratio": paper,
              "yosys": report.yosys, "seconds": round(seconds, 3)}
    if args.scope == "pe":
        record.update(_edge_share(design, report.transistors, dense.transistors))
    if args.json:
        print(json_text(record))
        return 0
    from simulator.reports.table import format_table

    print(format_table(["cell", "count"], [[k, v] for k, v in sorted(report.cells.items())],
                       "lr"))
    what = "one PE" if args.scope == "pe" else f"the {design.rows}x{design.cols} array"
    print(f"{design_label(design)}, {what}: {report.cell_count} cells, {report.transistors} "
          f"transistors (Yosys stat -tech cmos after synth -noabc; {seconds:.1f} s)")
    print(f"area relative to the dense {'PE' if args.scope == 'pe' else 'array'}: "
          f"synthesised {record['ratio_to_dense']:.2f}x; sasim's composition model "
          f"{record['composition_ratio']:.2f}x"
          + (f"; the paper {paper:.1f}x" if paper is not None else ""))
    if "edge_transistors" in record:
        print(f"row edge unit: {record['edge_transistors']} transistors, shared by the "
              f"{design.cols} PEs of a row; one PE with its share "
              f"{record['ratio_with_edge_share']:.2f}x the dense PE")
    return 0


def _edge_share(design: RtlDesign, pe_transistors: int, dense_transistors: int
                ) -> dict[str, Any]:
    """A design with a row edge unit (SPARQ, A4W8): the edge's area and one PE's area with
    its share of the edge (the edge over the row's PEs), relative to the dense PE."""
    from simulator.rtl.build import has_row_edge
    from simulator.rtl.synth import synthesize

    if not has_row_edge(design):
        return {}
    edge = synthesize(design, "edge").transistors
    share = pe_transistors + edge / design.cols
    return {"edge_transistors": edge,
            "ratio_with_edge_share": round(share / dense_transistors, 4)}
