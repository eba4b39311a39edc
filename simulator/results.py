"""The result schema: what a run reports, per layer and in total.

:class:`LayerResult` is one layer's figures, :class:`RunResult` a whole run's with its totals
(:meth:`RunResult.summary` is what ``summary.json`` holds), :class:`LayerTimeline` one layer's
schedule. Nothing here runs the engine or the hardware models, so results can be read,
totalled and reported without them (docs/getting-started.md lists the files).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

import simulator
from simulator.config.arch import ArchConfig
from simulator.config.schema import dump
from simulator.energy.model import AreaReport, run_energy
from simulator.energy.scope import array_share, buffer_sizing, layer_scopes
from simulator.operands import BUFFERS, DramReads, DramWrites, PerBuffer
from simulator.records import record
from simulator.workloads.layers import Workload

__all__ = ["ErrorMetrics", "FunctionalResult", "LayerResult", "LayerTimeline", "RunResult",
           "error_metrics"]


@record
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
    #: Where the layer ran: "array" (a GEMM) or "vector" (the vector unit).
    unit: str = "array"
    #: The layer's role in a transformer block ("", attention, ffn, other).
    role: str = ""
    #: DRAM bytes of a matmul's right operand read from the KV cache (K or V).
    kv_cache_read_bytes: int = 0
    #: Cycles of this (vector) layer hidden under the next array layer (``vector.overlap``).
    overlap_cycles: int = 0
    #: A vector layer's operations by primitive (add, mul, max, shift, exp, div, rsqrt).
    vector_operations: dict[str, int] | None = None
    #: A vector layer's lane-cycles of work over the lane-cycles of its total time.
    vector_lane_utilization: float = 0.0
    #: SQNR (dB) of an integer-only vector op against float64 on the layer's data (None:
    #: not measured, or exact); docs/transformers.md, "Integer-only variants".
    vector_sqnr_db: float | None = None
    #: Transform coding of the layer's activations (docs/transform-coding.md, "Reports"):
    #: bits per value, bytes, codec cycles; None without ``memory.activation_codec``.
    codec: dict[str, Any] | None = None
    #: ZAP's figures for this layer (docs/zap.md, "Reports"); None when ZAP does not apply.
    zap: dict[str, Any] | None = None
    #: The DRAM preset's figures for this layer (docs/memory-model.md, "DRAM timing and
    #: energy"): commands, row-hit rate, bandwidth, energy split; None with the ideal channel.
    dram: dict[str, Any] | None = None
    #: Compressed operands (docs/memory-model.md, "Compressed operands"): per operand its
    #: format and stored bits per value, DRAM bytes saved; None without
    #: ``memory.compression``.
    compression: dict[str, Any] | None = None

    @property
    def dram_reads(self) -> DramReads[int]:
        """Bytes read from DRAM, by kind."""
        return DramReads(self.dram_ifmap_read_bytes, self.dram_filter_read_bytes,
                         self.dram_psum_read_bytes)

    @property
    def dram_writes(self) -> DramWrites[int]:
        """Bytes written to DRAM, by kind."""
        return DramWrites(self.dram_ofmap_write_bytes, self.dram_psum_write_bytes)

    @property
    def buffer_reads(self) -> PerBuffer[int]:
        """Bytes read from each on-chip buffer."""
        return PerBuffer(self.buffer_ifmap_read_bytes, self.buffer_filter_read_bytes,
                         self.buffer_ofmap_read_bytes)

    @property
    def buffer_writes(self) -> PerBuffer[int]:
        """Bytes written to each on-chip buffer."""
        return PerBuffer(self.buffer_ifmap_write_bytes, self.buffer_filter_write_bytes,
                         self.buffer_ofmap_write_bytes)

    @property
    def peak_bytes(self) -> PerBuffer[int]:
        """Largest occupancy of each on-chip buffer."""
        return PerBuffer(self.peak_ifmap_bytes, self.peak_filter_bytes, self.peak_ofmap_bytes)


@record
class ErrorMetrics:
    """Numeric error of the simulated outputs against the exact GEMM."""

    mse: float
    max_abs_error: int
    sqnr_db: float | None  # None when there is no error at all
    #: None when the outputs were never formed (an exact PE counting from non-zero counts).
    signal_power: float | None


def error_metrics(approx: np.ndarray, exact: np.ndarray) -> ErrorMetrics:
    """MSE, max |error| and SQNR (dB) of integer outputs ``approx`` against ``exact``."""
    diff = (approx - exact).astype(np.float64)
    noise = float(np.mean(diff * diff)) if diff.size else 0.0
    signal = float(np.mean(exact.astype(np.float64) ** 2)) if exact.size else 0.0
    sqnr = None if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    return ErrorMetrics(noise, int(np.abs(approx - exact).max()) if diff.size else 0, sqnr,
                        signal)


@record
class FunctionalResult:
    """What a PE's functional model gave for one layer (the functional fields of
    :class:`LayerResult`).

    Attributes
    ----------
    counters : the PE's activity counters summed over the layer's groups.
    stats : further integer totals of the PE (``None`` when the PE reports none).
    errors : the outputs' error against the exact GEMM.
    output_matches_trace : the outputs equal the trace's recorded outputs (``None``: the
        workload records none).
    """

    counters: dict[str, int]
    stats: dict[str, int] | None
    errors: ErrorMetrics
    output_matches_trace: bool | None


@record
class LayerTimeline:
    """One layer's schedule for the timeline: cycles from the run's start (plain arrays).

    ``start``/``end`` per unit (a fold, or a chunk of a fold when an operand is streamed);
    ``load_*``/``store_*`` per unit, meaningful where the unit moves bytes (``load_bytes``
    (U, 3): ifmap, filter, partial sums; ``store_bytes`` (U, 2): outputs, partial sums); a
    load prefetched before the layer's window has negative times (docs/memory-model.md,
    "Cross-layer prefetch"). ``claims``: per buffer (ifmap, filter, ofmap), the layer's
    claims and frees as int64 (k, 2) rows of (cycle, +bytes / -bytes), or ``None``.
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
    claims: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: Multi-core runs (docs/memory-model.md, "Multi-core"): the core that ran this part of
    #: the layer named ``layer`` (-1: a single-array run; ``layer`` "": ``name``).
    core: int = -1
    layer: str = ""


