"""The SySMT (NB-SMT) PE's datapath, built from sub-multipliers (docs/hardware-spec.md §3).

T threads share one 8b x 8b multiplier made of two 4b x 8b (T = 2) or four 4b x 4b (T = 4)
unsigned sub-multipliers working on magnitudes; each sub-product is shifted (by 0, 4 or 8)
and added with its thread's sign. The collision logic counts the active threads c (both
operands non-zero) and steers the sub-multipliers:

- c <= 1: all sub-multipliers work on the one active thread: the exact 8b x 8b product;
- c == 2: each active thread gets a 4b x 8b multiplier (T = 4: two 4b x 4b ones). Its narrow
  operand is the activation's mantissa (``trim``), or under ``sparsity_aware`` the weight's
  low nibble when the activation does not fit a nibble but the weight is below 16;
- c >= 3 (T = 4): each thread gets one 4b x 4b multiplier: both operands trimmed.

The rules are those of the reference array's ``_sysmt_step``
(simulator/kernels/reference_array.py; docs/reference-array.md, "Rules"); ``sasim rtl
verify`` checks the two agree bit for bit.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned

from simulator.rtl.pe.common import (classify, gated, operand_signals, product_bits,
                                     sign_magnitude, trimmed)

__all__ = ["COUNTERS", "SySMTDatapath", "build"]

#: Counter names by event index (docs/pe-models.md).
COUNTERS = ("idle", "single", "shared_exact", "shared_reduced")


class _Thread:
    """One thread's operands, split and pre-decoded (sign, magnitudes, mantissas, narrow)."""

    def __init__(self, m: Module, a: Signal, w: Signal, t: int, policy: str,
                 rounding: str) -> None:
        sa, self.x = sign_magnitude(m, a, f"t{t}_a")
        sw, self.mw = sign_magnitude(m, w, f"t{t}_w")
        self.sign = Signal(name=f"t{t}_sign")
        self.active = Signal(name=f"t{t}_active")
        m.d.comb += [self.sign.eq(sa ^ sw), self.active.eq((self.x != 0) & (self.mw != 0))]
        self.xm, self.xwide, self.xchg = trimmed(m, self.x, rounding, f"t{t}_a")
        self.wm, self.wwide, self.wchg = trimmed(m, self.mw, rounding, f"t{t}_w")
        # Two-thread (4b x 8b) operand choice: the narrow 4-bit operand, the wide 8-bit one,
        # whether the sub-product is shifted by 4, and whether an operand was changed.
        self.narrow = Signal(unsigned(4), name=f"t{t}_narrow")
        self.wide = Signal(unsigned(8), name=f"t{t}_wide_op")
        self.nshift = Signal(name=f"t{t}_nshift")
        self.pchg = Signal(name=f"t{t}_pair_changed")
        swap = Signal(name=f"t{t}_swap")
        m.d.comb += swap.eq(self.xchg & ~self.wwide if policy == "sparsity_aware" else 0)
        m.d.comb += [self.narrow.eq(Mux(swap, self.mw[0:4], self.xm)),
                     self.wide.eq(Mux(swap, self.x, self.mw)),
                     self.nshift.eq(Mux(swap, 0, self.xwide)),
                     self.pchg.eq(self.xchg & ~swap)]


