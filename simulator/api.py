"""The one wiring point: load an arch and a workload, simulate, return a :class:`RunResult`.

The CLI, sweeps and notebooks all go through these functions.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import simpy

import simulator
from simulator.config import arch as arch_config
from simulator.config.arch import ArchConfig
from simulator.config.schema import dump
from simulator.energy.model import (AreaReport, BufferTraffic, EnergyReport, LayerActivity,
                                    array_area, layer_energy)
from simulator.energy.tech import TechTable, load_tech
from simulator.errors import ConfigError, SimulationError, WorkloadError
from simulator.hw.pe import FoldSteps, PEModel, get_pe_model, option_types
from simulator.hw.timing import column_fold_cycles, fold_cycles, fold_timing
from simulator.memory import (Dram, LayerSchedule, TileProgram, hcm_bit_ops, hcm_bits_moved,
                              hcm_cycles, plan_layer, roofline, run_layer)
from simulator.workloads.layers import Layer, LayerTensors, Workload
from simulator.workloads.lowering import gemm_product, gemm_to_output, im2col, weights_to_gemm
from simulator.workloads.shapes import load_topology_csv, load_workload_yaml
from simulator.workloads.synthetic import (SyntheticOptions, synthesize,
                                           synthetic_options_from_file)
from simulator.workloads.trace import load_trace

__all__ = [
    "REPO_ROOT",
    "ARCH_DIR",
    "TECH_DIR",
    "WORKLOAD_DIR",
    "LayerResult",
    "LayerTimeline",
    "RunResult",
    "load_arch",
    "load_tech_table",
    "load_workload",
    "shipped_archs",
    "shipped_workloads",
    "simulate",
    "with_synthetic_data",
]

REPO_ROOT = Path(simulator.__file__).resolve().parent.parent
ARCH_DIR = REPO_ROOT / "arch_configs"
TECH_DIR = ARCH_DIR / "tech"
WORKLOAD_DIR = REPO_ROOT / "workloads"


def _resolve(spec: str | Path, folder: Path, suffixes: Sequence[str]) -> Path:
    """A path as given, or the name of a shipped file in ``folder`` (``resnet18``)."""
    path = Path(spec)
    if path.exists() or path.suffix:
        return path
    for suffix in suffixes:
        candidate = folder / f"{spec}{suffix}"
        if candidate.exists():
            return candidate
    return path


def shipped_archs() -> list[Path]:
    """The arch configs shipped in ``arch_configs/``."""
    return sorted(ARCH_DIR.glob("*.yaml"))


def shipped_workloads() -> list[Path]:
    """The workloads shipped in ``workloads/`` (YAML and traces)."""
    return sorted([*WORKLOAD_DIR.glob("*.yaml"), *WORKLOAD_DIR.glob("*.npz")])


def load_arch(spec: str | Path, overrides: Sequence[str] = ()) -> ArchConfig:
    """Load an arch YAML, a SCALE-Sim ``.cfg`` or a shipped config's name, with overrides."""
    return arch_config.load_arch(_resolve(spec, ARCH_DIR, (".yaml",)), overrides, option_types())


def load_tech_table(spec: str | Path) -> TechTable:
    """Load a technology table: a path, or the name of a table in ``arch_configs/tech/``.

    Tables are kept per file (and its modification time): every run reads one, and parsing
    the YAML was about a third of a timing-only ResNet-18 run.
    """
    path = _resolve(spec, TECH_DIR, (".yaml",))
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
    path = _resolve(spec, WORKLOAD_DIR, (".yaml", ".npz"))
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        workload = load_workload_yaml(path)
        synthetic_options_from_file(path)  # a bad `data:` section fails now, not mid-run
        return workload
    if suffix == ".csv":
        return load_topology_csv(path)
    if suffix == ".npz":
        return load_trace(path)
    if not path.exists():
        raise WorkloadError(f"{path}: file not found")
    raise WorkloadError(f"{path}: unknown workload format (expected .yaml, .csv or .npz)")


