"""The one wiring point: load an arch and a workload, simulate, return a :class:`RunResult`.

The CLI, sweeps and notebooks all go through these functions. The result schema lives in
:mod:`simulator.results` (re-exported here: ``from simulator.api import RunResult`` works);
each layer runs through named steps: functional model, timing, memory, analytic checks,
result, price.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import simulator
from simulator.config import arch as arch_config
from simulator.config.arch import VECTOR_PRIMITIVES, ArchConfig
from simulator.config.dram import IDEAL, dram_spec
from simulator.energy.model import (AreaReport, BufferTraffic, EnergyReport, LayerActivity,
                                    array_area, layer_energy, vector_components,
                                    with_vector_unit)
from simulator.energy.scope import priced_buffer_kib
from simulator.energy.tech import TechTable, load_tech
from simulator.errors import ConfigError, SimulationError, WorkloadError
from simulator.hw.accumulator import check_accumulator, layer_steps, pe_composition
from simulator.hw.gemm import run_groups
from simulator.hw.pe import FoldSteps, PEModel, get_pe_model, option_types
from simulator.hw.pe.registry import GemmRun
from simulator.hw.timing import FoldTiming, fold_timing, reported_cycles
from simulator.hw.vector import vector_cost
from simulator.memory import (TileProgram, hcm_bit_ops, hcm_bits_moved, hcm_cycles, plan_layer,
                              plan_vector_layer, roofline)
from simulator.operands import BUFFERS, PerBuffer
from simulator.records import record
from simulator.results import (ErrorMetrics, FunctionalResult, LayerResult, LayerTimeline,
                               RunResult, error_metrics)
from simulator.shipped import ARCH_DIR, TECH_DIR, WORKLOAD_DIR, shipped_archs, shipped_workloads
from simulator.shipped import path_exists
from simulator.shipped import resolve
from simulator.workloads.layers import Layer, LayerTensors, Workload, data_problem, float_codes
from simulator.workloads.lowering import (gemm_product, gemm_to_output, im2col, im2col_nonzeros,
                                          weight_columns, weight_nonzeros, weights_to_gemm)
from simulator.workloads.shapes import load_topology_csv, load_workload_yaml

if TYPE_CHECKING:  # the engine's modules load when a run first schedules a layer (_engine)
    import simpy

    from simulator.memory.run import Dram, LayerSchedule, StartedLayer

__all__ = [
    "ARCH_DIR",
    "TECH_DIR",
    "WORKLOAD_DIR",
    "LayerResult",
    "LayerTimeline",
    "RunResult",
    "ErrorMetrics",
    "FunctionalResult",
    "error_metrics",
    "load_arch",
    "arch_loader",
    "load_tech_table",
    "load_workload",
    "shipped_archs",
    "shipped_workloads",
    "simulate",
    "with_synthetic_data",
]


def _resolve(spec: str | Path, directory: Path, suffixes: Sequence[str], what: str) -> Path:
    """:func:`simulator.shipped.resolve`, refusing an empty name (it would be ``.``)."""
    if not str(spec).strip():
        raise ConfigError(f"an empty path: expected {what} file or the name of a shipped one")
    return resolve(spec, directory, suffixes)


def load_arch(spec: str | Path, overrides: Sequence[str] = ()) -> ArchConfig:
    """Load an arch YAML, a SCALE-Sim ``.cfg`` or a shipped config's name, with overrides."""
    return arch_config.load_arch(_resolve(spec, ARCH_DIR, (".yaml",), "an arch config"),
                                 overrides, option_types())


def arch_loader(spec: str | Path) -> Callable[..., ArchConfig]:
    """Read an arch config once; the function returned validates it with ``--set``-style
    overrides (exactly what :func:`load_arch` does, without reading the file again).

    ``loader(overrides, name_overrides=False)`` starts its messages at ``arch.`` (the caller
    names the file and the overrides).
    """
    path = _resolve(spec, ARCH_DIR, (".yaml",), "an arch config")
    data = arch_config.read_arch_mapping(path)
    types = option_types()

    def load(overrides: Sequence[str] = (), name_overrides: bool = True) -> ArchConfig:
        return arch_config.arch_from_mapping(data, str(path), types, overrides,
                                             name_overrides=name_overrides)

    return load


def load_tech_table(spec: str | Path) -> TechTable:
    """Load a technology table: a path, or the name of a table in ``arch_configs/tech/``.

    Tables are kept per file (and its modification time): every run reads one, and parsing
    the YAML was about a third of a timing-only ResNet-18 run.
    """
    path = _resolve(spec, TECH_DIR, (".yaml",), "a technology table")
    try:
        stat = path.stat()
    except OSError:
        return load_tech(path)  # the loader's own error names the file
    return _load_tech_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _load_tech_cached(path: str, mtime_ns: int, size: int) -> TechTable:
    del mtime_ns, size  # part of the cache key only: an edited file is read again
    return load_tech(path)


def load_workload(spec: str | Path) -> Workload:
    """Load a workload YAML, a SCALE-Sim topology CSV, or a shipped workload's name."""
    path = _resolve(spec, WORKLOAD_DIR, (".yaml", ".npz"), "a workload")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_workload_yaml(path)  # its `data:` section checked (data_options)
    if suffix == ".csv":
        return load_topology_csv(path)
    if suffix == ".npz":
        from simulator.workloads.trace import load_trace  # zipfile and the trace checks

        return load_trace(path)
    if not path_exists(path):
        raise WorkloadError(f"{path}: file not found")
    raise WorkloadError(f"{path}: unknown workload format (expected .yaml, .csv or .npz)")


def with_synthetic_data(workload: Workload, required: Mapping[str, Any] | None = None
                        ) -> Workload:
    """A shape-only workload with seeded synthetic data (its YAML ``data:`` section, or the
    defaults of docs/synthetic-data.md, with ``required``, the options the PE needs
    (:meth:`PEModel.synthetic_data`), over them); a workload that has data is returned as
    it is."""
    if workload.tensors is not None:
        return workload
    from simulator.workloads.synthetic import SyntheticOptions, synthesize

    options = workload.data_options or SyntheticOptions()
    if required:
        options = dataclasses.replace(options, **required)
    return synthesize(workload, options)


#: Called with (layer index, layer count, layer name) as a run progresses.
Progress = Callable[[int, int, str], None]
#: Receives each layer's simulated outputs (layer layout, bias added) for --save-outputs.
OutputSink = Callable[[str, np.ndarray], None]


def _exact_result(pe: PEModel, layer: Layer, tensors: LayerTensors
                 ) -> FunctionalResult | None:
    """An exact PE's functional result from the non-zero counts of its operands alone
    (:meth:`PEModel.exact_counters`: no im2col, no GEMM, no error), or ``None`` when the PE
    cannot count that way."""
    counters = pe.exact_counters(layer, im2col_nonzeros(tensors.input, layer),
                                 weight_nonzeros(tensors.weight, layer))
    if counters is None:
        return None
    return FunctionalResult(counters=counters, stats=None,
                            errors=ErrorMetrics(0.0, 0, None, None), output_matches_trace=None)


