"""Several identical arrays on one DRAM (docs/memory-model.md, "Multi-core";
docs/hardware-spec.md, "Multi-core").

:func:`simulate` is :func:`simulator.api.simulate` for an arch with ``multicore.cores`` > 1
(and the same call, unchanged, for one core). Each core has its own buffers of the
``memory.*`` sizes; all cores' transfers share one :class:`~simulator.engine.ChannelLink`
(first come, first served) and, with a DRAM preset, one DRAM device. Each core's part of a
layer (a :class:`~simulator.workloads.partition.Share`) is planned and timed as a layer of its
own shape and runs as its own tile program on the one SimPy environment:

- ``batch``, ``output_channels``, ``spatial``: the layers run one after another; all cores
  start a layer together, and it ends when its last core has written back its last output;
- ``pipeline``: the layers are cut into contiguous stages balanced by MACs, one core each,
  and the batch streams through image by image: stage c starts image i when stage c - 1 has
  finished it and stage c has finished image i - 1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import simpy

from simulator import api
from simulator.energy.model import array_area
from simulator.engine import ChannelLink
from simulator.errors import ConfigError, SimulationError
from simulator.hw.accumulator import check_accumulator, pe_composition
from simulator.hw.pe import PEModel, get_pe_model
from simulator.hw.timing import FoldTiming
from simulator.hw.vector import vector_cost
from simulator.kernels.jit import ahead
from simulator.memory import (Dram, LayerSchedule, TileProgram, plan_layer, plan_vector_layer,
                              start_layer)
from simulator.memory.analysis import hcm_cycles, roofline
from simulator.records import record
from simulator.results import LayerResult, RunResult
from simulator.workloads.layers import Layer, LayerTensors, Workload
from simulator.workloads.lowering import weights_to_gemm
from simulator.workloads.partition import (Share, pipeline_stages, place_outputs,
                                           share_tensors, split_layer, split_problem)

__all__ = ["simulate", "partition_of", "run_pipeline", "vector_shares"]


def simulate(arch: Any, workload: Workload, *, functional: bool = True,
             output_sink: api.OutputSink | None = None, progress: api.Progress | None = None,
             timeline: bool = False) -> RunResult:
    """Simulate ``workload`` on the ``multicore.cores`` arrays of ``arch``; with one core,
    exactly :func:`simulator.api.simulate`. The parameters are the same."""
    if arch.multicore.cores == 1:
        return api.simulate(arch, workload, functional=functional, output_sink=output_sink,
                            progress=progress, timeline=timeline)
    pe = _checked_pe(arch, workload)
    needs_data = (functional and workload.tensors is not None) or pe.needs_data(functional)
    api._check_sizes(arch, workload, needs_data)
    _check_partitions(arch, workload, pe)
    if pe.needs_data(functional) or (functional and api._integer_layers(arch, workload)):
        workload = api.with_synthetic_data(workload, pe.synthetic_data())
    run = _Run(arch, workload, pe, functional and workload.tensors is not None, output_sink,
               timeline)
    if arch.multicore.partition == "pipeline":
        return run.pipeline(progress)
    return run.split(progress)


def partition_of(arch: Any, layer: Layer) -> str:
    """The partition of ``layer``: its ``multicore.layers`` override or the arch's."""
    return arch.multicore.layers.get(layer.name, arch.multicore.partition)


def vector_shares(layer: Layer, cores: int) -> tuple[list[Share], list[int]]:
    """A vector layer's shares and their cores: its batch's rows over the cores when they
    divide it, else the whole layer on core 0 (docs/memory-model.md, "Multi-core")."""
    if cores > 1 and layer.batch % cores == 0:
        return split_layer(layer, "batch", cores), list(range(cores))
    return [Share(layer, "batch", 0, layer.batch)], [0]


