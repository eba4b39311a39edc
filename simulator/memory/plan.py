"""From a layer's folds to a tile program: which bytes move when, and where they stay.

The array runs a layer's folds (docs/hardware-spec.md §2, docs/timing-model.md) in a loop nest
``group -> outer fold index -> inner fold index``; ``memory.loop_order`` says whether column
folds (SCALE-Sim's order) or row folds are outer, or (``auto``) picks per layer the order
that moves fewer DRAM bytes. Each fold needs a tile of each operand; a tile that does not fit
its buffer is *streamed* through it, and then the fold is cut into chunks along its streamed
dimension. A *unit* is one chunk of one fold (a fold that streams
nothing is one unit); units are what the engine schedules.

Reuse follows from buffer capacity, decided per operand and layer (docs/memory-model.md):

``group``   every tile of the group fits at once: each byte is loaded once per group.
``window``  (OS conv inputs) a sliding window over the input: each row fold loads only the
            input pixels the previous row folds of the pass did not, and frees the pixels no
            later row fold reads (a line buffer); it needs room for the live window only.
``outer``   the operand depends only on the outer fold index and one tile fits: the tile is
            loaded once per outer iteration and reused across the inner loop.
``fold``    one tile fits: loaded whole before each fold, released after it.
``stream``  one tile does not fit: loaded chunk by chunk, each chunk at most half the buffer
            (so the next chunk can be loaded while this one is used).

Outputs: in the OS dataflow each fold's outputs are final and written back after the fold.
In WS/IS the output tile of a column fold accumulates over the row folds; it stays in the
output buffer (``resident``) when it fits, otherwise its partial sums are written to DRAM after
each chunk and read back before the next row fold's matching chunk (``spill``).

:func:`plan_layer` works in named steps: the operands' tiles (:func:`_inputs`, one builder per
dataflow), the fold order (:func:`_fold_order`), the input reuse and its loads
(:func:`_input_loads`), the output policy (:func:`_output_policy`), the chunking
(:func:`_chunk_counts`), the units (:func:`_units`) and the buffer traffic
(:func:`_buffer_traffic`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Literal, NamedTuple

import numpy as np

from simulator.config.arch import MemoryConfig
from simulator.errors import SimulationError
from simulator.memory.footprint import Footprint
from simulator.operands import DramReads, DramWrites, PerBuffer
from simulator.records import record
from simulator.workloads.dataflow import ArrayMapping, array_mapping
from simulator.workloads.layers import Layer

__all__ = ["LOAD_COLUMNS", "STORE_COLUMNS", "Reuse", "TileProgram", "plan_layer",
           "buffer_bytes"]

Reuse = Literal["group", "window", "outer", "fold", "stream", "resident", "spill"]
LoopOrder = Literal["column_folds_outer", "row_folds_outer"]

#: The columns of ``TileProgram.load`` (and of the planner's per-fold input arrays, whose
#: first two columns are the input operands): the kinds of DRAM read.
LOAD_COLUMNS: tuple[str, ...] = DramReads._fields
#: The columns of ``TileProgram.store``: the kinds of DRAM write.
STORE_COLUMNS: tuple[str, ...] = DramWrites._fields
_IFMAP, _FILTER, _PSUM_IN = (LOAD_COLUMNS.index(n) for n in ("ifmap", "filter", "psum"))
_OFMAP, _PSUM_OUT = (STORE_COLUMNS.index(n) for n in ("ofmap", "psum"))


def buffer_bytes(kib: float | None) -> int | None:
    """A buffer size in KiB as whole bytes (``None`` stays unbounded)."""
    return None if kib is None else int(kib * 1024)


def _ceil_div(a, b):
    return -(-a // b)


def _bytes(elements, bits: int | Fraction):
    """Bytes of ``elements`` words of ``bits`` bits, packed, rounded up per transfer
    (``bits`` a fraction: an operand's stored bits per value, docs/memory-model.md,
    "Compressed operands")."""
    elements = np.asarray(elements, dtype=np.int64)
    if not isinstance(bits, Fraction):
        return _ceil_div(elements * bits, 8)
    num, den = bits.numerator, 8 * bits.denominator
    if elements.size and int(np.abs(elements).max()) * num < 1 << 62:
        return _ceil_div(elements * num, den)
    exact = [-(-int(e) * num // den) for e in elements.ravel()]  # beyond int64: Python ints
    return np.asarray(exact, dtype=np.int64).reshape(elements.shape)


#: Stored bits per value of the operands the buffers hold compressed (``ifmap``,
#: ``filter``), by name; an operand not named is held as words.
StoredBits = Mapping[str, Fraction]


def _operand_bits(layer: Layer, name: str, stored: StoredBits | None) -> int | Fraction:
    """Bits one value of input operand ``name`` takes in DRAM and its buffer."""
    if stored is not None and name in stored:
        return stored[name]
    return layer.activation_bits if name == "ifmap" else layer.weight_bits


@record
class TileProgram:
    """The static schedule of one layer: units in execution order and the bytes they move.

    Unit arrays have one entry per unit. Loads for unit u are transferred by the loader
    before u starts; ``load_after[u]`` is the unit that must end before they may begin (u - 2
    with double buffering: one unit of look-ahead; u - 1 without). A store after unit u
    writes its outputs back once u has ended. Buffer space is claimed when a load begins (or,
    for outputs, when the unit that produces them starts) and given back when the unit that
    last uses it ends (or when the store that drains it completes).

    Attributes
    ----------
    name : the layer's name.
    unit_cycles : int64 (U,) compute cycles of each unit; they sum to the layer's fold cycles.
    unit_fold : int64 (U,) the fold (in loop order) each unit belongs to.
    load : int64 (U, 3) bytes loaded for the unit, columns :data:`LOAD_COLUMNS`: ifmap,
        filter, partial sums (read back).
    load_after : int64 (U,) unit whose end the unit's loads wait for (-1: the layer start).
    release : int64 (U, 2) ifmap and filter bytes freed when the unit ends.
    out_alloc : int64 (U,) output-buffer bytes the unit claims.
    loader_claims_outputs : the loader claims ``out_alloc`` with the unit's loads (partial
        sums are read back into it); otherwise the array claims it when the unit starts.
    store : int64 (U, 2) bytes written back after the unit, columns :data:`STORE_COLUMNS`:
        final outputs, partial sums.
    store_free : int64 (U,) output-buffer bytes freed when that store completes.
    capacity : bytes of the ifmap, filter and ofmap buffers (``None``: unbounded).
    double_buffering : see :class:`~simulator.config.arch.MemoryConfig`.
    folds : number of folds.
    loop_order : the fold loop order used.
    reuse : the reuse decision per buffer (``ifmap``, ``filter``, ``ofmap``).
    buffer_reads, buffer_writes : bytes the array and the DRAM side read from / write to
        each buffer over the layer.
    transfer : int64 (U, 3) bytes the unit's loads move over the DRAM channel when they
        differ from the bytes they claim on chip (coded activations, docs/memory-model.md,
        "Coded activations"); None: the same as ``load``.
    """

    name: str
    unit_cycles: np.ndarray
    unit_fold: np.ndarray
    load: np.ndarray
    load_after: np.ndarray
    release: np.ndarray
    out_alloc: np.ndarray
    loader_claims_outputs: bool
    store: np.ndarray
    store_free: np.ndarray
    capacity: PerBuffer[int | None]
    double_buffering: bool
    folds: int
    loop_order: LoopOrder
    reuse: dict[str, Reuse]
    buffer_reads: PerBuffer[int]
    buffer_writes: PerBuffer[int]
    transfer: np.ndarray | None = None

    @property
    def units(self) -> int:
        return len(self.unit_cycles)

    @property
    def channel_load(self) -> np.ndarray:
        """int64 (U, 3) bytes each unit's loads move over the DRAM channel."""
        return self.load if self.transfer is None else self.transfer

    @functools.cached_property
    def dram_read_bytes(self) -> np.ndarray:
        """Bytes read from DRAM, int64 (3,) in :data:`LOAD_COLUMNS` order (summed once:
        layers of one shape share their program)."""
        return self.channel_load.sum(axis=0)

    @functools.cached_property
    def dram_write_bytes(self) -> np.ndarray:
        """Bytes written to DRAM, int64 (2,) in :data:`STORE_COLUMNS` order."""
        return self.store.sum(axis=0)

    @functools.cached_property
    def dram_reads(self) -> DramReads[int]:
        """Bytes read from DRAM, by name."""
        return DramReads(*(int(v) for v in self.dram_read_bytes))

    @functools.cached_property
    def dram_writes(self) -> DramWrites[int]:
        """Bytes written to DRAM, by name."""
        return DramWrites(*(int(v) for v in self.dram_write_bytes))


