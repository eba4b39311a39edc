"""The kernels compiled ahead of time (simulator.kernels.compiled, built by
simulator/kernels/aot.py) against numba's just-in-time ones, bit for bit, and the rules that
decide which run: fresh builds only, numba for what was not compiled, no numba import when
everything a run calls was compiled (docs/performance.md, "Kernels compiled ahead of time").

The checkout's own build is used when it is fresh (``make test`` makes it); otherwise the
module builds one into a temporary directory (about 30 s).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

from naive import naive_schedule, naive_sysmt_gemm
from simulator.config.dram import dram_spec
from simulator.kernels import compiled, dram_controller, jit, metrics, sysmt
from simulator.memory import dram_stream

SYSMT = "simulator.kernels.sysmt_loops"
METRICS = "simulator.kernels.metrics_loops"
DRAM = "simulator.kernels.dram_controller_loops"
CHAIN = "simulator.kernels.chain_loops"


@pytest.fixture(scope="module")
def extension(tmp_path_factory):
    """A fresh build of every compiled module: the checkout's, or one made here."""
    built = compiled._load_extension() if os.environ.get("SASIM_AOT", "") == "" else None
    if built is None or any(compiled._fresh(m, built) is None for m in compiled.MODULES):
        from simulator.kernels import aot

        path = aot.build(tmp_path_factory.mktemp("aot"))
        built = compiled._load_extension(str(path))
    assert built is not None
    return built


def _counting(extension, module: str, used: list[str]) -> compiled._Compiled:
    """The module's compiled kernels, each variant noting its calls in ``used``."""
    variants = compiled._fresh(module, extension)
    assert variants is not None
    for name, kernel in variants.items():
        kernel._table = {codes: _noting(fn, f"{name}:{'_'.join(codes)}", used)
                         for codes, fn in kernel._table.items()}
    return compiled._Compiled(module, variants)


def _noting(fn, label, used):
    def call(*args):
        used.append(label)
        return fn(*args)
    return call


def test_every_listed_variant_is_built(extension):
    for module in compiled.MODULES:
        listed = importlib.import_module(module).AOT
        variants = compiled._fresh(module, extension)
        assert variants is not None, module
        assert sorted(variants) == sorted(listed)
        for name, kernel in variants.items():
            assert len(kernel._table) == len(listed[name]), (module, name)


@pytest.mark.parametrize("a_type,b_type", [(np.uint8, np.int8), (np.int8, np.int8),
                                           (np.uint8, np.uint8), (np.int8, np.uint8)])
@pytest.mark.parametrize("path", ["tiles", "direct"])
def test_compiled_sysmt_equals_numba_and_the_naive_model(extension, monkeypatch, a_type,
                                                         b_type, path):
    rng = np.random.default_rng(7)
    used: list[str] = []
    fast = _counting(extension, SYSMT, used)
    jit = importlib.import_module(SYSMT)
    monkeypatch.setattr(sysmt, "_DIRECT_ROWS", 10**9 if path == "direct" else -1)
    for case in range(12):
        threads = 1 + case % 4
        m, kd, n = rng.integers(1, 12), rng.integers(1, 40), rng.integers(1, 30)
        lo, hi = np.iinfo(a_type).min, np.iinfo(a_type).max + 1
        a = (rng.integers(lo, hi, (m, kd)) * (rng.random((m, kd)) < 0.6)).astype(a_type)
        lo, hi = np.iinfo(b_type).min, np.iinfo(b_type).max + 1
        b = (rng.integers(lo, hi, (kd, n)) * (rng.random((kd, n)) < 0.7)).astype(b_type)
        split = ("contiguous", "interleaved")[case % 2]
        sched = np.array(naive_schedule(kd, threads, split), dtype=np.int64)
        policy, rounding = (("sparsity_aware", "round_half_even"), ("msb_trim", "truncate"))[
            case % 3 == 0]
        args = (a, b, sched, rounding == "round_half_even", policy == "sparsity_aware")
        monkeypatch.setattr(sysmt, "kernels", lambda module: fast)
        out, counts, exact = sysmt.sysmt_gemm(*args)
        monkeypatch.setattr(sysmt, "kernels", lambda module: jit)
        expected = sysmt.sysmt_gemm(*args)
        for got, want in zip((out, counts, exact), expected):
            np.testing.assert_array_equal(got, want)
        outputs, counters = naive_sysmt_gemm(a.astype(int).tolist(), b.astype(int).tolist(),
                                             sched.tolist(), policy, rounding)
        assert out.tolist() == outputs
        assert counts.tolist() == [counters["idle"], counters["single"],
                                   counters["shared_exact"] + counters["shared_reduced"],
                                   counters["shared_reduced"]]
    kernels = {label.split(":")[0] for label in used}
    assert kernels == ({"_direct"} if path == "direct" else
                       {"_prepare_weights", "_column_histogram", "_outputs", "_pair_counts"})


