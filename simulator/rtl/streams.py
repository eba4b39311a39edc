"""Bit-serial operand streams: what the array edges of a bit-serial or SWIS design feed
(docs/rtl.md, "Bit-serial and SWIS"; docs/hardware-spec.md §5-6).

A bit-serial PE consumes one bit position of a group of G lanes per cycle. The edge buffers
hold the serial operand already in its serial form, computed by sasim in software: the
p-bit codes of a bit-serial operand (its rounding to p bits, docs/hardware-spec.md §6), or
the SWIS decomposition of the weights (per weight a mask of N bits and a sign, per group the
N shared positions, §5). This module lays that form out as the steps the edges present,
in the encoding of the register-level reference array's ``bitserial`` rule
(docs/reference-array.md): an expanded K index (q, r, t) is lane t < G of slot r of group q,
and t = G carries the slot's bit position (-1: no position, the PE waits in lock step).
Lane values of the serial operand are signed bits in {-1, 0, 1}.

The same expanded operands run the reference array and the RTL array, so both see exactly
the bits the PE model's functional model multiplies. Nothing here imports Amaranth or numba.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["SerialStream", "bitserial_stream", "swis_stream", "stream_for"]


@record
class SerialStream:
    """One GEMM group laid out as bit-serial steps.

    Attributes
    ----------
    acts : int64 (M, K'), the expanded activations.
    wgts : int64 (K', N), the expanded weights; column j is filter ``order[j]``.
    sched : int64 (G + 1, S), the expanded index of each lane and step, the same in every
        fold; or (C, G + 1, S), one per column fold (-1 after the fold's last step).
    fold_steps : int64 (C,), the steps of each column fold (with a 3-D ``sched``), else None.
    order : int64 (N,), the filter in each column (the SWIS scheduler's order).
    serial : ``"weight"`` or ``"activation"``, the operand fed one bit per cycle.
    signed : the serial operand is two's complement (its bit at position 7 weighs
        -2^7); else every position weighs +2^s, and SWIS's lanes carry their own sign.
    rule : the reference-array rule that runs the expanded operands (set by
        :func:`stream_for`, from the PE model).
    """

    acts: np.ndarray
    wgts: np.ndarray
    sched: np.ndarray
    fold_steps: np.ndarray | None
    order: np.ndarray
    serial: str
    signed: bool
    rule: str | None = None

    def schedule(self, col_fold: int) -> np.ndarray:
        """The (G + 1, S_c) schedule of one column fold."""
        if self.sched.ndim == 2:
            return self.sched
        return self.sched[col_fold][:, :int(self.fold_steps[col_fold])]

    def unpermute(self, outputs: np.ndarray) -> np.ndarray:
        """Outputs (M, N) in the columns' order back in filter order."""
        out = np.empty_like(outputs)
        out[:, self.order] = outputs
        return out


def _padded(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return np.pad(x, pad)


def _signed_bits(codes: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """(bits, ...) signed bits of p-bit codes, LSB first; the top bit of a two's complement
    code is -1 when set."""
    planes = np.stack([(codes >> j) & 1 for j in range(bits)]).astype(np.int64)
    if signed:
        planes[bits - 1] = -planes[bits - 1]
    return planes


def bitserial_stream(a: np.ndarray, b: np.ndarray, bits: int, serial: str, group: int,
                     act_signed: bool) -> SerialStream:
    """The stream of a p-bit serial operand: per K group, p steps, bit j (LSB first) at
    position ``8 - p + j`` (docs/hardware-spec.md §6).

    Parameters
    ----------
    a, b : int64 (M, Kd) and (Kd, N), the GEMM's operands.
    bits : p.
    serial : ``"weight"`` or ``"activation"``.
    group : G, lanes per PE.
    act_signed : the activations are two's complement (activation-serial only).
    """
    from simulator.hw.pe.bitserial import quantize_to_bits, serial_codes

    m_rows, kd = a.shape
    n_cols = b.shape[1]
    q_groups = -(-kd // group)
    a_pad = _padded(a.astype(np.int64), 1, q_groups * group).reshape(m_rows, q_groups, group)
    b_pad = _padded(b.astype(np.int64), 0, q_groups * group).reshape(q_groups, group, n_cols)
    acts = np.zeros((m_rows, q_groups, bits, group + 1), np.int64)
    wgts = np.zeros((q_groups, bits, group + 1, n_cols), np.int64)
    signed = True if serial == "weight" else act_signed
    if serial == "weight":
        planes = _signed_bits(serial_codes(quantize_to_bits(b_pad, bits, True), bits), bits,
                              True)  # (bits, Q, G, N)
        acts[:, :, :, :group] = a_pad[:, :, None, :]
        wgts[:, :, :group, :] = planes.transpose(1, 0, 2, 3)
    else:
        planes = _signed_bits(serial_codes(quantize_to_bits(a_pad, bits, signed), bits), bits,
                              signed)  # (bits, M, Q, G)
        acts[:, :, :, :group] = planes.transpose(1, 2, 0, 3)
        wgts[:, :, :group, :] = b_pad[:, None, :, :]
    wgts[:, :, group, :] = (8 - bits + np.arange(bits))[None, :, None]
    steps = q_groups * bits
    sched = np.arange(steps * (group + 1), dtype=np.int64).reshape(steps, group + 1).T
    return SerialStream(acts.reshape(m_rows, -1), wgts.reshape(-1, n_cols), sched, None,
                        np.arange(n_cols, dtype=np.int64), serial, signed)


def swis_stream(a: np.ndarray, approx: np.ndarray, masks: np.ndarray, shifts: np.ndarray,
                order: np.ndarray, group: int, cols: int) -> SerialStream:
    """The stream of SWIS-decomposed weights (docs/hardware-spec.md §5).

    Group q of filter f is processed in ``shifts[q, f]`` steps, one per shared position
    (ascending); lane t's bit is the bit of ``|approx|`` at that position, signed with the
    weight. In a column fold every group step lasts the largest N of the fold's filters;
    a filter with fewer positions gets position -1 (it waits).

    Parameters
    ----------
    a : int64 (M, Kd), the activations.
    approx, masks, shifts : the decomposition (``simulator.hw.pe.swis.Decomposition``).
    order : int64 (F,), the filter order of the column folds.
    group : G.
    cols : array columns.
    """
    m_rows, kd = a.shape
    n_f = approx.shape[1]
    q_groups = masks.shape[0]
    slots = int(shifts.max())
    positions = np.full((q_groups, n_f, slots), -1, np.int64)
    for q in range(q_groups):
        for f in range(n_f):
            found = [s for s in range(8) if int(masks[q, f]) >> s & 1]
            positions[q, f, :len(found)] = found
    positions = positions[:, order]                                  # (Q, N, slots)
    w = _padded(np.asarray(approx, np.int64)[:, order], 0, q_groups * group)
    w = w.reshape(q_groups, group, n_f)
    mags, negative = np.abs(w), w < 0
    wgts = np.zeros((q_groups, slots, group + 1, n_f), np.int64)
    for r in range(slots):
        pos = positions[:, :, r]                                     # (Q, N)
        bit = (mags >> np.maximum(pos, 0)[:, None, :]) & 1
        bit = np.where((pos >= 0)[:, None, :], bit, 0)
        wgts[:, r, :group, :] = np.where(negative, -bit, bit)
        wgts[:, r, group, :] = pos
    a_pad = _padded(a.astype(np.int64), 1, q_groups * group).reshape(m_rows, q_groups, group)
    acts = np.zeros((m_rows, q_groups, slots, group + 1), np.int64)
    acts[:, :, :, :group] = a_pad[:, :, None, :]
    base = (np.arange(q_groups)[:, None] * slots + np.arange(slots)[None, :]) * (group + 1)
    scheds, fold_steps = [], []
    for start in range(0, n_f, cols):
        longest = shifts[:, order[start:start + cols]].max(axis=1)    # (Q,)
        rows = [base[q, r] + np.arange(group + 1) for q in range(q_groups)
                for r in range(int(longest[q]))]
        scheds.append(np.array(rows, np.int64).T)
        fold_steps.append(len(rows))
    sched = np.full((len(scheds), group + 1, max(fold_steps)), -1, np.int64)
    for c, s in enumerate(scheds):
        sched[c, :, :s.shape[1]] = s
    return SerialStream(acts.reshape(m_rows, -1), wgts.reshape(-1, n_f), sched,
                        np.array(fold_steps, np.int64), np.asarray(order, np.int64),
                        "weight", False)


#: The stream builder of each kind of :class:`simulator.hw.pe.registry.SerialOperands`.
_BUILDERS = {"bits": bitserial_stream, "positions": swis_stream}


def stream_for(pe, layer: Layer, a: np.ndarray, b: np.ndarray) -> SerialStream | None:
    """The stream of one GEMM group on sasim's PE ``pe`` (None for a word-parallel PE).

    The serial form comes from the PE model itself (``serial_operands``): bit-serial's
    rounding of the serial operand, SWIS's (cached) decomposition and filter order, and
    SWIS's plain 8-bit bit-serial run of a matmul's dynamic right operand.
    """
    operands = pe.serial_operands(layer, a, b)
    if operands is None:
        return None
    if operands.kind not in _BUILDERS:
        raise ValueError(f"PE type {pe.type_name!r}: serial operands of kind "
                         f"{operands.kind!r}; the RTL builds {', '.join(_BUILDERS)}")
    stream = _BUILDERS[operands.kind](**operands.args)
    return dataclasses.replace(stream, rule=operands.rule)
