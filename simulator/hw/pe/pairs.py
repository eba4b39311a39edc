"""Helpers shared by the PE types that run a pair of activations through lookup tables
(SPARQ and A4W8): signed tables, operand range checks and the kernel call.

The kernels (numba) are imported inside the functions that run them, so importing a PE
module does not load numba.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from simulator.errors import SimulationError
from simulator.workloads.layers import Layer

__all__ = ["LUT_OFFSET", "signed_table", "signed_class_table", "check_weights",
           "check_activations", "run_kernel", "pair_decoder"]

#: Index of activation 0 in a table over activations -255..255 (the kernels' ``LUT_OFFSET``;
#: tests/hw/test_imports.py keeps the two equal).
LUT_OFFSET = 255


def signed_table(magnitude_table: np.ndarray, dtype: type) -> np.ndarray:
    """Table over activations -255..255 (index ``a + LUT_OFFSET``) from one over 0..255:
    a signed activation is processed on its magnitude and keeps its sign."""
    values = np.arange(-LUT_OFFSET, LUT_OFFSET + 1)
    return (np.sign(values) * magnitude_table[np.abs(values)]).astype(dtype)


def signed_class_table(magnitude_classes: np.ndarray) -> np.ndarray:
    """Class table over activations -255..255 from one over magnitudes 0..255."""
    return magnitude_classes[np.abs(np.arange(-LUT_OFFSET, LUT_OFFSET + 1))].astype(np.int64)


def check_weights(layer: Layer, b: np.ndarray, pe_name: str) -> None:
    """Raise SimulationError naming the layer unless the weights are signed 8-bit."""
    if b.size:
        lo, hi = int(b.min()), int(b.max())
        if lo < -128 or hi > 127:
            raise SimulationError(
                f"layer {layer.name!r}: the {pe_name} PE takes signed 8-bit weights "
                f"(-128..127), not values in {lo}..{hi}")


def check_activations(layer: Layer, lo: int, hi: int, pe_name: str) -> None:
    """Raise SimulationError naming the layer unless activations in lo..hi are 8-bit
    (unsigned 0..255, or signed -128..127)."""
    if not (0 <= lo and hi <= 255) and not (-128 <= lo and hi <= 127):
        raise SimulationError(
            f"layer {layer.name!r}: the {pe_name} PE takes 8-bit activations (0..255, or "
            f"-128..127 signed), not values in {lo}..{hi}")


def run_kernel(layer: Layer, pe_name: str, kernel: Callable[..., Any], *args: Any,
               **kwargs: Any) -> list[Any]:
    """Call a SPARQ kernel; turn its activation range into a SimulationError naming the layer.

    The kernels measure the activations' range in their own pass (a separate min/max pass
    would cost as much as the transform) and refuse values their tables do not cover.
    """
    a = args[0]
    try:
        *results, lo, hi = kernel(*args, **kwargs)
    except ValueError:
        if a.size and int(np.abs(a).max()) > LUT_OFFSET:
            check_activations(layer, int(a.min()), int(a.max()), pe_name)
        raise
    check_activations(layer, lo, hi, pe_name)
    return results


def pair_decoder(products: tuple[str, ...],
                 classify: Callable[[str, str], tuple[str, dict[str, int]]],
                 ) -> Callable[[np.ndarray, int], tuple[dict[str, int], dict[str, int]]]:
    """The reference-array decoding of a two-product rule: its counter index is
    ``class0 * n + class1`` over the n product classes ``products``, and ``classify`` turns a
    pair of class names into (step counter, {stat: count})."""
    n = len(products)

    def decode(counts: np.ndarray, threads: int) -> tuple[dict[str, int], dict[str, int]]:
        named: dict[str, int] = {}
        stats: dict[str, int] = {}
        for code in np.flatnonzero(counts[:n * n]):
            count = int(counts[code])
            step, adds = classify(products[code // n], products[code % n])
            named[step] = named.get(step, 0) + count
            for key, value in adds.items():
                stats[key] = stats.get(key, 0) + value * count
        return named, stats

    return decode
