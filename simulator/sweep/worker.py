"""What a worker process does with a chunk of points; the local pool and Dask both call
:func:`run_chunk`.

Expensive preparation is done once per worker process and kept: arch configs, workloads, and
the layer data of the workloads that need it (synthetic data is generated once per layer, not
once per point; PE models may then cache what they derive from it by content, see
simulator/hw/pe/).
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from simulator import api
from simulator.config.arch import ArchConfig
from simulator.hw.pe import get_pe_model
from simulator.outputs import json_text
from simulator.records import record
from simulator.sweep.results import point_record, result_row
from simulator.sweep.spec import SweepPoint
from simulator.workloads.layers import LayerTensors, Workload

__all__ = ["PointOutcome", "run_chunk", "run_point", "prepared_workload", "dask_setup"]


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker process of a sweep's local cluster as it
    starts (:class:`simulator.sweep.executors.DaskExecutor`): SIGINT is ignored, since a
    Ctrl-C reaches the whole process group and the sweep's own process stops the cluster
    (docs/sweeps.md); the worker would otherwise print a KeyboardInterrupt traceback."""
    del worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)

#: Workloads whose layer data a worker keeps (each holds every layer's data once touched).
DATA_CACHE_WORKLOADS = 2


@record
class PointOutcome:
    """A finished point: its JSON record (as text) and its results.csv row."""

    id: str
    text: str
    row: dict[str, Any]
    failed: bool


@functools.lru_cache(maxsize=256)
def _arch(base_path: str, overrides: tuple[str, ...]) -> ArchConfig:
    return api.load_arch(base_path, overrides)


@functools.lru_cache(maxsize=16)
def _workload(path: str) -> Workload:
    return api.load_workload(path)


@functools.lru_cache(maxsize=DATA_CACHE_WORKLOADS)
def _workload_with_data(path: str, required: tuple[tuple[str, Any], ...] = ()) -> Workload:
    workload = api.with_synthetic_data(_workload(path), dict(required))
    source = workload.tensors
    cache: dict[str, LayerTensors] = {}

    def tensors(name: str) -> LayerTensors:
        if name not in cache:
            cache[name] = _read_only(source(name))
        return cache[name]

    return dataclasses.replace(workload, tensors=tensors)


def _read_only(tensors: LayerTensors) -> LayerTensors:
    """Shared data must not change under a later point: writing to it raises instead."""
    for field in dataclasses.fields(tensors):
        value = getattr(tensors, field.name)
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return tensors


def prepared_workload(arch: ArchConfig, path: str, functional: bool) -> Workload:
    """The workload to simulate ``arch`` on, with its layer data cached in this process.

    The data-carrying version is handed over exactly when :func:`simulator.api.simulate`
    would itself attach data (a trace's, or synthetic): when the PE model says the run needs
    data (:meth:`simulator.hw.pe.PEModel.needs_data`, the decision ``simulate`` makes). Otherwise the plain workload, so that the
    result is the one ``sasim run`` gives.
    """
    workload = _workload(path)
    pe = get_pe_model(arch.pe, arch.array)
    if workload.tensors is not None or pe.needs_data(functional):
        return _workload_with_data(path, tuple(sorted(pe.synthetic_data().items())))
    return workload


def run_point(point: SweepPoint, axes: Sequence[str]) -> PointOutcome:
    """Simulate one point; an exception becomes the point's recorded error."""
    start = time.perf_counter()
    summary, error = None, None
    try:
        arch = _arch(point.base_path, point.overrides)
        functional = not point.timing_only
        workload = prepared_workload(arch, point.workload_path, functional)
        if arch.multicore.cores > 1:  # docs/memory-model.md, "Multi-core"
            from simulator import multicore

            summary = multicore.simulate(arch, workload, functional=functional).summary()
        else:
            summary = api.simulate(arch, workload, functional=functional).summary()
        if point.accuracy is not None:
            summary.update(_accuracy(arch, point.accuracy))
    except Exception as exc:  # noqa: BLE001 -- a failing point is recorded and the sweep goes on
        error = f"{type(exc).__name__}: {exc}"
    elapsed = round(time.perf_counter() - start, 6)
    record = point_record(point, summary, error, elapsed)
    return PointOutcome(point.id, json_text(record, indent=None), result_row(record, axes),
                        error is not None)


def _accuracy(arch, accuracy) -> dict:
    """The accuracy columns of a point (cached per design by accuracy_for)."""
    from simulator.accuracy import accuracy_for  # torch loads only when a sweep asks

    model, data, recalibrate, limit = accuracy
    result = accuracy_for(arch, model, data, recalibrate, limit=limit)
    return {key: result[key] for key in ("top1", "top1_drop_points", "int8_top1",
                                         "float_top1", "recalibrated_top1")}


def run_chunk(points: Sequence[SweepPoint], axes: Sequence[str]) -> list[PointOutcome]:
    """Run ``points`` one after another in this process."""
    return [run_point(point, axes) for point in points]
