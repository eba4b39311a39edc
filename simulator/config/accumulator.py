"""The accumulator schema shared by every PE type: ``pe.accumulator`` (docs/accumulators.md).

Each PE type's options inherit two keys from :class:`simulator.config.arch.PEOptions`:
``accumulator`` (the format of every PE's running sum) and ``accumulator_layers`` (per-layer
formats that replace it). The rules are in docs/hardware-spec.md §8.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from simulator.config.schema import in_range, option
from simulator.records import record

__all__ = ["AccumulatorConfig", "MAX_FLOAT_BITS", "chunk_bias_offset"]

#: Widest float accumulator, sign + exponent + mantissa bits.
MAX_FLOAT_BITS = 32


def chunk_bias_offset(chunk: int) -> int:
    """How much lower the chunk accumulator's exponent bias is than the products'.

    The spec's offset is ``-1/2 * log2(chunk)``; with an integer bias it is
    ``ceil(floor(log2 chunk) / 2)`` (0 for chunk 1, 2 for 16, 3 for 32 and 64).
    """
    return (chunk.bit_length() - 1 + 1) // 2


@record
class AccumulatorConfig:
    """``pe.accumulator``: the number format of each PE's running sum (docs/accumulators.md).

    ``type: exact`` is today's wide accumulator (no rounding, no overflow). ``int``: a
    two's-complement register of ``bits``. ``float``: sign, ``exponent_bits`` and
    ``mantissa_bits``, in units of one integer product.
    """

    type: Literal["exact", "int", "float"] = option(
        "exact", doc="exact: a wide exact accumulator (no rounding, the default); int: an "
                     "int-`bits` register; float: a sign/exponent/mantissa float.")
    bits: int | None = option(None, doc="int: register width in bits, 2..64 (required).",
                              check=in_range(2, 64))
    overflow: Literal["wrap", "saturate", "inf"] | None = option(
        None, doc="int: wrap (two's complement) or saturate (default); float: saturate to the "
                  "largest finite value (default) or inf (sticky; inf - inf is NaN, output 0).")
    exponent_bits: int | None = option(
        None, doc="float: exponent bits e, 2..30 (required); 1 + e + m <= 32.",
        check=in_range(2, 30))
    mantissa_bits: int | None = option(
        None, doc="float: stored mantissa bits m, 1..30 (required); 1 + e + m <= 32.",
        check=in_range(1, 30))
    bias: int | None = option(
        None, doc="float: exponent bias of the products' format (value = 1.f * 2^(E - bias) "
                  "product units); null = 2^(e-1) - 1. With `chunk` the chunk accumulator's "
                  "bias is this minus ceil(floor(log2 chunk)/2).", check=in_range(-64, 200))
    rounding: Literal["nearest_even", "floor"] = option(
        "nearest_even", doc="float: round to nearest, ties to even, or floor (toward -inf).")
    underflow: Literal["flush", "keep"] = option(
        "flush", doc="float: a non-zero value below the smallest normal is flushed to zero "
                     "(flush) or kept as a subnormal (keep).")
    chunk: int | None = option(
        None, doc="Chunked accumulation: every `chunk` PE-steps the running sum is added into "
                  "a second, wider accumulator (int: int64; float: binary32) and restarts; "
                  "null = no chunking.", check=in_range(1, 1 << 30))
    flush_cycle: bool = option(
        False, doc="With `chunk`: each chunk flush costs the PE one extra step (cycle).")

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """Why this combination of keys is not a format (None when it is one)."""
        given = {f.name for f in dataclasses.fields(self)
                 if f.name != "type" and getattr(self, f.name) != f.default}
        if self.type == "exact":
            return (f"{', '.join(sorted(given))}: set only with type int or float (type is "
                    f"exact)") if given else None
        if self.type == "int":
            stray = given & {"exponent_bits", "mantissa_bits", "bias", "rounding",
                             "underflow"}
            if stray:
                return f"{', '.join(sorted(stray))}: a float key, but type is int"
            if self.bits is None:
                return "bits: required with type int"
            if self.overflow == "inf":
                return "overflow: an int accumulator wraps or saturates, not inf"
            return None
        if self.bits is not None:
            return "bits: an int key; a float has exponent_bits and mantissa_bits"
        if self.overflow == "wrap":
            return "overflow: a float accumulator saturates or goes to inf, not wrap"
        if self.exponent_bits is None or self.mantissa_bits is None:
            return "exponent_bits and mantissa_bits: both required with type float"
        width = 1 + self.exponent_bits + self.mantissa_bits
        if width > MAX_FLOAT_BITS:
            return (f"a float accumulator has at most {MAX_FLOAT_BITS} bits (1 sign + "
                    f"exponent_bits + mantissa_bits), not {width}")
        if self.max_exponent < self.mantissa_bits:
            return (f"bias {self.float_bias}: the largest finite value 2^{self.max_exponent}"
                    f"*(2 - 2^-{self.mantissa_bits}) is not an integer (the accumulator sums "
                    f"integer products); use bias <= "
                    f"{(1 << self.exponent_bits) - 2 - self.mantissa_bits}")
        return None

    @property
    def chunk_offset(self) -> int:
        """How much lower the running sum's bias is than the products' (0 without chunk)."""
        return chunk_bias_offset(self.chunk) if self.chunk else 0

    @property
    def float_bias(self) -> int:
        """The products' exponent bias (the default when ``bias`` is null)."""
        e = self.exponent_bits or 0
        return self.bias if self.bias is not None else (1 << (e - 1)) - 1

    @property
    def max_exponent(self) -> int:
        """Exponent of the products' largest normal value: the largest biased exponent
        2^e - 2 minus the bias (the running sum's is ``chunk_offset`` higher)."""
        return (1 << (self.exponent_bits or 0)) - 2 - self.float_bias

    @property
    def overflow_mode(self) -> str:
        """``overflow`` with its default: saturate."""
        return self.overflow or "saturate"
