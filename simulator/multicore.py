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
  with cross-layer prefetch each core's consecutive array layers are one
  :class:`~simulator.memory.prefetch.PrefetchChain` on its own buffers, all chains on the
  one link (a vector layer, or the run's end, ends them);
- ``pipeline``: the layers are cut into contiguous stages balanced by MACs, one core each,
  and the batch streams through image by image: stage c starts image i when stage c - 1 has
  finished it and stage c has finished image i - 1 (an image's consecutive array layers of a
  stage chained with prefetch).

Every memory feature of one array applies per share: compressed operands and the activation
codec at the stored sizes of the share's own slice (the codec calibrated on the whole layer),
ZAP's decisions on the whole layer's outputs with each share's part of them, and
``vector.overlap`` beside the core's next array share (docs/memory-model.md, "Multi-core").
"""

from __future__ import annotations

import dataclasses
import functools
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
from simulator.config import arch as arch_config
from simulator.config.dram import IDEAL
from simulator.hw.vector import vector_cost
from simulator.kernels.jit import can_fork, in_background, in_process
from simulator.memory import (Dram, LayerSchedule, TileProgram, plan_layer, plan_vector_layer,
                              start_layer)
from simulator.memory.analysis import hcm_cycles, roofline
from simulator.records import record
from simulator.results import LayerResult, RunResult
from simulator.workloads.layers import Layer, LayerTensors, Workload
from simulator.workloads.lowering import weights_to_gemm
from simulator.workloads.partition import (Share, pipeline_stages, place_outputs,
                                           share_outputs, share_tensors, split_layer,
                                           split_problem)

__all__ = ["simulate", "simulate_cores", "partition_of", "run_pipeline", "vector_shares"]

#: Where a functional run prepares its layers beside the engine: ``"process"`` (a forked
#: child, where the process may fork) or ``"thread"`` (tests compare the two).
PREPARE_IN = "process"


def simulate(arch: Any, workload: Workload, *, functional: bool = True,
             output_sink: api.OutputSink | None = None, progress: api.Progress | None = None,
             timeline: bool = False) -> RunResult:
    """Simulate ``workload`` on the ``multicore.cores`` arrays of ``arch``; with one core,
    exactly :func:`simulator.api.simulate`. The parameters are the same."""
    if arch.multicore.cores == 1:
        return api.simulate(arch, workload, functional=functional, output_sink=output_sink,
                            progress=progress, timeline=timeline)
    return simulate_cores(arch, workload, functional=functional, output_sink=output_sink,
                          progress=progress, timeline=timeline)


def simulate_cores(arch: Any, workload: Workload, *, functional: bool = True,
                   output_sink: api.OutputSink | None = None,
                   progress: api.Progress | None = None, timeline: bool = False) -> RunResult:
    """The multi-core model itself, for any core count (:func:`simulate` calls it for more
    than one core; with one, it must give :func:`simulator.api.simulate`'s figures, which
    the tests require)."""
    pe = _checked_pe(arch, workload)
    codec = arch.memory.activation_codec.bits is not None  # coding needs data
    compress = api._compresses(arch, pe)  # so does compression (docs/memory-model.md)
    needs_data = ((functional and workload.tensors is not None) or pe.needs_data(functional)
                  or codec or compress)
    api._check_sizes(arch, workload, needs_data)
    _check_partitions(arch, workload, pe)
    if codec and arch.memory.activation_codec.tensor != "layer_input":
        raise ConfigError(f"arch {arch.name}: memory.activation_codec.tensor: "
                          f"pre_activation is modelled by sasim accuracy only (a run "
                          f"codes the tensors its layers load; docs/transform-coding.md)")
    zap = api._zap_plan(arch, workload)  # {} without zap (docs/zap.md)
    if (pe.needs_data(functional) or (functional and api._integer_layers(arch, workload))
            or codec or compress or zap):
        workload = api.with_synthetic_data(workload, pe.synthetic_data())
    run = _Run(arch, workload, pe, functional and workload.tensors is not None, output_sink,
               timeline, zap)
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
    """The PE model, after the checks :func:`simulator.api.simulate` makes."""
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
    api.check_layer_names(arch, workload)
    if config.partition == "pipeline":
        if config.layers:
            raise ConfigError(f"arch {arch.name}: multicore.layers: per-layer partitions "
                              f"apply to batch, output_channels and spatial, not pipeline")
        if cores > len(workload.layers):
            raise SimulationError(
                f"{workload.source}: multicore.cores {cores} with partition pipeline needs at "
                f"least one layer per core; the workload has {len(workload.layers)} (arch "
                f"{arch.name})")
        if (workload.format == "trace" and not workload.phase
                and any(layer.role for layer in workload.layers)):
            raise SimulationError(
                f"{workload.source}: partition pipeline streams a transformer's sequences, "
                f"and this trace has no 'inference' object to count them (its layers' rows "
                f"are tokens, not images; docs/trace-format.md, \"The inference phase\"): "
                f"export it with one, or use another partition (arch {arch.name})")
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

    @property
    def origin(self) -> int:
        return self.device.origin

    @origin.setter
    def origin(self, value: int) -> None:
        self.device.origin = value

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
    """One share ready to run: its sub-layer's timing, tile program and functional result,
    and what its memory features need after it ran (docs/memory-model.md, "Multi-core")."""

    share: Share
    core: int
    timing: FoldTiming
    alternatives: dict[str, int] | None
    program: TileProgram
    peak: int
    checks: Any
    functional: Any
    outputs: np.ndarray | None
    zap: dict[str, Any] | None = None
    storage: Any = None
    coding: Any = None  # (its input's InputCoding, its consumer share's) with the codec


@record
class _Ran:
    """One share after it ran: its schedule, its origin (run cycles) and its result;
    ``tail``: the codec cycles that follow it (docs/transform-coding.md)."""

    prepared: _Prepared
    origin: int
    schedule: LayerSchedule
    result: LayerResult | None  # None until priced (_Run._priced)
    tail: int = 0
    hidden: int = 0  # a vector share's cycles under its core's next array share (overlap)


def _span(schedule: LayerSchedule) -> int:
    """A share's cycles: its window with cross-layer prefetch, else its whole schedule."""
    if schedule.window is None:
        return schedule.elapsed
    return schedule.window[1] - schedule.window[0]


class _Finished:
    """A chained share's schedule where :func:`run_pipeline` keeps a started layer's."""

    def __init__(self, schedule: LayerSchedule) -> None:
        self.schedule = schedule

    def finish(self) -> LayerSchedule:
        return self.schedule


class _Run:
    """One multi-core run: the arch, the workload, and what every layer produced."""

    def __init__(self, arch: Any, workload: Workload, pe: PEModel, run_functional: bool,
                 output_sink: api.OutputSink | None, timeline: bool,
                 zap: Mapping[str, Any] | None = None) -> None:
        self.arch, self.workload, self.pe = arch, workload, pe
        self.run_functional, self.sink, self.timeline = run_functional, output_sink, timeline
        self.cores = arch.multicore.cores
        self.env = simpy.Environment()
        self.link = ChannelLink(self.env)
        self.tech = api._arch_tech(arch)
        self.zap = dict(zap or {})
        memory = arch.memory
        self.coding = None
        if memory.activation_codec.bits is not None:  # docs/transform-coding.md
            from simulator.memory.codec import RunCoding

            self.coding = RunCoding(workload.layers, workload.tensors, memory.activation_codec)
        self.compress = api._compresses(arch, pe)
        self.source = "trace" if workload.data_kind == "trace" else "synthetic"
        gemm = [layer for layer in workload.layers if layer.is_gemm]
        self.consumer = {a.name: b for a, b in zip(gemm, gemm[1:])}
        self.sizes: dict[tuple[str, str, int], Any] = {}  # stored sizes by (kind, layer, share)
        self._prepared: list[Any] = []  # each layer's future shares (split)
        self._later = False  # functional results after every program (split)
        self.mode = arch_config.prefetch_mode(memory.prefetch, arch.timing.convention,
                                              memory.double_buffering)
        unbounded = ((memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib) == (None,) * 3
                     and memory.dram == IDEAL and memory.dram_bandwidth_bytes_per_cycle is None
                     and memory.dram_latency_cycles == 0
                     and arch.multicore.interconnect_bytes_per_cycle is None)
        # as on one core: off in mode none, with unbounded memory and with coded activations
        self.prefetch = self.mode != "none" and not unbounded and self.coding is None

    def shares(self, layer: Layer) -> list[Share]:
        """An array layer's shares: by its partition over the cores, or a pipeline's images."""
        if self.arch.multicore.partition == "pipeline":
            return split_layer(layer, "batch", _images(self.workload))
        return split_layer(layer, partition_of(self.arch, layer), self.cores)

    # -- preparing shares -------------------------------------------------------------------

    def prepare(self, layer: Layer, shares: Sequence[Share], cores: Sequence[int]
                ) -> list[_Prepared]:
        """Each share's functional result (on its slice of the data), timing and program;
        the layer's outputs, put together, go to the output sink."""
        if not layer.is_gemm:
            return [self._prepare_vector(share, core) for share, core in zip(shares, cores)]
        self._forget(layer)
        pe, zap = self.pe, self.zap.get(layer.name)
        tensors = coded = None
        if ((self.run_functional and not self._later) or pe.weight_dependent_timing
                or zap is not None or self.coding is not None or self.compress):
            tensors = self.workload.tensors(layer.name)
        if self.coding is not None:  # the whole layer's codec: the cores decode its symbols
            coded = self.coding.input(layer.name)
            if tensors is not None and coded is not None:
                tensors = api._decoded(tensors, coded.coded.decoded)
        datas = [None if tensors is None else share_tensors(layer, share, tensors)
                 for share in shares]
        functional, caught = [None] * len(shares), [None] * len(shares)
        if not self._later:  # else after every program (split)
            functional, caught = self._functional(layer, shares, datas, zap is not None)
        outcomes = [None] * len(shares)
        if zap is not None:
            outcomes, functional = self._zap(layer, shares, datas, zap, functional, caught,
                                             tensors)
        out = [self._prepare_share(layer, k, share, core, data, f, outcome)
               for k, (share, core, data, f, outcome)
               in enumerate(zip(shares, cores, datas, functional, outcomes))]
        if self.sink is not None and zap is not None:  # the gated outputs, as on one core
            self.sink(layer.name, place_outputs(layer, shares, [o.outputs for o in outcomes]))
        elif self.sink is not None and self.run_functional:
            # each share's outputs carry its own slice of the bias
            self.sink(layer.name, place_outputs(layer, shares, caught))
        return out

    def _functional(self, layer: Layer, shares: Sequence[Share], datas: list, zap: bool
                    ) -> tuple[list, list]:
        """Each share's functional result and, when something asks for them, its outputs
        (with ZAP: the PE's before the gate; an exact PE's counters from non-zero counts,
        as on one core)."""
        pe = self.pe
        results, outputs = [], []
        for share, data in zip(shares, datas):
            sub = share.layer
            caught: dict[str, np.ndarray] = {}
            result = None
            if self.run_functional and zap and pe.exact:
                result = api._exact_result(pe, sub, data)
            if self.run_functional and result is None:
                wanted = zap or self.sink is not None
                sink = (lambda _, o, caught=caught: caught.__setitem__("out", o)) if wanted \
                    else None
                given = dataclasses.replace(data, output=None) if zap else data
                result = api._functional(pe, sub, given, sink)
            results.append(result)
            outputs.append(caught.get("out"))
        return results, outputs

    def _zap(self, layer: Layer, shares: Sequence[Share], datas: list, plan: Any,
             functional: list, caught: list, tensors: LayerTensors) -> tuple[list, list]:
        """ZAP on the whole layer's outputs (the predictor's decisions are the single
        array's, so the bits are), each share's outcome its part of them (its counts, and so
        its savings, from its own outputs; docs/memory-model.md, "Multi-core")."""
        from simulator.hw.zap import ZapOutcome, apply_zap, zap_activations
        from simulator.kernels.zap import zap_counts

        if all(o is not None for o in caught):  # the PE's outputs (a functional run)
            outputs = place_outputs(layer, shares, caught)
        else:
            outputs = api._zap_exact_output(tensors, layer)
        whole = apply_zap(plan, outputs, self.arch.zap)
        activations = zap_activations(plan, outputs)
        outcomes, results = [], []
        for share, data, result in zip(shares, datas, functional):
            part = [share_outputs(layer, share, a)
                    for a in (whole.outputs, whole.kept, outputs, activations)]
            mask = whole.mask[share.lo:share.hi] if share.axis == "spatial" else whole.mask
            outcome = ZapOutcome(part[0], part[1], mask,
                                 zap_counts(part[2], part[3], mask, part[1]))
            if result is not None:  # the skipped steps' energy (docs/energy-model.md, "ZAP")
                outcome = api._with_active_steps(outcome, data, share.layer)
                if data.output is not None:
                    result = dataclasses.replace(result, output_matches_trace=bool(
                        np.array_equal(outcome.outputs, data.output)))
            outcomes.append(outcome)
            results.append(result)
        return outcomes, results

    def _prepare_share(self, layer: Layer, k: int, share: Share, core: int,
                       data: LayerTensors | None, functional: Any, outcome: Any) -> _Prepared:
        arch, pe, sub = self.arch, self.pe, share.layer
        fold_steps = None
        if pe.weight_dependent_timing:
            fold_steps = pe.column_fold_steps(sub, weights_to_gemm(data.weight, sub))
        timing, alternatives = api._layer_timing(arch, sub, pe, fold_steps)
        zap_report = None
        if outcome is not None:
            timing, zap_report = api._zap_timing(arch, sub, timing,
                                                 (self.zap[layer.name], outcome))
        storage = None if not self.compress else self._storage(layer, k, share, data)
        array = arch.array
        program = plan_layer(sub, array.rows, array.cols, array.dataflow, timing.fold_cycles,
                             arch.memory, None if storage is None else storage.planned())
        out_bits = arch.memory.output_bits or layer.activation_bits
        if storage is not None:
            from simulator.memory.compression import stored_program

            program = stored_program(program, storage, out_bits)
        coding = None
        if self.coding is not None:
            from simulator.memory.codec import LayerCoding, coded_program

            coding = (self._coded(layer, k, share),
                      self._consumer_part(layer, k, self._coded))
            mine, theirs = (None if c is None else c.stored for c in coding)
            program = coded_program(program, LayerCoding(
                read_ratio=None if mine is None else mine.ratio,
                table_bytes=0 if mine is None else mine.once_bytes,
                write_ratio=None if theirs is None else theirs.bits_per_value / out_bits))
        peak = pe.peak_macs_per_step(sub)
        checks = api._analytic_checks(arch, sub, peak, timing.compute_cycles, program)
        return _Prepared(share, core, timing, alternatives, program, peak, checks, functional,
                         None, zap_report, storage, coding)

    # -- each share's stored sizes (docs/memory-model.md, "Multi-core") -------------------

    def _forget(self, layer: Layer) -> None:
        """Drop the stored sizes of layers before ``layer`` (it needs its own and its
        consumer's only)."""
        for key in [k for k in self.sizes if k[1] != layer.name]:
            del self.sizes[key]

    def _cached(self, key: tuple[str, str, int], compute: Any) -> Any:
        """A share's stored size, computed once (a layer's write-back is stored in its
        consumer share's format, so layer L asks for L + 1 too): the first answer stays."""
        if key not in self.sizes:
            self.sizes[key] = compute()
        return self.sizes[key]

    def _consumer_part(self, layer: Layer, k: int, size: Any) -> Any:
        """``size`` of the consumer's share ``k`` (the next array layer's part on the same
        core, or of the same image): the format this share's outputs are written in."""
        consumer = self.consumer.get(layer.name)
        if consumer is None:
            return None
        return size(consumer, k, self.shares(consumer)[k])

    def _input_size(self, layer: Layer, k: int, share: Share,
                    data: LayerTensors | None = None) -> Any:
        """The stored size of share ``k``'s input in ``memory.compression.activations``'
        format, from its own slice of the data."""
        from simulator.memory.compression import activation_size

        options = self.arch.memory.compression
        if options.activations == "none":
            return None

        def compute() -> Any:
            x = (data if data is not None else
                 share_tensors(layer, share, self.workload.tensors(layer.name))).input
            try:
                return activation_size(x, share.layer, options, self.source)
            except ValueError as exc:
                raise SimulationError(f"layer '{layer.name}': memory.compression: "
                                      f"{exc}") from None

        return self._cached(("ifmap", layer.name, k), compute)

    def _storage(self, layer: Layer, k: int, share: Share, data: LayerTensors) -> Any:
        """How share ``k``'s operands are stored: its input's and its weights' sizes from its
        slice, its outputs in its consumer share's input format."""
        from simulator.memory.compression import LayerStorage, weight_size

        pe, sub, weights = self.pe, share.layer, None
        options = self.arch.memory.compression
        if options.weights and type(pe).stored_weights is not PEModel.stored_weights:
            try:
                stored = pe.stored_weights(sub, weights_to_gemm(data.weight, sub))
            except ValueError as exc:
                raise SimulationError(f"layer '{layer.name}': memory.compression.weights: "
                                      f"{exc}") from None
            if stored is not None:
                weights = weight_size(*stored, sub, self.source)
        return LayerStorage(ifmap=self._input_size(layer, k, share, data), filter=weights,
                            ofmap=self._consumer_part(layer, k, self._input_size))

    def _coded(self, layer: Layer, k: int, share: Share) -> Any:
        """Share ``k``'s input coded with the whole layer's codec (calibrated as on one
        core): its stream, tables and figures from its own slice."""
        whole = self.coding.input(layer.name)
        if whole is None:
            return None

        def compute() -> Any:
            x = share_tensors(layer, share, self.workload.tensors(layer.name)).input
            return _share_coding(whole, x, self.coding.options)

        return self._cached(("codec", layer.name, k), compute)

    def _prepare_vector(self, share: Share, core: int) -> _Prepared:
        """A vector layer's share: its tile program on the core's vector unit."""
        sub = share.layer
        cycles = vector_cost(sub, self.arch.vector).cycles
        program = plan_vector_layer(sub, cycles, self.arch.memory)
        return _Prepared(share, core, None, None, program, 1, None, None, None)

    def _ran(self, prepared: _Prepared, origin: int, schedule: LayerSchedule) -> _Ran:
        p, arch = prepared, self.arch
        sub = p.share.layer
        if not sub.is_gemm:
            result = api._vector_result(arch, sub, p.program,
                                        dataclasses.replace(schedule, dram=None))
            return _Ran(p, origin, schedule, result)
        if self._later and p.functional is None:  # priced once its result is in (_priced)
            return _Ran(p, origin, schedule, None)
        result = api._layer_result(arch, sub, p.peak, p.timing, p.program,
                                   dataclasses.replace(schedule, dram=None), p.checks,
                                   p.alternatives, p.functional)
        if p.zap is not None:
            result = dataclasses.replace(result, zap=p.zap)
        out_bits = arch.memory.output_bits or sub.activation_bits
        if p.storage is not None:
            from simulator.memory.compression import compression_report

            result = dataclasses.replace(result, compression=compression_report(
                p.storage, p.program, out_bits))
        tail = 0
        if p.coding is not None:  # the codec's cycles after the share (as on one core)
            from simulator.memory.codec import codec_report, inverse_layer

            mine, theirs = p.coding
            inverse = inverse_layer(sub, mine, p.program)
            inverse_cycles = 0
            options = self.coding.options
            if inverse is not None and options.inverse == "array":  # a 1x1 GEMM
                inverse_cycles = api._layer_timing(arch, inverse, self.pe, None)[0] \
                    .compute_cycles
            tail, report = codec_report(options, sub, p.program, mine, theirs,
                                        result.total_cycles, inverse, inverse_cycles, out_bits)
            result = dataclasses.replace(result, total_cycles=result.total_cycles + tail,
                                         stall_cycles=result.stall_cycles + tail, codec=report)
        return _Ran(p, origin, schedule, result, tail)

    # -- the split partitions ---------------------------------------------------------------

    def split(self, progress: api.Progress | None) -> RunResult:
        """batch / output_channels / spatial: layer after layer, all cores together; with
        cross-layer prefetch each core's consecutive array layers as one chain.

        Every layer's shares are prepared in order beside the engine, which runs the layers
        already prepared (:meth:`_preparing`, :meth:`_items`); the results are the same."""
        layers, ran_all = [], []
        workload = self.workload.layers
        count, index = len(workload), 0
        with self._preparing(*self._items(self._layer_shares)) as self._prepared:
            while index < count:
                layer = workload[index]
                if progress is not None:
                    progress(index, count, layer.name)
                if not layer.is_gemm:
                    if (self.arch.vector.overlap and index + 1 < count
                            and workload[index + 1].is_gemm):
                        if progress is not None:
                            progress(index + 1, count, workload[index + 1].name)
                        done = self._overlapped(index)
                        index += 2
                    else:
                        done = [self._together(index)]
                        index += 1
                elif self.prefetch:
                    stop = index
                    while stop < count and workload[stop].is_gemm:
                        stop += 1
                    done = self._chained(index, stop, progress)
                    index = stop
                else:
                    done = [self._together(index)]
                    index += 1
                for entry in done:
                    layers.append(entry)
                    ran_all += entry[1]
            if self._later:
                layers = self._priced(layers)
                ran_all = [r for entry in layers for r in entry[1]]
        return self._result(layers, ran_all, self.env.now)

    def _items(self, prepare: Any) -> tuple[Any, list[tuple[bool, Layer]]]:
        """What :meth:`_preparing` computes: every layer's shares (``prepare(layer)``) in
        order and, when the programs need no data (no ZAP, codec, compression or
        weight-dependent timing), the array layers' functional results after them
        (``_later``): the engine never waits for a functional model, and the shares are
        priced when it has run (:meth:`_priced`; docs/performance.md, "Multi-core runs")."""
        self._later = (self.run_functional and self.sink is None and not self.zap
                       and self.coding is None and not self.compress
                       and not self.pe.weight_dependent_timing)
        layers = self.workload.layers
        items = [(False, layer) for layer in layers]
        if self._later:
            items += [(True, layer) for layer in layers if layer.is_gemm]

        def item(entry: tuple[bool, Layer]) -> list[Any]:
            functional, layer = entry
            if not functional:
                return prepare(layer)
            shares = self.shares(layer)
            tensors = self.workload.tensors(layer.name)
            datas = [share_tensors(layer, share, tensors) for share in shares]
            return self._functional(layer, shares, datas, False)[0]

        return item, items

    def _priced(self, layers: list[tuple]) -> list[tuple]:
        """The array layers' shares priced with their functional results, which were
        computed after every program (``_later``)."""
        gemm = iter(range(len(self.workload.layers), len(self._prepared)))
        out = []
        for layer, ran, *rest in layers:
            if layer.is_gemm:
                index = next(gemm)
                results = self._result_of(index, layer)
                ran = [dataclasses.replace(
                    self._ran(dataclasses.replace(r.prepared, functional=f), r.origin,
                              r.schedule), hidden=r.hidden)
                    for r, f in zip(ran, results, strict=True)]
            out.append((layer, ran, *rest))
        return out

    def _preparing(self, prepare: Any, items: Sequence[Any]) -> Any:
        """The futures of ``prepare`` of each item (:meth:`_items`), computed in order beside
        the engine (docs/performance.md, "Multi-core runs"): in a forked process when the run
        is functional, writes no outputs and the process may fork
        (:func:`~simulator.kernels.jit.can_fork`), else in a thread (functional runs) or
        in this thread when asked for (timing only)."""
        if self.run_functional and self.sink is None and PREPARE_IN == "process" and can_fork():
            return in_process(prepare, items, threads=1)
        return in_background(prepare, items, enabled=self.run_functional)

    def _shares_of(self, index: int) -> list[_Prepared]:
        """Layer ``index``'s prepared shares (:meth:`_preparing`; waits for them)."""
        return self._result_of(index, self.workload.layers[index])

    def _result_of(self, item: int, layer: Layer) -> Any:
        """The result of :meth:`_preparing`'s item ``item``, about ``layer`` (waits for it)."""
        return api._computed(self._prepared[item], self.workload, layer)

    def _layer_shares(self, layer: Layer) -> list[_Prepared]:
        """A split layer's shares prepared: an array layer's on every core, a vector
        layer's by rows (:func:`vector_shares`)."""
        if layer.is_gemm:
            shares, cores = self.shares(layer), list(range(self.cores))
        else:
            shares, cores = vector_shares(layer, self.cores)
        return self.prepare(layer, shares, cores)

    def _together(self, index: int) -> tuple:
        """Layer ``index`` on all its cores from now; it ends with its last core (and the
        codec cycles that follow its shares)."""
        env, layer = self.env, self.workload.layers[index]
        prepared = self._shares_of(index)
        origin = env.now
        dram = _chip_dram(self.arch, env)
        started = [start_layer(env, p.program, dram, self.link) for p in prepared]
        ran = [self._ran(p, origin, s.finish()) for p, s in zip(prepared, started)]
        # the DRAM's figures over the transfers (as on one core: the codec's cycles after)
        report = None if dram.device is None else dram.device.report(env.now - origin)
        end = max([env.now, *(origin + r.schedule.elapsed + r.tail for r in ran)])
        if end > env.now:
            env.run(until=end)
        return (layer, ran, end - origin, report)

    def _overlapped(self, index: int) -> list[tuple]:
        """A vector layer beside the next array layer (``vector.overlap``): each core's
        vector unit runs its share beside the core's share of the array layer; the vector
        units' transfers go over a channel of their own, as on one core (docs/transformers.md,
        "Overlap"), which they share. The pair ends when both layers have."""
        env, vector = self.env, self.workload.layers[index]
        vectors = self._shares_of(index)
        origin = env.now
        vector_dram = _chip_dram(self.arch, env)
        vector_link = ChannelLink(env)
        started = [start_layer(env, p.program, vector_dram, vector_link) for p in vectors]
        entry = self._together(index + 1)
        beside = {r.prepared.core: _span(r.schedule) + r.tail for r in entry[1]}
        ran = []
        for p, s in zip(vectors, started):  # a core's cycles under its array share: once
            done = self._ran(p, origin, s.finish())
            ran.append(dataclasses.replace(done, hidden=min(done.schedule.elapsed,
                                                            beside.get(p.core, 0))))
        elapsed = max(r.schedule.elapsed for r in ran)
        report = None if vector_dram.device is None else vector_dram.device.report(elapsed)
        return [(vector, ran, elapsed, report, min(elapsed, entry[2])), entry]

    def _chained(self, first: int, stop: int, progress: api.Progress | None) -> list[tuple]:
        """Array layers ``first`` to ``stop`` - 1 with cross-layer prefetch
        (docs/memory-model.md, "Multi-core"): each core's shares as one
        :class:`PrefetchChain` on the core's buffers, all chains on the one link. With
        ``weights`` a share's input waits for its own core's previous share when both layers
        split the batch (its input is that share's output), else for every core's. A layer's
        span ends when its last core's window does."""
        from simulator.memory.prefetch import PrefetchChain

        env, arch = self.env, self.arch
        layers = self.workload.layers[first:stop]
        futures = self._prepared[first:stop]
        chains = [PrefetchChain(env, self.mode, self.link) for _ in range(self.cores)]
        drams = [_chip_dram(arch, env) for _ in layers]  # a layer's device, as on one core
        taken: set[int] = {0}  # the layers reported to ``progress`` (the first: by split)

        def program(offset: int, core: int) -> TileProgram:
            if progress is not None and offset not in taken:
                taken.add(offset)
                progress(first + offset, len(self.workload.layers), layers[offset].name)
            return self._shares_of(first + offset)[core].program

        # A chained layer's program is taken when the engine first needs it
        # (PrefetchChain.add): the engine runs the layers before it while it is prepared,
        # and the schedule is the same.
        for offset, layer in enumerate(layers):
            gate = self._gate(chains, layers, offset)
            for core in range(min(len(self.shares(layer)), self.cores)):
                chains[core].add(lambda offset=offset, core=core: program(offset, core),
                                 drams[offset], inputs_from=gate)
        start = env.now
        done = env.all_of([chain.start_processes() for chain in chains])
        try:
            env.run(until=done)
        except RuntimeError:  # SimPy: no events left before every process finished
            failed = next((f.exception() for f in futures
                           if f.done() and not f.cancelled() and f.exception()), None)
            if failed is not None:  # a layer's preparation failed
                raise failed from None
            raise SimulationError(f"{self.workload.source}: layer {layers[-1].name}: the "
                                  f"prefetching memory schedule deadlocked (arch "
                                  f"{arch.name})") from None
        prepared = [self._shares_of(index) for index in range(first, stop)]
        schedules = [chain.collect() for chain in chains]
        origins = [chain.origins() for chain in chains]
        out, begin = [], start
        for offset, layer in enumerate(layers):
            ran = [self._ran(p, origins[p.core][offset], schedules[p.core][offset])
                   for p in prepared[offset]]
            end = max(r.origin + r.schedule.window[1] for r in ran)
            device = drams[offset].device
            report = None
            if device is not None:  # the layer's transfers over its span
                device.origin = begin
                report = device.report(end - begin)
            out.append((layer, ran, end - begin, report))
            begin = end
        return out

    def _gate(self, chains: list, layers: Sequence[Layer], offset: int) -> Any:
        """What a chained share's input waits for with ``weights`` (:meth:`_chained`)."""
        if offset == 0 or self.mode != "weights":
            return None
        before, now = layers[offset - 1], layers[offset]
        if partition_of(self.arch, before) == partition_of(self.arch, now) == "batch":
            return None
        env = self.env
        return lambda: env.all_of([chain.runs[offset - 1].done for chain in chains])

    # -- the pipeline -----------------------------------------------------------------------

    def pipeline(self, progress: api.Progress | None) -> RunResult:
        """Stages of layers, one core each; the images stream through them. Within a stage,
        as on one core: cross-layer prefetch chains an image's consecutive array layers, and
        with ``vector.overlap`` a vector layer runs beside the array layer after it."""
        workload, env, arch = self.workload, self.env, self.arch
        stages = pipeline_stages([layer.macs for layer in workload.layers], self.cores)
        images = _images(workload)
        core_of = [core for core, (lo, hi) in enumerate(stages) for _ in range(lo, hi)]

        index_of = {layer.name: index for index, layer in enumerate(workload.layers)}

        def prepare(layer: Layer) -> list[_Prepared]:
            return self.prepare(layer, split_layer(layer, "batch", images),
                                [core_of[index_of[layer.name]]] * images)

        taken: set[int] = set()

        def program(index: int, image: int) -> TileProgram:  # taken when a stage needs it
            if progress is not None and index not in taken:
                taken.add(index)
                progress(index, len(workload.layers), workload.layers[index].name)
            return self._shares_of(index)[image].program

        dram = _chip_dram(arch, env)
        programs = [[[functools.partial(program, index, image) for index in range(lo, hi)]
                     for image in range(images)] for lo, hi in stages]
        ran: dict[tuple[int, int], _Ran] = {}

        def after(core: int, image: int, offset: int, started: Any, origin: int) -> int:
            index = stages[core][0] + offset
            done = self._ran(self._shares_of(index)[image], origin, started.finish())
            ran[index, image] = done
            return done.tail

        gemm = [[workload.layers[index].is_gemm for index in range(lo, hi)] for lo, hi in stages]
        # every layer prepared in order beside the engine (docs/performance.md)
        prepare_item, items = self._items(prepare)
        with self._preparing(prepare_item, items) as self._prepared:
            try:
                started = run_pipeline(
                    env, programs, dram, self.link, mode=self.mode if self.prefetch else "none",
                    gemm=gemm, after=after, overlap_dram=(lambda: _chip_dram(arch, env))
                    if arch.vector.overlap else None)
            except SimulationError as exc:
                raise SimulationError(f"{workload.source}: {exc} (arch {arch.name})") from None
            prepared = [self._shares_of(index) for index in range(len(workload.layers))]
            for item, (_, layer) in enumerate(items):  # every result before the child ends
                self._result_of(item, layer)
        total = env.now
        report = None
        if dram.device is not None:  # chained layers moved its origin to their windows
            dram.device.origin = 0
            report = dram.device.report(total)
        moved = [sum(sum(p.program.dram_reads) + sum(p.program.dram_writes) for p in row)
                 for row in prepared]
        hidden = {}
        for (core, image, offset), (vector, _) in started.items():
            index = stages[core][0] + offset
            if index + 1 < len(workload.layers) and (core, image, offset + 1) in started:
                follower, _ = started[core, image, offset + 1]
                if getattr(follower, "beside", None) is vector:
                    hidden[index, image] = min(ran[index, image].schedule.elapsed,
                                               _span(ran[index + 1, image].schedule))
        layers = []
        for index, layer in enumerate(workload.layers):
            row = [dataclasses.replace(ran[index, image], hidden=hidden.get((index, image), 0))
                   for image in range(images)]
            elapsed = sum(_span(r.schedule) + r.tail for r in row)
            share = moved[index] / sum(moved) if sum(moved) else 0.0
            layers.append((layer, row, elapsed, _scaled(report, share),
                           sum(r.hidden for r in row)))
        if self._later:
            layers = self._priced(layers)
        return self._result(layers, [r for entry in layers for r in entry[1]], total)

    # -- results ----------------------------------------------------------------------------

    def _result(self, layers: list, ran_all: list[_Ran], total: int) -> RunResult:
        arch, pe, tech = self.arch, self.pe, self.tech
        buffer_kib = api._buffer_capacities_kib(arch, [r.result for r in ran_all])
        area = array_area(tech, pe_composition(pe).parts, arch.array.rows * arch.array.cols,
                          buffer_kib)  # one core's: its leakage prices one core's time
        if any(not layer.is_gemm for layer in self.workload.layers):
            area = api._with_vector_area(arch, tech, area)  # a vector unit per core
        if self.coding is not None:  # a codec per core (docs/energy-model.md)
            from simulator.energy.codec import codec_area_um2, with_codec_area

            area = with_codec_area(area, codec_area_um2(tech, **api._codec_shape(arch)))
        results = [self._layer(entry[0], entry[1], entry[2], entry[3], area, buffer_kib,
                               entry[4] if len(entry) > 4 else 0) for entry in layers]
        chip_area = dataclasses.replace(
            area, breakdown_um2={k: v * self.cores for k, v in area.breakdown_um2.items()},
            pe_um2=area.pe_um2)
        timeline = None
        if self.timeline:
            timeline = tuple(self._timeline(r) for r in ran_all)
        return RunResult(arch=arch, workload=self.workload, layers=tuple(results),
                         tech=tech.name, area=chip_area, timeline=timeline,
                         multicore=self._report(results, ran_all, total),
                         notes=api.run_notes(self.pe, results))

    def _timeline(self, ran: _Ran) -> Any:
        p = ran.prepared
        name = p.share.layer.name
        if self.arch.multicore.partition == "pipeline":
            name = f"{name} image {p.share.lo}"
        line = api._timeline(name, ran.origin, ran.schedule, p.program)
        return dataclasses.replace(line, core=p.core, layer=p.share.layer.name)

    def _layer(self, layer: Layer, ran: list[_Ran], elapsed: int,
               report: dict[str, Any] | None, area: Any,
               buffer_kib: Mapping[str, float], overlap: int = 0) -> LayerResult:
        """The layer's result from its shares' (docs/memory-model.md, "Multi-core");
        ``overlap``: a vector layer's cycles hidden under the next array layer."""
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
            return dataclasses.replace(
                self._vector_layer(layer, ran, priced, elapsed, report, pipeline),
                overlap_cycles=overlap)
        combined = _combined(layer, [r.result for r in ran], priced, elapsed, pipeline)
        # the features' reports (priced: with their energies): the shares' summed
        combined = dataclasses.replace(combined, **{
            name: (getattr(priced[0], name) if len(priced) == 1 else
                   _merged([getattr(p, name) for p in priced], pipeline))
            for name in ("zap", "codec", "compression")})
        compute = combined.compute_cycles
        bandwidth = api._roofline_bandwidth(arch)
        roof, bound = roofline(compute, sum(moved), bandwidth)
        pes = arch.array.rows * arch.array.cols * (1 if pipeline else self.cores)
        peak = max(r.prepared.peak for r in ran)
        bits = sum(r.result.hcm_bits_moved for r in ran)
        busy = elapsed - max(r.tail for r in ran)  # as on one core: less the codec's cycles
        return dataclasses.replace(
            combined, dram=report, roofline_cycles=roof, bound=bound,
            hcm_cycles=hcm_cycles(layer.gemm.macs, pes, peak, bits, bandwidth),
            utilization=layer.gemm.macs / (busy * pes * peak) if busy > 0 else 0.0)

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
            busy = sum(_span(r.schedule) + r.tail - r.hidden for r in mine)
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
                 dram: Dram, link: ChannelLink, *, mode: str = "none",
                 gemm: Sequence[Sequence[bool]] | None = None, after: Any = None,
                 overlap_dram: Any = None) -> dict[tuple[int, int, int], tuple[Any, int]]:
    """Run a pipeline's tile programs on ``env`` until all have finished.

    ``programs[c][i]``: the programs of stage c's layers for image i, in layer order (each
    a program or a function that returns it, called when the stage first needs it). Stage
    c starts image i when stage c - 1 has finished it and c has finished image i - 1; its
    layers run one after another. All transfers share ``link``. Within a stage, as on one
    core (docs/memory-model.md, "Multi-core"): with ``mode`` ``weights`` or ``all`` an
    image's consecutive array layers (``gemm[c][k]`` true; default all) run as one
    :class:`~simulator.memory.prefetch.PrefetchChain` on the link; with ``overlap_dram`` (a
    function giving a fresh DRAM) a vector layer followed by an array layer runs beside it,
    its transfers on a channel of their own. ``after(c, i, k, started, origin)``, when given,
    is called as layer k ends and returns cycles the stage waits before going on (the
    codec's). Returns, per (stage, image, layer of the stage), an object whose ``finish()``
    is the layer's schedule and the cycle it started at.
    """
    runs: dict[tuple[int, int, int], tuple[Any, int]] = {}
    done = [[env.event() for _ in stage] for stage in programs]

    def finished(core: int, image: int, offset: int, started: Any, origin: int) -> int:
        runs[core, image, offset] = (started, origin)
        return 0 if after is None else after(core, image, offset, started, origin)

    def stage(core: int) -> Any:
        for image, layers in enumerate(programs[core]):
            if core:
                yield done[core - 1][image]
            flags = gemm[core] if gemm is not None else [True] * len(layers)
            offset = 0
            while offset < len(layers):
                if mode != "none" and flags[offset]:
                    stop = offset
                    while stop < len(layers) and flags[stop]:
                        stop += 1
                    yield from _chain(env, layers[offset:stop], dram, link, mode, core,
                                      image, offset, finished)
                    offset = stop
                    continue
                origin = env.now
                if (overlap_dram is not None and not flags[offset]
                        and offset + 1 < len(layers) and flags[offset + 1]):
                    vector = start_layer(env, _program(layers[offset]), overlap_dram(),
                                         ChannelLink(env))
                    started = start_layer(env, _program(layers[offset + 1]), dram, link)
                    started.beside = vector
                    yield started.done
                    extra = finished(core, image, offset + 1, started, origin)
                    if extra:
                        yield env.timeout(extra)
                    if not vector.done.processed:
                        yield vector.done
                    finished(core, image, offset, vector, origin)
                    offset += 2
                    continue
                started = start_layer(env, _program(layers[offset]), dram, link)
                yield started.done
                extra = finished(core, image, offset, started, origin)
                if extra:
                    yield env.timeout(extra)
                offset += 1
            done[core][image].succeed()

    processes = env.all_of([env.process(stage(c)) for c in range(len(programs))])
    try:
        env.run(until=processes)
    except RuntimeError:  # SimPy: no events left before every process finished
        raise SimulationError("the pipeline schedule deadlocked") from None
    return runs