class SySMTDatapath(Elaboratable):
    """The SySMT PE's combinational datapath for ``threads`` threads.

    Parameters
    ----------
    threads : int
        1, 2 or 4.
    policy : str
        ``sparsity_aware`` or ``msb_trim``.
    rounding : str
        ``round_half_even`` or ``truncate``.
    act_signed : bool
        Activations are signed (else unsigned).
    act_bits : int
        Activation port width (docs/rtl.md).
    isolate : bool
        Operand isolation: the sub-multipliers' inputs are held at zero on an idle step.
    """

    def __init__(self, threads: int, policy: str, rounding: str, act_signed: bool,
                 act_bits: int = 8, isolate: bool = False) -> None:
        if threads not in (1, 2, 4):
            raise ValueError(f"threads must be 1, 2 or 4, not {threads}")
        self.threads, self.policy, self.rounding = threads, policy, rounding
        self.isolate = isolate
        self.a, self.w = operand_signals(threads, act_signed, act_bits)
        self.product = Signal(signed(product_bits(threads)))
        self.event = Signal(2)
        # the sub-multipliers' operand inputs (narrow, wide): 2T two 4b x 8b, 4T four 4b x 4b
        wide = 8 if threads == 2 else 4
        self.sub_inputs = [] if threads == 1 else [
            (Signal(unsigned(4), name=f"mul{k}_n"), Signal(unsigned(wide), name=f"mul{k}_v"))
            for k in range(threads)]
        #: what the multipliers see (docs/rtl.md, "Switching activity")
        if threads == 1:
            self.multiplier_inputs = ([Signal(self.a[0].shape(), name="mult_a"),
                                       Signal(self.w[0].shape(), name="mult_w")] if isolate
                                      else [*self.a, *self.w])
        else:
            self.multiplier_inputs = [s for pair in self.sub_inputs for s in pair]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        th = [_Thread(m, self.a[t], self.w[t], t, self.policy, self.rounding)
              for t in range(self.threads)]
        active = [t.active for t in th]
        changed = Signal()
        count = classify(m, active, changed, self.event)
        self._busy = Signal(name="any_active")
        m.d.comb += self._busy.eq(count != 0)
        if self.threads == 1:
            a, w = self.a[0], self.w[0]
            if self.isolate:
                mult_a, mult_w = self.multiplier_inputs
                m.d.comb += [mult_a.eq(gated(a, self._busy)), mult_w.eq(gated(w, self._busy))]
                a, w = mult_a, mult_w
            m.d.comb += [changed.eq(0), self.product.eq(a * w)]
            return m
        if self.threads == 2:
            terms = self._two_threads(m, th, count)
            m.d.comb += changed.eq((th[0].active & th[0].pchg) | (th[1].active & th[1].pchg))
        else:
            terms = self._four_threads(m, th, count)
            pair = (count == 2)
            m.d.comb += changed.eq(Mux(
                pair, _any([t.active & t.pchg for t in th]),
                _any([t.active & (t.xchg | t.wchg) for t in th])))
        # the terms are one's complements where negative: add their signs as carries
        m.d.comb += self.product.eq(sum(t for t, _ in terms) + sum(s for _, s in terms))
        return m

    def _gate(self) -> Signal | None:
        """The operand-isolation enable of the sub-multipliers (None: not isolated)."""
        return self._busy if self.isolate else None

    def _two_threads(self, m: Module, th: list[_Thread], count: Signal) -> list:
        """Two 4b x 8b sub-multipliers; returns their (term, sign) pairs."""
        single = Signal(name="single_mode")
        e = Signal(name="single_thread")
        m.d.comb += [single.eq(count <= 1), e.eq(th[1].active)]
        x, mw, sign = Signal(unsigned(8)), Signal(unsigned(8)), Signal()
        m.d.comb += [x.eq(Mux(e, th[1].x, th[0].x)), mw.eq(Mux(e, th[1].mw, th[0].mw)),
                     sign.eq(Mux(e, th[1].sign, th[0].sign))]
        ops = [(Mux(single, x[0:4], th[0].narrow), Mux(single, mw, th[0].wide),
                Mux(single, 0, th[0].nshift) * 4, Mux(single, sign, th[0].sign)),
               (Mux(single, x[4:8], th[1].narrow), Mux(single, mw, th[1].wide),
                Mux(single, 4, th[1].nshift * 4), Mux(single, sign, th[1].sign))]
        return [_sub_product(m, k, self.sub_inputs[k], n, v, sh, s, self._gate())
                for k, (n, v, sh, s) in enumerate(ops)]

    def _four_threads(self, m: Module, th: list[_Thread], count: Signal) -> list:
        """Four 4b x 4b sub-multipliers; returns their (term, sign) pairs."""
        mode_single, mode_pair = Signal(name="single_mode"), Signal(name="pair_mode")
        first, last = Signal(range(4), name="first_active"), Signal(range(4), name="last_active")
        m.d.comb += [mode_single.eq(count <= 1), mode_pair.eq(count == 2)]
        # priority encoders: the lowest and the highest active thread
        for t in reversed(range(4)):
            with m.If(th[t].active):
                m.d.comb += first.eq(t)
        for t in range(4):
            with m.If(th[t].active):
                m.d.comb += last.eq(t)

        def pick(index: Signal, field: str, name: str) -> Signal:
            # one multiplexer per selected operand, shared by every sub-multiplier using it
            proto = getattr(th[0], field)
            chosen = Signal(proto.shape(), name=name)
            m.d.comb += chosen.eq(Array(getattr(t, field) for t in th)[index])
            return chosen

        x, mw, s = (pick(last, f, f"single_{f}") for f in ("x", "mw", "sign"))
        single = [(x[0:4], mw[0:4], 0, s), (x[0:4], mw[4:8], 4, s),
                  (x[4:8], mw[0:4], 4, s), (x[4:8], mw[4:8], 8, s)]
        pair = []
        for e, label in ((first, "first"), (last, "second")):
            n, v, sh, s = (pick(e, f, f"{label}_{f}")
                           for f in ("narrow", "wide", "nshift", "sign"))
            pair += [(n, v[0:4], sh * 4, s), (n, v[4:8], sh * 4 + 4, s)]
        quad = [(t.xm, t.wm, (t.xwide + t.wwide) * 4, t.sign) for t in th]
        terms = []
        for k in range(4):
            chosen = [Mux(mode_single, single[k][f], Mux(mode_pair, pair[k][f], quad[k][f]))
                      for f in range(4)]
            terms.append(_sub_product(m, k, self.sub_inputs[k], *chosen, self._gate()))
        return terms


