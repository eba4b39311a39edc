"""The dense 8b x 8b PE: one exact MAC per step (the baseline of MODELS.md §2)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from simulator.config.arch import PEOptions
from simulator.config.schema import option
from simulator.hw.pe.registry import PEModel, register_pe
from simulator.workloads.layers import Layer

__all__ = ["DenseOptions", "DensePE"]


@dataclasses.dataclass(frozen=True)
class DenseOptions(PEOptions):
    """``pe: {type: dense}``: an exact 8b x 8b multiply-accumulate per cycle."""

    type: Literal["dense"] = option("dense", doc="PE type.")


@register_pe
class DensePE(PEModel):
    type_name = "dense"
    summary = "exact 8b x 8b MAC per cycle (the OS/WS/IS baseline)"
    Options = DenseOptions
    dataflows = ("os", "ws", "is")

    def reduction_steps(self, layer: Layer) -> int:
        return layer.gemm.k