def _program(program: TileProgram | Any) -> TileProgram:
    """A pipeline's program, or the function that gives it (taken when its stage needs it)."""
    return program if isinstance(program, TileProgram) else program()


def _chain(env: simpy.Environment, layers: Sequence[TileProgram], dram: Dram,
           link: ChannelLink, mode: str, core: int, image: int, first: int,
           finished: Any) -> Any:
    """A stage's consecutive array layers of one image as one prefetch chain on ``link``."""
    from simulator.memory.prefetch import PrefetchChain

    chain = PrefetchChain(env, mode, link)
    for program in layers:
        chain.add(program, dram)
    yield chain.start_processes()
    for offset, (schedule, origin) in enumerate(zip(chain.collect(), chain.origins())):
        finished(core, image, first + offset, _Finished(schedule), origin)


def _share_coding(whole: Any, x: np.ndarray, options: Any) -> Any:
    """A share's input coded with the whole layer's codec (its tables, calibration and
    basis): the stream and the figures of its own slice ``x``."""
    from simulator.memory.codec import code, one_blas_thread

    x = np.asarray(x).astype(np.int64, copy=False)
    with one_blas_thread():
        coded = code(whole.codec, x, lanes=options.lanes, word_bits=options.word_bits,
                     burst_bytes=options.burst_bytes)
    noise = float(np.sum((coded.decoded - x).astype(np.float64) ** 2))
    signal = float(np.sum(x.astype(np.float64) ** 2))
    sqnr = None if noise == 0 else (10 * math.log10(signal / noise) if signal else -math.inf)
    return dataclasses.replace(whole, coded=coded,
                               raw_bytes=math.ceil(x.size * whole.value_bits / 8),
                               sqnr_db=sqnr)


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