def _any(bits: list) -> object:
    """OR of a list of 1-bit values."""
    result = bits[0]
    for bit in bits[1:]:
        result = result | bit
    return result


def _sub_product(m: Module, k: int, inputs: tuple[Signal, Signal], narrow, wide, shift,
                 sign, gate: Signal | None = None) -> tuple[Signal, Signal]:
    """One unsigned sub-multiplier on ``inputs`` (its narrow and wide operand registers'
    signals, driven here from ``narrow`` and ``wide``, gated to zero while ``gate`` is low
    when it is given), its shifter (0/4/8) and its conditional inversion; returns the
    signed term (one's complement when negative) and its sign (the carry that completes the
    negation)."""
    n, v = inputs
    narrow_bits, wide_bits = len(n), len(v)
    if gate is not None:
        narrow, wide = gated(narrow, gate), gated(wide, gate)
    p = Signal(unsigned(narrow_bits + wide_bits), name=f"mul{k}_p")
    sh = Signal(range(9), name=f"mul{k}_shift")
    shifted = Signal(unsigned(narrow_bits + wide_bits + 8), name=f"mul{k}_shifted")
    term = Signal(signed(narrow_bits + wide_bits + 10), name=f"mul{k}_term")
    m.d.comb += [n.eq(narrow), v.eq(wide), p.eq(n * v), sh.eq(shift)]
    m.d.comb += shifted.eq(Mux(sh[3], p << 8, Mux(sh[2], p << 4, p)))
    # -x = ~x + 1: the term is x XOR sign, and the adder that sums the terms adds the signs
    # as carries (SySMTDatapath.elaborate), so no sub-product needs its own negator
    s = Signal(name=f"mul{k}_sign")
    m.d.comb += s.eq(sign)
    m.d.comb += term.eq(Cat(shifted, Const(0, 2)) ^ s.replicate(len(term)))
    return term, s


def build(design) -> SySMTDatapath:
    """The datapath of ``design`` (a :class:`simulator.rtl.design.RtlDesign`)."""
    opts = design.options
    return SySMTDatapath(design.threads, opts["policy"], opts["rounding"], design.act_signed,
                         design.act_bits, design.operand_isolation)
