"""Transform coding (docs/transform-coding.md): the codec against its plain-Python twin, bit
for bit, on random data and on the digits trace; the coded tile program; the run's report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from naive_codec import code_pixels, decode_words, encode_words, huffman_cost

from simulator import api
from simulator.config.arch import ActivationCodecConfig, MemoryConfig
from simulator.errors import ConfigError
from simulator.kernels.huffman import (canonical_codes, code_lengths, decode, encode,
                                       entropy_bits)
from simulator.memory import plan_layer, run_layer
from simulator.memory.codec import (LayerCoding, calibrate, code, code_input, coded_program,
                                    pixels, project, quantise)
from simulator.workloads.layers import Layer

SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
def test_huffman_matches_twin(seed):
    rng = np.random.default_rng(seed)
    symbols_n = int(rng.integers(1, 300))
    counts = rng.geometric(rng.uniform(0.02, 0.6), symbols_n) * rng.integers(0, 2, symbols_n)
    lengths = code_lengths(counts)
    # optimal: the cost of an optimal code for the (smoothed) counts
    weights = np.maximum(counts, 1)
    assert int((weights * lengths).sum()) == huffman_cost(weights.tolist())
    assert sum(2.0 ** -int(l) for l in lengths) <= 1.0
    data = rng.choice(symbols_n, size=int(rng.integers(0, 3000)),
                      p=weights / weights.sum())
    for word_bits in (8, 16, 32):
        words, nbits = encode(data, canonical_codes(lengths), lengths, word_bits)
        assert words.tolist() == encode_words(data.tolist(), lengths.tolist(), word_bits)
        assert nbits == int(lengths[data].sum())
        back = decode(words, len(data), lengths, word_bits)
        assert back.tolist() == decode_words(words.tolist(), len(data), lengths.tolist(),
                                             word_bits) == data.tolist()


def test_length_limit_keeps_a_prefix_code():
    counts = [2 ** i for i in range(40)]  # an optimal code would be 39 bits deep
    lengths = code_lengths(np.array(counts), max_bits=16)
    assert lengths.max() <= 16 and sum(2.0 ** -int(l) for l in lengths) <= 1.0
    data = np.arange(40)
    words, _ = encode(data, canonical_codes(lengths), lengths, 16)
    assert decode(words, 40, lengths, 16).tolist() == data.tolist()


def test_entropy_bits():
    assert entropy_bits(np.array([5, 5])) == 1.0
    assert entropy_bits(np.array([0, 7])) == 0.0
    assert entropy_bits(np.zeros(4)) == 0.0


def _twin(codec, p):
    # the identity of transform: none as the matrix it stands for
    basis = (np.eye(codec.channels, dtype=codec.basis.dtype) if codec.transform == "none"
             else codec.basis)
    return np.array(code_pixels(p.tolist(), codec.mean.tolist(), basis.tolist(),
                                codec.shift, codec.lo, codec.hi, codec.bits, codec.low,
                                codec.high), dtype=np.int64).reshape(p.shape)


@pytest.mark.parametrize("seed", SEEDS)
def test_codec_matches_twin_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 20)), 5, 4
    signed = bool(rng.integers(2))
    low, high = (-128, 127) if signed else (0, 255)
    mix = rng.normal(size=(c, c))
    x = np.clip(np.rint(rng.normal(size=(n, h, w, c)) @ mix * 20), low, high).astype(np.int64)
    x = x.transpose(0, 3, 1, 2)
    options = dict(bits=int(rng.integers(1, 9)), transform=["pca", "none"][seed % 2],
                   energy_fraction=[1.0, 0.9][seed % 3 == 0], basis_bits=int(rng.integers(2, 9)))
    codec = calibrate(pixels(x[:max(1, n // 2)]), low=low, high=high, **options)
    coded = code(codec, x, lanes=int(rng.integers(1, 6)), word_bits=16, burst_bytes=32)
    assert np.array_equal(pixels(coded.decoded), _twin(codec, pixels(x)))
    assert coded.values == x.size and coded.symbols == n * h * w * codec.components


def test_int64_products_equal_the_float64_ones():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(2, 24, 5, 5))
    codec = calibrate(pixels(x), bits=7, low=0, high=255)
    assert codec.exact_float
    wide = dataclasses.replace(codec, exact_float=False)
    a = code(codec, x, lanes=4, word_bits=16, burst_bytes=32).decoded
    b = code(wide, x, lanes=4, word_bits=16, burst_bytes=32).decoded
    assert np.array_equal(a, b) and np.array_equal(pixels(b), _twin(wide, pixels(x)))


def test_a_layer_too_wide_for_the_pca_is_one_line():
    from simulator.errors import SimulationError
    from simulator.memory.codec import RunCoding
    from simulator.workloads.layers import LayerTensors

    layers = [Layer(name=n, op="linear", in_channels=k, out_channels=4, batch=2)
              for n, k in (("a", 4), ("b", 300_000))]
    data = {"a": np.zeros((2, 4), dtype=np.int64), "b": np.ones((2, 300_000), dtype=np.int64)}
    tensors = lambda n: LayerTensors(input=data[n], weight=None)  # noqa: E731
    coding = RunCoding(layers, tensors, ActivationCodecConfig(bits=8, wide_layers="refuse"))
    with pytest.raises(SimulationError, match="layer 'b': memory.activation_codec: a PCA over "
                                              "300,000 channels is more than sasim calibrates"):
        coding.input("b")
    assert coding.input("a") is None  # the first layer's input is the image: not coded
    # the default codes it untransformed (no 300,000 x 300,000 identity is formed), and its
    # report says so; the twin agrees bit for bit
    wide = RunCoding(layers, tensors, ActivationCodecConfig(bits=8)).input("b")
    assert wide.report()["transform"] == "none" and wide.codec.components == 300_000
    assert wide.codec.basis.size == 0


@pytest.mark.parametrize("basis_bits", [8, None])
def test_a_wide_layer_is_coded_untransformed_as_the_twin(monkeypatch, basis_bits):
    from simulator.memory import codec as codec_module

    monkeypatch.setattr(codec_module, "MAX_PCA_CHANNELS", 8)
    x = np.random.default_rng(5).integers(0, 256, (30, 12))
    options = ActivationCodecConfig(bits=5, basis_bits=basis_bits)
    codec = codec_module.calibrate_layer(x, options, low=0, high=255)
    assert codec.transform == "none" and codec.components == 12
    coded = code(codec, x, lanes=3, word_bits=16, burst_bytes=32)
    if basis_bits is not None:  # the integer twin, with the identity as a matrix
        assert np.array_equal(coded.decoded, _twin(codec, x))
    else:  # a float identity: the quantiser's grid itself, rounded
        top = (1 << 5) - 1
        y = x.astype(np.float64)
        symbols = np.clip(np.rint((y - codec.lo) / (codec.hi - codec.lo) * top), 0, top)
        want = np.clip(np.rint(codec.lo + symbols * ((codec.hi - codec.lo) / top)), 0, 255)
        assert np.array_equal(coded.decoded, want)
    narrow = codec_module.calibrate_layer(x[:, :8], options, low=0, high=255)
    assert narrow.transform == "pca"
    with pytest.raises(ValueError, match="a PCA over 12 channels"):
        codec_module.calibrate_layer(x, dataclasses.replace(options, wide_layers="refuse"),
                                     low=0, high=255)


def test_codec_matches_twin_on_the_digits_trace():
    workload = api.load_workload("digits_int8")
    options = ActivationCodecConfig(bits=6)
    for layer in workload.layers[1:]:
        x = np.asarray(workload.tensors(layer.name).input)
        coding = code_input(x, layer, options)
        head = pixels(x[:1])  # the first image: the twin is plain Python
        assert np.array_equal(pixels(coding.coded.decoded[:1]), _twin(coding.codec, head))


def test_none_at_full_bits_is_lossless_on_the_calibration_range():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(2, 3, 4, 4))
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0, 255
    codec = calibrate(pixels(x), bits=8, transform="none", low=0, high=255)
    assert np.array_equal(code(codec, x, lanes=2, word_bits=16, burst_bytes=1).decoded, x)


def test_stream_bytes_are_the_padded_code_bits():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 50, size=(2, 8, 3, 3))
    codec = calibrate(pixels(x), bits=4, low=0, high=255)
    lanes, word = 3, 16
    coded = code(codec, x, lanes=lanes, word_bits=word, burst_bytes=64)
    per_lane = []
    s = quantise(codec, project(codec, pixels(x)))
    for lane in range(lanes):
        bits = int(codec.lengths[s[:, lane::lanes]].sum())
        per_lane.append(-(-bits // word) * word // 8)
    assert coded.stream_bytes == -(-sum(per_lane) // 64) * 64
    assert coded.code_bits == int(codec.lengths[s].sum())


def _layer():
    return Layer(name="c", op="conv2d", in_channels=8, out_channels=8, batch=2,
                 input_size=(8, 8), kernel_size=(3, 3), padding=(1, 1))


@pytest.mark.parametrize("memory", [MemoryConfig(),
                                    MemoryConfig(ifmap_kib=0.5, filter_kib=2, ofmap_kib=0.5,
                                                 dram_bandwidth_bytes_per_cycle=4)])
def test_coded_program_conserves_and_scales(memory):
    import simpy

    from simulator.hw.timing import fold_timing
    from simulator.memory import Dram

    layer = _layer()
    timing = fold_timing(layer.gemm, 4, 4, "os", "native", 1, None)
    raw = plan_layer(layer, 4, 4, "os", timing.fold_cycles, memory)
    coding = LayerCoding(read_ratio=0.4, table_bytes=100, write_ratio=0.5)
    coded = coded_program(raw, coding)
    assert coded.dram_reads.ifmap == -(-raw.dram_reads.ifmap * 4 // 10) + 100
    assert coded.dram_writes.ofmap == -(-raw.dram_writes.ofmap // 2)
    assert coded.dram_reads.filter == raw.dram_reads.filter
    # the buffers hold the array's words: claims, frees and buffer traffic are the raw plan's
    for name in ("load", "release", "out_alloc", "store_free"):
        assert np.array_equal(getattr(coded, name), getattr(raw, name))
    assert coded.buffer_reads == raw.buffer_reads and coded.buffer_writes == raw.buffer_writes
    dram = Dram(memory.dram_bandwidth_bytes_per_cycle, 0)
    schedule = run_layer(simpy.Environment(), coded, dram)
    plain = run_layer(simpy.Environment(), raw, dram)
    assert timing.compute_cycles <= schedule.elapsed <= plain.elapsed + 100 // 4 + 1
    assert schedule.peak == plain.peak
    # the processes agree with the closed form when nothing can wait
    if memory.ifmap_kib is None:
        events = run_layer(simpy.Environment(), coded, dram, closed_form=False)
        assert events.elapsed == schedule.elapsed


def _run(*overrides, workload="digits_int8", functional=True):
    arch = api.load_arch("os_sa_16x16", ["memory=ideal", *overrides])
    return api.simulate(arch, api.load_workload(workload), functional=functional)


def test_run_reports_the_codec_and_saves_dram_bytes():
    plain = _run()
    coded = _run("memory.activation_codec.bits=6")
    assert all(layer.codec is None for layer in plain.layers)
    first, rest = coded.layers[0], coded.layers[1:]
    assert "stored_bits_per_value" not in first.codec  # the image is not coded
    assert first.dram_ofmap_write_bytes < plain.layers[0].dram_ofmap_write_bytes
    for a, b in zip(plain.layers[1:], rest):
        report = b.codec
        assert report["entropy_bits_per_value"] <= report["code_bits_per_value"] + 1e-12
        assert report["code_bits_per_value"] <= report["stored_bits_per_value"] + 1e-12
        assert b.dram_ifmap_read_bytes == pytest.approx(
            a.dram_ifmap_read_bytes * report["stream_bytes"] / report["raw_bytes"]
            + report["table_bytes"], abs=1)
        assert b.total_cycles == a.total_cycles + report["inverse_cycles"] + \
            report["codec_stall_cycles"]
    summary = coded.summary()
    assert summary["codec"]["dram_bytes_saved"] > 0
    moved = sum(sum(l.dram_reads) + sum(l.dram_writes) for l in coded.layers)
    assert moved < sum(sum(l.dram_reads) + sum(l.dram_writes) for l in plain.layers)
    assert summary["energy_breakdown_pj"]["dram"] < plain.summary()["energy_breakdown_pj"]["dram"]


def test_side_unit_and_slow_codec_stall():
    side = _run("memory.activation_codec.bits=4", "memory.activation_codec.inverse=side_unit",
                "memory.activation_codec.symbols_per_cycle=0.01",
                "memory.activation_codec.side_unit_macs_per_cycle=1", functional=False)
    layer = side.layers[1]
    assert layer.codec["inverse_cycles"] == layer.codec["inverse_macs"]
    assert layer.codec["codec_stall_cycles"] > 0 and layer.codec["stalls"]


def test_run_without_codec_is_unchanged_by_its_defaults():
    arch = api.load_arch("os_sa_16x16", ["memory=ideal"])
    assert arch.memory.activation_codec.bits is None
    off = api.load_arch("os_sa_16x16", ["memory=ideal", "memory.activation_codec.lanes=3"])
    a = api.simulate(arch, api.load_workload("digits_int8")).summary()
    b = api.simulate(off, api.load_workload("digits_int8")).summary()
    for key in ("total_cycles", "dram_ifmap_read_bytes", "dram_ofmap_write_bytes", "energy_pj"):
        assert a[key] == b[key]


@pytest.mark.parametrize("override, needle", [
    ("memory.activation_codec.bits=0", "memory.activation_codec.bits"),
    ("memory.activation_codec.transform=dct", "memory.activation_codec.transform"),
    ("memory.activation_codec.lanes=0", "memory.activation_codec.lanes"),
    ("memory.activation_codec.word_bits=4", "memory.activation_codec.word_bits"),
])
def test_bad_codec_config_is_one_line(cli, tmp_path, override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        api.load_arch("os_sa_16x16", ["memory=ideal", override])
    out = tmp_path / "out"
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--set",
                 override, "--out", out)
    assert result.status == 2 and needle in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not out.exists()


def test_codec_config_is_frozen_schema():
    options = ActivationCodecConfig(bits=3)
    assert dataclasses.replace(options, lanes=2).lanes == 2


def test_a_run_without_the_codec_never_imports_it():
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    code = ("import sys\nfrom simulator import api\n"
            "api.simulate(api.load_arch('os_sa_16x16'), api.load_workload('resnet18'), "
            "functional=False)\nprint(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo)}, cwd=repo, check=True,
                          timeout=120)
    modules = set(done.stdout.split())
    assert "simulator.api" in modules
    assert not {"simulator.memory.codec", "simulator.kernels.huffman"} & modules


def test_a_memory_bound_run_gets_faster_with_the_codec():
    slow = ["memory.dram_bandwidth_bytes_per_cycle=0.5", "memory.ifmap_kib=8"]
    plain = _run(*slow, functional=False)
    coded = _run(*slow, "memory.activation_codec.bits=5",
                 "memory.activation_codec.inverse=side_unit",
                 "memory.activation_codec.side_unit_macs_per_cycle=4096", functional=False)
    assert coded.total_cycles < plain.total_cycles
    for a, b in zip(plain.layers[1:], coded.layers[1:]):
        assert b.peak_bytes == a.peak_bytes  # the buffers hold decoded words
        if b.name != "fc":  # fc's 64 x 64 basis outweighs its 2 KiB input (documented)
            assert b.dram_ifmap_read_bytes < a.dram_ifmap_read_bytes


def test_compare_puts_the_codec_design_on_the_digits_line(cli, tmp_path):
    result = cli("compare", "--arch", "os_sa_16x16", "--arch", "os_sa_16x16_codec_b6",
                 "--workload", "digits_int8", "--out", tmp_path / "cmp")
    assert result.status == 0, result.err
    rows = [line for line in result.out.splitlines() if line.startswith("digits_resnet")]
    assert [r.split()[1] for r in rows] == ["os_sa_16x16", "os_sa_16x16_codec_b6"]


@pytest.mark.parametrize("channels", [1, 3, 64, 300])
def test_a_zero_covariance_takes_lapacks_own_answer_without_its_work(channels, monkeypatch):
    """One calibration pixel (an LLM decode step's layer input) has a zero covariance: its
    eigendecomposition is what numpy's eigh returns for a zero matrix (zero values, the
    identity), without the O(C^3) work; any other covariance is decomposed as before."""
    from simulator.memory import codec as codec_module

    zero = np.zeros((channels, channels))
    for got, want in zip(codec_module._eigh(zero), np.linalg.eigh(zero)):
        assert np.array_equal(got, want)
    original, calls = np.linalg.eigh, []

    def eigh(matrix):
        calls.append(matrix.shape)
        return original(matrix)

    monkeypatch.setattr(codec_module.np.linalg, "eigh", eigh)
    pixel = np.random.default_rng(channels).integers(0, 256, (1, channels))
    codec_module.calibrate(pixel, bits=6, low=0, high=255)
    assert calls == []  # one pixel: not decomposed
    codec_module._basis(np.concatenate([pixel, pixel // 2]), "pca", 1.0)
    assert calls == [(channels, channels)]
