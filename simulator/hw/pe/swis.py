"""SWIS: shared weight bit sparsity on a bit-serial array (docs/hardware-spec.md §5).

Offline, the weights of every filter are cut into groups of G consecutive K elements, and each
group chooses N shared bit positions S (a mask over positions 0..7); every weight of the group
becomes ``sign * m`` with m a sum of distinct powers 2^s, s in S (its N-bit mask). S minimises
the group's summed squared error ``sum (w - w_hat)^2`` over all C(8, N) sets (exhaustive);
each weight takes the nearest representable magnitude, the smaller one on a tie; of equally
good sets the one with the smallest mask value ``sum 2^s`` wins. N is fixed (``shifts``) or
chosen per group (``max_shifts`` with ``error_threshold`` or ``bit_budget``).

The PE has G AND lanes (activation x one weight bit), an adder tree, a shifter by the shared
position and an accumulator: a group takes N_g cycles, one per shared position (ascending).
In the output-stationary array all PEs step together, so a group step of a fold lasts the
largest N_g over the fold's filters (columns); the filter *scheduler* orders the filters so
that filters with similar N-profiles share a fold. Storage per weight: N + 1 (sign) + 3N/G
(the group's positions). See docs/pe-models.md.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from simulator.config.arch import PEOptions
from simulator.config.schema import non_negative, option
from simulator.hw.pe.bitserial import (DENSE_LANES, MAX_GROUP_SIZE, BitSerialOptions,
                                       BitSerialPE, active_cycle_count,
                                       bit_slot_patterns, exact_product, lane_composition,
                                       lane_patterns, magnitude_bound, popcount,
                                       product_from_floats)
from simulator.hw.pe.registry import (Composition, FoldSteps, GemmRun, PEModel, Rtl,
                                      SerialOperands, register_pe)
from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["SWISOptions", "SWISPE", "Decomposition", "COUNTERS", "STATS", "position_sets",
           "decompose", "cached_decompose", "clear_decomposition_cache", "schedule_filters",
           "fold_envelope", "stored_bits", "POSITION_BITS", "DEFAULT_SHIFTS"]

COUNTERS = ("idle", "zero", "active")
STATS = ("shifts", "active_lanes", "metadata_reads", "storage_bits", "weights",
         "weight_sq_error")

#: Bits that name one shared position (0..7).
POSITION_BITS = 3
#: N of the fixed mode when neither ``shifts`` nor ``max_shifts`` is given.
DEFAULT_SHIFTS = 3
#: The decomposition cache keeps the most recently used decompositions up to this many bytes
#: (about 5 bytes per weight) and this many entries.
CACHE_BYTES = 512 * 2**20
CACHE_ENTRIES = 4096


def _shifts_range(value: int) -> str | None:
    return None if 1 <= value <= 8 else "an integer in 1..8"


def _group_size_range(value: int) -> str | None:
    return None if 1 <= value <= MAX_GROUP_SIZE else f"an integer in 1..{MAX_GROUP_SIZE}"


def _at_least_one(value: float) -> str | None:
    return None if value >= 1 else "a number >= 1 (every group keeps at least one position)"


@record
class SWISOptions(PEOptions):
    """``pe: {type: swis, group_size: 8, shifts: 3}`` (fixed N) or
    ``pe: {type: swis, max_shifts: 4, error_threshold: 64}`` / ``bit_budget: 3`` (variable N)."""

    type: Literal["swis"] = option("swis", doc="PE type.")
    group_size: int = option(8, doc="Weights G per group (lanes per PE): consecutive K "
                                    "elements of one filter sharing their bit positions.",
                             check=_group_size_range)
    shifts: int | None = option(None, doc="Fixed N: shared bit positions (cycles) per group, "
                                          "1..8 (3 when neither shifts nor max_shifts is "
                                          "given). Exclusive with max_shifts.",
                                check=_shifts_range)
    max_shifts: int | None = option(
        None, doc="Variable N: the most positions a group may get, 1..8, chosen by "
                  "error_threshold (the default, 0) or bit_budget.", check=_shifts_range)
    error_threshold: float | None = option(
        None, doc="Variable N: each group gets the smallest N <= max_shifts whose summed "
                  "squared weight error (integer weight units^2) is <= this (0 when max_shifts "
                  "is given without bit_budget).", check=non_negative)
    bit_budget: float | None = option(
        None, doc="Variable N: mask bits per weight (average N) distributed greedily over the "
                  "groups of a GEMM by error reduction per bit; >= 1.", check=_at_least_one)
    schedule: bool = option(True, doc="Order filters so that filters with similar N-profiles "
                                      "share a fold (cycles without it are reported too).")
    dynamic_operand: Literal["bitserial", "online_decompose"] = option(
        "bitserial", doc="A matmul's right operand is an activation, known only at run time "
                         "(docs/transformers.md): 'bitserial' runs it as plain 8-bit "
                         "bit-serial (every bit position, exact); 'online_decompose' "
                         "decomposes it at the array edge (SWIS's approximation, with the "
                         "decomposition unit's latency and energy).")

    def __post_init__(self) -> None:
        variable = {"max_shifts": self.max_shifts, "error_threshold": self.error_threshold,
                    "bit_budget": self.bit_budget}
        if self.shifts is not None:
            given = [f"pe.{k}" for k, v in variable.items() if v is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} cannot be combined with pe.shifts "
                                 f"(fixed N); remove pe.shifts for variable N")
        elif self.max_shifts is None:
            given = [f"pe.{k}" for k, v in variable.items() if v is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} needs pe.max_shifts (variable N)")
        elif self.error_threshold is not None and self.bit_budget is not None:
            raise ValueError("pe.error_threshold and pe.bit_budget are exclusive (variable N "
                             "is chosen by one of them)")

    @property
    def mode(self) -> Literal["fixed", "threshold", "budget"]:
        """How N is chosen: one fixed N, per group under a threshold, or under a budget."""
        if self.max_shifts is None:
            return "fixed"
        return "budget" if self.bit_budget is not None else "threshold"

    @property
    def fixed_shifts(self) -> int:
        """N in the fixed mode (``shifts``, or :data:`DEFAULT_SHIFTS`)."""
        return self.shifts if self.shifts is not None else DEFAULT_SHIFTS

    @property
    def most_shifts(self) -> int:
        """The largest N a group can get."""
        return self.fixed_shifts if self.mode == "fixed" else self.max_shifts

    @property
    def threshold(self) -> float:
        """The error threshold of the threshold mode (``error_threshold``, or 0)."""
        return self.error_threshold if self.error_threshold is not None else 0.0


@record
class Decomposition:
    """The SWIS form of one GEMM's weights B (Kd x F), in groups of G along K.

    Attributes
    ----------
    approx : int16 (Kd, F), the represented weights ``sign * m``.
    masks : int64 (Q, F), Q = ceil(Kd / G): each group's shared positions (bit s = position s).
    shifts : int64 (Q, F), N of each group (the number of positions in its mask).
    errors : int64 (Q, F), each group's summed squared error.
    group_size : G.
    orders : the scheduler's filter orders computed so far, by array columns.
    """

    approx: np.ndarray
    masks: np.ndarray
    shifts: np.ndarray
    errors: np.ndarray
    group_size: int
    #: Memo of the scheduler's filter order by the number of array columns.
    orders: dict[int, np.ndarray] = dataclasses.field(default_factory=dict, compare=False,
                                                      repr=False)

    @property
    def sizes(self) -> np.ndarray:
        """int64 (Q,): weights in each group (G, the last one possibly fewer)."""
        kd = self.approx.shape[0]
        q = self.masks.shape[0]
        return np.minimum(self.group_size, kd - self.group_size * np.arange(q, dtype=np.int64))

    @property
    def storage_bits(self) -> int:
        """Stored bits: per group ``size * (N + 1) + 3 * N`` (masks, signs, positions)."""
        return int((self.sizes[:, None] * (self.shifts + 1) + POSITION_BITS * self.shifts).sum())


def stored_bits(shifts: np.ndarray, sizes: np.ndarray, max_shifts: int | None) -> int:
    """Bits of SWIS weights as stored (docs/hardware-spec.md §5, "Storage"): per group of
    ``size`` weights with N positions, ``size * (N + 1) + 3 * N`` (masks, signs, positions);
    with variable N (``max_shifts`` given) also a count field of ``ceil(log2 max_shifts)``
    bits per group (N - 1), so a reader knows where the group's positions end.

    Parameters
    ----------
    shifts : int64 (Q, F) N of each group.
    sizes : int64 (Q,) weights in each group (G; the last one possibly fewer).
    """
    shifts = np.asarray(shifts, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    bits = int((sizes[:, None] * (shifts + 1) + POSITION_BITS * shifts).sum())
    if max_shifts is not None:
        bits += shifts.size * (max_shifts - 1).bit_length()
    return bits


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    from simulator.kernels.swis import nearest_tables

    nearest, sq_error = nearest_tables()
    nearest.flags.writeable = False
    sq_error.flags.writeable = False
    return nearest, sq_error


@functools.cache
def position_sets(n: int) -> np.ndarray:
    """The C(8, n) masks with n positions, ascending (the tie-break order of the search)."""
    masks = np.array([m for m in range(256) if bin(m).count("1") == n], dtype=np.int64)
    masks.flags.writeable = False
    return masks


def _group_magnitudes(weights: np.ndarray, group_size: int) -> np.ndarray:
    """uint8 (Q * F, G): magnitudes of group (q, f) at row q * F + f, short groups padded."""
    kd, n_f = weights.shape
    q = -(-kd // group_size)
    mags = np.zeros((q * group_size, n_f), dtype=np.uint8)
    # int16 first: the magnitude of an int8 -128 does not fit int8
    np.abs(weights, out=mags[:kd], casting="unsafe", dtype=np.int16)
    return np.ascontiguousarray(mags.reshape(q, group_size, n_f).transpose(0, 2, 1)).reshape(
        q * n_f, group_size)


def _budget_shifts(errors: np.ndarray, sizes: np.ndarray, budget_bits: int) -> np.ndarray:
    """Greedy N per group under a budget of mask bits (every group starts at N = 1).

    ``errors[g, j]`` is group g's error with j + 1 positions and ``sizes[g]`` its weights
    (the mask bits one more position costs). The greedy repeatedly gives one more position to
    the group with the largest error reduction per bit (ties: lowest group index), and stops
    when that reduction is 0, the group no longer fits the budget, or every group is at the
    maximum. It is evaluated in closed form: a group's j-th step is taken in the order of the
    running minimum of its reductions per bit (a larger later reduction is taken right after
    the smaller one that unlocks it), ties by group then step.
    """
    n_groups, n_max = errors.shape
    shifts = np.ones(n_groups, dtype=np.int64)
    remaining = budget_bits - int(sizes.sum())
    if n_max == 1 or n_groups == 0:
        return shifts
    gain = (errors[:, :-1] - errors[:, 1:]) / sizes[:, None].astype(np.float64)
    key = np.minimum.accumulate(gain, axis=1)
    group_index = np.repeat(np.arange(n_groups), n_max - 1)
    step_index = np.tile(np.arange(n_max - 1), n_groups)
    order = np.lexsort((step_index, group_index, -key.ravel()))
    taken_keys = key.ravel()[order]
    cost = np.cumsum(sizes[group_index[order]])
    fits = (taken_keys > 0) & (cost <= remaining)
    stop = int(np.argmin(fits)) if not fits.all() else fits.size
    np.add.at(shifts, group_index[order[:stop]], 1)
    return shifts


def decompose(weights: np.ndarray, group_size: int, *, shifts: int | None = None,
              max_shifts: int | None = None, error_threshold: float | None = None,
              bit_budget: float | None = None) -> Decomposition:
    """SWIS decomposition of one GEMM's weights (exhaustive shared-position search).

    Parameters
    ----------
    weights : ndarray of int, shape (Kd, F)
        Integer weights with magnitudes <= 255 (INT8: -128..127).
    group_size : int
        G, weights per group (consecutive in K).
    shifts : int, optional
        Fixed N for every group.
    max_shifts, error_threshold, bit_budget : optional
        Variable N (see :class:`SWISOptions`): the smallest N <= max_shifts whose error is at
        most ``error_threshold``, or the greedy distribution of ``floor(bit_budget * Kd * F)``
        mask bits.

    Returns
    -------
    Decomposition
    """
    from simulator.kernels.swis import approximate, best_sets

    variable = (max_shifts is not None,
                (error_threshold is not None) + (bit_budget is not None) == 1)
    if (shifts is not None) == any(variable) or (shifts is None and not all(variable)):
        raise ValueError("give shifts, or max_shifts with one of error_threshold and bit_budget")
    weights = np.asarray(weights)
    if weights.dtype.kind not in "iu":
        weights = weights.astype(np.int64)
    if weights.ndim != 2:
        raise ValueError(f"weights must be 2-D (Kd, F), not of shape {weights.shape}")
    if magnitude_bound(weights) > 255:
        raise ValueError("weight magnitudes must be <= 255")
    kd, n_f = weights.shape
    n_q = -(-kd // group_size)
    nearest, sq_error = _tables()
    mags = _group_magnitudes(weights, group_size)
    n_groups = mags.shape[0]
    if shifts is not None:
        masks, errors = best_sets(mags, position_sets(shifts), sq_error)
        n_g = np.full(n_groups, shifts, dtype=np.int64)
    elif error_threshold is not None:
        masks = np.empty(n_groups, dtype=np.int64)
        errors = np.empty(n_groups, dtype=np.int64)
        n_g = np.empty(n_groups, dtype=np.int64)
        todo = np.arange(n_groups)
        for n in range(1, max_shifts + 1):
            m, e = best_sets(np.ascontiguousarray(mags[todo]), position_sets(n), sq_error)
            done = (e <= error_threshold) | (n == max_shifts)
            sel = todo[done]
            masks[sel], errors[sel], n_g[sel] = m[done], e[done], n
            todo = todo[~done]
            if todo.size == 0:
                break
    else:
        all_masks = np.empty((n_groups, max_shifts), dtype=np.int64)
        all_errors = np.empty((n_groups, max_shifts), dtype=np.int64)
        for n in range(1, max_shifts + 1):
            all_masks[:, n - 1], all_errors[:, n - 1] = best_sets(mags, position_sets(n),
                                                                  sq_error)
        sizes = np.repeat(np.minimum(group_size, kd - group_size * np.arange(n_q)), n_f)
        n_g = _budget_shifts(all_errors, sizes, math.floor(bit_budget * kd * n_f))
        rows = np.arange(n_groups)
        masks, errors = all_masks[rows, n_g - 1], all_errors[rows, n_g - 1]
    group_masks = masks.reshape(n_q, n_f)
    approx = approximate(weights, group_masks, group_size, nearest)
    out = Decomposition(approx=approx, masks=group_masks, shifts=n_g.reshape(n_q, n_f),
                        errors=errors.reshape(n_q, n_f), group_size=group_size)
    for array in (out.approx, out.masks, out.shifts, out.errors):
        array.flags.writeable = False
    return out


_CACHE: collections.OrderedDict[tuple, Decomposition] = collections.OrderedDict()
_CACHE_SIZE = 0


def _decompose_arguments(options: SWISOptions) -> dict:
    if options.mode == "fixed":
        return {"shifts": options.fixed_shifts}
    if options.mode == "threshold":
        return {"max_shifts": options.max_shifts, "error_threshold": options.threshold}
    return {"max_shifts": options.max_shifts, "bit_budget": options.bit_budget}


def cached_decompose(weights: np.ndarray, options: SWISOptions) -> Decomposition:
    """:func:`decompose` with an in-memory LRU cache keyed by the weights' bytes and the
    decomposition options (sweeps over array shapes or the scheduler reuse it)."""
    weights = np.asarray(weights)
    bound = magnitude_bound(weights)
    if bound > 255:
        raise ValueError("weight magnitudes must be <= 255")
    # The narrowest integer type that holds the weights: less data to hash. The key has the
    # type, so equal values always meet the same key.
    narrow = weights.astype(np.int8 if int(weights.min(initial=0)) >= -128 and bound <= 127
                            else np.int16)
    digest = hashlib.sha1(narrow.tobytes(), usedforsecurity=False).hexdigest()
    arguments = _decompose_arguments(options)
    key = (weights.shape, narrow.dtype.str, digest, options.group_size,
           tuple(sorted(arguments.items())))
    found = _CACHE.get(key)
    if found is not None:
        _CACHE.move_to_end(key)
        return found
    result = decompose(weights, options.group_size, **arguments)
    _CACHE[key] = result
    global _CACHE_SIZE
    _CACHE_SIZE += _nbytes(result)
    while len(_CACHE) > 1 and (_CACHE_SIZE > CACHE_BYTES or len(_CACHE) > CACHE_ENTRIES):
        _CACHE_SIZE -= _nbytes(_CACHE.popitem(last=False)[1])
    return result


def _nbytes(dec: Decomposition) -> int:
    return sum(a.nbytes for a in (dec.approx, dec.masks, dec.shifts, dec.errors))


def clear_decomposition_cache() -> None:
    """Forget every cached decomposition and filter order (for benchmarks that time them)."""
    global _CACHE_SIZE
    _CACHE.clear()
    _CACHE_SIZE = 0


def _cached_schedule(dec: Decomposition, cols: int) -> np.ndarray:
    """The scheduler's filter order for ``dec`` on ``cols`` columns, memoised on ``dec``."""
    order = dec.orders.get(cols)
    if order is None:
        order = schedule_filters(dec.shifts, cols)
        order.flags.writeable = False
        dec.orders[cols] = order
    return order