def with_synthetic_data(workload: Workload) -> Workload:
    """A shape-only workload with seeded synthetic data (its YAML ``data:`` section, or the
    defaults of docs/synthetic-data.md); a workload that has data is returned as it is."""
    if workload.tensors is not None:
        return workload
    options = (synthetic_options_from_file(workload.source) if workload.format == "yaml"
               else SyntheticOptions())
    return synthesize(workload, options)


@dataclasses.dataclass(frozen=True)
class LayerResult:
    """Everything the simulator reports for one layer (cycles are integers).

    ``total_cycles = compute_cycles + stall_cycles``; the stalls include ``prefetch_cycles``
    (before the first fold can start) and ``drain_cycles`` (after the last fold, until its
    outputs are in DRAM). Byte counts are per operand; ``dram_psum_*`` are partial sums
    spilled and read back (WS/IS), ``buffer_*`` the traffic at the on-chip buffers and
    ``peak_*`` their largest occupancy. ``roofline_cycles`` and ``hcm_*`` are the analytic
    cross-checks of docs/memory-model.md.
    """

    name: str
    op: str
    m: int
    k: int
    n: int
    groups: int
    folds: int
    steps_per_fold: int
    cycles_per_fold: int
    compute_cycles: int
    stall_cycles: int
    total_cycles: int
    macs: int
    utilization: float
    mapping_efficiency: float
    compute_utilization: float
    peak_macs_per_pe_cycle: int = 1
    prefetch_cycles: int = 0
    drain_cycles: int = 0
    units: int = 0
    dram_ifmap_read_bytes: int = 0
    dram_filter_read_bytes: int = 0
    dram_psum_read_bytes: int = 0
    dram_ofmap_write_bytes: int = 0
    dram_psum_write_bytes: int = 0
    buffer_ifmap_read_bytes: int = 0
    buffer_ifmap_write_bytes: int = 0
    buffer_filter_read_bytes: int = 0
    buffer_filter_write_bytes: int = 0
    buffer_ofmap_read_bytes: int = 0
    buffer_ofmap_write_bytes: int = 0
    peak_ifmap_bytes: int = 0
    peak_filter_bytes: int = 0
    peak_ofmap_bytes: int = 0
    ifmap_reuse: str = "group"
    filter_reuse: str = "group"
    ofmap_reuse: str = "fold"
    loop_order: str = "column_folds_outer"
    roofline_cycles: int = 0
    bound: str = "compute"
    hcm_cycles: int = 0
    hcm_bit_ops: float = 0.0
    hcm_bits_moved: int = 0
    counters: dict[str, int] | None = None
    #: Further integer totals of the PE model (GemmRun.stats), e.g. SWIS's stored weight bits.
    stats: dict[str, int] | None = None
    #: Compute cycles under alternatives the PE reports beside the one it runs (FoldSteps),
    #: e.g. SWIS's ``scheduled`` / ``unscheduled`` filter orders.
    alternative_cycles: dict[str, int] | None = None
    mse: float | None = None
    max_abs_error: int | None = None
    sqnr_db: float | None = None
    signal_power: float | None = None
    output_matches_trace: bool | None = None
    energy_pj: float | None = None
    energy_breakdown_pj: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class ErrorMetrics:
    """Numeric error of the simulated outputs against the exact GEMM."""

    mse: float
    max_abs_error: int
    sqnr_db: float | None  # None when there is no error at all
    signal_power: float


def error_metrics(approx: np.ndarray, exact: np.ndarray) -> ErrorMetrics:
    """MSE, max |error| and SQNR (dB) of integer outputs ``approx`` against ``exact``."""
    diff = (approx - exact).astype(np.float64)
    noise = float(np.mean(diff * diff)) if diff.size else 0.0
    signal = float(np.mean(exact.astype(np.float64) ** 2)) if exact.size else 0.0
    sqnr = None if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    return ErrorMetrics(noise, int(np.abs(approx - exact).max()) if diff.size else 0, sqnr,
                        signal)