def _functional(pe: PEModel, layer: Layer, tensors: LayerTensors,
                sink: OutputSink | None) -> FunctionalResult:
    """Run the PE's functional model on one layer's data.

    Work that cannot change the report is skipped (docs/performance.md): an exact PE needs no
    reference product, and when nothing asks for its outputs (no ``--save-outputs``, no
    recorded outputs to compare) its counters come from non-zero counts alone
    (:meth:`PEModel.exact_counters`), with no im2col and no GEMM. A PE that returns the
    exact product with its outputs (``GemmRun.exact``, SySMT) needs no reference product
    either (its error sums take one pass, :func:`simulator.kernels.metrics.error_sums`), and
    one that takes ``narrow_operands`` gets A and B in the data's own dtype. B is lowered
    block by block (:func:`simulator.hw.gemm.run_groups`); the outputs are gathered only
    when something asks for them.
    """
    if pe.exact and sink is None and tensors.output is None:
        result = _exact_result(pe, layer, tensors)
        if result is not None:
            return result
    dtype = None if pe.narrow_operands else np.int64
    wanted = sink is not None or tensors.output is not None  # the outputs themselves
    a = im2col(tensors.input, layer, dtype)
    sums = {"noise": 0.0, "signal": 0.0, "max": 0}

    def measure(g: int, b: np.ndarray, gemm: GemmRun) -> None:
        approx = gemm.outputs
        if pe.exact:  # exact by construction: no reference product
            flat = approx.astype(np.float64).ravel()
            sums["signal"] += float(np.dot(flat, flat))
            return
        if gemm.exact is not None:
            # The PE's own exact product, computed along the way (SySMT, a numba kernel):
            # the sums in one pass (docs/performance.md, "Transformers").
            from simulator.kernels.metrics import error_sums

            noise, largest, signal = error_sums(approx, gemm.exact)
            sums["max"] = max(sums["max"], largest)
            sums["noise"] += noise
            sums["signal"] += signal
            return
        exact = gemm_product(a[g][None], b[None])[0]
        diff = approx - exact
        if diff.size:
            sums["max"] = max(sums["max"], int(np.abs(diff).max()))
        flat = diff.astype(np.float64).ravel()
        sums["noise"] += float(np.dot(flat, flat))
        flat = exact.astype(np.float64).ravel()
        sums["signal"] += float(np.dot(flat, flat))

    run = run_groups(pe, layer, a,
                     lambda g, lo, hi: weight_columns(tensors.weight, layer, g, lo, hi,
                                                      dtype),
                     on_block=measure, keep_outputs=wanted)
    del a
    size = layer.gemm.groups * layer.gemm.m * layer.gemm.n
    noise, signal = sums["noise"], sums["signal"]
    sqnr = None if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    metrics = ErrorMetrics(noise / size if size else 0.0, sums["max"], sqnr,
                           signal / size if size else 0.0)
    match = None
    if wanted:  # the layer-layout outputs are asked for
        outputs = gemm_to_output(run.outputs, layer)
        if tensors.bias is not None:
            bias_shape = (1, -1) + (1,) * (outputs.ndim - 2)
            outputs = outputs + np.asarray(tensors.bias, dtype=np.int64).reshape(bias_shape)
        match = None if tensors.output is None else bool(np.array_equal(outputs,
                                                                          tensors.output))
        if sink is not None:
            sink(layer.name, outputs)
    return FunctionalResult(counters=run.counters, stats=run.stats or None, errors=metrics,
                            output_matches_trace=match)


def _layer_timing(arch: ArchConfig, layer: Layer, pe: PEModel,
                  fold_steps: FoldSteps | None) -> tuple[FoldTiming, dict[str, int] | None]:
    """The layer's array timing (totals and per-fold cycles) and, for a PE that reports
    alternatives beside the schedule it runs, their compute cycles."""
    array = arch.array

    def timing_for(steps: np.ndarray | None) -> FoldTiming:
        return fold_timing(layer.gemm, array.rows, array.cols, array.dataflow,
                           arch.timing.convention, layer_steps(pe, layer), steps)

    timing = timing_for(None if fold_steps is None else fold_steps.steps)
    setup = pe.setup_cycles(layer)
    if setup:  # the array waits for its edge before the first fold (docs/transformers.md)
        fold_cycles = timing.fold_cycles.copy()
        fold_cycles[0] += setup
        timing = dataclasses.replace(timing, fold_cycles=fold_cycles,
                                     compute_cycles=timing.compute_cycles + setup)
    alternatives = None
    if fold_steps is not None and fold_steps.alternatives:
        alternatives = {name: timing_for(steps).compute_cycles + setup
                        for name, steps in fold_steps.alternatives.items()}
    return timing, alternatives


def _layer_memory(arch: ArchConfig, layer: Layer, timing: FoldTiming,
                  env: simpy.Environment, coding: Any = None, storage: Any = None,
                  chain: Any = None, cacheable: bool = False
                  ) -> tuple[TileProgram, LayerSchedule | None]:
    """Plan the layer's tiles from its per-fold cycles and run them on ``env`` (``coding``:
    a :class:`simulator.memory.codec.LayerCoding`, coded activations; ``storage``: a
    :class:`simulator.memory.compression.LayerStorage`, compressed operands; ``chain``: a
    :class:`simulator.memory.prefetch.PrefetchChain` that runs the layer later, after the
    one before it: the schedule is then ``None``; ``cacheable``: the program is kept for its
    shape)."""
    array, memory = arch.array, arch.memory
    program = plan_layer(layer, array.rows, array.cols, array.dataflow, timing.fold_cycles,
                         memory, None if storage is None else storage.planned())
    if storage is not None:
        from simulator.memory.compression import stored_program

        program = stored_program(program, storage, memory.output_bits or layer.activation_bits)
    if coding is not None:
        from simulator.memory.codec import coded_program

        program = coded_program(program, coding)
    if chain is not None:
        chain.add(program, _dram(arch, env), cacheable)
        return program, None
    return program, _engine().run_layer(env, program, _dram(arch, env))


def _dram(arch: ArchConfig, env: simpy.Environment) -> Dram:
    """A layer's DRAM channel from now: the fixed bandwidth and latency, or a DRAM preset's
    device (docs/memory-model.md, "DRAM timing and energy")."""
    memory = arch.memory
    device = None
    if memory.dram != IDEAL:
        from simulator.memory.dram import DramDevice  # runs without a preset never load it

        device = DramDevice(dram_spec(memory.dram), arch.array.clock_mhz, origin=env.now)
    return _engine().Dram(memory.dram_bandwidth_bytes_per_cycle, memory.dram_latency_cycles,
                          device)


def _roofline_bandwidth(arch: ArchConfig) -> float | None:
    """Bytes per array cycle of the roofline: the ideal channel's, or a preset's peak."""
    memory = arch.memory
    if memory.dram == IDEAL:
        return memory.dram_bandwidth_bytes_per_cycle
    return dram_spec(memory.dram).peak_bytes_per_s / (arch.array.clock_mhz * 1e6)


@record
class _Checks:
    """The analytic cross-checks of one layer (docs/memory-model.md): the roofline and the
    HCM cost estimate."""

    roofline_cycles: int
    bound: str
    hcm_cycles: int
    hcm_bit_ops: float
    hcm_bits_moved: int


def _analytic_checks(arch: ArchConfig, layer: Layer, peak_macs: int, compute_cycles: int,
                     program: TileProgram) -> _Checks:
    """The roofline of the layer's compute cycles and DRAM bytes, and HCM's estimate from
    its counts alone (``peak_macs``: the PE's peak MACs per step)."""
    memory = arch.memory
    bandwidth = _roofline_bandwidth(arch)
    dram_bytes = sum(program.dram_reads) + sum(program.dram_writes)
    roof, bound = roofline(compute_cycles, dram_bytes, bandwidth)
    bits_moved = hcm_bits_moved(layer, memory.output_bits or layer.activation_bits)
    pes = arch.array.rows * arch.array.cols
    return _Checks(roofline_cycles=roof, bound=bound,
                   hcm_cycles=hcm_cycles(layer.gemm.macs, pes, peak_macs, bits_moved, bandwidth),
                   hcm_bit_ops=hcm_bit_ops(layer), hcm_bits_moved=bits_moved)


#: Reuse the timing and schedule of a layer shape that ran before (tests turn it off to
#: check that reuse changes nothing).
def _engine() -> Any:
    """:mod:`simulator.memory.run`, the memory model's SimPy processes.

    Imported when a run first schedules a layer, not with this module: a run whose
    functional models go to a forked child (:func:`simulate`) then imports SimPy and the
    engine after the fork, while the child works (docs/performance.md, "Start-up").
    """
    from simulator.memory import run

    return run


_REUSE_SHAPES = True


