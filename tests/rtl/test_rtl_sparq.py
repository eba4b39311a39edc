"""SPARQ and A4W8 in RTL (simulator/rtl/pe/sparq.py, a4w8.py; docs/rtl.md).

Co-simulation on small arrays against the naive PE-step rules of tests/naive_sparq.py and the
register-level reference array: outputs bit for bit, step counters and product stats (window
positions used) decoded from the RTL's events, and ``S + 2*rows + cols - 2`` cycles per fold.
Every SPARQ window configuration runs with both pairings; the rounding is drawn. Then the
command path the issue judges: a numpy-written trace through ``sasim rtl verify --workload
--save-outputs`` on every shipped SPARQ arch (cropped) and A4W8, against the naive rule and
``sasim run``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hand_trace import conv_gemm, save_conv_fc
from naive_sparq import naive_a4w8_gemm, naive_a4w8_shift, naive_sparq_gemm

from simulator.hw.reference_array import run_reference_array
from simulator.rtl.cosim import run_gemms
from simulator.rtl.design import RtlDesign, exact_acc_bits

CASES = settings(max_examples=3, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WINDOW_CONFIGS = [(4, 5), (4, 3), (4, 2), (6, 3), (3, 6), (2, 7)]
EDGE_A = [0, 1, 3, 7, 8, 15, 16, 17, 23, 24, 25, 27, 31, 63, 64, 100, 127, 128, 136, 240,
          247, 248, 255]


def _gemm(rng: np.random.Generator, m: int, n: int, k: int, signed: bool, stc: bool):
    lo, hi = (-128, 128) if signed else (0, 256)
    a = rng.integers(lo, hi, (m, k))
    edges = np.array([v for v in EDGE_A if lo <= v < hi])
    pick = rng.random((m, k)) < 0.4
    a[pick] = rng.choice(edges, int(pick.sum()))
    a[rng.random((m, k)) < rng.random() * 0.8] = 0
    b = rng.integers(-128, 128, (k, n))
    b[rng.random((k, n)) < rng.random() * 0.5] = 0
    if stc:  # 2:4: keep at most two non-zero weights per group of four per column
        for g in range(0, k, 4):
            for j in range(n):
                nz = np.flatnonzero(b[g:g + 4, j])
                if len(nz) > 2:
                    b[g + rng.choice(nz, len(nz) - 2, replace=False), j] = 0
    return a.astype(np.int64), b.astype(np.int64)


@st.composite
def batch(draw, stc: bool):
    """An array size, signedness, and three GEMMs with edge values and random sparsity."""
    rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    signed = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gemms = [_gemm(rng, int(rng.integers(1, 2 * rows + 2)), int(rng.integers(1, 2 * cols + 2)),
                   int(rng.integers(1, 33)), signed, stc) for _ in range(3)]
    return rows, cols, signed, draw(st.sampled_from(["round", "raw"])), gemms


def _schedule(kd: int, width: int) -> np.ndarray:
    """K elements of each step: ``k = step * width + slot`` (-1 past Kd)."""
    steps = -(-kd // width)
    k = np.arange(steps * width).reshape(steps, width).T
    return np.where(k < kd, k, -1).astype(np.int64)


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def _check(design: RtlDesign, gemms, width: int, rule: str, params: dict, naive) -> None:
    scheds = [_schedule(a.shape[1], width) for a, _ in gemms]
    runs = run_gemms(design, [(a, b, s) for (a, b), s in zip(gemms, scheds)])
    for (a, b), sched, rtl in zip(gemms, scheds, runs):
        outputs, counters, stats, steps = naive(a.tolist(), b.tolist())
        np.testing.assert_array_equal(rtl.outputs, np.array(outputs))
        assert _nonzero(rtl.counters) == _nonzero(counters)
        assert _nonzero(rtl.stats) == _nonzero(stats)
        ref = run_reference_array(a, b, design.rows, design.cols, sched, rule, params)
        np.testing.assert_array_equal(rtl.outputs, ref.outputs)
        assert _nonzero(rtl.counters) == _nonzero(ref.counters)
        assert _nonzero(rtl.stats) == _nonzero(ref.stats)
        folds = -(-a.shape[0] // design.rows) * -(-b.shape[1] // design.cols)
        assert sched.shape[1] == steps
        assert rtl.fold_cycles == [steps + 2 * design.rows + design.cols - 2] * folds


@pytest.mark.parametrize("pairing", ["adjacent", "stc"])
@pytest.mark.parametrize(("window_bits", "options"), WINDOW_CONFIGS)
@CASES
@given(drawn=st.data())
def test_sparq_rtl_equals_the_naive_rule(window_bits, options, pairing, drawn):
    rows, cols, signed, rounding, gemms = drawn.draw(batch(pairing == "stc"))
    design = RtlDesign("t", "sparq", 4 if pairing == "stc" else 2,
                       {"window_bits": window_bits, "options": options,
                        "rounding": rounding, "pairing": pairing},
                       rows, cols, signed, exact_acc_bits(32))
    params = {"window": f"{window_bits}bit_{options}opt", "rounding": rounding,
              "pairing": pairing}
    _check(design, gemms, 4 if pairing == "stc" else 2, "sparq", params,
           lambda a, b: naive_sparq_gemm(a, b, window_bits, options, rounding, pairing))


@pytest.mark.parametrize("scale", ["fixed", "per_layer"])
@pytest.mark.parametrize("rounding", ["round", "raw"])
@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=st.data())
def test_a4w8_rtl_equals_the_naive_rule(rounding, scale, drawn):
    """``per_layer``: each GEMM's activations are scaled down by a drawn power of two, so
    that every grid step 2**0 .. 2**4 occurs; one design runs them all, its scale register
    set per GEMM."""
    rows, cols, signed, _, gemms = drawn.draw(batch(False))
    if scale == "per_layer":
        gemms = [(a >> drawn.draw(st.integers(0, 7)), b) for a, b in gemms]
    design = RtlDesign("t", "a4w8", 2, {"rounding": rounding, "scale": scale}, rows, cols,
                       signed, exact_acc_bits(32))
    scheds = [_schedule(a.shape[1], 2) for a, _ in gemms]
    runs = run_gemms(design, [(a, b, s) for (a, b), s in zip(gemms, scheds)])
    for (a, b), sched, rtl in zip(gemms, scheds, runs):
        shift = naive_a4w8_shift(a.tolist(), scale)
        outputs, counters, stats, steps = naive_a4w8_gemm(a.tolist(), b.tolist(), shift,
                                                          rounding)
        np.testing.assert_array_equal(rtl.outputs, np.array(outputs))
        assert _nonzero(rtl.counters) == _nonzero(counters)
        assert _nonzero(rtl.stats) == _nonzero(stats)
        ref = run_reference_array(a, b, rows, cols, sched, "a4w8",
                                  {"shift": str(shift), "rounding": rounding})
        np.testing.assert_array_equal(rtl.outputs, ref.outputs)
        assert _nonzero(rtl.counters) == _nonzero(ref.counters)
        folds = -(-a.shape[0] // rows) * -(-b.shape[1] // cols)
        assert rtl.fold_cycles == [steps + 2 * rows + cols - 2] * folds


def write_pair_trace(path, rng: np.random.Generator, two_of_four: bool = False) -> dict:
    """A trace written with numpy (docs/trace-format.md): an unsigned conv2d and a signed
    linear layer; returns each layer's GEMM operands and output shape."""
    x = (rng.integers(0, 256, (1, 6, 5, 5)) * (rng.random((1, 6, 5, 5)) < 0.6)).astype(np.uint8)
    w = rng.integers(-127, 128, (4, 6, 3, 3)).astype(np.int8)
    fc_x = (rng.integers(-128, 128, (3, 13)) * (rng.random((3, 13)) < 0.7)).astype(np.int8)
    fc_w = rng.integers(-127, 128, (5, 13)).astype(np.int8)
    cols, wmat = conv_gemm(x, w)
    fc_b = fc_w.T.astype(np.int64)
    if two_of_four:  # prune in GEMM order (K tap-major, channel-minor), then write back
        for b in (wmat, fc_b):
            for g in range(0, b.shape[0], 4):
                for j in range(b.shape[1]):
                    nz = np.flatnonzero(b[g:g + 4, j])
                    b[g + nz[2:], j] = 0
        for f in range(4):
            for r in range(3):
                for s in range(3):
                    for c in range(6):
                        w[f, c, r, s] = wmat[(r * 3 + s) * 6 + c, f]
        fc_w = fc_b.T.astype(np.int8)
    save_conv_fc(path, x, w, fc_x, fc_w)
    return {"conv": (cols, wmat, (1, 4, 3, 3)), "fc": (fc_x.astype(np.int64), fc_b, (3, 5))}