def fold_envelope(shifts: np.ndarray, order: np.ndarray, cols: int) -> np.ndarray:
    """int64 (Q, C): the longest N of each group step over the filters of each column fold.

    Column fold c holds filters ``order[c*cols:(c+1)*cols]``.
    """
    n_f = shifts.shape[1]
    starts = np.arange(0, n_f, cols)
    return np.maximum.reduceat(shifts[:, order], starts, axis=1)


def _cost(shifts: np.ndarray, order: np.ndarray, cols: int) -> int:
    return int(fold_envelope(shifts, order, cols).sum())


def schedule_filters(shifts: np.ndarray, cols: int) -> np.ndarray:
    """The filter order that groups filters with similar N-profiles into column folds.

    Greedy clustering: filters are ranked by their total N (largest first, ties by index);
    each fold is seeded with the first unplaced filter and filled with the ``cols - 1``
    unplaced filters that raise the seed's envelope ``sum_q max(N_seed, N_f)`` least (ties by
    rank). The result is used only when it needs strictly fewer steps than the original order,
    so scheduling never slows a layer down.

    Parameters
    ----------
    shifts : int64 (Q, F), N per group.
    cols : columns of the array.

    Returns
    -------
    int64 (F,), a permutation of the filters.
    """
    n_f = shifts.shape[1]
    identity = np.arange(n_f, dtype=np.int64)
    if n_f <= cols or not shifts.size or int(shifts.min()) == int(shifts.max()):
        return identity  # one fold, or equal profiles: no order needs fewer steps
    totals = shifts.sum(axis=0)
    remaining = np.lexsort((identity, -totals))
    order = []
    while remaining.size:
        seed, rest = remaining[0], remaining[1:]
        envelope = shifts[:, seed]
        growth = np.maximum(shifts[:, rest], envelope[:, None]).sum(axis=0)
        pick = np.sort(np.argsort(growth, kind="stable")[:cols - 1])
        order.append(seed)
        order.extend(rest[pick])
        remaining = np.delete(rest, pick)
    greedy = np.array(order, dtype=np.int64)
    return greedy if _cost(shifts, greedy, cols) < _cost(shifts, identity, cols) else identity


