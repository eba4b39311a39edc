"""Building blocks shared by the PE datapaths: sign-magnitude split, nibbles, trimming.

The trimming rule is docs/hardware-spec.md §3 (``trim``): a magnitude below 16 passes
unchanged; otherwise its high nibble is kept, truncated or rounded half to even on the low
nibble, and a rounded 16 saturates to 15 (0xF0 in the original scale).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned

__all__ = ["EVENT_IDLE", "EVENT_SINGLE", "EVENT_SHARED_EXACT", "EVENT_SHARED_REDUCED",
           "product_bits", "sign_magnitude", "trimmed", "classify", "gated"]

#: Counter indices, as in docs/reference-array.md ("Counters").
EVENT_IDLE = 0
EVENT_SINGLE = 1
EVENT_SHARED_EXACT = 2
EVENT_SHARED_REDUCED = 3


def product_bits(threads: int) -> int:
    """Width of a step's signed partial sum: T products of |a| <= 255 and |w| <= 128."""
    return (threads * 255 * 128).bit_length() + 1


def sign_magnitude(m: Module, value: Signal, name: str) -> tuple[Signal, Signal]:
    """Split an operand (unsigned 8-bit, signed 8-bit, or signed 9-bit holding -128..255)
    into (sign, 8-bit magnitude).

    The magnitude of -128 is 128, which still fits in 8 unsigned bits.
    """
    sign = Signal(name=f"{name}_sign")
    mag = Signal(unsigned(8), name=f"{name}_mag")
    if value.shape().signed:
        # |v| = (v XOR s) + s: one's complement and an increment, no subtractor or mux
        flipped = Signal(unsigned(8), name=f"{name}_flipped")
        m.d.comb += [sign.eq(value[-1]), flipped.eq(value[0:8] ^ value[-1].replicate(8)),
                     mag.eq(flipped + sign)]
    else:
        m.d.comb += [sign.eq(0), mag.eq(value)]
    return sign, mag


def trimmed(m: Module, mag: Signal, rounding: str, name: str) -> tuple[Signal, Signal, Signal]:
    """The 4-bit mantissa a sub-multiplier sees for an 8-bit magnitude, and its shift.

    Returns
    -------
    mantissa : 4-bit signal, ``mag`` itself below 16, else its rounded or truncated high nibble
    wide : 1-bit signal, set when ``mag >= 16`` (the mantissa is shifted left by 4)
    changed : 1-bit signal, set when the trimmed value differs from ``mag`` (a non-zero high
        and low nibble; docs/hardware-spec.md §3)
    """
    hi, lo = mag[4:8], mag[0:4]
    wide = Signal(name=f"{name}_wide")
    changed = Signal(name=f"{name}_changed")
    mantissa = Signal(unsigned(4), name=f"{name}_mant")
    m.d.comb += [wide.eq(hi != 0), changed.eq((hi != 0) & (lo != 0))]
    if rounding == "truncate":
        top = hi
    else:
        # round half to even: up iff bit 3 and (bit 4 or any of bits 2..0); 16 saturates
        up = mag[3] & (mag[4] | (mag[0:3] != 0))
        rounded = Signal(unsigned(5), name=f"{name}_rounded")
        m.d.comb += rounded.eq(hi + up)
        top = Mux(rounded[4], 15, rounded[0:4])
    m.d.comb += mantissa.eq(Mux(wide, top, lo))
    return mantissa, wide, changed


def classify(m: Module, active: list[Signal], changed: Signal, event: Signal) -> Signal:
    """Drive ``event`` from the active threads and the changed flag; returns the count c."""
    count = Signal(range(len(active) + 1), name="active_count")
    m.d.comb += count.eq(sum(Cat(bit).as_unsigned() for bit in active))
    m.d.comb += event.eq(Mux(count == 0, EVENT_IDLE,
                             Mux(count == 1, EVENT_SINGLE,
                                 Mux(changed, EVENT_SHARED_REDUCED, EVENT_SHARED_EXACT))))
    return count


def operand_signals(threads: int, act_signed: bool, act_bits: int = 8
                    ) -> tuple[list[Signal], list[Signal]]:
    """The T activation inputs (``act_bits`` wide, signed or not) and T signed 8-bit weight
    inputs."""
    acts = [Signal(signed(act_bits) if act_signed else unsigned(act_bits), name=f"a{t}")
            for t in range(threads)]
    wgts = [Signal(signed(8), name=f"w{t}") for t in range(threads)]
    return acts, wgts


def gated(value, enable) -> object:
    """``value`` where ``enable`` is set, else 0: one AND gate per bit (operand isolation,
    docs/rtl.md "Switching activity")."""
    return value & enable.replicate(len(value))