def test_compiled_sysmt_equals_numba_on_a_threaded_layer(extension, monkeypatch):
    """A layer big enough for the thread pool and several tiles and output parts."""
    rng = np.random.default_rng(11)
    a = (rng.integers(0, 256, (700, 288)) * (rng.random((700, 288)) < 0.5)).astype(np.uint8)
    b = rng.integers(-128, 128, (288, 40)).astype(np.int8)
    sched = np.array(naive_schedule(288, 4, "interleaved"), dtype=np.int64)
    used: list[str] = []
    fast = _counting(extension, SYSMT, used)
    monkeypatch.setattr(sysmt, "kernels", lambda module: fast)
    got = sysmt.sysmt_gemm(a, b, sched, True, True)
    monkeypatch.setattr(sysmt, "kernels", lambda module: importlib.import_module(SYSMT))
    for g, want in zip(got, sysmt.sysmt_gemm(a, b, sched, True, True)):
        np.testing.assert_array_equal(g, want)
    assert "_outputs:u1x2_i8x2_b_f4x3_i8x2_i8x3_i8x3_f8x3_i8x2_i_i_i" in used


def test_what_was_not_compiled_goes_to_numba(extension, monkeypatch):
    """Operands that fit no 8-bit type (signed values and values above 127) match no
    compiled variant: numba's kernel runs, with the same result."""
    used: list[str] = []
    fast = _counting(extension, SYSMT, used)
    monkeypatch.setattr(sysmt, "kernels", lambda module: fast)
    a = np.arange(40, dtype=np.int64).reshape(10, 4) * 9 - 100
    b = np.arange(8, dtype=np.int64).reshape(4, 2) - 3
    out, _, exact = sysmt.sysmt_gemm(a, b, np.array([[0, 1], [2, 3]]), True, True)
    np.testing.assert_array_equal(exact, a @ b)
    assert not [label for label in used if label.startswith("_outputs")]
    assert compiled.value_code(np.zeros((4, 4), np.int8)[:, ::2]) == "?"  # not contiguous
    assert [compiled.value_code(v) for v in (True, 3, np.int64(3), 2.5, "x")] == \
        ["b", "i", "i", "f", "?"]


def test_compiled_error_sums_equal_numba(extension, monkeypatch):
    rng = np.random.default_rng(5)
    approx = rng.integers(-2**40, 2**40, 5000)
    exact = approx + rng.integers(-9, 9, 5000)
    used: list[str] = []
    fast = _counting(extension, METRICS, used)
    monkeypatch.setattr(metrics, "kernels", lambda module: fast)
    got = metrics.error_sums(approx, exact)
    monkeypatch.setattr(metrics, "kernels", lambda module: importlib.import_module(METRICS))
    assert got == metrics.error_sums(approx, exact)
    assert used and all(label.startswith("_blocks") for label in used)


