"""The dense 8b x 8b PE: one exact MAC per step (the baseline of docs/hardware-spec.md §2)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from simulator.config.arch import PEOptions
from simulator.config.schema import option
from simulator.hw.pe.registry import (AccumulationFeed, Composition, GemmRun, PEModel,
                                      ReferenceRule, Rtl, register_pe)
from simulator.records import record
from simulator.workloads.layers import Layer
from simulator.workloads.lowering import gemm_product

__all__ = ["DenseOptions", "DensePE", "active_steps", "ACCUMULATOR_BITS", "OUTPUT_BITS",
           "dense_composition", "dense_feed"]

#: Accumulator width of every PE type, bits (an 8b x 8b product summed over Kd <= 2^16).
ACCUMULATOR_BITS = 32
#: Width of the output register a result drains through, bits.
OUTPUT_BITS = 32


@record
class DenseOptions(PEOptions):
    """``pe: {type: dense}``: an exact 8b x 8b multiply-accumulate per cycle."""

    type: Literal["dense"] = option("dense", doc="PE type.")


def dense_composition() -> Composition:
    """The 8b x 8b PE: a multiplier, a 32-bit accumulate, activation and weight forwarding
    registers, the accumulator and the output drain register. A zero operand costs no
    multiply and no add (nothing toggles), without an explicit detector."""
    mac = {"mult_8x8": 1, "adder_32": 1}
    return Composition(parts={**mac, "register_bit": 8 + 8 + ACCUMULATOR_BITS + OUTPUT_BITS},
                       events={"idle": {}, "single": mac})


def dense_feed(kd: int) -> AccumulationFeed:
    """The dense PE's accumulation order: step k adds a[m, k] * b[k, n]."""
    from simulator.kernels.reference_array import RULE_DENSE

    return AccumulationFeed(RULE_DENSE, np.zeros(1, dtype=np.int64),
                            np.arange(kd, dtype=np.int64)[None])


def active_steps(a: np.ndarray, b: np.ndarray) -> int:
    """PE-steps whose activation and weight are both non-zero, over all (m, n, k)."""
    return int(np.count_nonzero(a, axis=0) @ np.count_nonzero(b, axis=1))


@register_pe
class DensePE(PEModel):
    type_name = "dense"
    summary = "exact 8b x 8b MAC per cycle (the OS/WS/IS baseline)"
    Options = DenseOptions
    dataflows = ("os", "ws", "is")
    counter_names = ("idle", "single")
    #: Zero operands decide which steps cost a multiply, so energy needs the data.
    data_dependent = True
    exact = True
    columns_independent = True

    accumulates_in_steps = True

    def reduction_steps(self, layer: Layer) -> int:
        return layer.gemm.k

    def accumulation_feed(self, layer: Layer, a: np.ndarray) -> AccumulationFeed:
        """One product per step, K in order (docs/hardware-spec.md §2)."""
        return dense_feed(a.shape[1])

    @classmethod
    def reference_rule(cls) -> ReferenceRule:
        from simulator.kernels import reference_array as kernel

        # The kernel's step classes; a dense PE only ever reaches the first two.
        return ReferenceRule(kernel.RULE_DENSE, threads=(1,),
                             counter_names=("idle", "single", "shared_exact", "shared_reduced"))

    #: One 8b x 8b multiplier (docs/rtl.md); the NB-SMT paper's area unit.
    rtl = Rtl("simulator.rtl.pe.dense", isolating=True, area_ratios=((1, 1.0),))

    def composition(self, layer: Layer | None = None) -> Composition:
        return dense_composition()

    def exact_counters(self, layer: Layer, a_nonzero: np.ndarray,
                       b_nonzero: np.ndarray) -> dict[str, int]:
        gemm = layer.gemm
        active = int(np.einsum("gk,gk->", a_nonzero, b_nonzero))
        total = gemm.groups * gemm.m * gemm.n * gemm.k
        return {"idle": total - active, "single": active}

    def gemm_counters(self, a: np.ndarray, b: np.ndarray) -> dict[str, int]:
        """The counters of :meth:`simulate_gemm` from non-zero counts alone (no product)."""
        active = active_steps(a, b)
        return {"idle": a.shape[0] * b.shape[1] * a.shape[1] - active, "single": active}

    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        return GemmRun(gemm_product(a[None], b[None])[0], self.gemm_counters(a, b))
