"""Named operands: the per-buffer and per-transfer tuples that cross module boundaries.

The memory model, the run totals and the energy model all carry one figure per buffer
(ifmap, filter, ofmap) or per DRAM transfer kind (reads: ifmap, filter, partial sums read
back; writes: final outputs, partial sums spilled). These tuples name them, so no caller
indexes ``reads[0]`` or builds an attribute name from a string (docs/memory-model.md).
They are plain tuples too: ``peak == (20, 40, 8)`` and unpacking still work.
"""

from __future__ import annotations

import math
from typing import Generic, NamedTuple, TypeVar

from simulator.records import record

__all__ = ["BUFFERS", "PerBuffer", "DramReads", "DramWrites", "StoredSize"]

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


@record
class StoredSize:
    """How one operand tensor of one layer is stored in DRAM: the one interface every
    compression scheme answers through (docs/memory-model.md, "Compressed operands").

    Attributes
    ----------
    scheme : the format (``swis``, ``stc``, ``bitmask``, ``rle``, ``transform_coding``).
    values : values of the tensor.
    value_bits : bits of one value as an uncompressed word.
    stored_bytes : bytes of the whole tensor as stored, metadata and padding included.
    in_buffers : the buffers hold the stored form too (decoded at the array edge);
        otherwise a decoder sits between the channel and the buffer, which holds words.
    once_bytes : bytes loaded once per layer besides the tensor (code tables).
    source : where the size comes from: ``trace`` (the workload's data) or ``synthetic``
        (synthetic data for a shape-only workload).
    """

    scheme: str
    values: int
    value_bits: int
    stored_bytes: int
    in_buffers: bool
    once_bytes: int = 0
    source: str = "trace"

    @property
    def raw_bytes(self) -> int:
        """Bytes of the tensor as packed words."""
        return math.ceil(self.values * self.value_bits / 8)

    @property
    def ratio(self) -> float:
        """Stored over raw bytes."""
        return self.stored_bytes / self.raw_bytes if self.raw_bytes else 1.0

    @property
    def bits_per_value(self) -> float:
        """Stored bits per value (padding and metadata included, ``once_bytes`` not)."""
        return 8 * self.stored_bytes / self.values if self.values else 0.0
