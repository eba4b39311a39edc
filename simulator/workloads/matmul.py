"""Exact lowering of a ``matmul`` layer (two activations) to GEMMs and back.

A matmul's left operand is (batch, heads, tokens, K) and its right operand
(batch, kv_heads, K, N) (docs/trace-format.md, docs/hardware-spec.md §11). With grouped-query
attention the ``heads // kv_heads`` query heads that share one right operand are stacked
along M, so the layer is ``batch * kv_heads`` GEMMs of M = ``tokens * heads // kv_heads``,
in the order (b, kv head); rows are ordered (query head within the group, token).
"""

from __future__ import annotations

import numpy as np

from simulator.workloads.layers import Layer
from simulator.workloads.lowering import gemm_product

__all__ = ["exact_matmul", "matmul_operands", "matmul_output"]


def matmul_operands(left: np.ndarray, right: np.ndarray,
                    layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """The GEMM operands of a matmul: A (G, M, K) and B (G, K, N), G = batch * kv_heads.

    Parameters
    ----------
    left : np.ndarray
        (batch, heads, tokens, K) integers.
    right : np.ndarray
        (batch, kv_heads, K, N) integers.
    layer : Layer
        The matmul layer (its heads and kv_heads).
    """
    b, h, t, k = left.shape
    kvh = layer.right_heads
    a = np.asarray(left).astype(np.int64, copy=False).reshape(b * kvh, (h // kvh) * t, k)
    bb = np.asarray(right).astype(np.int64, copy=False).reshape(b * kvh, k, right.shape[-1])
    return np.ascontiguousarray(a), np.ascontiguousarray(bb)


def matmul_output(o: np.ndarray, layer: Layer) -> np.ndarray:
    """Map GEMM results (batch * kv_heads, M, N) back to (batch, heads, tokens, N)."""
    return np.asarray(o).reshape(layer.batch, layer.heads, layer.tokens, o.shape[-1])


def exact_matmul(left: np.ndarray, right: np.ndarray, layer: Layer) -> np.ndarray:
    """The exact int64 product of a matmul layer, (batch, heads, tokens, N)."""
    a, b = matmul_operands(left, right, layer)
    return matmul_output(gemm_product(a, b), layer)