#: Called with (layer index, layer count, layer name) as a run progresses.
Progress = Callable[[int, int, str], None]
#: Receives each layer's simulated outputs (layer layout, bias added) for --save-outputs.
OutputSink = Callable[[str, np.ndarray], None]


@dataclasses.dataclass(frozen=True)
class LayerTimeline:
    """One layer's schedule for the timeline: cycles from the run's start (plain arrays).

    ``start``/``end`` per unit (a fold, or a chunk of a fold when an operand is streamed);
    ``load_*``/``store_*`` per unit, -1 when the unit has none; ``load_bytes`` (U, 3): ifmap,
    filter, partial sums; ``store_bytes`` (U, 2): outputs, partial sums.
    """

    name: str
    origin: int
    elapsed: int
    unit_fold: np.ndarray
    start: np.ndarray
    end: np.ndarray
    load_start: np.ndarray
    load_end: np.ndarray
    store_start: np.ndarray
    store_end: np.ndarray
    load_bytes: np.ndarray
    store_bytes: np.ndarray


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The result of simulating one workload on one arch.

    ``timeline`` holds each layer's schedule when :func:`simulate` was asked for it.
    """

    arch: ArchConfig
    workload: Workload
    layers: tuple[LayerResult, ...]
    tech: str | None = None
    area: AreaReport | None = None
    timeline: tuple[LayerTimeline, ...] | None = None

    @property
    def total_cycles(self) -> int:
        return sum(layer.total_cycles for layer in self.layers)

    @property
    def compute_cycles(self) -> int:
        return sum(layer.compute_cycles for layer in self.layers)

    @property
    def stall_cycles(self) -> int:
        return sum(layer.stall_cycles for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def utilization(self) -> float:
        """MACs done over the MACs the array could do in the run's cycles (a fraction)."""
        pes = self.arch.array.rows * self.arch.array.cols
        capacity = sum(l.total_cycles * pes * l.peak_macs_per_pe_cycle for l in self.layers)
        return self.macs / capacity if capacity else 0.0

    def summary(self) -> dict[str, Any]:
        """The run as plain data: what ``summary.json`` holds and reports read."""
        arch = self.arch
        return {
            "sasim_version": simulator.__version__,
            "arch": arch.name,
            "arch_config": dump(arch),
            "workload": self.workload.name,
            "workload_source": self.workload.source,
            "workload_format": self.workload.format,
            "data": self.workload.data_kind,
            "convention": arch.timing.convention,
            "clock_mhz": arch.array.clock_mhz,
            "total_cycles": self.total_cycles,
            "compute_cycles": self.compute_cycles,
            "stall_cycles": self.stall_cycles,
            "time_us": self.total_cycles / arch.array.clock_mhz,
            "macs": self.macs,
            "utilization": self.utilization,
            **self._alternative_totals(),
            **self._memory_totals(),
            **self._functional_totals(),
            **self._energy_totals(),
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
        }

    def _energy_totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tech": self.tech}
        if self.area is not None:
            out.update(area_um2=self.area.total_um2, area_mm2=self.area.total_um2 / 1e6,
                       array_area_um2=self.area.array_um2,
                       area_breakdown_um2=dict(self.area.breakdown_um2))
        priced = [l for l in self.layers if l.energy_breakdown_pj is not None]
        if not priced or len(priced) != len(self.layers):
            out["energy_pj"] = None
            return out
        total = sum((EnergyReport(l.energy_breakdown_pj) for l in priced),
                    EnergyReport({}))
        breakdown = total.breakdown_pj
        # The array alone (its PEs, control and wiring, and their share of leakage): the
        # scope of a synthesised PE array, which is what the papers compare.
        area = self.area
        share = area.array_um2 / area.total_um2 if area is not None and area.total_um2 else 1.0
        array_pj = (sum(breakdown[k] for k in ("multipliers", "adders", "registers", "pe_logic"))
                    + breakdown["leakage"] * share)
        out.update(energy_pj=total.total_pj, energy_uj=total.total_pj / 1e6,
                   energy_breakdown_pj=dict(breakdown), array_energy_pj=array_pj,
                   energy_per_mac_pj=total.total_pj / self.macs if self.macs else None)
        return out

    def _alternative_totals(self) -> dict[str, Any]:
        with_alternatives = [l.alternative_cycles for l in self.layers if l.alternative_cycles]
        if not with_alternatives:
            return {}
        totals: Counter[str] = Counter()
        for cycles in with_alternatives:
            totals.update(cycles)
        return {"alternative_cycles": dict(totals)}

    def _memory_totals(self) -> dict[str, Any]:
        """Run totals of the memory figures (sums; peaks are maxima over layers)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(LayerResult):
            name = field.name
            if name.startswith(("dram_", "buffer_")) or name in (
                    "prefetch_cycles", "drain_cycles", "roofline_cycles", "hcm_cycles",
                    "hcm_bits_moved"):
                out[name] = sum(getattr(layer, name) for layer in self.layers)
            elif name.startswith("peak_") and name.endswith("_bytes"):
                out[name] = max((getattr(layer, name) for layer in self.layers), default=0)
        out["hcm_bit_ops"] = sum(layer.hcm_bit_ops for layer in self.layers)
        out["memory_bound_layers"] = sum(layer.bound == "memory" for layer in self.layers)
        return out

    def _functional_totals(self) -> dict[str, Any]:
        simulated = [layer for layer in self.layers if layer.counters is not None]
        if not simulated:
            return {"functional": False}
        counters: Counter[str] = Counter()
        stats: Counter[str] = Counter()
        for layer in simulated:
            counters.update(layer.counters)
            stats.update(layer.stats or {})
        signal = sum(l.signal_power * l.m * l.n * l.groups for l in simulated)
        noise = sum(l.mse * l.m * l.n * l.groups for l in simulated)
        matches = [l.output_matches_trace for l in simulated if l.output_matches_trace is not None]
        return {
            "functional": True,
            "counters": dict(counters),
            **({"stats": dict(stats)} if stats else {}),
            "mse": noise / sum(l.m * l.n * l.groups for l in simulated),
            "max_abs_error": max(l.max_abs_error for l in simulated),
            "sqnr_db": None if noise == 0 else 10 * math.log10(signal / noise),
            "outputs_match_trace": all(matches) if matches else None,
        }


def _functional(pe: PEModel, layer: Layer, tensors: LayerTensors,
                sink: OutputSink | None) -> dict[str, Any]:
    """Run the PE's functional model on one layer's data; returns LayerResult fields."""
    a = im2col(tensors.input, layer)
    b = weights_to_gemm(tensors.weight, layer)
    counters: Counter[str] = Counter({name: 0 for name in pe.counter_names})
    stats: Counter[str] = Counter({name: 0 for name in pe.stat_names})
    approx = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=np.int64)
    for g in range(a.shape[0]):
        run = pe.simulate_gemm(layer, a[g], b[g])
        approx[g] = run.outputs
        counters.update(run.counters)
        stats.update(run.stats)
    exact = approx if pe.type_name == "dense" else gemm_product(a, b)
    del a, b
    metrics = error_metrics(approx, exact)
    del exact
    outputs = gemm_to_output(approx, layer)
    if tensors.bias is not None:
        bias_shape = (1, -1) + (1,) * (outputs.ndim - 2)
        outputs = outputs + np.asarray(tensors.bias, dtype=np.int64).reshape(bias_shape)
    match = None if tensors.output is None else bool(np.array_equal(outputs, tensors.output))
    if sink is not None:
        sink(layer.name, outputs)
    return {"counters": dict(counters), "stats": dict(stats) if stats else None,
            "mse": metrics.mse,
            "max_abs_error": metrics.max_abs_error, "sqnr_db": metrics.sqnr_db,
            "signal_power": metrics.signal_power, "output_matches_trace": match}


def _simulate_layer(arch: ArchConfig, layer: Layer, pe: PEModel, functional: dict[str, Any],
                    env: simpy.Environment, fold_steps: FoldSteps | None = None,
                    ) -> tuple[LayerResult, LayerSchedule, TileProgram]:
    gemm = layer.gemm
    rows, cols = arch.array.rows, arch.array.cols

    def timing_for(steps: np.ndarray | None):
        return fold_timing(gemm, rows, cols, arch.array.dataflow, arch.timing.convention,
                           pe.reduction_steps(layer), steps)

    timing = timing_for(None if fold_steps is None else fold_steps.steps)
    if fold_steps is not None and fold_steps.alternatives:
        functional = {**functional, "alternative_cycles": {
            name: timing_for(steps).compute_cycles
            for name, steps in fold_steps.alternatives.items()}}
    # One entry per fold: the memory model takes whatever lengths the PE's folds have.
    if fold_steps is None:
        cycles = fold_cycles(timing)
    else:
        cycles = column_fold_cycles(gemm, rows, cols, arch.timing.convention, fold_steps.steps)
    program = plan_layer(layer, rows, cols, arch.array.dataflow, cycles, arch.memory)
    memory = arch.memory
    dram = Dram(memory.dram_bandwidth_bytes_per_cycle, memory.dram_latency_cycles)
    schedule = run_layer(env, program, dram)
    # SCALE-Sim's totals are the index of the last cycle: one less than the count.
    index_shift = 1 if arch.timing.convention == "scalesim" else 0
    compute = int(cycles.sum()) - index_shift
    total = schedule.elapsed - index_shift
    units = program.units
    prefetch = int(schedule.start[0]) if units else 0
    drain = schedule.elapsed - int(schedule.end[-1]) if units else 0
    pes = rows * cols
    peak = pe.peak_macs_per_step(layer)
    reads, writes = program.dram_read_bytes, program.dram_write_bytes
    dram_bytes = int(reads.sum() + writes.sum())
    roof, bound = roofline(compute, dram_bytes, memory.dram_bandwidth_bytes_per_cycle)
    bits_moved = hcm_bits_moved(layer, memory.output_bits or layer.activation_bits)
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
        dram_ifmap_read_bytes=int(reads[0]), dram_filter_read_bytes=int(reads[1]),
        dram_psum_read_bytes=int(reads[2]), dram_ofmap_write_bytes=int(writes[0]),
        dram_psum_write_bytes=int(writes[1]),
        buffer_ifmap_read_bytes=buffer_reads[0], buffer_ifmap_write_bytes=buffer_writes[0],
        buffer_filter_read_bytes=buffer_reads[1], buffer_filter_write_bytes=buffer_writes[1],
        buffer_ofmap_read_bytes=buffer_reads[2], buffer_ofmap_write_bytes=buffer_writes[2],
        peak_ifmap_bytes=peaks[0], peak_filter_bytes=peaks[1], peak_ofmap_bytes=peaks[2],
        ifmap_reuse=program.reuse["ifmap"], filter_reuse=program.reuse["filter"],
        ofmap_reuse=program.reuse["ofmap"], loop_order=program.loop_order,
        roofline_cycles=roof, bound=bound,
        hcm_cycles=hcm_cycles(gemm.macs, pes, peak, bits_moved,
                              memory.dram_bandwidth_bytes_per_cycle),
        hcm_bit_ops=hcm_bit_ops(layer), hcm_bits_moved=bits_moved,
        **functional)
    return result, schedule, program


def _timeline(name: str, origin: int, schedule: LayerSchedule,
              program: TileProgram) -> LayerTimeline:
    return LayerTimeline(
        name=name, origin=origin, elapsed=schedule.elapsed, unit_fold=program.unit_fold,
        start=schedule.start, end=schedule.end, load_start=schedule.load_start,
        load_end=schedule.load_end, store_start=schedule.store_start,
        store_end=schedule.store_end, load_bytes=program.load, store_bytes=program.store)


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
    pe = get_pe_model(arch.pe, arch.array)
    if arch.array.dataflow not in pe.dataflows:
        raise SimulationError(
            f"arch {arch.name}: PE type '{arch.pe.type}' is defined for the "
            f"{'/'.join(pe.dataflows)} dataflow, not '{arch.array.dataflow}'")
    try:
        pe.check_layers({layer.name for layer in workload.layers})
    except ValueError as exc:
        raise SimulationError(f"arch {arch.name}: {exc} (workload {workload.name})") from None
    tech = _arch_tech(arch)
    if (functional and pe.data_dependent) or pe.weight_dependent_timing:
        workload = with_synthetic_data(workload)
    run_functional = functional and workload.tensors is not None
    env = simpy.Environment()
    layers, schedules = [], []
    for index, layer in enumerate(workload.layers):
        if progress is not None:
            progress(index, len(workload.layers), layer.name)
        fields: dict[str, Any] = {}
        tensors = None
        if run_functional or pe.weight_dependent_timing:
            tensors = workload.tensors(layer.name)
        if run_functional:
            fields = _functional(pe, layer, tensors, output_sink)
        fold_steps = None
        if pe.weight_dependent_timing:
            fold_steps = pe.column_fold_steps(layer, weights_to_gemm(tensors.weight, layer))
        origin = env.now
        result, schedule, program = _simulate_layer(arch, layer, pe, fields, env, fold_steps)
        layers.append(result)
        if timeline:
            schedules.append(_timeline(layer.name, origin, schedule, program))
    buffer_kib = _buffer_capacities_kib(arch, layers)
    area = array_area(tech, pe.composition().parts, arch.array.rows * arch.array.cols,
                      buffer_kib)
    layers = [_priced(arch, tech, area, buffer_kib, pe, layer, result)
              for layer, result in zip(workload.layers, layers)]
    return RunResult(arch=arch, workload=workload, layers=tuple(layers), tech=tech.name,
                     area=area, timeline=tuple(schedules) if timeline else None)


def _arch_tech(arch: ArchConfig) -> TechTable:
    """The arch's technology table; a bad table names the arch key that chose it."""
    try:
        return load_tech_table(arch.energy.tech)
    except ConfigError as exc:
        raise ConfigError(f"arch {arch.name}: energy.tech: {exc}") from None


