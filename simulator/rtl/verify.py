"""``sasim rtl verify``: the RTL against sasim, bit for bit and cycle for cycle (docs/rtl.md).

Each GEMM (a random case, or one group of a workload layer) runs three ways: through the RTL
array in Amaranth's simulator (:mod:`simulator.rtl.cosim`), through the PE model's functional
model (``simulate_gemm``, what ``sasim run`` computes) and through the register-level
reference array (docs/reference-array.md). The RTL's outputs must equal both, its cycles per
fold must equal :func:`simulator.hw.timing.fold_timing`'s in the ``native`` convention
(docs/timing-model.md), and the events it performed must equal both counters. A mismatch is
located: the first fold that differs, the PE (row, column) and the cycle.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.config.arch import ArchConfig
from simulator.errors import ConfigError, SimulationError
from simulator.hw.pe import PEModel, get_pe_model
from simulator.hw.timing import fold_timing
from simulator.rtl.design import RtlDesign, exact_acc_bits
from simulator.rtl.streams import SerialStream, stream_for
from simulator.workloads.layers import GemmShape, Layer

if TYPE_CHECKING:  # the co-simulation imports Amaranth; verify loads it when it runs
    from simulator.rtl.cosim import CosimResult

__all__ = ["GemmReport", "Mismatch", "MAX_COSIM_PES", "random_cases", "verify_gemms",
           "check_cosim_size", "workload_gemms"]

#: The largest array co-simulated (PEs): Amaranth's simulator runs a 4x4 array at a few
#: thousand cycles per second, and the time grows with the PEs (docs/rtl.md).
MAX_COSIM_PES = 256
#: The most PE-cycles one ``sasim rtl verify`` co-simulates (cycles x PEs): Amaranth's
#: simulator does about 27,000 PE-cycles a second for the dense PE and 2,000 for SySMT-4T
#: here (docs/rtl.md, "Speed"), so this is under a minute dense and about 8 minutes 4T.
MAX_COSIM_PE_CYCLES = 1_000_000


@dataclasses.dataclass
class Mismatch:
    """Where the RTL first differs from sasim."""

    what: str          # "outputs", "cycles" or "counters"
    case: str
    fold: int
    fold_row: int
    fold_col: int
    pe: tuple[int, int] | None
    cycle: int | None          # within the fold
    cycle_overall: int | None  # within the GEMM, all folds before included
    rtl: Any
    sasim: Any
    note: str = ""

    def line(self) -> str:
        """The mismatch as one line."""
        where = f"fold {self.fold} (row fold {self.fold_row}, column fold {self.fold_col})"
        if self.pe is not None:
            where += f", PE (row {self.pe[0]}, col {self.pe[1]})"
        if self.cycle is not None:
            where += f", cycle {self.cycle} of the fold ({self.cycle_overall} overall)"
        note = f"; {self.note}" if self.note else ""
        return (f"MISMATCH in {self.what} of {self.case}: {where}: RTL {self.rtl}, "
                f"sasim {self.sasim}{note}")


@dataclasses.dataclass
class GemmReport:
    """One co-simulated GEMM and its verdict."""

    case: str
    m: int
    k: int
    n: int
    threads: int
    steps: int
    folds: int
    cycles: int
    cycles_per_fold: list[int]
    counters: dict[str, int]
    seconds: float
    cropped: bool = False
    mismatch: Mismatch | None = None
    layer: str | None = None
    group: int = 0
    #: bit-serial and SWIS: the active lanes the RTL counted (``active_lanes``); SPARQ, A4W8:
    #: the product stats decoded from the RTL's events (window positions used)
    stats: dict[str, int] = dataclasses.field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-ready data: ``cycles_per_fold`` is the longest fold's (as in ``sasim run``'s
        summary), ``fold_cycles`` every fold's, in the reference array's order."""
        out = dataclasses.asdict(self)
        out["mismatch"] = None if self.mismatch is None else dataclasses.asdict(self.mismatch)
        out["fold_cycles"] = list(self.cycles_per_fold)
        out["cycles_per_fold"] = max(self.cycles_per_fold, default=0)
        return out


def check_cosim_size(design: RtlDesign, source: str) -> None:
    """Refuse an array too large to co-simulate in reasonable time."""
    pes = design.rows * design.cols
    if pes > MAX_COSIM_PES:
        raise SimulationError(
            f"{source}: array.rows x array.cols = {design.rows}x{design.cols} ({pes} PEs) is "
            f"too large to co-simulate (at most {MAX_COSIM_PES} PEs); verify a smaller array "
            f"of the same PE, e.g. --set array.rows=4 --set array.cols=4")


