"""Narrow accumulators (docs/accumulators.md, docs/hardware-spec.md §8): the kernel against
the naive twin bit for bit, the step order against the register-level reference array, the
fast path, the config checks, area and energy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive import naive_schedule
from naive_accumulator import NaiveFormat, naive_accumulate, naive_step_partials
from simulator.config.accumulator import chunk_bias_offset
from simulator.config.arch import arch_from_mapping
from simulator.errors import ConfigError
from simulator.hw import accumulator as acc_module
from simulator.hw.gemm import run_groups
from simulator.hw.pe.registry import get_pe_model, option_types
from simulator.hw.reference_array import run_reference_array
from simulator.workloads.layers import Layer

#: Formats under test: int-b wrap, int-b saturate, 12-bit floats (1+4+7) with and without
#: chunks, all rounding / underflow / overflow modes.
FORMATS = [
    {"type": "int", "bits": 14, "overflow": "wrap"},
    {"type": "int", "bits": 12, "overflow": "saturate"},
    {"type": "int", "bits": 17, "overflow": "wrap", "chunk": 4},
    {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 1, "chunk": 4},
    {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 0, "chunk": 16,
     "underflow": "keep", "rounding": "floor"},
    {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": -2},
    {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 1, "overflow": "inf"},
    {"type": "float", "exponent_bits": 3, "mantissa_bits": 4, "bias": -3, "chunk": 3,
     "overflow": "inf", "underflow": "keep"},
    {"type": "float", "exponent_bits": 5, "mantissa_bits": 6, "rounding": "floor",
     "chunk": 2},
    # wider than the binary32 second accumulator: the general kernel (double rounding)
    {"type": "float", "exponent_bits": 2, "mantissa_bits": 26, "bias": -24, "chunk": 3,
     "underflow": "keep"},
]


def design(pe: dict, accumulator: dict):
    arch = arch_from_mapping({"schema_version": 1, "pe": {**pe, "accumulator": accumulator}},
                             "test.yaml", option_types())
    return get_pe_model(arch.pe, arch.array)


def naive_formats(acc: dict):
    """The naive twin's (product, running, outer) formats for a config mapping."""
    if acc["type"] == "int":
        overflow = acc.get("overflow", "saturate")
        return (None, NaiveFormat("int", acc["bits"], overflow),
                NaiveFormat("int", 64, overflow))
    e, m = acc["exponent_bits"], acc["mantissa_bits"]
    bias = acc.get("bias", 2 ** (e - 1) - 1)
    modes = (acc.get("rounding", "nearest_even"), acc.get("underflow", "flush"),
             acc.get("overflow", "saturate"))
    offset = chunk_bias_offset(acc["chunk"]) if acc.get("chunk") else 0
    return (NaiveFormat("float", e, m, bias, *modes),
            NaiveFormat("float", e, m, bias - offset, *modes),
            NaiveFormat("float", 8, 23, 127, *modes))


