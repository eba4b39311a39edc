"""Transformer model templates and the shipped transformer workloads (docs/workloads.md)."""

from __future__ import annotations

import collections
import re

import pytest
import yaml

from simulator.errors import WorkloadError
from simulator.workloads.layers import Layer
from simulator.workloads.shapes import load_workload_yaml


def _encoder_block(t: int, s: int, d: int, f: int, h: int) -> int:
    """MACs of one BERT/ViT/GPT-2 block: Q, K, V, O projections (4 T d^2), scores and
    context (2 H T S d/H), two FFN linears (2 T d F)."""
    return 4 * t * d * d + 2 * h * t * s * (d // h) + 2 * t * d * f


def _llama_block(b: int, t: int, s: int, d: int, f: int, h: int, kv: int, dh: int) -> int:
    """MACs of one Llama block: Q and O (2 T d H dh), K and V (2 T d KV dh), scores and
    context (2 H T S dh), gate, up and down (3 T d F); all times B sequences."""
    return b * (2 * t * d * h * dh + 2 * t * d * kv * dh + 2 * h * t * s * dh + 3 * t * d * f)


# Closed forms from the published hyper-parameters (the comments at the top of each file).
CLOSED_FORM = {
    "bert_base_seq128": 12 * _encoder_block(128, 128, 768, 3072, 12),
    "bert_base_seq512": 12 * _encoder_block(512, 512, 768, 3072, 12),
    # patchify conv (196 patches x 768 filters x 3*16*16), 12 blocks of 197 tokens, the
    # classifier on the class token
    "vit_b16": 196 * 768 * 3 * 16 * 16 + 12 * _encoder_block(197, 197, 768, 3072, 12)
               + 768 * 1000,
    "gpt2_prefill": 12 * _encoder_block(1024, 1024, 768, 3072, 12) + 1024 * 768 * 50257,
    "gpt2_decode": 12 * _encoder_block(1, 1025, 768, 3072, 12) + 768 * 50257,
    "llama2_7b_prefill": 32 * _llama_block(1, 2048, 2048, 4096, 11008, 32, 32, 128)
                         + 4096 * 32000,
    "llama2_7b_decode_b1": 32 * _llama_block(1, 1, 2049, 4096, 11008, 32, 32, 128)
                           + 4096 * 32000,
    "llama2_7b_decode_b16": 32 * _llama_block(16, 1, 2049, 4096, 11008, 32, 32, 128)
                            + 16 * 4096 * 32000,
    "llama3_8b_prefill": 32 * _llama_block(1, 2048, 2048, 4096, 14336, 32, 8, 128)
                         + 4096 * 128256,
    "llama3_8b_decode_b1": 32 * _llama_block(1, 1, 2049, 4096, 14336, 32, 8, 128)
                           + 4096 * 128256,
    "llama3_8b_decode_b16": 32 * _llama_block(16, 1, 2049, 4096, 14336, 32, 8, 128)
                            + 16 * 4096 * 128256,
}


@pytest.mark.parametrize(("name", "macs"), CLOSED_FORM.items())
def test_shipped_transformer_macs_equal_the_closed_form(repo, name, macs):
    workload = load_workload_yaml(repo / "workloads" / f"{name}.yaml")
    assert workload.name == name
    assert workload.macs == macs


def test_published_macs_of_vit_b16(repo):
    # torchvision's ViT_B_16_Weights: 17.56 GFLOPS (multiply-accumulates, batch 1)
    vit = load_workload_yaml(repo / "workloads" / "vit_b16.yaml")
    assert round(vit.macs / 1e9, 2) == 17.56


# Layers: blocks x (9 attention layers, +2 rotary; 5 FFN layers, 7 gated) + the layers around
# them (patchify, position add, embedding or final norm, classifier, LM head).
LAYER_COUNT = {
    "bert_base_seq128": 12 * 14 + 2, "bert_base_seq512": 12 * 14 + 2,
    "vit_b16": 12 * 14 + 4, "gpt2_prefill": 12 * 14 + 3, "gpt2_decode": 12 * 14 + 3,
    **{f"{m}_{p}": 32 * 18 + 2 for m in ("llama2_7b", "llama3_8b")
       for p in ("prefill", "decode_b1", "decode_b16")},
}


@pytest.mark.parametrize(("name", "count"), LAYER_COUNT.items())
def test_shipped_transformer_layer_counts(repo, name, count):
    workload = load_workload_yaml(repo / "workloads" / f"{name}.yaml")
    assert len(workload.layers) == count
    assert len({layer.name for layer in workload.layers}) == count
    matmuls = [layer for layer in workload.layers if layer.op == "matmul"]
    assert len(matmuls) == 2 * (32 if name.startswith("llama") else 12)
    assert all(layer.kv_cache == (workload.phase == "decode") for layer in matmuls)


def _ops(workload) -> collections.Counter:
    return collections.Counter(layer.op for layer in workload.layers)


def test_llama2_prefill_layers(repo):
    w = load_workload_yaml(repo / "workloads" / "llama2_7b_prefill.yaml")
    assert (w.phase, w.sequences, w.seq_len, w.context_len) == ("prefill", 1, 2048, 0)
    # per block: 2 norms, 7 linears, 2 rotary, 2 matmuls, softmax, silu, mul, 2 adds
    assert len(w.layers) == 32 * 18 + 2
    assert _ops(w) == {"rmsnorm": 65, "linear": 32 * 7 + 1, "rotary": 64, "matmul": 64,
                       "softmax": 32, "silu": 32, "mul": 32, "add": 64}
    names = [layer.name for layer in w.layers[:18]]
    assert names == ["block0." + n for n in (
        "attn_norm", "q_proj", "k_proj", "v_proj", "q_rotary", "k_rotary", "scores",
        "softmax", "context", "o_proj", "attn_add", "ffn_norm", "gate_proj", "up_proj", "act",
        "gate_mul", "down_proj", "ffn_add")]
    assert [layer.name for layer in w.layers[-2:]] == ["final_norm", "lm_head"]
    by_name = {layer.name: layer for layer in w.layers}
    scores, context = by_name["block0.scores"], by_name["block0.context"]
    assert (scores.tokens, scores.in_channels, scores.out_channels) == (2048, 128, 2048)
    assert (context.tokens, context.in_channels, context.out_channels) == (2048, 2048, 128)
    assert scores.causal and not scores.kv_cache and scores.activation_signed
    assert not context.activation_signed and context.weight_signed
    assert by_name["lm_head"].batch == 1  # logits: last
    assert {layer.role for layer in w.layers} == {"attention", "ffn", "other"}
    assert by_name["block5.down_proj"].role == "ffn"
    assert by_name["block5.softmax"].role == "attention"


def test_llama3_decode_uses_gqa_and_the_kv_cache(repo):
    w = load_workload_yaml(repo / "workloads" / "llama3_8b_decode_b16.yaml")
    assert (w.phase, w.sequences, w.seq_len, w.context_len) == ("decode", 16, 0, 2048)
    by_name = {layer.name: layer for layer in w.layers}
    k, q = by_name["block0.k_proj"], by_name["block0.q_proj"]
    assert (k.batch, k.in_channels, k.out_channels) == (16, 4096, 8 * 128)
    assert (q.batch, q.out_channels) == (16, 4096)
    scores = by_name["block0.scores"]
    assert (scores.batch, scores.heads, scores.kv_heads, scores.tokens) == (16, 32, 8, 1)
    assert scores.out_channels == 2049 and scores.kv_cache and not scores.causal
    # 4 query heads of one K/V head stacked along M: 16 sequences x 8 K/V heads of GEMMs
    assert (scores.gemm.m, scores.gemm.k, scores.gemm.n, scores.gemm.groups) == (4, 128, 2049,
                                                                                128)
    assert by_name["block0.context"].kv_cache
    assert (by_name["block0.k_rotary"].heads, by_name["block0.q_rotary"].heads) == (8, 32)
    assert by_name["lm_head"].batch == 16
    assert all(layer.gemm.m == 16 for layer in w.layers if layer.op == "linear")


def test_bert_is_post_norm_with_an_embedding_norm(repo):
    w = load_workload_yaml(repo / "workloads" / "bert_base_seq512.yaml")
    assert len(w.layers) == 2 + 12 * 14
    assert _ops(w) == {"add": 1 + 24, "layernorm": 1 + 24, "linear": 72, "matmul": 24,
                       "softmax": 12, "gelu": 12}
    names = [layer.name for layer in w.layers[:6]]
    assert names == ["pos_add", "embed_norm", "block0.q_proj", "block0.k_proj",
                     "block0.v_proj", "block0.scores"]
    by_name = {layer.name: layer for layer in w.layers}
    assert [layer.name for layer in w.layers[-2:]] == ["block11.ffn_add", "block11.ffn_norm"]
    assert not by_name["block0.scores"].causal
    assert by_name["block0.fc2"].activation_signed  # GELU outputs can be negative


def test_vit_patchify_and_class_token(repo):
    w = load_workload_yaml(repo / "workloads" / "vit_b16.yaml")
    patch = w.layers[0]
    assert (patch.op, patch.kernel_size, patch.stride, patch.output_size) == (
        "conv2d", (16, 16), (16, 16), (14, 14))
    assert w.seq_len == 197 and w.layers[1].name == "pos_add" and w.layers[1].tokens == 197
    assert w.layers[-1].name == "head" and w.layers[-1].batch == 1
    assert w.layers[-2].name == "final_norm"


def _write(tmp_path, transformer: dict, **top) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"schema_version": 1, "name": "m", **top,
                                    "transformer": transformer}))
    return str(path)


