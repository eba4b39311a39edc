"""A vector layer's tile program: its inputs stream in through the ifmap buffer, its outputs
out through the ofmap buffer, over the same DRAM channel as the array's (docs/transformers.md,
"The vector unit").

The layer's elements are cut into units of near-equal size: at least :data:`MIN_UNITS` (so
that transfers overlap the unit's compute, as a streaming unit's do), and more when a unit's
inputs would not fit half the ifmap buffer or its outputs half the ofmap buffer (so the next
unit's can be loaded meanwhile). Each unit loads its share of the input bytes (both inputs of
an ``add``/``mul``), computes its share of the cycles, frees its inputs and stores its
outputs. The program runs on the engine like an array layer's (:func:`run_layer`).
"""

from __future__ import annotations

import numpy as np

from simulator.config.arch import MemoryConfig
from simulator.errors import SimulationError
from simulator.memory.plan import LOAD_COLUMNS, STORE_COLUMNS, TileProgram, buffer_bytes
from simulator.operands import PerBuffer
from simulator.workloads.layers import Layer

__all__ = ["MIN_UNITS", "MAX_UNITS", "plan_vector_layer", "vector_bytes"]

#: Fewest units a vector layer is cut into (fewer when it has fewer elements).
MIN_UNITS = 16
#: Most units of one vector layer (the engine's events are per unit).
MAX_UNITS = 1 << 20


def vector_bytes(layer: Layer, memory: MemoryConfig) -> tuple[int, int]:
    """Bytes a vector layer reads (all its inputs) and writes (its output)."""
    out_bits = memory.output_bits or layer.activation_bits
    read = -(-layer.input_operands * layer.elements * layer.activation_bits // 8)
    return read, -(-layer.output_elements * out_bits // 8)


def _split(total: int, parts: int) -> np.ndarray:
    index = np.arange(parts, dtype=np.int64)
    return (index + 1) * total // parts - index * total // parts


def plan_vector_layer(layer: Layer, cycles: int, memory: MemoryConfig) -> TileProgram:
    """The tile program of a vector layer that computes for ``cycles`` array cycles."""
    read, write = vector_bytes(layer, memory)
    capacity = PerBuffer(buffer_bytes(memory.ifmap_kib), buffer_bytes(memory.filter_kib),
                         buffer_bytes(memory.ofmap_kib))
    units = min(MIN_UNITS, max(layer.elements, 1))
    for need, room, key in ((read, capacity.ifmap, "ifmap_kib"),
                            (write, capacity.ofmap, "ofmap_kib")):
        if room is not None:
            half = max(room // 2, 1) if memory.double_buffering else room
            units = max(units, -(-need // half))
            if units > min(MAX_UNITS, max(layer.elements, 1)):
                raise SimulationError(
                    f"layer {layer.name}: memory.{key} = {room} bytes is too small for the "
                    f"vector unit to stream {need:,} bytes in at most {MAX_UNITS:,} pieces")
    unit_cycles = _split(cycles, units)
    load = np.zeros((units, len(LOAD_COLUMNS)), dtype=np.int64)
    load[:, LOAD_COLUMNS.index("ifmap")] = _split(read, units)
    release = np.zeros((units, 2), dtype=np.int64)
    release[:, 0] = load[:, LOAD_COLUMNS.index("ifmap")]
    store = np.zeros((units, len(STORE_COLUMNS)), dtype=np.int64)
    out = _split(write, units)
    store[:, STORE_COLUMNS.index("ofmap")] = out
    look_ahead = 2 if memory.double_buffering else 1
    load_after = np.maximum(np.arange(units, dtype=np.int64) - look_ahead, -1)
    reuse = "group" if units == min(MIN_UNITS, max(layer.elements, 1)) else "stream"
    return TileProgram(
        name=layer.name, unit_cycles=unit_cycles, unit_fold=np.arange(units, dtype=np.int64),
        load=load, load_after=load_after, release=release, out_alloc=out.copy(),
        loader_claims_outputs=False, store=store, store_free=out.copy(), capacity=capacity,
        double_buffering=memory.double_buffering, folds=units,
        loop_order="column_folds_outer",
        reuse={"ifmap": reuse, "filter": "group", "ofmap": "fold"},
        buffer_reads=PerBuffer(read, 0, write), buffer_writes=PerBuffer(read, 0, write))
