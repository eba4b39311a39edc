"""A lowered layer's GEMM groups run on a PE model, one after another.

A grouped conv lowers to ``groups`` independent GEMMs (docs/timing-model.md); the PE's
functional model runs one GEMM at a time. This is the one loop over the groups: the
simulator's functional run and the accuracy tooling both call it.

For a PE whose columns are independent (``PEModel.columns_independent``), a layer whose
int64 B would be large runs a block of whole column folds at a time, its B lowered block by
block, so memory stays bounded (docs/performance.md).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np

from simulator.errors import PluginError, SasimError, said
from simulator.hw.pe.registry import BUILTIN_MODULES, GemmRun, PEModel
from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["GroupedRun", "run_groups", "column_blocks", "COLUMN_BLOCK_BYTES"]

#: int64 bytes of one group's B (and so of a PE's per-weight state) above which a PE with
#: independent columns runs the layer a block of column folds at a time.
COLUMN_BLOCK_BYTES = 64 << 20

#: Lowers columns ``lo:hi`` of group ``g`` of B: ``(g, lo, hi) -> int64 (K, hi - lo)``.
WeightBlocks = Callable[[int, int, int], np.ndarray]
#: Called after each PE call with (group, B block, the PE's run of the block: outputs
#: (M, hi - lo) and, when the PE computed it, the exact product).
BlockSink = Callable[[int, np.ndarray, GemmRun], None]


@record
class GroupedRun:
    """What a PE computes for every group of a lowered layer.

    Attributes
    ----------
    outputs : int64 (G, M, N), the outputs of each group's GEMM (``None`` when the caller
        did not keep them: ``run_groups(..., keep_outputs=False)``).
    counters : the PE's activity counters summed over the groups (every name of the model's
        ``counter_names`` present).
    stats : the PE's further totals summed over the groups (every name of ``stat_names``).
    """

    outputs: np.ndarray | None
    counters: dict[str, int]
    stats: dict[str, int]


def column_blocks(pe: PEModel, layer: Layer) -> list[tuple[int, int]]:
    """Column ranges of one group's GEMM the PE runs in one call: all columns, or, for a PE
    with independent columns and a B above :data:`COLUMN_BLOCK_BYTES`, blocks of whole
    column folds of the PE's array."""
    gemm = layer.gemm
    if not pe.columns_independent or gemm.k * gemm.n * 8 <= COLUMN_BLOCK_BYTES:
        return [(0, gemm.n)]
    fold = max(1, pe.array.cols)
    width = max(fold, COLUMN_BLOCK_BYTES // (8 * max(gemm.k, 1)) // fold * fold)
    return [(lo, min(gemm.n, lo + width)) for lo in range(0, gemm.n, width)]


def run_groups(pe: PEModel, layer: Layer, a: np.ndarray, b: np.ndarray | WeightBlocks,
               on_block: BlockSink | None = None, keep_outputs: bool = True) -> GroupedRun:
    """Run ``pe.simulate_gemm`` on each group of ``a`` (G, M, K) . ``b`` (G, K, N).

    ``b`` may instead be a function lowering one block of columns (:data:`WeightBlocks`):
    the PE then runs the :func:`column_blocks` of each group. ``on_block`` sees every block's
    operand and run (the caller's error metrics). Without ``keep_outputs`` the outputs are
    not gathered (a transformer's 32 heads of scores are 1 GiB of int64): ``on_block`` is
    then the only one to see them.
    """
    from simulator.hw.accumulator import (ACCUMULATOR_STATS, accumulate, accumulate_direct,
                                          layer_accumulator)

    narrow = layer_accumulator(pe, layer).type != "exact"  # docs/accumulators.md
    lazy = callable(b)
    blocks = column_blocks(pe, layer) if lazy else [(0, b.shape[2])]
    n_cols = layer.gemm.n if lazy else b.shape[2]
    counters: Counter[str] = Counter({name: 0 for name in pe.counter_names})
    stats: Counter[str] = Counter({name: 0 for name in pe.stat_names})
    if narrow:
        stats.update({name: 0 for name in ACCUMULATOR_STATS})
    outputs = (np.empty((a.shape[0], a.shape[1], n_cols), dtype=np.int64) if keep_outputs
               else None)
    for g in range(a.shape[0]):
        for lo, hi in blocks:
            block = b(g, lo, hi) if lazy else b[g]
            with plugin_errors(pe, layer):
                weights, prepared = pe.prepare_weights(layer, block)
                run = accumulate_direct(pe, layer, a[g], weights) if narrow else None
                if run is None:
                    run = pe.simulate_gemm(layer, a[g], weights)
                    if narrow:
                        run = accumulate(pe, layer, a[g], weights, run)
                _check_run(pe, layer, run)
            if outputs is not None:
                outputs[g, :, lo:hi] = run.outputs
            counters.update(run.counters)
            stats.update(run.stats)
            stats.update(prepared)
            if on_block is not None:
                on_block(g, block, run)
    return GroupedRun(outputs, dict(counters), dict(stats))


@contextlib.contextmanager
def plugin_errors(pe: PEModel, layer: Layer) -> Iterator[None]:
    """A plug-in PE's exception as one line naming the PE type, its module and the layer
    (:class:`PluginError`); a built-in type's passes through."""
    try:
        yield
    except SasimError:
        raise
    except Exception as exc:  # noqa: BLE001  (any failure of third-party code)
        cls = type(pe)
        if cls.__module__ in BUILTIN_MODULES:
            raise
        raise PluginError(f"layer {layer.name!r}: PE type {cls.type_name!r} (plug-in "
                          f"{cls.__module__}) failed: {said(exc)}") from None


def _check_run(pe: PEModel, layer: Layer, run: GemmRun) -> None:
    """A PE's GEMM names every counter of its ``counter_names`` and no other."""
    got, want = set(run.counters), set(pe.counter_names)
    if got != want:
        missing, extra = sorted(want - got), sorted(got - want)
        raise PluginError(f"layer {layer.name!r}: PE type {pe.type_name!r}'s simulate_gemm "
                          f"returned counters {'without ' + ', '.join(missing) if missing else ''}"
                          f"{' and ' if missing and extra else ''}"
                          f"{'with unknown ' + ', '.join(extra) if extra else ''} "
                          f"(counter_names: {', '.join(pe.counter_names)})")