BASE = dict(d_model=64, layers=2, heads=4, ffn_dim=128, seq_len=8)


def test_relu_ffn_geglu_and_head_dim(tmp_path):
    w = load_workload_yaml(_write(tmp_path, {**BASE, "ffn": "relu"}))
    fc2 = next(layer for layer in w.layers if layer.name == "block0.fc2")
    assert not fc2.activation_signed  # ReLU outputs
    w = load_workload_yaml(_write(tmp_path, {**BASE, "ffn": "geglu", "heads": 3,
                                             "head_dim": 32, "batch": 2}))
    by_name = {layer.name: layer for layer in w.layers}
    assert by_name["block0.act"].op == "gelu" and by_name["block0.gate_mul"].op == "mul"
    assert by_name["block0.q_proj"].out_channels == 96 and by_name["block0.q_proj"].batch == 16
    assert by_name["block0.o_proj"].in_channels == 96
    assert by_name["block0.scores"].in_channels == 32


@pytest.mark.parametrize(("change", "message"), [
    (dict(heads=5), "transformer.heads: 5 heads do not divide d_model=64 (give head_dim)"),
    (dict(kv_heads=3), "transformer.kv_heads: 3 K/V heads do not divide heads=4"),
    (dict(phase="decode", seq_len=0), "transformer.context_len: decode needs at least 1"),
    (dict(phase="decode", context_len=4), "transformer.seq_len: applies to prefill"),
    (dict(seq_len=0), "transformer.seq_len: required in prefill"),
    (dict(context_len=3), "transformer.context_len: applies to decode"),
    (dict(kv_head=2), "transformer: unknown key 'kv_head' (did you mean 'kv_heads'?)"),
    (dict(ffn="swishglu"), "transformer.ffn: expected one of"),
    (dict(heads=0), "transformer.heads: expected a number from 1"),
    (dict(layers=5000), "transformer.layers: 5,000 blocks expand to about"),
    (dict(image_size=224), "transformer.patch_size: a ViT needs both"),
    (dict(image_size=224, patch_size=15), "transformer.patch_size: 15 does not divide"),
    (dict(image_size=32, patch_size=16), "transformer.seq_len: 8, but 32/16 patches"),
])
def test_bad_transformer_sections_are_one_line_naming_the_key(tmp_path, change, message):
    path = _write(tmp_path, {**BASE, **change})
    with pytest.raises(WorkloadError) as info:
        load_workload_yaml(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_transformer_excludes_layers_and_top_level_batch(tmp_path):
    for top in (dict(batch=2), dict(layers=[{"name": "x", "op": "gemm"}]),
                dict(phase="decode"), dict(seq_len=3)):
        path = _write(tmp_path, BASE, **top)
        with pytest.raises(WorkloadError, match="not allowed beside transformer"):
            load_workload_yaml(path)
    for top, message in ((dict(nmae="x"), "unknown key 'nmae' (did you mean 'name'?)"),
                         (dict(schema_version=2), "schema_version: expected 1"),
                         (dict(name=" "), "name: expected a non-empty string"),
                         (dict(description=3), "description: expected a string")):
        with pytest.raises(WorkloadError, match=re.escape(message)):
            load_workload_yaml(_write(tmp_path, BASE, **top))
    with pytest.raises(WorkloadError, match="transformer: expected a mapping"):
        load_workload_yaml(_write(tmp_path, [1, 2]))


def test_cli_reports_a_bad_transformer_in_one_line(cli, tmp_path):
    path = _write(tmp_path, {**BASE, "kv_heads": 3})
    result = cli("run", "--arch", "os_sa_16x16", "--workload", path, "--timing-only",
                 "--out", tmp_path / "out")
    assert result.status == 2
    assert result.err.count("\n") == 1 and "transformer.kv_heads" in result.err
    assert "Traceback" not in result.err and not (tmp_path / "out").exists()


def test_every_expanded_layer_is_valid(repo):
    for name in CLOSED_FORM:
        for layer in load_workload_yaml(repo / "workloads" / f"{name}.yaml").layers:
            assert isinstance(layer, Layer) and not list(layer.problems()), layer.name


# docs/workloads.md, "Shipped transformer workloads": the table must match the files.
_ROW = re.compile(r"^\| `(\w+)` \|(.*)\|$")


def _weights(workload) -> int:
    return sum(layer.gemm.k * layer.gemm.n * layer.gemm.groups for layer in workload.layers
               if layer.op in ("linear", "conv2d"))


def test_docs_table_of_shipped_transformers_is_current(repo):
    text = (repo / "docs" / "workloads.md").read_text(encoding="utf-8")
    section = text.split("### Shipped transformer workloads", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): [c.strip() for c in m.group(2).split("|")]
            for m in map(_ROW.match, section.splitlines()) if m}
    assert set(rows) == set(CLOSED_FORM)
    for name, cells in rows.items():
        w = load_workload_yaml(repo / "workloads" / f"{name}.yaml")
        tokens = (f"{w.seq_len}" if w.phase == "prefill" else f"1 (+{w.context_len} cached)")
        expected = [w.phase, str(w.sequences), tokens, str(len(w.layers)),
                    f"{_weights(w) / 1e6:,.1f}", f"{w.macs / 1e9:,.3f}"]
        assert cells[1:] == expected, name