@st.composite
def gemm_case(draw):
    m, kd, n = draw(st.integers(1, 5)), draw(st.integers(1, 40)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    signed = draw(st.booleans())
    lo, hi = (-128, 128) if signed else (0, 256)
    density = draw(st.floats(0.2, 1.0))
    a = rng.integers(lo, hi, (m, kd)) * (rng.random((m, kd)) < density)
    b = rng.integers(-128, 128, (kd, n)) * (rng.random((kd, n)) < density)
    if draw(st.booleans()):  # the rules' edges: nibble boundaries, |w| = 16, saturation
        edges_a = ([-128, -127, -17, -16, -15, 15, 16, 17, 31, 127] if signed
                   else [1, 15, 16, 17, 24, 31, 127, 128, 232, 247, 248, 255])
        a = rng.choice(edges_a, (m, kd)) * (rng.random((m, kd)) < density)
        b = rng.choice([-128, -17, -16, -15, -1, 1, 15, 16, 17, 127], (kd, n))
    return a.astype(np.int64), b.astype(np.int64)


def layer_for(a, b) -> Layer:
    return Layer(name="g", op="gemm", in_channels=a.shape[1], out_channels=b.shape[1],
                 batch=a.shape[0])


def check_against_naive(pe_map, acc, a, b, rule, params):
    pe = design(pe_map, acc)
    run = run_groups(pe, layer_for(a, b), a[None], b[None])
    product, running, outer = naive_formats(acc)
    totals = {"overflow": 0, "underflow": 0, "swamping": 0}
    for m in range(a.shape[0]):
        for n in range(b.shape[1]):
            partials = naive_step_partials(rule, a.tolist(), b.tolist(), m, n, params)
            value, events = naive_accumulate(partials, product, running, outer,
                                             acc.get("chunk"))
            assert run.outputs[0, m, n] == value, (m, n, partials)
            for key in totals:
                totals[key] += events[key]
    fast_int = acc["type"] == "int" and not any(totals.values())
    for key, count in totals.items():
        # The int fast path reports no events exactly when there are none.
        assert run.stats[f"accumulator_{key}"] == count or fast_int


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_case(), acc=st.sampled_from(FORMATS))
def test_dense_equals_naive_twin(case, acc):
    a, b = case
    check_against_naive({"type": "dense"}, acc, a, b, "dense", None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_case(), acc=st.sampled_from(FORMATS), threads=st.sampled_from([2, 4]),
       split=st.sampled_from(["contiguous", "interleaved"]),
       policy=st.sampled_from(["sparsity_aware", "msb_trim"]))
def test_sysmt_equals_naive_twin(case, acc, threads, split, policy):
    a, b = case
    sched = naive_schedule(a.shape[1], threads, split)
    check_against_naive({"type": "sysmt", "threads": threads, "thread_split": split,
                         "policy": policy}, acc, a, b, "sysmt",
                        (sched, policy, "round_half_even"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_case(), acc=st.sampled_from(FORMATS),
       window=st.sampled_from([(4, 5), (4, 2), (3, 6)]))
def test_sparq_equals_naive_twin(case, acc, window):
    a, b = case
    check_against_naive({"type": "sparq", "window_bits": window[0], "options": window[1],
                         "rounding": "round"}, acc, a, b, "sparq", (*window, "round"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_case(), pe_map=st.sampled_from([
    {"type": "dense"}, {"type": "sysmt", "threads": 2}, {"type": "sysmt", "threads": 4},
    {"type": "sparq"}, {"type": "a4w8"}]))
def test_feed_is_the_reference_arrays_order(case, pe_map):
    """With a 63-bit wrap register forced through the kernel, the sums of the fed partial
    sums equal the register-level reference array's outputs: the kernel sees the PE-steps
    the array's PEs add, rule for rule."""
    a, b = case
    pe = design(pe_map, {"type": "int", "bits": 63, "overflow": "wrap"})
    layer = layer_for(a, b)
    feed = pe.accumulation_feed(layer, a)
    outputs, events = acc_module._run_kernel(feed, pe.options.accumulator, a, b)
    rule = type(pe).reference_rule()
    params = {}
    for (key, choices), code in zip(rule.options.items(), feed.params):
        params[key] = next(name for name, c in choices.items() if c == code)
    ref = run_reference_array(a, b, 4, 3, feed.sched, pe.options.type, params)
    np.testing.assert_array_equal(outputs, ref.outputs)
    assert not events.any()
    np.testing.assert_array_equal(outputs, pe.simulate_gemm(layer, a, b).outputs)


def test_int32_is_the_exact_gemm_on_realistic_k():
    """A 32-bit integer accumulator equals the exact GEMM on int8 data of a real layer's K."""
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (33, 4608))
    b = rng.integers(-128, 128, (4608, 17))
    for pe_map in ({"type": "dense"}, {"type": "sysmt", "threads": 2}):
        pe = design(pe_map, {"type": "int", "bits": 32, "overflow": "wrap"})
        run = run_groups(pe, layer_for(a, b), a[None], b[None])
        expected = pe.simulate_gemm(layer_for(a, b), a, b).outputs
        np.testing.assert_array_equal(run.outputs[0], expected)
        if pe_map["type"] == "dense":
            np.testing.assert_array_equal(run.outputs[0], a @ b)


def test_wide_int_takes_the_fast_path(monkeypatch):
    """An int register no partial sum can overflow never runs the kernel."""
    calls = []
    monkeypatch.setattr(acc_module, "_run_kernel", lambda *args: calls.append(1))
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (8, 64)), rng.integers(-128, 128, (64, 5))
    pe = design({"type": "dense"}, {"type": "int", "bits": 24})
    run = run_groups(pe, layer_for(a, b), a[None], b[None])
    assert not calls
    np.testing.assert_array_equal(run.outputs[0], a @ b)


