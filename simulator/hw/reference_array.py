"""The register-transfer-level reference array: the yardstick for the fast PE models.

:func:`run_reference_array` runs one GEMM group through an output-stationary systolic array
modelled register by register (:mod:`simulator.kernels.reference_array`): operands really move
one PE per cycle, the accumulators really drain down their columns, and the cycles are counted
by clocking the array until it is empty. It is slow and meant for small shapes in tests; the
fast PE models must agree with it exactly (outputs, cycles and activity counters).

PE rules
--------
``dense``
    T = 1, exact 8b x 8b MAC. ``params``: none.
``sysmt``
    SySMT / NB-SMT PE (docs/hardware-spec.md §3), T in {1, 2, 4} threads (the rows of ``sched``).
    ``params``: ``policy`` (``sparsity_aware`` | ``msb_trim``) and ``rounding``
    (``round_half_even`` | ``truncate``), both required.
``sparq``
    SPARQ PE (docs/hardware-spec.md §4). ``params``: ``window`` (``4bit_5opt`` | ``4bit_3opt`` |
    ``4bit_2opt`` | ``6bit_3opt`` | ``3bit_6opt`` | ``2bit_7opt``), ``rounding`` (``round`` |
    ``raw``) and ``pairing`` (``adjacent``: T = 2, the slots of a step are the pair;
    ``stc``: T = 4, the slots are a 2:4 group and its non-zero weights form the pair).
    Counters: the step classes (``idle``, ``zero_partner``, ``pair_exact``, ...), derived from
    the classes of the step's two products, which also give the stats.
``a4w8``
    4b x 8b PE, no shifters (docs/hardware-spec.md §6), T = 2. ``params``: ``shift`` (``0``..``4``,
    the grid step exponent) and ``rounding`` (``round`` | ``raw``). Counters ``idle``,
    ``single``, ``double`` (non-zero activations in the step); stats ``exact_products``,
    ``approximated_products``.

``bitserial``
    Bit-serial PE with G = T - 1 lanes (SWIS, the bit-serial baseline, truncation): weight
    slot G carries the bit position of the cycle (-1: the PE waits), and the serial operand's
    lanes carry signed bits in {-1, 0, 1}; AND lanes, adder tree, one shifter, accumulator.
    ``params``: ``serial_operand`` (``weight`` | ``activation``), required. Counters: ``idle``
    (waiting), ``zero`` (no active lane), ``active``; stats ``shifts`` and ``active_lanes``.
    The caller expands the GEMM into bit operands and usually gives a schedule per column
    fold (``sched`` of shape (C, T, S) with ``fold_steps``), see docs/reference-array.md.

A later PE type adds one entry to ``_RULES`` (its kernel rule id, the thread counts it accepts
and its named parameters, in the order of the kernel's parameter array; and, when its counter
index is not a SySMT-style step class, how to read it) next to its rule function in the
kernel module. See docs/reference-array.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from simulator.kernels import reference_array as _kernel

__all__ = ["ReferenceResult", "reference_rules", "run_reference_array"]

#: Names of the activity counters, in the kernel's ``COUNTER_*`` order.
_COUNTER_NAMES = ("idle", "single", "shared_exact", "shared_reduced")


@dataclasses.dataclass(frozen=True)
class _Rule:
    """How a rule name maps onto the kernel: id, thread counts, named parameters."""

    rule_id: int
    threads: tuple[int, ...]
    #: Parameter name -> {value name: kernel code}, in the kernel's parameter-array order.
    options: Mapping[str, Mapping[str, int]]
    #: For two-product rules: the product class names of the kernel's counter index
    #: ``class0 * n + class1``, and the function that turns pairs of class names into
    #: (step counter, {stat: count}); None: the index is a SySMT-style step class.
    products: tuple[str, ...] | None = None
    classify: Callable[[str, str], tuple[str, dict[str, int]]] | None = None
    #: The kernel's counter index is 0 (waiting) or 1 + the active lanes (bit-serial rules).
    lane_counters: bool = False


def _sparq_step_class(first: str, second: str) -> tuple[str, dict[str, int]]:
    """A SPARQ step's counter from its two product classes, and what its products add to the
    stats: non-zero products exact or approximated, lossy narrow windows by position."""
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


def _a4w8_step_class(first: str, second: str) -> tuple[str, dict[str, int]]:
    """An A4W8 step's counter (how many non-zero activations) and its products' stats."""
    used = [c for c in (first, second) if c != "zero"]
    return (("idle", "single", "double")[len(used)],
            {"exact_products": used.count("exact"),
             "approximated_products": used.count("approximated")})


_RULES: dict[str, _Rule] = {
    "dense": _Rule(_kernel.RULE_DENSE, threads=(1,), options={}),
    "sysmt": _Rule(
        _kernel.RULE_SYSMT,
        threads=(1, 2, 4),
        options={
            "policy": {"sparsity_aware": _kernel.POLICY_SPARSITY_AWARE,
                       "msb_trim": _kernel.POLICY_MSB_TRIM},
            "rounding": {"round_half_even": _kernel.ROUND_HALF_EVEN,
                         "truncate": _kernel.ROUND_TRUNCATE},
        },
    ),
    "sparq": _Rule(
        _kernel.RULE_SPARQ,
        threads=(2, 4),
        options={
            "window": _kernel.SPARQ_WINDOW_CODES,
            "rounding": {"round": _kernel.ROUND_HALF_EVEN, "raw": _kernel.ROUND_TRUNCATE},
            "pairing": {"adjacent": _kernel.PAIRING_ADJACENT, "stc": _kernel.PAIRING_STC},
        },
        products=_kernel.SPARQ_PRODUCT_NAMES,
        classify=_sparq_step_class,
    ),
    "a4w8": _Rule(
        _kernel.RULE_A4W8,
        threads=(2,),
        options={
            "shift": {str(s): s for s in range(5)},
            "rounding": {"round": _kernel.ROUND_HALF_EVEN, "raw": _kernel.ROUND_TRUNCATE},
        },
        products=_kernel.A4W8_PRODUCT_NAMES,
        classify=_a4w8_step_class,
    ),
    "bitserial": _Rule(
        _kernel.RULE_BITSERIAL,
        threads=tuple(range(2, 64)),
        options={"serial_operand": {"weight": _kernel.SERIAL_WEIGHT,
                                    "activation": _kernel.SERIAL_ACTIVATION}},
        lane_counters=True,
    ),
}


@dataclasses.dataclass(frozen=True)
class ReferenceResult:
    """What the reference array produced for one GEMM group.

    Attributes
    ----------
    outputs : ndarray of int64, shape (M, N)
        The outputs collected at the array's bottom edge.
    cycles : int
        Clock cycles from the first injection to the last output leaving the array, all folds
        together (folds do not overlap).
    counters : dict of str to int
        PE-steps with a real output position and a real step, by activity: ``idle``,
        ``single``, ``shared_exact``, ``shared_reduced`` (they sum to M * N * S); for the
        ``bitserial`` rule ``idle``, ``zero``, ``active``; for ``sparq`` and ``a4w8`` the
        step counters of docs/pe-models.md (only those that occurred).
    stats : dict of str to int
        ``bitserial``: ``shifts`` (cycles that processed a position) and ``active_lanes``
        (lane-cycles with a set bit and a non-zero parallel operand); ``sparq`` and ``a4w8``:
        the product stats of docs/pe-models.md (``exact_products``, ...; those that occurred).
    """

    outputs: np.ndarray
    cycles: int
    counters: dict[str, int]
    stats: dict[str, int] = dataclasses.field(default_factory=dict)


def reference_rules() -> tuple[str, ...]:
    """Names of the PE rules :func:`run_reference_array` accepts."""
    return tuple(_RULES)


def _check_matrix(name: str, value: object, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, not {type(value).__name__}")
    if value.dtype != np.int64:
        raise ValueError(f"{name} must have dtype int64, not {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, not of shape {value.shape}")
    return np.ascontiguousarray(value)


def _encode_params(rule_name: str, rule: _Rule, params: Mapping[str, str] | None) -> np.ndarray:
    given = dict(params or {})
    unknown = sorted(set(given) - set(rule.options))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for rule {rule_name!r}; "
                         f"valid parameters: {sorted(rule.options)}")
    codes = []
    for key, choices in rule.options.items():
        if key not in given:
            raise ValueError(f"rule {rule_name!r} needs parameter {key!r} "
                             f"(one of {sorted(choices)})")
        value = given[key]
        if value not in choices:
            raise ValueError(f"params[{key!r}] of rule {rule_name!r} must be one of "
                             f"{sorted(choices)}, not {value!r}")
        codes.append(choices[value])
    # At least one element, so that every rule passes the kernel the same array type.
    return np.array(codes or [0], dtype=np.int64)


def run_reference_array(A: np.ndarray, B: np.ndarray, rows: int, cols: int, sched: np.ndarray,
                        rule: str, params: Mapping[str, str] | None = None,
                        fold_steps: np.ndarray | None = None) -> ReferenceResult:
    """Run one GEMM group O = A . B through the register-level OS array.

    Parameters
    ----------
    A : ndarray of int64, shape (M, Kd)
        Activations: unsigned 8-bit (0..255) or signed 8-bit (-128..127).
    B : ndarray of int64, shape (Kd, N)
        Weights, signed 8-bit (-128..127).
    rows, cols : int
        Array size in PEs (both >= 1).
    sched : ndarray of int64, shape (T, S) or (C, T, S)
        Thread schedule: ``sched[t, s]`` is the K index thread t feeds at step s, or -1 for
        none (operand 0). Every K index 0..Kd-1 must appear exactly once. A 3-D schedule
        has one (T, S) schedule per column fold (C = ceil(N / cols)), each feeding every K
        index at most once in its first ``fold_steps[c]`` steps.
    rule : str
        PE rule, one of :func:`reference_rules`.
    params : mapping of str to str, optional
        The rule's parameters (see the module docstring); none for ``dense``.
    fold_steps : ndarray of int64, shape (C,), optional
        Steps of each column fold, 1..S; required with (only) a 3-D ``sched``.

    Returns
    -------
    ReferenceResult
        Outputs, cycles (counted, all folds) and activity counters.

    Raises
    ------
    ValueError
        If an argument has the wrong type, dtype, shape or range, or the rule or a parameter
        is unknown.
    """
    A = _check_matrix("A", A, 2)
    B = _check_matrix("B", B, 2)
    per_fold = isinstance(sched, np.ndarray) and sched.ndim == 3
    sched = _check_matrix("sched", sched, 3 if per_fold else 2)
    n_m, kd = A.shape
    if n_m < 1 or kd < 1:
        raise ValueError(f"A must have at least one row and one column, not shape {A.shape}")
    if B.shape[0] != kd or B.shape[1] < 1:
        raise ValueError(f"B must have shape ({kd}, N >= 1) to match A {A.shape}, "
                         f"not {B.shape}")
    for name, size in (("rows", rows), ("cols", cols)):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"{name} must be an integer >= 1, not {size!r}")
    a_min, a_max = int(A.min()), int(A.max())
    if a_min < 0 and not (a_min >= -128 and a_max <= 127):
        raise ValueError(f"signed activations must lie in -128..127, not {a_min}..{a_max}")
    if a_min >= 0 and a_max > 255:
        raise ValueError(f"unsigned activations must lie in 0..255, not {a_min}..{a_max}")
    if int(B.min()) < -128 or int(B.max()) > 127:
        raise ValueError(f"weights must lie in -128..127, not {int(B.min())}..{int(B.max())}")
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {sorted(_RULES)}, not {rule!r}")
    spec = _RULES[rule]
    n_threads = sched.shape[-2]
    if n_threads not in spec.threads:
        raise ValueError(f"rule {rule!r} runs {list(spec.threads)} thread(s); sched has "
                         f"{n_threads} rows")
    if sched.shape[-1] < 1:
        raise ValueError(f"sched must have at least one step, not shape {sched.shape}")
    if int(sched.min()) < -1 or int(sched.max()) >= kd:
        raise ValueError(f"sched entries must lie in -1..{kd - 1}, "
                         f"not {int(sched.min())}..{int(sched.max())}")
    if per_fold:
        fold_steps = _check_fold_schedule(sched, fold_steps, kd, -(-B.shape[1] // cols))
    else:
        if fold_steps is not None:
            raise ValueError("fold_steps needs a per-column-fold (3-D) sched")
        uses = np.bincount(sched[sched >= 0], minlength=kd)
        if not np.all(uses == 1):
            bad = int(np.flatnonzero(uses != 1)[0])
            raise ValueError(f"sched must feed every K index exactly once; K index {bad} is "
                             f"fed {int(uses[bad])} time(s)")
    codes = _encode_params(rule, spec, params)

    outputs = np.zeros((n_m, B.shape[1]), dtype=np.int64)
    if spec.lane_counters:
        size = n_threads + 1
    elif spec.products is not None:
        size = len(spec.products) ** 2
    else:
        size = _kernel.N_COUNTERS
    counters = np.zeros(max(_kernel.N_COUNTERS, size), dtype=np.int64)
    if per_fold:
        cycles = _kernel.simulate_os_array_folds(A, B, sched, fold_steps, int(rows), int(cols),
                                                 spec.rule_id, codes, outputs, counters)
    else:
        cycles = _kernel.simulate_os_array(A, B, sched, int(rows), int(cols), spec.rule_id,
                                           codes, outputs, counters)
    if spec.lane_counters:
        # Index 0: waiting; index 1 + k: a position processed with k active lanes.
        lanes = np.arange(n_threads)
        return ReferenceResult(
            outputs=outputs, cycles=int(cycles),
            counters={"idle": int(counters[0]), "zero": int(counters[1]),
                      "active": int(counters[2:n_threads + 1].sum())},
            stats={"shifts": int(counters[1:n_threads + 1].sum()),
                   "active_lanes": int(lanes @ counters[1:n_threads + 1])})
    if spec.products is not None:
        # Index class0 * n + class1: the step's two products.
        n = len(spec.products)
        named: dict[str, int] = {}
        stats: dict[str, int] = {}
        for code in np.flatnonzero(counters[:n * n]):
            count = int(counters[code])
            step, adds = spec.classify(spec.products[code // n], spec.products[code % n])
            named[step] = named.get(step, 0) + count
            for key, value in adds.items():
                stats[key] = stats.get(key, 0) + value * count
        return ReferenceResult(outputs=outputs, cycles=int(cycles), counters=named,
                               stats=stats)
    return ReferenceResult(outputs=outputs, cycles=int(cycles),
                           counters={name: int(counters[i])
                                     for i, name in enumerate(_COUNTER_NAMES)})


def _check_fold_schedule(sched: np.ndarray, fold_steps: object, kd: int,
                         col_folds: int) -> np.ndarray:
    """Validate a per-column-fold schedule and its step counts; returns ``fold_steps``."""
    if sched.shape[0] not in (1, col_folds):
        raise ValueError(f"a 3-D sched must have 1 or {col_folds} (column folds) schedules, "
                         f"not {sched.shape[0]}")
    if fold_steps is None:
        raise ValueError("a 3-D sched needs fold_steps")
    fold_steps = _check_matrix("fold_steps", fold_steps, 1)
    if fold_steps.shape[0] != sched.shape[0]:
        raise ValueError(f"fold_steps must have {sched.shape[0]} entries, not "
                         f"{fold_steps.shape[0]}")
    if int(fold_steps.min()) < 1 or int(fold_steps.max()) > sched.shape[2]:
        raise ValueError(f"fold_steps must lie in 1..{sched.shape[2]}")
    for c, steps in enumerate(fold_steps):
        fed = sched[c, :, :steps]
        uses = np.bincount(fed[fed >= 0], minlength=kd)
        if np.any(uses > 1):
            bad = int(np.flatnonzero(uses > 1)[0])
            raise ValueError(f"sched[{c}] feeds K index {bad} {int(uses[bad])} times")
    return fold_steps
