"""A lowered layer's GEMM groups run on a PE model, one after another.

A grouped conv lowers to ``groups`` independent GEMMs (docs/timing-model.md); the PE's
functional model runs one GEMM at a time. This is the one loop over the groups: the
simulator's functional run and the accuracy tooling both call it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from simulator.hw.pe.registry import PEModel
from simulator.workloads.layers import Layer

__all__ = ["GroupedRun", "run_groups"]


@dataclasses.dataclass(frozen=True)
class GroupedRun:
    """What a PE computes for every group of a lowered layer.

    Attributes
    ----------
    outputs : int64 (G, M, N), the outputs of each group's GEMM.
    counters : the PE's activity counters summed over the groups (every name of the model's
        ``counter_names`` present).
    stats : the PE's further totals summed over the groups (every name of ``stat_names``).
    """

    outputs: np.ndarray
    counters: dict[str, int]
    stats: dict[str, int]


def run_groups(pe: PEModel, layer: Layer, a: np.ndarray, b: np.ndarray) -> GroupedRun:
    """Run ``pe.simulate_gemm`` on each group of ``a`` (G, M, K) . ``b`` (G, K, N)."""
    counters: Counter[str] = Counter({name: 0 for name in pe.counter_names})
    stats: Counter[str] = Counter({name: 0 for name in pe.stat_names})
    outputs = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=np.int64)
    for g in range(a.shape[0]):
        run = pe.simulate_gemm(layer, a[g], b[g])
        outputs[g] = run.outputs
        counters.update(run.counters)
        stats.update(run.stats)
    return GroupedRun(outputs, dict(counters), dict(stats))
