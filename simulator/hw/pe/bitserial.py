"""Bit-serial PE (Stripes/Loom-like) and uniform truncation (docs/hardware-spec.md §5-6).

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

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from simulator.config.arch import PEOptions
from simulator.config.schema import option
from simulator.hw.pe.dense import ACCUMULATOR_BITS, OUTPUT_BITS
from simulator.hw.pe.registry import (Composition, GemmRun, PEModel, ReferenceRule, Rtl,
                                      SerialOperands, register_pe)
from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["BitSerialOptions", "BitSerialPE", "COUNTERS", "STATS", "quantize_to_bits",
           "serial_codes", "lane_patterns", "bit_slot_patterns", "popcount", "active_cycle_count",
           "magnitude_bound", "exact_product", "product_from_floats", "DENSE_LANES",
           "MAX_GROUP_SIZE", "lane_composition"]

#: Per PE-cycle: no position to process (lock-step wait; never for a plain bit-serial array),
#: a position processed with no active lane, a position processed with an active lane.
COUNTERS = ("idle", "zero", "active")
STATS = ("shifts", "active_lanes", "storage_bits", "weights", "weight_sq_error")

#: Lane bit patterns are held in int64 words, one bit per lane.
MAX_GROUP_SIZE = 62
#: Up to this many lanes the functional models count activity from dense histograms of the
#: 2**G lane patterns (one pass over each operand, no pattern arrays).
DENSE_LANES = 12


def _bits_range(value: int) -> str | None:
    return None if 1 <= value <= 8 else "an integer in 1..8"


def _group_size_range(value: int) -> str | None:
    return None if 1 <= value <= MAX_GROUP_SIZE else f"an integer in 1..{MAX_GROUP_SIZE}"


@record
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
    return bit_slot_patterns(np.asarray(x).astype(np.uint8), group_size, [0])[..., 0]


#: Byte t of a little-endian 64-bit word, bit 0: the lanes of a group of at most 8.
_LOW_BITS = np.uint64(0x0101010101010101)
#: Multiplying a word of 0/1 bytes by this sums byte t's bit into bit 56 + t.
_GATHER = np.uint64(0x0102040810204080)


def bit_slot_patterns(values: np.ndarray, group_size: int, positions) -> np.ndarray:
    """Lane patterns of chosen bits of 8-bit values, one int64 per K group and slot.

    Parameters
    ----------
    values : ndarray of uint8, shape (..., Kd)
        The lanes' values; K (the last axis) is cut into groups of ``group_size`` (a short
        last group has its missing lanes 0).
    group_size : int
        Lanes G per group.
    positions : sequence of R ints or int arrays broadcastable to (..., Q)
        Slot r reads bit ``positions[r]`` (per group when an array) of every lane.

    Returns
    -------
    ndarray of int64, shape (..., Q, R)
        Bit t of entry [..., q, r] is bit ``positions[r]`` of ``values[..., q * G + t]``.
    """
    lead, kd = values.shape[:-1], values.shape[-1]
    groups = -(-kd // group_size)
    out = np.empty(lead + (groups, len(positions)), dtype=np.int64)
    if group_size <= 8:
        # One little-endian word per group, lane t in byte t: a slot is a shift, a mask of
        # each byte's bit 0, and one multiplication that gathers those bits into the top byte.
        words = np.zeros(lead + (groups, 8), dtype=np.uint8)
        if group_size == 8:
            words.reshape(lead + (groups * 8,))[..., :kd] = values
        else:
            padded = np.zeros(lead + (groups * group_size,), dtype=np.uint8)
            padded[..., :kd] = values
            words[..., :group_size] = padded.reshape(lead + (groups, group_size))
        words = words.view(np.dtype("<u8"))[..., 0]
        for r, position in enumerate(positions):
            shift = np.asarray(position).astype(np.uint64)
            out[..., r] = (((words >> shift) & _LOW_BITS) * _GATHER) >> np.uint64(56)
        return out
    padded = np.zeros(lead + (groups * group_size,), dtype=np.int64)
    padded[..., :kd] = values
    weight = np.int64(1) << np.arange(group_size, dtype=np.int64)
    for r, position in enumerate(positions):
        shift = np.repeat(np.broadcast_to(np.asarray(position, dtype=np.int64),
                                          lead + (groups,)), group_size, axis=-1)
        bits = (padded >> shift) & 1
        out[..., r] = bits.reshape(lead + (groups, group_size)) @ weight
    return out


def popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits (uint8) of integers in 0..255."""
    return np.take(_POPCOUNT8, np.asarray(x).astype(np.uint8))


_POPCOUNT8 = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


def magnitude_bound(x: np.ndarray) -> int:
    """max |x| without building |x| (two reductions, no temporary array)."""
    return max(int(x.max()), -int(x.min())) if x.size else 0