def _simulate_layer(arch: ArchConfig, layer: Layer, pe: PEModel,
                    functional_result: FunctionalResult | None, env: simpy.Environment,
                    fold_steps: FoldSteps | None = None, shapes: dict | None = None,
                    coding: Any = None, zap: Any = None, storage: Any = None,
                    chain: Any = None,
                    ) -> tuple[LayerResult | _Later, LayerSchedule | None, TileProgram]:
    """One layer on the array: timing, memory, analytic checks, then its result.

    ``shapes`` (timing from the shape alone) keeps the timing, plan and schedule of each
    layer shape (with the PE's steps, set-up and peak for it, which per-layer options may
    change): a layer whose shape ran before (a transformer's 32 identical blocks) reuses
    them, and the environment only advances past its cycles (a layer's schedule is relative
    to its start and every layer starts with empty buffers, docs/memory-model.md). With a
    DRAM preset only the timing and plan are kept: a refresh comes at fixed times, so the
    schedule depends on when the layer starts and is run anew.
    ``chain`` (cross-layer prefetch) runs the layer with its neighbours: its result is a
    :class:`_Later`, built when the chain has run.
    """
    key = None
    if shapes is not None:  # what the timing depends on: the shape and the PE's view of it
        key = (dataclasses.replace(layer, name=""), layer_steps(pe, layer),
               pe.setup_cycles(layer), pe.peak_macs_per_step(layer))
    if key is not None and key in shapes:
        timing, alternatives, program, schedule, peak, checks = shapes[key]
        if chain is not None:  # the plan only: the schedule depends on the neighbours
            chain.add(program, _dram(arch, env), cacheable=True)
            schedule = None
        elif schedule is None:  # planned in a chain before, or a DRAM preset: run it now
            schedule = _engine().run_layer(env, program, _dram(arch, env))
            if arch.memory.dram == IDEAL:
                shapes[key] = (timing, alternatives, program, schedule, peak, checks)
        elif schedule.elapsed:
            env.run(until=env.now + schedule.elapsed)
    else:
        timing, alternatives = _layer_timing(arch, layer, pe, fold_steps)
        if zap is not None:
            timing, zap_report = _zap_timing(arch, layer, timing, zap)
        program, schedule = _layer_memory(arch, layer, timing, env, coding, storage, chain,
                                          cacheable=key is not None)
        peak = pe.peak_macs_per_step(layer)
        checks = _analytic_checks(arch, layer, peak, timing.compute_cycles, program)
        if key is not None:
            kept = schedule if arch.memory.dram == IDEAL else None
            shapes[key] = (timing, alternatives, program, kept, peak, checks)

    def build(schedule: LayerSchedule) -> LayerResult:
        result = _layer_result(arch, layer, peak, timing, program, schedule, checks,
                               alternatives, functional_result)
        return result if zap is None else dataclasses.replace(result, zap=zap_report)

    return (_Later(build) if schedule is None else build(schedule)), schedule, program


def _layer_result(arch: ArchConfig, layer: Layer, peak: int, timing: FoldTiming,
                  program: TileProgram, schedule: LayerSchedule, checks: _Checks,
                  alternatives: dict[str, int] | None,
                  functional_result: FunctionalResult | None) -> LayerResult:
    """The layer's :class:`LayerResult` from what its steps computed."""
    gemm = layer.gemm
    compute = timing.compute_cycles
    # the layer's window: with cross-layer prefetch, from the previous layer's last unit
    # (docs/memory-model.md, "Cross-layer prefetch")
    first, last = (0, schedule.elapsed) if schedule.window is None else schedule.window
    total = reported_cycles(last - first, arch.timing.convention)
    units = program.units
    prefetch = int(schedule.start[0]) - first if units else 0
    drain = last - int(schedule.end[-1]) if units else 0
    pes = arch.array.rows * arch.array.cols
    reads, writes = program.dram_reads, program.dram_writes
    buffer_reads, buffer_writes = program.buffer_reads, program.buffer_writes
    peaks = schedule.peak
    result = LayerResult(
        name=layer.name, op=layer.op, m=gemm.m, k=gemm.k, n=gemm.n, groups=gemm.groups,
        folds=timing.folds, steps_per_fold=timing.steps_per_fold,
        cycles_per_fold=timing.cycles_per_fold, compute_cycles=compute,
        stall_cycles=total - compute, total_cycles=total, macs=gemm.macs,
        utilization=gemm.macs / (total * pes * peak) if total > 0 else 0.0,
        peak_macs_per_pe_cycle=peak,
        mapping_efficiency=timing.mapping_efficiency,
        compute_utilization=timing.compute_utilization,
        prefetch_cycles=prefetch, drain_cycles=drain, units=units,
        dram_ifmap_read_bytes=reads.ifmap, dram_filter_read_bytes=reads.filter,
        dram_psum_read_bytes=reads.psum, dram_ofmap_write_bytes=writes.ofmap,
        dram_psum_write_bytes=writes.psum,
        buffer_ifmap_read_bytes=buffer_reads.ifmap,
        buffer_ifmap_write_bytes=buffer_writes.ifmap,
        buffer_filter_read_bytes=buffer_reads.filter,
        buffer_filter_write_bytes=buffer_writes.filter,
        buffer_ofmap_read_bytes=buffer_reads.ofmap,
        buffer_ofmap_write_bytes=buffer_writes.ofmap,
        peak_ifmap_bytes=peaks.ifmap, peak_filter_bytes=peaks.filter,
        peak_ofmap_bytes=peaks.ofmap,
        ifmap_reuse=program.reuse["ifmap"], filter_reuse=program.reuse["filter"],
        ofmap_reuse=program.reuse["ofmap"], loop_order=program.loop_order, dram=schedule.dram,
        roofline_cycles=checks.roofline_cycles, bound=checks.bound,
        hcm_cycles=checks.hcm_cycles, hcm_bit_ops=checks.hcm_bit_ops,
        hcm_bits_moved=checks.hcm_bits_moved,
        alternative_cycles=alternatives,
        role=layer.role, kv_cache_read_bytes=reads.filter if layer.kv_cache else 0)
    return result if functional_result is None else _with_functional(result,
                                                                     functional_result)


def _with_functional(result: LayerResult, fr: FunctionalResult) -> LayerResult:
    """``result`` with the fields of the layer's functional result (a layer's timing does
    not depend on them: :func:`simulate` may run it before they are known)."""
    errors = fr.errors
    return dataclasses.replace(
        result, counters=fr.counters, stats=fr.stats,
        mse=None if errors is None else errors.mse,
        max_abs_error=None if errors is None else errors.max_abs_error,
        sqnr_db=None if errors is None else errors.sqnr_db,
        signal_power=None if errors is None else errors.signal_power,
        output_matches_trace=fr.output_matches_trace)


def _computed(future: Any, workload: Workload, layer: Layer) -> Any:
    """The result of a future of :func:`simulator.kernels.jit.in_process` about ``layer``
    (waits for it); a child that died is one line naming the layer."""
    try:
        return future.result()
    except ChildProcessError as exc:  # the process computing it died (out of memory?)
        raise SimulationError(f"{workload.source}: layer '{layer.name}': {exc}") from None


def _timeline(name: str, origin: int, schedule: LayerSchedule,
              program: TileProgram) -> LayerTimeline:
    if schedule.window is not None:  # from the window's start: prefetched loads before it
        first, last = schedule.window
        return LayerTimeline(
            name=name, origin=origin + first, elapsed=last - first,
            unit_fold=program.unit_fold, start=schedule.start - first,
            end=schedule.end - first, load_start=schedule.load_start - first,
            load_end=schedule.load_end - first, store_start=schedule.store_start - first,
            store_end=schedule.store_end - first, load_bytes=program.channel_load,
            store_bytes=program.store,
            claims=tuple(c - np.array([first, 0], dtype=np.int64) for c in schedule.claims))
    return LayerTimeline(
        name=name, origin=origin, elapsed=schedule.elapsed, unit_fold=program.unit_fold,
        start=schedule.start, end=schedule.end, load_start=schedule.load_start,
        load_end=schedule.load_end, store_start=schedule.store_start,
        store_end=schedule.store_end, load_bytes=program.channel_load,
        store_bytes=program.store, claims=tuple(schedule.claims))


