"""The SWIS PE's datapath: G AND lanes with per-weight signs, an adder tree, a shifter by
the group's shared position (docs/hardware-spec.md §5, docs/rtl.md "Bit-serial and SWIS").

sasim decomposes the weights offline (``simulator.hw.pe.swis.decompose``): per weight an
N-bit mask and a sign, per group of G weights the N shared positions. The weight edge of
the array streams one shared position per step with, per lane, that position's mask bit and
the weight's sign; they move down the column one PE per cycle like any weight. Each step the
PE holds G parallel 8-bit activations, G (bit, sign) pairs and a control field (the
position, 3 bits, and a valid flag: a filter with fewer positions than the longest of its
column fold waits in lock step, docs/hardware-spec.md §5). Every lane is 8 AND gates and a
conditional negation (XOR with the sign; the +1 of each negated lane enters the adder tree
as a carry); the tree's sum is shifted by the position and accumulated. The step count per
column fold is sasim's ``T_c = sum over groups of the fold's largest N``, so variable N needs
no extra logic: the stream simply has more or fewer steps and waiting slots.

Events as the bit-serial PE's: ``idle`` (waiting), ``zero``, ``active``; ``lanes`` counts
the active lanes (set bit and non-zero activation).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal, signed, unsigned

from simulator.rtl.pe.bitserial import (COUNTERS, EVENT_ACTIVE, EVENT_IDLE, EVENT_ZERO,
                                        adder_tree, anded, gate, lane_ports, popcount)
from simulator.rtl.pe.common import operand_signals, product_bits

__all__ = ["COUNTERS", "SWISDatapath", "build", "encode", "CTL_VALID"]

#: The control field: bits 0..2 the position, bit 3 valid.
CTL_VALID = 1 << 3


class SWISDatapath(Elaboratable):
    """G lanes, each an activation with one weight bit and the weight's sign.

    Parameters
    ----------
    group : int
        G, lanes (weights per group).
    act_signed, act_bits : the activations' port (docs/rtl.md).
    """

    def __init__(self, group: int, act_signed: bool, act_bits: int = 8) -> None:
        self.group = group
        self.values, _ = operand_signals(group, act_signed, act_bits)
        self.bits = lane_ports(group)
        self.signs = [Signal(unsigned(1), name=f"sign{t}") for t in range(group)]
        self.ctl = Signal(unsigned(4), name="ctl")
        self.a, self.w = self.values, [*self.bits, *self.signs, self.ctl]
        self.threads = group
        self.product = Signal(signed(product_bits(group)))
        self.event = Signal(2)
        self.lanes = Signal(range(group + 1))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        pos, valid = self.ctl[0:3], self.ctl[3]
        terms, carries, on_bits = [], [], []
        for t, (v, b, s) in enumerate(zip(self.values, self.bits, self.signs)):
            lane = anded(m, v, b, f"lane{t}")
            negate = Signal(name=f"neg{t}")
            width = lane.shape().width + 1
            flipped = Signal(signed(width), name=f"lane{t}_x")
            m.d.comb += [negate.eq(s & b),
                         flipped.eq(lane ^ negate.replicate(width).as_signed())]
            terms.append(flipped)
            carries.append(negate)
            on_bits.append(b & (v != 0))
        # the negated lanes' +1s enter the tree as one more (small) term
        carry = Signal(range(self.group + 1), name="carries")
        m.d.comb += carry.eq(popcount(carries))
        tree = adder_tree(m, [*terms, _as_signed(m, carry)], "tree")
        shifted = Signal(signed(tree.shape().width + 7))
        m.d.comb += shifted.eq(tree << pos)
        on = Cat(*on_bits)
        m.d.comb += [self.product.eq(gate(shifted, valid)),
                     self.lanes.eq(Mux(valid, popcount(on_bits), 0)),
                     self.event.eq(Mux(~valid, EVENT_IDLE,
                                       Mux(on != 0, EVENT_ACTIVE, EVENT_ZERO)))]
        return m


def _as_signed(m: Module, value: Signal) -> Signal:
    out = Signal(signed(value.shape().width + 1), name=f"{value.name}_s")
    m.d.comb += out.eq(value)
    return out


def build(design) -> SWISDatapath:
    """The datapath of ``design`` (a :class:`simulator.rtl.design.RtlDesign`)."""
    return SWISDatapath(design.options["group_size"], design.act_signed, design.act_bits)


def encode(design, acts: np.ndarray, wgts: np.ndarray, stream) -> tuple[np.ndarray, np.ndarray]:
    """Port values of a fold's steps (see :func:`simulator.rtl.pe.bitserial.encode`): per
    lane the bit (|signed bit|) and the sign, and the control field.

    A plain two's complement stream (a matmul's dynamic operand) fits too: its negative top
    bit is a set bit with its sign.
    """
    group = design.options["group_size"]
    lanes = wgts[:, :, :group]
    pos = wgts[:, :, group]
    control = np.where(pos >= 0, np.maximum(pos, 0) | CTL_VALID, 0)
    ports = np.concatenate([(lanes != 0).astype(np.int64), (lanes < 0).astype(np.int64),
                            control[:, :, None]], axis=2)
    return acts[:, :, :group], ports
