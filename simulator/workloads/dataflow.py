"""How a GEMM sits on a systolic array under each dataflow (docs/timing-model.md).

The array's rows and columns hold two of the GEMM's dimensions and the third streams through
it. This table is the one place that says which is which; the timing model and the memory
planner both read it.

=========  ==========  ==========  ==========
dataflow   rows (Sr)   cols (Sc)   streamed T
=========  ==========  ==========  ==========
os         M           N (Fg)      K (Kd)
ws         K (Kd)      N (Fg)      M
is         K (Kd)      M           N (Fg)
=========  ==========  ==========  ==========
"""

from __future__ import annotations

from typing import Literal

from simulator.records import record
from simulator.workloads.layers import GemmShape

__all__ = ["DATAFLOWS", "Dataflow", "ArrayMapping", "array_mapping"]

Dataflow = Literal["os", "ws", "is"]
Dim = Literal["m", "k", "n"]

#: (row dimension, column dimension, streamed dimension) of each dataflow.
_DIMS: dict[str, tuple[Dim, Dim, Dim]] = {
    "os": ("m", "n", "k"),
    "ws": ("k", "n", "m"),
    "is": ("k", "m", "n"),
}
DATAFLOWS: tuple[str, ...] = tuple(_DIMS)


@record
class ArrayMapping:
    """The GEMM dimensions along the array's rows and columns and the one streamed through.

    Attributes
    ----------
    row_dim, col_dim, streamed_dim : ``"m"``, ``"k"`` or ``"n"``.
    rows, cols, streamed : their sizes (Sr, Sc, T), in elements.
    """

    dataflow: str
    row_dim: Dim
    col_dim: Dim
    streamed_dim: Dim
    rows: int
    cols: int
    streamed: int

    @property
    def outputs_final_per_fold(self) -> bool:
        """The reduction streams through the array (OS): each fold's outputs are final.

        Otherwise (WS/IS) the reduction lies along the rows and a column fold's outputs
        accumulate over its row folds.
        """
        return self.streamed_dim == "k"

    def extent(self, dim: Dim, row_used, col_used):
        """Elements of GEMM dimension ``dim`` a fold covers: the rows or columns it uses
        when ``dim`` lies on the array, all of it when ``dim`` streams (numpy-friendly)."""
        if dim == self.row_dim:
            return row_used
        if dim == self.col_dim:
            return col_used
        return self.streamed


def array_mapping(gemm: GemmShape, dataflow: str) -> ArrayMapping:
    """The :class:`ArrayMapping` of one group of ``gemm`` under ``dataflow``.

    Raises
    ------
    ValueError : for a dataflow other than ``os``, ``ws`` or ``is``.
    """
    try:
        row_dim, col_dim, streamed_dim = _DIMS[dataflow]
    except KeyError:
        raise ValueError(f"dataflow must be one of {', '.join(DATAFLOWS)}, "
                         f"not {dataflow!r}") from None
    size = {"m": gemm.m, "k": gemm.k, "n": gemm.n}
    return ArrayMapping(dataflow, row_dim, col_dim, streamed_dim, size[row_dim],
                        size[col_dim], size[streamed_dim])
