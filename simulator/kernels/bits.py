"""Bit-level value transforms shared by the PE models (pure numpy, vectorised)."""

from __future__ import annotations

import numpy as np

__all__ = ["trim_high_nibble", "signed_trim"]


def trim_high_nibble(x: np.ndarray, round_half_even: bool) -> np.ndarray:
    """Reduce non-negative 8-bit magnitudes to their high nibble (docs/hardware-spec.md §3).

    Values below 16 are returned unchanged. Otherwise bits [7:4] are kept; with
    ``round_half_even`` the dropped bits [3:0] round half to even (up iff bit 3 is set and
    bit 4 or bits [2:0] are set), and a result that reaches 256 saturates to 0xF0.
    The result keeps the original scale (a multiple of 16).
    """
    x = np.asarray(x)
    kept = x & ~np.int64(0xF) if x.dtype.kind == "i" else x & ~0xF
    if round_half_even:
        up = ((x >> 3) & 1).astype(bool) & ((((x >> 4) & 1) == 1) | ((x & 7) != 0))
        kept = np.minimum(kept + (up.astype(x.dtype) << 4), 0xF0)
        # 0xF0 + 16 = 256 saturates to 0xF0; values >= 256 (a magnitude of 256 cannot occur
        # for 8-bit data) would also be clipped, which is why the input must be 8-bit.
    return np.where(x < 16, x, kept).astype(x.dtype, copy=False)


def signed_trim(v: np.ndarray, round_half_even: bool) -> np.ndarray:
    """:func:`trim_high_nibble` on the magnitude of signed values; the sign is kept."""
    v = np.asarray(v)
    return np.sign(v) * trim_high_nibble(np.abs(v), round_half_even)
