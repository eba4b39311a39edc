"""A4W8: a 4b x 8b OS array, activations uniformly quantised to 4 bits (docs/hardware-spec.md §6).

The like-for-like baseline of SPARQ: the same two 4b x 8b multipliers per PE and two K
elements (k, k+1) per step, but no shifters, no window choice and no zero-partner borrowing.
Every activation magnitude x is quantised on one uniform grid of step 2**s:

    q(x) = min(round(x / 2**s), 15) * 2**s

(``round``: half to even; ``raw``: truncation), kept in the original scale. With
``scale: fixed`` s = 4 (the grid 0, 16, ..., 240: the high nibble, rounded and saturated);
with ``scale: per_layer`` s is the smallest shift that makes the GEMM group's largest
magnitude fit 4 bits, ``s = max(0, bit_length(max |a|) - 4)`` (a per-layer power-of-two
scale applied after accumulation, so the PE still needs no shifter). A signed activation is
quantised on its magnitude and keeps its sign.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from simulator.config.arch import PEOptions
from simulator.config.schema import option
from simulator.hw.pe.dense import ACCUMULATOR_BITS, OUTPUT_BITS
from simulator.hw.pe.registry import (AccumulationFeed, Composition, GemmRun, PEModel,
                                      ReferenceRule, Rtl, register_pe)
from simulator.hw.pe.schedule import steps_for, thread_schedule
from simulator.hw.pe.pairs import (check_activations, check_weights, pair_decoder, run_kernel,
                                   signed_class_table, signed_table)
from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["A4W8Options", "A4W8PE", "COUNTERS", "STATS", "uniform_values", "activation_shift",
           "a4w8_composition"]

#: Counters, a partition of PE-steps by how many of the pair's activations are non-zero.
COUNTERS = ("idle", "single", "double")
#: Stats: products (two per PE-step) with a non-zero activation, exact or approximated.
STATS = ("exact_products", "approximated_products")
#: Classes of one product: zero activation, quantised exactly, approximated.
_PRODUCTS = ("zero", "exact", "approximated")

#: The grid step exponent of ``scale: fixed``: 8-bit magnitudes keep their high nibble.
FIXED_SHIFT = 4


@record
class A4W8Options(PEOptions):
    """``pe: {type: a4w8, rounding: round, scale: fixed}``."""

    type: Literal["a4w8"] = option("a4w8", doc="PE type.")
    rounding: Literal["round", "raw"] = option(
        "round", doc="'round': x / 2**s rounds half to even (saturating at 15); 'raw': "
                     "truncates.")
    scale: Literal["fixed", "per_layer"] = option(
        "fixed", doc="Grid step 2**s: 'fixed' s = 4 (values 0, 16, ..., 240); 'per_layer' the "
                     "smallest s that fits the GEMM group's largest activation magnitude in "
                     "4 bits (measured on the simulated data).")


def uniform_values(x: np.ndarray, shift: int, round_half_even: bool) -> np.ndarray:
    """Uniform 4-bit quantisation of magnitudes ``x`` (0..255) on the grid of step 2**shift.

    Returns int64 ``min(round(x / 2**shift), 15) << shift``.
    """
    x = np.asarray(x, dtype=np.int64)
    q = x >> shift
    if round_half_even and shift > 0:
        below = (x >> (shift - 1)) & 1
        sticky = (x & ((1 << (shift - 1)) - 1)) != 0
        q = q + (below & ((q & 1) | sticky))
    return np.minimum(q, 15) << shift


def activation_shift(a: np.ndarray, scale: str) -> int:
    """The grid step exponent s for activations ``a`` under ``scale``."""
    if scale == "fixed":
        return FIXED_SHIFT
    peak = int(np.abs(a).max()) if a.size else 0
    return max(0, peak.bit_length() - 4)


@functools.lru_cache(maxsize=None)
def _tables(shift: int, round_half_even: bool) -> tuple[np.ndarray, ...]:
    magnitudes = np.arange(256)
    values = uniform_values(magnitudes, shift, round_half_even)
    classes = np.where(magnitudes == 0, 0, np.where(values == magnitudes, 1, 2))
    value_table = signed_table(values, np.float64)
    class_table = signed_class_table(classes)
    # The activation does not depend on its partner: the same table for both cases.
    return value_table, value_table, class_table, class_table


def a4w8_composition() -> Composition:
    """Two 4b x 8b multipliers, a 16-bit adder combining their products and the 32-bit
    accumulate; no shifters, no detectors (the activations arrive quantised to 4 bits, and a
    zero operand toggles nothing, as in the dense PE). Registers: 2 x 4 activation and 2 x 8
    weight forwarding bits, the accumulator and the output register. Per PE-step: ``idle``
    costs nothing, ``single`` one multiplier and the adders, ``double`` both multipliers and
    the adders (an activation quantised to 0 is priced as non-zero: an upper bound)."""
    adders = {"adder_16": 1, "adder_32": 1}
    return Composition(
        parts={"mult_4x8": 2, **adders,
               "register_bit": 2 * 4 + 2 * 8 + ACCUMULATOR_BITS + OUTPUT_BITS},
        events={"idle": {}, "single": {"mult_4x8": 1, **adders},
                "double": {"mult_4x8": 2, **adders}})


def _reference_step_class(first: str, second: str) -> tuple[str, dict[str, int]]:
    """An A4W8 step's counter (how many non-zero activations) and its products' stats, from
    its two product classes (reference array)."""
    used = [c for c in (first, second) if c != "zero"]
    return (("idle", "single", "double")[len(used)],
            {"exact_products": used.count("exact"),
             "approximated_products": used.count("approximated")})


@register_pe
class A4W8PE(PEModel):
    type_name = "a4w8"
    summary = "4b x 8b MACs, two K elements per cycle, activations uniformly quantised to 4 bits"
    Options = A4W8Options
    counter_names = COUNTERS
    stat_names = STATS
    data_dependent = True

    options: A4W8Options

    def reduction_steps(self, layer: Layer) -> int:
        return steps_for(layer.gemm.k, 2)

    @classmethod
    def reference_rule(cls) -> ReferenceRule:
        from simulator.kernels import reference_array as kernel

        products = kernel.A4W8_PRODUCT_NAMES
        return ReferenceRule(
            kernel.RULE_A4W8, threads=(2,),
            options={"shift": {str(s): s for s in range(5)},
                     "rounding": {"round": kernel.ROUND_HALF_EVEN, "raw": kernel.ROUND_TRUNCATE}},
            counter_slots=len(products) ** 2,
            decode=pair_decoder(products, _reference_step_class))

    def reference_params(self, a: np.ndarray | None = None) -> dict[str, str]:
        """The rule's ``shift`` is the grid step of the activations ``a`` (none: 0)."""
        acts = np.zeros(0, np.int64) if a is None else a
        return {"shift": str(activation_shift(acts, self.options.scale)),
                "rounding": self.options.rounding}

    #: The row edge unit (a 4-bit quantiser) and two 4b x 8b multipliers (docs/rtl.md).
    rtl = Rtl("simulator.rtl.pe.a4w8")

    @classmethod
    def rtl_design(cls, options: A4W8Options) -> tuple[int, dict[str, Any]]:
        return 2, {"rounding": options.rounding, "scale": options.scale}

    @classmethod
    def rtl_label(cls, threads: int, options: Mapping[str, Any]) -> str:
        return f"A4W8 ({options['rounding']}, scale {options['scale']})"

    def composition(self, layer: Layer | None = None) -> Composition:
        return a4w8_composition()

    def peak_macs_per_step(self, layer: Layer) -> int:
        return 2

    accumulates_in_steps = True

    def accumulation_feed(self, layer: Layer, a: np.ndarray) -> AccumulationFeed:
        """Per step, the two products of a pair, K in order (docs/hardware-spec.md §8)."""
        from simulator.kernels import reference_array as kernel

        shift = (FIXED_SHIFT if self.options.scale == "fixed"
                 else activation_shift(a.astype(np.int64, copy=False), "per_layer"))
        rounding = kernel.ROUND_HALF_EVEN if self.options.rounding == "round" \
            else kernel.ROUND_TRUNCATE
        return AccumulationFeed(kernel.RULE_A4W8, np.array([shift, rounding], np.int64),
                                self.schedule(a.shape[1]))

    def step_schedule(self, layer: Layer, a: np.ndarray) -> np.ndarray:
        return self.schedule(a.shape[1])

    def schedule(self, kd: int) -> np.ndarray:
        """K elements of each step, (2, steps): ``k = 2*step + slot``."""
        return thread_schedule(kd, 2, "interleaved")

    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        check_weights(layer, b, "A4W8")
        a = a.astype(np.int64, copy=False)
        if self.options.scale == "fixed":
            shift = FIXED_SHIFT
        else:
            # The grid depends on the range, so check it first (the kernel would anyway).
            check_activations(layer, int(a.min(initial=0)), int(a.max(initial=0)), "A4W8")
            shift = activation_shift(a, "per_layer")
        tables = _tables(shift, self.options.rounding == "round")
        from simulator.kernels.sparq import pair_transform  # numba loads on first use

        approx, joint = run_kernel(layer, "A4W8", pair_transform, a, *tables,
                                   n_classes=len(_PRODUCTS))
        # Exact: |approx| <= 240 and |b| <= 128, partial sums far below 2**53.
        outputs = (approx @ b.astype(np.float64)).astype(np.int64)
        # Product classes 0: zero activation, 1: exact, 2: approximated; per pair, the count
        # of non-zero activations is the step's counter.
        joint = joint * b.shape[1]
        nonzero = (np.arange(len(_PRODUCTS)) > 0).astype(np.int64)
        per_step = nonzero[:, None] + nonzero[None, :]
        counters = {name: int(joint[per_step == i].sum()) for i, name in enumerate(COUNTERS)}
        stats = {"exact_products": int(joint[1].sum() + joint[:, 1].sum()),
                 "approximated_products": int(joint[2].sum() + joint[:, 2].sum())}
        return GemmRun(outputs, counters, stats)