def test_compiled_dram_controller_equals_numba(extension, monkeypatch):
    """Mixed requests (serve) and sequential streams (serve_sequential), with refreshes, on
    every shipped device, read-only and writable timing vectors."""
    rng = np.random.default_rng(9)
    used: list[str] = []
    fast = _counting(extension, DRAM, used)
    jit = importlib.import_module(DRAM)
    for preset in ("lpddr5_6400", "ddr4_3200", "hbm2e"):
        params = dram_stream._params(dram_spec(preset))
        for case in range(6):
            n = int(rng.integers(0, 400))
            addresses = rng.integers(0, 5000, n).astype(np.int64)
            writes = rng.random(n) < 0.3
            start, foreign = int(rng.integers(0, 999)), bool(case % 2)
            refresh = None if case == 3 else start + int(rng.integers(1, 4000))
            p = params if case % 3 else params.copy()  # writable too
            results = []
            for namespace in (fast, jit):
                monkeypatch.setattr(dram_controller, "kernels", lambda module, _n=namespace: _n)
                results.append((dram_controller.serve(p, addresses, writes, start, foreign,
                                                      refresh),
                                dram_controller.serve_sequential(p, int(addresses[:1].sum()),
                                                                 n, case % 2 == 0, start,
                                                                 foreign, refresh)))
            (got, got_seq), (want, want_seq) = results
            for g, w in zip((*got, got_seq), (*want, want_seq)):
                np.testing.assert_array_equal(g, w)
    assert {label.split(":")[0] for label in used} == {"_serve", "_serve_sequential"}
    assert any(label.endswith("i8x1r_i_i_b_i_b_b_i_i8x1") for label in used)


def test_compiled_chain_equals_numba(extension, monkeypatch):
    """A prefetch chain's schedule (simulator/kernels/chain.py) on the shipped 16x16 chip:
    the same report from the compiled loop as from numba's, which it was called for."""
    from simulator import api
    from simulator.kernels import chain

    used: list[str] = []
    fast = _counting(extension, CHAIN, used)
    monkeypatch.setenv("SASIM_SCHEDULE", "compiled")
    workload = api.load_workload("resnet18")
    reports = []
    for namespace in (fast, importlib.import_module(CHAIN)):
        monkeypatch.setattr(chain, "kernels", lambda module, _n=namespace: _n)
        result = api.simulate(api.load_arch("os_sa_16x16"), workload, functional=False)
        reports.append(result.summary())
    assert reports[0] == reports[1]
    assert used and {label.split(":")[0] for label in used} == {"_run_chain"}


def test_a_stream_goes_to_the_compiled_controller_from_the_first_burst(extension,
                                                                        monkeypatch,
                                                                        stream_twins):
    monkeypatch.setattr(compiled, "_extension", lambda: extension)
    compiled.kernels.cache_clear()
    dram_stream._compiled_ahead.cache_clear()
    monkeypatch.setattr(dram_stream, "_python_bursts", [0])
    try:
        served = dram_stream.serve_stream(dram_spec("lpddr5_6400"), 0, 1000, False,
                                          next_refresh=900)
    finally:
        compiled.kernels.cache_clear()
        dram_stream._compiled_ahead.cache_clear()
    assert stream_twins == ["compiled_stream"]
    assert served == dram_stream.python_stream(dram_spec("lpddr5_6400"), 0, 1000, False,
                                               next_refresh=900)


def test_a_stale_build_is_not_used(extension, monkeypatch):
    """Built from other sources (or for another processor): numba's kernels instead."""
    assert compiled._fresh(SYSMT, extension) is not None
    monkeypatch.setattr(compiled, "source_digest", lambda module: 12345)
    assert compiled._fresh(SYSMT, extension) is None
    monkeypatch.setattr(compiled, "_extension", lambda: extension)
    compiled.kernels.cache_clear()
    try:
        assert compiled.kernels(SYSMT) is importlib.import_module(SYSMT)
    finally:
        compiled.kernels.cache_clear()