class _Operand:
    """One input operand's tiles over the (row fold, column fold) grid.

    ``tile`` (int64 (RF, CF) bytes of each fold's tile) and ``window`` (per row fold: bytes
    first read, bytes last read, and the largest live window; OS conv inputs only) may be
    given as functions: footprints cost time and are only computed when a reuse decision
    needs them.
    """

    def __init__(self, name: str, dep: str, stationary: bool, tile, group: int,
                 first_visit: np.ndarray, window=None) -> None:
        self.name = name
        self.dep = dep                  # fold indices the tile depends on: "r", "c" or "rc"
        self.stationary = stationary    # held in the array for a whole fold: cannot stream
        self.group = group              # distinct bytes of the operand per group
        self.first_visit = first_visit  # (RF, CF) bytes loaded at a tile's first use
        self._tile, self._window = tile, window

    @functools.cached_property
    def tile(self) -> np.ndarray:
        return self._tile() if callable(self._tile) else self._tile

    @functools.cached_property
    def window(self) -> tuple[np.ndarray, np.ndarray, int] | None:
        return self._window() if callable(self._window) else self._window


class _Inputs(NamedTuple):
    """The two input operands (columns ``_IFMAP`` and ``_FILTER`` of the load arrays)."""

    ifmap: _Operand
    filter: _Operand


