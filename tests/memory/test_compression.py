"""Compressed operands (docs/memory-model.md, "Compressed operands"): every size function
against its plain-Python twin on random tensors, bit for bit; the planner with stored bits;
the run's figures (SWIS moves weight bytes in proportion to its stored bits); bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import simpy
from naive_compression import (bitmask_stream, padded, rle_bytes, rle_decode, rle_encode, scan,
                               stc_bits, swis_bits)

from simulator import api
from simulator.config.arch import CompressionConfig, MemoryConfig
from simulator.errors import ConfigError
from simulator.hw.pe.sparq import stc_stored_bits
from simulator.hw.pe.swis import decompose, stored_bits
from simulator.hw.timing import fold_timing
from simulator.memory import Dram, plan_layer, run_layer
from simulator.memory import compression as comp
from simulator.workloads.layers import Layer

SEEDS = range(8)


def _sparse(rng, shape, low=-128, high=128):
    """Random integers with runs of zeros of random density."""
    x = rng.integers(low, high, size=shape)
    return np.where(rng.random(shape) < rng.uniform(0.0, 0.98), 0, x)


@pytest.mark.parametrize("seed", SEEDS)
def test_bitmask_matches_twin(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 7, size=int(rng.integers(1, 5))))
    x = _sparse(rng, shape)
    bits = int(rng.integers(1, 17))
    burst = int(rng.choice([1, 8, 32, 64]))
    stream = bitmask_stream([int(v) for v in x.ravel()], bits)
    assert comp.bitmask_bytes(x, bits, burst) == padded(len(stream), burst)


@pytest.mark.parametrize("seed", SEEDS)
def test_rle_matches_twin_and_decodes(seed):
    rng = np.random.default_rng(100 + seed)
    x = _sparse(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 9)),
                      int(rng.integers(1, 9)), int(rng.integers(1, 9))))
    if seed == 0:
        x[:] = 0  # all zeros: trailing entries only
    run_bits = int(rng.integers(1, 6))
    bits, word, burst = 8, int(rng.choice([16, 32, 64, 100])), int(rng.choice([1, 32]))
    values = scan(x)
    entries = rle_encode(values, run_bits)
    assert rle_decode(entries) == values  # the format is lossless
    assert all(0 <= z < 1 << run_bits for z, _ in entries)
    assert comp.rle_entries(x, run_bits) == len(entries)
    assert comp.rle_bytes(x, bits, run_bits, word, burst) == rle_bytes(values, bits, run_bits,
                                                                       word, burst)


def test_rle_entry_must_fit_a_word():
    with pytest.raises(ValueError, match="does not fit a word"):
        comp.rle_bytes(np.ones(4, dtype=np.int64), 8, 4, 8, 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_swis_stored_bits_match_twin(seed):
    rng = np.random.default_rng(200 + seed)
    kd, filters, group = int(rng.integers(1, 40)), int(rng.integers(1, 6)), int(rng.integers(1, 9))
    w = rng.integers(-128, 128, size=(kd, filters))
    if seed % 2:
        dec, most = decompose(w, group, shifts=int(rng.integers(1, 9))), None
    else:
        most = int(rng.integers(1, 9))
        dec = decompose(w, group, max_shifts=most, error_threshold=float(rng.integers(0, 500)))
    sizes = [min(group, kd - group * q) for q in range(dec.masks.shape[0])]
    assert stored_bits(dec.shifts, dec.sizes, most) == swis_bits(dec.masks.tolist(), sizes, most)
    if most is None:  # fixed N: the PE's own storage_bits stat
        assert stored_bits(dec.shifts, dec.sizes, None) == dec.storage_bits


@pytest.mark.parametrize("seed", SEEDS)
def test_stc_stored_bits_match_twin(seed):
    rng = np.random.default_rng(300 + seed)
    groups, kd, filters = int(rng.integers(1, 3)), int(rng.integers(1, 30)), int(rng.integers(1, 5))
    w = rng.integers(-128, 128, size=(groups, kd, filters))
    keep = np.zeros((groups, -(-kd // 4) * 4, filters), dtype=bool)
    for g in range(groups):
        for f in range(filters):
            for q in range(0, keep.shape[1], 4):
                keep[g, q + rng.choice(4, size=2, replace=False), f] = True
    w = np.where(keep[:, :kd], w, 0)
    bits = int(rng.integers(2, 9))
    assert stc_stored_bits(w, bits) == stc_bits(w, bits)
    dense = np.ones((1, 8, 1), dtype=np.int64)
    with pytest.raises(ValueError, match="at most two non-zero"):
        stc_stored_bits(dense, 8)
    with pytest.raises(ValueError):
        stc_bits(dense, 8)


def _layer(**kw):
    base = dict(name="c", op="conv2d", in_channels=8, out_channels=12, batch=2,
                input_size=(9, 9), kernel_size=(3, 3), padding=(1, 1))
    return Layer(**{**base, **kw})


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_planner_with_word_bits_is_the_raw_plan(dataflow):
    layer = _layer()
    memory = MemoryConfig(ifmap_kib=0.5, filter_kib=1, ofmap_kib=1)
    timing = fold_timing(layer.gemm, 4, 4, dataflow, "native", 5, None)
    raw = plan_layer(layer, 4, 4, dataflow, timing.fold_cycles, memory)
    same = plan_layer(layer, 4, 4, dataflow, timing.fold_cycles, memory,
                      {"ifmap": Fraction(8), "filter": Fraction(8)})
    for name in ("load", "release", "store", "out_alloc", "store_free", "unit_cycles"):
        assert np.array_equal(getattr(raw, name), getattr(same, name)), name
    assert raw.buffer_reads == same.buffer_reads and raw.reuse == same.reuse


@pytest.mark.parametrize("seed", range(6))
def test_planner_scales_bytes_and_the_engine_keeps_capacity(seed):
    rng = np.random.default_rng(400 + seed)
    dataflow = ["os", "ws", "is"][seed % 3]
    layer = _layer(in_channels=int(rng.integers(1, 9)), out_channels=int(rng.integers(1, 17)),
                   stride=(int(rng.integers(1, 3)),) * 2)
    ratio = {name: Fraction(int(rng.integers(1, 160)), 16) for name in ("ifmap", "filter")}
    timing = fold_timing(layer.gemm, 4, 4, dataflow, "native", 5, None)
    unbounded = plan_layer(layer, 4, 4, dataflow, timing.fold_cycles, MemoryConfig(), ratio)
    raw = plan_layer(layer, 4, 4, dataflow, timing.fold_cycles, MemoryConfig())
    # every value once (group reuse): the stored bits per value, rounded per tile
    tiles = timing.folds
    for name in ("ifmap", "filter"):
        stored = getattr(unbounded.dram_reads, name)
        exact = getattr(raw.dram_reads, name) * ratio[name] / 8
        assert exact <= stored <= exact + tiles, name
    memory = MemoryConfig(ifmap_kib=1, filter_kib=1, ofmap_kib=1,
                          dram_bandwidth_bytes_per_cycle=3.0, dram_latency_cycles=2)
    program = plan_layer(layer, 4, 4, dataflow, timing.fold_cycles, memory, ratio)
    schedule = run_layer(simpy.Environment(), program, Dram(3.0, 2))
    for peak, capacity in zip(schedule.peak, program.capacity):
        assert peak <= capacity
    assert schedule.elapsed >= timing.compute_cycles


def test_channel_program_is_the_codec_rule():
    from simulator.memory.codec import LayerCoding, coded_program

    layer = _layer()
    timing = fold_timing(layer.gemm, 4, 4, "os", "native", 1, None)
    raw = plan_layer(layer, 4, 4, "os", timing.fold_cycles,
                     MemoryConfig(ifmap_kib=0.5, filter_kib=2, ofmap_kib=0.5))
    coded = coded_program(raw, LayerCoding(read_ratio=0.37, table_bytes=9, write_ratio=0.61))
    direct = comp.channel_program(raw, 0.37, 9, 0.61)
    assert np.array_equal(coded.channel_load, direct.channel_load)
    assert np.array_equal(coded.store, direct.store)


def _run(arch, *overrides, workload="digits_int8", functional=False):
    return api.simulate(api.load_arch(arch, ["memory=ideal", *overrides]),
                        api.load_workload(workload),
                        functional=functional)


def test_swis_moves_weight_bytes_in_proportion_to_its_stored_bits():
    """The judged figure on the digits network (the ResNet-18 one is
    benchmarks/bench_compression.py): N = 3, G = 8 stores N + 1 + 3N/G = 5.125 bits."""
    plain = _run("swis_g8_n3_16x16")
    packed = _run("swis_g8_n3_16x16", "memory.compression.weights=true")
    weights = packed.summary()["compression"]["filter"]
    expected = weights["stored_bits_per_value"] / 8
    moved = (sum(l.dram_filter_read_bytes for l in packed.layers)
             / sum(l.dram_filter_read_bytes for l in plain.layers))
    assert abs(moved / expected - 1) < 0.01
    assert abs(weights["stored_bits_per_value"] - 5.125) < 0.05
    assert weights["source"] == "trace"
    for a, b in zip(plain.layers, packed.layers):
        assert b.compute_cycles == a.compute_cycles
        assert b.dram_ifmap_read_bytes == a.dram_ifmap_read_bytes


def test_zero_compression_shrinks_inputs_and_writes():
    plain = _run("os_sa_16x16", functional=True)
    for fmt in ("bitmask", "rle"):
        packed = _run("os_sa_16x16", f"memory.compression.activations={fmt}", functional=True)
        totals = packed.summary()["compression"]
        assert totals["ifmap"]["schemes"] == [fmt] and totals["dram_bytes_saved"] > 0
        assert totals["dram_energy_saved_pj"] > 0
        for a, b in zip(plain.layers, packed.layers):
            report = b.compression
            if report["ifmap"] is not None:
                assert b.dram_ifmap_read_bytes < a.dram_ifmap_read_bytes
                assert report["ifmap"]["stored_bits_per_value"] < 8
                assert b.buffer_ifmap_write_bytes < a.buffer_ifmap_write_bytes  # held packed
            else:
                assert b.dram_ifmap_read_bytes == a.dram_ifmap_read_bytes
            if report["ofmap"] is not None:
                assert b.dram_ofmap_write_bytes < a.dram_ofmap_write_bytes
            assert b.output_matches_trace == a.output_matches_trace  # lossless
        assert packed.summary()["energy_pj"] < plain.summary()["energy_pj"]


_SHAPES = """schema_version: 1
name: small
batch: 2
layers:
  - {name: a, op: conv2d, in_channels: 3, out_channels: 16, input_size: [12, 12],
     kernel_size: 3, padding: 1}
  - {name: b, op: conv2d, in_channels: 16, out_channels: 32, input_size: [12, 12],
     kernel_size: 3, stride: 2, padding: 1}
  - {name: fc, op: linear, in_features: 288, out_features: 10}
