"""``sasim rtl verify --backend verilator`` (docs/rtl.md, "The Verilator backend"): the
Verilator run of a design equals the Amaranth run, output for output, cycle for cycle,
event for event; it compiles once per design; a missing Verilator is one line, exit 2."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from simulator.rtl import cosim
from simulator.rtl import verilator as vl
from simulator.rtl.design import RtlDesign, exact_acc_bits
from simulator.rtl.verify import pe_model_for, random_cases, schedule_of

SYSMT = {"policy": "sparsity_aware", "rounding": "round_half_even"}
#: (PE type, threads, options, arch config of its PE model): small designs, compiled once
DESIGNS = [("dense", 1, {}, "os_sa_16x16"), ("sysmt", 2, SYSMT, "sysmt_2t_16x16"),
           ("sysmt", 4, {"policy": "msb_trim", "rounding": "truncate"}, "sysmt_4t_16x16")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh compile cache for this module (each design compiled once here)."""
    path = tmp_path_factory.mktemp("verilator-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SASIM_VERILATOR_CACHE", str(path))
        yield path


def _jobs(arch_name: str, options: dict, rows: int, cols: int, seed: int):
    from simulator import api

    arch = api.load_arch(arch_name, [f"pe.{k}={v}" for k, v in options.items()])
    pe = pe_model_for(arch)
    cases = list(random_cases(4, seed, rows, cols, max_k=24))
    return [(a, b, schedule_of(pe, layer, a)) for _, layer, a, b in cases], cases


def _assert_same(want, got) -> None:
    np.testing.assert_array_equal(got.outputs, want.outputs)
    assert got.fold_cycles == want.fold_cycles and got.cycles == want.cycles
    assert got.counters == want.counters and got.stats == want.stats
    for f, g in zip(want.folds, got.folds, strict=True):
        assert (f.fold_row, f.fold_col, f.cycles) == (g.fold_row, g.fold_col, g.cycles)
        np.testing.assert_array_equal(g.events, f.events)
        np.testing.assert_array_equal(g.out_cycle, f.out_cycle)


def _case(pe_type, threads, options, arch):
    """A 2x3 design and four random GEMMs with their schedules."""
    jobs, cases = _jobs(arch, options, 2, 3, seed=threads)
    signs = {layer.activation_signed for _, layer, _, _ in cases}
    design = RtlDesign("t", pe_type, threads, options, 2, 3, any(signs), exact_acc_bits(24))
    # 9-bit signed ports take both signednesses (as verify_arch builds them)
    return dataclasses.replace(design, act_bits=9 if len(signs) > 1 else 8), jobs


@pytest.mark.parametrize(("pe_type", "threads", "options", "arch"), DESIGNS)
def test_verilator_equals_amaranth(cache, pe_type, threads, options, arch):
    design, jobs = _case(pe_type, threads, options, arch)
    want = cosim.run_gemms(design, jobs)
    got = vl.run_gemms(design, jobs)
    assert len(got) == len(want) == len(jobs)
    for w, g in zip(want, got):
        _assert_same(w, g)
    # and the outputs are the products: the comparison is not of two empty runs
    for (a, b, _), g in zip(jobs, got):
        if pe_type == "dense":
            np.testing.assert_array_equal(g.outputs, a @ b)
    assert sum(g.cycles for g in got) > 0


def test_compiled_once_per_design(cache):
    design, jobs = _case(*DESIGNS[0])
    vl.run_gemms(design, jobs)
    built = sorted(p for p in cache.iterdir() if (p / f"V{vl.TOP}").exists())
    stamp = [(p / f"V{vl.TOP}").stat().st_mtime_ns for p in built]
    vl.run_gemms(design, jobs)
    assert sorted(p for p in cache.iterdir() if (p / f"V{vl.TOP}").exists()) == built
    assert [(p / f"V{vl.TOP}").stat().st_mtime_ns for p in built] == stamp


def test_cli_verify_with_verilator(cli, cache):
    result = cli("rtl", "verify", "--arch", "sysmt_2t_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=3", "--cases", "2", "--seed", "3", "--json",
                 "--backend", "verilator")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["verdict"] == "match" and report["backend"] == "verilator"
    assert report["folds"] > 0


def test_missing_verilator_is_one_line_exit_2(cli, monkeypatch):
    monkeypatch.setattr(vl, "find_verilator", lambda: None)
    result = cli("rtl", "verify", "--arch", "os_sa_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=2", "--backend", "verilator")
    assert result.status == 2
    assert "no Verilator found" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_missing_compiler_is_one_line_exit_2(cli, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    result = cli("rtl", "verify", "--arch", "os_sa_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=2", "--backend", "verilator")
    assert result.status == 2
    assert "no C++ compiler found" in result.err
    assert len(result.err.strip().splitlines()) == 1
