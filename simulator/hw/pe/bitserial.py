"""Bit-serial PE (Stripes/Loom-like) and uniform truncation (MODELS.md §5-6).

A bit-serial PE has G lanes (``group_size``): each cycle it takes one bit of G serial operands
(AND gates with the G parallel operands), adds the G lane outputs in an adder tree, shifts the
sum by the bit's position and accumulates it. A group of G consecutive K elements takes p
cycles (``bits``), one per bit of the serial operand, so a fold takes ceil(Kd/G) * p steps.

The serial operand is a p-bit two's complement (signed) or unsigned number on the grid of its
8-bit format: :func:`quantize_to_bits` drops the 8 - p least significant bits with round half
to even and saturates to the p-bit range. At p = 8 nothing changes and the outputs are exact;
a weight-serial array at p = N < 8 is the *weight truncation* baseline (uniform N-bit weights),
and an activation-serial array at p < 8 quantises the activations the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from simulator.config.arch import PEOptions
from simulator.config.schema import option, positive
from simulator.hw.pe.registry import GemmRun, PEModel, register_pe
from simulator.workloads.layers import Layer
from simulator.workloads.lowering import gemm_product

__all__ = ["BitSerialOptions", "BitSerialPE", "COUNTERS", "STATS", "quantize_to_bits",
           "serial_codes", "lane_patterns", "popcount", "active_cycle_count", "MAX_GROUP_SIZE"]

#: Per PE-cycle: no position to process (lock-step wait; never for a plain bit-serial array),
#: a position processed with no active lane, a position processed with an active lane.
COUNTERS = ("idle", "zero", "active")
STATS = ("shifts", "active_lanes", "storage_bits", "weights", "weight_sq_error")

#: Lane bit patterns are held in int64 words, one bit per lane.
MAX_GROUP_SIZE = 62


def _bits_range(value: int) -> str | None:
    return None if 1 <= value <= 8 else "an integer in 1..8"


def _group_size_range(value: int) -> str | None:
    return None if 1 <= value <= MAX_GROUP_SIZE else f"an integer in 1..{MAX_GROUP_SIZE}"


@dataclasses.dataclass(frozen=True)
class BitSerialOptions(PEOptions):
    """``pe: {type: bitserial, bits: 8, serial_operand: weight, group_size: 8}``."""

    type: Literal["bitserial"] = option("bitserial", doc="PE type.")
    bits: int = option(8, doc="Bits p of the serial operand, one per cycle (8 = exact INT8; "
                              "below 8 the serial operand is rounded to p bits: with "
                              "serial_operand weight this is the weight-truncation baseline).",
                       check=_bits_range)
    serial_operand: Literal["weight", "activation"] = option(
        "weight", doc="Which operand is fed bit by bit (the other is bit-parallel, 8 bits).")
    group_size: int = option(8, doc="Lanes G per PE: K elements consumed per group of p "
                                    "cycles (the same knob as SWIS's, for like-for-like runs).",
                             check=_group_size_range)


def quantize_to_bits(x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Round 8-bit integers to the ``bits``-bit grid of their format, in the original scale.

    ``q = clip(round_half_even(x / 2^(8-bits)), lo, hi) * 2^(8-bits)`` with (lo, hi) the
    ``bits``-bit two's complement range when ``signed`` (-2^(bits-1) .. 2^(bits-1)-1), else
    0 .. 2^bits - 1. ``bits = 8`` returns ``x`` unchanged.
    """
    x = np.asarray(x, dtype=np.int64)
    drop = 8 - bits
    if drop == 0:
        return x.copy()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    # x / 2^drop is exact in float64 and np.rint rounds half to even.
    q = np.clip(np.rint(x / float(1 << drop)), lo, hi).astype(np.int64)
    return q << drop


def serial_codes(q: np.ndarray, bits: int) -> np.ndarray:
    """The ``bits``-bit codes of values on the grid of :func:`quantize_to_bits`.

    Bit j of the code is fed in cycle j and weighs ``2^(j + 8 - bits)``, negated for the top
    bit of a signed (two's complement) code.
    """
    return (np.asarray(q, dtype=np.int64) >> (8 - bits)) & ((1 << bits) - 1)


