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
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np

from simulator.config.arch import MemoryConfig
from simulator.errors import SimulationError
from simulator.memory.footprint import Footprint
from simulator.workloads.layers import Layer

__all__ = ["Reuse", "TileProgram", "plan_layer", "buffer_bytes"]

Reuse = Literal["group", "window", "outer", "fold", "stream", "resident", "spill"]
LoopOrder = Literal["column_folds_outer", "row_folds_outer"]


def buffer_bytes(kib: float | None) -> int | None:
    """A buffer size in KiB as whole bytes (``None`` stays unbounded)."""
    return None if kib is None else int(kib * 1024)


def _ceil_div(a, b):
    return -(-a // b)


def _bytes(elements, bits: int):
    """Bytes of ``elements`` words of ``bits`` bits, packed, rounded up per transfer."""
    return _ceil_div(np.asarray(elements, dtype=np.int64) * bits, 8)


@dataclasses.dataclass(frozen=True)
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
    load : int64 (U, 3) bytes loaded for the unit: ifmap, filter, partial sums (read back).
    load_after : int64 (U,) unit whose end the unit's loads wait for (-1: the layer start).
    release : int64 (U, 2) ifmap and filter bytes freed when the unit ends.
    out_alloc : int64 (U,) output-buffer bytes the unit claims.
    loader_claims_outputs : the loader claims ``out_alloc`` with the unit's loads (partial
        sums are read back into it); otherwise the array claims it when the unit starts.
    store : int64 (U, 2) bytes written back after the unit: final outputs, partial sums.
    store_free : int64 (U,) output-buffer bytes freed when that store completes.
    capacity : bytes of the ifmap, filter and ofmap buffers (``None``: unbounded).
    double_buffering : see :class:`~simulator.config.arch.MemoryConfig`.
    folds : number of folds.
    loop_order : the fold loop order used.
    reuse : the reuse decision per buffer (``ifmap``, ``filter``, ``ofmap``).
    buffer_reads, buffer_writes : bytes the array and the DRAM side read from / write to
        each buffer over the layer (ifmap, filter, ofmap).
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
    capacity: tuple[int | None, int | None, int | None]
    double_buffering: bool
    folds: int
    loop_order: LoopOrder
    reuse: dict[str, Reuse]
    buffer_reads: tuple[int, int, int]
    buffer_writes: tuple[int, int, int]

    @property
    def units(self) -> int:
        return len(self.unit_cycles)

    @property
    def dram_read_bytes(self) -> np.ndarray:
        """Bytes read from DRAM: ifmap, filter, partial sums."""
        return self.load.sum(axis=0)

    @property
    def dram_write_bytes(self) -> np.ndarray:
        """Bytes written to DRAM: final outputs, partial sums."""
        return self.store.sum(axis=0)


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