def test_overflow_counts_and_saturation():
    a = np.full((1, 4), 127, dtype=np.int64)
    b = np.full((4, 1), 127, dtype=np.int64)
    sat = run_groups(design({"type": "dense"}, {"type": "int", "bits": 16}),
                     layer_for(a, b), a[None], b[None])
    assert sat.outputs[0, 0, 0] == 2**15 - 1
    assert sat.stats["accumulator_overflow"] == 2  # steps 3 and 4 (16129*3 > 32767)
    wrap = run_groups(design({"type": "dense"}, {"type": "int", "bits": 16,
                                                 "overflow": "wrap"}),
                      layer_for(a, b), a[None], b[None])
    assert wrap.outputs[0, 0, 0] == 4 * 16129 - 2**16


def test_swamping_is_counted():
    """A 1+4+7 float at bias 1: 1000 + 3 steps of 1, each below half an ulp (4)."""
    a = np.array([[1000, 1, 1, 1]], dtype=np.int64)
    b = np.ones((4, 1), dtype=np.int64)
    acc = {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 1}
    run = run_groups(design({"type": "dense"}, acc), layer_for(a, b), a[None], b[None])
    assert run.outputs[0, 0, 0] == 1000
    assert run.stats["accumulator_swamping"] == 3
    # Exactly half an ulp is not smaller than it: not counted (and the tie rounds to even).
    a = np.array([[1000, 2]], dtype=np.int64)
    run = run_groups(design({"type": "dense"}, acc), layer_for(a, b[:2]), a[None], b[None, :2])
    assert run.outputs[0, 0, 0] == 1000
    assert run.stats["accumulator_swamping"] == 0


