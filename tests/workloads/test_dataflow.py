"""The dataflow table: which GEMM dimension lies along the array's rows, columns, or streams."""

from __future__ import annotations

import pytest

from simulator.workloads.dataflow import array_mapping
from simulator.workloads.layers import GemmShape


@pytest.mark.parametrize("dataflow, dims", [("os", ("m", "n", "k")), ("ws", ("k", "n", "m")),
                                            ("is", ("k", "m", "n"))])
def test_the_dataflow_table(dataflow, dims):
    gemm = GemmShape(m=3, k=5, n=7)
    mapping = array_mapping(gemm, dataflow)
    size = {"m": 3, "k": 5, "n": 7}
    assert (mapping.row_dim, mapping.col_dim, mapping.streamed_dim) == dims
    assert (mapping.rows, mapping.cols, mapping.streamed) == tuple(size[d] for d in dims)
    assert mapping.outputs_final_per_fold == (dataflow == "os")
    with pytest.raises(ValueError, match="dataflow"):
        array_mapping(gemm, "rs")