#: Figures of a feature's report that are not summed over a layer's shares: rates, sizes
#: of one value, settings (the first share's; ``*_per_value``: weighted by values).
_PER_SHARE = ("bits", "components", "channels", "calibration_images", "value_bits",
              "threshold", "mask_type", "lanes", "row_hit_rate", "peak_bandwidth_gb_s")


def _merged(reports: Sequence[Mapping[str, Any] | None], pipeline: bool) -> Any:
    """One layer's ``zap``, ``codec`` or ``compression`` report from its shares': counts,
    bytes, MACs and energies summed, cycles the slowest share's (a pipeline's summed), bits
    per value weighted by the values each share holds, settings and names the first's."""
    present = [r for r in reports if r is not None]
    if not present:
        return None
    first = present[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [r.get(key) for r in present]
        if isinstance(value, Mapping) or value is None:
            nested = [v for v in values if isinstance(v, Mapping)]
            out[key] = _merged(nested, pipeline) if nested else value
        elif isinstance(value, bool):
            out[key] = any(values)
        elif not isinstance(value, (int, float)) or key in _PER_SHARE or None in values:
            out[key] = value
        elif "per_value" in key or key.endswith("sqnr_db"):
            weights = [r.get("values", 1) or 0 for r in present]
            total = sum(weights)
            out[key] = (sum(w * v for w, v in zip(weights, values)) / total if total
                        else value)
        elif key.endswith("cycles") and not pipeline:
            out[key] = max(values)
        else:
            out[key] = sum(values)
    for key in out:  # an operand's bits per value: its merged report's
        operand = out.get(key.removesuffix("_bits_per_value"))
        if key.endswith("_bits_per_value") and isinstance(operand, Mapping):
            out[key] = operand.get("stored_bits_per_value", out[key])
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
    if len(results) == 1:  # one share: its own figures
        r = results[0]
        return {"mse": r.mse, "max_abs_error": r.max_abs_error, "sqnr_db": r.sqnr_db,
                "signal_power": r.signal_power, "output_matches_trace": r.output_matches_trace}
    sizes = [r.m * r.n * r.groups for r in results]
    noise = sum(r.mse * s for r, s in zip(results, sizes))
    signal = sum((r.signal_power or 0.0) * s for r, s in zip(results, sizes))
    size = sum(sizes)
    sqnr = None if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    matches = [r.output_matches_trace for r in results]
    return {"mse": noise / size if size else 0.0,
            "max_abs_error": max(r.max_abs_error for r in results), "sqnr_db": sqnr,
            "signal_power": (None if all(r.signal_power is None for r in results)
                             else signal / size if size else 0.0),
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