def exact_product(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact int64 product ``a @ w`` of integer matrices: float64 BLAS when every partial sum
    stays below 2**53 (always for 8-bit operands), int64 matmul otherwise."""
    if magnitude_bound(a) * magnitude_bound(w) * a.shape[1] < 2**53:
        return (a.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ w.astype(np.int64)


def product_from_floats(a_float: np.ndarray, w_float: np.ndarray, bound: int,
                        operands) -> np.ndarray:
    """:func:`exact_product` from float64 copies already made: their BLAS product when
    ``bound`` (``max|a| * max|w| * Kd``) is below 2**53, else the int64 product of
    ``operands()`` (a callable returning the integer matrices)."""
    if bound < 2**53:
        return (a_float @ w_float).astype(np.int64)
    a, w = operands()
    return a.astype(np.int64) @ w.astype(np.int64)


def active_cycle_count(x_pat: np.ndarray, y_pat: np.ndarray, y_slots: np.ndarray) -> int:
    """Processing cycles with at least one active lane, from lane patterns.

    Parameters
    ----------
    x_pat : (X, Q) int64, the lanes whose parallel operand is non-zero (one row per row of A
        or column of B), per K group.
    y_pat : (Y, Q, R) int64, the lanes whose serial bit of slot r is set.
    y_slots : (Q, Y) int, the slots processed per K group.
    """
    from simulator.kernels.swis import count_active_cycles  # numba loads on first use

    return count_active_cycles(np.ascontiguousarray(x_pat.T),
                               np.ascontiguousarray(y_pat.transpose(1, 0, 2)),
                               np.ascontiguousarray(y_slots, dtype=np.int64))


def lane_composition(group: int, *, serial_register_bits: int, lane_logic_bits: int = 0,
                     position_bits: int = 3) -> Composition:
    """A G-lane bit-serial PE (docs/energy-model.md): per lane 8 AND gates (the parallel
    operand with one serial bit), an adder tree over the lanes (ceil(G/2) 8-bit adders at the
    first level, 16-bit above), a shifter after the tree (3 stages: positions 0..7) of the
    tree's width, and a 32-bit accumulate. Registers: the G parallel 8-bit operands, the
    serial bits and their extras (``serial_register_bits``), the current position
    (``position_bits``), the accumulator and the output register. ``lane_logic_bits`` adds
    per-lane logic (SWIS's sign handling). A step with no active lane toggles nothing."""
    first = -(-group // 2)
    tree = {"adder_8": first, "adder_16": max(group - 1 - first, 0)}
    tree = {k: v for k, v in tree.items() if v}
    width = 8 + max(group - 1, 0).bit_length()
    datapath = {"logic_bit": group * 8 + lane_logic_bits, **tree,
                "shifter_bit": width * 3 / 5, "adder_32": 1}
    registers = group * 8 + serial_register_bits + position_bits + ACCUMULATOR_BITS + OUTPUT_BITS
    return Composition(parts={**datapath, "register_bit": registers},
                       events={"idle": {}, "zero": {}, "active": datapath})


def _reference_lanes(counts: np.ndarray, threads: int) -> tuple[dict[str, int], dict[str, int]]:
    """Counters and stats of the reference array's bit-serial rule: index 0 counts waiting
    PE-steps, index 1 + k a position processed with k active lanes (G = T - 1 lanes)."""
    lanes = np.arange(threads)
    return ({"idle": int(counts[0]), "zero": int(counts[1]),
             "active": int(counts[2:threads + 1].sum())},
            {"shifts": int(counts[1:threads + 1].sum()),
             "active_lanes": int(lanes @ counts[1:threads + 1])})


@register_pe
class BitSerialPE(PEModel):
    type_name = "bitserial"
    summary = ("bit-serial lanes (Stripes/Loom-like): G K-elements per p cycles; p < 8 "
               "truncates the serial operand")
    Options = BitSerialOptions
    counter_names = COUNTERS
    stat_names = STATS
    data_dependent = True
    #: Bit-serial designs are compared with the first bit-serial design of a comparison.
    baseline_family = "bitserial"

    @classmethod
    def reference_rule(cls) -> ReferenceRule:
        from simulator.kernels import reference_array as kernel

        return ReferenceRule(
            kernel.RULE_BITSERIAL, threads=tuple(range(2, 64)),
            options={"serial_operand": {"weight": kernel.SERIAL_WEIGHT,
                                        "activation": kernel.SERIAL_ACTIVATION}},
            decode=_reference_lanes)

    #: G AND lanes, an adder tree and one shifter (docs/rtl.md, "Bit-serial and SWIS").
    rtl = Rtl("simulator.rtl.pe.bitserial")

    @classmethod
    def rtl_design(cls, options: BitSerialOptions) -> tuple[int, dict[str, Any]]:
        """One slot per lane."""
        return options.group_size, {"group_size": options.group_size,
                                    "serial_operand": options.serial_operand,
                                    "bits": options.bits}

    @classmethod
    def rtl_label(cls, threads: int, options: Mapping[str, Any]) -> str:
        return (f"bit-serial G={options['group_size']} ({options['serial_operand']}-serial, "
                f"p={options['bits']})")

    def serial_operands(self, layer: Layer, a: np.ndarray,
                        b: np.ndarray) -> SerialOperands:
        """The serial operand's p-bit codes, one bit position a step (signed when the
        activations are)."""
        opts = self.options
        signed = layer.activation_signed or bool(a.size and int(a.min()) < 0)
        return SerialOperands("bits", {"a": a, "b": b, "bits": opts.bits,
                                       "serial": opts.serial_operand,
                                       "group": opts.group_size, "act_signed": signed},
                              self.type_name)

    options: BitSerialOptions

    def reduction_steps(self, layer: Layer) -> int:
        return -(-layer.gemm.k // self.options.group_size) * self.options.bits

    def layer_problem(self, layer: Layer) -> str | None:
        """The serial weight operand is two's complement: an unsigned matmul right operand
        of 8 bits (0..255) does not fit (docs/transformers.md)."""
        if (layer.op == "matmul" and not layer.weight_signed and layer.weight_bits >= 8
                and self.options.serial_operand == "weight"):
            return (f"an unsigned {layer.weight_bits}-bit right operand does not fit the "
                    f"bit-serial PE's two's complement serial operand; quantise it to 7 bits "
                    f"(weight_bits: 7) or make it signed")
        return None

    def peak_macs_per_step(self, layer: Layer) -> int:
        # G lanes each finish a MAC in a cycle at best (a one-bit serial operand).
        return self.options.group_size

    def composition(self, layer: Layer | None = None) -> Composition:
        # one serial bit per lane, plus a sign-step flag for two's complement
        return lane_composition(self.options.group_size,
                                serial_register_bits=self.options.group_size + 1)

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
        if opts.serial_operand == "weight" and group <= DENSE_LANES:
            return self._weight_serial_histograms(a, b)
        qa, qb = self.quantized_operands(layer, a, b)
        outputs = exact_product(qa, qb)
        groups = -(-kd // group)
        processing = m_rows * n_cols * groups * bits
        if opts.serial_operand == "weight":
            codes_t = serial_codes(qb, bits).T.astype(np.uint8)  # (N, Kd)
            nonzero = a != 0
            active = active_cycle_count(lane_patterns(nonzero, group),
                                        bit_slot_patterns(codes_t, group, range(bits)),
                                        np.full((groups, n_cols), bits))
            lanes = int(np.count_nonzero(nonzero, axis=0)
                        @ popcount(codes_t).sum(axis=0, dtype=np.int64))
            storage = kd * n_cols * bits
            weight_error = int(((b - qb) ** 2).sum())
        else:
            codes = serial_codes(qa, bits).astype(np.uint8)  # (M, Kd)
            active = active_cycle_count(lane_patterns((b != 0).T, group),
                                        bit_slot_patterns(codes, group, range(bits)),
                                        np.full((groups, m_rows), bits))
            lanes = int(popcount(codes).sum(axis=0, dtype=np.int64)
                        @ np.count_nonzero(b, axis=1))
            storage = kd * n_cols * 8
            weight_error = 0
        return GemmRun(outputs, {"idle": 0, "zero": processing - active, "active": active},
                       {"shifts": processing, "active_lanes": lanes, "storage_bits": storage,
                        "weights": kd * n_cols, "weight_sq_error": weight_error})

    def _weight_serial_histograms(self, a: np.ndarray, b: np.ndarray) -> GemmRun:
        """The weight-serial run in one pass over each operand: the same outputs, counters
        and stats as the general path, from pattern histograms (up to DENSE_LANES lanes)."""
        from simulator.kernels.swis import (active_from_histograms,  # numba loads on first use
                                            bitserial_weight_histogram, parallel_histogram)

        group, bits = self.options.group_size, self.options.bits
        m_rows, kd = a.shape
        n_cols = b.shape[1]
        hx, col_nonzero, a_float, a_bound = parallel_histogram(a, group)
        hy, k_popcount, q_float, weight_error, q_bound = bitserial_weight_histogram(b, bits,
                                                                                    group)
        outputs = product_from_floats(a_float, q_float, a_bound * q_bound * kd,
                                      lambda: (a, quantize_to_bits(b, bits, signed=True)))
        processing = m_rows * n_cols * -(-kd // group) * bits
        active = active_from_histograms(hx, hy)
        return GemmRun(outputs, {"idle": 0, "zero": processing - active, "active": active},
                       {"shifts": processing, "active_lanes": int(col_nonzero @ k_popcount),
                        "storage_bits": kd * n_cols * bits, "weights": kd * n_cols,
                        "weight_sq_error": weight_error})