def _checked_pe(arch: Any, workload: Workload) -> PEModel:
    """The PE model, after the checks :func:`simulator.api.simulate` makes, and the
    refusal of what a multi-core run does not model (docs/memory-model.md, "Multi-core")."""
    pe = get_pe_model(arch.pe, arch.array)
    if arch.array.dataflow not in pe.dataflows:
        raise SimulationError(
            f"arch {arch.name}: PE type '{arch.pe.type}' is defined for the "
            f"{'/'.join(pe.dataflows)} dataflow, not '{arch.array.dataflow}'")
    names = {layer.name for layer in workload.layers}
    try:
        pe.check_layers(names)
        check_accumulator(pe, names)
    except ValueError as exc:
        raise SimulationError(f"arch {arch.name}: {exc} (workload {workload.name})") from None
    memory = arch.memory
    for key, used in (("memory.activation_codec", memory.activation_codec.bits is not None),
                      ("memory.compression", api._compresses(arch, pe)),
                      ("zap", arch.zap.enabled), ("vector.overlap", arch.vector.overlap)):
        if used:
            raise ConfigError(f"arch {arch.name}: multicore.cores: {key} is not modelled "
                              f"with more than one core (set multicore.cores: 1)")
    for layer in workload.layers:
        if not layer.is_gemm:
            continue
        problem = pe.layer_problem(layer)
        if problem is not None:
            raise SimulationError(f"{workload.source}: layer '{layer.name}' on arch "
                                  f"{arch.name}: {problem}")
    return pe


def _check_partitions(arch: Any, workload: Workload, pe: PEModel) -> None:
    """Refuse, before anything runs, a partition that does not divide a layer, a pipeline
    with more cores than layers, or an override naming no layer."""
    config, cores = arch.multicore, arch.multicore.cores
    names = {layer.name for layer in workload.layers}
    unknown = sorted(set(config.layers) - names)
    if unknown:
        raise ConfigError(f"arch {arch.name}: multicore.layers: no layer named "
                          f"{unknown[0]!r} in workload {workload.name}")
    if config.partition == "pipeline":
        if config.layers:
            raise ConfigError(f"arch {arch.name}: multicore.layers: per-layer partitions "
                              f"apply to batch, output_channels and spatial, not pipeline")
        if cores > len(workload.layers):
            raise SimulationError(
                f"{workload.source}: multicore.cores {cores} with partition pipeline needs at "
                f"least one layer per core; the workload has {len(workload.layers)} (arch "
                f"{arch.name})")
        images = _images(workload)
        for layer in workload.layers:
            problem = split_problem(layer, "batch", images)
            if problem is not None:
                raise SimulationError(f"{workload.source}: layer '{layer.name}': pipeline "
                                      f"streams {images} images: {problem}")
        return
    for layer in workload.layers:
        if not layer.is_gemm:
            continue  # shared by rows when the cores divide its batch (vector_shares)
        problem = split_problem(layer, partition_of(arch, layer), cores)
        if problem is not None:
            raise SimulationError(f"{workload.source}: layer '{layer.name}': {problem} "
                                  f"(arch {arch.name}: multicore)")


def _images(workload: Workload) -> int:
    """The images (sequences) a pipeline streams: the first layer's batch of a trace, the
    workload's batch otherwise (as :attr:`RunResult.inferences` counts them)."""
    if workload.format == "trace" and not workload.phase:
        return workload.layers[0].batch
    return workload.sequences


class _Interconnect:
    """A DRAM device seen through the on-chip interconnect: a transfer streams through both
    and takes the longer of its two times (docs/memory-model.md, "Multi-core")."""

    def __init__(self, device: Any, bytes_per_cycle: float) -> None:
        self.device, self.bytes_per_cycle = device, bytes_per_cycle

    def cycles_at(self, nbytes: int, write: bool, start: int) -> int:
        return max(self.device.cycles_at(nbytes, write, start),
                   math.ceil(nbytes / self.bytes_per_cycle))

    def report(self, elapsed: int) -> dict[str, Any]:
        return self.device.report(elapsed)


