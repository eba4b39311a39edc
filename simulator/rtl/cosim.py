"""Co-simulation: one GEMM group run through the RTL array with Amaranth's simulator.

The testbench plays the operand buffers: in each cycle the array's controller raises ``feed``
with ``feed_step`` and the testbench presents that step's operands of every row and column
(docs/reference-array.md: thread t of step s carries K index ``sched[t, s]``, -1 and rows or
columns beyond the GEMM carry 0). Everything else is observed, never computed: the cycles are
the cycles ``busy`` is high, the outputs are what leaves the bottom edge in the drain, and the
events are each PE's ``event`` in the cycles it holds a step (counted for PEs with a real
output position, as the reference array counts them).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth.hdl import Cat
from amaranth.sim import Simulator

from simulator.rtl.build import build_array, pe_counters, pe_decoder
from simulator.rtl.design import RtlDesign
from simulator.rtl.pe import pe_module

__all__ = ["ACTIVITY_GROUPS", "CosimResult", "FoldTrace", "activity_signals", "run_gemm",
           "run_gemms"]

#: The signal groups whose toggles ``probe_activity`` records, per PE (docs/rtl.md,
#: "Switching activity"): what the multipliers see, the step's partial sum (the accumulate
#: adder's input), the accumulator register, and the operand registers with their valid bits.
ACTIVITY_GROUPS = ("multiplier_inputs", "partial_sum", "accumulator", "operand_registers")


def activity_signals(pe) -> dict[str, list]:
    """The signals of each :data:`ACTIVITY_GROUPS` group of one PE (a datapath without
    ``multiplier_inputs`` feeds its operands to its multipliers as they are)."""
    dp = pe.datapath
    return {"multiplier_inputs": list(getattr(dp, "multiplier_inputs", [*dp.a, *dp.w])),
            "partial_sum": [pe.product], "accumulator": [pe.acc],
            "operand_registers": [*pe.a_reg, *pe.w_reg, pe.a_valid, pe.w_valid]}


@dataclasses.dataclass
class FoldTrace:
    """What one fold did in the RTL.

    Attributes
    ----------
    fold_row, fold_col : the fold's position (row-fold-major order, as the reference array).
    cycles : cycles ``busy`` was high.
    events : int (rows, cols, cycles), each PE's event index in each cycle, -1 where it held
        no step.
    products : int64 (rows, cols, cycles) of the datapath's partial sums where a step was held
        (only with ``probe_products``), else ``None``.
    out_cycle : int (rows, cols), the fold cycle in which each PE's output left the array.
    activity : the activity signals (:data:`ACTIVITY_GROUPS`, packed by
        :func:`activity_signals`) in every cycle of the fold and the cycle after it (only
        with ``probe_activity``), else ``None``.
    lanes : int (rows, cols, cycles), each PE's active lanes in each cycle, -1 where it held
        no step (bit-serial and SWIS datapaths), else ``None``.
    """

    fold_row: int
    fold_col: int
    cycles: int
    events: np.ndarray
    products: np.ndarray | None
    out_cycle: np.ndarray
    activity: list[int] | None = None
    lanes: np.ndarray | None = None


@dataclasses.dataclass
class CosimResult:
    """One GEMM group through the RTL: outputs, counted cycles, events, per-fold traces.

    ``counters`` are the PE-steps by event, or, for a PE type whose module decodes its
    events (SPARQ, A4W8: an event is the pair of its two products' classes), the decoded
    step counters; ``stats`` are then the decoded product stats.
    """

    outputs: np.ndarray
    cycles: int
    fold_cycles: list[int]
    counters: dict[str, int]
    folds: list[FoldTrace]
    #: with ``probe_activity``: per PE (row-major), per activity group, the bit mask of its
    #: signals in ``FoldTrace.activity``'s packed values
    activity_masks: list[dict[str, int]] | None = None
    #: events counted beside ``event``: ``active_lanes`` of bit-serial and SWIS datapaths
    stats: dict[str, int] = dataclasses.field(default_factory=dict)


def _step_operands(A: np.ndarray, B: np.ndarray, sched: np.ndarray, threads: int, m0: int,
                   n0: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Operands of every step of one fold: acts (S, rows, threads), wgts (S, cols, threads)."""
    n_m, n_n = A.shape[0], B.shape[1]
    t_used, steps = sched.shape
    acts = np.zeros((steps, rows, threads), np.int64)
    wgts = np.zeros((steps, cols, threads), np.int64)
    a_rows = A[m0:min(m0 + rows, n_m)]
    b_cols = B[:, n0:min(n0 + cols, n_n)]
    for t in range(t_used):
        k = sched[t]
        fed = k >= 0
        acts[fed, :a_rows.shape[0], t] = a_rows[:, k[fed]].T
        wgts[fed, :b_cols.shape[1], t] = b_cols[k[fed], :]
    return acts, wgts


def _packer(signals: list, values_shape: tuple[int, ...]):
    """Write a whole array of integers into a list of signals with one ``Cat`` assignment."""
    widths = [s.shape().width for s in signals]
    shifts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(object)
    masks = [(1 << w) - 1 for w in widths]
    target = Cat(*signals)

    def value(flat: np.ndarray) -> int:
        total = 0
        for v, sh, mask in zip(flat.tolist(), shifts, masks):
            total |= (v & mask) << sh
        return total

    return target, value


def run_gemm(design: RtlDesign, A: np.ndarray, B: np.ndarray, sched: np.ndarray, *,
             probe_products: bool = False, only_fold: int | None = None) -> CosimResult:
    """Run ``A (M, Kd) . B (Kd, N)`` through the design's array, fold after fold.

    Parameters
    ----------
    design : the design (its ``rows`` x ``cols`` array).
    A, B : int64 operands (activations in the design's signedness, weights signed 8-bit).
    sched : int64 (T, S) thread schedule, T <= ``design.threads`` (unused slots carry 0).
    probe_products : also record every PE's partial sum in every cycle (slower).
    only_fold : run only this fold (its index in row-fold-major order).
    """
    return run_gemms(design, [(A, B, sched)], probe_products=probe_products,
                     only_fold=only_fold)[0]


def run_gemms(design: RtlDesign, jobs: list, *, probe_products: bool = False,
              only_fold: int | None = None, probe_activity: bool = False
              ) -> list[CosimResult]:
    """:func:`run_gemm` for several GEMMs, one after the other in one simulation (building
    the simulator costs more than a small GEMM's cycles). ``probe_activity`` records the
    activity signals in every cycle (``FoldTrace.activity``).

    A job is ``(A, B, sched)``, or a :class:`simulator.rtl.streams.SerialStream` for a
    bit-serial or SWIS design (its expanded operands, a schedule per column fold, encoded
    into the PE's ports by the PE module's ``encode``; outputs in the stream's column
    order).
    """
    names = pe_counters(design)
    decode = pe_decoder(design)
    scale_of = getattr(pe_module(design.pe_type), "scale_of", None)
    array = build_array(design)
    probes = _Probes(design, array, probe_activity)
    encode = getattr(pe_module(design.pe_type), "encode", None)
    results = []

    async def bench(ctx):
        for job in jobs:
            A, B, sched_of, enc = _job(job, encode, design)
            scale = None if array.scale is None else scale_of(design, A)
            if scale is not None:  # the configuration register, set per GEMM group
                ctx.set(array.scale, scale)
            result = CosimResult(np.zeros((A.shape[0], B.shape[1]), np.int64), 0, [],
                                 {n: 0 for n in names}, [],
                                 stats={"active_lanes": 0} if probes.lanes is not None else {},
                                 activity_masks=probes.masks)
            folds = _fold_list(A.shape[0], B.shape[1], design.rows, design.cols)
            if only_fold is not None:
                folds = [folds[only_fold]]
            for fold in folds:
                await _run_fold(ctx, design, array, probes, A, B, sched_of(fold[1]), fold,
                                result, probe_products, enc, 1 << (scale or 0))
            if decode is not None:
                result.counters, result.stats = decode(result.counters)
            results.append(result)

    sim = Simulator(array)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def _job(job, encode, design: RtlDesign):
    """(A, B, the schedule of a column fold, the port encoder or None) of one job."""
    if isinstance(job, tuple):
        A, B, sched = job
        return A, B, lambda col_fold: sched, None
    if encode is None:
        raise ValueError(f"a {design.pe_type} design takes (A, B, sched) jobs, not streams")
    return job.acts, job.wgts, job.schedule, lambda acts, wgts: encode(design, acts, wgts, job)


def _fold_list(m: int, n: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """Folds (row fold, column fold) in the reference array's order, row-fold-major."""
    return [(fr, fc) for fr in range(-(-m // rows)) for fc in range(-(-n // cols))]


class _Probes:
    """The signals the testbench writes and reads, packed so that each is one access."""

    def __init__(self, design: RtlDesign, array, activity: bool = False) -> None:
        self.pes = [pe for row in array.pes for pe in row]
        self.acts, self.pack_a = _packer([s for row in array.act_in for s in row], ())
        self.wgts, self.pack_w = _packer([s for col in array.wgt_in for s in col], ())
        self.valid = Cat(*(pe.valid for pe in self.pes))
        self.events = Cat(*(pe.event for pe in self.pes))
        self.activity, self.masks = None, None
        if activity:
            # PE-major, then group, then signal: the layout activity_signals() gives
            signals, self.masks, offset = [], [], 0
            for pe in self.pes:
                masks = {}
                for group, members in activity_signals(pe).items():
                    width = sum(len(s) for s in members)
                    masks[group] = ((1 << width) - 1) << offset
                    offset += width
                    signals += members
                self.masks.append(masks)
            self.activity = Cat(*signals)
        lanes = [getattr(pe.datapath, "lanes", None) for pe in self.pes]
        self.lanes = Cat(*lanes) if all(v is not None for v in lanes) else None
        self.lane_bits = lanes[0].shape().width if self.lanes is not None else 0
        self.event_bits = len(self.pes[0].event)


async def _run_fold(ctx, design: RtlDesign, array, probes: _Probes, A, B, sched, fold,
                    result: CosimResult, probe_products: bool, encode=None,
                    weight: int = 1) -> None:
    """Feed one fold, clock it until ``busy`` falls, collect its outputs and events (and
    the active lanes of a datapath that counts them; ``weight``: the output scale, which
    probed partial sums are multiplied by)."""
    rows, cols, threads = design.rows, design.cols, design.threads
    n_m, n_n, steps = A.shape[0], B.shape[1], sched.shape[1]
    fr, fc = fold
    m0, n0 = fr * rows, fc * cols
    acts, wgts = _step_operands(A, B, sched, max(threads, sched.shape[0]), m0, n0, rows,
                                cols)
    if encode is not None:
        acts, wgts = encode(acts, wgts)
    packed_a = [probes.pack_a(acts[s].ravel()) for s in range(steps)]
    packed_w = [probes.pack_w(wgts[s].ravel()) for s in range(steps)]
    real = np.zeros((rows, cols), bool)
    real[:max(0, min(rows, n_m - m0)), :max(0, min(cols, n_n - n0))] = True
    trace_ev, trace_pr, trace_ln = [], [], []
    out_cycle = np.full((rows, cols), -1, np.int64)
    trace_act = [] if probes.activity is not None else None
    ctx.set(array.steps, steps)
    ctx.set(array.start, 1)
    ctx.set(probes.acts, packed_a[0])
    ctx.set(probes.wgts, packed_w[0])
    await ctx.tick()
    ctx.set(array.start, 0)
    cycle = 0
    n_pes = rows * cols
    bits = probes.event_bits
    mask = (1 << bits) - 1
    while ctx.get(array.busy):
        if ctx.get(array.feed):
            s = ctx.get(array.feed_step)
            ctx.set(probes.acts, packed_a[s])
            ctx.set(probes.wgts, packed_w[s])
        else:
            ctx.set(probes.acts, 0)
            ctx.set(probes.wgts, 0)
        valid = ctx.get(probes.valid)
        ev = [-1] * n_pes
        if valid:
            events = ctx.get(probes.events)
            for p in range(n_pes):
                if valid >> p & 1:
                    ev[p] = events >> (bits * p) & mask
        if probes.lanes is not None:
            trace_ln.append(_lanes(ctx.get(probes.lanes) if valid else 0, valid,
                                   probes.lane_bits, n_pes))
        if probe_products:
            trace_pr.append([ctx.get(pe.product) * weight if valid >> p & 1 else 0
                             for p, pe in enumerate(probes.pes)])
        if trace_act is not None:
            trace_act.append(ctx.get(probes.activity))
        trace_ev.append(ev)
        if ctx.get(array.out_valid):
            r = ctx.get(array.out_row)
            for j in range(cols):
                out_cycle[r, j] = cycle
                if m0 + r < n_m and n0 + j < n_n:
                    result.outputs[m0 + r, n0 + j] = ctx.get(array.out[j])
        cycle += 1
        await ctx.tick()
    if trace_act is not None:  # the registers' state after the fold's last cycle
        trace_act.append(ctx.get(probes.activity))
    events = np.array(trace_ev, np.int64).T.reshape(rows, cols, cycle)
    counted = events[real]
    for index, name in enumerate(result.counters):
        result.counters[name] += int(np.count_nonzero(counted == index))
    products = (np.array(trace_pr, np.int64).T.reshape(rows, cols, cycle)
                if probe_products else None)
    lanes = None
    if probes.lanes is not None:
        lanes = np.array(trace_ln, np.int64).T.reshape(rows, cols, cycle)
        result.stats["active_lanes"] += int(lanes[real][lanes[real] > 0].sum())
    result.folds.append(FoldTrace(fr, fc, cycle, events, products, out_cycle, lanes=lanes,
                                  activity=trace_act))
    result.fold_cycles.append(cycle)
    result.cycles += cycle


def _lanes(packed: int, pes: int, width: int, n_pes: int) -> list[int]:
    """Each PE's ``width``-bit lane count, -1 for the PEs not set in ``pes``."""
    mask = (1 << width) - 1
    return [packed >> (width * p) & mask if pes >> p & 1 else -1 for p in range(n_pes)]
