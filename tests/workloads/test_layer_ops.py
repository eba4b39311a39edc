"""The layer model of matmul and vector ops (docs/hardware-spec.md §11)."""

from __future__ import annotations

import pytest

from simulator.workloads.layers import VECTOR_OPS, Layer, data_bytes


def test_matmul_stacks_the_query_heads_of_one_kv_head_along_m():
    # Llama-3-8B-like scores at prefill: 32 query heads, 8 K/V heads, head dim 128.
    layer = Layer("scores", "matmul", 128, 2048, batch=2, heads=32, kv_heads=8, tokens=2048)
    gemm = layer.gemm
    assert (gemm.m, gemm.k, gemm.n, gemm.groups) == (4 * 2048, 128, 2048, 2 * 8)
    assert layer.macs == 2 * 32 * 2048 * 128 * 2048
    assert layer.elements == 2 * 32 * 2048 * 128
    assert layer.output_elements == 2 * 32 * 2048 * 2048
    assert not list(layer.problems())


def test_matmul_without_kv_heads_is_multi_head():
    layer = Layer("ctx", "matmul", 128, 64, heads=12, tokens=128)
    assert layer.right_heads == 12
    assert (layer.gemm.m, layer.gemm.groups) == (128, 12)


@pytest.mark.parametrize("fields, message", [
    (dict(heads=32, kv_heads=5), "kv_heads=5 must divide heads=32"),
    (dict(heads=4, groups=2), "a matmul has no groups"),
    (dict(heads=0), "heads must be from 1"),
    (dict(tokens=0), "tokens must be from 1"),
])
def test_bad_matmuls_are_explained(fields, message):
    layer = Layer("m", "matmul", 64, 64, **fields)
    assert any(message in p for p in layer.problems())


@pytest.mark.parametrize("op", VECTOR_OPS)
def test_vector_ops_have_no_macs_and_no_gemm(op):
    layer = Layer("v", op, 64, 64, batch=2, tokens=3, input_size=(4, 4),
                  kernel_size=(2, 2), stride=(2, 2))
    assert layer.macs == 0 and not layer.is_gemm
    with pytest.raises(ValueError, match="vector unit"):
        layer.gemm
    assert not list(layer.problems())
    assert data_bytes(layer) == 8 * (layer.input_operands * layer.elements
                                     + layer.output_elements)


def test_vector_op_elements():
    soft = Layer("s", "softmax", 2048, 2048, heads=32, tokens=2048)
    assert soft.rows == 32 * 2048 and soft.elements == 32 * 2048 * 2048
    add = Layer("a", "add", 768, 768, batch=128)
    assert add.input_operands == 2 and add.output_elements == 128 * 768
    pool = Layer("p", "maxpool", 64, 64, input_size=(112, 112), kernel_size=(3, 3),
                 stride=(2, 2), padding=(1, 1))
    assert pool.output_size == (56, 56) and pool.output_elements == 64 * 56 * 56
    glob = Layer("g", "global_avgpool", 512, 512, input_size=(7, 7))
    assert glob.output_size == (1, 1) and glob.output_elements == 512


def test_vector_op_keeps_its_row_length_and_has_no_kv_fields():
    assert any("keeps its row length" in p
               for p in Layer("g", "gelu", 64, 32).problems())
    assert any("kv_heads applies to matmul only" in p
               for p in Layer("g", "gelu", 64, 64, kv_heads=2).problems())
    assert any("unknown op" in p for p in Layer("g", "conv3d", 64, 64).problems())
    assert any("role must be one of" in p for p in Layer("g", "gelu", 64, 64,
                                                         role="mlp").problems())
