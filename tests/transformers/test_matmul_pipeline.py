"""Matmuls through the whole pipeline (docs/transformers.md): lowering, synthetic data, every
PE type with the right operand in the weight role, checked against the naive twins."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from naive import naive_schedule, naive_sysmt_gemm
from naive_sparq import naive_sparq_gemm
from simulator import api
from simulator.workloads.layers import Layer, LayerTensors, Workload
from simulator.workloads.lowering import (exact_output, gemm_to_output, im2col,
                                          im2col_nonzeros, weight_columns, weight_nonzeros,
                                          weights_to_gemm)
from simulator.workloads.synthetic import synthesize


def _workload(layer: Layer) -> Workload:
    return synthesize(Workload(name="mm", source="mm.yaml", layers=(layer,), format="yaml"))


def _naive_matmul(left: np.ndarray, right: np.ndarray, layer: Layer) -> np.ndarray:
    """(batch, heads, tokens, K) . (batch, kv_heads, K, N), query head h reading K/V head
    h // (heads // kv_heads), element by element."""
    out = np.zeros((layer.batch, layer.heads, layer.tokens, layer.out_channels), np.int64)
    shared = layer.heads // layer.right_heads
    for b in range(layer.batch):
        for h in range(layer.heads):
            for t in range(layer.tokens):
                for n in range(layer.out_channels):
                    out[b, h, t, n] = sum(int(left[b, h, t, k]) * int(right[b, h // shared, k, n])
                                          for k in range(layer.in_channels))
    return out


@pytest.mark.parametrize("kv_heads", [0, 1, 2])
def test_lowering_of_a_matmul_is_exact_and_round_trips(kv_heads):
    rng = np.random.default_rng(kv_heads)
    layer = Layer("s", "matmul", 5, 7, batch=2, heads=4, kv_heads=kv_heads, tokens=3,
                  activation_signed=True)
    left = rng.integers(-128, 128, (2, 4, 3, 5))
    right = rng.integers(-128, 128, (2, layer.right_heads, 5, 7))
    tensors = LayerTensors(input=left, weight=right)
    assert np.array_equal(exact_output(tensors, layer), _naive_matmul(left, right, layer))
    a, b = im2col(left, layer), weights_to_gemm(right, layer)
    assert a.shape == (layer.gemm.groups, layer.gemm.m, 5) and b.shape[0] == layer.gemm.groups
    assert np.array_equal(gemm_to_output(a @ b, layer), _naive_matmul(left, right, layer))
    assert np.array_equal(weight_columns(right, layer, 1, 2, 5), b[1][:, 2:5])
    assert np.array_equal(im2col_nonzeros(left, layer), np.count_nonzero(a, axis=1))
    assert np.array_equal(weight_nonzeros(right, layer), np.count_nonzero(b, axis=2))


def test_synthetic_matmul_operands_have_their_shapes_and_signs():
    layer = Layer("ctx", "matmul", 16, 8, batch=2, heads=4, kv_heads=2, tokens=3,
                  activation_signed=False, weight_signed=True)
    tensors = _workload(layer).tensors("ctx")
    assert tensors.input.shape == (2, 4, 3, 16) and tensors.input.min() >= 0
    assert tensors.weight.shape == (2, 2, 16, 8) and tensors.weight.min() < 0
    signed = Layer("q", "matmul", 16, 8, heads=2, tokens=4, activation_signed=True)
    assert _workload(signed).tensors("q").input.min() < 0


def _simulated(arch_name: str, layer: Layer, overrides=()):
    arch = api.load_arch(arch_name, list(overrides))
    workload = _workload(layer)
    outputs = {}
    result = api.simulate(arch, workload, output_sink=lambda name, out: outputs.update({name: out}))
    return arch, workload.tensors(layer.name), result.layers[0], outputs[layer.name]


LAYER = Layer("scores", "matmul", 10, 6, batch=2, heads=4, kv_heads=2, tokens=3,
              activation_signed=True)


def test_dense_pe_on_a_matmul_is_exact():
    _, tensors, result, outputs = _simulated("os_sa_16x16", LAYER)
    assert np.array_equal(outputs, _naive_matmul(tensors.input, tensors.weight, LAYER))
    assert result.sqnr_db is None and result.macs == 2 * 4 * 3 * 10 * 6


@pytest.mark.parametrize("arch_name", ["sysmt_2t_16x16", "sysmt_4t_16x16"])
def test_sysmt_on_a_matmul_equals_the_naive_twin(arch_name):
    arch, tensors, result, outputs = _simulated(arch_name, LAYER)
    pe = arch.pe
    a, b = im2col(tensors.input, LAYER), weights_to_gemm(tensors.weight, LAYER)
    counters: Counter[str] = Counter()
    naive_out = []
    for g in range(a.shape[0]):
        out, count = naive_sysmt_gemm(a[g].tolist(), b[g].tolist(),
                                      naive_schedule(a.shape[2], pe.threads, pe.thread_split),
                                      pe.policy, pe.rounding)
        naive_out.append(out)
        counters.update(count)
    assert np.array_equal(outputs, gemm_to_output(np.array(naive_out), LAYER))
    assert {k: v for k, v in result.counters.items() if v} == {k: v for k, v in counters.items()
                                                               if v}


@pytest.mark.parametrize("arch_name", ["sparq_5opt_16x16", "sparq_2opt_16x16"])
def test_sparq_on_a_matmul_equals_the_naive_twin(arch_name):
    arch, tensors, result, outputs = _simulated(arch_name, LAYER)
    pe = arch.pe
    a, b = im2col(tensors.input, LAYER), weights_to_gemm(tensors.weight, LAYER)
    counters: Counter[str] = Counter()
    naive_out = []
    for g in range(a.shape[0]):
        out, count, _, _ = naive_sparq_gemm(a[g].tolist(), b[g].tolist(), pe.window_bits,
                                            pe.options, pe.rounding, pe.pairing)
        naive_out.append(out)
        counters.update(count)
    assert np.array_equal(outputs, gemm_to_output(np.array(naive_out), LAYER))
    assert {k: v for k, v in result.counters.items() if v} == {k: v for k, v in counters.items()
                                                               if v}


@pytest.mark.parametrize("arch_name", ["a4w8_16x16", "bitserial_8b_16x16", "swis_g8_n3_16x16",
                                       "swis_variable_16x16"])
def test_every_pe_type_runs_a_matmul(arch_name):
    _, tensors, result, outputs = _simulated(arch_name, LAYER)
    assert outputs.shape == (2, 4, 3, 6)
    assert sum(result.counters.values()) > 0


def test_swis_dynamic_operand_bitserial_is_exact_8_bit_bit_serial():
    _, tensors, swis, outputs = _simulated("swis_g8_n3_16x16", LAYER)
    _, _, serial, serial_outputs = _simulated("bitserial_8b_16x16", LAYER)
    assert np.array_equal(outputs, _naive_matmul(tensors.input, tensors.weight, LAYER))
    assert np.array_equal(outputs, serial_outputs)
    assert swis.compute_cycles == serial.compute_cycles
    assert swis.counters == serial.counters


def test_swis_online_decompose_adds_its_latency_and_energy():
    layer = Layer("scores", "matmul", 64, 48, batch=1, heads=2, tokens=20,
                  activation_signed=True)
    over = ["pe.dynamic_operand=online_decompose"]
    _, tensors, online, outputs = _simulated("swis_g8_n3_16x16", layer, over)
    # the decomposition approximates the right operand, like SWIS's weights
    assert not np.array_equal(outputs, _naive_matmul(tensors.input, tensors.weight, layer))
    arch = api.load_arch("swis_g8_n3_16x16", over)
    from simulator.hw.pe import get_pe_model

    pe = get_pe_model(arch.pe, arch.array)
    assert pe.setup_cycles(layer) == 64 // 8
    steps = pe.column_fold_steps(layer, weights_to_gemm(tensors.weight, layer))
    plain = api._layer_timing(arch, layer, pe, steps)[0]
    assert online.compute_cycles == plain.compute_cycles  # already includes the setup
    assert int(plain.fold_cycles.sum()) == plain.compute_cycles
    assert pe.extra_actions(layer, online.stats)["mult_8x8"] == 56 * 64 * 48 * 2  # C(8, 3) sets x both K/V heads


def test_unsigned_8_bit_right_operand_is_refused_by_a_bit_serial_pe():
    from simulator.errors import SimulationError

    layer = Layer("ctx", "matmul", 8, 8, heads=2, tokens=2, weight_signed=False)
    with pytest.raises(SimulationError, match="unsigned 8-bit right operand"):
        _simulated("bitserial_8b_16x16", layer)


def test_kv_cache_right_operand_is_reported_as_kv_traffic():
    layer = Layer("scores", "matmul", 128, 512, batch=2, heads=8, kv_heads=2, tokens=1,
                  activation_signed=True, kv_cache=True, role="attention")
    arch = api.load_arch("os_sa_16x16")
    result = api.simulate(arch, Workload("d", "d.yaml", (layer,), "yaml", phase="decode",
                                         sequences=2), functional=False)
    (lay,) = result.layers
    assert lay.kv_cache_read_bytes == lay.dram_filter_read_bytes == 2 * 2 * 128 * 512
    summary = result.summary()
    assert summary["kv_cache_bytes"] == 2 * 2 * 128 * 512
    assert summary["kv_cache_read_bytes"] == 2 * 2 * 128 * 512
    assert summary["tokens_per_s"] == pytest.approx(2 / (summary["total_cycles"] * 1e-9))


@pytest.mark.parametrize("arch_name", ["os_sa_16x16", "sysmt_2t_16x16"])
def test_counters_from_nonzero_counts_equal_the_full_run(arch_name):
    """An exact PE counts from per-K non-zero counts when nothing asks for outputs; on a
    matmul (grouped by K/V head) that must give the full run's counters."""
    arch = api.load_arch(arch_name)
    workload = _workload(LAYER)
    quick = api.simulate(arch, workload).layers[0]
    full = api.simulate(arch, workload, output_sink=lambda name, out: None).layers[0]
    assert quick.counters == full.counters