@record
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
    #: A multi-core run's figures (docs/memory-model.md, "Multi-core"): its cycles, the
    #: utilisation of all cores and, per core, cycles busy, stalled and idle.
    multicore: Mapping[str, Any] | None = None
    #: The PE's report lines about what it did to the data (``PEModel.notes``).
    notes: tuple[str, ...] = ()

    @property
    def total_cycles(self) -> int:
        """The run's cycles: its layers' one after another, less what vector layers hid under
        the next array layer (``vector.overlap``); a multi-core run's from its start to its
        last core's end."""
        if self.multicore is not None:
            return self.multicore["total_cycles"]
        return sum(layer.total_cycles - layer.overlap_cycles for layer in self.layers)

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
        if self.multicore is not None:
            return self.multicore["utilization"]
        pes = self.arch.array.rows * self.arch.array.cols
        capacity = sum((l.total_cycles - l.overlap_cycles) * pes * l.peak_macs_per_pe_cycle
                       for l in self.layers)
        return self.macs / capacity if capacity else 0.0

    @property
    def inferences(self) -> int:
        """Inferences the run computes at once (docs/memory-model.md, "Batches"): the
        workload's batch (a YAML's ``batch``, a phase's sequences); a trace without a phase:
        the images (rows) of its first array layer's input."""
        workload = self.workload
        if workload.format == "trace" and not workload.phase:
            first = next((layer for layer in workload.layers if layer.is_gemm), None)
            return first.batch if first is not None else 1
        return workload.sequences

    @property
    def inferences_per_s(self) -> float | None:
        """Throughput: the batch's inferences over the run's time (its latency)."""
        seconds = self.total_cycles / self.arch.array.clock_mhz * 1e-6
        return self.inferences / seconds if seconds > 0 else None

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
            "inferences": self.inferences,
            "inferences_per_s": self.inferences_per_s,
            "macs": self.macs,
            "utilization": self.utilization,
            **self._alternative_totals(),
            **self._memory_totals(),
            **self._functional_totals(),
            **self._energy_totals(),
            **self._transformer_totals(),
            **self._codec_totals(),
            **self._zap_totals(),
            **self._dram_totals(),
            **self._compression_totals(),
            **self._multicore_totals(),
            **self._buffer_sizing(),
            **({"notes": list(self.notes)} if self.notes else {}),
            "layers": self._layer_records(),
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
        out.update(run_energy([l.energy_breakdown_pj for l in priced], self.area, self.macs))
        return out

    def _buffer_sizing(self) -> dict[str, Any]:
        """How the buffers were sized and priced (docs/memory-model.md, "Ideal memory")."""
        memory = self.arch.memory
        configured = dict(zip(BUFFERS, (memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib)))
        peaks = dict(zip(BUFFERS, (max((l.peak_bytes[i] for l in self.layers), default=0)
                                   for i in range(len(BUFFERS)))))
        return {"buffer_sizing": buffer_sizing(configured, peaks,
                                               self.arch.array.rows * self.arch.array.cols)}

    def _layer_records(self) -> list[dict[str, Any]]:
        """The layers with their energy at both scopes (docs/energy-model.md, "Two
        scopes")."""
        share = array_share(None if self.area is None else self.area.total_um2,
                            None if self.area is None else self.area.array_um2)
        return layer_scopes([dataclasses.asdict(layer) for layer in self.layers], share)

    @property
    def is_transformer(self) -> bool:
        """The workload has vector layers, matmuls, roles or an inference phase: the summary
        then has the totals of docs/transformers.md ("Reports")."""
        return bool(self.workload.phase) or any(
            layer.unit == "vector" or layer.op == "matmul" or layer.role
            for layer in self.layers)

    def _transformer_totals(self) -> dict[str, Any]:
        """Array vs vector time, time by role, the KV cache and the phase's latency figures
        (docs/transformers.md, "Reports"); nothing for a workload without them."""
        if not self.is_transformer:
            return {}
        total = self.total_cycles
        shown = {"attention": 0, "ffn": 0, "other": 0, "vector": 0}
        array = vector = 0
        for layer in self.layers:
            cycles = layer.total_cycles - layer.overlap_cycles
            if layer.unit == "vector":
                vector += cycles
                shown["vector"] += cycles
            else:
                array += cycles
                shown[layer.role if layer.role in shown else "other"] += cycles
        clock = self.arch.array.clock_mhz
        time_us = total / clock
        out: dict[str, Any] = {
            "array_cycles": array, "vector_cycles": vector,
            "overlap_cycles": sum(layer.overlap_cycles for layer in self.layers),
            "role_cycles": shown,
            "role_shares": {k: v / total if total else 0.0 for k, v in shown.items()},
            "kv_cache_read_bytes": sum(layer.kv_cache_read_bytes for layer in self.layers),
            "kv_cache_bytes": self._kv_cache_bytes(),
            "phase": self.workload.phase or None,
            "sequences": self.workload.sequences,
        }
        if self.workload.phase == "prefill":
            out["time_to_first_token_us"] = time_us
        elif self.workload.phase == "decode":
            out["time_per_output_token_us"] = time_us
            out["tokens_per_s"] = self.workload.sequences / (time_us * 1e-6) if total else None
        return out

    def _kv_cache_bytes(self) -> int:
        """Size of the KV cache the run reads: every ``kv_cache`` matmul's right operand."""
        size = 0
        for layer in self.workload.layers:
            if layer.op == "matmul" and layer.kv_cache:
                elements = layer.batch * layer.right_heads * layer.in_channels * layer.out_channels
                size += -(-elements * layer.weight_bits // 8)
        return size

    def _codec_totals(self) -> dict[str, Any]:
        """Run totals of the transform codec (docs/transform-coding.md, "Reports"): bits per
        value weighted by the values coded, bytes and cycles summed."""
        reports = [l.codec for l in self.layers if l.codec is not None]
        if not reports:
            return {}
        coded = [r for r in reports if "values" in r]
        values = sum(r["values"] for r in coded)
        out: dict[str, Any] = {"values": values}
        for key in ("entropy_bits_per_value", "code_bits_per_value", "stored_bits_per_value"):
            out[key] = (sum(r[key] * r["values"] for r in coded) / values) if values else None
        for key in ("stream_bytes", "table_bytes", "raw_bytes", "inverse_macs",
                    "inverse_cycles", "decode_cycles", "encode_cycles", "codec_stall_cycles",
                    "dram_raw_bytes", "dram_bytes_saved"):
            out[key] = sum(r.get(key, 0) for r in reports)
        for key in ("dram_energy_saved_pj", "encoder_energy_pj", "decoder_energy_pj",
                    "codec_register_energy_pj", "codec_energy_pj"):
            if all(key in r for r in reports):
                out[key] = sum(r[key] for r in reports)
        if self.area is not None and "codec" in self.area.breakdown_um2:  # energy-model.md
            out["codec_area_um2"] = self.area.breakdown_um2["codec"]
        return {"codec": out}

    def _dram_totals(self) -> dict[str, Any]:
        """A DRAM preset's run totals (docs/memory-model.md, "DRAM timing and energy"):
        commands and energy summed, the row-hit rate over all bursts, the bandwidth over the
        run's time; nothing with the ideal channel."""
        reports = [l.dram for l in self.layers if l.dram is not None]
        if not reports:
            return {}
        out: dict[str, Any] = {"preset": reports[0]["preset"]}
        for key in ("activates", "read_bursts", "write_bursts", "row_hits", "refreshes",
                    "activate_pj", "burst_pj", "background_pj", "refresh_pj", "energy_pj"):
            out[key] = sum(r[key] for r in reports)
        bursts = out["read_bursts"] + out["write_bursts"]
        out["row_hit_rate"] = out["row_hits"] / bursts if bursts else None
        seconds = self.total_cycles / (self.arch.array.clock_mhz * 1e6)
        moved = sum(sum(l.dram_reads) + sum(l.dram_writes) for l in self.layers)
        out["achieved_bandwidth_gb_s"] = moved / seconds / 1e9 if seconds else 0.0
        out["peak_bandwidth_gb_s"] = reports[0]["peak_bandwidth_gb_s"]
        return {"dram": out}

    def _multicore_totals(self) -> dict[str, Any]:
        """A multi-core run's figures and its energy per inference (nothing on one core)."""
        if self.multicore is None:
            return {}
        energy = [layer.energy_pj for layer in self.layers]
        per_inference = (None if None in energy
                         else sum(energy) / self.inferences * 1e-6)  # pJ -> uJ
        return {"multicore": {**self.multicore, "energy_per_inference_uj": per_inference}}

    def _compression_totals(self) -> dict[str, Any]:
        """Run totals of compressed operands (docs/memory-model.md, "Compressed operands"):
        per operand the values and bytes stored and their stored bits per value, DRAM bytes
        and those saved."""
        reports = [l.compression for l in self.layers if l.compression is not None]
        if not reports:
            return {}
        out: dict[str, Any] = {}
        for operand in ("ifmap", "filter"):
            sizes = [r[operand] for r in reports if r[operand] is not None]
            values = sum(s["values"] for s in sizes)
            stored = sum(s["stored_bytes"] for s in sizes)
            out[operand] = None if not sizes else {
                "schemes": sorted({s["scheme"] for s in sizes}), "layers": len(sizes),
                "values": values, "stored_bytes": stored,
                "raw_bytes": sum(s["raw_bytes"] for s in sizes),
                "stored_bits_per_value": 8 * stored / values if values else 0.0,
                "source": sizes[0]["source"]}
        for key in ("dram_compressed_bytes", "dram_raw_bytes", "dram_bytes_saved"):
            out[key] = sum(r[key] for r in reports)
        if all("dram_energy_saved_pj" in r for r in reports):
            out["dram_energy_saved_pj"] = sum(r["dram_energy_saved_pj"] for r in reports)
        return {"compression": out}

    def _zap_totals(self) -> dict[str, Any]:
        """ZAP's run totals (docs/zap.md, "Reports"); nothing when it applied to no layer."""
        layers = [l for l in self.layers if l.zap is not None]
        if not layers:
            return {}
        out: dict[str, Any] = {"layers": len(layers),
                               "synthetic": any(l.zap["synthetic"] for l in layers),
                               "eligible_macs": sum(l.macs for l in layers)}
        for key in ("outputs", "masked", "predicted", "predicted_zero", "true_zero_predicted",
                    "mispredicted_nonzero", "falsely_computed", "mass", "mass_lost",
                    "macs_saved", "predictor_macs", "dense_cycles", "predictor_cycles",
                    "cycles_none", "cycles_compact"):
            out[key] = sum(l.zap[key] for l in layers)
        # ZAP's energy (docs/energy-model.md, "ZAP"): priced in functional runs only
        for key in ("active_steps", "skipped_active_steps", "energy_predictor_pj",
                    "energy_logic_pj", "energy_skipped_pj", "energy_side_unit_register_pj",
                    "energy_side_unit_leakage_pj"):
            if all(key in l.zap for l in layers):
                out[key] = sum(l.zap[key] for l in layers)
        return {"zap": out}

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
        simulated = [layer for layer in self.layers
                     if layer.counters is not None and layer.unit == "array"]
        if not simulated:
            return {"functional": False}
        counters: Counter[str] = Counter()
        stats: Counter[str] = Counter()
        for layer in simulated:
            counters.update(layer.counters)
            stats.update(layer.stats or {})
        # an exact layer whose outputs were never formed has no signal power (and no noise)
        signal = sum((l.signal_power or 0.0) * l.m * l.n * l.groups for l in simulated)
        noise = sum(l.mse * l.m * l.n * l.groups for l in simulated)
        matches = [l.output_matches_trace for l in simulated if l.output_matches_trace is not None]
        return {
            "functional": True,
            "counters": dict(counters),
            **({"stats": dict(stats)} if stats else {}),
            "mse": noise / sum(l.m * l.n * l.groups for l in simulated),
            "max_abs_error": max(l.max_abs_error for l in simulated),
            # as a layer's (error_metrics): no error, None; all-zero exact outputs, -inf
            "sqnr_db": (None if noise == 0 else
                        10 * math.log10(signal / noise) if signal > 0 else -math.inf),
            "outputs_match_trace": all(matches) if matches else None,
        }
