"""The ``sasim`` command line: argument parsing only; the work is done by :mod:`simulator.api`.

Every :class:`~simulator.errors.SasimError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import simulator
from simulator import api
from simulator.errors import SasimError
from simulator.reports import files as report_files
from simulator.reports.table import format_run, format_table

__all__ = ["main", "build_parser"]


def _progress(enabled: bool):
    """A progress callback printing 'layer i/n name' on a terminal's stderr line."""
    if not enabled or not sys.stderr.isatty():
        return None

    def show(index: int, count: int, name: str) -> None:
        end = "\n" if index + 1 == count else ""
        print(f"\r\033[Ksimulating layer {index + 1}/{count} {name}", end=end,
              file=sys.stderr, flush=True)

    return show


def _cmd_run(args: argparse.Namespace) -> int:
    if args.save_outputs and not args.out:
        raise SasimError("--save-outputs needs --out DIR")
    arch = api.load_arch(args.arch, args.set or ())
    workload = api.load_workload(args.workload)
    stream = None
    if args.save_outputs:
        stream = report_files.NpzStream(Path(args.out).resolve().parent)
    try:
        result = api.simulate(arch, workload, functional=not args.timing_only,
                              output_sink=(lambda name, arr: stream.add(f"{name}.output", arr))
                              if stream else None,
                              progress=_progress(not args.json))
        summary = result.summary()
        if stream is not None and not summary["functional"]:
            raise SasimError(f"--save-outputs: workload {workload.name} carries no data "
                             f"(use a trace or a PE type that runs on synthetic data)")
        if args.out:
            outputs: dict = {"summary.json": report_files.summary_json(summary),
                             "layers.csv": report_files.layers_csv(summary)}
            if arch.timing.convention == "scalesim":
                outputs["COMPUTE_REPORT.csv"] = report_files.compute_report_csv(summary)
            if stream is not None:
                outputs["outputs.npz"] = stream.move_to
            report_files.write_outputs(Path(args.out), outputs)
    finally:
        if stream is not None and stream.path.exists():
            stream.discard()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_run(summary))
        if args.out:
            print(f"wrote {', '.join(sorted(outputs))} to {args.out}")
    return 0


DEFAULT_COMPARISON = ("os_sa_16x16", "os_sa_32x32")


def _cmd_compare(args: argparse.Namespace) -> int:
    arch_specs = args.arch or list(DEFAULT_COMPARISON)
    archs = [api.load_arch(spec, args.set or ()) for spec in arch_specs]
    workloads = [api.load_workload(spec) for spec in args.workload]
    rows, records = [], []
    for workload in workloads:
        baseline = None
        for arch in archs:
            summary = api.simulate(arch, workload).summary()
            baseline = baseline or summary
            speedup = baseline["total_cycles"] / summary["total_cycles"]
            array = summary["arch_config"]["array"]
            rows.append([workload.name, arch.name, f"{array['rows']}x{array['cols']}",
                         arch.pe.type, summary["total_cycles"], summary["time_us"],
                         f"{speedup:.2f}x", 100 * summary["utilization"]])
            records.append({"workload": workload.name, "arch": arch.name,
                            "pe": arch.pe.type, "rows": array["rows"], "cols": array["cols"],
                            "total_cycles": summary["total_cycles"],
                            "time_us": summary["time_us"], "speedup": speedup,
                            "utilization": summary["utilization"], "macs": summary["macs"],
                            "data": summary["data"]})
    print(f"speedup is relative to the first design ({archs[0].name}) on each workload")
    print(format_table(["workload", "design", "array", "pe", "cycles", "time us", "speedup",
                        "util %"], rows, "llllrrrr"))
    if args.out:
        report_files.write_outputs(Path(args.out), {
            "comparison.json": json.dumps(records, indent=2) + "\n",
            "comparison.csv": report_files.records_csv(records)})
        print(f"wrote comparison.json, comparison.csv to {args.out}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from simulator.hw.pe import pe_types

    rows = []
    for path in api.shipped_archs():
        try:
            arch = api.load_arch(path)
            rows.append([path.stem, f"{arch.array.rows}x{arch.array.cols}",
                         arch.array.dataflow, arch.pe.type, arch.description])
        except SasimError as exc:
            rows.append([path.stem, "?", "?", "?", f"invalid: {exc}"])
    print("arch configs (arch_configs/, use --arch NAME):")
    print(format_table(["name", "array", "flow", "pe", "description"], rows, "lllll"))
    print("\nPE types (pe.type):")
    print(format_table(["type", "dataflows", "summary"],
                       [[n, "/".join(c.dataflows), c.summary] for n, c in pe_types().items()],
                       "lll"))
    rows = []
    for path in api.shipped_workloads():
        try:
            workload = api.load_workload(path)
            rows.append([path.stem, path.suffix[1:], len(workload.layers),
                         f"{workload.macs / 1e9:.3f}"])
        except SasimError as exc:
            rows.append([path.stem, path.suffix[1:], "?", f"invalid: {exc}"])
    print("\nworkloads (workloads/, use --workload NAME):")
    print(format_table(["name", "format", "layers", "GMACs"], rows, "llrr"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sasim`` (also used to generate docs)."""
    parser = argparse.ArgumentParser(
        prog="sasim",
        description="Cycle-accurate simulator of sparsity- and precision-aware DNN accelerators.")
    parser.add_argument("--version", action="version", version=f"sasim {simulator.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="simulate a workload on an architecture",
                         description="Simulate a workload on an architecture and print a "
                                     "per-layer table and totals.")
    run.add_argument("--arch", required=True,
                     help="arch YAML, SCALE-Sim .cfg, or the name of a shipped config")
    run.add_argument("--workload", required=True,
                     help="workload YAML, SCALE-Sim topology CSV, trace .npz, or a shipped name")
    run.add_argument("--out", metavar="DIR",
                     help="write summary.json, layers.csv (and COMPUTE_REPORT.csv) into DIR")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override an arch key, e.g. --set array.rows=32 (repeatable)")
    run.add_argument("--json", action="store_true", help="print summary.json to stdout")
    run.add_argument("--save-outputs", action="store_true",
                     help="write the simulated integer outputs to DIR/outputs.npz")
    run.add_argument("--timing-only", action="store_true",
                     help="skip the functional simulation (no counters, no error metrics)")
    run.set_defaults(func=_cmd_run)

    cmp_ = sub.add_parser("compare", help="compare designs on workloads (the `make run` job)",
                          description="Simulate every --arch on every --workload and print "
                                      "one comparison table.")
    cmp_.add_argument("--arch", action="append", metavar="ARCH",
                      help="a design to compare (repeatable; the first is the baseline); "
                           f"default: {', '.join(DEFAULT_COMPARISON)}")
    cmp_.add_argument("--workload", action="append", required=True, metavar="WORKLOAD",
                      help="a workload (repeatable)")
    cmp_.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override a key in every arch (repeatable)")
    cmp_.add_argument("--out", metavar="DIR", help="write comparison.csv/json into DIR")
    cmp_.set_defaults(func=_cmd_compare)

    lst = sub.add_parser("list", help="list shipped configs, PE types and workloads")
    lst.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SasimError as exc:
        print(f"sasim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sasim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
