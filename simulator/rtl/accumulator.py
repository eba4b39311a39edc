"""Standalone accumulators in RTL, for their synthesised area (docs/rtl.md, "Accumulators").

Two Amaranth modules that take one signed product per step, as the dense PE's accumulator
does (docs/hardware-spec.md §2, §8):

- :class:`IntAccumulator`: the 32-bit integer accumulator of every PE (an adder and a
  register);
- :class:`FloatAccumulator`: a float running sum of ``1 + e + m`` bits with the rounding of
  docs/hardware-spec.md §8 (round to nearest even, flush below the smallest normal value,
  saturate above the largest): the product rounded to the product format (``Q_prod``), added
  to the running sum and the sum rounded (``Q_acc``), its register; with ``chunk`` n, every
  n steps the running sum is added into a binary32 second accumulator (its own adder and
  register) and restarts at 0.

Values are integers in units of one product (docs/hardware-spec.md §8). Inside, a float is
unpacked: a sign, a signed exponent k (the value is 1.f · 2^k) and the significand with its
hidden bit; the registers hold the packed format (sign, biased exponent E = k + bias, 0 for
zero, and m fraction bits). ``tests/rtl/test_rtl_accumulator.py`` simulates both against the
naive twin of §8.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed

from simulator.records import record

__all__ = ["FloatFormat", "IntAccumulator", "FloatAccumulator", "PRODUCT_BITS",
           "float_value", "synthesize_accumulator"]

#: Width of the signed product a step adds (an 8-bit signed or unsigned activation times an
#: 8-bit signed weight: |p| <= 255 * 128).
PRODUCT_BITS = 17
#: Width of the signed unpacked exponents (any format up to e = 8, with room for the
#: products' and sums' exponents and their differences).
EXP_BITS = 12


@record
class FloatFormat:
    """A float format of docs/hardware-spec.md §8: e exponent bits, m mantissa bits, bias."""

    e: int
    m: int
    bias: int

    @property
    def kmin(self) -> int:
        """Exponent of the smallest normal value (1 − bias)."""
        return 1 - self.bias

    @property
    def kmax(self) -> int:
        """Exponent of the largest finite value (2^e − 2 − bias)."""
        return (1 << self.e) - 2 - self.bias

    @property
    def width(self) -> int:
        return 1 + self.e + self.m


def float_value(fmt: FloatFormat, bits: int) -> int:
    """The integer a packed register value stands for (its value in product units)."""
    frac = bits & ((1 << fmt.m) - 1)
    exp = (bits >> fmt.m) & ((1 << fmt.e) - 1)
    sign = bits >> (fmt.e + fmt.m)
    if exp == 0:
        return 0
    k = exp - fmt.bias - fmt.m
    mag = ((1 << fmt.m) | frac) << k if k >= 0 else ((1 << fmt.m) | frac) >> -k
    return -mag if sign else mag


class IntAccumulator(Elaboratable):
    """``acc <= acc + product`` when ``step``, on ``bits`` bits (``clear`` restarts at 0)."""

    def __init__(self, bits: int = 32) -> None:
        self.product = Signal(signed(PRODUCT_BITS))
        self.step = Signal()
        self.clear = Signal()
        self.acc = Signal(signed(bits))

    def ports(self) -> list[Signal]:
        return [self.product, self.step, self.clear, self.acc]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        with m.If(self.clear):
            m.d.sync += self.acc.eq(0)
        with m.Elif(self.step):
            m.d.sync += self.acc.eq(self.acc + self.product)
        return m


@dataclasses.dataclass
class _Unpacked:
    """An unpacked float: sign, signed exponent, significand (hidden bit at bit m) and
    whether it is zero."""

    sign: object
    k: object
    sig: object
    zero: object


def _leading_one(m: Module, value: Signal, width: int, name: str) -> Signal:
    """The position of the leading one of ``value`` (0 when it is zero), a priority
    encoder."""
    pos = Signal(range(width), name=name)
    for i in range(width):  # the highest set bit wins (later statements override)
        with m.If(value[i]):
            m.d.comb += pos.eq(i)
    return pos


def _unpack(m: Module, fmt: FloatFormat, reg: Signal, name: str) -> _Unpacked:
    exp = reg[fmt.m:fmt.m + fmt.e]
    zero = Signal(name=f"{name}_zero")
    k = Signal(signed(EXP_BITS), name=f"{name}_k")
    sig = Signal(fmt.m + 1, name=f"{name}_sig")
    m.d.comb += [zero.eq(exp == 0), k.eq(exp - fmt.bias),
                 sig.eq(Mux(zero, 0, Cat(reg[:fmt.m], Const(1, 1))))]
    return _Unpacked(reg[fmt.e + fmt.m], k, sig, zero)


def _round_pack(m: Module, fmt: FloatFormat, sign, k, sig, width: int, zero,
                name: str) -> Signal:
    """Pack sign · sig · 2^(k − (width − 1)) (``sig`` has its leading one at bit width − 1,
    unless ``zero``) into ``fmt``: rounded to nearest even at m bits, flushed to 0 below the
    smallest normal value (on the exact magnitude), saturated above the largest."""
    out = Signal(fmt.width, name=name)
    drop = width - (fmt.m + 1)
    if drop > 0:
        kept = sig[drop:]
        guard = sig[drop - 1]
        sticky = sig[:drop - 1].any() if drop > 1 else Const(0, 1)
        up = guard & (sticky | kept[0])
    else:
        kept = Cat(Const(0, -drop), sig) if drop < 0 else sig
        up = Const(0, 1)
    rounded = Signal(fmt.m + 2, name=f"{name}_rounded")
    m.d.comb += rounded.eq(kept + up)
    carry = rounded[fmt.m + 1]
    k_out = Signal(signed(EXP_BITS), name=f"{name}_kout")
    frac = Signal(fmt.m, name=f"{name}_frac")
    m.d.comb += [k_out.eq(k + carry),
                 frac.eq(Mux(carry, rounded[1:fmt.m + 1], rounded[:fmt.m]))]
    largest = Cat(Const((1 << fmt.m) - 1, fmt.m), Const(fmt.kmax + fmt.bias, fmt.e))
    with m.If(zero | (k < fmt.kmin)):  # zero, or flushed (underflow)
        m.d.comb += out.eq(0)
    with m.Elif(k_out > fmt.kmax):  # saturated (overflow)
        m.d.comb += out.eq(Cat(largest, sign))
    with m.Else():
        m.d.comb += out.eq(Cat(frac, (k_out + fmt.bias)[:fmt.e], sign))
    return out


def _from_int(m: Module, fmt: FloatFormat, p: Signal) -> Signal:
    """``Q_prod``: the signed integer product rounded to ``fmt`` (packed)."""
    width = PRODUCT_BITS - 1
    mag = Signal(width, name="p_mag")
    m.d.comb += mag.eq(Mux(p[-1], -p, p))
    lead = _leading_one(m, mag, width, "p_lead")
    norm = Signal(width, name="p_norm")
    shift = Signal(range(width), name="p_shift")
    m.d.comb += [shift.eq(width - 1 - lead), norm.eq(mag << shift)]
    k = Signal(signed(EXP_BITS), name="p_k")
    m.d.comb += k.eq(lead)
    return _round_pack(m, fmt, p[-1], k, norm, width, mag == 0, "q_prod")


def _add(m: Module, fmt: FloatFormat, x: _Unpacked, y: _Unpacked, m_in: int,
         name: str) -> Signal:
    """``Q(x + y)`` in ``fmt`` (packed), for unpacked x, y with significands of ``m_in``
    fraction bits: the smaller aligned with guard, round and sticky bits, added or
    subtracted, normalised, then :func:`_round_pack`."""
    w = m_in + 4  # significand, guard, round, sticky
    xk = Mux(x.zero, -(1 << (EXP_BITS - 2)), x.k)
    yk = Mux(y.zero, -(1 << (EXP_BITS - 2)), y.k)
    swap = Signal(name=f"{name}_swap")
    m.d.comb += swap.eq((yk > xk) | ((yk == xk) & (y.sig > x.sig)))
    bk = Signal(signed(EXP_BITS), name=f"{name}_bk")
    bs, ss = Signal(m_in + 1, name=f"{name}_bs"), Signal(m_in + 1, name=f"{name}_ss")
    bsign, ssign = Signal(name=f"{name}_bsign"), Signal(name=f"{name}_ssign")
    diff = Signal(EXP_BITS, name=f"{name}_d")
    m.d.comb += [bk.eq(Mux(swap, yk, xk)), bs.eq(Mux(swap, y.sig, x.sig)),
                 ss.eq(Mux(swap, x.sig, y.sig)), bsign.eq(Mux(swap, y.sign, x.sign)),
                 ssign.eq(Mux(swap, x.sign, y.sign)), diff.eq(bk - Mux(swap, xk, yk))]
    small = Signal(w, name=f"{name}_small")
    m.d.comb += small.eq(ss << 3)
    aligned = Signal(w, name=f"{name}_aligned")
    lost = Signal(name=f"{name}_lost")
    far = diff >= w
    shifted = small >> diff[:max(1, (w - 1).bit_length() + 1)]
    m.d.comb += [aligned.eq(Mux(far, 0, shifted)),
                 lost.eq(Mux(far, small != 0, (shifted << diff[:(w - 1).bit_length() + 1])[:w]
                             != small))]
    big = Signal(w + 1, name=f"{name}_big")
    total = Signal(w + 1, name=f"{name}_total")
    m.d.comb += [big.eq(bs << 3),
                 total.eq(Mux(bsign ^ ssign, big - (aligned | lost), big + (aligned | lost)))]
    lead = _leading_one(m, total, w + 1, f"{name}_lead")
    norm = Signal(w + 1, name=f"{name}_norm")
    shift = Signal(range(w + 1), name=f"{name}_shift")
    m.d.comb += [shift.eq(w - lead), norm.eq(total << shift)]
    # the sticky bit may be shifted left past the rounding position only when the
    # subtraction cancelled, and then nothing was lost (the exponents were within one)
    k = Signal(signed(EXP_BITS), name=f"{name}_k")
    m.d.comb += k.eq(bk + lead - (m_in + 3))
    return _round_pack(m, fmt, bsign, k, norm, w + 1, total == 0, name)


def _widen(x: _Unpacked, m_from: int, m_to: int) -> _Unpacked:
    return _Unpacked(x.sign, x.k, Cat(Const(0, m_to - m_from), x.sig), x.zero)


class FloatAccumulator(Elaboratable):
    """The float accumulator of docs/hardware-spec.md §8 (round to nearest even, flush,
    saturate).

    Parameters
    ----------
    e, m, bias : the format (the products' bias; with ``chunk`` the running sum's bias is
        lower by ``offset``, docs/hardware-spec.md §8).
    chunk : steps per chunk (0: no second accumulator).
    offset : the running sum's bias offset (``chunk_bias_offset(chunk)``).
    """

    OUTER = FloatFormat(8, 23, 127)

    def __init__(self, e: int, m: int, bias: int, chunk: int = 0, offset: int = 0) -> None:
        self.prod_fmt = FloatFormat(e, m, bias)
        self.acc_fmt = FloatFormat(e, m, bias - offset)
        self.chunk = chunk
        self.product = Signal(signed(PRODUCT_BITS))
        self.step = Signal()
        self.clear = Signal()
        self.acc = Signal(self.acc_fmt.width)
        self.acc2 = Signal(self.OUTER.width)
        self.count = Signal(range(max(chunk, 2)))

    def ports(self) -> list[Signal]:
        return [self.product, self.step, self.clear, self.acc, self.acc2]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        pf, af, mm = self.prod_fmt, self.acc_fmt, self.prod_fmt.m
        q = _from_int(m, pf, self.product)
        qu = _unpack(m, pf, q, "q")
        su = _unpack(m, af, self.acc, "s")
        total = _add(m, af, su, qu, mm, "sum")
        with m.If(self.clear):
            m.d.sync += [self.acc.eq(0), self.acc2.eq(0), self.count.eq(0)]
        with m.Elif(self.step):
            if not self.chunk:
                m.d.sync += self.acc.eq(total)
            else:
                tu = _unpack(m, af, total, "t")
                ou = _unpack(m, self.OUTER, self.acc2, "o")
                outer = _add(m, self.OUTER, ou, _widen(tu, mm, self.OUTER.m), self.OUTER.m,
                             "outer")
                with m.If(self.count == self.chunk - 1):
                    m.d.sync += [self.acc2.eq(outer), self.acc.eq(0), self.count.eq(0)]
                with m.Else():
                    m.d.sync += [self.acc.eq(total), self.count.eq(self.count + 1)]
        return m


def synthesize_accumulator(top: Elaboratable, name: str):
    """Yosys's statistics of one accumulator module (the flow of ``sasim rtl synth``,
    :func:`simulator.rtl.synth.synthesize_rtlil`)."""
    from amaranth.back import rtlil

    from simulator.rtl.synth import synthesize_rtlil

    return synthesize_rtlil(rtlil.convert(top, name=name, ports=top.ports()), name, "accumulator")
