"""SPARQ: activation windows on two 4b x 8b multipliers with shifters (docs/hardware-spec.md §4).

A SPARQ PE consumes two K elements (a *pair*) per step. Each activation of the pair is cut to
an n-bit window placed at one of a few allowed positions (bSPARQ) unless its partner is zero,
in which case it borrows the partner's multiplier and keeps a wider window (vSPARQ). In 2:4
mode (``pairing: stc``) a step consumes a group of four K elements whose non-zero weights (at
most two per filter) form the pair.

Window configurations (``window_bits``, ``options``) -> allowed LSB positions p, and the window
used when the partner is zero:

============  ==========  ==================  =====================
window_bits   options     positions p         zero-partner window
============  ==========  ==================  =====================
4             5 (default) 4, 3, 2, 1, 0       all 8 bits
4             3           4, 2, 0             all 8 bits
4             2           4, 0                all 8 bits
6             3           2, 1, 0             all 8 bits
3             6           5 ... 0             6 bits, p in 2, 1, 0
2             7           6 ... 0             4 bits, p in 4 ... 0
============  ==========  ==================  =====================
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from simulator.config.arch import ArrayConfig, PEOptions
from simulator.config.schema import option
from simulator.errors import SimulationError
from simulator.hw.pe.dense import ACCUMULATOR_BITS, OUTPUT_BITS
from simulator.hw.pe.pairs import (check_weights, pair_decoder, run_kernel, signed_class_table,
                                   signed_table)
from simulator.hw.pe.registry import (AccumulationFeed, Composition, GemmRun, PEModel,
                                      ReferenceRule, Rtl, register_pe)
from simulator.hw.pe.schedule import steps_for, thread_schedule
from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["SparqOptions", "SparqPE", "WINDOWS", "ZERO_PARTNER_WINDOWS", "DEFAULT_OPTIONS",
           "PRODUCT_CLASSES", "STEP_COUNTERS", "PRODUCT_STATS", "summarise", "sparq_composition",
           "stc_stored_bits", "prune_2of4"]

#: (window_bits, options) -> the allowed window LSB positions p (docs/hardware-spec.md §4).
WINDOWS: dict[tuple[int, int], tuple[int, ...]] = {
    (4, 5): (4, 3, 2, 1, 0),
    (4, 3): (4, 2, 0),
    (4, 2): (4, 0),
    (6, 3): (2, 1, 0),
    (3, 6): (5, 4, 3, 2, 1, 0),
    (2, 7): (6, 5, 4, 3, 2, 1, 0),
}
#: window_bits -> (width, positions) of the window an activation gets when its partner is 0.
ZERO_PARTNER_WINDOWS: dict[int, tuple[int, tuple[int, ...]]] = {
    4: (8, (0,)),
    6: (8, (0,)),
    3: (6, (2, 1, 0)),
    2: (4, (4, 3, 2, 1, 0)),
}
#: window_bits -> options when ``pe.options`` is not given.
DEFAULT_OPTIONS = {4: 5, 6: 3, 3: 6, 2: 7}

#: What one product (one activation of a pair) is: 0, the zero-partner path (exact or not),
#: the narrow window without loss, or the narrow window at position p with loss.
PRODUCT_CLASSES = ("zero", "zero_partner", "zero_partner_trimmed", "window_exact",
                   *(f"trim_shift_{p}" for p in range(1, 7)))
_ZERO, _ZERO_PARTNER, _ZERO_PARTNER_TRIMMED, _WINDOW_EXACT = range(4)
_TRIM_SHIFT_1 = 4

#: The counters: a partition of PE-steps by what the pair did (a configuration whose
#: zero-partner window keeps all 8 bits reports no ``zero_partner_trimmed``).
STEP_COUNTERS = ("idle", "zero_partner", "zero_partner_trimmed", "pair_exact",
                 "pair_one_trimmed", "pair_both_trimmed")
#: The stats: products (two per PE-step) with a non-zero activation, exact or approximated,
#: and the narrow-window products that lost bits, by window position (a configuration
#: reports its own positions).
PRODUCT_STATS = ("exact_products", "approximated_products",
                 *(f"trim_shift_{p}" for p in range(1, 7)))


def _lossy(product_class: int) -> bool:
    return product_class == _ZERO_PARTNER_TRIMMED or product_class >= _TRIM_SHIFT_1


def summarise(joint: np.ndarray) -> tuple[dict[str, int], dict[str, int]]:
    """Step counters and product stats from PE-steps counted by their two product classes.

    Parameters
    ----------
    joint : int (len(PRODUCT_CLASSES), len(PRODUCT_CLASSES))
        PE-steps by the class of their first and second product.

    Returns
    -------
    counters : every name of :data:`STEP_COUNTERS`
    stats : every name of :data:`PRODUCT_STATS`
    """
    counters = dict.fromkeys(STEP_COUNTERS, 0)
    stats = dict.fromkeys(PRODUCT_STATS, 0)
    for c0, c1 in zip(*np.nonzero(joint)):
        count = int(joint[c0, c1])
        active = [c for c in (int(c0), int(c1)) if c != _ZERO]
        lossy = [c for c in active if _lossy(c)]
        if not active:
            step = "idle"
        elif len(active) == 1:
            step = "zero_partner_trimmed" if lossy else "zero_partner"
        else:
            step = ("pair_exact", "pair_one_trimmed", "pair_both_trimmed")[len(lossy)]
        counters[step] += count
        stats["exact_products"] += (len(active) - len(lossy)) * count
        stats["approximated_products"] += len(lossy) * count
        for c in lossy:
            if c >= _TRIM_SHIFT_1:
                stats[PRODUCT_CLASSES[c]] += count
    return counters, stats


@record
class SparqOptions(PEOptions):
    """``pe: {type: sparq, window_bits: 4, options: 5, ...}``."""

    type: Literal["sparq"] = option("sparq", doc="PE type.")
    window_bits: Literal[4, 3, 2, 6] = option(
        4, doc="Activation window width n in bits: 4 (two 4b x 8b multipliers), 3 or 2 "
               "(narrower groups with wider zero-partner windows), or 6 (the 6-bit "
               "3-option configuration).")
    options: Literal[5, 3, 2, 6, 7] | None = option(
        None, doc="Window placement options: 5, 3 or 2 for 4-bit windows; 6-bit windows take "
                  "3, 3-bit windows 6, 2-bit windows 7. Absent or null: the window's only or "
                  "largest choice (4-bit: 5, 6-bit: 3, 3-bit: 6, 2-bit: 7).")
    rounding: Literal["round", "raw"] = option(
        "round", doc="'round': the dropped bits round half to even, saturating inside the "
                     "window; 'raw': they are truncated.")
    pairing: Literal["adjacent", "stc"] = option(
        "adjacent", doc="'adjacent': the pair is K elements (k, k+1), two per step; 'stc': "
                        "2:4-pruned weights, the (at most two) non-zero weights of each group "
                        "of four K elements form the pair, four K elements per step.")
    unstructured: Literal["prune", "refuse"] = option(
        "prune", doc="2:4 mode on a layer whose weights are not 2:4 structured (a trace of a "
                     "dense model): 'prune' keeps the two largest magnitudes of every group of "
                     "four K elements of a filter (ties: the lower K index) before the run, a "
                     "one-shot 2:4 pruning whose loss the error metrics include; 'refuse' "
                     "stops with an error naming the layer.")

    def __post_init__(self) -> None:
        if self.options is None:
            object.__setattr__(self, "options", DEFAULT_OPTIONS[self.window_bits])
        if (self.window_bits, self.options) not in WINDOWS:
            valid = sorted(o for n, o in WINDOWS if n == self.window_bits)
            raise ValueError(
                f"options: {self.window_bits}-bit windows take "
                f"{' or '.join(str(o) for o in reversed(valid))} placement option(s), "
                f"not {self.options}")

    @property
    def window_name(self) -> str:
        """The configuration's name, e.g. ``4bit_5opt``."""
        return f"{self.window_bits}bit_{self.options}opt"


