"""The dense PE's datapath: one exact 8b x 8b multiplier (docs/hardware-spec.md §2)."""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Mux, Signal, signed

from simulator.rtl.pe.common import (EVENT_IDLE, EVENT_SINGLE, gated, operand_signals,
                                     product_bits)

__all__ = ["COUNTERS", "DenseDatapath", "build"]

#: Counter names by event index (docs/pe-models.md).
COUNTERS = ("idle", "single")


class DenseDatapath(Elaboratable):
    """``product = a * w``; the event is ``single`` when both operands are non-zero.

    Parameters
    ----------
    act_signed : bool
        Activations are signed (else unsigned).
    act_bits : int
        Activation port width (docs/rtl.md).
    isolate : bool
        Operand isolation: the multiplier's inputs are held at zero on an idle step.
    """

    def __init__(self, act_signed: bool, act_bits: int = 8, isolate: bool = False) -> None:
        self.threads = 1
        self.a, self.w = operand_signals(1, act_signed, act_bits)
        self.product = Signal(signed(product_bits(1)))
        self.event = Signal(2)
        self.isolate = isolate
        #: what the multiplier sees (docs/rtl.md, "Switching activity")
        self.multiplier_inputs = ([Signal(self.a[0].shape(), name="mult_a"),
                                   Signal(self.w[0].shape(), name="mult_w")] if isolate
                                  else [*self.a, *self.w])

    def elaborate(self, platform: object) -> Module:
        m = Module()
        a, w = self.a[0], self.w[0]
        nonzero = Signal()
        m.d.comb += nonzero.eq((a != 0) & (w != 0))
        if self.isolate:
            mult_a, mult_w = self.multiplier_inputs
            m.d.comb += [mult_a.eq(gated(a, nonzero)), mult_w.eq(gated(w, nonzero))]
            a, w = mult_a, mult_w
        m.d.comb += [self.product.eq(a * w),
                     self.event.eq(Mux(nonzero, EVENT_SINGLE, EVENT_IDLE))]
        return m


def build(design) -> DenseDatapath:
    """The datapath of ``design`` (a :class:`simulator.rtl.design.RtlDesign`)."""
    return DenseDatapath(design.act_signed, design.act_bits, design.operand_isolation)