def _chip_dram(arch: Any, env: simpy.Environment) -> Dram:
    """The DRAM all cores share from now, behind the interconnect when there is one."""
    dram = api._dram(arch, env)
    speed = arch.multicore.interconnect_bytes_per_cycle
    if speed is None:
        return dram
    if dram.device is not None:
        return dataclasses.replace(dram, device=_Interconnect(dram.device, speed))
    bandwidth = dram.bandwidth_bytes_per_cycle
    return dataclasses.replace(dram, bandwidth_bytes_per_cycle=speed if bandwidth is None
                               else min(bandwidth, speed))


@record
class _Prepared:
    """One share ready to run: its sub-layer's timing, tile program and functional result."""

    share: Share
    core: int
    timing: FoldTiming
    alternatives: dict[str, int] | None
    program: TileProgram
    peak: int
    checks: Any
    functional: Any
    outputs: np.ndarray | None


@record
class _Ran:
    """One share after it ran: its schedule, its origin (run cycles) and its result."""

    prepared: _Prepared
    origin: int
    schedule: LayerSchedule
    result: LayerResult


class _Run:
    """One multi-core run: the arch, the workload, and what every layer produced."""

    def __init__(self, arch: Any, workload: Workload, pe: PEModel, run_functional: bool,
                 output_sink: api.OutputSink | None, timeline: bool) -> None:
        self.arch, self.workload, self.pe = arch, workload, pe
        self.run_functional, self.sink, self.timeline = run_functional, output_sink, timeline
        self.cores = arch.multicore.cores
        self.env = simpy.Environment()
        self.link = ChannelLink(self.env)
        self.tech = api._arch_tech(arch)

    # -- preparing shares -------------------------------------------------------------------

    def prepare(self, layer: Layer, shares: Sequence[Share], cores: Sequence[int]
                ) -> list[_Prepared]:
        """Each share's functional result (on its slice of the data), timing and program;
        the layer's outputs, put together, go to the output sink."""
        if not layer.is_gemm:
            return [self._prepare_vector(share, core) for share, core in zip(shares, cores)]
        pe = self.pe
        tensors = None
        if self.run_functional or pe.weight_dependent_timing:
            tensors = self.workload.tensors(layer.name)
        out = [self._prepare_share(layer, share, core, tensors)
               for share, core in zip(shares, cores)]
        if self.sink is not None and self.run_functional:
            # each share's outputs carry its own slice of the bias
            self.sink(layer.name, place_outputs(layer, shares, [p.outputs for p in out]))
        return [dataclasses.replace(p, outputs=None) for p in out]

    def _prepare_share(self, layer: Layer, share: Share, core: int,
                       tensors: LayerTensors | None) -> _Prepared:
        arch, pe, sub = self.arch, self.pe, share.layer
        data = None if tensors is None else share_tensors(layer, share, tensors)
        caught: dict[str, np.ndarray] = {}
        functional = None
        if self.run_functional:
            sink = None if self.sink is None else (
                lambda _, outputs: caught.__setitem__("out", outputs))
            functional = api._functional(pe, sub, data, sink)
        fold_steps = None
        if pe.weight_dependent_timing:
            fold_steps = pe.column_fold_steps(sub, weights_to_gemm(data.weight, sub))
        timing, alternatives = api._layer_timing(arch, sub, pe, fold_steps)
        array = arch.array
        program = plan_layer(sub, array.rows, array.cols, array.dataflow, timing.fold_cycles,
                             arch.memory, None)
        peak = pe.peak_macs_per_step(sub)
        checks = api._analytic_checks(arch, sub, peak, timing.compute_cycles, program)
        return _Prepared(share, core, timing, alternatives, program, peak, checks, functional,
                         caught.get("out"))

    def _prepare_vector(self, share: Share, core: int) -> _Prepared:
        """A vector layer's share: its tile program on the core's vector unit."""
        sub = share.layer
        cycles = vector_cost(sub, self.arch.vector).cycles
        program = plan_vector_layer(sub, cycles, self.arch.memory)
        return _Prepared(share, core, None, None, program, 1, None, None, None)

    def _ran(self, prepared: _Prepared, origin: int, schedule: LayerSchedule) -> _Ran:
        p = prepared
        if not p.share.layer.is_gemm:
            result = api._vector_result(self.arch, p.share.layer, p.program,
                                        dataclasses.replace(schedule, dram=None))
            return _Ran(p, origin, schedule, result)
        result = api._layer_result(self.arch, p.share.layer, p.peak, p.timing, p.program,
                                   dataclasses.replace(schedule, dram=None), p.checks,
                                   p.alternatives, p.functional)
        return _Ran(p, origin, schedule, result)

    # -- the split partitions ---------------------------------------------------------------

    def split(self, progress: api.Progress | None) -> RunResult:
        """batch / output_channels / spatial: layer after layer, all cores together."""
        env, layers, ran_all = self.env, [], []
        count = len(self.workload.layers)

        def prepare(layer: Layer) -> list[_Prepared]:
            if layer.is_gemm:
                shares = split_layer(layer, partition_of(self.arch, layer), self.cores)
                cores = list(range(self.cores))
            else:
                shares, cores = vector_shares(layer, self.cores)
            return self.prepare(layer, shares, cores)

        # the next layer's functional model runs while the engine schedules this one
        for index, (layer, prepared) in enumerate(
                ahead(self.workload.layers, prepare, enabled=self.run_functional)):
            if progress is not None:
                progress(index, count, layer.name)
            origin = env.now
            dram = _chip_dram(self.arch, env)
            started = [start_layer(env, p.program, dram, self.link) for p in prepared]
            ran = [self._ran(p, origin, s.finish()) for p, s in zip(prepared, started)]
            elapsed = env.now - origin
            report = None if dram.device is None else dram.device.report(elapsed)
            layers.append((layer, ran, elapsed, report))
            ran_all += ran
        return self._result(layers, ran_all, self.env.now)

    # -- the pipeline -----------------------------------------------------------------------

    def pipeline(self, progress: api.Progress | None) -> RunResult:
        """Stages of layers, one core each; the images stream through them."""
        workload, env = self.workload, self.env
        stages = pipeline_stages([layer.macs for layer in workload.layers], self.cores)
        images = _images(workload)
        prepared = []
        for core, (lo, hi) in enumerate(stages):
            for index in range(lo, hi):
                layer = workload.layers[index]
                if progress is not None:
                    progress(index, len(workload.layers), layer.name)
                prepared.append(self.prepare(layer, split_layer(layer, "batch", images),
                                             [core] * images))
        dram = _chip_dram(self.arch, env)
        programs = [[[prepared[index][image].program for index in range(lo, hi)]
                     for image in range(images)] for lo, hi in stages]
        try:
            started = run_pipeline(env, programs, dram, self.link)
        except SimulationError as exc:
            raise SimulationError(f"{workload.source}: {exc} (arch {self.arch.name})") from None
        runs = {(stages[core][0] + offset, image): run
                for (core, image, offset), run in started.items()}
        total = env.now
        report = None if dram.device is None else dram.device.report(total)
        moved = [sum(sum(p.program.dram_reads) + sum(p.program.dram_writes) for p in row)
                 for row in prepared]
        layers, ran_all = [], []
        for index, layer in enumerate(workload.layers):
            ran = []
            for image in range(images):
                started, origin = runs[index, image]
                ran.append(self._ran(prepared[index][image], origin, started.finish()))
            elapsed = sum(r.schedule.elapsed for r in ran)
            share = moved[index] / sum(moved) if sum(moved) else 0.0
            layers.append((layer, ran, elapsed, _scaled(report, share)))
            ran_all += ran
        return self._result(layers, ran_all, total)

    # -- results ----------------------------------------------------------------------------

    def _result(self, layers: list, ran_all: list[_Ran], total: int) -> RunResult:
        arch, pe, tech = self.arch, self.pe, self.tech
        buffer_kib = api._buffer_capacities_kib(arch, [r.result for r in ran_all])
        area = array_area(tech, pe_composition(pe).parts, arch.array.rows * arch.array.cols,
                          buffer_kib)  # one core's: its leakage prices one core's time
        if any(not layer.is_gemm for layer in self.workload.layers):
            area = api._with_vector_area(arch, tech, area)  # a vector unit per core
        results = [self._layer(layer, ran, elapsed, report, area, buffer_kib)
                   for layer, ran, elapsed, report in layers]
        chip_area = dataclasses.replace(
            area, breakdown_um2={k: v * self.cores for k, v in area.breakdown_um2.items()},
            pe_um2=area.pe_um2)
        timeline = None
        if self.timeline:
            timeline = tuple(self._timeline(r) for r in ran_all)
        return RunResult(arch=arch, workload=self.workload, layers=tuple(results),
                         tech=tech.name, area=chip_area, timeline=timeline,
                         multicore=self._report(results, ran_all, total))

    def _timeline(self, ran: _Ran) -> Any:
        p = ran.prepared
        name = p.share.layer.name
        if self.arch.multicore.partition == "pipeline":
            name = f"{name} image {p.share.lo}"
        line = api._timeline(name, ran.origin, ran.schedule, p.program)
        return dataclasses.replace(line, core=p.core, layer=p.share.layer.name)

    def _layer(self, layer: Layer, ran: list[_Ran], elapsed: int,
               report: dict[str, Any] | None, area: Any,
               buffer_kib: Mapping[str, float]) -> LayerResult:
        """The layer's result from its shares' (docs/memory-model.md, "Multi-core")."""
        arch, pe = self.arch, self.pe
        moved = [sum(r.result.dram_reads) + sum(r.result.dram_writes) for r in ran]
        priced = []
        for r, nbytes in zip(ran, moved):
            result = r.result
            if report is not None:  # the device's energy, shared by the bytes each moved
                share = nbytes / sum(moved) if sum(moved) else 1 / len(ran)
                result = dataclasses.replace(result, dram={
                    "energy_pj": report["energy_pj"] * share})
            priced.append(api._priced(arch, self.tech, area, buffer_kib, pe,
                                      r.prepared.share.layer, result))
        pipeline = arch.multicore.partition == "pipeline"
        if not layer.is_gemm:
            return self._vector_layer(layer, ran, priced, elapsed, report, pipeline)
        combined = _combined(layer, [r.result for r in ran], priced, elapsed, pipeline)
        compute = combined.compute_cycles
        bandwidth = api._roofline_bandwidth(arch)
        roof, bound = roofline(compute, sum(moved), bandwidth)
        pes = arch.array.rows * arch.array.cols * (1 if pipeline else self.cores)
        peak = max(r.prepared.peak for r in ran)
        bits = sum(r.result.hcm_bits_moved for r in ran)
        return dataclasses.replace(
            combined, dram=report, roofline_cycles=roof, bound=bound,
            hcm_cycles=hcm_cycles(layer.gemm.macs, pes, peak, bits, bandwidth),
            utilization=layer.gemm.macs / (elapsed * pes * peak) if elapsed else 0.0)

    def _vector_layer(self, layer: Layer, ran: list[_Ran], priced: list[LayerResult],
                      elapsed: int, report: dict[str, Any] | None,
                      pipeline: bool) -> LayerResult:
        """A vector layer's result from its shares': operations, traffic and energy summed,
        its cycles ``elapsed``; its integer-only variant's error on the whole layer's data
        (docs/transformers.md)."""
        results = [r.result for r in ran]
        first = results[0]
        compute = min((sum if pipeline else max)(r.compute_cycles for r in results), elapsed)
        summed = {name: sum(getattr(r, name) for r in results) for name in (
            "units", "folds", "dram_ifmap_read_bytes", "dram_ofmap_write_bytes",
            "buffer_ifmap_read_bytes", "buffer_ifmap_write_bytes",
            "buffer_ofmap_read_bytes", "buffer_ofmap_write_bytes")}
        cost = vector_cost(layer, self.arch.vector)
        moved = summed["dram_ifmap_read_bytes"] + summed["dram_ofmap_write_bytes"]
        roof, bound = roofline(compute, moved, api._roofline_bandwidth(self.arch))
        units = 1 if pipeline else len(results)  # vector units working on the layer at once
        lanes = self.arch.vector.lanes * units * self.arch.vector.clock_ratio
        sqnr = None
        if self.run_functional and api._integer_layers(self.arch, self.workload, layer):
            sqnr = api._integer_sqnr(layer, self.workload.tensors(layer.name))
        energy = [p.energy_pj for p in priced]
        return dataclasses.replace(
            first, name=layer.name, m=cost.rows, **summed, compute_cycles=compute,
            stall_cycles=elapsed - compute, total_cycles=elapsed,
            prefetch_cycles=min(r.prefetch_cycles for r in results),
            drain_cycles=min(r.drain_cycles for r in results),
            peak_ifmap_bytes=max(r.peak_ifmap_bytes for r in results),
            peak_ofmap_bytes=max(r.peak_ofmap_bytes for r in results),
            roofline_cycles=roof, bound=bound, dram=report,
            vector_operations=_sum_dicts([r.vector_operations for r in results]),
            vector_lane_utilization=cost.work / (elapsed * lanes) if elapsed else 0.0,
            vector_sqnr_db=sqnr, energy_pj=None if None in energy else sum(energy),
            energy_breakdown_pj=_sum_dicts([p.energy_breakdown_pj for p in priced]))

    def _report(self, layers: Sequence[LayerResult], ran_all: list[_Ran],
                total: int) -> dict[str, Any]:
        """Per core: cycles busy, compute, stalls, idle, MACs, utilisation; per run: the
        cycles and the utilisation of all cores (docs/memory-model.md, "Multi-core")."""
        arch = self.arch
        pes = arch.array.rows * arch.array.cols
        peak = max(layer.peak_macs_per_pe_cycle for layer in layers)
        per_core = []
        for core in range(self.cores):
            mine = [r for r in ran_all if r.prepared.core == core]
            busy = sum(r.schedule.elapsed for r in mine)
            compute = sum(r.result.compute_cycles for r in mine)
            macs = sum(r.result.macs for r in mine)
            per_core.append({
                "core": core, "busy_cycles": busy, "compute_cycles": compute,
                "stall_cycles": busy - compute, "idle_cycles": total - busy, "macs": macs,
                "layers": len({r.prepared.share.layer.name for r in mine}),
                "utilization": macs / (total * pes * peak) if total else 0.0})
        macs = sum(layer.macs for layer in layers)
        config = arch.multicore
        return {"cores": self.cores, "partition": config.partition,
                "layer_partitions": dict(config.layers),
                "interconnect_bytes_per_cycle": config.interconnect_bytes_per_cycle,
                "total_cycles": total,
                "utilization": macs / (total * pes * peak * self.cores) if total else 0.0,
                "per_core": per_core}