@functools.lru_cache(maxsize=None)
def _tables(window_bits: int, options: int, round_half_even: bool) -> tuple[np.ndarray, ...]:
    """(narrow, wide, narrow_cls, wide_cls) lookup tables over activations -255..255."""
    from simulator.kernels.sparq import window_values  # numba loads on first use

    magnitudes = np.arange(256)
    narrow, shift = window_values(magnitudes, window_bits, WINDOWS[(window_bits, options)],
                                  round_half_even)
    wide_bits, wide_shifts = ZERO_PARTNER_WINDOWS[window_bits]
    wide, _ = window_values(magnitudes, wide_bits, wide_shifts, round_half_even)
    # A window with p = 0 keeps every bit, so a lossy window always has p >= 1.
    narrow_cls = np.where(narrow == magnitudes, _WINDOW_EXACT, _TRIM_SHIFT_1 - 1 + shift)
    wide_cls = np.where(wide == magnitudes, _ZERO_PARTNER, _ZERO_PARTNER_TRIMMED)
    narrow_cls[0] = wide_cls[0] = _ZERO
    return (signed_table(narrow, np.float64), signed_table(wide, np.float64),
            signed_class_table(narrow_cls), signed_class_table(wide_cls))


def sparq_composition(window_bits: int, options: int, rounding: str,
                      pairing: str) -> Composition:
    """Components of a SPARQ PE and the actions of each kind of PE-step (docs/pe-models.md).

    Two n x 8 multipliers (n = ``window_bits``, priced as n/4 of a 4b x 8b one, by the
    operand-width product as the table's multipliers are), each followed by a barrel shifter
    on its (n + 8)-bit product with as many stages as the allowed positions need (5opt: 3,
    3opt: 2, 2opt: 1); a 16-bit adder combining the two shifted products and the 32-bit
    accumulate. Per activation: zero and leading-one detection (8 + 8 comparator bits), the
    window multiplexer (n output bits, one input per option) and, with ``round``, a rounding
    incrementer. A merge multiplexer (2n bits) routes a zero partner's multiplier to the other
    activation. In 2:4 mode each slot also selects its activation among the group's four
    (2 x 8 bits of 4:1 multiplexers, 3 mux bits each). Registers: the activations (2, or 4 in
    2:4 mode) and 2 weights, 8 bits each, the 2-bit positions in 2:4 mode, the accumulator and
    the output register.

    Per PE-step: ``idle`` toggles the two zero detectors only; ``zero_partner`` runs the
    non-zero activation through both multipliers and shifters, the merge multiplexer and the
    adders; ``pair_*`` windows both activations, one multiplier and shifter each, and the
    adders. A trimmed activation also toggles its rounding incrementer.
    """
    n = window_bits
    positions = WINDOWS[(window_bits, options)]
    stages = bin(functools.reduce(lambda x, y: x | y, positions)).count("1")
    shift = (n + 8) * stages / 5  # a shifter_bit is priced for a 5-stage barrel shifter
    window_mux = n * options
    merge = 2 * n
    select = 2 * 8 * 3 if pairing == "stc" else 0
    activations = 4 if pairing == "stc" else 2
    parts = {"mult_4x8": 2 * n / 4, "shifter_bit": 2 * shift, "adder_16": 1, "adder_32": 1,
             "comparator_bit": 2 * 16, "logic_bit": 2 * window_mux + merge + select,
             "adder_8": 2 if rounding == "round" else 0,
             "register_bit": activations * 8 + 2 * 8 + (4 if pairing == "stc" else 0)
             + ACCUMULATOR_BITS + OUTPUT_BITS}
    work = {"mult_4x8": 2 * n / 4, "shifter_bit": 2 * shift, "adder_16": 1, "adder_32": 1}

    def rounded(actions: dict[str, float], trimmed: int) -> dict[str, float]:
        return {**actions, "adder_8": trimmed} if rounding == "round" and trimmed else actions

    # One non-zero activation: two zero detectors, its leading-one detector, one window.
    borrowed = {**work, "comparator_bit": 24, "logic_bit": window_mux + merge + select / 2}
    both = {**work, "comparator_bit": 32, "logic_bit": 2 * window_mux + select}
    events = {
        "idle": {"comparator_bit": 16},
        "zero_partner": borrowed,
        "zero_partner_trimmed": rounded(borrowed, 1),
        "pair_exact": both,
        "pair_one_trimmed": rounded(both, 1),
        "pair_both_trimmed": rounded(both, 2),
    }
    return Composition(parts=parts, events=events)


