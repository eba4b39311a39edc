"""The dense 8b x 8b PE: one exact MAC per step (the baseline of MODELS.md §2)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from simulator.config.arch import PEOptions
from simulator.config.schema import option
from simulator.hw.pe.registry import GemmRun, PEModel, register_pe
from simulator.workloads.layers import Layer
from simulator.workloads.lowering import gemm_product

__all__ = ["DenseOptions", "DensePE", "active_steps"]


@dataclasses.dataclass(frozen=True)
class DenseOptions(PEOptions):
    """``pe: {type: dense}``: an exact 8b x 8b multiply-accumulate per cycle."""

    type: Literal["dense"] = option("dense", doc="PE type.")


def active_steps(a: np.ndarray, b: np.ndarray) -> int:
    """PE-steps whose activation and weight are both non-zero, over all (m, n, k)."""
    return int(np.count_nonzero(a, axis=0) @ np.count_nonzero(b, axis=1))


@register_pe
class DensePE(PEModel):
    type_name = "dense"
    summary = "exact 8b x 8b MAC per cycle (the OS/WS/IS baseline)"
    Options = DenseOptions
    dataflows = ("os", "ws", "is")
    counter_names = ("idle", "single")

    def reduction_steps(self, layer: Layer) -> int:
        return layer.gemm.k

    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        outputs = gemm_product(a[None], b[None])[0]
        active = active_steps(a, b)
        total = a.shape[0] * b.shape[1] * a.shape[1]
        return GemmRun(outputs, {"idle": total - active, "single": active})
