"""Analytic cross-checks of the simulated cycles: the roofline bound and HCM's estimates.

HCM (docs/hardware-spec.md §7) estimates a layer's cost from counts alone: bit operations
``MACs · (b_a·b_w + b_a + b_w + log2 Kd)`` (the multiplier's partial products, the adder that
accumulates them and the accumulator's growth over the reduction), the bits it must move
(each input, weight and output once), and the bound those set against the array's MACs per
cycle and the DRAM bandwidth. The roofline bound uses the bytes the memory model actually
moves (after its reuse) against the same bandwidth: the simulated cycles can approach it but
never beat it.
"""

from __future__ import annotations

import math
from typing import Literal

from simulator.memory.footprint import Footprint
from simulator.workloads.layers import Layer

__all__ = ["Bound", "roofline", "hcm_bit_ops", "hcm_bits_moved", "hcm_cycles"]

Bound = Literal["compute", "memory"]


def roofline(compute_cycles: int, dram_bytes: int,
             bandwidth: float | None) -> tuple[int, Bound]:
    """``max(compute cycles, DRAM bytes / bandwidth)`` (rounded up) and which term is larger.

    With unbounded bandwidth the memory term is 0 and every layer is compute-bound.
    """
    memory = 0 if bandwidth is None else math.ceil(dram_bytes / bandwidth)
    return max(compute_cycles, memory), ("memory" if memory > compute_cycles else "compute")


def hcm_bit_ops(layer: Layer) -> float:
    """HCM's bit operations of ``layer``: ``MACs · (b_a·b_w + b_a + b_w + log2(Kd))``."""
    a, w = layer.activation_bits, layer.weight_bits
    return layer.macs * (a * w + a + w + math.log2(layer.gemm.k))


def hcm_bits_moved(layer: Layer, output_bits: int) -> int:
    """Bits HCM moves for ``layer``: every distinct input element, weight and output once."""
    gemm = layer.gemm
    inputs = gemm.groups * Footprint(layer).elements(0, gemm.m, 0, gemm.k)
    return (inputs * layer.activation_bits + gemm.groups * gemm.k * gemm.n * layer.weight_bits
            + gemm.groups * gemm.m * gemm.n * output_bits)


def hcm_cycles(macs: int, pes: int, peak_macs_per_pe_cycle: int, bits_moved: int,
               bandwidth: float | None) -> int:
    """HCM's bound: ``max(MACs / (PEs · peak MACs per PE-cycle), bits moved / 8 / bandwidth)``."""
    compute = math.ceil(macs / (pes * peak_macs_per_pe_cycle))
    if bandwidth is None:
        return compute
    return max(compute, math.ceil(bits_moved / 8 / bandwidth))