def run_pipeline(env: simpy.Environment, programs: Sequence[Sequence[Sequence[TileProgram]]],
                 dram: Dram, link: ChannelLink) -> dict[tuple[int, int, int], tuple[Any, int]]:
    """Run a pipeline's tile programs on ``env`` until all have finished.

    ``programs[c][i]``: the programs of stage c's layers for image i, in layer order. Stage
    c starts image i when stage c - 1 has finished it and c has finished image i - 1; its
    layers run one after another. All transfers share ``link``. Returns, per (stage, image,
    layer of the stage), the :class:`~simulator.memory.StartedLayer` and the cycle it
    started at.
    """
    runs: dict[tuple[int, int, int], tuple[Any, int]] = {}
    done = [[env.event() for _ in stage] for stage in programs]

    def stage(core: int) -> Any:
        for image, layers in enumerate(programs[core]):
            if core:
                yield done[core - 1][image]
            for offset, program in enumerate(layers):
                origin = env.now
                started = start_layer(env, program, dram, link)
                yield started.done
                runs[core, image, offset] = (started, origin)
            done[core][image].succeed()

    processes = env.all_of([env.process(stage(c)) for c in range(len(programs))])
    try:
        env.run(until=processes)
    except RuntimeError:  # SimPy: no events left before every process finished
        raise SimulationError("the pipeline schedule deadlocked") from None
    return runs


