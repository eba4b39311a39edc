"""Named operands: the per-buffer and per-transfer tuples that cross module boundaries.

The memory model, the run totals and the energy model all carry one figure per buffer
(ifmap, filter, ofmap) or per DRAM transfer kind (reads: ifmap, filter, partial sums read
back; writes: final outputs, partial sums spilled). These tuples name them, so no caller
indexes ``reads[0]`` or builds an attribute name from a string (docs/memory-model.md).
They are plain tuples too: ``peak == (20, 40, 8)`` and unpacking still work.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

__all__ = ["BUFFERS", "PerBuffer", "DramReads", "DramWrites"]

T = TypeVar("T")


class PerBuffer(NamedTuple, Generic[T]):
    """One value per on-chip buffer."""

    ifmap: T
    filter: T
    ofmap: T


class DramReads(NamedTuple, Generic[T]):
    """One value per kind of DRAM read: input activations, weights, partial sums read back."""

    ifmap: T
    filter: T
    psum: T


class DramWrites(NamedTuple, Generic[T]):
    """One value per kind of DRAM write: final outputs, partial sums spilled."""

    ofmap: T
    psum: T


#: The buffer names, in the order of :class:`PerBuffer`.
BUFFERS: tuple[str, ...] = PerBuffer._fields
