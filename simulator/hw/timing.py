"""Array timing: folds and cycles of a GEMM on a systolic array (docs/hardware-spec.md §2).

A GEMM with ``groups`` groups runs group after group. For each dataflow the array's rows and
columns hold two of the GEMM's dimensions (Sr, Sc) and the third streams through in T steps
(:func:`simulator.workloads.dataflow.array_mapping`); in the OS dataflow T is the PE's
reduction steps (Kd for a dense PE).

Folds = groups * ceil(Sr/rows) * ceil(Sc/cols). Cycles per fold:

- ``scalesim``: OS ``T + rows + cols - 2``; WS/IS ``T + 2*rows + cols - 2``; the layer's total
  is ``folds * fold - 1`` (SCALE-Sim reports the index of the last cycle:
  :func:`reported_cycles`).
- ``native``: OS ``T + 2*rows + cols - 2`` (skewed fill, compute, and the ``rows``-cycle drain
  of the stationary outputs, as the register-level array does); WS/IS as SCALE-Sim; the total
  is ``folds * fold``.

A PE whose steps depend on the weights (SWIS) gives T per column fold (``column_fold_steps``,
OS only): every row fold of column fold c takes ``T_c`` steps, the layer's cycles are the sum
over folds, and the utilisations are summed fold by fold.

Fold order: the canonical order of folds (SCALE-Sim's) is group, then column fold, then row
fold, innermost last: fold ``(g * col_folds + c) * row_folds + r``. ``FoldTiming.fold_cycles`` has
one entry per fold in that order; the memory model (simulator/memory) consumes it, so a PE
whose folds differ in length only has to supply a different array.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from simulator.records import record
from simulator.workloads.dataflow import Dataflow, array_mapping
from simulator.workloads.layers import GemmShape

__all__ = ["FoldTiming", "fold_timing", "reported_cycles"]

Convention = Literal["native", "scalesim"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def reported_cycles(cycles: int, convention: Convention) -> int:
    """A cycle count as the convention reports it.

    SCALE-Sim reports the index of the last cycle, one less than the count; the native
    convention reports the count (docs/timing-model.md). Every reported total (a layer's
    compute cycles, its cycles with memory stalls) goes through here.
    """
    return cycles - 1 if convention == "scalesim" else cycles


@record
class FoldTiming:
    """Timing of one layer on the array.

    Attributes
    ----------
    folds : number of array-sized tiles, all groups together.
    steps_per_fold : T, the streamed dimension's steps (the longest fold's when T varies by
        column fold).
    cycles_per_fold : cycles of one fold, fill and drain included (the longest fold's).
    compute_cycles : the layer's cycles in the chosen convention
        (:func:`reported_cycles` of ``fold_cycles.sum()``).
    mapping_efficiency : fraction of PEs holding useful work, averaged over folds.
    compute_utilization : fraction of PE-cycles that stream operands (SCALE-Sim's
        "Compute Util").
    fold_cycles : int64 (folds,) cycles of each fold, fill and drain included, in the
        canonical fold order; the memory model (simulator/memory) consumes it.
    """

    folds: int
    steps_per_fold: int
    cycles_per_fold: int
    compute_cycles: int
    mapping_efficiency: float
    compute_utilization: float
    fold_cycles: np.ndarray = dataclasses.field(compare=False, repr=False)


def fold_timing(gemm: GemmShape, rows: int, cols: int, dataflow: Dataflow,
                convention: Convention, reduction_steps: int,
                column_fold_steps: np.ndarray | None = None) -> FoldTiming:
    """Folds and cycles of ``gemm`` on a ``rows`` x ``cols`` array: the layer's totals and
    each fold's cycles, from one call.

    ``reduction_steps`` is the number of steps a PE needs to consume the Kd operands (Kd for a
    dense PE, ceil(Kd/threads) for SySMT); it is the T of the OS dataflow.
    ``column_fold_steps`` (OS only), int (groups, ceil(N/cols)), replaces it with a T per
    column fold.
    """
    if column_fold_steps is not None:
        return _column_fold_timing(gemm, rows, cols, dataflow, convention,
                                   np.asarray(column_fold_steps, dtype=np.int64))
    mapping = array_mapping(gemm, dataflow)
    sr, sc = mapping.rows, mapping.cols
    t = reduction_steps if dataflow == "os" else mapping.streamed
    row_folds, col_folds = _ceil_div(sr, rows), _ceil_div(sc, cols)
    folds = gemm.groups * row_folds * col_folds
    if dataflow == "os":
        fill = rows + cols - 2
        cycles_per_fold = t + fill + (rows if convention == "native" else 0)
        util_denominator = t + fill
    else:
        cycles_per_fold = t + 2 * rows + cols - 2
        util_denominator = t + 2 * rows + 2 * cols - 3
    compute_cycles = reported_cycles(folds * cycles_per_fold, convention)
    if convention == "scalesim":
        efficiency, utilization = _scalesim_fold_averages(sr, sc, t, rows, cols,
                                                          util_denominator)
    else:
        efficiency = (sr / (row_folds * rows)) * (sc / (col_folds * cols))
        utilization = (gemm.groups * sr * sc * t) / (folds * rows * cols * util_denominator)
    return FoldTiming(folds=folds, steps_per_fold=t, cycles_per_fold=cycles_per_fold,
                      compute_cycles=compute_cycles, mapping_efficiency=efficiency,
                      compute_utilization=utilization,
                      fold_cycles=np.full(folds, cycles_per_fold, dtype=np.int64))


def _scalesim_fold_averages(sr: int, sc: int, t: int, rows: int, cols: int,
                            denominator: int) -> tuple[float, float]:
    """Mapping efficiency and compute utilisation exactly as SCALE-Sim v3 evaluates them.

    SCALE-Sim averages per-fold values, summed in its fold order (column folds outer, row
    folds inner) with plain float additions; the closed form differs in the last digits.
    """
    pes = rows * cols
    mapping_sum = 0.0
    compute_sum = 0.0
    row_used = [min(rows, sr - r) for r in range(0, sr, rows)]
    for c in range(0, sc, cols):
        col_used = min(cols, sc - c)
        for ru in row_used:
            used = ru * col_used
            mapping_sum += used / pes
            compute_sum += used * t / (pes * denominator)
    folds = len(row_used) * -(-sc // cols)
    return mapping_sum / folds, compute_sum / folds


def _column_fold_timing(gemm: GemmShape, rows: int, cols: int, dataflow: Dataflow,
                        convention: Convention, steps: np.ndarray) -> FoldTiming:
    """OS timing when column fold c of group g takes ``steps[g, c]`` steps."""
    col_folds = _ceil_div(gemm.n, cols)
    if dataflow != "os":
        raise ValueError(f"per-column-fold steps are defined for the OS dataflow, "
                         f"not {dataflow!r}")
    if steps.shape != (gemm.groups, col_folds):
        raise ValueError(f"column_fold_steps must have shape {(gemm.groups, col_folds)}, "
                         f"not {steps.shape}")
    if steps.size and int(steps.min()) < 0:
        raise ValueError("column_fold_steps must be non-negative")
    row_used = [min(rows, gemm.m - r) for r in range(0, gemm.m, rows)]
    col_used = [min(cols, gemm.n - c) for c in range(0, gemm.n, cols)]
    folds = gemm.groups * len(row_used) * col_folds
    fill = rows + cols - 2
    drain = rows if convention == "native" else 0
    longest = int(steps.max())
    total = len(row_used) * (int(steps.sum()) + gemm.groups * col_folds * (fill + drain))
    compute_cycles = reported_cycles(total, convention)
    pes = rows * cols
    mapping = (gemm.m / (len(row_used) * rows)) * (gemm.n / (col_folds * cols))
    if convention == "scalesim":
        # SCALE-Sim's per-fold averages, in its fold order (column folds outer).
        mapping_sum = compute_sum = 0.0
        for g in range(gemm.groups):
            for c, cu in enumerate(col_used):
                t = int(steps[g, c])
                for ru in row_used:
                    mapping_sum += ru * cu / pes
                    if t:  # a fold of no steps on a 1 x 1 array lasts no cycles
                        compute_sum += ru * cu * t / (pes * (t + fill))
        mapping, utilization = mapping_sum / folds, compute_sum / folds
    else:
        busy = sum(int(steps[g, c]) * cu for g in range(gemm.groups)
                   for c, cu in enumerate(col_used)) * gemm.m
        utilization = busy / (len(row_used) * pes * (int(steps.sum()) + gemm.groups * col_folds
                                                      * fill)) if steps.any() else 0.0
    # Every row fold of column fold c takes steps[g, c] plus the fill and drain.
    fold_cycles = np.repeat(steps.reshape(-1) + fill + drain, len(row_used))
    return FoldTiming(folds=folds, steps_per_fold=longest, cycles_per_fold=longest + fill + drain,
                      compute_cycles=compute_cycles, mapping_efficiency=mapping,
                      compute_utilization=utilization, fold_cycles=fold_cycles)