def _run(extension_path: str, tmp_path) -> list[str]:
    """A SySMT run in a fresh process: whether it imported numba, and the kernel states."""
    code = ("import sys\n"
            "from simulator import api\n"
            "from simulator.kernels import jit\n"
            "jit.can_fork = lambda: False  # the kernels in this process, not a child\n"
            "from simulator.kernels import compiled\n"
            "arch = api.load_arch('sysmt_4t_16x16')\n"
            "result = api.simulate(arch, api.load_workload('digits_int8'))\n"
            "print('numba' in sys.modules, sorted(set(compiled.status().values())))\n")
    env = {**os.environ, "SASIM_AOT": extension_path,
           "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(tmp_path / "nc"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split("\n")[0].split(" ", 1)


def test_a_run_with_everything_compiled_does_not_import_numba(extension, tmp_path):
    assert _run(extension.__file__, tmp_path) == ["False", "['compiled']"]
    assert _run("0", tmp_path) == ["True", "['off']"]


def test_the_builder_checks_and_reports(monkeypatch, capsys):
    from simulator.kernels import aot

    monkeypatch.setenv("SASIM_AOT", "0")
    assert aot.main(["--check"]) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == [f"{m}: off" for m in compiled.MODULES]
    for where in ("/nonexistent/_aot.so", "/etc/passwd", "/tmp"):  # named, not loadable
        monkeypatch.setenv("SASIM_AOT", where)
        aot.main(["--check"])
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == len(compiled.MODULES)
        assert all(": not loadable (" in line for line in lines), lines


def test_a_named_build_that_does_not_load_is_said_once(monkeypatch, cli, tmp_path):
    monkeypatch.setenv("SASIM_AOT", "/etc/passwd")
    monkeypatch.setattr(jit, "can_fork", lambda: False)  # the kernels in this process
    compiled._extension.cache_clear()
    compiled.kernels.cache_clear()
    try:
        assert compiled.load_problem() is None  # nothing asked for yet
        result = cli("run", "--arch", "sysmt_2t_16x16", "--workload", "digits_int8", "--out",
                     tmp_path / "o")
    finally:
        compiled._extension.cache_clear()
        compiled.kernels.cache_clear()
    assert result.status == 0, result.err
    said = [line for line in result.err.splitlines() if "compiled ahead" in line]
    assert len(said) == 1 and said[0].startswith(
        "sasim: warning: kernels compiled ahead of time: /etc/passwd does not load (")
    assert said[0].endswith("numba's kernels ran instead")


def test_loops_and_drivers_must_agree_on_constants():
    """A loop module's compiled-in constants are its own (numba's cache sees its file only)
    and must equal its driver's: a driver edited alone is an import error."""
    compiled.same_constants("simulator.kernels.metrics", {"_BLOCK": metrics._BLOCK})
    with pytest.raises(ImportError, match="disagree on _BLOCK: change both"):
        compiled.same_constants("simulator.kernels.metrics", {"_BLOCK": 2048})


def test_numpy_scalars_other_than_int64_and_float64_match_no_variant():
    assert [compiled.value_code(v) for v in (np.int32(3), np.uint64(3), np.float32(1.0),
                                             np.float64(1.0), np.bool_(True))] == \
        ["?", "?", "?", "f", "b"]


def test_a_build_without_processor_features_is_generic(monkeypatch):
    monkeypatch.setattr(compiled, "host_features", lambda: None)
    assert compiled.processor().endswith("\ngeneric")


def test_only_a_pe_whose_kernels_are_compiled_shares_its_functional_work(extension,
                                                                         monkeypatch):
    from simulator.hw.pe.dense import DenseOptions, DensePE
    from simulator.hw.pe.sysmt import SySMTOptions, SySMTPE

    monkeypatch.setattr(compiled, "_extension", lambda: extension)
    assert SySMTPE(SySMTOptions(threads=4)).runs_without_numba()
    assert not DensePE(DenseOptions()).runs_without_numba()  # the default
    monkeypatch.setattr(compiled, "_extension", lambda: None)
    assert not SySMTPE(SySMTOptions(threads=4)).runs_without_numba()
