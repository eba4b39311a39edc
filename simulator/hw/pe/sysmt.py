"""SySMT: non-blocking simultaneous multithreading on an OS array (docs/hardware-spec.md §3).

Each PE serves T in {1, 2, 4} threads that split the reduction dimension; colliding threads
share the 8b x 8b multiplier as 4b x 8b (two active) or 4b x 4b (three or four active)
sub-multipliers, and lose precision when an operand does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from simulator.config.arch import PEOptions
from simulator.config.schema import option
from simulator.errors import SimulationError
from simulator.hw.pe.dense import (ACCUMULATOR_BITS, OUTPUT_BITS, active_steps,
                                   dense_composition)
from simulator.hw.pe.registry import (AccumulationFeed, Composition, GemmRun, LayerOverride, PEModel,
                                      ReferenceRule, Rtl, register_pe)
from simulator.hw.pe.schedule import reordered_schedule, steps_for, thread_schedule
from simulator.records import record
from simulator.workloads.layers import Layer
from simulator.workloads.lowering import gemm_product

__all__ = ["SySMTOptions", "SySMTPE", "COUNTERS"]

COUNTERS = ("idle", "single", "shared_exact", "shared_reduced")


@record
class SySMTOptions(PEOptions):
    """``pe: {type: sysmt, threads: 2, ...}``."""

    type: Literal["sysmt"] = option("sysmt", doc="PE type.")
    threads: Literal[1, 2, 4] = option(2, doc="Threads per PE (1, 2 or 4).")
    thread_split: Literal["contiguous", "interleaved"] = option(
        "contiguous", doc="How threads split K: contiguous balanced slices (the first "
                          "Kd mod T threads get one extra element) or k = j*T + t.")
    policy: Literal["sparsity_aware", "msb_trim"] = option(
        "sparsity_aware", doc="Two-thread collision rule: sparsity_aware keeps an activation "
                              "exact when it fits in a nibble or the weight is below 16; "
                              "msb_trim keeps values below 16 and trims the rest.")
    rounding: Literal["round_half_even", "truncate"] = option(
        "round_half_even", doc="How a trimmed value drops its low nibble.")
    layer_threads: Mapping[str, Literal[1, 2, 4]] = option(
        default_factory=dict, doc="Per-layer thread counts overriding `threads`, by layer name.")
    reorder_channels: bool = option(
        False, doc="Offline reordering of K by activation non-zero rate measured on the data "
                   "(dense elements meet sparse ones; see docs/pe-models.md).")


def sysmt_composition(built: int, used: int) -> Composition:
    """Components of a PE built for ``built`` threads running ``used`` of them (docs/energy-model.md).

    The 8b x 8b multiplier is split into two 4b x 8b (2T) or four 4b x 4b (4T)
    sub-multipliers whose partial products are combined by one (2T) or three (4T) 16-bit
    adders, after a shift stage (by 0/4; 4T: 0/4/8) on each 12-bit partial product. Each
    thread has nibble-zero detectors on its activation and weight (8 + 8 bits; they give zero
    detection too), a 4-bit rounding incrementer for its activation (4T: and its weight), and
    operand-routing multiplexers (2T: 40 mux bits, 4T: 128) that steer nibbles to the
    sub-multipliers. Registers: 8 + 8 forwarding bits per thread, the accumulator and the
    output register. A PE running fewer threads than it was built for still clocks all its
    registers; its unused detectors do not toggle.
    """
    if built == 1:
        dense = dense_composition()
        mac = dense.events["single"]
        return Composition(dense.parts, {**dense.events, "shared_exact": mac,
                                         "shared_reduced": mac})
    if built == 2:
        mult, combine, stages, mux, rounders = {"mult_4x8": 2}, {"adder_16": 1}, 1, 40, 2
    elif built == 4:
        mult, combine, stages, mux, rounders = {"mult_4x4": 4}, {"adder_16": 3}, 2, 128, 8
    else:
        raise ValueError(f"a SySMT PE is built for 1, 2 or 4 threads, not {built}")
    # A barrel shifter's cost per bit (shifter_bit) is for 5 stages; a k-stage shift is k/5.
    shift = built * 12 * stages / 5
    detect = {"comparator_bit": used * 16}
    work = {**mult, **combine, "adder_32": 1, **detect, "logic_bit": mux}
    parts = {**mult, **combine, "adder_32": 1, "comparator_bit": built * 16, "logic_bit": mux,
             "shifter_bit": shift, "adder_8": rounders,
             "register_bit": built * 16 + ACCUMULATOR_BITS + OUTPUT_BITS}
    return Composition(parts=parts, events={
        "idle": detect,
        "single": work,
        # a lossless collision shifts about half the partial products
        "shared_exact": {**work, "shifter_bit": shift / 2},
        "shared_reduced": {**work, "shifter_bit": shift, "adder_8": rounders},
    })


@register_pe
class SySMTPE(PEModel):
    type_name = "sysmt"
    summary = "NB-SMT: 1/2/4 threads share one MAC, reducing precision on collisions"
    Options = SySMTOptions
    counter_names = COUNTERS
    data_dependent = True
    #: Output columns and per-column activity are independent (docs/pe-models.md).
    columns_independent = True
    #: The kernel reads 8-bit operands as they are (docs/performance.md).
    narrow_operands = True

    options: SySMTOptions

    def runs_without_numba(self) -> bool:
        """True when the SySMT kernel and the error sums are compiled ahead of time."""
        from simulator.kernels.compiled import is_compiled

        return (is_compiled("simulator.kernels.sysmt_loops")
                and is_compiled("simulator.kernels.metrics_loops"))

    def threads_for(self, layer: Layer) -> int:
        """Threads used on ``layer`` (the per-layer override, else ``threads``)."""
        return self.options.layer_threads.get(layer.name, self.options.threads)

    def reduction_steps(self, layer: Layer) -> int:
        return steps_for(layer.gemm.k, self.threads_for(layer))

    def peak_macs_per_step(self, layer: Layer) -> int:
        return self.threads_for(layer)

    def hardware_threads(self) -> int:
        """Threads the PE is built for: the most any layer uses."""
        return max([self.options.threads, *self.options.layer_threads.values()])

    def composition(self, layer: Layer | None = None) -> Composition:
        return sysmt_composition(self.hardware_threads(),
                                 self.hardware_threads() if layer is None
                                 else self.threads_for(layer))

    def check_layers(self, names: set[str]) -> None:
        unknown = sorted(set(self.options.layer_threads) - names)
        if unknown:
            raise ValueError(f"pe.layer_threads names layers the workload does not have: "
                             f"{', '.join(unknown)}")

    def layer_override(self, layers: Sequence[str]) -> LayerOverride | None:
        """Halve the threads of ``layers`` (4 -> 2 -> 1) in ``pe.layer_threads``."""
        current = dict(self.options.layer_threads)
        changed = {}
        for name in layers:
            threads = current.get(name, self.options.threads)
            if threads > 1:
                changed[name] = threads // 2
        if not changed:
            return None
        return LayerOverride("pe.layer_threads", {**current, **changed}, changed)

    @classmethod
    def reference_rule(cls) -> ReferenceRule:
        from simulator.kernels import reference_array as kernel

        return ReferenceRule(
            kernel.RULE_SYSMT, threads=(1, 2, 4),
            options={"policy": {"sparsity_aware": kernel.POLICY_SPARSITY_AWARE,
                                "msb_trim": kernel.POLICY_MSB_TRIM},
                     "rounding": {"round_half_even": kernel.ROUND_HALF_EVEN,
                                  "truncate": kernel.ROUND_TRUNCATE}},
            counter_names=COUNTERS)

    #: Sub-multipliers of 4b x 8b (2T) or 4b x 4b (4T) (docs/rtl.md); the NB-SMT paper's
    #: PE areas relative to the dense PE (MICRO 2020, docs/validation.md).
    rtl = Rtl("simulator.rtl.pe.sysmt", isolating=True, area_ratios=((2, 1.4), (4, 2.5)))

    @classmethod
    def rtl_design(cls, options: SySMTOptions) -> tuple[int, dict[str, Any]]:
        """As many operand slots as the most threads any layer uses."""
        return (max([options.threads, *options.layer_threads.values()]),
                {"policy": options.policy, "rounding": options.rounding})

    @classmethod
    def rtl_label(cls, threads: int, options: Mapping[str, Any]) -> str:
        return f"SySMT {threads}T ({options['policy']}, {options['rounding']})"

    accumulates_in_steps = True

    def accumulation_feed(self, layer: Layer, a: np.ndarray) -> AccumulationFeed:
        """Per step, the combined product of the T threads (the PE's adder tree, exact), in
        the thread schedule's order (docs/hardware-spec.md §3, §8)."""
        from simulator.kernels import reference_array as kernel

        policy = (kernel.POLICY_SPARSITY_AWARE if self.options.policy == "sparsity_aware"
                  else kernel.POLICY_MSB_TRIM)
        rounding = (kernel.ROUND_HALF_EVEN if self.options.rounding == "round_half_even"
                    else kernel.ROUND_TRUNCATE)
        return AccumulationFeed(kernel.RULE_SYSMT, np.array([policy, rounding], np.int64),
                                self.schedule(layer, a))

    def step_schedule(self, layer: Layer, a: np.ndarray) -> np.ndarray:
        return self.schedule(layer, a)

    def schedule(self, layer: Layer, a: np.ndarray) -> np.ndarray:
        """The thread schedule (T, steps) for this layer and data."""
        threads = self.threads_for(layer)
        if self.options.reorder_channels and threads > 1:
            return reordered_schedule(np.count_nonzero(a, axis=0) / max(a.shape[0], 1), threads)
        return thread_schedule(a.shape[1], threads, self.options.thread_split)

    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        threads = self.threads_for(layer)
        m_rows, kd = a.shape
        if threads == 1:
            active = active_steps(a, b)
            outputs = gemm_product(a[None], b[None])[0]
            return GemmRun(outputs,
                           {"idle": m_rows * b.shape[1] * kd - active, "single": active,
                            "shared_exact": 0, "shared_reduced": 0}, exact=outputs)
        sched = self.schedule(layer, a)
        # The kernel (and numba) is imported when a GEMM is first simulated, not with this module.
        from simulator.kernels.sysmt import OperandRangeError, sysmt_gemm

        try:
            outputs, counts, exact = sysmt_gemm(a, b, sched,
                                                self.options.rounding == "round_half_even",
                                                self.options.policy == "sparsity_aware")
        except OperandRangeError as err:
            raise SimulationError(f"layer {layer.name!r}: {err}") from err
        idle, single, shared, reduced = (int(c) for c in counts)
        return GemmRun(outputs, {"idle": idle, "single": single,
                                 "shared_exact": shared - reduced, "shared_reduced": reduced},
                       exact=exact)