def schedule_of(pe: PEModel, layer: Layer, a: np.ndarray) -> np.ndarray:
    """The PE's thread schedule (T, S) for this GEMM (:meth:`PEModel.step_schedule`)."""
    return np.asarray(pe.step_schedule(layer, a), dtype=np.int64)


def _normalised(*counters: dict[str, int]) -> list[dict[str, int]]:
    names = sorted({n for c in counters for n in c}, key=_counter_order)
    return [{n: int(c.get(n, 0)) for n in names} for c in counters]


def _counter_order(name: str) -> int:
    order = ("idle", "single", "shared_exact", "shared_reduced", "zero", "active")
    return order.index(name) if name in order else len(order)


def _fold_list(m: int, n: int, rows: int, cols: int) -> list[tuple[int, int]]:
    return [(fr, fc) for fr in range(-(-m // rows)) for fc in range(-(-n // cols))]


class _StepRule:
    """The reference array's per-PE-step rule (docs/reference-array.md), for locating the
    first cycle a mismatch appears."""

    def __init__(self, pe: PEModel, a: np.ndarray) -> None:
        from simulator.kernels import reference_array as kernel

        spec = type(pe).reference_rule()
        # read from sasim's PE options, not from the RTL design: the two stay independent
        self.params = pe.reference_params(a)
        self.kernel, self.rule = kernel, spec.step
        self.codes = (None if callable(spec.step) else  # a plain-Python rule (a plug-in's)
                      np.array([spec.options[key][self.params[key]] for key in spec.options]
                               or [0], dtype=np.int64))

    def __call__(self, acts: np.ndarray, wgts: np.ndarray) -> tuple[int, int]:
        if self.codes is None:
            partial, counter = self.rule(np.asarray(acts, np.int64),
                                         np.asarray(wgts, np.int64), self.params)
        else:
            partial, counter = self.kernel.pe_step(self.rule, self.codes, acts, wgts)
        return int(partial), int(counter)


class _SerialStepRule:
    """The reference array's ``bitserial`` rule for a stream's steps, its counter index
    folded to the PE's events (0 waiting: ``idle``; 1: ``zero``; more: ``active``)."""

    def __init__(self, serial: str) -> None:
        from simulator.kernels import reference_array as kernel

        self.kernel = kernel
        self.codes = np.array([kernel.SERIAL_WEIGHT if serial == "weight"
                               else kernel.SERIAL_ACTIVATION], dtype=np.int64)

    def __call__(self, acts: np.ndarray, wgts: np.ndarray) -> tuple[int, int]:
        partial, counter = self.kernel.pe_step(self.kernel.RULE_BITSERIAL, self.codes, acts,
                                               wgts)
        return int(partial), min(int(counter), 2)

    def lanes(self, acts: np.ndarray, wgts: np.ndarray) -> int:
        """The step's active lanes (the rule's counter index is 1 + active lanes)."""
        counter = self.kernel.pe_step(self.kernel.RULE_BITSERIAL, self.codes, acts, wgts)[1]
        return max(int(counter) - 1, 0)


def _first_step_difference(design: RtlDesign, pe: PEModel, A, B, sched, fold, trace,
                           case: str,
                           what: str, before: int, pe_only: tuple[int, int] | None = None
                           ) -> Mismatch | None:
    """The first (cycle, PE) of one fold whose event (``what == "counters"``), partial
    sum (``"outputs"``, needs ``trace.products``) or active lanes (``"active lanes"``,
    bit-serial and SWIS streams) differs from the reference rule."""
    from simulator.rtl.cosim import _step_operands

    if isinstance(sched, SerialStream):
        rule, sched = _SerialStepRule(sched.serial), sched.schedule(fold[1])
    else:
        rule = _StepRule(pe, A)
    rows, cols = design.rows, design.cols
    acts, wgts = _step_operands(A, B, sched, sched.shape[0], fold[0] * rows, fold[1] * cols,
                                rows, cols)
    real_m = min(rows, A.shape[0] - fold[0] * rows)
    real_n = min(cols, B.shape[1] - fold[1] * cols)
    for c in range(trace.cycles):
        for i in range(rows):
            for j in range(cols):
                s = c - i - j
                if pe_only is not None and (i, j) != pe_only:
                    continue
                if not 0 <= s < sched.shape[1]:
                    continue
                if what == "active lanes":
                    if i >= real_m or j >= real_n:
                        continue
                    got, want = int(trace.lanes[i, j, c]), rule.lanes(acts[s, i], wgts[s, j])
                    if got != want:
                        return _step_mismatch(what, case, fold, (i, j), c, before, got, want,
                                              s, design)
                    continue
                partial, counter = rule(acts[s, i], wgts[s, j])
                if what == "counters":
                    if i >= real_m or j >= real_n:
                        continue
                    got = int(trace.events[i, j, c])
                    if got != counter:
                        return _step_mismatch(what, case, fold, (i, j), c, before, got,
                                              counter, s, design)
                elif int(trace.products[i, j, c]) != partial:
                    return _step_mismatch(what, case, fold, (i, j), c, before,
                                          int(trace.products[i, j, c]), partial, s, design)
    return None


def _step_mismatch(what, case, fold, pe, cycle, before, got, want, step, design) -> Mismatch:
    from simulator.rtl.build import pe_counters

    names = pe_counters(design)
    if what == "counters":
        got = names[got] if 0 <= got < len(names) else f"no step ({got})"
        want = names[want] if 0 <= want < len(names) else str(want)
        label = "event"
    elif what == "active lanes":
        label = "active lanes"
    else:
        label = "partial sum"
    return Mismatch(what, case, -1, fold[0], fold[1], pe, cycle, before + cycle, got, want,
                    note=f"{label} of operand step {step}")


def verify_gemms(design: RtlDesign, pe: PEModel,
                 items: list[tuple[str, Layer, np.ndarray, np.ndarray, bool]], *,
                 probe_activity: bool = False, backend: str = "amaranth"
                 ) -> list[tuple[GemmReport, CosimResult]]:
    """Co-simulate GEMMs (case name, layer, A, B, cropped) on one design, in one simulation,
    and compare each with sasim; returns each one's report and the RTL's run (its outputs
    (M, N), and with ``probe_activity`` its activity traces). ``backend``: ``amaranth`` or
    ``verilator`` (docs/rtl.md, "The Verilator backend"; no activity probes)."""
    from simulator.rtl.cosim import run_gemms

    if backend == "verilator":
        from simulator.rtl.verilator import run_gemms as verilated

        def run_gemms(design, jobs, probe_activity):  # noqa: F811 - the backend's runner
            return verilated(design, jobs)

    # the weights the PE computes with (e.g. pruned to 2:4), and what preparing them counted
    prepared = [pe.prepare_weights(layer, b) for _, layer, _, b, _ in items]
    items = [(case, layer, a, weights, cropped)
             for (case, layer, a, _, cropped), (weights, _) in zip(items, prepared)]
    # bit-serial and SWIS: the schedule is the serial stream (docs/rtl.md)
    scheds = [_schedule(pe, layer, a, b) for _, layer, a, b, _ in items]
    started = time.perf_counter()
    runs = run_gemms(design, [s if isinstance(s, SerialStream) else (a, b, s)
                              for (_, _, a, b, _), s in zip(items, scheds)],
                     probe_activity=probe_activity)
    seconds = (time.perf_counter() - started) / max(len(items), 1)
    pairs = []
    for item, sched, rtl, (_, counted) in zip(items, scheds, runs, prepared):
        report = _compare(design, pe, item, sched, rtl, seconds)
        report.stats = {**report.stats, **counted}
        if isinstance(sched, SerialStream):  # back to the GEMM's column order
            rtl.outputs = sched.unpermute(rtl.outputs)
        pairs.append((report, rtl))
    return pairs


def layer_summaries(reports: list[GemmReport]) -> list[dict[str, Any]]:
    """Per workload layer, the figures ``sasim run``'s summary has for it: folds, the
    longest fold's cycles, the layer's cycles (native: the sum of its folds) and counters."""
    layers: dict[str, dict[str, Any]] = {}
    for rep in reports:
        if rep.layer is None:
            continue
        entry = layers.setdefault(rep.layer, {"name": rep.layer, "folds": 0,
                                              "cycles_per_fold": 0, "compute_cycles": 0,
                                              "counters": {}, "cropped": False,
                                              "verdict": "match"})
        entry["folds"] += rep.folds
        entry["cycles_per_fold"] = max(entry["cycles_per_fold"], *rep.cycles_per_fold)
        entry["compute_cycles"] += rep.cycles
        entry["cropped"] = entry["cropped"] or rep.cropped
        for name, value in rep.counters.items():
            entry["counters"][name] = entry["counters"].get(name, 0) + value
        for name, value in rep.stats.items():
            entry.setdefault("stats", {})
            entry["stats"][name] = entry["stats"].get(name, 0) + value
        if rep.mismatch is not None:
            entry["verdict"] = "mismatch"
    return list(layers.values())


def _compare(design: RtlDesign, pe: PEModel, item, sched: np.ndarray, rtl,
             seconds: float) -> GemmReport:
    """One GEMM's RTL run against the PE model, the reference array and the timing model."""
    from simulator.hw.reference_array import run_reference_array

    case, layer, a, b, cropped = item
    rows, cols = design.rows, design.cols
    model = pe.simulate_gemm(layer, a, b)
    m, k = a.shape
    n = b.shape[1]
    if isinstance(sched, SerialStream):
        return _compare_stream(design, pe, item, sched, rtl, seconds, model)
    ref = run_reference_array(a, b, rows, cols, sched, pe.type_name,
                              pe.reference_params(a) or None)
    want_cycles = fold_timing(GemmShape(m, k, n), rows, cols, "os", "native",
                              sched.shape[1]).fold_cycles.tolist()
    rtl_counts, model_counts, ref_counts = _normalised(rtl.counters, model.counters,
                                                       ref.counters)
    if rtl.stats:
        # SPARQ, A4W8: the events also give the product stats (window positions used)
        rtl_stats, model_stats, ref_stats = _normalised(rtl.stats, model.stats, ref.stats)
        rtl_counts, model_counts = {**rtl_counts, **rtl_stats}, {**model_counts, **model_stats}
        ref_counts = {**ref_counts, **ref_stats}
    # reported: the RTL's own counters and stats, in its order; compared: every name
    report = GemmReport(case, m, k, n, sched.shape[0], sched.shape[1], len(rtl.fold_cycles),
                        rtl.cycles, list(rtl.fold_cycles), dict(rtl.counters), seconds,
                        cropped, stats=dict(rtl.stats))
    if not np.array_equal(model.outputs, ref.outputs) or model_counts != ref_counts:
        raise SimulationError(f"{case}: sasim's PE model and its reference array disagree "
                              f"(a bug in sasim, not in the RTL)")
    folds = _fold_list(m, n, rows, cols)
    report.mismatch = (_output_mismatch(design, pe, a, b, sched, rtl, model.outputs, folds,
                                        case)
                       or _cycle_mismatch(rtl.fold_cycles, want_cycles, folds, case)
                       or _counter_mismatch(design, pe, a, b, sched, rtl, rtl_counts,
                                            ref_counts, folds, case))
    return report


def _schedule(pe: PEModel, layer: Layer, a: np.ndarray, b: np.ndarray) -> Any:
    """What the array edges feed for one GEMM group: a bit-serial PE's operand stream
    (docs/rtl.md, "Bit-serial and SWIS"), else the PE's thread schedule."""
    stream = stream_for(pe, layer, a, b)
    return stream if stream is not None else schedule_of(pe, layer, a)


def _compare_stream(design: RtlDesign, pe: PEModel, item, stream: SerialStream, rtl,
                    seconds: float, model) -> GemmReport:
    """:func:`_compare` for a bit-serial or SWIS stream: the reference array runs the
    stream's bits with its ``bitserial`` rule; the RTL's columns are in the stream's filter
    order; the fold cycles come from the PE's steps (per column fold for SWIS); the active
    lanes are compared besides the counters."""
    from simulator.hw.reference_array import run_reference_array

    case, layer, a, b, cropped = item
    rows, cols = design.rows, design.cols
    m, k = a.shape
    n = b.shape[1]
    ref = run_reference_array(stream.acts, stream.wgts, rows, cols, stream.sched, stream.rule,
                              {"serial_operand": stream.serial}, stream.fold_steps)
    shape = GemmShape(m, k, n)
    if pe.weight_dependent_timing:
        steps = pe.column_fold_steps(layer, b[None]).steps
        timing = fold_timing(shape, rows, cols, "os", "native", 0, steps)
        # fold_timing lists column folds outer, row folds inner; the RTL runs row-fold-major
        want_cycles = timing.fold_cycles.reshape(-1, -(-m // rows)).T.ravel().tolist()
    else:
        want_cycles = fold_timing(shape, rows, cols, "os", "native",
                                  pe.reduction_steps(layer)).fold_cycles.tolist()
    rtl_counts, model_counts, ref_counts = _normalised(rtl.counters, model.counters,
                                                       ref.counters)
    report = GemmReport(case, m, k, n, design.threads, int(max(rtl.fold_cycles, default=0)
                                                            - 2 * rows - cols + 2),
                        len(rtl.fold_cycles), rtl.cycles, list(rtl.fold_cycles), rtl_counts,
                        seconds, cropped)
    report.stats = dict(rtl.stats)
    want = model.outputs[:, stream.order]
    lanes = {"rtl": rtl.stats.get("active_lanes"), "model": model.stats["active_lanes"],
             "reference": ref.stats["active_lanes"]}
    if (not np.array_equal(want, ref.outputs) or model_counts != ref_counts
            or lanes["model"] != lanes["reference"]):
        raise SimulationError(f"{case}: sasim's PE model and its reference array disagree "
                              f"(a bug in sasim, not in the RTL)")
    folds = _fold_list(m, n, rows, cols)
    report.mismatch = (
        _output_mismatch(design, pe, stream.acts, stream.wgts, stream, rtl, want, folds, case)
        or _cycle_mismatch(rtl.fold_cycles, want_cycles, folds, case)
        or _counter_mismatch(design, pe, stream.acts, stream.wgts, stream, rtl, rtl_counts,
                             ref_counts, folds, case)
        or _lanes_mismatch(design, pe, stream, rtl, lanes, folds, case))
    return report


def _lanes_mismatch(design, pe, stream, rtl, lanes, folds, case) -> Mismatch | None:
    """The first PE-step whose active lanes differ from the reference rule's, or the GEMM's
    totals."""
    if lanes["rtl"] == lanes["model"]:
        return None
    for f, trace in enumerate(rtl.folds):
        step = _first_step_difference(design, pe, stream.acts, stream.wgts, stream, folds[f],
                                      trace, case, "active lanes", sum(rtl.fold_cycles[:f]))
        if step is not None:
            step.fold = f
            return step
    return Mismatch("active lanes", case, 0, 0, 0, None, None, None, lanes["rtl"],
                    lanes["model"], note="summed over the GEMM")


def _rerun(design, a, b, sched, fold: int):
    """One fold again with every PE's partial sum probed."""
    from simulator.rtl.cosim import run_gemms

    job = sched if isinstance(sched, SerialStream) else (a, b, sched)
    return run_gemms(design, [job], probe_products=True, only_fold=fold)[0].folds[0]


def _output_mismatch(design, pe, a, b, sched, rtl, want, folds, case) -> Mismatch | None:
    if np.array_equal(rtl.outputs, want):
        return None
    rows, cols = design.rows, design.cols
    for f, (fr, fc) in enumerate(folds):
        got = rtl.outputs[fr * rows:(fr + 1) * rows, fc * cols:(fc + 1) * cols]
        exp = want[fr * rows:(fr + 1) * rows, fc * cols:(fc + 1) * cols]
        bad = np.argwhere(got != exp)
        if not len(bad):
            continue
        i, j = (int(v) for v in bad[0])
        before = sum(rtl.fold_cycles[:f])
        probe = _rerun(design, a, b, sched, f)
        step = _first_step_difference(design, pe, a, b, sched, (fr, fc), probe, case,
                                      "outputs", before, pe_only=(i, j))
        out_cycle = int(rtl.folds[f].out_cycle[i, j])
        found = Mismatch("outputs", case, f, fr, fc, (i, j), out_cycle, before + out_cycle,
                         int(got[i, j]), int(exp[i, j]),
                         note="the output left the array in this cycle")
        if step is not None:
            found.cycle, found.cycle_overall = step.cycle, step.cycle_overall
            found.note = (f"first wrong {step.note} in this cycle (RTL {step.rtl}, sasim "
                          f"{step.sasim}); the output left the array in cycle {out_cycle}")
        return found
    return None


def _cycle_mismatch(got: list[int], want: list[int], folds, case) -> Mismatch | None:
    if len(got) != len(want):
        return Mismatch("cycles", case, min(len(got), len(want)), 0, 0, None, None, None,
                        f"{len(got)} folds", f"{len(want)} folds")
    for f, (g, w) in enumerate(zip(got, want)):
        if g != w:
            fr, fc = folds[f]
            return Mismatch("cycles", case, f, fr, fc, None, None, None, g, w,
                            note="cycles of the fold (docs/timing-model.md, native)")
    return None


def _counter_mismatch(design, pe, a, b, sched, rtl, got, want, folds, case) -> Mismatch | None:
    if got == want:
        return None
    for f, trace in enumerate(rtl.folds):
        step = _first_step_difference(design, pe, a, b, sched, folds[f], trace, case,
                                      "counters", sum(rtl.fold_cycles[:f]))
        if step is not None:
            step.fold = f
            return step
    return Mismatch("counters", case, 0, 0, 0, None, None, None, got, want)


def random_cases(count: int, seed: int, rows: int, cols: int, max_k: int = 64,
                 two_of_four: bool = False
                 ) -> Iterator[tuple[str, Layer, np.ndarray, np.ndarray]]:
    """Random GEMMs: odd shapes (1 .. 2*rows+1 by 1 .. 2*cols+1, Kd 1 .. ``max_k``), random
    sparsity, signed or unsigned activations, and the values that exercise the rules' edges
    (nibble boundaries, the saturation range 248..255, -128). ``two_of_four``: the weights
    are pruned 2:4 (SPARQ's ``stc`` pairing, docs/hardware-spec.md §4)."""
    rng = np.random.default_rng(seed)
    edges_a = np.array([0, 1, 15, 16, 17, 24, 40, 127, 128, 136, 240, 247, 248, 250, 255])
    edges_w = np.array([-128, -127, -16, -15, -1, 0, 1, 15, 16, 17, 24, 120, 127])
    for i in range(count):
        m = int(rng.integers(1, 2 * rows + 2))
        n = int(rng.integers(1, 2 * cols + 2))
        k = int(rng.integers(1, max_k + 1))
        signed = bool(rng.random() < 0.25)
        lo, hi = (-128, 128) if signed else (0, 256)
        a = rng.integers(lo, hi, (m, k))
        pick = rng.random((m, k)) < 0.2
        edge = edges_a[(edges_a >= lo) & (edges_a < hi)]
        a[pick] = rng.choice(edge, int(pick.sum()))
        a[rng.random((m, k)) < rng.random()] = 0
        b = rng.integers(-128, 128, (k, n))
        pick = rng.random((k, n)) < 0.2
        b[pick] = rng.choice(edges_w, int(pick.sum()))
        b[rng.random((k, n)) < rng.random() * 0.7] = 0
        if two_of_four:
            b = _prune_two_of_four(b, rng)
        layer = Layer(name=f"case{i}", op="gemm", in_channels=k, out_channels=n, batch=m,
                      activation_signed=signed)
        yield f"case {i} (M={m}, Kd={k}, N={n})", layer, a.astype(np.int64), b.astype(np.int64)


def _prune_two_of_four(b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``b`` with at most two non-zero weights in each group of four K elements of a
    column (random ones kept)."""
    b = b.copy()
    for g in range(0, b.shape[0], 4):
        for j in range(b.shape[1]):
            nonzero = np.flatnonzero(b[g:g + 4, j])
            if len(nonzero) > 2:
                b[g + rng.choice(nonzero, len(nonzero) - 2, replace=False), j] = 0
    return b


def crop_plan(layer: Layer, rows: int, cols: int, max_folds: int) -> tuple[int, int, int]:
    """How much of a layer to co-simulate: (groups, M, N) within ``max_folds`` folds (the
    first rows of M and the first columns of N, whole folds)."""
    gemm = layer.gemm
    col_folds = min(-(-gemm.n // cols), max_folds)
    n = min(gemm.n, col_folds * cols)
    row_folds = min(-(-gemm.m // rows), max(1, max_folds // col_folds))
    m = min(gemm.m, row_folds * rows)
    per_group = row_folds * col_folds
    groups = min(gemm.groups, max(1, max_folds // per_group))
    return groups, m, n


def workload_gemms(workload, rows: int, cols: int, max_folds: int,
                   only: str | None, need_whole: bool
                   ) -> Iterator[tuple[Layer, int, np.ndarray, np.ndarray, bool]]:
    """(layer, group, A, B, cropped) of every array layer of a workload with data, cropped
    to ``max_folds`` folds per layer (``need_whole``: refuse to crop)."""
    from simulator.workloads.lowering import im2col, weights_to_gemm

    layers = [layer for layer in workload.layers if layer.is_gemm]
    if only is not None:
        layers = [layer for layer in layers if layer.name == only]
        if not layers:
            names = ", ".join(la.name for la in workload.layers if la.is_gemm)
            raise SimulationError(f"{workload.source}: --layer {only}: no array layer of "
                                  f"that name (layers: {names})")
    for layer in layers:
        groups, m, n = crop_plan(layer, rows, cols, max_folds)
        gemm = layer.gemm
        cropped = (groups, m, n) != (gemm.groups, gemm.m, gemm.n)
        if cropped and need_whole:
            folds = gemm.groups * -(-gemm.m // rows) * -(-gemm.n // cols)
            raise SimulationError(
                f"{workload.source}: layer {layer.name}: {folds} folds on a {rows}x{cols} "
                f"array, more than --max-folds {max_folds}; --save-outputs needs whole "
                f"layers (raise --max-folds)")
        tensors = workload.tensors(layer.name)
        a = im2col(tensors.input, layer, np.int64)
        b = weights_to_gemm(tensors.weight, layer).astype(np.int64)
        for g in range(groups):
            yield layer, g, a[g, :m], b[g, :, :n], cropped


def check_operands(case: str, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the activations are signed; refuses operands the RTL's 8-bit ports cannot
    carry."""
    a_min = int(a.min()) if a.size else 0
    a_max = int(a.max()) if a.size else 0
    if a_min < 0 and not (a_min >= -128 and a_max <= 127):
        raise SimulationError(f"{case}: signed activations must lie in -128..127, not "
                              f"{a_min}..{a_max}")
    if a_max > 255:
        raise SimulationError(f"{case}: activations must lie in 0..255, not up to {a_max}")
    if b.size and (int(b.min()) < -128 or int(b.max()) > 127):
        raise SimulationError(f"{case}: weights must lie in -128..127 (the RTL's weight "
                              f"ports are signed 8-bit), not {int(b.min())}..{int(b.max())}")
    return a_min < 0


def design_for(base: RtlDesign, layer: Layer, a: np.ndarray, b: np.ndarray, case: str,
               acc_bits: int | None) -> RtlDesign:
    """The design that runs one GEMM: activations' signedness and an exact accumulator."""
    signed = check_operands(case, a, b) or layer.activation_signed
    need = exact_acc_bits(a.shape[1])
    if acc_bits is not None and acc_bits < need:
        raise SimulationError(f"{case}: --acc-bits {acc_bits} cannot hold Kd = {a.shape[1]} "
                              f"sums exactly (needs {need})")
    return dataclasses.replace(base, act_signed=signed, acc_bits=acc_bits or need)


def pe_model_for(arch: ArchConfig) -> PEModel:
    """sasim's PE model of the arch (its functional model is the one checked)."""
    return get_pe_model(arch.pe, arch.array)


Progress = Callable[[GemmReport], None]


@dataclasses.dataclass
class VerifyResult:
    """What ``sasim rtl verify`` found.

    Attributes
    ----------
    design : the design checked (activation ports that carry every GEMM's activations;
        the accumulator wide enough for every GEMM).
    reports : one per GEMM, in order.
    outputs : per layer (workload mode, whole layers only), the RTL's outputs in the layer's
        layout with the bias added, as ``sasim run --save-outputs`` writes them.
    rtl_outputs : each GEMM's (M, N) outputs from the RTL, in order.
    runs : each GEMM's co-simulation, in order (fold traces; activity with
        ``probe_activity``).
    """

    design: RtlDesign
    reports: list[GemmReport]
    outputs: dict[str, np.ndarray]
    rtl_outputs: list[np.ndarray] = dataclasses.field(default_factory=list)
    runs: list[CosimResult] = dataclasses.field(default_factory=list)

    @property
    def mismatch(self) -> Mismatch | None:
        """The first mismatch, if any."""
        return next((r.mismatch for r in self.reports if r.mismatch is not None), None)


def verify_arch(arch: ArchConfig, source: str, *, cases: int = 8, seed: int = 0,
                workload=None, layer: str | None = None, max_folds: int = 64,
                acc_bits: int | None = None, need_whole: bool = False,
                progress: Progress | None = None, probe_activity: bool = False,
                operand_isolation: bool = False, backend: str = "amaranth") -> VerifyResult:
    """Co-simulate ``arch``'s RTL on random GEMMs (``workload`` None) or a workload's layers
    (``probe_activity``: also record the switching activity, :mod:`simulator.rtl.activity`;
    ``backend``: ``amaranth`` or ``verilator``, docs/rtl.md).

    Raises
    ------
    ConfigError
        If the PE type has no RTL yet.
    SimulationError
        If the array is too large to co-simulate, or the data does not fit the RTL.
    """
    from simulator.rtl.design import design_from_arch

    base = design_from_arch(arch, source, operand_isolation=operand_isolation)
    check_cosim_size(base, source)
    pe = pe_model_for(arch)
    if pe.weight_dependent_timing and type(pe).serial_operands is PEModel.serial_operands:
        raise ConfigError(f"{source}: PE type {pe.type_name!r} has weight-dependent timing "
                          f"(column_fold_steps), which rtl verify checks only for a bit-serial "
                          f"datapath's streams (serial_operands); it has none (docs/extending.md)")
    items, keys = _items(base, pe, cases, seed, workload, layer, max_folds, need_whole)
    _check_work(base, pe, items, source)
    signed = [design_for(base, lay, a, b, case, 64).act_signed
              for case, lay, a, b, _ in items]
    need = max([exact_acc_bits(a.shape[1]) for _, _, a, _, _ in items] or [1]) \
        + type(pe).rtl.extra_acc_bits
    if acc_bits is not None and acc_bits < need:
        raise SimulationError(f"--acc-bits {acc_bits} cannot hold every sum exactly (the "
                              f"largest Kd needs {need})")
    width = acc_bits or need
    # one design for every GEMM: signed 8-bit, unsigned 8-bit, or 9-bit signed ports when
    # both occur (one simulator build instead of two; the datapath sees the same magnitudes)
    mixed = len(set(signed)) > 1
    design = dataclasses.replace(base, act_signed=any(signed), acc_bits=width,
                                 act_bits=9 if mixed else 8)
    done: dict[int, tuple[GemmReport, CosimResult]] = {}
    for i, pair in enumerate(verify_gemms(design, pe, items, probe_activity=probe_activity,
                                                backend=backend)):
        if keys:
            pair[0].layer, pair[0].group = keys[i][0].name, keys[i][1]
        done[i] = pair
        if progress is not None:
            progress(pair[0])
    reports = [done[i][0] for i in range(len(items))]
    runs = [done[i][1] for i in range(len(items))]
    rtl_outputs = [run.outputs for run in runs]
    outputs = _layer_outputs(workload, keys, rtl_outputs) \
        if workload is not None and need_whole else {}
    return VerifyResult(design, reports, outputs, rtl_outputs, runs)


def _check_work(design: RtlDesign, pe: PEModel, items, source: str) -> None:
    """Refuse a co-simulation that would take too long (:data:`MAX_COSIM_PE_CYCLES`)."""
    rows, cols = design.rows, design.cols
    cycles = 0
    for _, lay, a, b, _ in items:
        steps = pe.reduction_steps(dataclasses.replace(lay, in_channels=a.shape[1], groups=1,
                                                       op="gemm", batch=a.shape[0],
                                                       out_channels=b.shape[1]))
        folds = -(-a.shape[0] // rows) * -(-b.shape[1] // cols)
        cycles += folds * (steps + 2 * rows + cols - 2)
    if cycles * rows * cols > MAX_COSIM_PE_CYCLES:
        raise SimulationError(
            f"{source}: co-simulating {cycles} cycles on a {rows}x{cols} array "
            f"({cycles * rows * cols} PE-cycles) is more than sasim rtl verify takes on (at "
            f"most {MAX_COSIM_PE_CYCLES}); choose one layer (--layer), fewer folds "
            f"(--max-folds), fewer cases or a smaller array")


def _items(base: RtlDesign, pe: PEModel, cases: int, seed: int, workload, layer, max_folds,
           need_whole):
    """The GEMMs to co-simulate, and (layer, group) of each in workload mode."""
    from simulator.errors import ConfigError, WorkloadError

    if workload is None:
        two_of_four = pe.synthetic_data().get("weight_structure") == "2:4"  # SPARQ stc
        return ([(case, lay, a, b, False) for case, lay, a, b in
                 random_cases(cases, seed, base.rows, base.cols, two_of_four=two_of_four)],
                [])
    if workload.tensors is None:
        from simulator.api import with_synthetic_data

        workload = with_synthetic_data(workload, pe.synthetic_data())
    try:
        pe.check_layers({la.name for la in workload.layers})
    except ValueError as exc:
        raise ConfigError(f"--arch: {exc}") from None
    items, keys = [], []
    try:
        for lay, g, a, b, cropped in workload_gemms(workload, base.rows, base.cols, max_folds,
                                                    layer, need_whole):
            case = f"layer {lay.name}" + (f" group {g}" if lay.gemm.groups > 1 else "")
            items.append((case + (" (cropped)" if cropped else ""), lay, a, b, cropped))
            keys.append((lay, g))
    except (KeyError, ValueError) as exc:
        raise WorkloadError(f"{workload.source}: {exc}") from None
    if not items:
        raise WorkloadError(f"{workload.source}: no array layer to co-simulate")
    return items, keys


def _layer_outputs(workload, keys, outputs) -> dict[str, np.ndarray]:
    """Per layer: the RTL's GEMM outputs in the layer's layout with its bias added."""
    from simulator.workloads.lowering import gemm_to_output

    by_layer: dict[str, tuple[Layer, list[np.ndarray]]] = {}
    for (lay, _), out in zip(keys, outputs):
        by_layer.setdefault(lay.name, (lay, []))[1].append(out)
    result = {}
    for name, (lay, groups) in by_layer.items():
        out = gemm_to_output(np.stack(groups), lay)
        bias = workload.tensors(name).bias
        if bias is not None:
            out = out + np.asarray(bias, dtype=np.int64).reshape((1, -1) + (1,) * (out.ndim - 2))
        result[name] = out
    return result
