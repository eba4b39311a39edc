"""The register-transfer-level reference array: the yardstick for the fast PE models.

:func:`run_reference_array` runs one GEMM group through an output-stationary systolic array
modelled register by register (:mod:`simulator.kernels.reference_array`): operands really move
one PE per cycle, the accumulators really drain down their columns, and the cycles are counted
by clocking the array until it is empty. It is slow and meant for small shapes in tests; the
fast PE models must agree with it exactly (outputs, cycles and activity counters).

PE rules
--------
Each PE type brings its own rule (:meth:`simulator.hw.pe.PEModel.reference_rule`), named by
its type name: the built-in types run compiled rules of the kernel module, a plug-in runs a
plain-Python per-PE-step function in the same array model. The parameters, counters and
stats of each built-in rule are in docs/reference-array.md; writing a rule is in
docs/extending.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from simulator.hw.pe.registry import ReferenceRule, pe_model_class, pe_types
from simulator.kernels import reference_array as _kernel
from simulator.records import record

__all__ = ["ReferenceResult", "reference_rules", "run_reference_array"]

@record
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
        PE-steps with a real output position and a real step, by the rule's counters
        (docs/reference-array.md); they sum to M * N * S.
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
    """Names of the PE rules :func:`run_reference_array` accepts: the PE types (built-in and
    plug-in) that define a reference rule."""
    return tuple(name for name, cls in pe_types().items() if cls.reference_rule() is not None)


def _rule(name: str) -> ReferenceRule:
    try:
        spec = pe_model_class(name).reference_rule()
    except KeyError:
        spec = None
    if spec is None:
        raise ValueError(f"rule must be one of {sorted(reference_rules())}, not {name!r}")
    return spec


def _check_matrix(name: str, value: object, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, not {type(value).__name__}")
    if value.dtype != np.int64:
        raise ValueError(f"{name} must have dtype int64, not {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, not of shape {value.shape}")
    return np.ascontiguousarray(value)


def _encode_params(rule_name: str, rule: ReferenceRule,
                   params: Mapping[str, str] | None) -> np.ndarray:
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
        The rule's parameters by name (docs/reference-array.md).
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
    spec = _rule(rule)
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
    if per_fold:
        sched3 = sched
    else:
        fold_steps = np.full(1, sched.shape[1], np.int64)
        sched3 = sched.reshape(1, *sched.shape)

    outputs = np.zeros((n_m, B.shape[1]), dtype=np.int64)
    counters = np.zeros(max(_kernel.N_COUNTERS, spec.slots(n_threads)), dtype=np.int64)
    if callable(spec.step):
        cycles = _kernel.simulate_os_array_folds_python(
            A, B, sched3, fold_steps, int(rows), int(cols), spec.step, dict(params or {}),
            outputs, counters)
    else:
        cycles = _kernel.simulate_os_array_folds(A, B, sched3, fold_steps, int(rows), int(cols),
                                                 spec.step, codes, outputs, counters)
    if spec.decode is not None:
        named, stats = spec.decode(counters, n_threads)
        return ReferenceResult(outputs=outputs, cycles=int(cycles), counters=named,
                               stats=stats)
    return ReferenceResult(outputs=outputs, cycles=int(cycles),
                           counters={name: int(counters[i])
                                     for i, name in enumerate(spec.counter_names or ())})


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