_OPERANDS = ("ifmap", "filter", "ofmap")


def _buffer_capacities_kib(arch: ArchConfig, layers: Sequence[LayerResult]) -> dict[str, float]:
    """Each buffer's capacity for area and access energy: its configured size, or, when the
    config leaves it unbounded, the largest occupancy any layer of the run reached."""
    out = {}
    for operand in _OPERANDS:
        size = getattr(arch.memory, f"{operand}_kib")
        if size is None:
            peak = max((getattr(l, f"peak_{operand}_bytes") for l in layers), default=0)
            size = peak / 1024
        if size > 0:
            out[operand] = size
    return out


def _priced(arch: ArchConfig, tech: TechTable, area: AreaReport,
            buffer_kib: Mapping[str, float], pe: PEModel, layer: Layer,
            result: LayerResult) -> LayerResult:
    """The layer's result with its energy (docs/energy-model.md); unchanged without counters."""
    if result.counters is None:
        return result
    composition = pe.composition(layer)
    buffers = {op: BufferTraffic(buffer_kib[op], getattr(result, f"buffer_{op}_read_bytes"),
                                 getattr(result, f"buffer_{op}_write_bytes"))
               for op in _OPERANDS if op in buffer_kib}
    activity = LayerActivity(
        counters=result.counters, cycles=result.total_cycles, buffers=buffers,
        dram_read_bytes=(result.dram_ifmap_read_bytes + result.dram_filter_read_bytes
                         + result.dram_psum_read_bytes),
        dram_write_bytes=result.dram_ofmap_write_bytes + result.dram_psum_write_bytes)
    energy = layer_energy(tech, parts=composition.parts, events=composition.events,
                          pes=arch.array.rows * arch.array.cols, activity=activity, area=area,
                          clock_mhz=arch.array.clock_mhz)
    return dataclasses.replace(result, energy_pj=energy.total_pj,
                               energy_breakdown_pj=dict(energy.breakdown_pj))