SHIPPED = [("sparq_5opt_16x16", 4, 5, "adjacent"), ("sparq_3opt_16x16", 4, 3, "adjacent"),
           ("sparq_2opt_16x16", 4, 2, "adjacent"), ("sparq_5opt_stc_16x16", 4, 5, "stc"),
           ("sparq_5opt_32x32", 4, 5, "adjacent")]


@pytest.mark.parametrize(("arch", "bits", "options", "pairing"), SHIPPED)
def test_verify_workload_saves_outputs_equal_to_naive_and_sasim_run(cli, tmp_path, arch, bits,
                                                                    options, pairing):
    """The judged path: trace -> ``rtl verify --workload --save-outputs`` -> outputs.npz
    equals the naive rule and ``sasim run --save-outputs``; per layer, folds, fold cycles,
    cycles, counters and stats equal ``sasim run``'s summary."""
    gemms = write_pair_trace(tmp_path / "t.npz", np.random.default_rng(bits * 10 + options),
                             two_of_four=pairing == "stc")
    crop = ("--set", "array.rows=4", "--set", "array.cols=3")
    result = cli("rtl", "verify", "--arch", arch, *crop, "--workload", tmp_path / "t.npz",
                 "--save-outputs", tmp_path / "rtl", "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["verdict"] == "match"
    run = cli("run", "--arch", arch, *crop, "--workload", tmp_path / "t.npz",
              "--out", tmp_path / "run", "--save-outputs")
    assert run.status == 0, run.err
    saved = np.load(tmp_path / "rtl" / "outputs.npz", allow_pickle=False)
    theirs = np.load(tmp_path / "run" / "outputs.npz", allow_pickle=False)
    assert sorted(saved.files) == ["conv.output", "fc.output"]
    for name, (a, b, shape) in gemms.items():
        expected = np.array(naive_sparq_gemm(a.tolist(), b.tolist(), bits, options, "round",
                                             pairing)[0])
        if len(shape) == 4:
            expected = expected.T.reshape(shape)
        np.testing.assert_array_equal(saved[f"{name}.output"], expected)
        np.testing.assert_array_equal(saved[f"{name}.output"], theirs[f"{name}.output"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for mine, layer in zip(report["layers"], summary["layers"]):
        assert mine["name"] == layer["name"]
        for key in ("folds", "cycles_per_fold", "compute_cycles", "counters", "stats"):
            assert mine[key] == layer[key], key


@pytest.mark.parametrize("scale", ["fixed", "per_layer"])
def test_a4w8_verify_workload_agrees_with_sasim_run(cli, tmp_path, scale):
    gemms = write_pair_trace(tmp_path / "t.npz", np.random.default_rng(48))
    crop = ("--set", "array.rows=3", "--set", "array.cols=4", "--set", f"pe.scale={scale}")
    result = cli("rtl", "verify", "--arch", "a4w8_16x16", *crop, "--workload",
                 tmp_path / "t.npz", "--save-outputs", tmp_path / "rtl", "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    run = cli("run", "--arch", "a4w8_16x16", *crop, "--workload", tmp_path / "t.npz", "--json")
    assert run.status == 0, run.err
    saved = np.load(tmp_path / "rtl" / "outputs.npz", allow_pickle=False)
    for name, (a, b, shape) in gemms.items():
        shift = naive_a4w8_shift(a.tolist(), scale)
        expected = np.array(naive_a4w8_gemm(a.tolist(), b.tolist(), shift, "round")[0])
        if len(shape) == 4:
            expected = expected.T.reshape(shape)
        np.testing.assert_array_equal(saved[f"{name}.output"], expected)
    for mine, layer in zip(report["layers"], json.loads(run.out)["layers"]):
        for key in ("folds", "cycles_per_fold", "compute_cycles", "counters", "stats"):
            assert mine[key] == layer[key], key


def test_a_wrong_window_is_caught_with_fold_pe_and_cycle(cli, monkeypatch):
    """The RTL built with 3 placement options while the arch has 5: exit 1 and the first
    differing fold, PE and cycle (the verdict is not the RTL agreeing with itself)."""
    from simulator.rtl import design as design_module

    real = design_module.design_from_arch

    def three_options(arch, source, **kw):
        design = real(arch, source, **kw)
        return type(design)(**{**design.params(), "options": {**design.options, "options": 3}})

    monkeypatch.setattr("simulator.rtl.commands.design_from_arch", three_options)
    monkeypatch.setattr("simulator.rtl.design.design_from_arch", three_options)
    result = cli("rtl", "verify", "--arch", "sparq_5opt_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=2", "--cases", "3", "--json")
    assert result.status == 1
    mismatch = json.loads(result.out)["mismatch"]
    assert mismatch["what"] == "outputs"
    assert mismatch["pe"] is not None and mismatch["cycle"] is not None


def test_wrong_window_counts_alone_are_caught(cli, monkeypatch):
    """A lossy window counted as exact (outputs still right): the counters mismatch names
    the two products' classes at a PE and cycle."""
    from simulator.rtl.pe import sparq

    real = sparq.SparqDatapath._event

    def no_lossy(self, m, fields):
        fields.lossy0, fields.lossy1 = 0, 0
        real(self, m, fields)

    monkeypatch.setattr(sparq.SparqDatapath, "_event", no_lossy)
    result = cli("rtl", "verify", "--arch", "sparq_5opt_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=2", "--cases", "3", "--json")
    assert result.status == 1
    mismatch = json.loads(result.out)["mismatch"]
    assert mismatch["what"] == "counters"
    assert mismatch["pe"] is not None and "+" in mismatch["rtl"]


def test_emit_writes_the_row_edge_unit(cli, tmp_path):
    out = tmp_path / "rtl"
    result = cli("rtl", "emit", "--arch", "sparq_5opt_stc_16x16", "--set", "array.rows=2",
                 "--set", "array.cols=2", "--out", out)
    assert result.status == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["params.json", "sasim_os_array.v",
                                                     "sasim_pe.v", "sasim_row_edge.v"]
    params = json.loads((out / "params.json").read_text())
    assert params["edge_top"] == "sasim_row_edge" and params["threads"] == 4
    assert params["options"] == {"window_bits": 4, "options": 5, "rounding": "round",
                                 "pairing": "stc"}
    assert "module sasim_row_edge" in (out / "sasim_row_edge.v").read_text()


def test_synth_reports_the_pe_and_its_share_of_the_row_edge(cli):
    """The PE's registers hold the windows, not the activations: per multiplier a 4-bit
    mantissa, a 3-bit position and a sign, plus merge, borrower and two lossy probes (20),
    two weights (16), two valid bits and the 32-bit accumulator."""
    result = cli("rtl", "synth", "--arch", "sparq_5opt_16x16", "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["cells"]["$_DFF_P_"] == 20 + 16 + 2 + 32
    assert report["edge_transistors"] > 0
    share = (report["transistors"] + report["edge_transistors"] / 16) / report[
        "dense_transistors"]
    assert report["ratio_with_edge_share"] == pytest.approx(share, abs=1e-4)
    assert report["ratio_to_dense"] > 1.0