#: Most folds of one layer (the timing and memory models keep per-fold arrays).
MAX_FOLDS = 1 << 24
#: Most (folds x 64-pixel words of an input row) of one conv2d layer: the memory model's
#: footprint of a conv input keeps one bitmask per input row and fold (about 10 s at the
#: limit on one core).
MAX_FOOTPRINT_WORK = 1 << 27


def _check_sizes(arch: ArchConfig, workload: Workload, needs_data: bool) -> None:
    """Refuse, before anything is allocated, a layer with too many folds on this array or,
    when the run holds data, whose data cannot fit (docs/config-reference.md, "Input
    limits")."""
    rows, cols = arch.array.rows, arch.array.cols
    for layer in workload.layers:
        if not layer.is_gemm:
            problem = data_problem(layer) if needs_data else None
            if problem is not None:
                raise SimulationError(f"{workload.source}: layer '{layer.name}': {problem}")
            continue
        gemm = layer.gemm
        if arch.array.dataflow == "os":
            spatial = (gemm.m, gemm.n)
        elif arch.array.dataflow == "ws":
            spatial = (gemm.k, gemm.n)
        else:
            spatial = (gemm.k, gemm.m)
        folds = gemm.groups * -(-spatial[0] // rows) * -(-spatial[1] // cols)
        if folds > MAX_FOLDS:
            raise SimulationError(
                f"{workload.source}: layer '{layer.name}': {folds:,} folds on the "
                f"{rows}x{cols} array of {arch.name}, more than the {MAX_FOLDS:,} sasim "
                f"simulates in one layer")
        if layer.op == "conv2d":
            work = folds * -(-layer.input_size[1] // 64)
            if work > MAX_FOOTPRINT_WORK:
                raise SimulationError(
                    f"{workload.source}: layer '{layer.name}': {folds:,} folds over input "
                    f"rows {layer.input_size[1]:,} pixels wide on the {rows}x{cols} array of "
                    f"{arch.name}: more than the memory model tracks in one layer "
                    f"(folds x row words {work:,} > {MAX_FOOTPRINT_WORK:,})")
        problem = data_problem(layer) if needs_data else None
        if problem is not None:
            raise SimulationError(f"{workload.source}: layer '{layer.name}': {problem}")


def simulate(arch: ArchConfig, workload: Workload, *, functional: bool = True,
             output_sink: OutputSink | None = None,
             progress: Progress | None = None, timeline: bool = False) -> RunResult:
    """Simulate every layer of ``workload`` on ``arch``.

    The layers run one after another on one SimPy environment created for this run: each
    layer's folds, loads and write-backs are scheduled by the memory model
    (docs/memory-model.md); with the default unbounded memory the cycles are the array's.

    Parameters
    ----------
    functional : run the PE's functional model when the workload carries data (a trace), or
        on synthetic data when the PE is data-dependent; ``False`` gives timing only.
    output_sink : called with each layer's simulated outputs (for ``--save-outputs``).
    progress : called before each layer with (index, count, name).
    timeline : keep every layer's schedule in ``RunResult.timeline`` (for ``--timeline``).
    """
    if arch.multicore.cores > 1:  # docs/memory-model.md, "Multi-core"
        raise ConfigError(f"arch {arch.name}: multicore.cores: {arch.multicore.cores} cores "
                          f"run through simulator.multicore.simulate (sasim run, compare "
                          f"and sweep call it)")
    pe = get_pe_model(arch.pe, arch.array)
    if arch.array.dataflow not in pe.dataflows:
        raise SimulationError(
            f"arch {arch.name}: PE type '{arch.pe.type}' is defined for the "
            f"{'/'.join(pe.dataflows)} dataflow, not '{arch.array.dataflow}'")
    check_layer_names(arch, workload)
    try:
        pe.check_layers({layer.name for layer in workload.layers})
        check_accumulator(pe, {layer.name for layer in workload.layers})
    except ValueError as exc:
        raise SimulationError(f"arch {arch.name}: {exc} (workload {workload.name})") from None
    codec = arch.memory.activation_codec.bits is not None  # coding needs data
    compress = _compresses(arch, pe)  # so does compression (docs/memory-model.md)
    _check_sizes(arch, workload,
                 (functional and workload.tensors is not None) or pe.needs_data(functional)
                 or codec or compress)
    for layer in workload.layers:
        problem = pe.layer_problem(layer) if layer.is_gemm else None
        if problem is not None:
            raise SimulationError(f"{workload.source}: layer '{layer.name}' on arch "
                                  f"{arch.name}: {problem}")
    zap = _zap_plan(arch, workload)  # {} without zap (docs/zap.md)
    if (pe.needs_data(functional) or (functional and _integer_layers(arch, workload))
            or codec or zap or compress):
        workload = with_synthetic_data(workload, pe.synthetic_data())
    run_functional = functional and workload.tensors is not None
    coding = None
    if codec:  # docs/transform-coding.md
        from simulator.memory.codec import RunCoding

        if arch.memory.activation_codec.tensor != "layer_input":
            raise ConfigError(f"arch {arch.name}: memory.activation_codec.tensor: "
                              f"pre_activation is modelled by sasim accuracy only (a run "
                              f"codes the tensors its layers load; docs/transform-coding.md)")

        coding = RunCoding(workload.layers, workload.tensors, arch.memory.activation_codec)
    compression = _run_compression(arch, pe, workload) if compress else None
    # a PE whose timing does not depend on the data: its functional models (a kernel's
    # work) in a child process, beside the engine (docs/performance.md, "Functional
    # models beside the engine")
    later = (run_functional and output_sink is None and not (codec or zap or compress)
             and not pe.weight_dependent_timing
             and (not pe.exact or workload.data_kind == "trace"))
    if later:
        from simulator.kernels.jit import can_fork, in_process

        later = can_fork()
    with contextlib.ExitStack() as stack:
        results = None
        if later:
            gemm = [layer for layer in workload.layers if layer.is_gemm]
            results = dict(zip([layer.name for layer in gemm], stack.enter_context(
                in_process(functools.partial(_layer_functional, pe, workload), gemm,
                           share=pe.runs_without_numba()))))
        # read once the functional child works (energy is priced at the end)
        return _run_layers(arch, pe, _arch_tech(arch), workload, run_functional, output_sink,
                           progress, timeline, coding, zap, compression, codec, results)


def _layer_functional(pe: PEModel, workload: Workload, layer: Layer) -> FunctionalResult:
    """An array layer's functional result (in the child of :func:`simulate`)."""
    return _functional(pe, layer, workload.tensors(layer.name), None)


def _run_layers(arch: ArchConfig, pe: PEModel, tech: TechTable, workload: Workload,
                run_functional: bool, output_sink: OutputSink | None,
                progress: Progress | None, timeline: bool, coding: Any, zap: dict,
                compression: Any, codec: bool, later: dict[str, Any] | None) -> RunResult:
    """:func:`simulate`'s layers, one after another on one SimPy environment.

    ``later``: the futures of the array layers' functional results, computed in a child
    process while the engine runs (docs/performance.md, "Functional models beside the
    engine"): the layers run as timing only, and each takes its functional result when all
    have run."""
    import simpy  # after the functional child has forked (_engine)

    env = simpy.Environment()
    layers, schedules = [], []
    prefetch = _Prefetch(arch, env, codec)
    # each layer shape's timing and plan; with a DRAM preset (whose refresh comes at fixed
    # times) not its schedule, which depends on when the layer starts
    shapes: dict | None = {} if _REUSE_SHAPES else None
    pending: _Pending | None = None
    count = len(workload.layers)
    for index, layer in enumerate(workload.layers):
        if progress is not None:
            progress(index, count, layer.name)
        origin = env.now
        if not layer.is_gemm or pending is not None:  # a vector layer ends the chain
            prefetch.finish(layers, schedules, timeline)
            origin = env.now
        if not layer.is_gemm:
            program = plan_vector_layer(layer, vector_cost(layer, arch.vector).cycles,
                                        arch.memory)
            dram = _dram(arch, env)
            if (arch.vector.overlap and index + 1 < count
                    and workload.layers[index + 1].is_gemm):
                # runs beside the next array layer; finished after it
                pending = _Pending(len(layers), layer, program, origin,
                                   _engine().start_layer(env, program, dram))
                layers.append(None)
                schedules.append(None)
                continue
            schedule = _engine().run_layer(env, program, dram, closed_form=False)
            result = _vector_layer(arch, layer, program, schedule, workload, run_functional)
        else:
            result, schedule, program = _array_layer(arch, pe, layer, workload, env,
                                                     run_functional and later is None,
                                                     output_sink, shapes, coding,
                                                     zap.get(layer.name), compression,
                                                     prefetch.chain(pending is None))
            if schedule is None:  # chained: its result once the chain has run
                prefetch.defer(len(layers), layer, result, program)
                layers.append(None)
                schedules.append(None)
                continue
        layers.append(result)
        schedules.append(_timeline(layer.name, origin, schedule, program) if timeline else None)
        if pending is not None:  # the overlapped vector layer, once this one is done
            vector_schedule = pending.started.finish()
            layers[pending.index] = _vector_layer(
                arch, pending.layer, pending.program, vector_schedule, workload,
                run_functional, overlap=min(vector_schedule.elapsed, schedule.elapsed))
            if timeline:
                schedules[pending.index] = _timeline(pending.layer.name, pending.origin,
                                                     vector_schedule, pending.program)
            pending = None
    prefetch.finish(layers, schedules, timeline)
    if later is not None:
        layers = [result if layer.name not in later else
                  _with_functional(result, _computed(later[layer.name], workload, layer))
                  for layer, result in zip(workload.layers, layers)]
    schedules = [s for s in schedules if s is not None]
    buffer_kib = _buffer_capacities_kib(arch, layers)
    area = array_area(tech, pe_composition(pe).parts, arch.array.rows * arch.array.cols,
                      buffer_kib)
    if any(not layer.is_gemm for layer in workload.layers):
        area = _with_vector_area(arch, tech, area)
    if codec:  # the coder lanes and the inverse's side unit (docs/energy-model.md)
        from simulator.energy.codec import codec_area_um2, with_codec_area

        area = with_codec_area(area, codec_area_um2(tech, **_codec_shape(arch)))
    layers = [_priced(arch, tech, area, buffer_kib, pe, layer, result)
              for layer, result in zip(workload.layers, layers)]
    return RunResult(arch=arch, workload=workload, layers=tuple(layers), tech=tech.name,
                     area=area, timeline=tuple(schedules) if timeline else None,
                     notes=run_notes(pe, layers))


def run_notes(pe: PEModel, layers: Sequence[LayerResult]) -> tuple[str, ...]:
    """The PE's report lines (:meth:`PEModel.notes`) from the run's stats totals."""
    stats: Counter[str] = Counter()
    for layer in layers:
        stats.update(layer.stats or {})
    return tuple(pe.notes(stats)) if stats else ()


@record
class _Pending:
    """A vector layer running beside the next array layer (``vector.overlap``)."""

    index: int
    layer: Layer
    program: TileProgram
    origin: int
    started: StartedLayer


class _Later:
    """A chained layer's result, built from its schedule once its prefetch chain has run
    (docs/memory-model.md, "Cross-layer prefetch")."""

    def __init__(self, build: Callable[[LayerSchedule], LayerResult]) -> None:
        self.build = build


def _then(result: LayerResult | _Later, step: Callable[[LayerResult], LayerResult]
          ) -> LayerResult | _Later:
    """``step`` applied to the result now, or when it is built."""
    if isinstance(result, _Later):
        build = result.build
        return _Later(lambda schedule: step(build(schedule)))
    return step(result)


class _Prefetch:
    """The run's cross-layer prefetch (docs/memory-model.md, "Cross-layer prefetch"):
    consecutive array layers join one :class:`simulator.memory.prefetch.PrefetchChain`, whose
    results are filled in when it runs (a vector layer, or the run's end, ends a chain).

    Off (every layer alone, as with ``none``) in mode ``none``, with the unbounded memory
    (nothing waits, so prefetch changes nothing and the closed form stays) and with coded
    activations (their inverse transform's cycles follow each layer).
    """

    def __init__(self, arch: ArchConfig, env: simpy.Environment, codec: bool) -> None:
        memory = arch.memory
        self.env = env
        self.mode = arch_config.prefetch_mode(memory.prefetch, arch.timing.convention,
                                              memory.double_buffering)
        unbounded = ((memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib) == (None,) * 3
                     and memory.dram == IDEAL and memory.dram_bandwidth_bytes_per_cycle is None
                     and memory.dram_latency_cycles == 0)
        self.on = self.mode != "none" and not unbounded and not codec
        self._chain: Any = None
        # chains of the same planned layers (a transformer's blocks) run once, when a
        # layer's schedule depends on nothing but its programs (no DRAM preset's refresh)
        self._cache: dict | None = {} if _REUSE_SHAPES and memory.dram == IDEAL else None
        self._deferred: list[tuple[int, Layer, _Later, TileProgram]] = []

    def chain(self, allowed: bool = True) -> Any:
        """The chain the next array layer joins, or ``None`` (it runs alone)."""
        if not (self.on and allowed):
            return None
        if self._chain is None:
            from simulator.memory.prefetch import PrefetchChain  # runs without it never load it

            self._chain = PrefetchChain(self.env, self.mode)
        return self._chain

    def defer(self, slot: int, layer: Layer, result: _Later, program: TileProgram) -> None:
        """A chained layer whose result goes to ``layers[slot]``."""
        self._deferred.append((slot, layer, result, program))

    def finish(self, layers: list, schedules: list, timeline: bool) -> None:
        """Run the chain to its end and fill in its layers' results (and timelines)."""
        if self._chain is None:
            return
        chain, self._chain = self._chain, None
        for (slot, layer, result, program), schedule, origin in zip(
                self._deferred, chain.finish(self._cache), chain.origins()):
            layers[slot] = result.build(schedule)
            if timeline:
                schedules[slot] = _timeline(layer.name, origin, schedule, program)
        self._deferred = []


def _array_layer(arch: ArchConfig, pe: PEModel, layer: Layer, workload: Workload,
                 env: simpy.Environment, run_functional: bool, output_sink: OutputSink | None,
                 shapes: dict | None, coding: Any = None, zap: Any = None,
                 compression: Any = None, chain: Any = None,
                 ) -> tuple[LayerResult | _Later, LayerSchedule | None, TileProgram]:
    """One array layer: its data, functional model, timing and memory (``shapes``: the
    run's per-shape cache of :func:`_simulate_layer`, used when the timing depends on the
    shape alone; ``coding``: the run's :class:`simulator.memory.codec.RunCoding`; ``zap``:
    the layer's :class:`simulator.hw.zap.LayerZap`, docs/zap.md; ``compression``: the run's
    :class:`simulator.memory.compression.RunCompression`; ``chain``: the run's
    :class:`simulator.memory.prefetch.PrefetchChain`, which runs the layer later)."""
    functional_result = None
    tensors = None
    if run_functional or pe.weight_dependent_timing or zap is not None:
        tensors = workload.tensors(layer.name)
    layer_coding = coded_input = None
    if coding is not None:
        out_bits = arch.memory.output_bits or layer.activation_bits
        layer_coding = coding.layer(layer, out_bits)
        coded_input = coding.input(layer.name)
        if tensors is not None and coded_input is not None:
            tensors = _decoded(tensors, coded_input.coded.decoded)
    outcome = None
    if zap is not None:
        functional_result, outcome = _zap_functional(arch, pe, layer, tensors, zap,
                                                     run_functional, output_sink)
    elif run_functional:
        functional_result = _functional(pe, layer, tensors, output_sink)
    fold_steps = None
    if pe.weight_dependent_timing:
        fold_steps = pe.column_fold_steps(layer, weights_to_gemm(tensors.weight, layer))
    storage = None if compression is None else compression.layer(layer, tensors)
    reuse = (fold_steps is None and not run_functional and coding is None and outcome is None
             and storage is None)
    result, schedule, program = _simulate_layer(
        arch, layer, pe, functional_result, env, fold_steps, shapes if reuse else None,
        layer_coding, outcome, storage, chain)
    if storage is not None:
        from simulator.memory.compression import compression_report

        report = compression_report(storage, program,
                                    arch.memory.output_bits or layer.activation_bits)
        result = _then(result, lambda r: dataclasses.replace(r, compression=report))
    if coding is not None:
        from simulator.memory.codec import codec_report, inverse_layer

        inverse = inverse_layer(layer, coded_input, program)
        inverse_cycles = 0
        if inverse is not None and coding.options.inverse == "array":  # a 1x1 GEMM
            inverse_cycles = _layer_timing(arch, inverse, pe, None)[0].compute_cycles
        extra, report = codec_report(coding.options, layer, program, coded_input,
                                     coding.consumer(layer.name), result.total_cycles,
                                     inverse, inverse_cycles, out_bits)
        if extra:
            env.run(until=env.now + extra)
        result = dataclasses.replace(result, total_cycles=result.total_cycles + extra,
                                     stall_cycles=result.stall_cycles + extra, codec=report)
    return result, schedule, program


def _compresses(arch: ArchConfig, pe: PEModel) -> bool:
    """The run compresses an operand: zero-compressed activations, or weights in a PE's own
    format (``memory.compression``; docs/memory-model.md, "Compressed operands")."""
    options = arch.memory.compression
    return options.activations != "none" or (
        options.weights and type(pe).stored_weights is not PEModel.stored_weights)


def _run_compression(arch: ArchConfig, pe: PEModel, workload: Workload) -> Any:
    """The run's :class:`simulator.memory.compression.RunCompression`: activation sizes from
    the layers' inputs, weight sizes from the PE's format of their weights."""
    from simulator.memory.compression import RunCompression

    options = arch.memory.compression
    weights = None
    if options.weights and type(pe).stored_weights is not PEModel.stored_weights:
        def weights(layer: Layer, tensors: LayerTensors) -> tuple[str, int] | None:
            return pe.stored_weights(layer, weights_to_gemm(tensors.weight, layer))
    return RunCompression(workload.layers, workload.tensors, options, weights,
                          "trace" if workload.data_kind == "trace" else "synthetic")


def _decoded(tensors: LayerTensors, decoded: np.ndarray) -> LayerTensors:
    """The layer's data with its input as the codec decoded it (the recorded output is
    dropped when decoding changed the input: it is no longer this input's output)."""
    same = np.array_equal(decoded, tensors.input)
    return dataclasses.replace(tensors, input=decoded.astype(tensors.input.dtype),
                               output=tensors.output if same else None)


# --------------------------------------------------------------------------- ZAP (docs/zap.md)

def check_layer_names(arch: ArchConfig, workload: Workload) -> None:
    """Refuse per-layer options naming a layer the workload lacks (``zap.layers``,
    ``multicore.layers``), whether or not their feature is on, and a ZAP override on a layer
    ZAP cannot apply to (it predicts conv2d outputs, docs/zap.md)."""
    layers = {layer.name: layer for layer in workload.layers}
    for key, named in (("zap.layers", arch.zap.layers),
                       ("multicore.layers", arch.multicore.layers)):
        unknown = sorted(set(named) - set(layers))
        if unknown:
            raise ConfigError(f"arch {arch.name}: {key}: no layer named {unknown[0]!r} in "
                              f"workload {workload.source}")
    for name, override in arch.zap.layers.items():
        if override.enabled and layers[name].op != "conv2d":
            raise ConfigError(f"arch {arch.name}: zap.layers.{name}: ZAP predicts the outputs "
                              f"of conv2d layers; '{name}' in {workload.source} is a "
                              f"{layers[name].op} layer (set enabled: false or drop it)")


def _zap_plan(arch: ArchConfig, workload: Workload) -> dict[str, Any]:
    """The layers ZAP applies to (:func:`simulator.hw.zap.plan_zap`); {} when it is off."""
    config = arch.zap
    if not config.enabled:
        return {}
    from simulator.hw import zap as hw_zap

    if arch.array.dataflow != "os":
        raise SimulationError(f"arch {arch.name}: zap is modelled on the OS dataflow, not "
                              f"'{arch.array.dataflow}'")
    trained = None
    if config.predictor_source == "trained":
        path = hw_zap.predictors_path(config, workload.source)
        if not config.predictors and (workload.format != "trace" or not path.is_file()):
            if config.untrained == "refuse":
                what = ("is shape-only" if workload.format != "trace"
                        else f"has no {path.name} beside it")
                raise ConfigError(f"arch {arch.name}: zap.predictor_source: trained needs a "
                                  f"trace with its predictors ({workload.name} {what}; use "
                                  f"zap.predictor_source: synthetic)")
            # The SYNTHETIC stand-in (zap.untrained, docs/zap.md): no threshold applies.
            config = dataclasses.replace(config, predictor_source="synthetic", threshold=0.0)
        else:
            try:
                trained = hw_zap.load_predictors(path)
            except ConfigError as exc:  # the file's own problem, and which design asked
                key = "zap.predictors" if config.predictors else "zap.predictor_source"
                raise ConfigError(f"arch {arch.name}: {key}: {exc}") from None
    try:
        return hw_zap.plan_zap(config, [l for l in workload.layers if l.is_gemm], trained)
    except ConfigError as exc:
        raise ConfigError(f"arch {arch.name}: {exc}") from None


def _zap_functional(arch: ArchConfig, pe: PEModel, layer: Layer, tensors: LayerTensors,
                    zap: Any, run_functional: bool, sink: OutputSink | None
                    ) -> tuple[FunctionalResult | None, Any]:
    """The layer's outputs with ZAP in the loop: the PE's outputs (the exact ones in a
    timing-only run) gated by the predictor; the sink gets the gated outputs."""
    from simulator.hw.zap import ZapOutcome, apply_zap

    from simulator.workloads.lowering import exact_output

    caught: dict[str, np.ndarray] = {}
    result = None
    if run_functional and pe.exact:  # the exact outputs, the counters from non-zero counts
        result = _exact_result(pe, layer, tensors)
    if run_functional and result is None:
        result = _functional(pe, layer, dataclasses.replace(tensors, output=None),
                             lambda name, out: caught.__setitem__("out", out))
        outputs = caught["out"]
    else:
        outputs = _zap_exact_output(tensors, layer)
    outcome: ZapOutcome = apply_zap(zap, outputs, arch.zap)
    if result is not None:  # the skipped steps' energy (docs/energy-model.md, "ZAP")
        outcome = _with_active_steps(outcome, tensors, layer)
    if sink is not None:
        sink(layer.name, outcome.outputs)
    if result is not None and tensors.output is not None:
        result = dataclasses.replace(result, output_matches_trace=bool(
            np.array_equal(outcome.outputs, tensors.output)))
    return result, (zap, outcome)


def _with_active_steps(outcome: Any, tensors: LayerTensors, layer: Layer) -> Any:
    """``outcome`` with its active steps counted (:func:`simulator.hw.zap.active_steps`)."""
    from threadpoolctl import threadpool_limits

    from simulator.hw.zap import active_steps

    with threadpool_limits(limits=1, user_api="blas"):  # as in _zap_exact_output
        skipped, total = active_steps(tensors.input, tensors.weight, layer, outcome.kept)
    return dataclasses.replace(outcome, counts={**outcome.counts, "active_steps": total,
                                                "skipped_active_steps": skipped})


def _zap_exact_output(tensors: LayerTensors, layer: Layer) -> np.ndarray:
    """The exact outputs (accumulator + bias) of a ZAP layer (a conv2d), by float32 BLAS on
    one thread when that is exact (:func:`simulator.kernels.zap.conv_exact_float32`), else
    as a trace defines them."""
    from threadpoolctl import threadpool_limits

    from simulator.kernels.zap import conv_exact_float32
    from simulator.workloads.lowering import exact_output, tap_geometry

    x = np.asarray(tensors.input)
    # One BLAS thread: the products are small (one per image and group), and BLAS threads
    # spinning on a shared machine made them 3x slower (docs/performance.md, "ZAP").
    with threadpool_limits(limits=1, user_api="blas"):
        out = conv_exact_float32(x, np.asarray(tensors.weight), layer.stride, layer.dilation,
                                 layer.padding, tap_geometry(layer, *x.shape[2:]),
                                 layer.output_size, layer.groups)
    if out is None:
        return exact_output(tensors, layer)
    if tensors.bias is not None:
        out += np.asarray(tensors.bias).astype(np.int64).reshape(1, -1, 1, 1)
    return out


def _zap_timing(arch: ArchConfig, layer: Layer, timing: FoldTiming, zap: Any
                ) -> tuple[FoldTiming, dict[str, Any]]:
    """The layer's timing with ZAP's two phases and predictor (docs/hardware-spec.md §9):
    the chosen schedule's cycles spread over the layer's folds (the memory model keeps the
    dense fold structure), and the report's figures."""
    from simulator.hw.zap import depthwise_layer, predictor_macs, zap_cycles

    plan, outcome = zap
    config, array = arch.zap, arch.array
    macs = predictor_macs(layer)
    if config.predictor == "array":
        dw = depthwise_layer(layer).gemm
        one = fold_timing(dw, array.rows, array.cols, "os", arch.timing.convention, dw.k)
        predictor = 2 * int(one.fold_cycles.sum())
    else:
        predictor = -(-macs // config.lanes)
    cycles = zap_cycles(layer, outcome, array.rows, array.cols, timing.cycles_per_fold,
                        predictor)
    dense = int(timing.fold_cycles.sum())
    total = cycles[f"cycles_{config.schedule}"]
    fold_cycles = timing.fold_cycles * total // max(dense, 1)
    fold_cycles[:total - int(fold_cycles.sum())] += 1
    counts = outcome.counts
    report = {"mask_type": plan.mask_type, "threshold": plan.threshold,
              "predictor": config.predictor, "schedule": config.schedule,
              "synthetic": plan.synthetic, **counts,
              "macs_saved": counts["predicted_zero"] * layer.gemm.k,
              "predictor_macs": macs, "dense_cycles": dense, **cycles}
    return dataclasses.replace(timing, fold_cycles=fold_cycles,
                               compute_cycles=reported_cycles(total, arch.timing.convention)
                               ), report


def _vector_layer(arch: ArchConfig, layer: Layer, program: TileProgram,
                  schedule: LayerSchedule, workload: Workload, run_functional: bool,
                  overlap: int = 0) -> LayerResult:
    """A vector layer's result: its schedule's figures, the cycles it hid under the next
    array layer, and in a functional run its integer-only variant's error on its data."""
    result = _vector_result(arch, layer, program, schedule)
    sqnr = None
    if run_functional and _integer_layers(arch, workload, layer):
        sqnr = _integer_sqnr(layer, workload.tensors(layer.name))
    return dataclasses.replace(result, overlap_cycles=overlap, vector_sqnr_db=sqnr)


def _vector_result(arch: ArchConfig, layer: Layer, program: TileProgram,
                   schedule: LayerSchedule) -> LayerResult:
    """A vector layer's :class:`LayerResult` (docs/transformers.md): no GEMM; M is its rows,
    K its row length; its operations by primitive in ``vector_operations``."""
    cost = vector_cost(layer, arch.vector)
    memory = arch.memory
    reads, writes = program.dram_reads, program.dram_writes
    dram_bytes = sum(reads) + sum(writes)
    roof, bound = roofline(cost.cycles, dram_bytes, _roofline_bandwidth(arch))
    total = schedule.elapsed
    units = program.units
    lanes = arch.vector.lanes
    return LayerResult(
        name=layer.name, op=layer.op, m=cost.rows, k=layer.in_channels, n=layer.out_channels,
        groups=1, folds=units, steps_per_fold=0, cycles_per_fold=0,
        compute_cycles=cost.cycles, stall_cycles=total - cost.cycles, total_cycles=total,
        macs=0, utilization=0.0, peak_macs_per_pe_cycle=1, mapping_efficiency=0.0,
        compute_utilization=(cost.work / (cost.vector_cycles * lanes)
                             if cost.vector_cycles else 0.0),
        prefetch_cycles=int(schedule.start[0]) if units else 0,
        drain_cycles=total - int(schedule.end[-1]) if units else 0, units=units,
        dram_ifmap_read_bytes=reads.ifmap, dram_ofmap_write_bytes=writes.ofmap,
        buffer_ifmap_read_bytes=program.buffer_reads.ifmap,
        buffer_ifmap_write_bytes=program.buffer_writes.ifmap,
        buffer_ofmap_read_bytes=program.buffer_reads.ofmap,
        buffer_ofmap_write_bytes=program.buffer_writes.ofmap,
        peak_ifmap_bytes=schedule.peak.ifmap, peak_filter_bytes=0,
        peak_ofmap_bytes=schedule.peak.ofmap, ifmap_reuse=program.reuse["ifmap"],
        filter_reuse="group", ofmap_reuse="fold", roofline_cycles=roof, bound=bound,
        unit="vector", role=layer.role, vector_operations=cost.operations, dram=schedule.dram,
        vector_lane_utilization=(cost.work / (total * lanes * arch.vector.clock_ratio)
                                 if total else 0.0))


def _integer_layers(arch: ArchConfig, workload: Workload, layer: Layer | None = None) -> bool:
    """Whether ``layer`` (or any layer of the workload) runs an integer-only variant whose
    error a functional run measures on data."""
    from simulator.hw.integer_ops import INTEGER_OPS

    vector = arch.vector
    return any(l.op in INTEGER_OPS and l.op not in vector.recipes
               and (vector.integer or l.op in vector.integer_ops)
               for l in ((layer,) if layer is not None else workload.layers))


def _integer_sqnr(layer: Layer, tensors: LayerTensors) -> float | None:
    """SQNR of the layer's integer-only variant against float64 on its input (rows along
    the last axis; the input scale of :func:`~simulator.hw.integer_ops.input_scale`)."""
    from simulator.hw.integer_ops import input_scale, integer_error

    x = np.asarray(tensors.input)
    if x.dtype.kind == "f":  # a trace's float input: 8-bit codes first (docs/transformers.md)
        q, scale = float_codes(x)
        return integer_error(layer.op, q.reshape(-1, layer.in_channels), scale)
    q = x.astype(np.int64).reshape(-1, layer.in_channels)
    return integer_error(layer.op, q, input_scale(layer.op, layer.activation_bits,
                                                  layer.activation_signed))


def _with_vector_area(arch: ArchConfig, tech: TechTable, area: AreaReport) -> AreaReport:
    """The area with the arch's vector unit; a table without its components names them."""
    try:
        return with_vector_unit(tech, area, VECTOR_PRIMITIVES, arch.vector.lanes)
    except ConfigError as exc:
        raise ConfigError(f"arch {arch.name}: energy.tech: {exc}") from None


def _arch_tech(arch: ArchConfig) -> TechTable:
    """The arch's technology table; a bad table names the arch key that chose it."""
    try:
        return load_tech_table(arch.energy.tech)
    except ConfigError as exc:
        raise ConfigError(f"arch {arch.name}: energy.tech: {exc}") from None


def _buffer_capacities_kib(arch: ArchConfig, layers: Sequence[LayerResult]) -> dict[str, float]:
    """Each buffer's capacity for area and access energy: its configured size, or, when the
    config leaves it unbounded, the largest occupancy any layer of the run reached
    (:func:`simulator.energy.scope.priced_buffer_kib`)."""
    memory = arch.memory
    configured = PerBuffer(memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib)
    peaks = [layer.peak_bytes for layer in layers]
    largest = (PerBuffer(*(max(column) for column in zip(*peaks))) if peaks
               else PerBuffer(0, 0, 0))
    return priced_buffer_kib(dict(zip(BUFFERS, configured)), dict(zip(BUFFERS, largest)))


def _priced(arch: ArchConfig, tech: TechTable, area: AreaReport,
            buffer_kib: Mapping[str, float], pe: PEModel, layer: Layer,
            result: LayerResult) -> LayerResult:
    """The layer's result with its energy (docs/energy-model.md); unchanged without counters
    (a vector layer's operations are its counters)."""
    if not layer.is_gemm:
        return _priced_vector(arch, tech, area, buffer_kib, result)
    if result.counters is None:
        return result
    composition = pe_composition(pe, layer)
    activity = LayerActivity(
        counters=result.counters, cycles=result.total_cycles,
        buffers=_buffer_traffic(buffer_kib, result, arch.memory.buffer_banks),
        dram_read_bytes=sum(result.dram_reads), dram_write_bytes=sum(result.dram_writes),
        dram_energy_pj=None if result.dram is None else result.dram["energy_pj"])
    extra = pe.extra_actions(layer, result.stats or {})
    zap = None
    if result.zap is not None and "active_steps" in result.zap:  # docs/energy-model.md, "ZAP"
        activity, extra, zap = _zap_priced(arch, tech, pe, layer, result, composition,
                                           activity, extra)
    codec = result.codec
    if codec is not None:  # the inverse transform's MACs (docs/transform-coding.md)
        extra = dict(extra)
        for component in ("mult_8x8", "adder_32"):
            extra[component] = extra.get(component, 0) + codec["inverse_macs"]
    energy = layer_energy(tech, parts=composition.parts, events=composition.events,
                          pes=arch.array.rows * arch.array.cols, activity=activity, area=area,
                          clock_mhz=arch.array.clock_mhz, extra_actions=extra)
    if codec is not None:
        codec = {**codec, "dram_energy_saved_pj":
                 codec["dram_bytes_saved"] * tech.dram.energy_pj_per_byte}
        energy, codec = _codec_priced(arch, tech, result, energy, codec)
    if zap is not None:  # the side unit's registers and leakage
        breakdown = dict(energy.breakdown_pj)
        breakdown["registers"] += zap.get("side_unit_register_pj", 0.0)
        breakdown["leakage"] += zap.get("side_unit_leakage_pj", 0.0)
        energy = EnergyReport(breakdown)
        zap = {**result.zap, **{f"energy_{k}" if k.endswith("_pj") else k: v
                                for k, v in zap.items()}}
    compression = result.compression
    if compression is not None and arch.memory.dram == IDEAL:
        # at the table's price per byte; a DRAM preset's energy is not per byte (its saving
        # is in the run's DRAM energy against a run without compression)
        compression = {**compression, "dram_energy_saved_pj":
                       compression["dram_bytes_saved"] * tech.dram.energy_pj_per_byte}
    return dataclasses.replace(result, energy_pj=energy.total_pj,
                               energy_breakdown_pj=dict(energy.breakdown_pj), codec=codec,
                               zap=zap if zap is not None else result.zap,
                               compression=compression)


def _codec_shape(arch: ArchConfig) -> dict[str, Any]:
    """The codec's hardware parameters (:mod:`simulator.energy.codec`)."""
    options = arch.memory.activation_codec
    return {"bits": options.bits, "lanes": options.lanes, "word_bits": options.word_bits,
            "side_unit_macs": (options.side_unit_macs_per_cycle
                               if options.inverse == "side_unit" else None)}


def _codec_priced(arch: ArchConfig, tech: TechTable, result: LayerResult,
                  energy: EnergyReport, codec: dict) -> tuple[EnergyReport, dict]:
    """The layer's energy with its coder lanes' (the ``codec`` class) and its codec report
    with the figures (docs/energy-model.md, "Transform codec")."""
    from simulator.energy.codec import CODEC_CLASS, codec_energy

    figures = codec_energy(tech, codec, cycles=result.total_cycles, **_codec_shape(arch))
    breakdown = dict(energy.breakdown_pj)
    breakdown[CODEC_CLASS] = breakdown.get(CODEC_CLASS, 0.0) + sum(figures.values())
    figures = {k.replace("_pj", "_energy_pj"): v for k, v in figures.items()}
    return EnergyReport(breakdown), {**codec, **figures,
                                     "codec_energy_pj": sum(figures.values())}


def _zap_priced(arch: ArchConfig, tech: TechTable, pe: PEModel, layer: Layer,
                result: LayerResult, composition: Any, activity: LayerActivity,
                extra: Mapping[str, float]) -> tuple[LayerActivity, dict[str, float], dict]:
    """A ZAP layer's priced activity: the gated-off outputs' PE-steps removed from the
    counters, the predictor's MACs and the gating logic added as actions, and its energy
    figures (:func:`simulator.energy.zap.zap_energy`)."""
    from simulator.energy.zap import (logic_actions, predictor_actions, skipped_counters,
                                      zap_energy)

    report = result.zap
    skipped = skipped_counters(result.counters, pe.reduction_steps(layer),
                               report["predicted_zero"], report["skipped_active_steps"],
                               report["active_steps"])
    counters = {k: v - skipped.get(k, 0) for k, v in result.counters.items()}
    extra = dict(extra)
    for actions in (predictor_actions(report["predictor_macs"]), logic_actions(report)):
        for component, count in actions.items():
            extra[component] = extra.get(component, 0) + count
    figures = zap_energy(tech, report, composition.events, skipped, arch.zap.lanes,
                         result.total_cycles, arch.array.clock_mhz)
    return dataclasses.replace(activity, counters=counters), extra, figures


def _buffer_traffic(buffer_kib: Mapping[str, float], result: LayerResult,
                    banks: int = 1) -> dict[str, BufferTraffic]:
    """Each buffer's traffic, priced at one bank's size (``memory.buffer_banks``)."""
    return {name: BufferTraffic(buffer_kib[name] / banks, reads, writes)
            for name, reads, writes in zip(BUFFERS, result.buffer_reads, result.buffer_writes)
            if name in buffer_kib}


def _priced_vector(arch: ArchConfig, tech: TechTable, area: AreaReport,
                   buffer_kib: Mapping[str, float], result: LayerResult) -> LayerResult:
    """A vector layer's energy: each operation priced by its ``vector_<primitive>``
    component, plus its buffer and DRAM traffic and the design's leakage over its cycles."""
    components = vector_components(VECTOR_PRIMITIVES)
    activity = LayerActivity(
        counters=result.vector_operations, cycles=result.total_cycles,
        buffers=_buffer_traffic(buffer_kib, result, arch.memory.buffer_banks),
        dram_read_bytes=sum(result.dram_reads), dram_write_bytes=sum(result.dram_writes),
        dram_energy_pj=None if result.dram is None else result.dram["energy_pj"])
    try:
        energy = layer_energy(tech, parts={}, events={p: {c: 1} for p, c in components.items()},
                              pes=0, activity=activity, area=area,
                              clock_mhz=arch.array.clock_mhz)
    except ConfigError as exc:
        raise ConfigError(f"arch {arch.name}: energy.tech: {exc}") from None
    return dataclasses.replace(result, energy_pj=energy.total_pj,
                               energy_breakdown_pj=dict(energy.breakdown_pj))
