"""The ``lanes`` PE's datapath in RTL (``sasim rtl``; see docs/extending.md, "RTL").

``lanes`` multipliers; each activation magnitude first loses its ``truncate_bits`` low bits
(the sign is kept); the step is ``busy`` (event 1) when a lane multiplies two non-zero
operands. Imported only by ``sasim rtl`` (it imports Amaranth).
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Mux, Signal, signed

from simulator.rtl.pe.common import operand_signals, product_bits, sign_magnitude

__all__ = ["COUNTERS", "build"]

#: Counter names by event index, as the PE model names them.
COUNTERS = ("idle", "busy")


class LanesDatapath(Elaboratable):
    def __init__(self, lanes: int, truncate_bits: int, act_signed: bool,
                 act_bits: int) -> None:
        self.threads = lanes
        self.truncate_bits = truncate_bits
        self.a, self.w = operand_signals(lanes, act_signed, act_bits)
        self.product = Signal(signed(product_bits(lanes)))
        self.event = Signal(1)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        keep = 0xFF & ~((1 << self.truncate_bits) - 1)
        terms, busy = [], []
        for t, (a, w) in enumerate(zip(self.a, self.w)):
            sign, mag = sign_magnitude(m, a, f"a{t}")
            kept = Signal(8, name=f"kept{t}")
            value = Signal(signed(10), name=f"value{t}")
            m.d.comb += [kept.eq(mag & keep),
                         value.eq(Mux(sign, -kept, kept))]
            terms.append(value * w)
            busy.append((kept != 0) & (w != 0))
        m.d.comb += [self.product.eq(sum(terms)),
                     self.event.eq(Mux(sum(b.as_unsigned() for b in busy) != 0, 1, 0))]
        return m


def build(design) -> LanesDatapath:
    """The datapath of ``design`` (its ``threads`` lanes and ``options``)."""
    return LanesDatapath(design.threads, int(design.options["truncate_bits"]),
                         design.act_signed, design.act_bits)
