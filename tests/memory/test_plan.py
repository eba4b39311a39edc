"""Tile programs: conservation of bytes and the closed forms of each reuse decision."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from memory_cases import cases
from naive_memory import ceil_bytes, naive_footprint

from simulator.config.arch import MemoryConfig
from simulator.errors import SimulationError
from simulator.hw.timing import fold_timing
from simulator.memory import plan_layer
from simulator.workloads.layers import Layer


def _plan(case):
    return plan_layer(case.layer, case.rows, case.cols, case.dataflow, case.fold_cycles,
                      case.memory)


def _tiles(extent: int, size: int) -> list[int]:
    return [min(size, extent - start) for start in range(0, extent, size)]


def _fixed_output_bytes(case) -> int:
    """Final output bytes: each output tile written once, rounded up to whole bytes."""
    layer, gemm = case.layer, case.layer.gemm
    bits = case.memory.output_bits or layer.activation_bits
    if case.dataflow == "os":
        per_group = sum(ceil_bytes(a * b, bits) for a in _tiles(gemm.m, case.rows)
                        for b in _tiles(gemm.n, case.cols))
    elif case.dataflow == "ws":
        per_group = sum(ceil_bytes(gemm.m * b, bits) for b in _tiles(gemm.n, case.cols))
    else:
        per_group = sum(ceil_bytes(gemm.n * b, bits) for b in _tiles(gemm.m, case.cols))
    return gemm.groups * per_group


@settings(max_examples=120, deadline=None)
@given(cases())
def test_programs_conserve_bytes(case):
    try:
        program = _plan(case)
    except SimulationError:
        return  # buffers too small for this layer: tested separately
    layer, gemm = case.layer, case.layer.gemm
    # Every fold is scheduled, in order, with its own cycles.
    assert program.unit_cycles.sum() == case.fold_cycles.sum()
    assert np.all(np.diff(program.unit_fold) >= 0)
    assert set(program.unit_fold.tolist()) == set(range(program.folds))
    assert np.all(program.load_after < np.arange(program.units))
    # What is claimed is given back.
    assert (program.load[:, :2].sum(axis=0) == program.release.sum(axis=0)).all()
    assert program.out_alloc.sum() == program.store_free.sum()
    # Every input byte the layer needs is loaded at least once; outputs are written once.
    unique = gemm.groups * ceil_bytes(naive_footprint(layer, 0, gemm.m, 0, gemm.k),
                                      layer.activation_bits)
    reads, writes = program.dram_read_bytes, program.dram_write_bytes
    assert reads[0] >= unique
    assert reads[1] * 8 >= gemm.groups * gemm.k * gemm.n * layer.weight_bits
    assert writes[0] == _fixed_output_bytes(case)
    # Partial sums read back are exactly those spilled.
    assert reads[2] == writes[1]
    # No single transfer exceeds its buffer; streamed chunks fit in half of it.
    for index, name in enumerate(("ifmap", "filter")):
        capacity = program.capacity[index]
        if capacity is not None:
            assert program.load[:, index].max() <= capacity
            if program.reuse[name] == "stream":
                assert program.load[:, index].max() <= capacity // 2


@settings(max_examples=60, deadline=None)
@given(cases(bounded=False))
def test_unbounded_buffers_move_each_byte_once(case):
    program = _plan(case)
    layer, gemm = case.layer, case.layer.gemm
    assert program.reuse["ifmap"] == program.reuse["filter"] == "group"
    unique = ceil_bytes(naive_footprint(layer, 0, gemm.m, 0, gemm.k), layer.activation_bits)
    reads, writes = program.dram_read_bytes, program.dram_write_bytes
    assert reads[0] == gemm.groups * unique
    if layer.weight_bits == 8:
        assert reads[1] == gemm.groups * gemm.k * gemm.n
    assert reads[2] == writes[1] == 0
    assert program.units == program.folds  # nothing is streamed


# A small conv layer whose reuse decisions are forced by the buffer sizes (OS, 4x4 array):
# M = 8*8 = 64 (16 row folds of half an output row), Kd = 3*3*3 = 27, N = 10 (3 column folds).
LAYER = Layer(name="c", op="conv2d", in_channels=3, out_channels=10, batch=1,
              input_size=(8, 8), kernel_size=(3, 3), padding=(1, 1))
ROWS = COLS = 4


def _os_program(**memory) -> object:
    timing = fold_timing(LAYER.gemm, ROWS, COLS, "os", "native", LAYER.gemm.k)
    return plan_layer(LAYER, ROWS, COLS, "os", timing.fold_cycles, MemoryConfig(**memory))


def _row_tile_footprints() -> list[int]:
    return [naive_footprint(LAYER, m, m + u, 0, LAYER.gemm.k)
            for m, u in zip(range(0, 64, ROWS), _tiles(64, ROWS))]


UNIQUE = 8 * 8 * 3          # every input pixel, once
FILTER = 27 * 10
# Largest receptive field of a row fold: 3 input rows x 5 columns x 3 channels = 45 bytes;
# the sliding window (pixels read before and needed again) peaks at 63 bytes.


@pytest.mark.parametrize(("memory", "reuse", "ifmap_bytes", "filter_bytes"), [
    # Everything fits: each byte once.
    ({}, ("group", "group"), UNIQUE, FILTER),
    # SCALE-Sim's order, a line buffer for the input (the live window fits in 100 bytes but
    # the whole input does not): the input streams once per column fold; each column fold's
    # weights (27 x 4 bytes) are loaded once and stay while the row folds pass.
    ({"ifmap_kib": 100 / 1024, "filter_kib": 120 / 1024}, ("window", "outer"),
     3 * UNIQUE, FILTER),
    # Row folds outer: the input once; the weights (not all resident) once per row fold.
    ({"ifmap_kib": 100 / 1024, "filter_kib": 120 / 1024, "loop_order": "row_folds_outer"},
     ("window", "fold"), UNIQUE, 16 * FILTER),
    # No room for the window: each row fold's whole receptive field, per column fold.
    ({"ifmap_kib": 60 / 1024}, ("fold", "group"), 3 * sum(_row_tile_footprints()), FILTER),
    # Not even one receptive field: streamed in chunks, same bytes as per-fold loads.
    ({"ifmap_kib": 40 / 1024}, ("stream", "group"), 3 * sum(_row_tile_footprints()), FILTER),
])
def test_os_reuse_closed_forms(memory, reuse, ifmap_bytes, filter_bytes):
    program = _os_program(**memory)
    assert (program.reuse["ifmap"], program.reuse["filter"]) == reuse
    reads = program.dram_read_bytes
    assert (reads[0], reads[1], reads[2]) == (ifmap_bytes, filter_bytes, 0)
    assert program.dram_write_bytes.tolist() == [64 * 10, 0]


@pytest.mark.parametrize(("filter_kib", "order", "ifmap_bytes", "filter_bytes"), [
    (None, "row_folds_outer", UNIQUE, FILTER),             # row folds outer: both once
    (120 / 1024, "column_folds_outer", 3 * UNIQUE, FILTER),  # 270 + 576 < 192 + 4320
])
def test_auto_loop_order_moves_fewest_bytes(filter_kib, order, ifmap_bytes, filter_bytes):
    program = _os_program(ifmap_kib=100 / 1024, filter_kib=filter_kib, loop_order="auto")
    assert program.loop_order == order
    assert program.dram_read_bytes[:2].tolist() == [ifmap_bytes, filter_bytes]


def test_streaming_cuts_folds_into_chunks_that_fit_half_the_buffer():
    program = _os_program(ifmap_kib=40 / 1024)
    assert program.units > program.folds
    assert program.load[:, 0].max() <= 20
    assert program.unit_cycles.sum() == 48 * (27 + 2 * 4 + 4 - 2)


def _ws_program(**memory):
    layer = Layer(name="g", op="gemm", in_channels=12, out_channels=6, batch=20)
    timing = fold_timing(layer.gemm, 4, 4, "ws", "native", 12)
    return plan_layer(layer, 4, 4, "ws", timing.fold_cycles, MemoryConfig(**memory))


def test_ws_partial_sums_stay_or_spill():
    # GEMM 20x12x6 on 4x4 WS: 3 row folds (K), 2 column folds (N); a column fold's output
    # tile is 20 x 4 partial sums.
    resident = _ws_program(partial_sum_bits=32)
    assert resident.reuse["ofmap"] == "resident"
    assert resident.dram_write_bytes.tolist() == [20 * 6, 0]
    # 20 x 4 x 4 bytes = 320 > 256: spilled after each of the first two row folds, read back
    # before the next.
    spill = _ws_program(partial_sum_bits=32, ofmap_kib=0.25)
    assert spill.reuse["ofmap"] == "spill"
    psums = 2 * 20 * 6 * 4
    assert spill.dram_write_bytes.tolist() == [20 * 6, psums]
    assert spill.dram_read_bytes[2] == psums
    assert spill.out_alloc.max() <= 128


@pytest.mark.parametrize(("memory", "key"), [
    ({"filter_kib": 8 / 1024}, "filter_kib"),      # WS: a 4x4 weight tile is stationary
    ({"ofmap_kib": 4 / 1024}, "ofmap_kib"),        # the OS output tile must fit
])
def test_too_small_buffers_are_named(memory, key):
    with pytest.raises(SimulationError, match=rf"layer \w+: memory\.{key} = \d+ bytes cannot hold"):
        if key == "filter_kib":
            _ws_program(**memory)
        else:
            _os_program(**memory)


def test_fold_cycles_must_cover_every_fold():
    with pytest.raises(ValueError, match="fold cycles"):
        plan_layer(LAYER, ROWS, COLS, "os", np.ones(3, dtype=np.int64), MemoryConfig())


def test_buffers_too_small_to_stream_one_step():
    timing = fold_timing(LAYER.gemm, ROWS, COLS, "os", "native", LAYER.gemm.k)
    short = np.ones(timing.folds, dtype=np.int64)  # one cycle per fold: nothing to chunk
    with pytest.raises(SimulationError, match="too small to stream"):
        plan_layer(LAYER, ROWS, COLS, "os", short, MemoryConfig(ifmap_kib=30 / 1024))


def test_word_sizes_follow_the_layer():
    narrow = dataclasses.replace(LAYER, activation_bits=4, weight_bits=4)
    timing = fold_timing(narrow.gemm, ROWS, COLS, "os", "native", narrow.gemm.k)
    program = plan_layer(narrow, ROWS, COLS, "os", timing.fold_cycles, MemoryConfig())
    # Weight tiles of 27 x 4, 27 x 4 and 27 x 2 four-bit words, each rounded up to bytes.
    assert program.dram_read_bytes.tolist() == [math.ceil(UNIQUE / 2), 54 + 54 + 27, 0]


@pytest.mark.parametrize("convention", ["native", "scalesim"])
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_fold_cycles_sum_to_the_compute_cycles(convention, dataflow):
    timing = fold_timing(LAYER.gemm, ROWS, COLS, dataflow, convention, LAYER.gemm.k)
    cycles = timing.fold_cycles
    assert cycles.shape == (timing.folds,)
    assert int(cycles.sum()) == timing.compute_cycles + (convention == "scalesim")