def lane_patterns(x: np.ndarray, group_size: int) -> np.ndarray:
    """Pack per-lane bits into one int64 word per K group.

    Parameters
    ----------
    x : ndarray, shape (..., Kd) of 0/1 (or bool)
        One bit per K element; K (the last axis) is split into groups of ``group_size`` (the
        last group may be short: its missing lanes are 0).

    Returns
    -------
    ndarray of int64, shape (..., ceil(Kd / group_size))
        Bit t of entry q is ``x[..., q * group_size + t]``.
    """
    x = np.asarray(x)
    lead, kd = x.shape[:-1], x.shape[-1]
    groups = -(-kd // group_size)
    padded = np.zeros(lead + (groups * group_size,), dtype=np.uint8)
    padded[..., :kd] = x
    if group_size == 8:
        # Lane t of each byte lands in bit t with bitorder="little".
        return np.packbits(padded, axis=-1, bitorder="little").astype(np.int64)
    lanes = padded.reshape(lead + (groups, group_size))
    if group_size > 8:
        return lanes.astype(np.int64) @ (np.int64(1) << np.arange(group_size, dtype=np.int64))
    # Fewer than 8 lanes: one little-endian 64-bit word per group holds lane t in byte t;
    # multiplying by 0x0102040810204080 sums byte t's bit 0 into bit 56 + t.
    words = np.zeros(lead + (groups, 8), dtype=np.uint8)
    words[..., :group_size] = lanes
    gathered = words.view(np.dtype("<u8"))[..., 0] * np.uint64(0x0102040810204080)
    return (gathered >> np.uint64(56)).astype(np.int64)


def popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of non-negative int64 values below 2^16."""
    x = np.asarray(x, dtype=np.int64)
    return np.take(_POPCOUNT16, x)


_POPCOUNT16 = np.array([bin(v).count("1") for v in range(1 << 16)], dtype=np.int64)


def active_cycle_count(x_nonzero: np.ndarray, y_bits, y_slots: np.ndarray,
                       group_size: int) -> int:
    """Processing cycles with at least one active lane.

    Parameters
    ----------
    x_nonzero : (X, Kd) bool, where the parallel operand is non-zero (one row per row of A or
        column of B).
    y_bits : sequence of R arrays (Y, Kd) of 0/1, the serial operand's bit in slot r.
    y_slots : (Q, Y) int, the slots processed per K group.
    """
    from simulator.kernels.swis import count_active_cycles  # numba loads on first use

    x_pat = np.ascontiguousarray(lane_patterns(x_nonzero, group_size).T)
    y_pat = np.ascontiguousarray(
        np.stack([lane_patterns(bits, group_size).T for bits in y_bits], axis=-1))
    return count_active_cycles(x_pat, y_pat, np.ascontiguousarray(y_slots, dtype=np.int64))


@register_pe
class BitSerialPE(PEModel):
    type_name = "bitserial"
    summary = ("bit-serial lanes (Stripes/Loom-like): G K-elements per p cycles; p < 8 "
               "truncates the serial operand")
    Options = BitSerialOptions
    counter_names = COUNTERS
    stat_names = STATS
    data_dependent = True

    options: BitSerialOptions

    def reduction_steps(self, layer: Layer) -> int:
        return -(-layer.gemm.k // self.options.group_size) * self.options.bits

    def peak_macs_per_step(self, layer: Layer) -> int:
        # G lanes each finish a MAC in a cycle at best (a one-bit serial operand).
        return self.options.group_size

    def quantized_operands(self, layer: Layer, a: np.ndarray,
                           b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The operands the array multiplies: the serial one on its p-bit grid.

        Activations are signed when the layer says so or when any is negative.
        """
        bits = self.options.bits
        if self.options.serial_operand == "weight":
            return a, quantize_to_bits(b, bits, signed=True)
        signed = layer.activation_signed or bool(a.size and int(a.min()) < 0)
        return quantize_to_bits(a, bits, signed=signed), b

    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        opts = self.options
        group, bits = opts.group_size, opts.bits
        m_rows, kd = a.shape
        n_cols = b.shape[1]
        qa, qb = self.quantized_operands(layer, a, b)
        outputs = gemm_product(qa[None], qb[None])[0]
        groups = -(-kd // group)
        processing = m_rows * n_cols * groups * bits
        if opts.serial_operand == "weight":
            codes = serial_codes(qb, bits)
            codes_t = codes.T
            active = active_cycle_count(a != 0, [(codes_t >> j) & 1 for j in range(bits)],
                                        np.full((groups, n_cols), bits), group)
            lanes = int(np.count_nonzero(a, axis=0) @ popcount(codes).sum(axis=1))
            storage = kd * n_cols * bits
            weight_error = int(((b - qb) ** 2).sum())
        else:
            codes = serial_codes(qa, bits)
            active = active_cycle_count((b != 0).T, [(codes >> j) & 1 for j in range(bits)],
                                        np.full((groups, m_rows), bits), group)
            lanes = int(popcount(codes).sum(axis=0) @ np.count_nonzero(b, axis=1))
            storage = kd * n_cols * 8
            weight_error = 0
        return GemmRun(outputs, {"idle": 0, "zero": processing - active, "active": active},
                       {"shifts": processing, "active_lanes": lanes, "storage_bits": storage,
                        "weights": kd * n_cols, "weight_sq_error": weight_error})