"""


def test_stc_weights_and_synthetic_sizes(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(_SHAPES)
    plain = _run("sparq_5opt_stc_16x16", workload=path)
    packed = _run("sparq_5opt_stc_16x16", "memory.compression.weights=true",
                  "memory.compression.activations=bitmask", workload=path)
    totals = packed.summary()["compression"]
    assert totals["filter"]["schemes"] == ["stc"] and totals["filter"]["source"] == "synthetic"
    # 2 x (8 + 2) bits per group of 4 (K = 27 pads its last group: a little more)
    assert [round(l.compression["filter_bits_per_value"], 3) for l in packed.layers] == \
        [round(8 * -(-(7 * 2 * 10 * 16) // 8) / (27 * 16), 3), 5.0, 5.0]
    assert all(layer.compression is None for layer in plain.layers)
    for a, b in zip(plain.layers, packed.layers):
        assert b.dram_filter_read_bytes < a.dram_filter_read_bytes


def test_a_memory_bound_run_gets_faster_with_compressed_weights():
    slow = ["memory.dram_bandwidth_bytes_per_cycle=0.5", "memory.filter_kib=4"]
    plain = _run("swis_g8_n3_16x16", *slow)
    packed = _run("swis_g8_n3_16x16", *slow, "memory.compression.weights=true")
    assert packed.total_cycles < plain.total_cycles


@pytest.mark.parametrize("overrides, needle", [
    (["memory.compression.activations=zip"], "memory.compression.activations"),
    (["memory.compression.activations=rle", "memory.activation_codec.bits=4"], "exclusive"),
    (["memory.compression.activations=rle", "memory.compression.word_bits=8"],
     "does not fit a word"),
    (["memory.compression.run_bits=0"], "memory.compression.run_bits"),
])
def test_bad_compression_input_is_one_line(cli, tmp_path, overrides, needle):
    out = tmp_path / "out"
    argv = ["run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--out", out]
    for item in overrides:
        argv += ["--set", item]
    result = cli(*argv)
    assert result.status == 2 and needle in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not out.exists()
    if needle != "does not fit a word":
        with pytest.raises(ConfigError):
            api.load_arch("os_sa_16x16", ["memory=ideal", *overrides])


def test_compression_config_defaults_are_off():
    options = CompressionConfig()
    assert options.activations == "none" and options.weights is False


def test_a_run_without_compression_never_imports_it():
    repo = Path(__file__).resolve().parents[2]
    code = ("import sys\nfrom simulator import api\n"
            "api.simulate(api.load_arch('os_sa_16x16', ['memory.compression.weights=true']), "
            "api.load_workload('resnet18'), functional=False)\n"
            "print(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo)}, cwd=repo, check=True,
                          timeout=120)
    assert "simulator.memory.compression" not in set(done.stdout.split())
