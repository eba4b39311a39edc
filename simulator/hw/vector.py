"""The vector unit beside the array: cycles and operation counts of a vector layer
(docs/transformers.md, "The vector unit").

A vector op (softmax, norms, activations, residual adds, rotary embeddings, pooling) has a
*recipe*: how many of each primitive (add, mul, max, shift, exp, div, rsqrt) it performs per
element, and per row (``row_<primitive>``: a norm's reciprocal square root). The unit has
``lanes`` lanes that each complete one primitive of ``cycles.<primitive>`` vector cycles at a
time, so with

    work = items * sum_p count_p * cycles_p + rows * sum_p row_count_p * cycles_p

(``items``: the layer's elements; pooling: its output elements times the window),

    vector cycles = ceil(work / lanes),   array cycles = ceil(vector cycles / clock_ratio).

``clock_ratio`` is the vector clock over the array clock, taken as the decimal it is written
as (0.1 is exactly 1/10); every cycle count sasim reports is in array cycles.
"""

from __future__ import annotations

import math

from simulator.config.arch import VECTOR_PRIMITIVES, VectorConfig
from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["VectorCost", "vector_cost", "work_items", "row_count"]


@record
class VectorCost:
    """A vector layer on the vector unit.

    Attributes
    ----------
    items, rows : the elements (pooling: window elements) and rows the recipe runs over.
    operations : primitive -> operations performed (per-element and per-row together).
    work : lane-cycles of the layer (vector clock).
    vector_cycles : ceil(work / lanes), in vector cycles.
    cycles : the same in array cycles (ceil(vector_cycles / clock_ratio)).
    """

    items: int
    rows: int
    operations: dict[str, int]
    work: int
    vector_cycles: int
    cycles: int


def work_items(layer: Layer) -> int:
    """Elements the per-element recipe runs over: the input's elements, or for pooling every
    output element times its window (``global_avgpool``: the whole plane)."""
    if layer.op == "global_avgpool":
        return layer.elements
    if layer.op in ("maxpool", "avgpool"):
        r, s = layer.kernel_size
        return layer.output_elements * r * s
    return layer.elements


def row_count(layer: Layer) -> int:
    """Rows the per-row recipe runs over: ``batch * heads * tokens``, pooling: its outputs."""
    if layer.op in ("maxpool", "avgpool", "global_avgpool"):
        return layer.output_elements
    return layer.rows


def vector_cost(layer: Layer, vector: VectorConfig) -> VectorCost:
    """Cycles and operations of vector layer ``layer`` on the unit ``vector``."""
    recipe = vector.recipe(layer.op)
    items, rows = work_items(layer), row_count(layer)
    operations = {p: 0 for p in VECTOR_PRIMITIVES}
    work = 0
    for key, count in recipe.items():
        primitive = key.removeprefix("row_")
        # counts may be fractional (an amortised recipe): round each primitive's total up
        done = math.ceil((rows if key.startswith("row_") else items) * count)
        operations[primitive] += done
        work += done * getattr(vector.cycles, primitive)
    vector_cycles = -(-work // vector.lanes)
    # the ratio as the decimal the user wrote (0.1 is 1/10, not the nearest binary float);
    # fractions (and decimal) load only when a layer needs the vector unit
    from fractions import Fraction

    cycles = math.ceil(Fraction(vector_cycles) / Fraction(repr(vector.clock_ratio)))
    return VectorCost(items=items, rows=rows, operations=operations, work=work,
                      vector_cycles=vector_cycles, cycles=cycles)