def _split(total: np.ndarray, parts: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Share ``index`` of ``total`` cut into ``parts`` near-equal integer shares."""
    return (index + 1) * total // parts - index * total // parts


def plan_layer(layer: Layer, rows: int, cols: int, dataflow: str, fold_cycles: np.ndarray,
               memory: MemoryConfig) -> TileProgram:
    """The tile program of ``layer`` on a ``rows`` x ``cols`` array.

    Parameters
    ----------
    fold_cycles : int64 (folds,) compute cycles of each fold in the timing layer's canonical
        order (group, column fold, row fold) — see :func:`simulator.hw.timing.fold_cycles`.
        They may differ from fold to fold (data-dependent PEs).
    memory : the buffers, double buffering, loop order and word sizes.

    Raises
    ------
    SimulationError : when a buffer cannot hold what a fold needs at once (a stationary
        tile, one output tile, or a streamed chunk of one step).
    ValueError : when ``fold_cycles`` does not have one entry per fold.
    """
    operands = _operands(layer, rows, cols, dataflow)
    if memory.loop_order != "auto":
        return _plan(layer, rows, cols, dataflow, fold_cycles, memory, memory.loop_order,
                     operands)
    plans, errors = [], []
    for order in ("column_folds_outer", "row_folds_outer"):
        try:
            plans.append(_plan(layer, rows, cols, dataflow, fold_cycles, memory, order,
                               operands))
        except SimulationError as exc:
            errors.append(exc)
    if not plans:
        raise errors[0]
    # Fewest DRAM bytes; on a tie the first (SCALE-Sim's order).
    return min(plans, key=lambda p: int(p.dram_read_bytes.sum() + p.dram_write_bytes.sum()))


def _operands(layer: Layer, rows: int, cols: int, dataflow: str) -> tuple[_Operand, _Operand]:
    """The two input operands' tiles, per dataflow (docs/memory-model.md, "Tiles")."""
    footprint = Footprint(layer)
    gemm = layer.gemm
    m, k, n = gemm.m, gemm.k, gemm.n
    a_bits, w_bits = layer.activation_bits, layer.weight_bits
    sr, sc = {"os": (m, n), "ws": (k, n), "is": (k, m)}[dataflow]
    rf, cf = _ceil_div(sr, rows), _ceil_div(sc, cols)
    r_used = np.minimum(rows, sr - rows * np.arange(rf, dtype=np.int64))
    c_used = np.minimum(cols, sc - cols * np.arange(cf, dtype=np.int64))
    r0 = rows * np.arange(rf, dtype=np.int64)
    c0 = cols * np.arange(cf, dtype=np.int64)
    grid = np.zeros((rf, cf), dtype=np.int64)
    if dataflow == "os":
        def os_tiles() -> np.ndarray:
            return grid + _bytes([footprint.elements(int(a), int(a + u), 0, k)
                                  for a, u in zip(r0, r_used)], a_bits)[:, None]

        if layer.op == "conv2d":
            cg = layer.in_channels // layer.groups
            slices = [(int(a), int(a + u)) for a, u in zip(r0, r_used)]
            first = np.asarray(footprint.first_reads(slices), dtype=np.int64) * cg
            ifmap_first = _increments(first, a_bits)

            def window() -> tuple[np.ndarray, np.ndarray, int]:
                last = np.asarray(footprint.first_reads(slices[::-1])[::-1],
                                  dtype=np.int64) * cg
                last_bytes = _increments(last, a_bits)
                live = (np.cumsum(ifmap_first)
                        - np.concatenate([[0], np.cumsum(last_bytes)[:-1]]))
                return ifmap_first, last_bytes, int(live.max())
        else:
            # A GEMM's rows do not overlap: each row fold's tile is new.
            ifmap_first = _increments(r_used * k, a_bits)
            window = None
        ifmap = _Operand("ifmap", "r", False, os_tiles, int(ifmap_first.sum()),
                         grid + np.where(c0 == 0, 1, 0)[None, :] * ifmap_first[:, None],
                         window)
        f_tile = _bytes(k * c_used, w_bits)
        filt = _Operand("filter", "c", False, grid + f_tile[None, :], int(f_tile.sum()),
                        grid + np.where(r0 == 0, 1, 0)[:, None] * f_tile[None, :])
    elif dataflow == "ws":
        def ws_tiles() -> np.ndarray:
            return grid + _bytes([footprint.elements(0, m, int(a), int(a + u))
                                  for a, u in zip(r0, r_used)], a_bits)[:, None]

        whole = int(_bytes(footprint.elements(0, m, 0, k), a_bits))
        ifmap = _Operand("ifmap", "r", False, ws_tiles, whole,
                         _whole_at_first_fold(grid, whole))
        f_tile = _bytes(r_used[:, None] * c_used[None, :], w_bits)
        filt = _Operand("filter", "rc", True, f_tile, int(f_tile.sum()), f_tile)
    else:
        def is_tiles() -> np.ndarray:
            return _bytes([[footprint.elements(int(b), int(b + v), int(a), int(a + u))
                            for b, v in zip(c0, c_used)] for a, u in zip(r0, r_used)],
                          a_bits).reshape(rf, cf)

        whole = int(_bytes(footprint.elements(0, m, 0, k), a_bits))
        ifmap = _Operand("ifmap", "rc", True, is_tiles, whole,
                         _whole_at_first_fold(grid, whole))
        f_tile = _bytes(r_used * n, w_bits)
        filt = _Operand("filter", "r", False, grid + f_tile[:, None], int(f_tile.sum()),
                        grid + np.where(c0 == 0, 1, 0)[None, :] * f_tile[:, None])

    return ifmap, filt


def _plan(layer: Layer, rows: int, cols: int, dataflow: str, fold_cycles: np.ndarray,
          memory: MemoryConfig, loop_order: LoopOrder,
          operands: tuple[_Operand, _Operand]) -> TileProgram:
    gemm = layer.gemm
    m, k, n, groups = gemm.m, gemm.k, gemm.n, gemm.groups
    a_bits, w_bits = layer.activation_bits, layer.weight_bits
    o_bits = memory.output_bits or layer.activation_bits
    p_bits = memory.partial_sum_bits
    sr, sc, t_len = {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[dataflow]
    rf, cf = _ceil_div(sr, rows), _ceil_div(sc, cols)
    folds = groups * rf * cf
    fold_cycles = np.asarray(fold_cycles, dtype=np.int64)
    if fold_cycles.shape != (folds,):
        raise ValueError(f"layer {layer.name}: expected {folds} fold cycles, "
                         f"got shape {fold_cycles.shape}")
    r_used = np.minimum(rows, sr - rows * np.arange(rf, dtype=np.int64))
    c_used = np.minimum(cols, sc - cols * np.arange(cf, dtype=np.int64))
    grid = np.zeros((rf, cf), dtype=np.int64)
    ifmap, filt = operands
    cap = tuple(buffer_bytes(v) for v in (memory.ifmap_kib, memory.filter_kib, memory.ofmap_kib))

    col_outer = loop_order == "column_folds_outer"
    outer_dim = "c" if col_outer else "r"
    reuse: dict[str, Reuse] = {}
    for index, operand in enumerate((ifmap, filt)):
        reuse[operand.name] = _choose_reuse(operand, cap[index], outer_dim, layer,
                                            ("ifmap_kib", "filter_kib")[index])

    # Folds in loop order, with their (row fold, column fold) and group.
    f = np.arange(folds, dtype=np.int64)
    n_outer, n_inner = (cf, rf) if col_outer else (rf, cf)
    g_of = f // (n_outer * n_inner)
    o_of = (f // n_inner) % n_outer
    i_of = f % n_inner
    r_of, c_of = (i_of, o_of) if col_outer else (o_of, i_of)
    canonical = (g_of * cf + c_of) * rf + r_of
    cycles = fold_cycles[canonical]
    group_last = (o_of == n_outer - 1) & (i_of == n_inner - 1)

    # Per fold: bytes loaded whole before the fold, released after it, or streamed through it.
    load_fold = np.zeros((folds, 2), dtype=np.int64)
    release_fold = np.zeros((folds, 2), dtype=np.int64)
    stream = np.zeros((folds, 2), dtype=np.int64)
    for index, operand in enumerate((ifmap, filt)):
        policy = reuse[operand.name]
        if policy in ("outer", "fold", "stream"):
            tile = operand.tile[r_of, c_of]
        if policy == "group":
            load_fold[:, index] = operand.first_visit[r_of, c_of]
            per_group = load_fold[:, index].reshape(groups, -1).sum(axis=1)
            release_fold[:, index] = np.where(group_last, per_group[g_of], 0)
        elif policy == "window":
            # A row fold's new pixels arrive at its first fold of the pass; pixels no later
            # row fold reads leave after its last fold of the pass.
            first_bytes, last_bytes, _ = operand.window
            first_of_pass = (i_of == 0) if not col_outer else np.ones(folds, dtype=bool)
            last_of_pass = (i_of == n_inner - 1) if not col_outer else first_of_pass
            load_fold[:, index] = np.where(first_of_pass, first_bytes[r_of], 0)
            release_fold[:, index] = np.where(last_of_pass, last_bytes[r_of], 0)
        elif policy == "outer":
            load_fold[:, index] = np.where(i_of == 0, tile, 0)
            release_fold[:, index] = np.where(i_of == n_inner - 1, tile, 0)
        elif policy == "fold":
            load_fold[:, index] = tile
            release_fold[:, index] = tile
        else:
            stream[:, index] = tile

    # Outputs: final per fold (OS), or a column fold's tile accumulated over the row folds.
    final_tile = _bytes((r_used[:, None] * c_used[None, :] if dataflow == "os"
                         else t_len * (grid + c_used[None, :])), o_bits)[r_of, c_of]
    psum_tile = _bytes(t_len * c_used, p_bits)[c_of]
    if dataflow == "os":
        out_reuse: Reuse = "fold"
        if cap[2] is not None and int(final_tile.max()) > cap[2]:
            raise _too_small(layer, "ofmap_kib", cap[2], int(final_tile.max()), "one output tile")
    else:
        fits = (int(psum_tile.max()) if col_outer
                else int(_bytes(t_len * c_used, p_bits).sum()))
        out_reuse = "resident" if cap[2] is None or fits <= cap[2] else "spill"
    reuse["ofmap"] = out_reuse

    # Chunks per fold: enough that every streamed slice fits in half its buffer.
    chunks = np.ones(folds, dtype=np.int64)
    budgets = [(stream[:, i], cap[i], ("ifmap_kib", "filter_kib")[i]) for i in range(2)]
    if out_reuse == "spill":
        budgets.append((psum_tile, cap[2], "ofmap_kib"))
    for streamed, capacity, key in budgets:
        if capacity is None or not streamed.any():
            continue
        half = capacity // 2
        if half == 0:
            raise _too_small(layer, key, capacity, int(streamed.max()), "a streamed chunk")
        chunks = np.maximum(chunks, _ceil_div(streamed, half))
    crowded = chunks > np.maximum(cycles, 1)
    if crowded.any():
        bad = int(np.argmax(crowded))
        raise SimulationError(
            f"layer {layer.name}: the buffers are too small to stream a fold: it would need "
            f"{int(chunks[bad])} chunks but computes for only {int(cycles[bad])} cycles "
            f"(raise memory.ifmap_kib / filter_kib / ofmap_kib)")

    # Units: the chunks of every fold, in loop order.
    units = int(chunks.sum())
    unit_fold = np.repeat(f, chunks)
    start = np.cumsum(chunks) - chunks
    j = np.arange(units, dtype=np.int64) - start[unit_fold]
    parts = chunks[unit_fold]
    first_chunk, last_chunk = j == 0, j == parts - 1
    unit_cycles = _split(cycles[unit_fold], parts, j)
    load = np.zeros((units, 3), dtype=np.int64)
    release = np.zeros((units, 2), dtype=np.int64)
    for index in range(2):
        sliced = _split(stream[unit_fold, index], parts, j)
        load[:, index] = sliced + np.where(first_chunk, load_fold[unit_fold, index], 0)
        release[:, index] = sliced + np.where(last_chunk, release_fold[unit_fold, index], 0)
    store = np.zeros((units, 2), dtype=np.int64)
    u_r = r_of[unit_fold]
    if dataflow == "os":
        out_alloc = np.where(last_chunk, final_tile[unit_fold], 0)
        store[:, 0] = out_alloc
        store_free = out_alloc.copy()
    elif out_reuse == "resident":
        out_alloc = np.where(first_chunk & (u_r == 0), psum_tile[unit_fold], 0)
        done = last_chunk & (u_r == rf - 1)
        store[:, 0] = np.where(done, final_tile[unit_fold], 0)
        store_free = np.where(done, psum_tile[unit_fold], 0)
    else:
        slice_psum = _split(psum_tile[unit_fold], parts, j)
        out_alloc = slice_psum
        load[:, 2] = np.where(u_r > 0, slice_psum, 0)
        store[:, 0] = np.where(u_r == rf - 1, _split(final_tile[unit_fold], parts, j), 0)
        store[:, 1] = np.where(u_r < rf - 1, slice_psum, 0)
        store_free = slice_psum
    look_ahead = 2 if memory.double_buffering else 1
    load_after = np.maximum(np.arange(units, dtype=np.int64) - look_ahead, -1)

    # Buffer traffic: the array reads every operand element of every fold at its edge.
    u_rows, u_cols = r_used[r_of], c_used[c_of]
    if dataflow == "os":
        edge = (u_rows * k, k * u_cols, u_rows * u_cols)
    elif dataflow == "ws":
        edge = (m * u_rows, u_rows * u_cols, m * u_cols)
    else:
        edge = (u_cols * u_rows, u_rows * n, n * u_cols)
    ifmap_reads = int(_bytes(int(edge[0].sum()), a_bits))
    filter_reads = int(_bytes(int(edge[1].sum()), w_bits))
    dram_reads, dram_writes = load.sum(axis=0), store.sum(axis=0)
    if dataflow == "os":
        out_writes = int(final_tile.sum())
        out_reads = int(dram_writes.sum())
    else:
        out_writes = int(_bytes(int(edge[2].sum()), p_bits)) + int(dram_reads[2])
        accumulate = int(_bytes(int(edge[2][r_of > 0].sum()), p_bits))
        out_reads = accumulate + int(dram_writes.sum())
    return TileProgram(
        name=layer.name, unit_cycles=unit_cycles, unit_fold=unit_fold, load=load,
        load_after=load_after, release=release, out_alloc=out_alloc,
        loader_claims_outputs=out_reuse == "spill", store=store, store_free=store_free,
        capacity=cap, double_buffering=memory.double_buffering, folds=folds,
        loop_order=loop_order, reuse=reuse,
        buffer_reads=(ifmap_reads, filter_reads, out_reads),
        buffer_writes=(int(dram_reads[0]), int(dram_reads[1]), out_writes))


def _increments(elements: np.ndarray, bits: int) -> np.ndarray:
    """Bytes of successive element counts, rounded on the running total (so they add up)."""
    total = _bytes(np.cumsum(elements), bits)
    return np.diff(np.concatenate([[0], total]))


def _whole_at_first_fold(grid: np.ndarray, whole: int) -> np.ndarray:
    """The whole operand loaded at the (0, 0) fold of each group (WS/IS inputs)."""
    out = grid.copy()
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
