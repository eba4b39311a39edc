"""The one wiring point: load an arch and a workload, simulate, return a :class:`RunResult`.

The CLI, sweeps and notebooks all go through these functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import simulator
from simulator.config import arch as arch_config
from simulator.config.arch import ArchConfig
from simulator.config.schema import dump
from simulator.errors import SimulationError, WorkloadError
from simulator.hw.pe import get_pe_model, option_types
from simulator.hw.timing import fold_timing
from simulator.workloads.layers import Layer, Workload
from simulator.workloads.shapes import load_topology_csv, load_workload_yaml

__all__ = [
    "REPO_ROOT",
    "ARCH_DIR",
    "WORKLOAD_DIR",
    "LayerResult",
    "RunResult",
    "load_arch",
    "load_workload",
    "shipped_archs",
    "shipped_workloads",
    "simulate",
]

REPO_ROOT = Path(simulator.__file__).resolve().parent.parent
ARCH_DIR = REPO_ROOT / "arch_configs"
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


def load_workload(spec: str | Path) -> Workload:
    """Load a workload YAML, a SCALE-Sim topology CSV, or a shipped workload's name."""
    path = _resolve(spec, WORKLOAD_DIR, (".yaml", ".npz"))
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_workload_yaml(path)
    if suffix == ".csv":
        return load_topology_csv(path)
    if not path.exists():
        raise WorkloadError(f"{path}: file not found")
    raise WorkloadError(f"{path}: unknown workload format (expected .yaml, .csv or .npz)")


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


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The result of simulating one workload on one arch."""

    arch: ArchConfig
    workload: Workload
    layers: tuple[LayerResult, ...]

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
        """MACs per PE per cycle over the whole run (a fraction; 1.0 = every PE busy)."""
        pes = self.arch.array.rows * self.arch.array.cols
        return self.macs / (self.total_cycles * pes) if self.total_cycles else 0.0

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
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
        }


def _simulate_layer(arch: ArchConfig, layer: Layer, pe) -> LayerResult:
    gemm = layer.gemm
    timing = fold_timing(gemm, arch.array.rows, arch.array.cols, arch.array.dataflow,
                         arch.timing.convention, pe.reduction_steps(layer))
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
        mapping_efficiency=timing.mapping_efficiency,
        compute_utilization=timing.compute_utilization)


def simulate(arch: ArchConfig, workload: Workload) -> RunResult:
    """Simulate every layer of ``workload`` on ``arch``."""
    pe = get_pe_model(arch.pe)
    if arch.array.dataflow not in pe.dataflows:
        raise SimulationError(
            f"arch {arch.name}: PE type '{arch.pe.type}' is defined for the "
            f"{'/'.join(pe.dataflows)} dataflow, not '{arch.array.dataflow}'")
    layers = tuple(_simulate_layer(arch, layer, pe) for layer in workload.layers)
    return RunResult(arch=arch, workload=workload, layers=layers)
