"""The one wiring point: load an arch and a workload, simulate, return a :class:`RunResult`.

The CLI, sweeps and notebooks all go through these functions.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import simulator
from simulator.config import arch as arch_config
from simulator.config.arch import ArchConfig
from simulator.config.schema import dump
from simulator.energy.model import AreaReport, EnergyReport, LayerActivity, array_area, layer_energy
from simulator.energy.tech import TechTable, load_tech
from simulator.errors import ConfigError, SimulationError, WorkloadError
from simulator.hw.pe import FoldSteps, PEModel, get_pe_model, option_types
from simulator.hw.timing import fold_timing
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
    """Load a technology table: a path, or the name of a table in ``arch_configs/tech/``."""
    return load_tech(_resolve(spec, TECH_DIR, (".yaml",)))


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
    """Everything the simulator reports for one layer (cycles are integers)."""

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
class RunResult:
    """The result of simulating one workload on one arch."""

    arch: ArchConfig
    workload: Workload
    layers: tuple[LayerResult, ...]
    tech: str | None = None
    area: AreaReport | None = None

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
        out.update(energy_pj=total.total_pj, energy_uj=total.total_pj / 1e6,
                   energy_breakdown_pj=dict(total.breakdown_pj),
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
                    fold_steps: FoldSteps | None = None) -> LayerResult:
    gemm = layer.gemm

    def timing_for(steps: np.ndarray | None):
        return fold_timing(gemm, arch.array.rows, arch.array.cols, arch.array.dataflow,
                           arch.timing.convention, pe.reduction_steps(layer), steps)

    timing = timing_for(None if fold_steps is None else fold_steps.steps)
    if fold_steps is not None and fold_steps.alternatives:
        functional = {**functional, "alternative_cycles": {
            name: timing_for(steps).compute_cycles
            for name, steps in fold_steps.alternatives.items()}}
    stall_cycles = 0
    total = timing.compute_cycles + stall_cycles
    pes = arch.array.rows * arch.array.cols
    peak = pe.peak_macs_per_step(layer)
    return LayerResult(
        name=layer.name, op=layer.op, m=gemm.m, k=gemm.k, n=gemm.n, groups=gemm.groups,
        folds=timing.folds, steps_per_fold=timing.steps_per_fold,
        cycles_per_fold=timing.cycles_per_fold, compute_cycles=timing.compute_cycles,
        stall_cycles=stall_cycles, total_cycles=total, macs=gemm.macs,
        utilization=gemm.macs / (total * pes * peak) if total else 0.0,
        peak_macs_per_pe_cycle=peak,
        mapping_efficiency=timing.mapping_efficiency,
        compute_utilization=timing.compute_utilization, **functional)


def simulate(arch: ArchConfig, workload: Workload, *, functional: bool = True,
             output_sink: OutputSink | None = None,
             progress: Progress | None = None) -> RunResult:
    """Simulate every layer of ``workload`` on ``arch``.

    Parameters
    ----------
    functional : run the PE's functional model when the workload carries data (a trace), or
        on synthetic data when the PE is data-dependent; ``False`` gives timing only.
    output_sink : called with each layer's simulated outputs (for ``--save-outputs``).
    progress : called before each layer with (index, count, name).
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
    area = array_area(tech, pe.composition().parts, arch.array.rows * arch.array.cols, {})
    if (functional and pe.data_dependent) or pe.weight_dependent_timing:
        workload = with_synthetic_data(workload)
    run_functional = functional and workload.tensors is not None
    layers = []
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
        result = _simulate_layer(arch, layer, pe, fields, fold_steps)
        if result.counters is not None:
            energy = _layer_energy(arch, tech, area, pe, layer, result)
            result = dataclasses.replace(result, energy_pj=energy.total_pj,
                                         energy_breakdown_pj=dict(energy.breakdown_pj))
        layers.append(result)
    return RunResult(arch=arch, workload=workload, layers=tuple(layers), tech=tech.name,
                     area=area)


def _arch_tech(arch: ArchConfig) -> TechTable:
    """The arch's technology table; a bad table names the arch key that chose it."""
    try:
        return load_tech_table(arch.energy.tech)
    except ConfigError as exc:
        raise ConfigError(f"arch {arch.name}: energy.tech: {exc}") from None


def _layer_energy(arch: ArchConfig, tech: TechTable, area: AreaReport, pe: PEModel,
                  layer: Layer, result: LayerResult) -> EnergyReport:
    """Price one layer's counted activity (docs/energy-model.md)."""
    composition = pe.composition(layer)
    activity = LayerActivity(counters=result.counters, cycles=result.total_cycles)
    return layer_energy(tech, parts=composition.parts, events=composition.events,
                        pes=arch.array.rows * arch.array.cols, activity=activity, area=area,
                        clock_mhz=arch.array.clock_mhz)
