"""GEMM lowering against a naive im2col, and its helpers (numpy only).

The comparison with torch's conv2d/linear is in test_lowering_torch.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.workloads.layers import Layer, LayerTensors
from simulator.workloads import lowering
from simulator.workloads.lowering import (exact_output, gemm_product, gemm_to_output, im2col,
                                          im2col_nonzeros, weight_columns,
                                          weight_nonzeros, weights_to_gemm)


def _naive_im2col(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Slow, obviously-correct A matrix: one element at a time, k = (r*S + s)*Cg + c."""
    n, c, h, w = x.shape
    g, cg = layer.groups, c // layer.groups
    r_taps, s_taps = layer.kernel_size
    p, q = layer.output_size
    out = np.zeros((g, n * p * q, r_taps * s_taps * cg), dtype=np.int64)
    for gi in range(g):
        for ni in range(n):
            for pi in range(p):
                for qi in range(q):
                    m = (ni * p + pi) * q + qi
                    for r in range(r_taps):
                        for s in range(s_taps):
                            y = pi * layer.stride[0] - layer.padding[0] + r * layer.dilation[0]
                            z = qi * layer.stride[1] - layer.padding[1] + s * layer.dilation[1]
                            if 0 <= y < h and 0 <= z < w:
                                for ci in range(cg):
                                    out[gi, m, (r * s_taps + s) * cg + ci] = x[ni, gi * cg + ci, y, z]
    return out


conv_cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "cg": st.integers(1, 3), "fg": st.integers(1, 3),
    "g": st.sampled_from([1, 2, 3]), "h": st.integers(3, 9), "w": st.integers(3, 9),
    "r": st.integers(1, 3), "s": st.integers(1, 3), "stride": st.integers(1, 3),
    "pad": st.integers(0, 2), "dil": st.integers(1, 2), "bias": st.booleans(),
    "seed": st.integers(0, 2**31)})


def _conv_layer(case: dict) -> Layer | None:
    layer = Layer(name="l", op="conv2d", in_channels=case["cg"] * case["g"],
                  out_channels=case["fg"] * case["g"], batch=case["n"],
                  input_size=(case["h"], case["w"]), kernel_size=(case["r"], case["s"]),
                  stride=(case["stride"], case["stride"]), padding=(case["pad"], case["pad"]),
                  dilation=(case["dil"], case["dil"]), groups=case["g"])
    return None if list(layer.problems()) else layer


def conv_case_data(case: dict, layer: Layer, dtype=np.int64):
    """Seeded input, weights and bias of a hypothesis conv case (sparse, to test counts)."""
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(0, 256, (layer.batch, layer.in_channels, *layer.input_size))
    x[rng.random(x.shape) < 0.4] = 0
    w = rng.integers(-127, 128, (layer.out_channels, case["cg"], *layer.kernel_size))
    w[rng.random(w.shape) < 0.3] = 0
    b = rng.integers(-5000, 5000, layer.out_channels) if case["bias"] else None
    return x.astype(dtype), w, b


@settings(max_examples=60, deadline=None)
@given(conv_cases)
def test_conv_matches_naive_im2col_and_helpers(case):
    layer = _conv_layer(case)
    if layer is None:
        return
    x, w, _ = conv_case_data(case, layer, np.uint8)
    a = im2col(x, layer)
    assert a.dtype == np.int64
    np.testing.assert_array_equal(a, _naive_im2col(x.astype(np.int64), layer))
    narrow = im2col(x, layer, None)  # the input's own dtype (no int64 copy)
    assert narrow.dtype == np.uint8
    np.testing.assert_array_equal(narrow, a)
    gemm = layer.gemm
    b = weights_to_gemm(w, layer)
    assert a.shape == (gemm.groups, gemm.m, gemm.k)
    assert b.shape == (gemm.groups, gemm.k, gemm.n)
    # the non-zero counts the exact PEs count from, without the im2col matrix
    np.testing.assert_array_equal(im2col_nonzeros(x, layer), np.count_nonzero(a, axis=1))
    np.testing.assert_array_equal(weight_nonzeros(w, layer), np.count_nonzero(b, axis=2))
    # any block of columns of one group, lowered alone
    rng = np.random.default_rng(case["seed"] + 1)
    group = int(rng.integers(gemm.groups))
    lo = int(rng.integers(gemm.n))
    hi = int(rng.integers(lo, gemm.n)) + 1
    block = weight_columns(w, layer, group, lo, hi)
    assert block.dtype == np.int64
    np.testing.assert_array_equal(block, b[group, :, lo:hi])
    narrow = weight_columns(w.astype(np.int8), layer, group, lo, hi, None)
    assert narrow.dtype == np.int8
    np.testing.assert_array_equal(narrow, block)