def _reference_step_class(first: str, second: str) -> tuple[str, dict[str, int]]:
    """A SPARQ step's counter from its two product classes (reference array), and what its
    products add to the stats: non-zero products exact or approximated, lossy narrow windows
    by position."""
    used = [c for c in (first, second) if c != "zero"]
    lost = [c for c in used if c == "zero_partner_trimmed" or c.startswith("trim_shift_")]
    stats = {"exact_products": len(used) - len(lost), "approximated_products": len(lost)}
    for c in lost:
        if c.startswith("trim_shift_"):
            stats[c] = stats.get(c, 0) + 1
    if not used:
        return "idle", stats
    if len(used) == 1:
        return ("zero_partner_trimmed" if lost else "zero_partner"), stats
    return ("pair_exact", "pair_one_trimmed", "pair_both_trimmed")[len(lost)], stats


@register_pe
class SparqPE(PEModel):
    type_name = "sparq"
    summary = ("SPARQ: two 4b x 8b multipliers with shifters; activation windows, "
               "zero-partner borrowing, optional 2:4 mode")
    Options = SparqOptions
    data_dependent = True

    #: Every step counter any configuration has; an instance reports its configuration's.
    counter_names = STEP_COUNTERS
    #: Every product stat any configuration has; an instance reports its configuration's.
    stat_names = PRODUCT_STATS

    options: SparqOptions

    def __init__(self, options: SparqOptions, array: ArrayConfig | None = None) -> None:
        super().__init__(options, array)
        lossy_partner = ZERO_PARTNER_WINDOWS[options.window_bits][0] < 8
        #: The step counters this configuration can produce (see docs/pe-models.md).
        self.counter_names = tuple(name for name in STEP_COUNTERS
                                   if lossy_partner or name != "zero_partner_trimmed")
        shifts = WINDOWS[(options.window_bits, options.options)]
        #: The product stats this configuration can produce.
        self.stat_names = ("exact_products", "approximated_products",
                           *(f"trim_shift_{p}" for p in sorted(shifts) if p > 0),
                           *(("pruned_weights",) if options.pairing == "stc" else ()))

    @classmethod
    def reference_rule(cls) -> ReferenceRule:
        from simulator.kernels import reference_array as kernel

        products = kernel.SPARQ_PRODUCT_NAMES
        return ReferenceRule(
            kernel.RULE_SPARQ, threads=(2, 4),
            options={"window": kernel.SPARQ_WINDOW_CODES,
                     "rounding": {"round": kernel.ROUND_HALF_EVEN, "raw": kernel.ROUND_TRUNCATE},
                     "pairing": {"adjacent": kernel.PAIRING_ADJACENT,
                                 "stc": kernel.PAIRING_STC}},
            counter_slots=len(products) ** 2,
            decode=pair_decoder(products, _reference_step_class))

    def reference_params(self, a: np.ndarray | None = None) -> dict[str, str]:
        """The rule's ``window`` is the configuration's name (window bits and options)."""
        opts = self.options
        return {"window": opts.window_name, "rounding": opts.rounding, "pairing": opts.pairing}

    #: The row edge unit (leading-one detection, window choice, zero-partner merge) and two
    #: n x 8 multipliers with shifters (docs/rtl.md); every option has RTL.
    rtl = Rtl("simulator.rtl.pe.sparq")

    @classmethod
    def rtl_design(cls, options: SparqOptions) -> tuple[int, dict[str, Any]]:
        """Two activations a step, four with ``stc`` pairing."""
        return (4 if options.pairing == "stc" else 2,
                {"window_bits": options.window_bits, "options": options.options,
                 "rounding": options.rounding, "pairing": options.pairing})

    @classmethod
    def rtl_label(cls, threads: int, options: Mapping[str, Any]) -> str:
        return (f"SPARQ ({options['window_bits']}-bit windows, {options['options']} options, "
                f"{options['rounding']}, {options['pairing']})")

    def composition(self, layer: Layer | None = None) -> Composition:
        opts = self.options
        return sparq_composition(opts.window_bits, opts.options, opts.rounding, opts.pairing)

    def structured(self, layer: Layer | None) -> bool:
        """Whether ``layer`` runs in 2:4 mode: ``pairing: stc`` and weights known before the
        run. A matmul's right operand is an activation, computed at run time and never
        compressed to 2:4, so the PE runs it in adjacent pairing (docs/hardware-spec.md §4)."""
        return self.options.pairing == "stc" and (layer is None or layer.op != "matmul")

    def elements_per_step(self, layer: Layer | None = None) -> int:
        """K elements a PE consumes per step: 2 (a pair), or 4 in 2:4 mode."""
        return 4 if self.structured(layer) else 2

    def reduction_steps(self, layer: Layer) -> int:
        return steps_for(layer.gemm.k, self.elements_per_step(layer))

    def peak_macs_per_step(self, layer: Layer) -> int:
        return self.elements_per_step(layer)

    def synthetic_data(self) -> dict[str, str]:
        """The 2:4 mode runs only 2:4 structured weights: synthetic ones are drawn so."""
        return {"weight_structure": "2:4"} if self.options.pairing == "stc" else {}

    def stored_weights(self, layer: Layer, weights: np.ndarray) -> tuple[str, int] | None:
        """2:4 mode: :func:`stc_stored_bits` of the weights the PE runs (pruned with
        ``unstructured: prune``; docs/hardware-spec.md §7); None otherwise or for a matmul
        (its right operand is an activation, stored as words)."""
        if not self.structured(layer):
            return None
        if self.options.unstructured == "prune":
            weights = prune_2of4(weights)[0]
        return "stc", stc_stored_bits(weights, layer.weight_bits)

    def notes(self, stats: Mapping[str, int]) -> list[str]:
        pruned = stats.get("pruned_weights", 0)
        if not pruned:
            return []
        return [f"2:4 mode: {pruned:,} non-zero weights pruned to 2:4 before the run "
                f"(pe.unstructured: prune); the numeric error includes what they carried"]

    def prepare_weights(self, layer: Layer, b: np.ndarray
                        ) -> tuple[np.ndarray, Mapping[str, int]]:
        """2:4 mode: weights that are not 2:4 structured are pruned (``unstructured:
        prune``, counted in the ``pruned_weights`` stat) or refused."""
        if not self.structured(layer):
            return b, {}
        pruned, removed = prune_2of4(b)
        if removed and self.options.unstructured == "refuse":
            counts = _group_counts(b)
            q, col = np.unravel_index(int(np.argmax(counts)), counts.shape)
            raise SimulationError(
                f"layer {layer.name!r}: pe.pairing 'stc' needs 2:4 structured weights (at most "
                f"2 non-zero in every group of 4 K elements of a filter), but K elements "
                f"{4 * q}..{min(4 * q + 3, b.shape[0] - 1)} of output column {col} hold "
                f"{int(counts.max())} non-zero weights (pe.unstructured: prune prunes them)")
        return pruned, {"pruned_weights": removed}

    accumulates_in_steps = True

    def accumulation_feed(self, layer: Layer, a: np.ndarray) -> AccumulationFeed:
        """Per step, the pair's (2:4: the group's) partial sum, K in order
        (docs/hardware-spec.md §4, §8)."""
        from simulator.kernels import reference_array as kernel

        opts = self.options
        params = [kernel.SPARQ_WINDOW_CODES[opts.window_name],
                  kernel.ROUND_HALF_EVEN if opts.rounding == "round" else kernel.ROUND_TRUNCATE,
                  kernel.PAIRING_STC if self.structured(layer) else kernel.PAIRING_ADJACENT]
        return AccumulationFeed(kernel.RULE_SPARQ, np.array(params, np.int64),
                                self.schedule(a.shape[1], layer))

    def step_schedule(self, layer: Layer, a: np.ndarray) -> np.ndarray:
        return self.schedule(a.shape[1], layer)

    def schedule(self, kd: int, layer: Layer | None = None) -> np.ndarray:
        """K elements of each step, (elements_per_step, steps): ``k = step*width + slot``."""
        return thread_schedule(kd, self.elements_per_step(layer), "interleaved")

    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        check_weights(layer, b, "SPARQ")
        opts = self.options
        tables = _tables(opts.window_bits, opts.options, opts.rounding == "round")
        a = a.astype(np.int64, copy=False)
        from simulator.kernels.sparq import pair_transform  # numba loads on first use

        if self.structured(layer):
            outputs, joint = self._stc(layer, a, b, tables)
        else:
            approx, joint = run_kernel(layer, "SPARQ", pair_transform, a, *tables,
                                       n_classes=len(PRODUCT_CLASSES))
            joint = joint * b.shape[1]  # the classes do not depend on the column
            # |approx| <= 255 and |b| <= 128: every partial sum is an integer far below 2**53,
            # so the float64 BLAS product is exact.
            outputs = (approx @ b.astype(np.float64)).astype(np.int64)
        counters, stats = summarise(joint)
        return GemmRun(outputs, {name: counters[name] for name in self.counter_names},
                       {name: stats[name] for name in self.stat_names if name in stats})

    def _stc(self, layer: Layer, a: np.ndarray, b: np.ndarray,
             tables: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        from simulator.kernels.sparq import stc_compress, stc_gemm  # numba on first use

        code, w0, w1, violation = stc_compress(b.astype(np.int64, copy=False))
        if violation is not None:
            g, col, count = violation
            raise SimulationError(
                f"layer {layer.name!r}: pe.pairing 'stc' needs 2:4 structured weights (at most "
                f"2 non-zero in every group of 4 K elements of a filter), but K elements "
                f"{4 * g}..{min(4 * g + 3, b.shape[0] - 1)} of output column {col} hold "
                f"{count} non-zero weights")
        outputs, joint = run_kernel(layer, "SPARQ", stc_gemm, a, *tables, code, w0, w1,
                                    n_classes=len(PRODUCT_CLASSES))
        return outputs, joint


def _group_counts(weights: np.ndarray) -> np.ndarray:
    """Non-zero weights of every group of four K elements (axis -2, a short last group
    padded with zeros) of every filter: int (..., ceil(Kd/4), N)."""
    w = np.asarray(weights)
    kd = w.shape[-2]
    quads = -(-kd // 4)
    nonzero = np.zeros((*w.shape[:-2], quads * 4, w.shape[-1]), dtype=np.int8)
    nonzero[..., :kd, :] = w != 0
    return nonzero.reshape(*w.shape[:-2], quads, 4, w.shape[-1]).sum(axis=-2)


def prune_2of4(weights: np.ndarray) -> tuple[np.ndarray, int]:
    """One-shot 2:4 magnitude pruning along K (axis -2) (docs/hardware-spec.md §4): every
    group of four K elements of a filter keeps its two largest magnitudes, ties to the lower
    K index. Returns the weights (the input itself when already 2:4) and how many non-zero
    weights were removed."""
    w = np.asarray(weights)
    if not w.size or int(_group_counts(w).max()) <= 2:
        return w, 0
    kd = w.shape[-2]
    quads = -(-kd // 4)
    padded = np.zeros((*w.shape[:-2], quads * 4, w.shape[-1]), dtype=w.dtype)
    padded[..., :kd, :] = w
    groups = padded.reshape(*w.shape[:-2], quads, 4, w.shape[-1])
    order = np.argsort(-np.abs(groups.astype(np.int64)), axis=-2, kind="stable")
    keep = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(keep, order[..., :2, :], True, axis=-2)
    pruned = np.where(keep, groups, 0).reshape(padded.shape)[..., :kd, :]
    return pruned, int(np.count_nonzero(w)) - int(np.count_nonzero(pruned))


def stc_stored_bits(weights: np.ndarray, weight_bits: int) -> int:
    """Bits of 2:4 weights as stored (docs/hardware-spec.md §7): every group of four K
    elements of a filter (a short last group padded with zeros) keeps two slots, each a
    ``weight_bits`` value and its 2-bit index in the group, ``2 * (weight_bits + 2)`` bits.

    Parameters
    ----------
    weights : int (groups, Kd, Fg) the layer's GEMM weights.

    Raises
    ------
    ValueError
        When a group holds more than two non-zero weights (the format cannot store it).
    """
    w = np.asarray(weights)
    groups, kd, filters = w.shape
    quads = -(-kd // 4)
    counts = _group_counts(w)
    if counts.size and int(counts.max()) > 2:
        g, q, f = np.unravel_index(int(np.argmax(counts)), counts.shape)
        raise ValueError(f"2:4 weights hold at most two non-zero weights per group of four; "
                         f"group {q} of filter {f} (GEMM group {g}) holds {int(counts.max())}")
    return groups * quads * filters * 2 * (weight_bits + 2)
