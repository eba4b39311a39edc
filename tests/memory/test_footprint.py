"""Input footprints of GEMM-operand blocks against enumeration (tests/memory/naive_memory.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from memory_cases import conv_layers
from naive_memory import naive_footprint

from simulator.memory import Footprint
from simulator.workloads.layers import Layer


@settings(max_examples=150, deadline=None)
@given(conv_layers(), st.data())
def test_block_footprint_matches_enumeration(layer, data):
    gemm = layer.gemm
    m0 = data.draw(st.integers(0, gemm.m - 1))
    m1 = data.draw(st.integers(m0 + 1, gemm.m))
    k0 = data.draw(st.integers(0, gemm.k - 1))
    k1 = data.draw(st.integers(k0 + 1, gemm.k))
    assert Footprint(layer).elements(m0, m1, k0, k1) == naive_footprint(layer, m0, m1, k0, k1)


@settings(max_examples=80, deadline=None)
@given(conv_layers(), st.lists(st.integers(0, 10**6), max_size=4), st.booleans())
def test_first_reads_are_the_growth_of_the_union(layer, cuts, backwards):
    gemm = layer.gemm
    bounds = sorted({0, gemm.m, *(c % (gemm.m + 1) for c in cuts)})
    slices = list(zip(bounds[:-1], bounds[1:]))
    if backwards:
        slices = slices[::-1]
    cg = layer.in_channels // layer.groups
    got = Footprint(layer).first_reads(slices)
    # What slice i reads that slices before it did not = |union up to i| - |union before i|.
    seen: set = set()
    for (m0, m1), pixels in zip(slices, got):
        before = len(seen)
        seen |= _pixels(layer, m0, m1)
        assert pixels == len(seen) - before
    assert sum(got) * cg == naive_footprint(layer, 0, gemm.m, 0, gemm.k)


def _pixels(layer: Layer, m0: int, m1: int) -> set:
    kh, kw = layer.kernel_size
    (sh, sw), (dh, dw), (ph, pw) = layer.stride, layer.dilation, layer.padding
    (h_in, w_in), (p_out, q_out) = layer.input_size, layer.output_size
    out = set()
    for m in range(m0, m1):
        n, rest = divmod(m, p_out * q_out)
        p, q = divmod(rest, q_out)
        for r in range(kh):
            for s in range(kw):
                h, w = p * sh + r * dh - ph, q * sw + s * dw - pw
                if 0 <= h < h_in and 0 <= w < w_in:
                    out.add((n, h, w))
    return out


def test_gemm_blocks_have_no_repeats():
    layer = Layer(name="fc", op="linear", in_channels=30, out_channels=7, batch=5)
    assert Footprint(layer).elements(1, 4, 2, 12) == 3 * 10


def test_a_3x3_same_conv_reads_each_input_once():
    # 3x3, stride 1, padding 1: the whole im2col matrix (9x repeated) reads each pixel once.
    layer = Layer(name="c", op="conv2d", in_channels=4, out_channels=2, batch=2,
                  input_size=(6, 5), kernel_size=(3, 3), padding=(1, 1))
    gemm = layer.gemm
    assert Footprint(layer).elements(0, gemm.m, 0, gemm.k) == 2 * 6 * 5 * 4
    # A 1x1 stride-2 conv skips every other row and column.
    layer = Layer(name="d", op="conv2d", in_channels=3, out_channels=2, input_size=(7, 7),
                  stride=(2, 2))
    assert Footprint(layer).elements(0, layer.gemm.m, 0, 3) == 4 * 4 * 3
