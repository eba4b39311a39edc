"""Exact lowering of a layer's integer tensors to GEMMs and back (docs/hardware-spec.md §1).

A conv2d with input (N, C, H, W) and weight (F, C/g, R, S) becomes ``g`` GEMMs
``O (M x Fg) = A (M x Kd) . B (Kd x Fg)`` with M = N*P*Q ordered (n, p, q), Kd = (C/g)*R*S
in the tap-major, channel-minor order ``k = (r*S + s)*(C/g) + c``, and Fg = F/g. A linear (or
gemm) layer with input (N, in) and weight (out, in) is one GEMM with M = N, Kd = in,
Fg = out. A ``matmul`` with left operand (batch, heads, tokens, K) and right operand
(batch, kv_heads, K, N) becomes batch * kv_heads GEMMs (the group index is
``b * kv_heads + h``) whose M rows are the ``heads // kv_heads`` query heads of that K/V head,
then their tokens (docs/transformers.md); its output is (batch, heads, tokens, N).

Everything here is plain numpy on int64 and exact. The functions do not validate their
arguments beyond what is needed to lower them: traces are validated when they are loaded
(:mod:`simulator.workloads.trace`).
"""

from __future__ import annotations

import numpy as np

from simulator.workloads.layers import Layer, LayerTensors

__all__ = ["im2col", "weights_to_gemm", "weight_columns", "gemm_to_output", "gemm_product",
           "exact_output", "output_shape", "im2col_nonzeros", "weight_nonzeros",
           "tap_geometry"]

# float64 represents every integer below 2**53 exactly, so a float64 BLAS product is exact
# when every partial sum stays below that bound; it is much faster than numpy's int64 matmul.
_FLOAT64_EXACT = 2**53
#: Rows of A converted to float64 at a time by gemm_product, as elements (8 MiB): the
#: product never holds a float64 copy of a whole im2col matrix.
_PRODUCT_BLOCK = 1 << 20


def output_shape(layer: Layer) -> tuple[int, ...]:
    """Shape of the layer's output tensor: (N, F, P, Q) for conv2d, (batch, heads, tokens, N)
    for matmul, (N, out) otherwise."""
    if layer.op == "matmul":
        return (layer.batch, layer.heads, layer.tokens, layer.out_channels)
    if layer.op == "conv2d":
        p, q = layer.output_size
        return (layer.batch, layer.out_channels, p, q)
    return (layer.batch, layer.out_channels)


