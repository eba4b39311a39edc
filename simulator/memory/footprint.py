"""Which input-tensor elements a block of the lowered GEMM operand A reads (its footprint).

A conv's operand A is the im2col matrix (docs/hardware-spec.md §1): row m = (n, p, q) is an output
pixel, column k = (r·S + s)·Cg + c a kernel tap and an input channel of the group. Neighbouring
output pixels and different taps read the same input pixels, so the bytes a block of A needs
from DRAM are the *distinct* input elements it reads, not its (m, k) entries: the buffer holds
input pixels, and an im2col unit at the array edge expands them (docs/memory-model.md).

Counting is exact. A block's k range is split into at most three channel intervals, each read
at a contiguous range of taps; for each, the input pixels an output-pixel range touches over a
tap range are kept as one bitmask of input columns per input row (Python integers), so overlaps
from strides, dilation, padding and SCALE-Sim's ceil rule come out right.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from simulator.workloads.layers import Layer

__all__ = ["Footprint"]


class Footprint:
    """Distinct input elements (of one group) read by blocks of a layer's operand A.

    Parameters
    ----------
    layer : the layer; conv2d layers get the sliding-window count, linear and gemm layers
        (whose A has no repeated elements) the block size.
    """

    def __init__(self, layer: Layer) -> None:
        gemm = layer.gemm
        self._conv = layer.op == "conv2d"
        self.m, self.k = gemm.m, gemm.k
        if not self._conv:
            return
        self._cg = layer.in_channels // layer.groups
        self._kh, self._kw = layer.kernel_size
        (self._sh, self._sw), (self._dh, self._dw) = layer.stride, layer.dilation
        self._ph, self._pw = layer.padding
        self._h, self._w = layer.input_size
        self._p, self._q = layer.output_size
        self._cols: dict[tuple[int, int, int, int], int] = {}
        self._image: dict[tuple[int, int], int] = {}

    def elements(self, m0: int, m1: int, k0: int, k1: int) -> int:
        """Distinct input elements read by A[m0:m1, k0:k1] (one group)."""
        if m1 <= m0 or k1 <= k0:
            return 0
        if not self._conv:
            return (m1 - m0) * (k1 - k0)
        return sum(channels * self.pixels(m0, m1, t0, t1)
                   for channels, t0, t1 in self._channel_classes(k0, k1))

    def pixels(self, m0: int, m1: int, t0: int, t1: int) -> int:
        """Distinct input pixels (n, h, w) that output pixels [m0, m1) read at taps [t0, t1]."""
        if m1 <= m0 or t1 < t0:
            return 0
        plane = self._p * self._q
        first, last = m0 // plane, (m1 - 1) // plane
        total = 0
        for n in range(first, last + 1):
            lo, hi = max(m0, n * plane) - n * plane, min(m1, (n + 1) * plane) - n * plane
            if lo == 0 and hi == plane:
                key = (t0, t1)
                if key not in self._image:
                    self._image[key] = self._count(self._rows(0, plane, t0, t1))
                total += self._image[key]
            else:
                total += self._count(self._rows(lo, hi, t0, t1))
        return total

    def first_reads(self, slices: Sequence[tuple[int, int]]) -> list[int]:
        """Pixels each slice ``(m0, m1)`` of output pixels (all taps) reads that no earlier
        slice in the sequence read: what a buffer that keeps everything must add per slice."""
        plane = self._p * self._q
        taps = self._kh * self._kw - 1
        seen: dict[tuple[int, int], int] = {}
        out = []
        for m0, m1 in slices:
            added = 0
            for n in range(m0 // plane, (m1 - 1) // plane + 1):
                lo, hi = max(m0, n * plane) - n * plane, min(m1, (n + 1) * plane) - n * plane
                for h, mask in self._rows(lo, hi, 0, taps).items():
                    old = seen.get((n, h), 0)
                    new = old | mask
                    added += new.bit_count() - old.bit_count()
                    seen[(n, h)] = new
            out.append(added)
        return out

    def _channel_classes(self, k0: int, k1: int) -> Iterator[tuple[int, int, int]]:
        """(channel count, first tap, last tap) for the channels of A's columns [k0, k1)."""
        cg = self._cg
        t0, c0 = divmod(k0, cg)
        t1, c1 = divmod(k1 - 1, cg)
        if t0 == t1:
            yield c1 - c0 + 1, t0, t0
            return
        # Channel c is read at taps t0..t1, minus t0 when c < c0 and minus t1 when c > c1.
        cuts = sorted({0, c0, c1 + 1, cg})
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            yield hi - lo, t0 + (lo < c0), t1 - (lo > c1)

    def _rows(self, lo: int, hi: int, t0: int, t1: int) -> dict[int, int]:
        """Input row -> bitmask of input columns read by output pixels [lo, hi) of one image
        at taps [t0, t1]."""
        q_count = self._q
        p_first, p_last = lo // q_count, (hi - 1) // q_count
        kw = self._kw
        rows: dict[int, int] = {}
        for r in range(t0 // kw, t1 // kw + 1):
            s_lo = t0 % kw if r == t0 // kw else 0
            s_hi = t1 % kw if r == t1 // kw else kw - 1
            offset = r * self._dh - self._ph
            for p in range(p_first, p_last + 1):
                h = p * self._sh + offset
                if not 0 <= h < self._h:
                    continue
                q_lo = lo % q_count if p == p_first else 0
                q_hi = (hi - 1) % q_count if p == p_last else q_count - 1
                rows[h] = rows.get(h, 0) | self._columns(q_lo, q_hi, s_lo, s_hi)
        return rows

    def _columns(self, q_lo: int, q_hi: int, s_lo: int, s_hi: int) -> int:
        """Bitmask of input columns read by output columns [q_lo, q_hi] at kernel columns
        [s_lo, s_hi]."""
        key = (q_lo, q_hi, s_lo, s_hi)
        mask = self._cols.get(key)
        if mask is None:
            mask = 0
            for s in range(s_lo, s_hi + 1):
                for q in range(q_lo, q_hi + 1):
                    w = q * self._sw + s * self._dw - self._pw
                    if 0 <= w < self._w:
                        mask |= 1 << w
            self._cols[key] = mask
        return mask

    @staticmethod
    def _count(rows: dict[int, int]) -> int:
        return sum(mask.bit_count() for mask in rows.values())
