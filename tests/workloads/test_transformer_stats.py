"""Synthetic transformer tensors: each generator's statistics within the documented bands
(docs/synthetic-data.md, "Transformer tensors")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.workloads import transformer_stats as tx
from simulator.workloads.layers import Layer, Workload
from simulator.workloads.synthetic import SyntheticOptions, synthesize
from simulator.workloads.transformer import TransformerSpec, expand


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _draw(layer: Layer, operand: str = "input", seed: int = 0) -> np.ndarray:
    return tx.transformer_tensor(layer, operand, tx.operand_shapes(layer)[operand], _rng(seed))


def _zeros(a: np.ndarray) -> float:
    return float(np.mean(a == 0))


def _linear(name: str, k: int, n: int = 64, rows: int = 256, signed: bool = True) -> Layer:
    return Layer(f"block0.{name}", "linear", k, n, batch=rows, activation_signed=signed,
                 role="attention")


def test_gaussian_activations_are_signed_and_dense():
    q = _draw(_linear("q_proj", 768))
    assert q.dtype == np.int8 and q.shape == (256, 768)
    assert _zeros(q) < 0.03 and abs(float(q.mean())) < 1.0
    assert q.max() == 127 or q.min() == -127  # absmax per tensor reaches the top code
    assert 20 < float(q.std()) < 40  # N(0, 1) clipped at 3.5: std 127/3.5 = 36; the table's
    o = _draw(_linear("o_proj", 768))    # +-4.33 range: 29
    assert _zeros(o) < 0.03 and 20 < float(o.std()) < 40


def test_gelu_outputs_have_almost_no_zeros():
    a = _draw(_linear("fc2", 3072))
    assert _zeros(a) < 0.06
    negative = float(np.mean(a < 0))
    assert 0.2 < negative < 0.5 and a.min() >= -6  # GELU's minimum is -0.17
    gated = _draw(Layer("block0.gate_mul", "mul", 512, 512, tokens=64, activation_signed=True,
                        role="ffn"))
    assert _zeros(gated) < 0.05 and gated.min() >= -9  # SiLU's minimum is -0.28


def test_relu_ffn_outputs_are_60_to_95_percent_zeros():
    fractions = []
    for seed in range(8):
        a = _draw(_linear("fc2", 1024, signed=False), seed=seed)
        assert a.dtype == np.uint8 and a.max() == 255
        fractions.append(_zeros(a))
    assert all(0.6 <= z <= 0.96 for z in fractions), fractions
    assert max(fractions) - min(fractions) > 0.05  # drawn per layer


def _naive_probabilities(logits: np.ndarray, causal: bool) -> np.ndarray:
    """One row at a time with math.exp: the obviously-correct softmax."""
    t, s = logits.shape[-2:]
    out = np.zeros(logits.shape)
    for index in np.ndindex(*logits.shape[:-1]):
        i = index[-1]
        keys = range(s) if not causal else range(i + (s - t) + 1)
        top = max(logits[index][j] for j in keys)
        e = {j: math.exp(logits[index][j] - top) for j in keys}
        total = sum(e.values())
        for j in keys:
            out[index][j] = e[j] / total
    return out


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t, s", [(7, 7), (1, 9), (3, 11)])
def test_softmax_matches_the_naive_reference(causal, t, s):
    logits = _rng(t * s).normal(0, tx.LOGIT_STD, (2, 3, t, s))
    fast = tx.softmax_probabilities(logits, causal)
    slow = _naive_probabilities(logits, causal)
    assert np.allclose(fast, slow, rtol=1e-12, atol=1e-15)
    assert np.array_equal(np.rint(fast * 255), np.rint(slow * 255))


def _context(s: int, t: int | None = None, causal: bool = False, heads: int = 4) -> Layer:
    return Layer("block0.context", "matmul", s, 64, heads=heads, tokens=s if t is None else t,
                 activation_signed=False, causal=causal, role="attention")


def test_softmax_outputs_are_mostly_zero_after_8_bit_quantisation():
    zeros = {s: _zeros(_draw(_context(s, t=64))) for s in (128, 512, 2048)}
    assert 0.5 < zeros[128] < 0.7 and 0.78 < zeros[512] < 0.9 and 0.92 < zeros[2048] < 0.99
    p = _draw(_context(128))
    assert p.dtype == np.uint8
    sums = p.astype(np.int64).sum(axis=-1)
    assert np.all(np.abs(sums - 255) <= 128 / 2)  # rows of probabilities x 255, rounded


def test_causal_softmax_rows_are_masked():
    p = _draw(_context(64, causal=True))
    upper = np.triu(np.ones((64, 64), bool), k=1)
    assert np.all(p[..., upper] == 0)
    assert np.all(p[..., 0, 0] == 255)  # the first query sees only itself
    assert _zeros(p) > max(63 / 128, _zeros(_draw(_context(64))))  # the mask: 63/128


def test_weights_are_per_channel_symmetric():
    w = _draw(_linear("q_proj", 512, n=96), "weight")
    assert w.shape == (96, 512) and w.dtype == np.int8
    assert np.all(np.abs(w.astype(np.int64)).max(axis=1) == 127)
    assert _zeros(w) < 0.03 and abs(float(w.mean())) < 1.0
    keys = _draw(Layer("s", "matmul", 64, 256, heads=4, tokens=8, activation_signed=True,
                       role="attention"), "weight")
    assert keys.shape == (1, 4, 64, 256) and keys.dtype == np.int8


def test_llm_outlier_channels_squeeze_the_rest():
    small, large = _linear("q_proj", 768, rows=512), _linear("q_proj", 4096, rows=512)
    a, b = _draw(small), _draw(large)
    channels = tx.outlier_channels(4096)
    assert len(channels) == 6 and len(tx.outlier_channels(8192)) == 12
    # the outlier channels hold the largest values: >= 6 where typical ones are within 3.5
    peak = np.abs(b.astype(np.int64)).max()
    assert np.abs(b[:, channels].astype(np.int64)).min() >= peak * 6 / (6 + 20 * 6) - 1
    rest = np.delete(b, channels, axis=1)
    assert np.abs(rest.astype(np.int64)).max() < 0.25 * peak
    # per-tensor quantisation: many more zeros than without outliers
    assert _zeros(a) < 0.03 and _zeros(rest) > 0.1


def test_massive_activations_on_the_first_token_in_prefill():
    norm = Layer("block1.attn_norm", "rmsnorm", 4096, 4096, batch=2, tokens=64,
                 activation_signed=True, role="attention")
    x = _draw(norm)
    massive = tx.massive_channels(4096)
    assert x.shape == (2, 1, 64, 4096)
    carriers = (x[:, 0][..., massive] != 0).all(axis=-1)  # (sequence, token)
    assert carriers[:, 0].all() and np.array_equal(carriers.sum(axis=1), [2, 2])
    assert np.abs(x[:, 0][carriers][:, massive].astype(np.int64)).max() == 127
    assert _zeros(x) > 0.99  # everything else rounds to 0 (docs/synthetic-data.md)
    decode = Layer("block1.attn_norm", "rmsnorm", 4096, 4096, batch=2, tokens=1,
                   activation_signed=True, role="attention")
    assert 0.03 < _zeros(_draw(decode)) < 0.4  # outlier channels only
    small = Layer("block1.attn_norm", "layernorm", 768, 768, tokens=64,
                  activation_signed=True, role="attention")
    assert _zeros(_draw(small)) < 0.03


def _tiny(**change) -> Workload:
    spec = TransformerSpec(**{**dict(d_model=64, layers=2, heads=4, ffn_dim=128, seq_len=16,
                                     ffn="swiglu", positions="rope", causal=True), **change})
    layers = tuple(expand(spec))
    return Workload(name="tiny", source="tiny", layers=layers, format="yaml")


def test_synthesize_uses_the_transformer_generators_deterministically():
    one, two = synthesize(_tiny()), synthesize(_tiny())
    other = synthesize(_tiny(), SyntheticOptions(seed=1))
    for layer in one.layers:
        a, b = one.tensors(layer.name), two.tensors(layer.name)
        shapes = tx.operand_shapes(layer)
        for operand, shape in shapes.items():
            x = getattr(a, operand)
            assert x.shape == shape, (layer.name, operand)
            assert np.array_equal(x, getattr(b, operand))
        assert (a.weight is None) == (layer.op not in ("linear", "matmul", "conv2d"))
        assert (a.other is None) == (layer.op not in ("add", "mul"))
    assert not np.array_equal(one.tensors("block0.q_proj").input,
                              other.tensors("block0.q_proj").input)
    assert not np.array_equal(one.tensors("block0.q_proj").input,
                              one.tensors("block1.q_proj").input)
    p = one.tensors("block0.context").input
    assert p.dtype == np.uint8 and np.all(p[..., 0, 1:] == 0)  # causal


def test_structured_weights_asked_for_are_kept():
    w = synthesize(_tiny(), SyntheticOptions(weight_structure="2:4"))
    weight = w.tensors("block0.up_proj").weight
    groups = weight.reshape(weight.shape[0], -1, 4)
    assert np.all(np.count_nonzero(groups, axis=2) <= 2)
    assert np.count_nonzero(w.tensors("block0.scores").weight == 0) < 0.1 * 16 * 16 * 4 * 16


def test_vit_patch_input_is_signed():
    spec = TransformerSpec(d_model=64, layers=1, heads=4, ffn_dim=128, image_size=32,
                           patch_size=16, classes=10)
    patch = expand(spec)[0]
    x = _draw(patch)
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.int8 and x.min() < 0


def test_docs_tables_are_what_the_benchmark_prints(repo):
    import importlib.util

    spec = importlib.util.spec_from_file_location("transformer_stats_bench",
                                                  repo / "benchmarks" / "transformer_stats.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    doc = (repo / "docs" / "synthetic-data.md").read_text(encoding="utf-8")
    for table in (bench.kinds(), bench.softmax_zeros(), bench.outlier_effect(),
                  bench.real_vs_synthetic(), bench.real_attention()):
        assert table in doc, "rerun benchmarks/transformer_stats.py --no-speed:\n" + table


def _bench(repo):
    import importlib.util

    spec = importlib.util.spec_from_file_location("transformer_stats_bench",
                                                  repo / "benchmarks" / "transformer_stats.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_real_vs_synthetic_pairs_every_trace_operand_with_a_draw_of_its_shape(repo):
    """The comparison's real side is the trace's own codes (the float norm inputs as
    float_codes), its statistics are sasim inspect's, and the synthetic side is drawn for
    the same shapes with the named kind."""
    from simulator.workloads.layers import float_codes
    from simulator.workloads.stats import layer_stats
    from simulator.workloads.trace import load_trace

    bench = _bench(repo)
    workload = load_trace(repo / "workloads" / "char_gpt_int8.npz")
    act, tensors = bench.trace_tensors(workload, causal=True)
    assert act == "SiLU" and len(tensors) == len(bench.TENSORS)
    for label, (kind, real, synthetic) in tensors.items():
        assert len(real) == len(synthetic) > 0, label
        # the same values per operand (a trace's vector input is (B, T, C), a draw's
        # (B, H, T, C) with H = 1)
        assert [(r.size, r.shape[-2:]) for r in real] == [(g.size, g.shape[-2:])
                                                          for g in synthetic], label
        assert all(g.dtype in (np.int8, np.uint8) for g in synthetic), label
    assert tensors["SiLU output: fc2 input"][0] == "gated"
    # the residual stream: float norm inputs read as float_codes
    norms = [l for l in workload.layers if l.op == "rmsnorm" and l.role]
    real = tensors["residual stream: norm input"][1]
    assert len(real) == len(norms)
    for layer, codes in zip(norms, real):
        assert np.array_equal(codes, float_codes(workload.tensors(layer.name).input)[0])
    # the statistics of one operand are sasim inspect's
    layer = next(l for l in workload.layers if l.name == "blocks.1.attn.context")
    data = workload.tensors(layer.name)
    zeros, small, bits, peak, count = bench.code_stats([data.input])
    stats = layer_stats(layer, data, check_output=False)
    assert (zeros, small, bits, peak) == pytest.approx(
        (stats.activation_zero_fraction, stats.activation_small_fraction,
         stats.activation_mean_bits, stats.activation_max), abs=0, rel=1e-12)
    assert count == data.input.size
    # a causal draw: zero above the diagonal, as the real (masked) P is
    p = tensors["P (context left)"][2][0]
    upper = np.triu(np.ones(p.shape[-2:], bool), 1)
    assert not p[..., upper].any()
    assert not tensors["P (context left)"][1][0][..., upper].any()


def test_an_explicit_kind_is_drawn_and_an_unknown_one_refused():
    layer = _linear("fc2", 256)
    gated = tx.transformer_tensor(layer, "input", (64, 256), _rng(), kind="gated")
    assert gated.min() >= -9 and gated.dtype == np.int8  # SiLU's minimum -0.28 of 4.33
    assert np.array_equal(gated, tx.transformer_tensor(layer, "input", (64, 256), _rng(),
                                                       kind="gated"))
    assert not np.array_equal(gated, _draw(Layer("block0.fc2", "linear", 256, 64, batch=64,
                                                 activation_signed=True, role="ffn")))
    with pytest.raises(ValueError, match="unknown tensor kind 'bogus'"):
        tx.transformer_tensor(layer, "input", (4, 4), _rng(), kind="bogus")



def test_inspect_statistics_of_a_transformer(cli, tmp_path):
    from simulator.workloads.stats import summarize, workload_stats

    stats = {s.name: s for s in workload_stats(synthesize(_tiny()))}
    soft, scores = stats["block0.softmax"], stats["block0.scores"]
    assert (soft.m, soft.k, soft.macs) == (4 * 16, 16, 0) and math.isnan(soft.weight_zero_fraction)
    assert scores.macs == 4 * 16 * 16 * 16 and 0 <= scores.weight_2to4_fraction <= 1
    assert stats["block0.context"].activation_zero_fraction > 0.5  # causal softmax outputs
    totals = summarize(list(stats.values()))
    assert all(math.isfinite(totals[key]) for key in ("weight_zero_fraction",
                                                       "activation_zero_fraction"))
    path = tmp_path / "t.yaml"
    path.write_text("schema_version: 1\ntransformer: {d_model: 64, layers: 1, heads: 4, "
                    "ffn_dim: 96, seq_len: 8, vocab: 50}\n")
    result = cli("inspect", path)
    assert result.status == 0, result.err
    assert "block0.softmax" in result.out and "SYNTHETIC" in result.out


def test_quantisers_match_naive_loops():
    x = _rng(5).normal(0, 2, (6, 11)).astype(np.float32)
    peak = max(abs(float(v)) for v in x.flat)
    scale = np.float32(127 / peak)
    naive = [[int(np.rint(np.float32(v) * scale)) for v in row] for row in x]
    assert np.array_equal(tx._per_tensor(x.copy(), 8, True), naive)
    per_row = []
    for row in x:
        s = np.float32(127 / max(abs(float(v)) for v in row))
        per_row.append([int(np.rint(np.float32(v) * s)) for v in row])
    assert np.array_equal(tx._per_channel(x.copy(), 8), per_row)
    u = np.abs(x)
    assert np.array_equal(tx._per_tensor(u.copy(), 8, False),
                          [[int(np.rint(np.float32(v) * np.float32(255 / float(u.max()))))
                            for v in row] for row in u])


def test_activation_functions_match_their_formulas():
    values = np.linspace(-6, 6, 97, dtype=np.float32)
    gelu = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
            for v in values.astype(np.float64)]
    silu = [v / (1 + math.exp(-v)) for v in values.astype(np.float64)]
    assert np.allclose(tx.gelu(values), gelu, rtol=1e-5, atol=1e-6)
    assert np.allclose(tx.silu(values), silu, rtol=1e-5, atol=1e-6)


def test_normal_draws_are_the_quantile_table():
    from simulator.workloads.synthetic import _normal_quantile, _raw_words

    x = tx._normal(_rng(9), (3, 1000))
    words = _raw_words(_rng(9), 3000) >> 16
    expected = [float(_normal_quantile(np.array((w + 0.5) / 65536))) for w in words]
    assert np.allclose(x.reshape(-1), expected, rtol=1e-6)
    assert abs(float(x.mean())) < 0.1 and 0.9 < float(x.std()) < 1.1


@pytest.mark.parametrize("rows", [1, 3, 64, 1 << 15])
@pytest.mark.parametrize("causal, t, s", [(True, 9, 9), (True, 5, 12), (False, 6, 7),
                                          (True, 1, 4)])
def test_probabilities_by_row_blocks_are_the_whole_matrix_softmax(monkeypatch, rows, causal,
                                                                  t, s):
    # the generator's in-place row blocks against softmax_probabilities of whole matrices
    # of the same logits (drawn a chunk of matrices at a time, as the generator does)
    monkeypatch.setattr(tx, "_SOFTMAX_ROWS", rows * s)
    monkeypatch.setattr(tx, "_SOFTMAX_CHUNK", 2 * t * s)
    layer = _context(s, t=t, causal=causal, heads=5)
    shape = (1, 5, t, s)
    fast = tx._probabilities(_rng(7), layer, shape)
    rng = _rng(7)
    logits = np.concatenate([tx._normal(rng, (n, t, s)) for n in (2, 2, 1)])
    logits *= np.float32(tx.LOGIT_STD)
    p = tx.softmax_probabilities(logits, causal)
    expected = np.minimum(np.rint(p * 255), 255).astype(np.uint8).reshape(shape)
    assert fast.dtype == np.uint8 and np.array_equal(fast, expected)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 18])
def test_elementwise_in_chunks_is_the_function_of_the_whole(monkeypatch, chunk):
    monkeypatch.setattr(tx, "_CHUNK", chunk)
    x = _rng(11).normal(0, 3, (5, 9, 4)).astype(np.float32)
    for fn in (tx.gelu, tx.silu):
        expected = fn(x)
        out = tx._elementwise(fn, x.copy())
        assert out.shape == x.shape and np.array_equal(out, expected)
    # a row whose largest magnitude is negative keeps its scale
    w = np.array([[-8.0, 2.0, 4.0], [1.0, -0.5, 0.25]], np.float32)
    assert np.array_equal(tx._per_channel(w, 8), [[-127, 32, 64], [127, -64, 32]])