def test_gemm_product_blocks_and_bounds(monkeypatch):
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 256, (2, 37, 11))
    b = rng.integers(-128, 128, (2, 11, 5))
    expected = np.einsum("gmk,gkn->gmn", a, b)
    monkeypatch.setattr(lowering, "_PRODUCT_BLOCK", 11 * 4)  # 4 rows of A at a time
    out = gemm_product(a.astype(np.int16), b.astype(np.int8))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, expected)
    assert gemm_product(a[:, :0], b).shape == (2, 0, 5)


def test_depthwise_is_one_column_per_group():
    layer = Layer(name="dw", op="conv2d", in_channels=8, out_channels=8, batch=1,
                  input_size=(5, 5), kernel_size=(3, 3), padding=(1, 1), groups=8)
    w = np.arange(8 * 9).reshape(8, 1, 3, 3)
    b = weights_to_gemm(w, layer)
    assert b.shape == (8, 9, 1)
    np.testing.assert_array_equal(b[3, :, 0], w[3].reshape(-1))


def test_k_order_is_tap_major_channel_minor():
    layer = Layer(name="c", op="conv2d", in_channels=2, out_channels=1, batch=1,
                  input_size=(2, 2), kernel_size=(2, 2))
    x = np.array([[[[1, 2], [3, 4]], [[10, 20], [30, 40]]]])
    # one output pixel; k = (r*S + s)*C + c
    np.testing.assert_array_equal(im2col(x, layer)[0, 0], [1, 10, 2, 20, 3, 30, 4, 40])


def test_large_values_stay_exact():
    # beyond 2**53 the float64 shortcut would round: the int64 path must be taken
    big = LayerTensors(np.full((1, 4), 2**30), np.full((1, 4), 2**30 - 1))
    big_layer = Layer(name="big", op="linear", in_channels=4, out_channels=1, batch=1)
    assert exact_output(big, big_layer)[0, 0] == 4 * 2**30 * (2**30 - 1)


def test_linear_helpers():
    rng = np.random.default_rng(1)
    layer = Layer(name="fc", op="linear", in_channels=33, out_channels=7, batch=5,
                  activation_signed=True)
    x = rng.integers(-128, 128, (5, 33))
    x[:, ::3] = 0
    w = rng.integers(-127, 128, (7, 33))
    w[::2, 1::4] = 0
    a, b = im2col(x, layer), weights_to_gemm(w, layer)
    np.testing.assert_array_equal(exact_output(LayerTensors(x, w), layer), x @ w.T)
    np.testing.assert_array_equal(im2col_nonzeros(x, layer), np.count_nonzero(a, axis=1))
    np.testing.assert_array_equal(weight_nonzeros(w, layer), np.count_nonzero(b, axis=2))
    np.testing.assert_array_equal(weight_columns(w, layer, 0, 2, 6), b[0, :, 2:6])
    narrow_a = im2col(x.astype(np.int8), layer, None)
    narrow_b = weight_columns(w.astype(np.int8), layer, 0, 2, 6, None)
    assert narrow_a.dtype == narrow_b.dtype == np.int8
    np.testing.assert_array_equal(narrow_a, a)
    np.testing.assert_array_equal(narrow_b, b[0, :, 2:6])


def test_scalesim_rule_pads_bottom_right():
    # SCALE-Sim: P = ceil((H - R + s)/s) = ceil((8 - 3 + 2)/2) = 4 from an 8-row input
    layer = Layer(name="c", op="conv2d", in_channels=1, out_channels=1, batch=1,
                  input_size=(8, 8), kernel_size=(3, 3), stride=(2, 2), output_rule="scalesim")
    x = np.ones((1, 1, 8, 8), dtype=np.int64)
    out = exact_output(LayerTensors(x, np.ones((1, 1, 3, 3), dtype=np.int64)), layer)
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 0, 0] == 9 and out[0, 0, 3, 3] == 4


def test_gemm_to_output_inverts_layout():
    layer = Layer(name="c", op="conv2d", in_channels=4, out_channels=6, batch=2,
                  input_size=(3, 4), kernel_size=(1, 1), groups=2)
    o = np.arange(2 * 2 * 12 * 3).reshape(2, 24, 3)
    out = gemm_to_output(o, layer)
    assert out.shape == (2, 6, 3, 4)
    # group 1, m = (n=1, p=2, q=3) -> row 1*12 + 2*4 + 3 = 23, column 2 -> channel 5
    assert out[1, 5, 2, 3] == o[1, 23, 2]