def im2col(x: np.ndarray, layer: Layer, dtype: np.dtype | type | None = np.int64) -> np.ndarray:
    """Lower the layer's input to the GEMM operand A.

    Parameters
    ----------
    x : np.ndarray
        Integer input, (N, C, H, W) for conv2d, (N, in_features) for linear/gemm.
    layer : Layer
        The layer (stride, padding, dilation, groups, output rule).
    dtype : the result's dtype; ``None`` keeps the input's (no int64 copy of 8-bit data).

    Returns
    -------
    np.ndarray
        Array of shape (g, M, Kd), rows ordered (n, p, q), columns
        ``k = (r*S + s)*(C/g) + c``; positions in the zero padding are 0.
    """
    x = np.asarray(x)
    dtype = x.dtype if dtype is None else dtype
    if layer.op == "matmul":
        gemm = layer.gemm
        return x.astype(dtype, copy=False).reshape(gemm.groups, gemm.m, gemm.k)
    if layer.op != "conv2d":
        return x.astype(dtype, copy=False).reshape(1, x.shape[0], -1)
    n, c, h, w = x.shape
    g = layer.groups
    cg = c // g
    r_taps, s_taps = layer.kernel_size
    (sh, sw), (dh, dw), (ph, pw) = layer.stride, layer.dilation, layer.padding
    p, q = layer.output_size
    # The padded copy keeps the input's (narrow) dtype; only the result is ``dtype``.
    padded = np.zeros((n, c, *tap_geometry(layer, h, w)), dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    taps = r_taps * s_taps
    cols = np.empty((n, p, q, taps, c), dtype=dtype)
    for r in range(r_taps):
        for s in range(s_taps):
            window = padded[:, :, r * dh:r * dh + (p - 1) * sh + 1:sh,
                            s * dw:s * dw + (q - 1) * sw + 1:sw]
            cols[:, :, :, r * s_taps + s, :] = window.transpose(0, 2, 3, 1)
    cols = cols.reshape(n * p * q, taps, g, cg).transpose(2, 0, 1, 3)
    return np.ascontiguousarray(cols).reshape(g, n * p * q, taps * cg)


def tap_geometry(layer: Layer, h: int, w: int) -> tuple[int, int]:
    """Height and width of the zero-padded input that every tap of every output reaches: the
    SCALE-Sim rule (and any ceil-style output size) may need zeros beyond the symmetric
    padding at the bottom/right."""
    r_taps, s_taps = layer.kernel_size
    (sh, sw), (dh, dw), (ph, pw) = layer.stride, layer.dilation, layer.padding
    p, q = layer.output_size
    need_h = (p - 1) * sh + dh * (r_taps - 1) + 1
    need_w = (q - 1) * sw + dw * (s_taps - 1) + 1
    return max(need_h, h + 2 * ph), max(need_w, w + 2 * pw)


def im2col_nonzeros(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Non-zero entries of each column of :func:`im2col` ``(x, layer)``, without building it.

    Returns
    -------
    np.ndarray
        int64 (g, Kd): for column ``k = (r*S + s)*(C/g) + c`` of group ``g``, the number of
        rows (n, p, q) whose input at that tap and channel is non-zero.
    """
    x = np.asarray(x)
    if layer.op == "matmul":
        gemm = layer.gemm
        return np.count_nonzero(x.reshape(gemm.groups, gemm.m, gemm.k), axis=1).astype(np.int64)
    if layer.op != "conv2d":
        return np.count_nonzero(x.reshape(x.shape[0], -1), axis=0).astype(np.int64)[None]
    n, c, h, w = x.shape
    g = layer.groups
    r_taps, s_taps = layer.kernel_size
    (sh, sw), (dh, dw), (ph, pw) = layer.stride, layer.dilation, layer.padding
    p, q = layer.output_size
    mask = np.zeros((n, c, *tap_geometry(layer, h, w)), dtype=np.bool_)
    mask[:, :, ph:ph + h, pw:pw + w] = x != 0
    counts = np.empty((r_taps * s_taps, c), dtype=np.int64)
    for r in range(r_taps):
        for s in range(s_taps):
            window = mask[:, :, r * dh:r * dh + (p - 1) * sh + 1:sh,
                          s * dw:s * dw + (q - 1) * sw + 1:sw]
            counts[r * s_taps + s] = np.count_nonzero(window, axis=(0, 2, 3))
    return np.ascontiguousarray(
        counts.reshape(r_taps * s_taps, g, c // g).transpose(1, 0, 2)).reshape(g, -1)


def weight_nonzeros(w: np.ndarray, layer: Layer) -> np.ndarray:
    """Non-zero entries of each row of :func:`weights_to_gemm` ``(w, layer)``: int64 (g, Kd)."""
    nonzero = np.asarray(w) != 0
    if layer.op == "matmul":
        gemm = layer.gemm
        return np.count_nonzero(nonzero.reshape(gemm.groups, gemm.k, gemm.n),
                                axis=2).astype(np.int64)
    if layer.op != "conv2d":
        return np.count_nonzero(nonzero, axis=0).astype(np.int64)[None]
    f, cg, r, s = nonzero.shape
    g = layer.groups
    per_group = np.count_nonzero(nonzero.reshape(g, f // g, cg, r, s), axis=1)  # (g, cg, r, s)
    return np.ascontiguousarray(per_group.transpose(0, 2, 3, 1)).reshape(g, r * s * cg)


def weights_to_gemm(w: np.ndarray, layer: Layer, dtype: np.dtype | type | None = np.int64
                    ) -> np.ndarray:
    """Lower the layer's weights to the GEMM operand B.

    Parameters
    ----------
    w : np.ndarray
        Integer weights, (F, C/g, R, S) for conv2d, (out, in) for linear/gemm.
    layer : Layer
        The layer.
    dtype : the result's dtype; ``None`` keeps the weights' own.

    Returns
    -------
    np.ndarray
        Array of shape (g, Kd, Fg) in the same K order as :func:`im2col`.
    """
    w = np.asarray(w)
    w = w.astype(w.dtype if dtype is None else dtype, copy=False)
    if layer.op == "matmul":  # the right operand is already (K, N) per group
        gemm = layer.gemm
        return np.ascontiguousarray(w).reshape(gemm.groups, gemm.k, gemm.n)
    if layer.op != "conv2d":
        return np.ascontiguousarray(w.T).reshape(1, w.shape[1], w.shape[0])
    f, cg, r, s = w.shape
    g = layer.groups
    out = w.reshape(g, f // g, cg, r, s).transpose(0, 3, 4, 2, 1)
    return np.ascontiguousarray(out).reshape(g, r * s * cg, f // g)


def weight_columns(w: np.ndarray, layer: Layer, group: int, lo: int, hi: int,
                   dtype: np.dtype | type | None = np.int64) -> np.ndarray:
    """Columns ``lo:hi`` of group ``group`` of :func:`weights_to_gemm` ``(w, layer)``:
    (Kd, hi - lo) of ``dtype`` (``None``: the weights' own), without lowering the other
    columns."""
    w = np.asarray(w)
    dtype = w.dtype if dtype is None else dtype
    if layer.op == "matmul":
        gemm = layer.gemm
        return np.ascontiguousarray(w.reshape(gemm.groups, gemm.k, gemm.n)[group, :, lo:hi],
                                    dtype=dtype)
    if layer.op != "conv2d":
        return np.ascontiguousarray(w[lo:hi].T, dtype=dtype)
    fg = w.shape[0] // layer.groups
    block = w[group * fg + lo:group * fg + hi]  # (hi - lo, cg, r, s)
    return np.ascontiguousarray(block.transpose(2, 3, 1, 0),
                                dtype=dtype).reshape(-1, block.shape[0])


def gemm_to_output(o: np.ndarray, layer: Layer) -> np.ndarray:
    """Map GEMM results (g, M, Fg) back to the layer's output layout.

    Returns (N, F, P, Q) for conv2d, (batch, heads, tokens, N) for matmul and (N, out) for
    linear/gemm; the dtype is kept.
    """
    o = np.asarray(o)
    if layer.op == "matmul":
        return o.reshape(output_shape(layer))
    if layer.op != "conv2d":
        return o.reshape(o.shape[1], o.shape[2])
    g, _, fg = o.shape
    n = layer.batch
    p, q = layer.output_size
    return np.ascontiguousarray(
        o.reshape(g, n, p, q, fg).transpose(1, 0, 4, 2, 3)).reshape(n, g * fg, p, q)


def gemm_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact int64 batched product ``a @ b`` of (g, M, Kd) and (g, Kd, Fg) integer arrays.

    Uses float64 BLAS when the magnitudes guarantee exactness (max|a| * max|b| * Kd < 2**53,
    always true for 8-bit data), converting A a block of rows at a time, and numpy's int64
    matmul otherwise.
    """
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], a.shape[1], b.shape[2]), dtype=np.int64)
    bound = _magnitude(a) * _magnitude(b) * a.shape[2]
    if bound >= _FLOAT64_EXACT:
        return np.matmul(a.astype(np.int64), b.astype(np.int64))
    out = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=np.int64)
    rows = max(1, _PRODUCT_BLOCK // a.shape[2])
    for group in range(a.shape[0]):
        bf = b[group].astype(np.float64)
        for lo in range(0, a.shape[1], rows):
            out[group, lo:lo + rows] = a[group, lo:lo + rows].astype(np.float64) @ bf
    return out


def _magnitude(x: np.ndarray) -> int:
    """max|x| of a non-empty integer array, without a temporary of its size."""
    return max(abs(int(x.min())), abs(int(x.max())))


def exact_output(tensors: LayerTensors, layer: Layer) -> np.ndarray:
    """The exact int64 output of a layer: the accumulator, plus the integer bias if any.

    This is the definition of a trace's ``<name>.output`` array (docs/trace-format.md): the
    bias (one int64 per output channel, in the accumulator's scale) is added to every
    output position of its channel.

    Parameters
    ----------
    tensors : LayerTensors
        The layer's integer input, weight and optional bias.
    layer : Layer
        The layer.

    Returns
    -------
    np.ndarray
        int64, shape :func:`output_shape` ``(layer)``.
    """
    out = gemm_to_output(gemm_product(im2col(tensors.input, layer),
                                      weights_to_gemm(tensors.weight, layer)), layer)
    if tensors.bias is not None:
        bias = np.asarray(tensors.bias).astype(np.int64, copy=False)
        out = out + (bias.reshape(1, -1, 1, 1) if layer.op == "conv2d"
                     else bias.reshape((1,) * (out.ndim - 1) + (-1,)))
    return out
