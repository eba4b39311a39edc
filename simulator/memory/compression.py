"""Compressed operands in the memory traffic (docs/memory-model.md, "Compressed operands").

Every compression scheme answers one question through one interface: the stored size of an
operand tensor of a layer, a :class:`~simulator.operands.StoredSize`. Its ``in_buffers``
flag says where the decoder sits:

- ``in_buffers``: the buffer holds the stored form and the array edge decodes it (SWIS
  weights, 2:4 weights, zero-compressed activations). The layer is planned with the
  operand's stored bits per value (:func:`stored_bits`), so tiles, reuse decisions, claims,
  DRAM and buffer bytes all shrink (or grow) with it.
- otherwise a decoder sits between the DRAM channel and the buffer, which holds words (the
  transform codec, docs/transform-coding.md): only the channel's bytes change
  (:func:`channel_program`).

A layer's final outputs are compressed on their way to DRAM in the format of the input of
the next array layer (its consumer), at that input's stored bits per value.

The size functions here take the real values: :func:`bitmask_bytes` and :func:`rle_bytes`
for activations (docs/memory-model.md gives the formats); the PE types give their own
weight formats (``PEModel.stored_weights``: SWIS, docs/hardware-spec.md §5; SPARQ's 2:4
mode, §7).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from simulator.config.arch import CompressionConfig
from simulator.errors import SimulationError
from simulator.memory.plan import LOAD_COLUMNS, STORE_COLUMNS, TileProgram
from simulator.operands import StoredSize
from simulator.records import record
from simulator.workloads.layers import Layer, LayerTensors

__all__ = ["ACTIVATION_FORMATS", "LayerStorage", "RunCompression", "activation_size",
           "bitmask_bytes", "channel_program", "compression_report", "rle_bytes",
           "rle_entries", "scan_order", "stored_bits", "weight_size"]

#: Zero-compression formats of ``memory.compression.activations`` (besides ``none``).
ACTIVATION_FORMATS = ("bitmask", "rle")


def scan_order(x: np.ndarray) -> np.ndarray:
    """A layer input as the flat sequence it is stored in: pixel by pixel, each pixel's
    channels in order (NCHW -> N, H, W, C); any other shape in C order."""
    x = np.asarray(x)
    if x.ndim == 4:
        return x.transpose(0, 2, 3, 1).ravel()
    return x.ravel()


def _padded(bits: int, burst_bytes: int) -> int:
    """Bytes of a ``bits``-bit stream padded to whole bursts."""
    nbytes = -(-bits // 8)
    return -(-nbytes // burst_bytes) * burst_bytes


def bitmask_bytes(x: np.ndarray, value_bits: int, burst_bytes: int) -> int:
    """Bitmask format: one bit per value (1: non-zero), then the non-zero values at
    ``value_bits`` each; the stream padded to whole bursts."""
    x = np.asarray(x)
    return _padded(x.size + int(np.count_nonzero(x)) * value_bits, burst_bytes)


def rle_entries(x: np.ndarray, run_bits: int) -> int:
    """Entries of the zero-run format of ``x`` in :func:`scan_order`.

    An entry (z, v) stands for z zeros followed by the value v, z < 2**run_bits. A non-zero
    value after L zeros takes ``L // 2**run_bits`` filler entries (2**run_bits - 1, 0), each
    standing for 2**run_bits zeros, then (L mod 2**run_bits, v). The T zeros after the last
    non-zero value take ``ceil(T / 2**run_bits)`` entries (z, 0).
    """
    flat = scan_order(x)
    span = 1 << run_bits
    where = np.flatnonzero(flat)
    if where.size == 0:
        return -(-flat.size // span)
    gaps = np.diff(np.concatenate([[-1], where])) - 1
    trailing = flat.size - 1 - int(where[-1])
    return int(where.size + (gaps // span).sum() + -(-trailing // span))


def rle_bytes(x: np.ndarray, value_bits: int, run_bits: int, word_bits: int,
              burst_bytes: int) -> int:
    """Zero-run format: :func:`rle_entries` entries of ``run_bits + value_bits`` bits, as many
    as fit whole in a ``word_bits`` word (none straddles two), the words padded to whole
    bursts.

    Raises
    ------
    ValueError
        When one entry does not fit a word.
    """
    per_word = word_bits // (run_bits + value_bits)
    if per_word == 0:
        raise ValueError(f"an entry of run_bits {run_bits} + {value_bits}-bit value does not "
                         f"fit a word of word_bits {word_bits}")
    words = -(-rle_entries(x, run_bits) // per_word)
    return _padded(words * word_bits, burst_bytes)


def activation_size(x: np.ndarray, layer: Layer, options: CompressionConfig,
                    source: str) -> StoredSize | None:
    """The stored size of layer input ``x`` in ``options.activations``' format; None when it
    is off or the format would not shrink the input (then it is stored as words: one format
    flag per tensor)."""
    if options.activations == "none":
        return None
    bits = layer.activation_bits
    if options.activations == "bitmask":
        stored = bitmask_bytes(x, bits, options.burst_bytes)
    else:
        stored = rle_bytes(x, bits, options.run_bits, options.word_bits, options.burst_bytes)
    size = StoredSize(scheme=options.activations, values=int(np.size(x)), value_bits=bits,
                      stored_bytes=stored, in_buffers=True, source=source)
    return size if size.stored_bytes < size.raw_bytes else None


def weight_size(scheme: str, bits: int, layer: Layer, source: str) -> StoredSize:
    """The stored size of a layer's weights that its PE stores in ``bits`` bits (padded to
    whole bytes)."""
    gemm = layer.gemm
    return StoredSize(scheme=scheme, values=gemm.groups * gemm.k * gemm.n,
                      value_bits=layer.weight_bits, stored_bytes=-(-bits // 8), in_buffers=True,
                      source=source)


def stored_bits(size: StoredSize) -> Fraction:
    """Stored bits per value as an exact fraction (what the planner sizes tiles with)."""
    return Fraction(8 * size.stored_bytes, max(1, size.values))


@record
class LayerStorage:
    """How one layer's operands are stored.

    Attributes
    ----------
    ifmap : the layer's input (None: words).
    filter : its weights (None: words).
    ofmap : the input of the next array layer, the format its outputs are written in (None:
        words).
    """

    ifmap: StoredSize | None
    filter: StoredSize | None
    ofmap: StoredSize | None

    def planned(self) -> dict[str, Fraction]:
        """The stored bits per value of the operands the buffers hold compressed."""
        return {name: stored_bits(size) for name, size in (("ifmap", self.ifmap),
                                                           ("filter", self.filter))
                if size is not None and size.in_buffers}


def _scaled(column: np.ndarray, ratio: float) -> np.ndarray:
    """Per-unit bytes scaled by ``ratio``, rounded on the running total (they add up)."""
    total = np.ceil(np.cumsum(column, dtype=np.float64) * ratio - 1e-9).astype(np.int64)
    return np.diff(np.concatenate([[0], total]))


def channel_program(program: TileProgram, read_ratio: float | None, once_bytes: int,
                    write_ratio: float | None) -> TileProgram:
    """``program`` with the DRAM channel moving stored sizes where a decoder or encoder sits
    between the channel and a buffer of words: the ifmap loads move ``read_ratio`` of their
    bytes and the first unit's loads also ``once_bytes`` (tables); the final-output
    write-backs move ``write_ratio`` of theirs (None: unchanged). Claims, frees and buffer
    traffic are unchanged (docs/memory-model.md, "Compressed operands")."""
    ifmap, ofmap = LOAD_COLUMNS.index("ifmap"), STORE_COLUMNS.index("ofmap")
    transfer, store = program.channel_load.copy(), program.store.copy()
    if read_ratio is not None and program.units:
        transfer[:, ifmap] = _scaled(transfer[:, ifmap], read_ratio)
        transfer[0, ifmap] += once_bytes
    if write_ratio is not None and program.units:
        store[:, ofmap] = _scaled(store[:, ofmap], write_ratio)
    return dataclasses.replace(program, transfer=transfer, store=store)


def stored_program(program: TileProgram, storage: LayerStorage,
                   output_bits: int) -> TileProgram:
    """A program planned with ``storage.planned()`` with its outputs written compressed (at
    the consumer's stored bits per value over ``output_bits``)."""
    if storage.ofmap is None:
        return program
    return channel_program(program, None, 0, storage.ofmap.bits_per_value / output_bits)


def _describe(size: StoredSize | None) -> dict[str, int | float | str] | None:
    if size is None:
        return None
    return {"scheme": size.scheme, "values": size.values,
            "stored_bits_per_value": size.bits_per_value, "value_bits": size.value_bits,
            "stored_bytes": size.stored_bytes, "raw_bytes": size.raw_bytes,
            "source": size.source}


def compression_report(storage: LayerStorage, program: TileProgram,
                       output_bits: int) -> dict[str, object]:
    """The layer's ``compression`` report: per operand its format and stored bits per value,
    and the DRAM bytes its transfers moved against the same transfers as words."""
    reads, writes = program.dram_reads, program.dram_writes
    moved = raw = 0
    for nbytes, size, word_ratio in (
            (reads.ifmap, storage.ifmap, None), (reads.filter, storage.filter, None),
            (writes.ofmap, storage.ofmap,
             None if storage.ofmap is None else storage.ofmap.bits_per_value / output_bits)):
        if size is None:
            continue
        ratio = word_ratio if word_ratio is not None else size.ratio
        moved += nbytes
        raw += round(nbytes / ratio) if ratio else nbytes
    out: dict[str, object] = {}
    for name, size in (("ifmap", storage.ifmap), ("filter", storage.filter),
                       ("ofmap", storage.ofmap)):
        out[name] = _describe(size)
        out[f"{name}_bits_per_value"] = None if size is None else size.bits_per_value
    out.update(dram_compressed_bytes=moved, dram_raw_bytes=raw, dram_bytes_saved=raw - moved)
    return out


class RunCompression:
    """The stored sizes of a run's operands, computed when first asked for (a layer's
    write-back is stored in its consumer's input format, so layer L asks for L+1 too).

    Parameters
    ----------
    layers : the workload's layers in order.
    tensors : a layer's data by name.
    options : the arch's ``memory.compression``.
    weights : the PE's weight format and its stored bits for a layer (None: words), given
        the layer and its data (``PEModel.stored_weights``).
    source : ``trace`` or ``synthetic`` (where the data comes from).
    """

    def __init__(self, layers: Sequence[Layer], tensors: Callable[[str], LayerTensors],
                 options: CompressionConfig,
                 weights: Callable[[Layer, LayerTensors], tuple[str, int] | None] | None,
                 source: str) -> None:
        self.options = options
        self._tensors, self._weights, self._source = tensors, weights, source
        gemm = [layer for layer in layers if layer.is_gemm]
        self._layers = {layer.name: layer for layer in gemm}
        self._consumer = {a.name: b.name for a, b in zip(gemm, gemm[1:])}
        self._inputs: dict[str, StoredSize | None] = {}

    def input(self, name: str, tensors: LayerTensors | None = None) -> StoredSize | None:
        """The stored size of array layer ``name``'s input (None: words); ``tensors``: its
        data when the caller has it loaded."""
        if self.options.activations == "none" or name not in self._layers:
            return None
        if name not in self._inputs:
            layer = self._layers[name]
            data = tensors if tensors is not None else self._tensors(name)
            try:
                size = activation_size(data.input, layer, self.options, self._source)
            except ValueError as exc:
                raise SimulationError(f"layer '{name}': memory.compression: {exc}") from None
            # layers ask in order (L, then L + 1): the newest one is all that is needed again
            for old in list(self._inputs)[:-1]:
                del self._inputs[old]
            self._inputs[name] = size
        return self._inputs[name]

    def layer(self, layer: Layer, tensors: LayerTensors | None = None) -> LayerStorage:
        """How ``layer``'s operands are stored (``tensors``: its data when the caller has it
        loaded; otherwise it is loaded here)."""
        weights = None
        if self._weights is not None:
            if tensors is None:
                tensors = self._tensors(layer.name)
            try:
                stored = self._weights(layer, tensors)
            except ValueError as exc:
                raise SimulationError(f"layer '{layer.name}': memory.compression.weights: "
                                      f"{exc}") from None
            if stored is not None:
                weights = weight_size(*stored, layer, self._source)
        consumer = self._consumer.get(layer.name)
        return LayerStorage(ifmap=self.input(layer.name, tensors), filter=weights,
                            ofmap=None if consumer is None else self.input(consumer))