def _scaled(report: dict[str, Any] | None, share: float) -> dict[str, Any] | None:
    """A pipeline layer's part of the run's DRAM report: its counts and energy in
    proportion to the bytes it moved (the rates are the run's)."""
    if report is None:
        return None
    out = dict(report)
    for key in ("activates", "read_bursts", "write_bursts", "row_hits", "refreshes"):
        out[key] = round(report[key] * share)
    for key, value in report.items():
        if key.endswith("_pj"):
            out[key] = value * share
    return out


def _sum_dicts(dicts: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    if any(d is None for d in dicts):
        return None
    out: dict[str, Any] = {}
    for d in dicts:
        for key, value in d.items():
            out[key] = out.get(key, 0) + value
    return out


def _errors(results: Sequence[LayerResult]) -> dict[str, Any]:
    """The layer's error metrics from its shares': noise and signal summed over outputs."""
    if any(r.mse is None for r in results):
        return {}
    sizes = [r.m * r.n * r.groups for r in results]
    noise = sum(r.mse * s for r, s in zip(results, sizes))
    signal = sum((r.signal_power or 0.0) * s for r, s in zip(results, sizes))
    size = sum(sizes)
    sqnr = None if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    matches = [r.output_matches_trace for r in results]
    return {"mse": noise / size if size else 0.0,
            "max_abs_error": max(r.max_abs_error for r in results), "sqnr_db": sqnr,
            "signal_power": signal / size if size else 0.0,
            "output_matches_trace": None if None in matches else all(matches)}


_SUMMED = ("folds", "units", "macs", "dram_ifmap_read_bytes", "dram_filter_read_bytes",
           "dram_psum_read_bytes", "dram_ofmap_write_bytes", "dram_psum_write_bytes",
           "buffer_ifmap_read_bytes", "buffer_ifmap_write_bytes", "buffer_filter_read_bytes",
           "buffer_filter_write_bytes", "buffer_ofmap_read_bytes", "buffer_ofmap_write_bytes",
           "hcm_bit_ops", "hcm_bits_moved", "kv_cache_read_bytes")
_LARGEST = ("peak_ifmap_bytes", "peak_filter_bytes", "peak_ofmap_bytes")


def _combined(layer: Layer, results: Sequence[LayerResult], priced: Sequence[LayerResult],
              elapsed: int, pipeline: bool) -> LayerResult:
    """One layer's result from its shares': sums of work and traffic, the largest buffer
    peak (each core has its own buffers), the energy summed; the layer's cycles are
    ``elapsed`` (its last core's end, or a pipeline layer's busy cycles summed), its compute
    cycles its slowest core's (summed over a pipeline layer's images)."""
    first, gemm = results[0], layer.gemm
    fields = {name: sum(getattr(r, name) for r in results) for name in _SUMMED}
    fields.update({name: max(getattr(r, name) for r in results) for name in _LARGEST})
    compute = (sum if pipeline else max)(r.compute_cycles for r in results)
    compute = min(compute, elapsed)
    energy = [p.energy_pj for p in priced]
    breakdown = _sum_dicts([p.energy_breakdown_pj for p in priced])
    alternatives = [r.alternative_cycles for r in results]
    return dataclasses.replace(
        first, name=layer.name, m=gemm.m, k=gemm.k, n=gemm.n, groups=gemm.groups, **fields,
        compute_cycles=compute, stall_cycles=elapsed - compute, total_cycles=elapsed,
        prefetch_cycles=min(r.prefetch_cycles for r in results),
        drain_cycles=min(r.drain_cycles for r in results),
        mapping_efficiency=float(np.mean([r.mapping_efficiency for r in results])),
        compute_utilization=float(np.mean([r.compute_utilization for r in results])),
        counters=_sum_dicts([r.counters for r in results]),
        stats=_sum_dicts([r.stats for r in results]) if first.stats else first.stats,
        alternative_cycles=(None if None in alternatives else
                            {k: (sum if pipeline else max)(a[k] for a in alternatives)
                             for k in alternatives[0]}),
        energy_pj=None if None in energy else sum(energy), energy_breakdown_pj=breakdown,
        **_errors(results))