@record
class _Grid:
    """The (row fold, column fold) grid of one group on a ``rows`` x ``cols`` array.

    ``row_used``/``col_used`` (int64 (RF,)/(CF,)): array rows/columns each fold uses;
    ``row_start``/``col_start``: its first index along the mapped GEMM dimension.
    """

    row_folds: int
    col_folds: int
    row_used: np.ndarray
    col_used: np.ndarray
    row_start: np.ndarray
    col_start: np.ndarray

    def zeros(self) -> np.ndarray:
        return np.zeros((self.row_folds, self.col_folds), dtype=np.int64)


def _grid(mapping: ArrayMapping, rows: int, cols: int) -> _Grid:
    rf, cf = _ceil_div(mapping.rows, rows), _ceil_div(mapping.cols, cols)
    r0 = rows * np.arange(rf, dtype=np.int64)
    c0 = cols * np.arange(cf, dtype=np.int64)
    return _Grid(rf, cf, np.minimum(rows, mapping.rows - r0), np.minimum(cols, mapping.cols - c0),
                 r0, c0)


def _split(total: np.ndarray, parts: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Share ``index`` of ``total`` cut into ``parts`` near-equal integer shares."""
    return (index + 1) * total // parts - index * total // parts


def plan_layer(layer: Layer, rows: int, cols: int, dataflow: str, fold_cycles: np.ndarray,
               memory: MemoryConfig, stored: StoredBits | None = None) -> TileProgram:
    """The tile program of ``layer`` on a ``rows`` x ``cols`` array.

    Parameters
    ----------
    fold_cycles : int64 (folds,) compute cycles of each fold in the timing layer's canonical
        order (group, column fold, row fold) — ``FoldTiming.fold_cycles`` of
        :func:`simulator.hw.timing.fold_timing`. They may differ from fold to fold
        (data-dependent PEs).
    memory : the buffers, double buffering, loop order and word sizes.
    stored : stored bits per value of the input operands held compressed (their tiles, DRAM
        and buffer bytes scale with them; docs/memory-model.md, "Compressed operands").

    Raises
    ------
    SimulationError : when a buffer cannot hold what a fold needs at once (a stationary
        tile, one output tile, or a streamed chunk of one step).
    ValueError : when ``fold_cycles`` does not have one entry per fold.
    """
    mapping = array_mapping(layer.gemm, dataflow)
    grid = _grid(mapping, rows, cols)
    inputs = _inputs(layer, mapping, grid, stored)
    if memory.loop_order != "auto":
        return _plan(layer, mapping, grid, fold_cycles, memory, memory.loop_order, inputs,
                     stored)
    plans, errors = [], []
    for order in ("column_folds_outer", "row_folds_outer"):
        try:
            plans.append(_plan(layer, mapping, grid, fold_cycles, memory, order, inputs,
                               stored))
        except SimulationError as exc:
            errors.append(exc)
    if not plans:
        raise errors[0]
    # Fewest DRAM bytes; on a tie the first (SCALE-Sim's order).
    return min(plans, key=lambda p: int(p.dram_read_bytes.sum() + p.dram_write_bytes.sum()))


# --- the input operands' tiles, one builder per dataflow (docs/memory-model.md, "Tiles") ---

def _os_inputs(layer: Layer, grid: _Grid, footprint: Footprint,
               stored: StoredBits | None) -> _Inputs:
    k = layer.gemm.k
    a_bits = _operand_bits(layer, "ifmap", stored)
    w_bits = _operand_bits(layer, "filter", stored)
    r0, r_used, c0, c_used = grid.row_start, grid.row_used, grid.col_start, grid.col_used

    def tiles() -> np.ndarray:
        return grid.zeros() + _bytes([footprint.elements(int(a), int(a + u), 0, k)
                                      for a, u in zip(r0, r_used)], a_bits)[:, None]

    window: Callable[[], tuple[np.ndarray, np.ndarray, int]] | None
    if layer.op == "conv2d":
        cg = layer.in_channels // layer.groups
        slices = [(int(a), int(a + u)) for a, u in zip(r0, r_used)]
        first = np.asarray(footprint.first_reads(slices), dtype=np.int64) * cg
        ifmap_first = _increments(first, a_bits)

        def window() -> tuple[np.ndarray, np.ndarray, int]:
            last = np.asarray(footprint.first_reads(slices[::-1])[::-1], dtype=np.int64) * cg
            last_bytes = _increments(last, a_bits)
            live = np.cumsum(ifmap_first) - np.concatenate([[0], np.cumsum(last_bytes)[:-1]])
            return ifmap_first, last_bytes, int(live.max())
    else:
        # A GEMM's rows do not overlap: each row fold's tile is new.
        ifmap_first = _increments(r_used * k, a_bits)
        window = None
    ifmap = _Operand("ifmap", "r", False, tiles, int(ifmap_first.sum()),
                     grid.zeros() + np.where(c0 == 0, 1, 0)[None, :] * ifmap_first[:, None],
                     window)
    f_tile = _bytes(k * c_used, w_bits)
    filt = _Operand("filter", "c", False, grid.zeros() + f_tile[None, :], int(f_tile.sum()),
                    grid.zeros() + np.where(r0 == 0, 1, 0)[:, None] * f_tile[None, :])
    return _Inputs(ifmap, filt)


def _ws_inputs(layer: Layer, grid: _Grid, footprint: Footprint,
               stored: StoredBits | None) -> _Inputs:
    m, k = layer.gemm.m, layer.gemm.k
    a_bits = _operand_bits(layer, "ifmap", stored)
    w_bits = _operand_bits(layer, "filter", stored)

    def tiles() -> np.ndarray:
        return grid.zeros() + _bytes([footprint.elements(0, m, int(a), int(a + u))
                                      for a, u in zip(grid.row_start, grid.row_used)],
                                     a_bits)[:, None]

    whole = int(_bytes(footprint.elements(0, m, 0, k), a_bits))
    ifmap = _Operand("ifmap", "r", False, tiles, whole, _whole_at_first_fold(grid, whole))
    f_tile = _bytes(grid.row_used[:, None] * grid.col_used[None, :], w_bits)
    filt = _Operand("filter", "rc", True, f_tile, int(f_tile.sum()), f_tile)
    return _Inputs(ifmap, filt)


def _is_inputs(layer: Layer, grid: _Grid, footprint: Footprint,
               stored: StoredBits | None) -> _Inputs:
    m, k, n = layer.gemm.m, layer.gemm.k, layer.gemm.n
    a_bits = _operand_bits(layer, "ifmap", stored)
    w_bits = _operand_bits(layer, "filter", stored)
    r0, r_used, c0, c_used = grid.row_start, grid.row_used, grid.col_start, grid.col_used

    def tiles() -> np.ndarray:
        return _bytes([[footprint.elements(int(b), int(b + v), int(a), int(a + u))
                        for b, v in zip(c0, c_used)] for a, u in zip(r0, r_used)],
                      a_bits).reshape(grid.row_folds, grid.col_folds)

    whole = int(_bytes(footprint.elements(0, m, 0, k), a_bits))
    ifmap = _Operand("ifmap", "rc", True, tiles, whole, _whole_at_first_fold(grid, whole))
    f_tile = _bytes(r_used * n, w_bits)
    filt = _Operand("filter", "r", False, grid.zeros() + f_tile[:, None], int(f_tile.sum()),
                    grid.zeros() + np.where(c0 == 0, 1, 0)[None, :] * f_tile[:, None])
    return _Inputs(ifmap, filt)


_INPUT_BUILDERS: dict[str, Callable[[Layer, _Grid, Footprint, StoredBits | None], _Inputs]] = {
    "os": _os_inputs, "ws": _ws_inputs, "is": _is_inputs}


def _inputs(layer: Layer, mapping: ArrayMapping, grid: _Grid,
            stored: StoredBits | None = None) -> _Inputs:
    """The two input operands' tiles under the layer's dataflow."""
    return _INPUT_BUILDERS[mapping.dataflow](layer, grid, Footprint(layer), stored)


# --- the steps of one plan ---

@record
class _FoldOrder:
    """Folds in loop order (int64 (folds,) arrays): their group, outer and inner index, row
    and column fold, and compute cycles; ``group_last`` marks each group's last fold."""

    col_outer: bool
    n_outer: int
    n_inner: int
    fold: np.ndarray
    group: np.ndarray
    outer: np.ndarray
    inner: np.ndarray
    row_fold: np.ndarray
    col_fold: np.ndarray
    cycles: np.ndarray
    group_last: np.ndarray

    @property
    def folds(self) -> int:
        return len(self.fold)


def _fold_order(layer: Layer, grid: _Grid, loop_order: LoopOrder,
                fold_cycles: np.ndarray) -> _FoldOrder:
    rf, cf = grid.row_folds, grid.col_folds
    folds = layer.gemm.groups * rf * cf
    fold_cycles = np.asarray(fold_cycles, dtype=np.int64)
    if fold_cycles.shape != (folds,):
        raise ValueError(f"layer {layer.name}: expected {folds} fold cycles, "
                         f"got shape {fold_cycles.shape}")
    col_outer = loop_order == "column_folds_outer"
    f = np.arange(folds, dtype=np.int64)
    n_outer, n_inner = (cf, rf) if col_outer else (rf, cf)
    g_of = f // (n_outer * n_inner)
    o_of = (f // n_inner) % n_outer
    i_of = f % n_inner
    r_of, c_of = (i_of, o_of) if col_outer else (o_of, i_of)
    canonical = (g_of * cf + c_of) * rf + r_of
    return _FoldOrder(col_outer=col_outer, n_outer=n_outer, n_inner=n_inner, fold=f,
                      group=g_of, outer=o_of, inner=i_of, row_fold=r_of, col_fold=c_of,
                      cycles=fold_cycles[canonical],
                      group_last=(o_of == n_outer - 1) & (i_of == n_inner - 1))


@record
class _InputLoads:
    """Per fold and input operand, int64 (folds, 2): bytes loaded whole before the fold,
    released after it, or streamed through it."""

    load: np.ndarray
    release: np.ndarray
    stream: np.ndarray


def _input_loads(inputs: _Inputs, reuse: dict[str, Reuse], order: _FoldOrder,
                 groups: int) -> _InputLoads:
    folds, r_of, c_of, i_of = order.folds, order.row_fold, order.col_fold, order.inner
    load = np.zeros((folds, 2), dtype=np.int64)
    release = np.zeros((folds, 2), dtype=np.int64)
    stream = np.zeros((folds, 2), dtype=np.int64)
    for column, operand in zip((_IFMAP, _FILTER), inputs):
        policy = reuse[operand.name]
        if policy in ("outer", "fold", "stream"):
            tile = operand.tile[r_of, c_of]
        if policy == "group":
            load[:, column] = operand.first_visit[r_of, c_of]
            per_group = load[:, column].reshape(groups, -1).sum(axis=1)
            release[:, column] = np.where(order.group_last, per_group[order.group], 0)
        elif policy == "window":
            # A row fold's new pixels arrive at its first fold of the pass; pixels no later
            # row fold reads leave after its last fold of the pass.
            first_bytes, last_bytes, _ = operand.window
            first_of_pass = (i_of == 0) if not order.col_outer else np.ones(folds, dtype=bool)
            last_of_pass = (i_of == order.n_inner - 1) if not order.col_outer else first_of_pass
            load[:, column] = np.where(first_of_pass, first_bytes[r_of], 0)
            release[:, column] = np.where(last_of_pass, last_bytes[r_of], 0)
        elif policy == "outer":
            load[:, column] = np.where(i_of == 0, tile, 0)
            release[:, column] = np.where(i_of == order.n_inner - 1, tile, 0)
        elif policy == "fold":
            load[:, column] = tile
            release[:, column] = tile
        else:
            stream[:, column] = tile
    return _InputLoads(load, release, stream)


@record
class _Outputs:
    """The output policy and, per fold (int64 (folds,)), the bytes of its final output tile
    and of its column fold's partial-sum tile (zero when outputs are final per fold)."""

    reuse: Reuse
    final_tile: np.ndarray
    psum_tile: np.ndarray


def _output_policy(layer: Layer, mapping: ArrayMapping, grid: _Grid, order: _FoldOrder,
                   capacity: int | None, memory: MemoryConfig) -> _Outputs:
    """Outputs: final per fold (OS), or a column fold's tile accumulated over the row folds,
    kept in the output buffer when it fits (``resident``), else spilled to DRAM."""
    o_bits = memory.output_bits or layer.activation_bits
    p_bits = memory.partial_sum_bits
    elements = (grid.zeros()
                + mapping.extent("m", grid.row_used[:, None], grid.col_used[None, :])
                * mapping.extent("n", grid.row_used[:, None], grid.col_used[None, :]))
    final_tile = _bytes(elements, o_bits)[order.row_fold, order.col_fold]
    if mapping.outputs_final_per_fold:
        if capacity is not None and int(final_tile.max()) > capacity:
            raise _too_small(layer, "ofmap_kib", capacity, int(final_tile.max()),
                             "one output tile")
        return _Outputs("fold", final_tile, np.zeros_like(final_tile))
    per_column_fold = _bytes(mapping.streamed * grid.col_used, p_bits)
    psum_tile = per_column_fold[order.col_fold]
    fits = int(psum_tile.max()) if order.col_outer else int(per_column_fold.sum())
    policy: Reuse = "resident" if capacity is None or fits <= capacity else "spill"
    return _Outputs(policy, final_tile, psum_tile)


def _chunk_counts(layer: Layer, order: _FoldOrder, loads: _InputLoads, outputs: _Outputs,
                  capacity: PerBuffer[int | None]) -> np.ndarray:
    """Chunks per fold: enough that every streamed slice fits in half its buffer."""
    chunks = np.ones(order.folds, dtype=np.int64)
    budgets = [(loads.stream[:, _IFMAP], capacity.ifmap, "ifmap_kib"),
               (loads.stream[:, _FILTER], capacity.filter, "filter_kib")]
    if outputs.reuse == "spill":
        budgets.append((outputs.psum_tile, capacity.ofmap, "ofmap_kib"))
    for streamed, size, key in budgets:
        if size is None or not streamed.any():
            continue
        half = size // 2
        if half == 0:
            raise _too_small(layer, key, size, int(streamed.max()), "a streamed chunk")
        chunks = np.maximum(chunks, _ceil_div(streamed, half))
    crowded = chunks > np.maximum(order.cycles, 1)
    if crowded.any():
        bad = int(np.argmax(crowded))
        raise SimulationError(
            f"layer {layer.name}: the buffers are too small to stream a fold: it would need "
            f"{int(chunks[bad])} chunks but computes for only {int(order.cycles[bad])} cycles "
            f"(raise memory.ifmap_kib / filter_kib / ofmap_kib)")
    return chunks


@record
class _Units:
    """The unit arrays of :class:`TileProgram`."""

    unit_fold: np.ndarray
    unit_cycles: np.ndarray
    load: np.ndarray
    release: np.ndarray
    store: np.ndarray
    out_alloc: np.ndarray
    store_free: np.ndarray
    load_after: np.ndarray


def _units(order: _FoldOrder, chunks: np.ndarray, loads: _InputLoads, outputs: _Outputs,
           row_folds: int, double_buffering: bool) -> _Units:
    """The chunks of every fold, in loop order, with the bytes each loads, frees and stores."""
    units = int(chunks.sum())
    unit_fold = np.repeat(order.fold, chunks)
    start = np.cumsum(chunks) - chunks
    j = np.arange(units, dtype=np.int64) - start[unit_fold]
    parts = chunks[unit_fold]
    first_chunk, last_chunk = j == 0, j == parts - 1
    unit_cycles = _split(order.cycles[unit_fold], parts, j)
    load = np.zeros((units, len(LOAD_COLUMNS)), dtype=np.int64)
    release = np.zeros((units, 2), dtype=np.int64)
    for column in (_IFMAP, _FILTER):
        sliced = _split(loads.stream[unit_fold, column], parts, j)
        load[:, column] = sliced + np.where(first_chunk, loads.load[unit_fold, column], 0)
        release[:, column] = sliced + np.where(last_chunk, loads.release[unit_fold, column], 0)
    store = np.zeros((units, len(STORE_COLUMNS)), dtype=np.int64)
    u_r = order.row_fold[unit_fold]
    final_tile, psum_tile = outputs.final_tile[unit_fold], outputs.psum_tile[unit_fold]
    if outputs.reuse == "fold":
        out_alloc = np.where(last_chunk, final_tile, 0)
        store[:, _OFMAP] = out_alloc
        store_free = out_alloc.copy()
    elif outputs.reuse == "resident":
        out_alloc = np.where(first_chunk & (u_r == 0), psum_tile, 0)
        done = last_chunk & (u_r == row_folds - 1)
        store[:, _OFMAP] = np.where(done, final_tile, 0)
        store_free = np.where(done, psum_tile, 0)
    else:
        slice_psum = _split(psum_tile, parts, j)
        out_alloc = slice_psum
        load[:, _PSUM_IN] = np.where(u_r > 0, slice_psum, 0)
        store[:, _OFMAP] = np.where(u_r == row_folds - 1, _split(final_tile, parts, j), 0)
        store[:, _PSUM_OUT] = np.where(u_r < row_folds - 1, slice_psum, 0)
        store_free = slice_psum
    look_ahead = 2 if double_buffering else 1
    load_after = np.maximum(np.arange(units, dtype=np.int64) - look_ahead, -1)
    return _Units(unit_fold=unit_fold, unit_cycles=unit_cycles, load=load, release=release,
                  store=store, out_alloc=out_alloc, store_free=store_free,
                  load_after=load_after)


def _buffer_traffic(layer: Layer, mapping: ArrayMapping, grid: _Grid, order: _FoldOrder,
                    outputs: _Outputs, units: _Units, memory: MemoryConfig,
                    stored: StoredBits | None = None) -> tuple[PerBuffer[int], PerBuffer[int]]:
    """Bytes read from and written to each buffer: the array reads every operand element of
    every fold at its edge; the DRAM side writes what it loads and reads what it stores."""
    u_rows, u_cols = grid.row_used[order.row_fold], grid.col_used[order.col_fold]

    def edge(first: str, second: str) -> np.ndarray:
        return (mapping.extent(first, u_rows, u_cols)
                * mapping.extent(second, u_rows, u_cols))

    p_bits = memory.partial_sum_bits
    dram_reads = DramReads(*units.load.sum(axis=0))
    dram_writes = units.store.sum(axis=0)
    ifmap_reads = int(_bytes(int(edge("m", "k").sum()), _operand_bits(layer, "ifmap", stored)))
    filter_reads = int(_bytes(int(edge("k", "n").sum()),
                              _operand_bits(layer, "filter", stored)))
    if mapping.outputs_final_per_fold:
        out_writes = int(outputs.final_tile.sum())
        out_reads = int(dram_writes.sum())
    else:
        out_edge = edge("m", "n")
        out_writes = int(_bytes(int(out_edge.sum()), p_bits)) + int(dram_reads.psum)
        accumulate = int(_bytes(int(out_edge[order.row_fold > 0].sum()), p_bits))
        out_reads = accumulate + int(dram_writes.sum())
    return (PerBuffer(ifmap_reads, filter_reads, out_reads),
            PerBuffer(int(dram_reads.ifmap), int(dram_reads.filter), out_writes))


def _plan(layer: Layer, mapping: ArrayMapping, grid: _Grid, fold_cycles: np.ndarray,
          memory: MemoryConfig, loop_order: LoopOrder, inputs: _Inputs,
          stored: StoredBits | None = None) -> TileProgram:
    """One loop order's tile program: the steps above, in order."""
    order = _fold_order(layer, grid, loop_order, fold_cycles)
    capacity = PerBuffer(buffer_bytes(memory.ifmap_kib), buffer_bytes(memory.filter_kib),
                         buffer_bytes(memory.ofmap_kib))
    outer_dim = "c" if order.col_outer else "r"
    reuse: dict[str, Reuse] = {
        "ifmap": _choose_reuse(inputs.ifmap, capacity.ifmap, outer_dim, layer, "ifmap_kib"),
        "filter": _choose_reuse(inputs.filter, capacity.filter, outer_dim, layer,
                                "filter_kib")}
    loads = _input_loads(inputs, reuse, order, layer.gemm.groups)
    outputs = _output_policy(layer, mapping, grid, order, capacity.ofmap, memory)
    reuse["ofmap"] = outputs.reuse
    chunks = _chunk_counts(layer, order, loads, outputs, capacity)
    units = _units(order, chunks, loads, outputs, grid.row_folds, memory.double_buffering)
    reads, writes = _buffer_traffic(layer, mapping, grid, order, outputs, units, memory,
                                    stored)
    return TileProgram(
        name=layer.name, unit_cycles=units.unit_cycles, unit_fold=units.unit_fold,
        load=units.load, load_after=units.load_after, release=units.release,
        out_alloc=units.out_alloc, loader_claims_outputs=outputs.reuse == "spill",
        store=units.store, store_free=units.store_free, capacity=capacity,
        double_buffering=memory.double_buffering, folds=order.folds, loop_order=loop_order,
        reuse=reuse, buffer_reads=reads, buffer_writes=writes)


def _increments(elements: np.ndarray, bits: int) -> np.ndarray:
    """Bytes of successive element counts, rounded on the running total (so they add up)."""
    total = _bytes(np.cumsum(elements), bits)
    return np.diff(np.concatenate([[0], total]))


def _whole_at_first_fold(grid: _Grid, whole: int) -> np.ndarray:
    """The whole operand loaded at the (0, 0) fold of each group (WS/IS inputs)."""
    out = grid.zeros()
    out[0, 0] = whole
    return out


def _choose_reuse(operand: _Operand, capacity: int | None, outer_dim: str, layer: Layer,
                  key: str) -> Reuse:
    if capacity is None or operand.group <= capacity:
        return "group"
    if operand.window is not None and operand.window[2] <= capacity:
        return "window"
    largest = int(operand.tile.max())
    if operand.dep == outer_dim and largest <= capacity:
        return "outer"
    if largest <= capacity:
        return "fold"
    if operand.stationary:
        raise _too_small(layer, key, capacity, largest, f"the stationary {operand.name} tile")
    return "stream"


def _too_small(layer: Layer, key: str, capacity: int, needed: int, what: str) -> SimulationError:
    return SimulationError(
        f"layer {layer.name}: memory.{key} = {capacity} bytes cannot hold {what} "
        f"({needed} bytes = {needed / 1024:g} KiB)")
