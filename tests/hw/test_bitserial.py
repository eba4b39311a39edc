"""The bit-serial baseline and weight truncation against the naive twins
(tests/naive_swis.py) and the register-level reference array, bit for bit and cycle for cycle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naive_swis import bitserial_reference_operands, naive_bitserial_run, naive_round_to_bits
from simulator import api
from simulator.config.arch import ArrayConfig
from simulator.errors import ConfigError
from simulator.hw.pe.bitserial import (BitSerialOptions, BitSerialPE, quantize_to_bits,
                                       serial_codes)
from simulator.hw.reference_array import run_reference_array
from simulator.hw.timing import fold_timing
from simulator.workloads.layers import Layer

CASES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Derived by hand from "drop 8 - p LSBs, round half to even, saturate to the p-bit range":
# (value, bits, signed, expected).
ROUNDING_TABLE = [
    (20, 3, True, 32),      # 20 / 32 = 0.625 -> 1
    (-9, 3, True, 0),       # -0.28 -> 0
    (44, 3, True, 32),      # 1.375 -> 1
    (48, 3, True, 64),      # 1.5, tie, odd quotient 1 -> 2
    (80, 3, True, 64),      # 2.5, tie, even quotient 2 stays
    (127, 3, True, 96),     # 3.97 -> 4, saturates to the 3-bit maximum 3
    (-128, 3, True, -128),  # -4: the 3-bit minimum
    (-112, 3, True, -128),  # -3.5, tie -> -4
    (127, 4, True, 112),    # 7.94 -> 8, saturates to 7
    (-24, 4, True, -32),    # -1.5, tie -> -2
    (-8, 4, True, 0),       # -0.5, tie -> 0
    (255, 4, False, 240),   # unsigned: 15.9 -> 16, saturates to 15
    (24, 4, False, 32),     # 1.5 -> 2
    (3, 1, False, 0),       # one bit: step 128
    (100, 1, False, 128),
    (100, 1, True, 0),      # one signed bit holds only -128 and 0
    (-77, 8, True, -77),    # 8 bits: unchanged
]


@pytest.mark.parametrize(("value", "bits", "signed", "expected"), ROUNDING_TABLE)
def test_rounding_hand_table(value, bits, signed, expected):
    assert naive_round_to_bits(value, bits, signed) == expected
    assert quantize_to_bits(np.array([value]), bits, signed).tolist() == [expected]


@pytest.mark.parametrize("bits", range(1, 9))
def test_rounding_every_value_matches_naive(bits):
    for signed, values in ((True, range(-128, 128)), (False, range(256))):
        fast = quantize_to_bits(np.array(list(values)), bits, signed)
        assert fast.tolist() == [naive_round_to_bits(v, bits, signed) for v in values]
        step = 2 ** (8 - bits)
        assert np.all(fast % step == 0)
        codes = serial_codes(fast, bits)
        assert codes.min() >= 0 and codes.max() < 2 ** bits


@st.composite
def bitserial_cases(draw):
    m, kd, n = draw(st.integers(1, 6)), draw(st.integers(1, 17)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    signed = draw(st.booleans())
    a = rng.integers(-128, 128, (m, kd)) if signed else rng.integers(0, 256, (m, kd))
    a = a * (rng.random((m, kd)) >= draw(st.sampled_from([0.0, 0.4, 0.8])))
    b = rng.integers(-128, 128, (kd, n))
    if draw(st.booleans()):
        b = rng.choice(np.array([-128, -1, 0, 1, 127, 24, -24, 48, 80]), (kd, n))
    b = b * (rng.random((kd, n)) >= draw(st.sampled_from([0.0, 0.5])))
    options = BitSerialOptions(bits=draw(st.integers(1, 8)),
                               serial_operand=draw(st.sampled_from(["weight", "activation"])),
                               group_size=draw(st.integers(1, 9)))
    return (a.astype(np.int64), b.astype(np.int64), options, draw(st.integers(1, 4)),
            draw(st.integers(1, 4)))


@CASES
@given(case=bitserial_cases())
def test_fast_equals_naive_and_reference_array(case):
    a, b, options, rows, cols = case
    (m, kd), n = a.shape, b.shape[1]
    pe = BitSerialPE(options, ArrayConfig(rows=rows, cols=cols))
    layer = Layer(name="g", op="gemm", in_channels=kd, out_channels=n, batch=m)
    fast = pe.simulate_gemm(layer, a, b)
    cycles = fold_timing(layer.gemm, rows, cols, "os", "native",
                         pe.reduction_steps(layer)).compute_cycles
    signed = bool(a.min() < 0)
    outputs, counters, stats, steps, naive_cycles = naive_bitserial_run(
        a.tolist(), b.tolist(), options.bits, options.serial_operand, options.group_size,
        rows, cols, signed)
    assert fast.outputs.tolist() == outputs
    assert fast.counters == counters
    assert fast.stats == stats
    assert pe.reduction_steps(layer) == steps
    assert cycles == naive_cycles
    if options.bits == 8:
        np.testing.assert_array_equal(fast.outputs, a @ b)

    a_x, b_x, sched = bitserial_reference_operands(a.tolist(), b.tolist(), options.bits,
                                                   options.serial_operand,
                                                   options.group_size, signed)
    ref = run_reference_array(np.array(a_x, dtype=np.int64), np.array(b_x, dtype=np.int64),
                              rows, cols, np.array(sched, dtype=np.int64), "bitserial",
                              {"serial_operand": options.serial_operand})
    assert ref.outputs.tolist() == outputs
    assert ref.counters == counters
    assert ref.cycles == cycles
    assert ref.stats == {"shifts": stats["shifts"], "active_lanes": stats["active_lanes"]}


def test_eight_bits_match_the_dense_array_throughput():
    """G = p = 8: one K element per cycle on average, like the dense PE, and exact."""
    workload = api.load_workload("digits_int8")
    bitserial = api.simulate(api.load_arch("bitserial_8b_16x16"), workload).summary()
    assert bitserial["sqnr_db"] is None and bitserial["outputs_match_trace"]
    for layer in bitserial["layers"]:
        assert layer["steps_per_fold"] == -(-layer["k"] // 8) * 8
        assert layer["counters"]["idle"] == 0
        assert sum(layer["counters"].values()) == layer["stats"]["shifts"]
    activation = api.simulate(api.load_arch("bitserial_8b_16x16",
                                            ["pe.serial_operand=activation"]),
                              workload).summary()
    assert activation["sqnr_db"] is None
    assert activation["total_cycles"] == bitserial["total_cycles"]


def test_truncation_loses_precision_as_bits_fall():
    workload = api.load_workload("digits_int8")
    errors = []
    for bits in (6, 4, 3, 2):
        summary = api.simulate(api.load_arch("bitserial_4b_16x16", [f"pe.bits={bits}"]),
                               workload).summary()
        errors.append(summary["stats"]["weight_sq_error"])
        assert summary["stats"]["storage_bits"] == bits * summary["stats"]["weights"]
    assert errors == sorted(errors) and errors[0] > 0


@pytest.mark.parametrize(("sets", "match"), [
    (["pe.bits=0"], r"arch\.pe\.bits: expected an integer in 1\.\.8"),
    (["pe.bits=9"], r"arch\.pe\.bits"),
    (["pe.serial_operand=both"], r"arch\.pe\.serial_operand"),
    (["pe.group_size=63"], r"arch\.pe\.group_size: expected an integer in 1\.\.62"),
    (["pe.shifts=3"], r"arch\.pe: unknown key 'shifts'"),
])
def test_bad_options_name_the_key(sets, match):
    with pytest.raises(ConfigError, match=match):
        api.load_arch("bitserial_8b_16x16", sets)


def test_reference_rejects_bad_bit_operands():
    a = np.array([[1, 2, 0]], dtype=np.int64)  # lanes 0, 1; slot 2 is the position row
    b = np.array([[2], [1], [0]], dtype=np.int64)  # weight bit 2: not a bit
    sched = np.array([[0], [1], [2]], dtype=np.int64)
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        run_reference_array(a, b, 1, 1, sched, "bitserial", {"serial_operand": "weight"})
    b[0, 0] = -1
    result = run_reference_array(a, b, 1, 1, sched, "bitserial", {"serial_operand": "weight"})
    assert result.outputs.tolist() == [[-1 + 2]]  # (-1 * 1 + 1 * 2) << position 0


A3 = np.ones((2, 3), dtype=np.int64)
B3 = np.ones((3, 3), dtype=np.int64)
S3 = np.array([[[0, 1, 2]], [[2, 1, -1]]], dtype=np.int64)  # 2 column folds on 2 columns


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"fold_steps": None}, "needs fold_steps"),
    ({"fold_steps": np.array([3], dtype=np.int64)}, "2 entries"),
    ({"fold_steps": np.array([3, 0], dtype=np.int64)}, r"1\.\.3"),
    ({"fold_steps": np.array([3, 4], dtype=np.int64)}, r"1\.\.3"),
    ({"sched": np.zeros((3, 1, 3), dtype=np.int64)}, "column folds"),
    ({"sched": np.array([[[0, 0, 1]], [[0, 1, 2]]], dtype=np.int64)}, r"sched\[0\] feeds"),
    ({"sched": S3[0], "fold_steps": np.array([3], dtype=np.int64)}, "3-D"),
])
def test_reference_rejects_bad_fold_schedules(kwargs, match):
    arguments = {"A": A3, "B": B3, "rows": 2, "cols": 2, "sched": S3, "rule": "dense",
                 "fold_steps": np.array([3, 2], dtype=np.int64), **kwargs}
    with pytest.raises(ValueError, match=match):
        run_reference_array(**arguments)


def test_reference_per_fold_schedule_counts_each_fold():
    # Column fold 0 (columns 0, 1) runs 3 steps, fold 1 (column 2) runs 2 steps feeding
    # K = 2, 1 only: its output misses K index 0.
    result = run_reference_array(A3, B3 * np.array([1, 10, 100]), 2, 2, S3, "dense",
                                 fold_steps=np.array([3, 2], dtype=np.int64))
    assert result.outputs.tolist() == [[3, 30, 200]] * 2
    # Each fold: steps + 2 * rows + cols - 2.
    assert result.cycles == (3 + 4) + (2 + 4)


@pytest.mark.parametrize("group_size", [1, 2, 3, 5, 7, 8, 9, 12, 16])
def test_lane_patterns_pack_each_group(group_size):
    from simulator.hw.pe.bitserial import lane_patterns

    rng = np.random.default_rng(group_size)
    bits = rng.random((3, 4, 37)) < 0.5
    bits[0, 0] = True  # every lane set at once
    packed = lane_patterns(bits, group_size)
    groups = -(-37 // group_size)
    assert packed.shape == (3, 4, groups)
    for index in np.ndindex(3, 4):
        for q in range(groups):
            expected = sum(int(bits[index][k]) << (k - q * group_size)
                           for k in range(q * group_size, min(37, (q + 1) * group_size)))
            assert packed[index][q] == expected