@pytest.mark.parametrize("accumulator, message", [
    ({"type": "int", "bits": 12, "chunk": 0}, "chunk: expected a number from 1"),
    ({"type": "float", "exponent_bits": 8, "mantissa_bits": 30}, "at most 32 bits"),
    ({"type": "float", "exponent_bits": 9, "mantissa_bits": 30}, "not 40"),
    ({"type": "int", "bits": 0}, "bits: expected a number from 2 to 64"),
    ({"type": "int", "bits": 12, "overflow": "sideways"}, "overflow: expected one of"),
    ({"type": "int"}, "bits: required"),
    ({"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "overflow": "wrap"},
     "saturates or goes to inf"),
    ({"type": "float", "exponent_bits": 3, "mantissa_bits": 8}, "not an integer"),
    ({"bits": 12}, "type is exact"),
])
def test_bad_formats_are_one_clear_line(accumulator, message):
    with pytest.raises(ConfigError, match=message) as info:
        design({"type": "dense"}, accumulator)
    assert "test.yaml: arch.pe.accumulator" in str(info.value)
    assert "\n" not in str(info.value)


def test_composition_follows_the_format():
    dense = design({"type": "dense"}, {"type": "exact"})
    base = acc_module.pe_composition(dense)
    assert base.parts == dense.composition().parts
    int12 = acc_module.pe_composition(design({"type": "dense"}, {"type": "int", "bits": 12}))
    assert int12.parts["adder_32"] == pytest.approx(12 / 32)
    assert int12.parts["register_bit"] == base.parts["register_bit"] - 2 * (32 - 12)
    fp = acc_module.pe_composition(design({"type": "sysmt"}, {
        "type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 1, "chunk": 16}))
    assert "adder_32" not in fp.parts
    assert fp.parts["fp_adder_16"] == pytest.approx(12 / 16)  # the 12-bit running sum
    # the binary32 second accumulator, at its synthesised share (docs/accumulators.md)
    share = acc_module.OUTER_FLOAT_ADDER_SHARE
    assert fp.parts["fp_adder_32"] == pytest.approx(share)
    assert fp.events["single"]["fp_adder_32"] == pytest.approx(share / 16)


def test_flush_cycles_add_steps():
    pe = design({"type": "dense"}, {"type": "int", "bits": 16, "chunk": 8,
                                    "flush_cycle": True})
    layer = Layer(name="g", op="gemm", in_channels=20, out_channels=3, batch=2)
    assert acc_module.layer_steps(pe, layer) == 20 + 3


def test_accumulator_layers_override_one_layer():
    """``accumulator_layers`` gives one layer its own format; the others keep the design's."""
    arch = arch_from_mapping({"schema_version": 1, "pe": {
        "type": "dense", "accumulator_layers": {"narrow": {"type": "int", "bits": 12}}}},
        "test.yaml", option_types())
    pe = get_pe_model(arch.pe, arch.array)
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 256, (4, 64)), rng.integers(-128, 128, (64, 3))
    wide = Layer(name="wide", op="gemm", in_channels=64, out_channels=3, batch=4)
    narrow = Layer(name="narrow", op="gemm", in_channels=64, out_channels=3, batch=4)
    np.testing.assert_array_equal(run_groups(pe, wide, a[None], b[None]).outputs[0], a @ b)
    run = run_groups(pe, narrow, a[None], b[None])
    assert run.stats["accumulator_overflow"] > 0
    assert np.abs(run.outputs[0]).max() <= 2**11
    assert not pe.exact  # a narrow layer anywhere: outputs are not exact by construction


@pytest.mark.parametrize("acc", [f for f in FORMATS if f["type"] == "float"
                                 and f.get("overflow") != "inf" and f["mantissa_bits"] <= 22])
def test_lane_kernels_equal_the_int64_kernel(acc):
    """The int32 and float32 dense kernels (docs/performance.md, "Narrow accumulators")
    against the int64 one, which the naive twin checks, on GEMMs large enough to hit every
    event and the rules' ties (powers of two, saturation)."""
    from simulator.kernels import accumulator as kernel

    config = design({"type": "dense"}, acc).options.accumulator
    prod, running, outer = acc_module.formats(config)
    rng = np.random.default_rng(7)
    m, kd, n = 12, 160, 40
    values = np.array([1, 2, 3, 4, 8, 16, 24, 64, 96, 127, 128, 255])
    a = rng.choice(values, (m, kd)) * (rng.random((m, kd)) < 0.6)
    b = rng.choice(np.concatenate([values[values <= 128], -values[values <= 128]]), (kd, n))
    a = np.concatenate([a, rng.integers(0, 256, (m, kd))]).astype(np.int64)
    b = (b * (rng.random((kd, n)) < 0.8)).astype(np.int64)
    chunk = config.chunk or 0
    results = []
    for dtype in (np.int64, np.int32, np.float32):
        outputs = np.zeros((a.shape[0], n), dtype=np.int64)
        events = np.zeros(3, dtype=np.int64)
        args = (a, b.astype(dtype), prod, running, outer, chunk, outputs, events, 0, a.shape[0])
        if dtype == np.int64:
            kernel.accumulate_dense_flat(*args)
        else:
            kernel.accumulate_dense_lanes(*args, np.zeros((8, n), dtype))
        results.append((outputs, events))
    assert results[0][1][2] > 0  # swamping (overflow and underflow where the format has them)
    for outputs, events in results[1:]:
        assert np.array_equal(outputs, results[0][0])
        assert np.array_equal(events, results[0][1])


#: Formats of the direct kernel: rounding to nearest even, products that cannot underflow
#: (bias >= 1), no infinities; sums that underflow and saturate, with and without chunks.
DIRECT_FORMATS = [
    {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 1, "chunk": 4},
    {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 1, "chunk": 16},
    {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 1},
    {"type": "float", "exponent_bits": 3, "mantissa_bits": 5, "bias": 1, "chunk": 3,
     "underflow": "keep"},
    {"type": "float", "exponent_bits": 5, "mantissa_bits": 6, "chunk": 2},
]


@pytest.mark.parametrize("acc", DIRECT_FORMATS)
@pytest.mark.parametrize("period", [1, 3, 1000])
def test_direct_kernel_equals_the_int64_kernel_and_the_exact_gemm(acc, period):
    """The dense float32 kernel with the exact sums (``accumulate_dense_f32_exact``,
    docs/performance.md, "Narrow accumulators") against the int64 kernel (values and events)
    and ``a @ b`` (its exact sums, moved to int64 every ``period`` steps), on the tie-heavy
    GEMMs of the lane kernels' test; products that saturate included."""
    from simulator.kernels import accumulator as kernel

    config = design({"type": "dense"}, acc).options.accumulator
    prod, running, outer = acc_module.formats(config)
    assert int(prod[4]) <= 0  # no product underflows
    rng = np.random.default_rng(11)
    m, kd, n = 13, 150, 37
    values = np.array([1, 2, 3, 4, 8, 16, 24, 64, 96, 127, 128, 255])
    a = rng.choice(values, (m, kd)) * (rng.random((m, kd)) < 0.6)
    a = np.concatenate([a, rng.integers(0, 256, (m, kd))]).astype(np.int64)
    b = rng.choice(np.concatenate([values[values <= 128], -values[values <= 128]]), (kd, n))
    b = (b * (rng.random((kd, n)) < 0.8)).astype(np.int64)
    chunk = config.chunk or 0
    ref_out = np.zeros((a.shape[0], n), dtype=np.int64)
    ref_events = np.zeros(3, dtype=np.int64)
    kernel.accumulate_dense_flat(a, b, prod, running, outer, chunk, ref_out, ref_events, 0,
                                 a.shape[0])
    outputs = np.full((a.shape[0], n), -7, dtype=np.int64)
    exact = np.full_like(outputs, -7)
    events = np.zeros(3, dtype=np.int64)
    for lo, hi in ((0, 5), (5, a.shape[0])):  # row blocks as the threads take them
        kernel.accumulate_dense_f32_exact(a, b.astype(np.float32), prod, running, outer,
                                          chunk, period, outputs, exact, events, lo, hi)
    assert ref_events.sum() > 0  # the format saturates, underflows or swamps here
    np.testing.assert_array_equal(outputs, ref_out)
    np.testing.assert_array_equal(events, ref_events)
    np.testing.assert_array_equal(exact, a @ b)


def test_dense_direct_path_skips_the_product(monkeypatch):
    """A dense layer with the paper's 12-bit float runs one kernel pass: the PE's own GEMM is
    not called, the exact sums come from the kernel, and the run equals the path through
    the PE's product plus :func:`accumulate` (outputs, counters, stats)."""
    acc = {"type": "float", "exponent_bits": 4, "mantissa_bits": 7, "bias": 1, "chunk": 16}
    pe = design({"type": "dense"}, acc)
    rng = np.random.default_rng(5)
    a = (rng.integers(0, 256, (40, 300)) * (rng.random((40, 300)) < 0.5)).astype(np.int64)
    b = rng.integers(-128, 128, (300, 24)).astype(np.int64)
    layer = layer_for(a, b)
    direct = acc_module.accumulate_direct(pe, layer, a, b)
    assert direct is not None
    np.testing.assert_array_equal(direct.exact, a @ b)
    slow = acc_module.accumulate(pe, layer, a, b, pe.simulate_gemm(layer, a, b))
    np.testing.assert_array_equal(direct.outputs, slow.outputs)
    assert direct.counters == slow.counters and direct.stats == slow.stats

    def no_product(*args):
        raise AssertionError("the PE's product was computed")

    monkeypatch.setattr(type(pe), "simulate_gemm", no_product)
    run = run_groups(pe, layer, a[None], b[None])
    np.testing.assert_array_equal(run.outputs[0], slow.outputs)
    # floor rounding is not the direct kernel's: the PE's product path again
    floor = design({"type": "dense"}, {**acc, "rounding": "floor"})
    assert acc_module.accumulate_direct(floor, layer, a, b) is None
