"""Design-space sweeps: a YAML spec of designs and workloads, run on a local process pool or
Dask, written crash-safely to results.csv and one JSON file per point (docs/sweeps.md)."""

from simulator.sweep.executors import DaskExecutor, Executor, LocalExecutor, default_workers
from simulator.sweep.runner import SweepOutcome, chunk_points, run_sweep
from simulator.sweep.spec import SweepPlan, SweepPoint, SweepSpec, load_sweep, plan_sweep

__all__ = [
    "SweepSpec",
    "SweepPlan",
    "SweepPoint",
    "SweepOutcome",
    "Executor",
    "LocalExecutor",
    "DaskExecutor",
    "default_workers",
    "load_sweep",
    "plan_sweep",
    "run_sweep",
    "chunk_points",
]