def test_layers_per_block_counts_the_expansion(tmp_path):
    from simulator.workloads.transformer import TransformerSpec, expand, layers_per_block

    for ffn in ("gelu", "relu", "swiglu", "geglu"):
        for positions in ("learned", "rope"):
            spec = TransformerSpec(**BASE, ffn=ffn, positions=positions)
            blocks = [layer for layer in expand(spec) if layer.name.startswith("block1.")]
            assert len(blocks) == layers_per_block(spec), (ffn, positions)


def test_benchmark_block_is_block0_of_llama2_prefill_with_its_data(repo):
    # benchmarks/llama2_7b_prefill_block.yaml (benchmarks/bench_llm.py): the layers of
    # block0 of the shipped prefill, at the same indices, so the same synthetic data
    from simulator import api
    from simulator.workloads.synthetic import synthesize

    block = api.load_workload(repo / "benchmarks" / "llama2_7b_prefill_block.yaml")
    full = api.load_workload("llama2_7b_prefill")
    body = [layer for layer in full.layers if layer.name.startswith("block0.")]
    assert list(block.layers[:-1]) == body == list(full.layers[:len(body)])
    assert [layer.name for layer in block.layers[len(body):]] == ["final_norm"]
    assert block.macs == sum(layer.gemm.macs for layer in body if layer.is_gemm)
    mine, theirs = synthesize(block), synthesize(full)
    for name in ("block0.attn_norm", "block0.q_rotary"):
        assert (mine.tensors(name).input == theirs.tensors(name).input).all()
