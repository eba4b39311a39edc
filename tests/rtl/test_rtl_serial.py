"""The bit-serial and SWIS RTL (simulator/rtl/pe/bitserial.py, swis.py; docs/rtl.md
"Bit-serial and SWIS") co-simulated against the naive twins of tests/naive_swis.py.

Hypothesis draws small arrays (1x1 to 4x4), odd GEMM shapes (K up to 32), random sparsity,
both serial operands, every p, and SWIS with fixed and variable N (threshold and budget),
with and without the filter scheduler. The SWIS stream is built from the naive
decomposition, so the RTL's outputs, per-fold cycles, counters and active lanes are checked
against code that shares nothing with the package's models.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive_swis import naive_bitserial_run, naive_decompose, naive_schedule, naive_swis_run
from test_save_outputs import write_trace

from simulator.hw.reference_array import run_reference_array
from simulator.rtl.cosim import run_gemms
from simulator.rtl.design import RtlDesign, exact_acc_bits
from simulator.rtl.pe import bitserial as bitserial_rtl
from simulator.rtl.streams import bitserial_stream, swis_stream

CASES = settings(max_examples=10, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SMALL = ("--set", "array.rows=3", "--set", "array.cols=2")


@st.composite
def operands(draw, signed: bool, max_m: int, max_n: int, max_k: int = 32):
    """One GEMM (A, B) with random sparsity and the 8-bit edge values."""
    m, n, k = draw(st.integers(1, max_m)), draw(st.integers(1, max_n)), draw(st.integers(1, max_k))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo, hi = (-128, 128) if signed else (0, 256)
    a = rng.integers(lo, hi, (m, k))
    a[rng.random((m, k)) < 0.2] = hi - 1
    a[rng.random((m, k)) < draw(st.floats(0, 0.9))] = 0
    b = rng.integers(-128, 128, (k, n))
    b[rng.random((k, n)) < 0.1] = -128
    b[rng.random((k, n)) < draw(st.floats(0, 0.9))] = 0
    return a.astype(np.int64), b.astype(np.int64)


@st.composite
def bitserial_case(draw):
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    signed = draw(st.booleans())
    gemms = draw(st.lists(operands(signed, 2 * rows + 1, 2 * cols + 1), min_size=2,
                          max_size=2))
    return (rows, cols, signed, draw(st.sampled_from([1, 2, 3, 8])), draw(st.integers(1, 8)),
            draw(st.sampled_from(["weight", "activation"])), gemms)


@CASES
@given(bitserial_case())
def test_bitserial_rtl_equals_the_naive_array(drawn):
    """Outputs, fold cycles, counters and active lanes equal the naive bit-serial array's,
    and the reference array (run on the same stream) agrees cycle for cycle."""
    rows, cols, signed, group, bits, serial, gemms = drawn
    design = RtlDesign("t", "bitserial", group, {"group_size": group, "serial_operand": serial,
                                                 "bits": bits}, rows, cols, signed,
                       exact_acc_bits(32))
    streams = [bitserial_stream(a, b, bits, serial, group, signed) for a, b in gemms]
    for (a, b), stream, rtl in zip(gemms, streams, run_gemms(design, streams)):
        outputs, counters, stats, steps, cycles = naive_bitserial_run(
            a.tolist(), b.tolist(), bits, serial, group, rows, cols, signed)
        assert rtl.outputs.tolist() == outputs
        assert rtl.counters == counters
        assert rtl.stats == {"active_lanes": stats["active_lanes"]}
        folds = -(-a.shape[0] // rows) * -(-b.shape[1] // cols)
        assert rtl.fold_cycles == [steps + 2 * rows + cols - 2] * folds
        assert rtl.cycles == cycles
        ref = run_reference_array(stream.acts, stream.wgts, rows, cols, stream.sched,
                                  "bitserial", {"serial_operand": serial})
        assert ref.cycles == rtl.cycles and ref.stats["active_lanes"] == stats["active_lanes"]


@st.composite
def swis_case(draw):
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    signed = draw(st.booleans())
    a, b = draw(operands(signed, 2 * rows + 1, 3 * cols + 1, 24))
    group = draw(st.sampled_from([1, 2, 3, 8]))
    mode = draw(st.sampled_from([
        {"shifts": draw(st.integers(1, 4))},
        {"max_shifts": draw(st.integers(2, 4)),
         "error_threshold": float(draw(st.sampled_from([0, 16, 200])))},
        {"max_shifts": draw(st.integers(2, 4)),
         "bit_budget": draw(st.sampled_from([1.0, 1.5, 2.5]))}]))
    return rows, cols, signed, group, mode, draw(st.booleans()), a, b


def _naive_masks(dec) -> np.ndarray:
    return np.array([[sum(1 << s for s in dec["positions"][q][f])
                      for f in range(len(dec["positions"][q]))]
                     for q in range(len(dec["positions"]))], dtype=np.int64)


@CASES
@given(swis_case())
def test_swis_rtl_equals_the_naive_array(drawn):
    """Fed the naive decomposition, the SWIS RTL equals the naive SWIS array: outputs,
    the cycles of every fold (lock-step group steps of the longest N), counters (waits as
    idle) and active lanes."""
    rows, cols, signed, group, mode, schedule, a, b = drawn
    dec = naive_decompose(b.tolist(), group, **mode)
    order = (naive_schedule(dec["shifts"], cols) if schedule else list(range(b.shape[1])))
    stream = swis_stream(a, np.array(dec["approx"], np.int64), _naive_masks(dec),
                         np.array(dec["shifts"], np.int64), np.array(order), group, cols)
    design = RtlDesign("t", "swis", group, {"group_size": group, "max_shifts": 4}, rows,
                       cols, signed, exact_acc_bits(32) + 1)
    rtl = run_gemms(design, [stream])[0]
    outputs, counters, stats, fold_steps, cycles = naive_swis_run(a.tolist(), dec, group,
                                                                  rows, cols, order)
    assert stream.unpermute(rtl.outputs).tolist() == outputs
    assert rtl.counters == counters
    assert rtl.stats == {"active_lanes": stats["active_lanes"]}
    row_folds = -(-a.shape[0] // rows)
    # row-fold-major: fold f is column fold f mod C
    assert rtl.fold_cycles == [fold_steps[f % len(fold_steps)] + 2 * rows + cols - 2
                               for f in range(row_folds * len(fold_steps))]
    assert rtl.cycles == cycles


def test_a_stream_with_a_negative_bit_off_the_sign_step_is_refused():
    """The bit-serial PE negates only on the sign step (position 7 of a two's complement
    operand); a stream that needs a per-lane sign does not fit its ports."""
    design = RtlDesign("t", "bitserial", 2, {"group_size": 2, "serial_operand": "weight",
                                             "bits": 8}, 1, 1, False, 20)
    stream = bitserial_stream(np.array([[3, 5]]), np.array([[-1], [2]]), 8, "weight", 2, False)
    stream.wgts[0, 0] = -1  # bit 0 of the first lane made negative
    with pytest.raises(ValueError, match="outside the sign step"):
        run_gemms(design, [stream])


@pytest.mark.parametrize(("arch", "extra"), [
    ("bitserial_4b_16x16", ()),
    ("bitserial_8b_16x16", ("--set", "pe.serial_operand=activation", "--set",
                            "pe.group_size=3")),
    ("swis_variable_16x16", ()),
])
def test_verify_workload_saves_sasim_runs_outputs(cli, tmp_path, arch, extra):
    """A numpy-written trace (conv2d unsigned, linear signed): ``rtl verify
    --save-outputs`` writes what ``sasim run --save-outputs`` writes, and per layer the
    folds, fold cycles, cycles and counters of ``sasim run``'s summary."""
    write_trace(tmp_path / "t.npz", np.random.default_rng(len(arch)))
    flags = ("--arch", arch, *extra, "--set", "array.rows=4", "--set", "array.cols=4",
             "--workload", tmp_path / "t.npz")
    result = cli("rtl", "verify", *flags, "--save-outputs", tmp_path / "rtl", "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["verdict"] == "match"
    run = cli("run", *flags, "--out", tmp_path / "run", "--save-outputs", "--json")
    assert run.status == 0, run.err
    mine = np.load(tmp_path / "rtl" / "outputs.npz", allow_pickle=False)
    theirs = np.load(tmp_path / "run" / "outputs.npz", allow_pickle=False)
    assert sorted(mine.files) == sorted(theirs.files) == ["conv.output", "fc.output"]
    for key in mine.files:
        np.testing.assert_array_equal(mine[key], theirs[key])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for layer, theirs_layer in zip(report["layers"], summary["layers"]):
        for key in ("folds", "cycles_per_fold", "compute_cycles", "counters"):
            assert layer[key] == theirs_layer[key], key
        assert layer["name"] == theirs_layer["name"]
    lanes = sum(la["stats"]["active_lanes"] for la in summary["layers"])
    assert report["stats"]["active_lanes"] == lanes


def test_a_wrong_swis_rtl_is_caught_with_fold_pe_and_cycle(cli, monkeypatch):
    """The weight edge drops the signs: exit 1, the first differing fold, PE and cycle."""
    from simulator.rtl.pe import swis

    real = swis.encode

    def unsigned(design, acts, wgts, stream):
        a, w = real(design, acts, wgts, stream)
        group = design.options["group_size"]
        w = w.copy()
        w[:, :, group:2 * group] = 0
        return a, w

    monkeypatch.setattr(swis, "encode", unsigned)
    result = cli("rtl", "verify", "--arch", "swis_g8_n3_16x16", *SMALL, "--cases", "3")
    assert result.status == 1
    line = next(x for x in result.out.splitlines() if x.startswith("MISMATCH"))
    assert "MISMATCH in outputs" in line and "PE (row" in line and "partial sum" in line


def test_wrong_bitserial_events_alone_are_caught(cli, monkeypatch):
    """``zero`` and ``active`` swapped (outputs still right): located at a PE and cycle."""
    monkeypatch.setattr(bitserial_rtl, "EVENT_ZERO", 2)
    monkeypatch.setattr(bitserial_rtl, "EVENT_ACTIVE", 1)
    result = cli("rtl", "verify", "--arch", "bitserial_4b_16x16", *SMALL, "--cases", "2",
                 "--json")
    assert result.status == 1
    mismatch = json.loads(result.out)["mismatch"]
    assert mismatch["what"] == "counters" and mismatch["pe"] is not None
    assert {mismatch["rtl"], mismatch["sasim"]} == {"zero", "active"}


def test_wrong_active_lanes_alone_are_caught(cli, monkeypatch):
    """A lane count that misses the last lane (outputs and events still right): the
    mismatch in active lanes is located at a PE and cycle."""
    real = bitserial_rtl.popcount
    monkeypatch.setattr(bitserial_rtl, "popcount", lambda bits: real(bits[:-1]))
    result = cli("rtl", "verify", "--arch", "bitserial_4b_16x16", *SMALL, "--cases", "2",
                 "--json")
    assert result.status == 1
    mismatch = json.loads(result.out)["mismatch"]
    assert mismatch["what"] == "active lanes"
    assert mismatch["pe"] is not None and mismatch["cycle"] is not None
    assert mismatch["rtl"] == mismatch["sasim"] - 1


def test_emit_and_synth_a_serial_design(cli, tmp_path):
    out = tmp_path / "rtl"
    result = cli("rtl", "emit", "--arch", "swis_variable_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=2", "--out", out)
    assert result.status == 0, result.err
    params = json.loads((out / "params.json").read_text())
    assert params["pe_type"] == "swis" and params["threads"] == 8
    assert params["options"] == {"group_size": 8, "max_shifts": 4}
    result = cli("rtl", "synth", "--arch", "bitserial_8b_16x16", "--set", "pe.group_size=2",
                 "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    # 2 lanes x 8-bit activations, 2 serial bits, the 5-bit control, 2 valid bits, 32-bit acc
    assert report["cells"]["$_DFF_P_"] == 2 * 8 + 2 + 5 + 2 + 32
