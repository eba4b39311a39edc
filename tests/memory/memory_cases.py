"""Hypothesis strategies shared by the memory-model tests: small random layers and configs."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from simulator.config.arch import MemoryConfig
from simulator.hw.timing import fold_timing
from simulator.workloads.layers import Layer

BUFFER_KIB = st.sampled_from([None, 0.04, 0.08, 0.25, 1.0])


@st.composite
def conv_layers(draw, max_batch: int = 2) -> Layer:
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2]))
    layer = Layer(
        name="L", op="conv2d", in_channels=groups * draw(st.integers(1, 6)),
        out_channels=groups * draw(st.integers(1, 10)), batch=draw(st.integers(1, max_batch)),
        input_size=(draw(st.integers(kh, 9)), draw(st.integers(kw, 9))),
        kernel_size=(kh, kw), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))), groups=groups,
        output_rule=draw(st.sampled_from(["pytorch", "scalesim"])),
        activation_bits=draw(st.sampled_from([8, 8, 4, 2])),
        weight_bits=draw(st.sampled_from([8, 8, 4])))
    assume(not list(layer.problems()))
    return layer


@st.composite
def layers(draw) -> Layer:
    if draw(st.booleans()):
        return draw(conv_layers())
    return Layer(name="L", op=draw(st.sampled_from(["gemm", "linear"])),
                 in_channels=draw(st.integers(1, 40)), out_channels=draw(st.integers(1, 30)),
                 batch=draw(st.integers(1, 40)),
                 activation_bits=draw(st.sampled_from([8, 4])),
                 weight_bits=draw(st.sampled_from([8, 4])))


@st.composite
def memories(draw, bounded: bool = True) -> MemoryConfig:
    sizes = BUFFER_KIB if bounded else st.just(None)
    return MemoryConfig(
        ifmap_kib=draw(sizes), filter_kib=draw(sizes), ofmap_kib=draw(sizes),
        double_buffering=draw(st.booleans()),
        loop_order=draw(st.sampled_from(["column_folds_outer", "row_folds_outer", "auto"])),
        output_bits=draw(st.sampled_from([None, 8, 16])),
        partial_sum_bits=draw(st.sampled_from([8, 32])))


@dataclasses.dataclass(frozen=True)
class Case:
    """A layer on an array with per-fold cycles and a memory config."""

    layer: Layer
    rows: int
    cols: int
    dataflow: str
    fold_cycles: np.ndarray
    memory: MemoryConfig


@st.composite
def cases(draw, bounded: bool = True, uniform: bool | None = None) -> Case:
    layer = draw(layers())
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dataflow = draw(st.sampled_from(["os", "ws", "is"]))
    timing = fold_timing(layer.gemm, rows, cols, dataflow,
                         draw(st.sampled_from(["native", "scalesim"])), layer.gemm.k)
    assume(timing.folds <= 120)
    if uniform if uniform is not None else draw(st.booleans()):
        cycles = np.full(timing.folds, timing.cycles_per_fold, dtype=np.int64)
    else:  # data-dependent fold lengths, as a SWIS-like PE would give
        cycles = np.asarray(draw(st.lists(st.integers(1, 60), min_size=timing.folds,
                                          max_size=timing.folds)), dtype=np.int64)
    return Case(layer, rows, cols, dataflow, cycles, draw(memories(bounded)))
