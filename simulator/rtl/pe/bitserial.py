"""The bit-serial PE's datapath: G AND lanes, an adder tree, one shifter
(docs/hardware-spec.md §6, docs/rtl.md "Bit-serial and SWIS").

Each step the PE holds G parallel 8-bit operands, one bit of each of the G serial operands,
and a control field that moves with the serial bits: the bit position s (3 bits), the sign
step flag (the bit at position 7 of a two's complement operand weighs -2^7) and a valid
flag. Every lane is 8 AND gates (the parallel operand with its serial bit); a balanced adder
tree sums the lanes; the sum is negated on the sign step ((x XOR n) + n) and shifted left by
s; the accumulator adds the result. A K group of G elements takes p steps, one per bit
(LSB first at position 8 - p), so the array's fold takes ceil(Kd/G) * p steps, which is
``BitSerialPE.reduction_steps``. The event is ``idle`` (no position: never for a plain
bit-serial stream), ``zero`` (no lane with a set bit and a non-zero parallel operand) or
``active``; ``lanes`` counts the active lanes (sasim's ``active_lanes`` stat).

:func:`encode` turns the steps of a :class:`simulator.rtl.streams.SerialStream` (the
reference array's encoding: signed bits and a position slot) into this PE's ports.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal, signed, unsigned

from simulator.rtl.pe.common import operand_signals, product_bits

__all__ = ["COUNTERS", "EVENT_IDLE", "EVENT_ZERO", "EVENT_ACTIVE", "BitSerialDatapath",
           "build", "encode", "adder_tree", "anded", "gate", "popcount", "lane_ports", "CTL_VALID",
           "CTL_NEG"]

#: Counter names by event index (docs/pe-models.md): bit-serial and SWIS share them.
COUNTERS = ("idle", "zero", "active")
EVENT_IDLE, EVENT_ZERO, EVENT_ACTIVE = 0, 1, 2
#: The control field: bits 0..2 the position, then these flags.
CTL_NEG = 1 << 3
CTL_VALID = 1 << 4


def adder_tree(m: Module, terms: list, name: str):
    """A balanced tree of two-input adders over ``terms`` (widths grow one bit a level)."""
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            s = Signal(signed(max(terms[i].shape().width, terms[i + 1].shape().width) + 1),
                       name=f"{name}_l{level}_{i // 2}")
            m.d.comb += s.eq(terms[i] + terms[i + 1])
            nxt.append(s)
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms, level = nxt, level + 1
    return terms[0]


def lane_ports(group: int) -> list[Signal]:
    """G one-bit serial lane inputs."""
    return [Signal(unsigned(1), name=f"bit{t}") for t in range(group)]


def anded(m: Module, value: Signal, bit: Signal, name: str) -> Signal:
    """One lane's AND gates: ``value`` when ``bit`` is set, else 0 (as a signed value)."""
    width = value.shape().width
    out = Signal(signed(width + (0 if value.shape().signed else 1)), name=name)
    gated = value.as_unsigned() & bit.replicate(width)
    m.d.comb += out.eq(gated.as_signed() if value.shape().signed else gated)
    return out


class BitSerialDatapath(Elaboratable):
    """G lanes, one serial bit each.

    Parameters
    ----------
    group : int
        G, lanes.
    serial : str
        ``"weight"`` (the weights are serial, the activations parallel) or ``"activation"``.
    act_signed, act_bits : the parallel activations' port (weight-serial; docs/rtl.md).
    """

    def __init__(self, group: int, serial: str, act_signed: bool, act_bits: int = 8) -> None:
        self.group, self.serial = group, serial
        self.bits = lane_ports(group)
        self.ctl = Signal(unsigned(5), name="ctl")
        if serial == "weight":
            self.values, _ = operand_signals(group, act_signed, act_bits)
            self.a, self.w = self.values, [*self.bits, self.ctl]
        else:
            _, self.values = operand_signals(group, False)
            self.a, self.w = [*self.bits, self.ctl], self.values
        self.threads = group
        self.product = Signal(signed(product_bits(group)))
        self.event = Signal(2)
        self.lanes = Signal(range(group + 1))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        pos, neg, valid = self.ctl[0:3], self.ctl[3], self.ctl[4]
        lanes = [anded(m, v, b, f"lane{t}") for t, (v, b) in
                 enumerate(zip(self.values, self.bits))]
        on_bits = [b & (v != 0) for v, b in zip(self.values, self.bits)]
        on = Cat(*on_bits)
        tree = adder_tree(m, lanes, "tree")
        width = tree.shape().width + 1
        signed_sum = Signal(signed(width))
        # conditional negation on the sign step: (x XOR n) + n
        m.d.comb += signed_sum.eq((tree.as_signed() ^ neg.replicate(width).as_signed()) + neg)
        shifted = Signal(signed(width + 7))
        m.d.comb += shifted.eq(signed_sum << pos)
        m.d.comb += [self.product.eq(gate(shifted, valid)),
                     self.lanes.eq(Mux(valid, popcount(on_bits), 0)),
                     self.event.eq(Mux(~valid, EVENT_IDLE,
                                       Mux(on != 0, EVENT_ACTIVE, EVENT_ZERO)))]
        return m


def gate(value: Signal, enable) -> Signal:
    """``value`` AND-gated by a one-bit ``enable`` (signed)."""
    width = value.shape().width
    return (value.as_unsigned() & enable.replicate(width)).as_signed()


def popcount(bits) -> object:
    """The number of set bits of a value (an adder tree of its bits)."""
    return sum(bit.as_unsigned() for bit in bits)


def build(design) -> BitSerialDatapath:
    """The datapath of ``design`` (a :class:`simulator.rtl.design.RtlDesign`)."""
    return BitSerialDatapath(design.options["group_size"], design.options["serial_operand"],
                             design.act_signed, design.act_bits)


def _control(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """The control field of each step: position, sign-step flag, valid (position >= 0)."""
    valid = pos >= 0
    return np.where(valid, np.maximum(pos, 0) | np.where(neg, CTL_NEG, 0) | CTL_VALID, 0)


def encode(design, acts: np.ndarray, wgts: np.ndarray, stream) -> tuple[np.ndarray, np.ndarray]:
    """Port values of a fold's steps.

    Parameters
    ----------
    acts, wgts : int64 (S, rows, G + 1) and (S, cols, G + 1), the stream's steps as the
        edges present them (lane t < G; slot G of the weights holds the position).
    stream : the :class:`simulator.rtl.streams.SerialStream` (its ``serial`` and ``signed``).

    Returns
    -------
    (S, rows, len(a)) and (S, cols, len(w)) port values.

    Raises
    ------
    ValueError
        If a lane's signed bit disagrees with the sign step (the stream is not p-bit serial).
    """
    group = design.options["group_size"]
    serial_side, parallel_side = (wgts, acts) if stream.serial == "weight" else (acts, wgts)
    pos = wgts[:, :, group]
    if stream.serial == "activation":
        pos = np.broadcast_to(pos[:, :1], acts.shape[:2])  # one position for the whole step
    neg = (pos == 7) & stream.signed
    lanes = serial_side[:, :, :group]
    bits = (lanes != 0).astype(np.int64)
    if np.any((lanes < 0) != (bits.astype(bool) & neg[:, :, None])):
        raise ValueError("a bit-serial lane's bit is negative outside the sign step")
    serial = np.concatenate([bits, _control(pos, neg)[:, :, None]], axis=2)
    parallel = parallel_side[:, :, :group]
    return (parallel, serial) if stream.serial == "weight" else (serial, parallel)