@register_pe
class SWISPE(PEModel):
    type_name = "swis"
    summary = ("SWIS: G weights share N bit positions; bit-serial lanes, lock-step group "
               "steps, filter scheduling")
    Options = SWISOptions
    counter_names = COUNTERS
    stat_names = STATS
    data_dependent = True
    #: SWIS is bit-serial: compared with the first bit-serial design of a comparison.
    baseline_family = "bitserial"
    weight_dependent_timing = True

    options: SWISOptions

    def layer_problem(self, layer: Layer) -> str | None:
        """SWIS decomposes 8-bit weight magnitudes (docs/pe-models.md)."""
        if layer.weight_bits > 8:
            return (f"weight_bits {layer.weight_bits}: the SWIS PE takes weights of at most "
                    f"8 bits")
        if self._serial(layer):
            return self._bitserial().layer_problem(layer)
        return None

    def _serial(self, layer: Layer) -> bool:
        """The layer runs as plain 8-bit bit-serial: a matmul (its right operand is dynamic)
        with ``dynamic_operand: bitserial``."""
        return layer.op == "matmul" and self.options.dynamic_operand == "bitserial"

    def _online(self, layer: Layer) -> bool:
        """The layer's right operand is decomposed at run time at the array edge."""
        return layer.op == "matmul" and self.options.dynamic_operand == "online_decompose"

    @functools.cached_property
    def _serial_pe(self) -> BitSerialPE:
        return BitSerialPE(BitSerialOptions(bits=8, serial_operand="weight",
                                            group_size=self.options.group_size), self.array)

    def _bitserial(self) -> BitSerialPE:
        """The same lanes stepping through all 8 bit positions: a plain bit-serial PE."""
        return self._serial_pe

    def reduction_steps(self, layer: Layer) -> int:
        if self._serial(layer):
            return self._bitserial().reduction_steps(layer)
        # Without the weights: the longest a fold can take (exact for fixed N).
        return -(-layer.gemm.k // self.options.group_size) * self.options.most_shifts

    def setup_cycles(self, layer: Layer) -> int:
        """Online decomposition: the unit at the array's top edge decomposes one group of G
        right-operand values per column and cycle, all C(8, N) position sets in parallel,
        while the folds run; the first column fold's ceil(Kd / G) groups cannot be hidden
        (docs/transformers.md)."""
        return -(-layer.gemm.k // self.options.group_size) if self._online(layer) else 0

    def extra_actions(self, layer: Layer, stats: Mapping[str, int]) -> dict[str, float]:
        """Online decomposition: per right-operand value and candidate position set, one
        8-bit subtraction (|w| minus its nearest representable magnitude), one 8x8 multiply
        (the square) and one 16-bit add (the group's error sum); the exhaustive search of
        :func:`decompose`, done in hardware (docs/transformers.md)."""
        if not self._online(layer):
            return {}
        sets = sum(len(position_sets(n)) for n in range(1, self.options.most_shifts + 1)) \
            if self.options.mode != "fixed" else len(position_sets(self.options.fixed_shifts))
        evaluations = float(stats.get("weights", 0) * sets)
        return {"adder_8": evaluations, "mult_8x8": evaluations, "adder_16": evaluations}

    def peak_macs_per_step(self, layer: Layer) -> int:
        return self.options.group_size

    def composition(self, layer: Layer | None = None) -> Composition:
        # Per lane a mask bit and a sign bit, and a conditional negation of its 8-bit AND
        # output (8 logic bits); the group's N shared positions (3 bits each) are held
        # for the group step and the current one selected.
        group = self.options.group_size
        return lane_composition(group, serial_register_bits=2 * group,
                                lane_logic_bits=group * 8,
                                position_bits=3 * self.options.most_shifts)

    #: The bit-serial lanes with a sign per weight, shifted by the group's shared position
    #: (docs/rtl.md, "Bit-serial and SWIS"); a represented magnitude can reach 255.
    rtl = Rtl("simulator.rtl.pe.swis", extra_acc_bits=1)

    @classmethod
    def rtl_design(cls, options: SWISOptions) -> tuple[int, dict[str, Any]]:
        """One slot per lane."""
        return options.group_size, {"group_size": options.group_size,
                                    "max_shifts": options.most_shifts}

    @classmethod
    def rtl_label(cls, threads: int, options: Mapping[str, Any]) -> str:
        return f"SWIS G={options['group_size']} (N <= {options['max_shifts']})"

    def serial_operands(self, layer: Layer, a: np.ndarray,
                        b: np.ndarray) -> SerialOperands:
        """The decomposed weights and the filter order of the column folds; a dynamic
        right operand run bit-serially is the plain 8-bit bit-serial stream."""
        if self._serial(layer):
            return self._bitserial().serial_operands(layer, a, b)
        dec = self.decomposition(b)
        return SerialOperands("positions",
                              {"a": a, "approx": dec.approx, "masks": dec.masks,
                               "shifts": dec.shifts, "order": self.filter_order(dec),
                               "group": self.options.group_size, "cols": self.array.cols},
                              BitSerialPE.type_name)

    def decomposition(self, b: np.ndarray) -> Decomposition:
        """The (cached) decomposition of one GEMM group's weights B (Kd, F)."""
        return cached_decompose(b, self.options)

    def filter_order(self, decomposition: Decomposition) -> np.ndarray:
        """The order of the filters in the column folds (identity without scheduling)."""
        if not self.options.schedule:
            return np.arange(decomposition.shifts.shape[1], dtype=np.int64)
        return _cached_schedule(decomposition, self.array.cols)

    def stored_weights(self, layer: Layer, weights: np.ndarray) -> tuple[str, int] | None:
        """The SWIS form of every GEMM group (docs/hardware-spec.md §5, "Storage"):
        :func:`stored_bits` of its decomposition; None for a dynamic right operand (a
        matmul's, decomposed at the array edge or run bit-serially: stored as words)."""
        if layer.op == "matmul":
            return None
        variable = self.options.mode != "fixed"
        return "swis", sum(stored_bits(dec.shifts, dec.sizes,
                                       self.options.most_shifts if variable else None)
                           for dec in (self.decomposition(b) for b in weights))

    def column_fold_steps(self, layer: Layer, weights: np.ndarray) -> FoldSteps:
        cols = self.array.cols
        if self._serial(layer):
            steps = np.full((weights.shape[0], -(-weights.shape[2] // cols)),
                            self.reduction_steps(layer), dtype=np.int64)
            return FoldSteps(steps)
        steps, scheduled, unscheduled = [], [], []
        for b in weights:
            dec = self.decomposition(b)
            identity = np.arange(b.shape[1], dtype=np.int64)
            plain = fold_envelope(dec.shifts, identity, cols).sum(axis=0)
            best = fold_envelope(dec.shifts, _cached_schedule(dec, cols), cols).sum(axis=0)
            unscheduled.append(plain)
            scheduled.append(best)
            steps.append(best if self.options.schedule else plain)
        return FoldSteps(np.array(steps, dtype=np.int64),
                         {"scheduled": np.array(scheduled, dtype=np.int64),
                          "unscheduled": np.array(unscheduled, dtype=np.int64)})

    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        if self._serial(layer):
            run = self._bitserial().simulate_gemm(layer, a, b)
            stats = {name: run.stats.get(name, 0) for name in STATS}
            return GemmRun(run.outputs, run.counters, stats)
        dec = self.decomposition(b)
        group = self.options.group_size
        m_rows = a.shape[0]
        shifts = dec.shifts
        order = self.filter_order(dec)
        envelope = fold_envelope(shifts, order, self.array.cols)
        fold_sizes = np.diff(np.append(np.arange(0, shifts.shape[1], self.array.cols),
                                       shifts.shape[1]))
        processing = m_rows * int(shifts.sum())
        waiting = m_rows * (int((envelope * fold_sizes).sum()) - int(shifts.sum()))
        if group <= DENSE_LANES:
            from simulator.kernels.swis import (active_from_histograms,  # numba on first use
                                                parallel_histogram, position_histogram)

            hx, col_nonzero, a_float, a_bound = parallel_histogram(a, group)
            hy, k_popcount, w_float, w_bound = position_histogram(
                dec.approx, dec.masks, dec.shifts, _position_table(), group)
            outputs = product_from_floats(a_float, w_float, a_bound * w_bound * a.shape[1],
                                          lambda: (a, dec.approx))
            active = active_from_histograms(hx, hy)
            lanes = int(col_nonzero @ k_popcount)
        else:
            outputs, active, lanes = self._pattern_counts(a, dec)
        row_folds = -(-m_rows // self.array.rows)
        return GemmRun(outputs, {"idle": waiting, "zero": processing - active, "active": active},
                       {"shifts": processing, "active_lanes": lanes,
                        "metadata_reads": row_folds * int(shifts.sum()),
                        "storage_bits": dec.storage_bits, "weights": int(b.size),
                        "weight_sq_error": int(dec.errors.sum())})

    def _pattern_counts(self, a: np.ndarray, dec: Decomposition) -> tuple[np.ndarray, int, int]:
        """Outputs, active cycles and active lanes from lane pattern arrays (any G)."""
        group = self.options.group_size
        outputs = exact_product(a, dec.approx)
        magnitude_t = np.abs(dec.approx.T).astype(np.uint8)  # (F, Kd)
        # Slot r of a group is its r-th shared position (ascending); the lanes whose
        # represented magnitude has that bit set.
        positions = _position_table()[dec.masks.T]  # (F, Q, 8)
        weight_patterns = bit_slot_patterns(
            magnitude_t, group, [positions[:, :, r] for r in range(int(dec.shifts.max()))])
        nonzero = a != 0
        active = active_cycle_count(lane_patterns(nonzero, group), weight_patterns, dec.shifts)
        lanes = int(np.count_nonzero(nonzero, axis=0)
                    @ popcount(magnitude_t).sum(axis=0, dtype=np.int64))
        return outputs, active, lanes


@functools.cache
def _position_table() -> np.ndarray:
    """uint8 (256, 8): the positions of each mask, ascending, padded with 0."""
    table = np.zeros((256, 8), dtype=np.uint8)
    for mask in range(256):
        bits = [s for s in range(8) if mask >> s & 1]
        table[mask, :len(bits)] = bits
    table.flags.writeable = False
    return table
